//go:build pcap && cgo

package capture

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// The libpcap backend (gopacket/pcap, cgo), selected with
// OpenLiveBackend("pcap", …) in a build with -tags pcap. It is an
// alternative to the pure-Go backends for platforms without one and for
// filters compiled by libpcap itself rather than by the system's tcpdump.
//
// PKTAP (macOS, interface names starting with "pktap": "pktap",
// "pktap,all", "pktap,en0,utun3"): libpcap is asked for PKTAP headers
// (pcap_set_want_pktap) and creates the pktap interface itself. The filter
// is not handed to libpcap there: as in the native darwin backend, it is
// compiled once for raw IP (by libpcap, pcap_open_dead) and run in user
// space on the network-layer packet inside each PKTAP record. That behaves
// the same whichever libpcap is linked and whatever the inner link type,
// at the cost of link-layer primitives ("ether host", "arp", "vlan"), which
// fail to compile for raw IP with a one-line "bad filter" error.

// pcapSnapLen is the snapshot length: whole frames, as tcpdump's default.
const pcapSnapLen = 262144

// openPcap makes the pcap backend visible to OpenLiveBackend (backend.go).
func (builtins) openPcap(iface string, opt LiveOptions) (Live, error) {
	return openPcapLive(iface, opt)
}

// pcapLive is a live capture through a libpcap handle.
type pcapLive struct {
	// mu serializes every use of h: libpcap handles are not safe for
	// concurrent use. Next holds it at most about one poll interval (the
	// handle is non-blocking and gopacket waits with poll(2) and the
	// timeout), so Stats or Close from another goroutine waits that long.
	mu     sync.Mutex
	closed atomic.Bool
	h      *pcap.Handle
	iface  string
	link   uint32
	poll   time.Duration
	filter *Filter // PKTAP only: the filter, run on the packet inside each record

	last       [3]uint32 // libpcap's u_int counters at the last Stats (recv, drop, ifdrop)
	recv, drop uint64    // their sums, so that a 32-bit wrap is not taken for a reset
}

func openPcapLive(iface string, opt LiveOptions) (Live, error) {
	if iface == "" {
		return nil, errors.New("no interface given")
	}
	pktap := runtime.GOOS == "darwin" && strings.HasPrefix(iface, "pktap")
	l := &pcapLive{iface: iface, poll: opt.poll()}
	// Compile a user-space filter before touching the system: a typo must
	// not leave a pktap interface behind.
	if pktap && opt.Filter != "" {
		f, err := compilePcapRawFilter(opt.Filter)
		if err != nil {
			return nil, err
		}
		l.filter = f
	}

	in, err := pcap.NewInactiveHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("libpcap: %s: %w", iface, err)
	}
	// After a successful Activate the inactive handle owns nothing and
	// CleanUp does nothing.
	defer in.CleanUp()
	set := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("libpcap: %s: set %s: %w", iface, what, err)
		}
		return nil
	}
	if err := set("snapshot length", in.SetSnapLen(pcapSnapLen)); err != nil {
		return nil, err
	}
	// Immediate mode: a packet reaches Next when it arrives, not when a
	// buffer fills (a SYN must be seen while its process is still there).
	if err := set("immediate mode", in.SetImmediateMode(true)); err != nil {
		return nil, err
	}
	if size := pcapBufferSize(opt.BufferSize); size > 0 {
		if err := set("buffer size", in.SetBufferSize(size)); err != nil {
			return nil, err
		}
	}
	// A positive timeout makes gopacket put the handle in non-blocking mode
	// and wait at most this long for a packet: Next returns ErrTimeout then.
	if err := set("timeout", in.SetTimeout(l.poll)); err != nil {
		return nil, err
	}
	if err := set("promiscuous mode", in.SetPromisc(opt.Promiscuous && !pktap)); err != nil {
		return nil, err
	}
	if pktap {
		// A no-op except on darwin (gopacket pcap_notdarwin.go).
		if err := set("PKTAP headers", in.SetWantPktap(true)); err != nil {
			return nil, err
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, pcapActivateError(iface, err)
	}
	l.h = h
	l.link = linkTypeOfDLT(uint32(h.LinkType()))
	if opt.Filter != "" && !pktap {
		// Compile, then attach: a typo is reported as a bad filter, a
		// kernel refusal as such.
		insns, err := h.CompileBPFFilter(opt.Filter)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("bad filter %q: %s", opt.Filter, strings.TrimSpace(err.Error()))
		}
		if err := h.SetBPFInstructionFilter(insns); err != nil {
			h.Close()
			return nil, fmt.Errorf("attach filter on %s: %w", iface, err)
		}
	}
	return l, nil
}

