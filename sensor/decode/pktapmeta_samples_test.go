package decode

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"exfilwatch/sensor/capture"
)

var appleSamples = []string{
	"apple_tcpdump_radar-88502733",
	"apple_tcpdump_radar-101007576-iperf",
	"apple_tcpdump_radar-74957353",
	"apple_tcpdump_radar-79792659",
}

// tcpdumpLine is what a line of Apple's expected tcpdump output says about
// addresses and ports.
type tcpdumpLine struct {
	src, dst         netip.Addr
	srcPort, dstPort int // -1 when tcpdump printed none (ICMPv6)
	text             string
}

func splitAddrPort(s string) (netip.Addr, int, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, -1, true
	}
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	a, err := netip.ParseAddr(s[:i])
	port, perr := strconv.Atoi(s[i+1:])
	return a, port, err == nil && perr == nil
}

func parseTcpdump(t *testing.T, path string) []tcpdumpLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []tcpdumpLine
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		i := 0
		for i < len(f) && f[i] != "IP" && f[i] != "IP6" {
			i++
		}
		if i+3 >= len(f) || f[i+2] != ">" {
			t.Fatalf("cannot read tcpdump line %q", l)
		}
		src, sp, ok1 := splitAddrPort(f[i+1])
		dst, dp, ok2 := splitAddrPort(strings.TrimSuffix(f[i+3], ":"))
		if !ok1 || !ok2 {
			t.Fatalf("cannot read addresses in %q", l)
		}
		out = append(out, tcpdumpLine{src, dst, sp, dp, l})
	}
	return out
}

// TestAppleSamplesDecode replays Apple's pcapng samples through capture and
// DecodeFrame: every packet is decoded with the link type of its own
// interface (NULL for utun3, lo0 and pdp_ip0, Ethernet for en0, raw IP for
// radar-79792659), its addresses and ports equal what Apple's tcpdump
// printed (*.expected.txt), and p.Meta carries the frame's metadata.
func TestAppleSamplesDecode(t *testing.T) {
	dir := sampleDir(t)
	for _, name := range appleSamples {
		t.Run(name, func(t *testing.T) {
			exp := parseTcpdump(t, filepath.Join(dir, name+".expected.txt"))
			i := 0
			withProc := 0
			n := readFrames(t, filepath.Join(dir, name+".pcapng"), func(fr *capture.Frame, p *Packet, r Reason) {
				defer func() { i++ }()
				if i >= len(exp) {
					return
				}
				e := exp[i]
				if p.Meta != fr.Meta {
					t.Errorf("packet %d: meta %+v, frame had %+v", i+1, p.Meta, fr.Meta)
				}
				if p.Meta.HasProc {
					withProc++
				}
				if e.srcPort < 0 { // ICMPv6
					if r != ReasonOtherProto {
						t.Errorf("packet %d (%s): %v", i+1, e.text, r)
					}
					return
				}
				if r != OK || p.SrcAddr() != e.src || p.DstAddr() != e.dst || int(p.SrcPort) != e.srcPort || int(p.DstPort) != e.dstPort {
					t.Errorf("packet %d: %v %v:%d > %v:%d; tcpdump: %s", i+1, r, p.SrcAddr(), p.SrcPort, p.DstAddr(), p.DstPort, e.text)
				}
			})
			if n != len(exp) {
				t.Errorf("%d packets, tcpdump printed %d", n, len(exp))
			}
			t.Logf("%d packets, %d attributed to a process", n, withProc)
		})
	}
}

