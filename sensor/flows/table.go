package flows

import (
	"time"

	"exfilwatch/protocols"
	"exfilwatch/sensor/decode"
)

// Handler receives what the table reassembles. Data's b aliases the packet
// buffer (or a reassembly buffer) and is only valid during the call.
type Handler interface {
	// Opened is called once when a flow is created, before any data.
	Opened(f *Flow)
	Data(f *Flow, dir protocols.Dir, b []byte, ts time.Time)
	Gap(f *Flow, dir protocols.Dir, n int64, ts time.Time)
	End(f *Flow, dir protocols.Dir, ts time.Time)
	// Closed is called once when the flow leaves the table; the flow's
	// counters are final.
	Closed(f *Flow)
}

// Limits bound the table's memory. Zero values mean the defaults.
type Limits struct {
	MaxFlows           int           // concurrent flows (default 100000)
	MaxBufferedPerFlow int           // out-of-order bytes per direction (default 4 MiB)
	MaxBufferedTotal   int           // out-of-order bytes over all flows (default 64 MiB)
	TCPIdleTimeout     time.Duration // default 5m
	UDPIdleTimeout     time.Duration // default 1m
	ClosedLinger       time.Duration // how long a closed TCP flow still absorbs late packets (default 1s)
}

func (l Limits) maxFlows() int {
	if l.MaxFlows > 0 {
		return l.MaxFlows
	}
	return 100000
}

func (l Limits) maxBufferedPerFlow() int {
	if l.MaxBufferedPerFlow > 0 {
		return l.MaxBufferedPerFlow
	}
	return 4 << 20
}

func (l Limits) maxBufferedTotal() int {
	if l.MaxBufferedTotal > 0 {
		return l.MaxBufferedTotal
	}
	return 64 << 20
}

func (l Limits) tcpIdle() time.Duration {
	if l.TCPIdleTimeout > 0 {
		return l.TCPIdleTimeout
	}
	return 5 * time.Minute
}

func (l Limits) udpIdle() time.Duration {
	if l.UDPIdleTimeout > 0 {
		return l.UDPIdleTimeout
	}
	return time.Minute
}

func (l Limits) linger() time.Duration {
	if l.ClosedLinger > 0 {
		return l.ClosedLinger
	}
	return time.Second
}

// Counters are the table's totals.
type Counters struct {
	Flows           uint64 // flows created
	TCPFlows        uint64
	UDPFlows        uint64
	Active          int
	PeakActive      int
	Evicted         uint64 // flows dropped because MaxFlows was reached
	BufferEvictions uint64 // flows whose buffered data was flushed for MaxBufferedTotal
	Buffered        int    // out-of-order bytes held now
	PeakBuffered    int
	ClosedBy        [CloseReused + 1]uint64
	// Orphans are TCP packets without payload or SYN that belong to no
	// known connection (an ACK or FIN retransmitted after the flow left the
	// table, keep-alives of a connection older than the capture): they open
	// no flow.
	Orphans uint64
}

// Table is the flow table. It is not safe for concurrent use.
type Table struct {
	lim     Limits
	h       Handler
	m       map[Key]*Flow
	head    *Flow // most recently active
	tail    *Flow // least recently active
	nextID  uint64
	nextChk time.Time
	free    []*Flow // closed flows kept for reuse
	C       Counters
}

// freeFlowsMax bounds the free list of Flow structs.
const freeFlowsMax = 1024

// NewTable returns an empty table that reports to h.
func NewTable(lim Limits, h Handler) *Table {
	return &Table{lim: lim, h: h, m: make(map[Key]*Flow, 1024)}
}

func keyOf(p *decode.Packet) (Key, Endpoint, Endpoint) {
	src := Endpoint{Addr: p.Src, Port: p.SrcPort}
	dst := Endpoint{Addr: p.Dst, Port: p.DstPort}
	if compareEndpoints(src, dst) <= 0 {
		return Key{Lo: src, Hi: dst, Proto: p.Proto}, src, dst
	}
	return Key{Lo: dst, Hi: src, Proto: p.Proto}, src, dst
}

