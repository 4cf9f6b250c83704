//go:build linux

package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
)

// afpacketLive captures with a memory-mapped AF_PACKET ring (TPACKET_V3),
// pure Go: no libpcap needed.
type afpacketLive struct {
	tp     *afpacket.TPacket
	iface  string
	mu     sync.Mutex
	links  map[int]uint32 // interface index → link type, learnt lazily for "any"
	fixed  uint32         // the link type when bound to one interface
	closed bool
	// On the loopback interface AF_PACKET sees every packet twice, going
	// out and coming in, back to back: the second copy is dropped (libpcap
	// does the same with the packet type, which gopacket does not expose).
	loops    map[int]bool // interface index → is loopback
	lastLoop []byte
	LoopDups uint64
}

// OpenLive opens a live capture on an interface ("any" for all of them).
func OpenLive(iface string, opt LiveOptions) (Live, error) {
	if iface == "" {
		return nil, errors.New("no interface given")
	}
	buf := opt.BufferSize
	if buf <= 0 {
		buf = 32 << 20
	}
	const block = 1 << 20
	blocks := max(buf/block, 2)
	opts := []any{
		afpacket.OptFrameSize(1 << 16),
		afpacket.OptBlockSize(block),
		afpacket.OptNumBlocks(blocks),
		afpacket.OptPollTimeout(opt.poll()),
		// A TPACKET_V3 block reaches user space when it is full or this
		// old: keep it short, or a SYN waits tens of milliseconds and the
		// process that sent it may be gone before it can be looked up.
		afpacket.OptBlockTimeout(time.Millisecond),
		afpacket.OptAddVLANHeader(true),
		afpacket.TPacketVersion3,
	}
	l := &afpacketLive{iface: iface, links: map[int]uint32{}, loops: map[int]bool{}}
	if iface != "any" {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", iface, err)
		}
		opts = append(opts, afpacket.OptInterface(iface))
		l.fixed = linkTypeOf(ifc.Index, ifc.Name)
	}
	tp, err := afpacket.NewTPacket(opts...)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "operation not permitted") {
			return nil, fmt.Errorf("open AF_PACKET socket on %s: %w (run as root or grant CAP_NET_RAW)", iface, err)
		}
		return nil, fmt.Errorf("open AF_PACKET socket on %s: %w", iface, err)
	}
	l.tp = tp
	if opt.Promiscuous && iface != "any" {
		if err := tp.SetPromiscuous(true); err != nil {
			tp.Close()
			return nil, fmt.Errorf("promiscuous mode on %s: %w", iface, err)
		}
	}
	if opt.Filter != "" {
		lt := l.fixed
		if iface == "any" {
			lt = 1 // the kernel filter sees each interface's own frames; most are Ethernet
		}
		prog, err := CompileFilter(opt.Filter, lt)
		if err != nil {
			tp.Close()
			return nil, err
		}
		if err := tp.SetBPF(toRaw(prog)); err != nil {
			tp.Close()
			return nil, fmt.Errorf("attach filter: %w", err)
		}
	}
	return l, nil
}

func toRaw(p []bpf.RawInstruction) []bpf.RawInstruction { return p }

// linkTypeOf maps a Linux interface's ARPHRD type to the link type of the
// frames AF_PACKET (SOCK_RAW) gives for it.
func linkTypeOf(index int, name string) uint32 {
	if name == "" {
		if ifc, err := net.InterfaceByIndex(index); err == nil {
			name = ifc.Name
		}
	}
	b, err := os.ReadFile("/sys/class/net/" + name + "/type")
	if err != nil {
		return 1
	}
	t, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	switch t {
	case 1, 772: // ARPHRD_ETHER, ARPHRD_LOOPBACK (an Ethernet-like header)
		return 1
	case 65534, 776, 778, 823: // ARPHRD_NONE (tun, wireguard), SIT, IPGRE, IP6GRE: bare IP
		return 12
	}
	return 1
}

func (l *afpacketLive) Next(fr *Frame) error {
	for {
		err := l.next(fr)
		if err != nil || !l.isLoop(fr.Interface) {
			return err
		}
		if bytes.Equal(fr.Data, l.lastLoop) {
			l.lastLoop = l.lastLoop[:0]
			l.LoopDups++
			continue
		}
		l.lastLoop = append(l.lastLoop[:0], fr.Data...)
		return nil
	}
}

func (l *afpacketLive) isLoop(index int) bool {
	lo, ok := l.loops[index]
	if !ok {
		if ifc, err := net.InterfaceByIndex(index); err == nil {
			lo = ifc.Flags&net.FlagLoopback != 0
		}
		l.loops[index] = lo
	}
	return lo
}

func (l *afpacketLive) next(fr *Frame) error {
	data, ci, err := l.tp.ZeroCopyReadPacketData()
	if err != nil {
		if errors.Is(err, afpacket.ErrTimeout) {
			return ErrTimeout
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return fmt.Errorf("read %s: %w", l.iface, err)
	}
	fr.Data = data
	fr.Timestamp = ci.Timestamp
	fr.WireLen = ci.Length
	fr.Interface = ci.InterfaceIndex
	if l.fixed != 0 {
		fr.LinkType = l.fixed
	} else {
		lt, ok := l.links[ci.InterfaceIndex]
		if !ok {
			lt = linkTypeOf(ci.InterfaceIndex, "")
			l.links[ci.InterfaceIndex] = lt
		}
		fr.LinkType = lt
	}
	return nil
}

func (l *afpacketLive) Stats() (LiveStats, error) {
	_, v3, err := l.tp.SocketStats()
	if err != nil {
		return LiveStats{}, err
	}
	// gopacket accumulates the kernel counters, which reset on each read.
	return LiveStats{Received: uint64(v3.Packets()), Dropped: uint64(v3.Drops())}, nil
}

func (l *afpacketLive) Backend() string { return "afpacket" }

func (l *afpacketLive) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.tp.Close()
	return nil
}