// TestLoopbackDedupIperf: in the iperf sample every datagram on lo0 is
// captured twice (out, then in); the deduplicator keeps 12 of 24, always
// the outbound copy, attributed to the sending process.
func TestLoopbackDedupIperf(t *testing.T) {
	path := filepath.Join(sampleDir(t), "apple_tcpdump_radar-101007576-iperf.pcapng")
	dd := NewLoopbackDedup(0, 0)
	kept := 0
	i := 0
	readFrames(t, path, func(fr *capture.Frame, p *Packet, r Reason) {
		defer func() { i++ }()
		if r != OK {
			t.Fatalf("packet %d: %v", i+1, r)
		}
		dup := dd.Duplicate(p)
		if dup != (i%2 == 1) || dup != (p.Meta.Direction == capture.DirIn) {
			t.Errorf("packet %d (%v): duplicate %v", i+1, p.Meta.Direction, dup)
		}
		if !dup {
			kept++
			sender := int32(53245) // client 127.0.0.1:50160
			if p.SrcPort == 5001 {
				sender = 53147 // the server's reply
			}
			if p.Meta.PID != sender {
				t.Errorf("packet %d kept, attributed to %d, sender %d", i+1, p.Meta.PID, sender)
			}
		}
	})
	if kept != 12 || dd.Duplicates != 12 {
		t.Errorf("kept %d, duplicates %d", kept, dd.Duplicates)
	}
}

// TestLoopbackDedupRules: retransmissions count again, copies must be in
// the opposite direction, on a loopback interface, within the window; the
// maps stay bounded.
func TestLoopbackDedupRules(t *testing.T) {
	pkt := func(ifname string, dir capture.Direction, at time.Duration, payload string) *Packet {
		p := &Packet{Timestamp: ts0.Add(at), Proto: ProtoTCP, SrcPort: 1, DstPort: 2, Seq: 10, Payload: []byte(payload)}
		p.Meta.IfName, p.Meta.Direction = ifname, dir
		return p
	}
	out, in := capture.DirOut, capture.DirIn
	dd := NewLoopbackDedup(time.Second, 0)
	steps := []struct {
		p    *Packet
		want bool
	}{
		{pkt("lo0", out, 0, "a"), false},
		{pkt("lo0", in, 1, "a"), true},
		{pkt("lo0", out, 2, "a"), false}, // retransmission
		{pkt("lo0", out, 3, "a"), false}, // and another, before either copy
		{pkt("lo0", in, 4, "a"), true},
		{pkt("lo0", in, 5, "a"), true},
		{pkt("lo0", in, 6, "a"), false},             // no original left: counted
		{pkt("lo0", out, 7, "b"), false},            // other payload
		{pkt("lo0", out, 8, "c"), false},            //
		{pkt("lo0", out, 9, "c"), false},            // same direction twice: both count
		{pkt("en0", out, 10, "d"), false},           // not loopback
		{pkt("en0", in, 11, "d"), false},            //
		{pkt("lo0", 0, 12, "e"), false},             // direction unknown
		{pkt("lo0", 0, 13, "e"), false},             //
		{pkt("lo0", out, 14, "f"), false},           //
		{pkt("lo0", in, 3*time.Second, "f"), false}, // past the window
	}
	for i, s := range steps {
		if got := dd.Duplicate(s.p); got != s.want {
			t.Errorf("step %d: %v, want %v", i, got, s.want)
		}
	}
	if !IsLoopback("lo") || !IsLoopback("lo0") || IsLoopback("lo0x") || IsLoopback("utun3") || IsLoopback("") {
		t.Error("IsLoopback")
	}

	small := NewLoopbackDedup(time.Hour, 100)
	for i := range 10000 {
		p := pkt("lo0", out, time.Duration(i), "")
		p.Seq = uint32(i)
		small.Duplicate(p)
	}
	if len(small.cur) > 100 || len(small.prev) > 100 {
		t.Errorf("maps grew to %d and %d", len(small.cur), len(small.prev))
	}
}

// TestLoopbackDedupAllocs: steady state allocates nothing.
func TestLoopbackDedupAllocs(t *testing.T) {
	dd := NewLoopbackDedup(time.Second, 0)
	p := &Packet{Timestamp: ts0, Proto: ProtoUDP, Payload: bytes.Repeat([]byte{1}, 1400)}
	p.Meta.IfName = "lo0"
	i := 0
	step := func() {
		p.Meta.Direction = capture.Direction(1 + i%2)
		binary.BigEndian.PutUint32(p.Payload, uint32(i/2%64))
		p.Timestamp = ts0.Add(time.Duration(i) * time.Microsecond)
		dd.Duplicate(p)
		i++
	}
	for range 1000 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}
