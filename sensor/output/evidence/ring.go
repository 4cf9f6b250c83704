package evidence

import (
	"time"

	"exfilwatch/sensor/capture"
)

// pktOverhead is what one kept packet costs beyond its bytes (its record
// and slice header), counted against MaxBufferedBytes so that a flood of
// tiny packets is bounded too.
const pktOverhead = 64

// ringOverhead is the fixed cost of one flow's ring.
const ringOverhead = 256

// pkt is one kept frame. data is a private copy, never written after it
// was made: a snapshot can share it with the ring without copying.
type pkt struct {
	seq   uint64 // arrival order over all flows, to merge flows back
	ts    time.Time
	wire  int
	link  uint32
	iface int
	data  []byte
}

func (p *pkt) cost() int { return len(p.data) + pktOverhead }

// ring keeps one flow's packets: every packet until the head is full (the
// handshake and the start of the upload: request line, headers, the start
// of the body, or the FTP commands), then the most recent ones up to the
// tail's size (the end of the upload, the response, the close). What falls
// between the two is counted, not kept.
type ring struct {
	id        uint64
	head      []pkt
	headBytes int
	tail      []pkt // FIFO: tail[tailStart:] are live
	tailStart int
	tailBytes int
	omitted   uint64 // packets dropped between head and tail
	omitBytes uint64
	// partial says the flow's start is missing: its ring was evicted for
	// the global bound while the flow went on.
	partial  bool
	closed   bool
	closedAt time.Time // packet time of the close

	prev, next *ring // in the store's open (LRU) or closed (FIFO) list
}

func (r *ring) bytes() int { return r.headBytes + r.tailBytes + ringOverhead }

// add keeps p and returns the change of the ring's cost.
func (r *ring) add(p pkt, maxHead, maxTail int) int {
	c := p.cost()
	if r.tailStart == len(r.tail) && r.headBytes+c <= maxHead {
		r.head = append(r.head, p)
		r.headBytes += c
		return c
	}
	r.tail = append(r.tail, p)
	r.tailBytes += c
	delta := c
	for r.tailBytes > maxTail && len(r.tail)-r.tailStart > 1 {
		old := &r.tail[r.tailStart]
		oc := old.cost()
		r.omitted++
		r.omitBytes += uint64(len(old.data))
		r.tailBytes -= oc
		delta -= oc
		*old = pkt{}
		r.tailStart++
	}
	// Slide the live part down once the dead prefix is the larger part, so
	// the slice does not grow without bound.
	if r.tailStart > 64 && r.tailStart*2 > len(r.tail) {
		n := copy(r.tail, r.tail[r.tailStart:])
		clear(r.tail[n:])
		r.tail = r.tail[:n]
		r.tailStart = 0
	}
	return delta
}

// snapshot returns the flow's kept packets in order. The packet records are
// copied, their bytes shared (they are never written again).
func (r *ring) snapshot() flowPackets {
	live := r.tail[r.tailStart:]
	out := flowPackets{id: r.id, omitted: r.omitted, omitBytes: r.omitBytes, partial: r.partial,
		pkts: make([]pkt, 0, len(r.head)+len(live))}
	out.pkts = append(out.pkts, r.head...)
	out.pkts = append(out.pkts, live...)
	return out
}

// flowPackets is what a finding's evidence holds of one flow.
type flowPackets struct {
	id        uint64
	pkts      []pkt
	omitted   uint64
	omitBytes uint64
	partial   bool
	missing   bool // no packet of this flow was kept (or all were evicted)
}

func frameToPkt(seq uint64, fr *capture.Frame) pkt {
	return pkt{seq: seq, ts: fr.Timestamp, wire: fr.WireLen, link: fr.LinkType, iface: fr.Interface,
		data: append([]byte(nil), fr.Data...)}
}

// list is an intrusive doubly linked list of rings, front = most recent.
type list struct{ front, back *ring }

func (l *list) pushFront(r *ring) {
	r.prev, r.next = nil, l.front
	if l.front != nil {
		l.front.prev = r
	}
	l.front = r
	if l.back == nil {
		l.back = r
	}
}

func (l *list) remove(r *ring) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.front = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.back = r.prev
	}
	r.prev, r.next = nil, nil
}

func (l *list) moveToFront(r *ring) {
	if l.front == r {
		return
	}
	l.remove(r)
	l.pushFront(r)
}
