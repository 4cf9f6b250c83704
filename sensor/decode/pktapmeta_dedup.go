package decode

import (
	"hash/maphash"
	"strings"
	"time"
)

// LoopbackDedup recognises the second copy of a loopback packet captured
// with pktap,all (or any capture that sees both directions of lo0): the
// kernel taps it once on output, attributed to the sender, and once on
// input, attributed to the receiver (reference §6; sample
// radar-101007576-iperf). Counting both doubles every loopback upload.
//
// A packet is a copy when an earlier packet on the same loopback interface,
// in the opposite direction and within Window, had the same IP-level
// content: addresses, ports, protocol, TCP sequence, acknowledgement, flags
// and window, and payload (its length and a hash of its bytes). Each copy
// pairs with one earlier packet only, so a retransmission (another out/in
// pair) is counted once more, as it should be. Frames without a known
// direction or not on a loopback interface (Meta.IfName "lo", "lo0", …)
// are never copies.
//
// Memory is bounded: entries live in two generations of at most
// MaxEntries each, rotated every Window of packet time, so an entry is
// forgotten between one and two Windows after it was seen, or earlier
// under load. Not safe for concurrent use; one pipeline owns one.
type LoopbackDedup struct {
	// Window is how long, in packet time, a copy may follow its original
	// (default 1s; the two taps of one packet are microseconds apart).
	Window time.Duration
	// MaxEntries bounds each generation (default 65536).
	MaxEntries int

	// Duplicates counts the copies recognised.
	Duplicates uint64

	seed      maphash.Seed
	cur, prev map[dedupKey]dedupVal
	rotateAt  time.Time
}

type dedupKey struct {
	ifname           string
	src, dst         [16]byte
	srcPort, dstPort uint16
	proto, flags     uint8
	seq, ack         uint32
	window           uint16
	plen             int
	phash            uint64
}

type dedupVal struct {
	dir uint8  // capture.Direction of the unmatched packets
	n   uint32 // how many are waiting for their copy
}

// NewLoopbackDedup returns a deduplicator with the given window and bound
// (zero values mean the defaults).
func NewLoopbackDedup(window time.Duration, maxEntries int) *LoopbackDedup {
	return &LoopbackDedup{Window: window, MaxEntries: maxEntries}
}

func (d *LoopbackDedup) window() time.Duration {
	if d.Window > 0 {
		return d.Window
	}
	return time.Second
}

func (d *LoopbackDedup) maxEntries() int {
	if d.MaxEntries > 0 {
		return d.MaxEntries
	}
	return 1 << 16
}

// IsLoopback reports whether an interface name is a loopback interface:
// "lo" followed by nothing or by digits (macOS lo0, Linux lo).
func IsLoopback(ifname string) bool {
	rest, ok := strings.CutPrefix(ifname, "lo")
	if !ok {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Duplicate reports whether p (a decoded TCP or UDP packet) is the second
// copy of a loopback packet already seen, and should not be counted again.
// p.Meta.IfName and p.Meta.Direction must be set (Apple pcapng or PKTAP).
// It allocates only when a generation map grows.
func (d *LoopbackDedup) Duplicate(p *Packet) bool {
	dir := uint8(p.Meta.Direction)
	if dir == 0 || !IsLoopback(p.Meta.IfName) {
		return false
	}
	if d.cur == nil {
		d.seed = maphash.MakeSeed()
		d.cur = make(map[dedupKey]dedupVal)
		d.prev = make(map[dedupKey]dedupVal)
	}
	if d.rotateAt.IsZero() {
		d.rotateAt = p.Timestamp.Add(d.window())
	}
	if p.Timestamp.After(d.rotateAt) || len(d.cur) >= d.maxEntries() {
		d.cur, d.prev = d.prev, d.cur
		clear(d.cur)
		if p.Timestamp.After(d.rotateAt.Add(d.window())) {
			clear(d.prev) // a whole window without loopback packets
		}
		d.rotateAt = p.Timestamp.Add(d.window())
	}
	k := dedupKey{ifname: p.Meta.IfName, src: p.Src, dst: p.Dst, srcPort: p.SrcPort, dstPort: p.DstPort, proto: p.Proto,
		flags: p.Flags, seq: p.Seq, ack: p.Ack, window: p.Window, plen: len(p.Payload), phash: maphash.Bytes(d.seed, p.Payload)}
	for _, m := range [2]map[dedupKey]dedupVal{d.cur, d.prev} {
		if v, ok := m[k]; ok && v.dir != dir && v.n > 0 {
			if v.n--; v.n == 0 {
				delete(m, k)
			} else {
				m[k] = v
			}
			d.Duplicates++
			return true
		}
	}
	v := d.cur[k]
	if v.dir != dir {
		v = dedupVal{dir: dir}
	}
	v.n++
	d.cur[k] = v
	return false
}
