//go:build darwin

package capture

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// bpfLive captures from a /dev/bpf device, without cgo or libpcap.
//
// gopacket's bsdbpf package compiles for darwin without cgo, but it is not
// used here: it aligns records to the machine word (8 bytes on 64-bit; darwin
// uses BPF_ALIGNMENT = 4, so the record after one of, say, 18+58 bytes is
// looked for 4 bytes too far), it
// panics when no device can be opened, allocates a new buffer per read,
// checks only one record length, and has none of the darwin ioctls this
// needs (BIOCSWANTPKTAP, pktap interface creation, BIOCGSTATS). Extending it
// would mean rewriting it; the reader here is small and its buffer walker
// (BPFRecords, bpfbuf.go) is tested and fuzzed on any OS.
//
// The sequence follows Apple's libpcap (pcap-bpf.c pcap_activate_bpf and
// pcap-darwin.c): open the first free /dev/bpfN; BIOCSBLEN (only possible
// before an interface is attached); for PKTAP, BIOCSWANTPKTAP and creating
// the pktap interface; BIOCSETIF; BIOCIMMEDIATE; BIOCSRTIMEOUT (so that a
// read returns, possibly empty, after the poll interval); BIOCGDLT;
// BIOCPROMISC; BIOCSETF.
//
// Filters: on an ordinary interface the tcpdump-compiled program runs in the
// kernel (BIOCSETF). On PKTAP the kernel filter would see the PKTAP header,
// which tcpdump cannot compile for, so the program is compiled once for
// LINKTYPE_RAW and run in user space on the network-layer packet inside each
// record (PKTAP header and link-layer header skipped, pth_length and
// pth_frame_pre_length). That works for any inner link type (Ethernet,
// loopback's DLT_NULL, utun's raw IP) with one program, at the cost of
// link-layer primitives: tcpdump rejects "ether host …", "arp" and "vlan"
// for raw IP, so OpenLive fails on them with a one-line "bad filter" error.
// Apple's libpcap instead compiles one program per inner DLT
// (pcap_filter_pktap).
type bpfLive struct {
	mu     sync.RWMutex // Next and Stats hold it shared, Close exclusively
	closed atomic.Bool

	fd      int
	dev     string // "/dev/bpf3"
	iface   string // as given: "en0", "pktap,all"
	attach  string // the interface attached to: "en0", "pktap2"
	created bool   // attach is a pktap interface created here, destroyed on Close
	link    uint32 // LINKTYPE of every frame (149 for PKTAP)
	filter  *Filter
	buf     []byte
	recs    BPFRecords

	statMu             sync.Mutex
	lastRecv, lastDrop uint32 // the kernel's 32-bit counters at the last Stats
	recv, drop         uint64 // their sums, so a wrap is not seen as a reset
}

const (
	bpfMaxDevices    = 256 // BPF_MAX_DEVICES, xnu bsd/net/bpf.c
	bpfMaxInsns      = 512 // BPF_MAXINSNS, xnu bsd/net/bpf.h
	bpfDefaultBuffer = 4 << 20
)

// Argument layouts must match the sizes encoded in the ioctl numbers
// (bpfbuf.go); these fail to compile otherwise.
const (
	_ = uint(unsafe.Sizeof(ifreq{}) - 32)
	_ = uint(32 - unsafe.Sizeof(ifreq{}))
	_ = uint(unsafe.Sizeof(bpfProgram{}) - 16)
	_ = uint(16 - unsafe.Sizeof(bpfProgram{}))
	_ = uint(unsafe.Sizeof(bpfTimeval{}) - 16)
	_ = uint(16 - unsafe.Sizeof(bpfTimeval{}))
	_ = uint(unsafe.Sizeof(bpfStat{}) - 8)
	_ = uint(8 - unsafe.Sizeof(bpfStat{}))
	_ = uint(unsafe.Sizeof(ifdrv{}) - 40)
	_ = uint(40 - unsafe.Sizeof(ifdrv{}))
	_ = uint(unsafe.Sizeof(bpf.RawInstruction{}) - 8) // struct bpf_insn
	_ = uint(8 - unsafe.Sizeof(bpf.RawInstruction{}))
	_ = uint(pktapFilterArrayBytes - 256)
	_ = uint(256 - pktapFilterArrayBytes)
)