// pcapBufferSize is the capture buffer to ask libpcap for: the one asked,
// else the native backend's default on Linux (32 MiB) and macOS (4 MiB),
// else 0 for libpcap's own default.
func pcapBufferSize(asked int) int {
	switch {
	case asked > 0:
		return min(asked, 1<<30)
	case runtime.GOOS == "linux":
		return 32 << 20
	case runtime.GOOS == "darwin":
		return 4 << 20
	}
	return 0
}

// pcapActivateError explains a failed pcap_activate. gopacket's error names
// the condition ("Permission Denied", "No Such Device", "Interface Not Up",
// "Error: <libpcap's message>"); its type is unexported, so only the text can
// be looked at.
func pcapActivateError(iface string, err error) error {
	msg := err.Error()
	hint := ""
	switch msg {
	case "No Such Device":
		msg = "no such interface"
	case "Interface Not Up":
		msg = "the interface is down"
	case "Permission Denied":
		msg = "permission denied"
		hint = " (run as root or grant CAP_NET_RAW; on macOS, read access to /dev/bpf*)"
	}
	return fmt.Errorf("libpcap: open %s: %s%s", iface, msg, hint)
}

// compilePcapRawFilter compiles a filter for raw IP packets (DLT_RAW, 12 on
// Linux and macOS) with libpcap, for the user-space Filter.
func compilePcapRawFilter(expr string) (*Filter, error) {
	insns, err := pcap.CompileBPFFilter(layers.LinkType(dltRawDarwin), pcapSnapLen, expr)
	if err != nil {
		return nil, fmt.Errorf("bad filter %q: %s", expr, strings.TrimSpace(err.Error()))
	}
	prog := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		prog[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return NewFilter(prog)
}

// Next returns the next frame; Frame.Data stays valid until the next call
// to Next or Close.
func (l *pcapLive) Next(fr *Frame) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var deadline time.Time
	for {
		if l.closed.Load() {
			return ErrClosed
		}
		data, ci, err := l.h.ZeroCopyReadPacketData()
		switch {
		case err == nil:
		case errors.Is(err, pcap.NextErrorTimeoutExpired):
			return ErrTimeout
		case errors.Is(err, io.EOF):
			// gopacket's answer for a closed handle.
			return ErrClosed
		case errors.Is(err, pcap.NextErrorReadError):
			return fmt.Errorf("read %s: %v", l.iface, l.h.Error())
		default:
			return fmt.Errorf("read %s: %w", l.iface, err)
		}
		if l.filter != nil {
			pkt, ok := pktapNetwork(data)
			if !ok || !l.filter.Match(pkt) {
				// Under a flood of non-matching packets, still return
				// ErrTimeout once per poll interval so that the caller's
				// timers run, as they would with a kernel filter.
				now := time.Now()
				if deadline.IsZero() {
					deadline = now.Add(l.poll)
				} else if now.After(deadline) {
					return ErrTimeout
				}
				continue
			}
		}
		// Whole-struct assignment: fields this backend does not fill (the
		// process metadata of pcapng files) are reset, not stale.
		*fr = Frame{
			Data:      data,
			Timestamp: ci.Timestamp,
			WireLen:   ci.Length,
			LinkType:  l.link,
			Interface: ci.InterfaceIndex,
		}
		return nil
	}
}

// Stats returns libpcap's counters (pcap_stats): Received is ps_recv (on
// Linux, packets that passed the kernel filter, including those dropped; on
// macOS, packets that reached the BPF descriptor; for PKTAP, before the
// user-space filter); Dropped is ps_drop (dropped because the buffer was
// full) plus ps_ifdrop (dropped by the interface or its driver, where the
// platform reports it). On Linux loopback every packet counts twice: the
// kernel hands the socket both the sent and the received copy, and libpcap
// drops the sent one in user space. libpcap keeps them in 32-bit counters; the sums here
// survive a wrap if Stats runs at least once per 2^32 packets.
func (l *pcapLive) Stats() (LiveStats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return LiveStats{}, ErrClosed
	}
	s, err := l.h.Stats()
	if err != nil {
		return LiveStats{}, fmt.Errorf("libpcap counters on %s: %w", l.iface, err)
	}
	cur := [3]uint32{uint32(s.PacketsReceived), uint32(s.PacketsDropped), uint32(s.PacketsIfDropped)}
	l.recv += uint64(cur[0] - l.last[0])
	l.drop += uint64(cur[1]-l.last[1]) + uint64(cur[2]-l.last[2])
	l.last = cur
	return LiveStats{Received: l.recv, Dropped: l.drop}, nil
}

func (l *pcapLive) Backend() string { return BackendPcap }

// Close closes the handle. It waits for a Next in progress, at most about one poll
// interval. Closing again does nothing.
func (l *pcapLive) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h.Close()
	return nil
}