// Packet accounts one decoded TCP or UDP packet and reassembles its payload.
func (t *Table) Packet(p *decode.Packet) {
	ts := p.Timestamp
	if ts.After(t.nextChk) {
		t.Expire(ts)
		t.nextChk = ts.Add(time.Second)
	}
	k, src, dst := keyOf(p)
	f := t.m[k]
	syn := p.Proto == decode.ProtoTCP && p.Flags&(decode.FlagSYN|decode.FlagACK) == decode.FlagSYN
	if f != nil && syn && f.reusedBy(src, p.Seq) {
		t.close(f, CloseReused)
		f = nil
	}
	if f == nil {
		if p.Proto == decode.ProtoTCP && len(p.Payload) == 0 && p.Flags&decode.FlagSYN == 0 {
			t.C.Orphans++
			return
		}
		f = t.create(k, p, src, dst)
	} else {
		t.touch(f)
	}
	side := f.sideOf(src)
	f.Last = ts
	f.packets[side]++
	f.bytes[side] += uint64(p.WireLen)
	if p.BadChecksum {
		f.BadChecksum++
	}
	if p.Proto != decode.ProtoTCP {
		if len(p.Payload) > 0 {
			f.half[side].Bytes += uint64(len(p.Payload))
		}
		return
	}
	if f.closed {
		// Late packets of a finished connection: only the last ACK matters.
		if p.Flags&decode.FlagACK != 0 {
			t.account(f.half[side^1].ack(p.Ack, ts, &f.dd[side^1]))
		}
	} else {
		t.tcp(f, side, p)
	}
	// A connection is done once both FINs are acknowledged, or reset:
	// it leaves the table at once, so that a burst of short connections
	// does not fill it with finished ones.
	if f.closed && (f.reason == CloseRST || f.half[0].finAcked && f.half[1].finAcked) {
		t.close(f, f.reason)
	}
}

// reusedBy reports whether a SYN from src starts a new connection on this
// 5-tuple rather than retransmitting the old one's.
func (f *Flow) reusedBy(src Endpoint, seq uint32) bool {
	if f.closed {
		return true
	}
	side := f.sideOf(src)
	h := &f.half[side]
	return side == 0 && f.SawSYN && h.started && seq+1 != h.isn()
}

func (h *half) isn() uint32 { return h.next - uint32(h.Bytes) - uint32(h.GapBytes) }

func (t *Table) tcp(f *Flow, side int, p *decode.Packet) {
	h := &f.half[side]
	out := &f.dd[side]
	other := side ^ 1
	seq := p.Seq
	if p.Flags&decode.FlagSYN != 0 {
		if !h.started {
			h.started = true
			h.next = seq + 1
		}
		seq++ // data in a SYN (TCP Fast Open) starts after it
	}
	delta := 0
	if p.Flags&decode.FlagACK != 0 {
		delta += f.half[other].ack(p.Ack, p.Timestamp, &f.dd[other])
	}
	if p.Flags&decode.FlagRST != 0 {
		delta += f.half[other].flush(p.Timestamp, &f.dd[other])
		delta += h.flush(p.Timestamp, out)
		t.account(delta)
		f.closed, f.reason = true, CloseRST
		return
	}
	if len(p.Payload) > 0 || p.Flags&decode.FlagFIN != 0 {
		delta += h.segment(seq, p.Payload, p.Flags&decode.FlagFIN != 0, p.Timestamp, t.lim.maxBufferedPerFlow(), out)
	}
	t.account(delta)
	if f.half[0].ended && f.half[1].ended {
		f.closed, f.reason = true, CloseFIN
	}
	if t.C.Buffered > t.lim.maxBufferedTotal() {
		t.shedBuffers(p.Timestamp)
	}
}

func (t *Table) account(delta int) {
	t.C.Buffered += delta
	if t.C.Buffered > t.C.PeakBuffered {
		t.C.PeakBuffered = t.C.Buffered
	}
}

// shedBuffers skips the holes of the least recently active flows that hold
// buffered data until the total is back under the limit.
func (t *Table) shedBuffers(ts time.Time) {
	for f := t.tail; f != nil && t.C.Buffered > t.lim.maxBufferedTotal(); f = f.prev {
		for d := range f.half {
			h := &f.half[d]
			if len(h.segs) == 0 {
				continue
			}
			t.C.BufferEvictions++
			before := h.buf
			for len(h.segs) > 0 {
				h.ForcedSkips++
				h.skipTo(h.segs[0].seq, ts, &f.dd[d])
			}
			h.checkFin(ts, &f.dd[d])
			t.account(h.buf - before)
		}
	}
}