// OpenLive opens a live capture on a network interface ("en0", "utun3") or
// on the PKTAP pseudo-interface ("pktap", "pktap,all", "all", "any",
// "pktap,en0,utun3"; see parsePKTAPName), whose records carry the process
// behind each packet. Frames from PKTAP have link type 149. Promiscuous is
// ignored for PKTAP, as it is for "any" on Linux. Everything but an ordinary
// interface opened by a user with access to /dev/bpf* needs root.
func OpenLive(iface string, opt LiveOptions) (Live, error) {
	if iface == "" {
		return nil, errors.New("no interface given")
	}
	spec, isPKTAP, err := parsePKTAPName(iface)
	if err != nil {
		return nil, err
	}
	// Compile the filter before touching the kernel: a typo must not leave a
	// pktap interface behind.
	var prog []bpf.RawInstruction
	var userFilter *Filter
	if isPKTAP && opt.Filter != "" {
		if prog, err = CompileFilter(opt.Filter, linkTypeRaw); err != nil {
			return nil, err
		}
		if userFilter, err = NewFilter(prog); err != nil {
			return nil, err
		}
	}

	fd, dev, err := openBPFDevice()
	if err != nil {
		return nil, err
	}
	l := &bpfLive{fd: fd, dev: dev, iface: iface, filter: userFilter}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
			if l.created {
				destroyPKTAP(l.attach)
			}
		}
	}()

	size := opt.BufferSize
	if size <= 0 {
		size = bpfDefaultBuffer
	}
	size = min(size, 1<<30)
	blen := uint32(size)
	// The kernel clamps the size and writes the one it chose back; read(2)
	// must then use exactly that many bytes (bpfread returns EINVAL otherwise).
	if err := ioctlPtr(fd, biocSBLEN, unsafe.Pointer(&blen)); err != nil {
		return nil, fmt.Errorf("%s: set the buffer size to %d: %w", dev, size, err)
	}
	if blen < bpfHdrMinLen {
		return nil, fmt.Errorf("%s: the kernel set a %d-byte buffer", dev, blen)
	}
	l.buf = make([]byte, blen)

	if isPKTAP {
		if err := unix.IoctlSetPointerInt(fd, biocSWANTPKTAP, 1); err != nil {
			return nil, fmt.Errorf("%s: ask for PKTAP headers (BIOCSWANTPKTAP): %w", dev, err)
		}
		if l.attach, l.created, err = setupPKTAP(spec); err != nil {
			return nil, err
		}
	} else {
		l.attach = iface
	}
	req, err := newIfreq(l.attach)
	if err != nil {
		return nil, err
	}
	if err := ioctlPtr(fd, biocSETIF, unsafe.Pointer(&req)); err != nil {
		switch {
		case errors.Is(err, unix.ENXIO):
			return nil, fmt.Errorf("interface %s: no such interface", l.attach)
		case errors.Is(err, unix.ENETDOWN):
			return nil, fmt.Errorf("interface %s is down", l.attach)
		}
		return nil, fmt.Errorf("attach %s to %s: %w%s", dev, l.attach, err, rootHint(err))
	}
	if err := unix.IoctlSetPointerInt(fd, biocIMMEDIATE, 1); err != nil {
		return nil, fmt.Errorf("%s: immediate mode: %w", dev, err)
	}
	// The kernel keeps the timeout in clock ticks (tvtohz(tv) - 1, 10 ms at
	// hz=100), and 0 ticks means no timeout: keep well above one tick.
	poll := max(opt.poll(), 20*time.Millisecond)
	tv := bpfTimeval{Sec: int64(poll / time.Second), Usec: int32(poll % time.Second / time.Microsecond)}
	if err := ioctlPtr(fd, biocSRTIMEOUT, unsafe.Pointer(&tv)); err != nil {
		return nil, fmt.Errorf("%s: read timeout: %w", dev, err)
	}
	dlt, err := unix.IoctlGetInt(fd, biocGDLT)
	if err != nil {
		return nil, fmt.Errorf("%s: link type of %s: %w", dev, l.attach, err)
	}
	if isPKTAP && dlt != dltPKTAP {
		// Without BIOCSWANTPKTAP a pktap interface gives DLT_RAW (12).
		return nil, fmt.Errorf("%s gives link type %d, not PKTAP (%d): the kernel ignored BIOCSWANTPKTAP", l.attach, dlt, dltPKTAP)
	}
	l.link = linkTypeOfDLT(uint32(dlt))
	if opt.Promiscuous && !isPKTAP {
		if err := ioctlPtr(fd, biocPROMISC, nil); err != nil {
			return nil, fmt.Errorf("promiscuous mode on %s: %w", l.attach, err)
		}
	}
	if !isPKTAP && opt.Filter != "" {
		if prog, err = CompileFilter(opt.Filter, l.link); err != nil {
			return nil, err
		}
		if err := setKernelFilter(fd, prog); err != nil {
			return nil, fmt.Errorf("attach filter on %s: %w", l.attach, err)
		}
	}
	ok = true
	return l, nil
}