func (t *Table) create(k Key, p *decode.Packet, src, dst Endpoint) *Flow {
	if len(t.m) >= t.lim.maxFlows() && t.tail != nil {
		// A finished flow only lingering for late packets goes quietly;
		// dropping a live one is counted.
		if !t.tail.closed {
			t.C.Evicted++
		}
		t.close(t.tail, CloseEvicted)
	}
	t.nextID++
	var f *Flow
	if n := len(t.free); n > 0 {
		f = t.free[n-1]
		t.free = t.free[:n-1]
		*f = Flow{}
	} else {
		f = &Flow{}
	}
	f.Key, f.ID, f.Proto, f.IPv6, f.First, f.Last, f.Tunnel = k, t.nextID, p.Proto, p.IPv6, p.Timestamp, p.Timestamp, p.Tunnel
	srcIsClient := true
	if p.Proto == decode.ProtoTCP && p.Flags&decode.FlagSYN != 0 {
		f.SawSYN = true
		srcIsClient = p.Flags&decode.FlagACK == 0
	} else {
		srcIsClient = guessClient(p)
	}
	if srcIsClient {
		f.side = [2]Endpoint{src, dst}
	} else {
		f.side = [2]Endpoint{dst, src}
	}
	f.dd[0] = dirDeliverer{h: t.h, f: f, side: protocols.ClientToServer}
	f.dd[1] = dirDeliverer{h: t.h, f: f, side: protocols.ServerToClient}
	t.m[k] = f
	t.pushFront(f)
	t.C.Flows++
	if p.Proto == decode.ProtoTCP {
		t.C.TCPFlows++
	} else {
		t.C.UDPFlows++
	}
	t.C.Active = len(t.m)
	if t.C.Active > t.C.PeakActive {
		t.C.PeakActive = t.C.Active
	}
	t.h.Opened(f)
	return f
}

// close flushes a flow, removes it and reports it.
func (t *Table) close(f *Flow, reason CloseReason) {
	if !f.closed { // a finished flow keeps its FIN or RST reason
		f.reason = reason
	}
	delta := 0
	for d := range f.half {
		if f.Proto == decode.ProtoTCP {
			delta += f.half[d].flush(f.Last, &f.dd[d])
		} else if !f.half[d].ended {
			f.half[d].ended = true
			f.dd[d].end(f.Last)
		}
	}
	t.account(delta)
	f.closed = true
	t.C.ClosedBy[f.reason]++
	delete(t.m, f.Key)
	t.unlink(f)
	t.C.Active = len(t.m)
	t.h.Closed(f)
	if len(t.free) < freeFlowsMax {
		for i := range f.half {
			clear(f.half[i].segs)
		}
		t.free = append(t.free, f)
	}
}

// Expire closes flows idle for longer than their timeout, and closed flows
// past their linger, as of now (a packet timestamp).
func (t *Table) Expire(now time.Time) {
	for f := t.tail; f != nil; {
		prev := f.prev
		idle := now.Sub(f.Last)
		switch {
		case f.closed && idle > t.lim.linger():
			t.close(f, f.reason)
		case f.Proto == decode.ProtoTCP && idle > t.lim.tcpIdle():
			t.close(f, CloseIdle)
		case f.Proto != decode.ProtoTCP && idle > t.lim.udpIdle():
			t.close(f, CloseIdle)
		case idle <= t.lim.linger():
			return // everything further up the list is more recent
		}
		f = prev
	}
}

// Flush closes every flow, oldest first: the end of a capture or a shutdown.
func (t *Table) Flush() {
	for t.tail != nil {
		f := t.tail
		t.close(f, CloseEnd)
	}
}

func (t *Table) pushFront(f *Flow) {
	f.prev, f.next = nil, t.head
	if t.head != nil {
		t.head.prev = f
	}
	t.head = f
	if t.tail == nil {
		t.tail = f
	}
}

func (t *Table) unlink(f *Flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		t.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		t.tail = f.prev
	}
	f.prev, f.next = nil, nil
}

func (t *Table) touch(f *Flow) {
	if t.head == f {
		return
	}
	t.unlink(f)
	t.pushFront(f)
}