// openBPFDevice opens the first free /dev/bpfN. Opening the last existing
// device makes the kernel clone the next one, up to BPF_MAX_DEVICES.
func openBPFDevice() (int, string, error) {
	for i := 0; i < bpfMaxDevices; i++ {
		dev := "/dev/bpf" + strconv.Itoa(i)
		fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return fd, dev, nil
		case errors.Is(err, unix.EBUSY):
			continue
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return -1, "", errors.New("open /dev/bpf: permission denied (run as root, or give your user read access to /dev/bpf*)")
		case errors.Is(err, unix.ENOENT) && i > 0:
			return -1, "", fmt.Errorf("open /dev/bpf: all %d devices are busy", i)
		default:
			return -1, "", fmt.Errorf("open %s: %w", dev, err)
		}
	}
	return -1, "", fmt.Errorf("open /dev/bpf: all %d devices are busy", bpfMaxDevices)
}

// setKernelFilter installs a program with BIOCSETF.
func setKernelFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return nil
	}
	if len(prog) > bpfMaxInsns {
		return fmt.Errorf("the filter compiles to %d instructions; macOS BPF accepts at most %d", len(prog), bpfMaxInsns)
	}
	p := bpfProgram{Len: uint32(len(prog)), Insns: unsafe.Pointer(&prog[0])}
	err := ioctlPtr(fd, biocSETF, unsafe.Pointer(&p))
	runtime.KeepAlive(prog)
	return err
}

// ioctlPtr is ioctl(2) with a pointer argument. golang.org/x/sys/unix exports
// no such call on darwin (only int-valued ones, IoctlSetPointerInt and
// IoctlGetInt, which are used where they fit), so this goes through
// unix.Syscall, which on darwin issues the system call directly rather than
// through libSystem (Apple does not promise that interface, but ioctl is
// syscall 54 in xnu's syscalls.master as in every BSD, and Go itself used
// direct system calls on macOS until Go 1.11). The object p points to is
// kept alive by the conversion in the argument list.
func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

func (l *bpfLive) Next(fr *Frame) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	didRead := false
	for {
		hdr, data, ok, err := l.recs.Next()
		if err != nil {
			return fmt.Errorf("read %s: %w", l.iface, err)
		}
		if ok {
			if l.filter != nil {
				pkt, okPkt := pktapNetwork(data)
				if !okPkt || !l.filter.Match(pkt) {
					continue
				}
			}
			// Whole-struct assignment: fields this backend does not fill
			// (the process metadata of pcapng files) are reset, not stale.
			// For PKTAP the decoder reads the process from the header.
			*fr = Frame{
				Data:      data,
				Timestamp: hdr.Time(),
				WireLen:   int(max(hdr.DataLen, hdr.CapLen)),
				LinkType:  l.link,
			}
			return nil
		}
		if didRead {
			// A whole buffer failed the user-space filter: return so that
			// the caller's timers run, as a kernel filter would let it.
			return ErrTimeout
		}
		n, err := unix.Read(l.fd, l.buf)
		didRead = true
		switch {
		case err == nil && n > 0:
			l.recs.Reset(l.buf[:n])
		case err == nil, errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			return ErrTimeout // the read timeout expired with nothing captured
		case errors.Is(err, unix.ENXIO):
			return fmt.Errorf("read %s: the interface %s went away", l.dev, l.attach)
		default:
			return fmt.Errorf("read %s (%s): %w", l.dev, l.attach, err)
		}
	}
}

// Stats returns the kernel's counters (BIOCGSTATS): packets that reached this
// descriptor (for PKTAP, before the user-space filter) and packets dropped
// because the buffer was full.
func (l *bpfLive) Stats() (LiveStats, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return LiveStats{}, ErrClosed
	}
	var st bpfStat
	if err := ioctlPtr(l.fd, biocGSTATS, unsafe.Pointer(&st)); err != nil {
		return LiveStats{}, fmt.Errorf("%s: counters: %w", l.dev, err)
	}
	l.statMu.Lock()
	defer l.statMu.Unlock()
	// The kernel truncates its 64-bit counts to u_int; adding the differences
	// keeps the totals right across a wrap if Stats runs at least once per
	// 2^32 packets.
	l.recv += uint64(st.Recv - l.lastRecv)
	l.drop += uint64(st.Drop - l.lastDrop)
	l.lastRecv, l.lastDrop = st.Recv, st.Drop
	return LiveStats{Received: l.recv, Dropped: l.drop}, nil
}

func (l *bpfLive) Backend() string { return "bpf" }

// Close closes the device and destroys a pktap interface created by
// OpenLive. It waits for a Next in progress, at most one poll interval.
func (l *bpfLive) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := unix.Close(l.fd)
	if l.created {
		if e := destroyPKTAP(l.attach); e != nil && err == nil {
			err = e
		}
	}
	return err
}
