package flows

import (
	"time"

	"exfilwatch/protocols"
)

// Reassembly rules, one per case, so that every decoder sees the same bytes:
//
//   - In-order data (the segment starts at the next expected sequence number)
//     goes straight to the Handler from the packet buffer: no copy.
//   - Retransmitted data (entirely before the next expected byte) is dropped
//     and counted. A segment that overlaps what was delivered has its new tail
//     delivered: the first copy of a byte wins.
//   - Out-of-order data is copied into a per-direction list sorted by sequence
//     number. Where it overlaps bytes already buffered, the earlier-arrived
//     bytes win (the new segment is trimmed). Buffered data is delivered as
//     soon as the hole before it fills.
//   - A hole is skipped, and reported to the Handler as a gap of n bytes, when
//     the other side acknowledged data beyond it (the bytes crossed the wire
//     but the capture missed them), when the direction's buffer limit is
//     reached, when the total buffer limit evicts the flow's buffer, or when
//     the flow ends.
//   - A stream picked up mid-connection starts at the first segment seen.

// maxWindow bounds how far ahead of the next expected byte a segment may
// start and still be buffered; anything further is out of window (garbage or
// a different connection) and is counted and dropped.
const maxWindow = 1 << 30

// HalfStats are one direction's reassembly counters.
type HalfStats struct {
	Bytes        uint64 // unique payload bytes delivered, in order
	GapBytes     uint64 // bytes skipped because they were never captured
	Gaps         uint64 // holes skipped
	Retransmits  uint64 // segments that brought nothing new
	Overlaps     uint64 // segments that partly overlapped known data
	OutOfOrder   uint64 // segments buffered because they came early
	OutOfWindow  uint64 // segments too far from the stream to place
	ForcedSkips  uint64 // holes skipped because a buffer limit bit
	SegmentsSeen uint64
}

type segment struct {
	seq  uint32
	data []byte
}

type half struct {
	HalfStats
	started  bool
	next     uint32 // next expected sequence number
	acked    uint32 // highest ACK the other side sent for this direction
	ackSeen  bool
	fin      bool
	finSeq   uint32
	finAcked bool // the other side acknowledged the FIN
	ended    bool
	segs     []segment // out-of-order segments, sorted, non-overlapping
	buf      int       // bytes in segs
}

func seqDiff(a, b uint32) int64 { return int64(int32(a - b)) }

// deliverer is what a half hands bytes to: the Table, which forwards them to
// the Handler with the flow and direction.
type deliverer interface {
	data(b []byte, ts time.Time)
	gap(n int64, ts time.Time)
	end(ts time.Time)
}

// segment processes one TCP segment's payload (and FIN) in this direction.
// It returns how many bytes it added to or removed from the buffer.
func (h *half) segment(seq uint32, payload []byte, fin bool, ts time.Time, maxBuf int, out deliverer) (bufDelta int) {
	h.SegmentsSeen++
	if !h.started {
		h.started = true
		h.next = seq
	}
	if fin {
		end := seq + uint32(len(payload))
		if !h.fin || seqDiff(end, h.finSeq) > 0 {
			h.fin, h.finSeq = true, end
		}
	}
	before := h.buf
	if len(payload) > 0 {
		rel := seqDiff(seq, h.next)
		switch {
		case rel == 0:
			h.deliver(payload, ts, out)
			h.drain(ts, out)
		case rel < 0:
			if -rel >= int64(len(payload)) {
				h.Retransmits++
				break
			}
			h.Overlaps++
			h.deliver(payload[-rel:], ts, out)
			h.drain(ts, out)
		case rel > maxWindow:
			h.OutOfWindow++
		default:
			h.OutOfOrder++
			h.insert(seq, payload)
			// The other side already acknowledged the hole: the capture
			// lost it, waiting would not help.
			if h.ackSeen && seqDiff(h.acked, h.next) > 0 {
				h.skipTo(h.acked, ts, out)
			}
			for h.buf > maxBuf && len(h.segs) > 0 {
				h.ForcedSkips++
				h.skipTo(h.segs[0].seq, ts, out)
			}
		}
	}
	h.checkFin(ts, out)
	return h.buf - before
}

// ack records an acknowledgement the other side sent for this direction,
// and skips a hole the acknowledgement proves was lost by the capture.
func (h *half) ack(a uint32, ts time.Time, out deliverer) (bufDelta int) {
	if !h.ackSeen || seqDiff(a, h.acked) > 0 {
		h.acked, h.ackSeen = a, true
	}
	if h.fin && seqDiff(a, h.finSeq+1) >= 0 {
		h.finAcked = true
	}
	if !h.started || len(h.segs) == 0 || seqDiff(a, h.next) <= 0 {
		return 0
	}
	before := h.buf
	if seqDiff(a, h.segs[0].seq) >= 0 {
		h.skipTo(h.segs[0].seq, ts, out)
		h.checkFin(ts, out)
	}
	return h.buf - before
}

func (h *half) deliver(b []byte, ts time.Time, out deliverer) {
	if h.ended {
		return
	}
	h.next += uint32(len(b))
	h.Bytes += uint64(len(b))
	out.data(b, ts)
}

// skipTo declares the bytes up to seq lost, then delivers what became
// contiguous.
func (h *half) skipTo(seq uint32, ts time.Time, out deliverer) {
	n := seqDiff(seq, h.next)
	if n <= 0 {
		return
	}
	h.Gaps++
	h.GapBytes += uint64(n)
	h.next = seq
	if !h.ended {
		out.gap(n, ts)
	}
	h.drain(ts, out)
}

// drain delivers buffered segments that are now contiguous.
func (h *half) drain(ts time.Time, out deliverer) {
	for len(h.segs) > 0 {
		s := h.segs[0]
		rel := seqDiff(s.seq, h.next)
		if rel > 0 {
			return
		}
		h.segs = h.segs[1:]
		h.buf -= len(s.data)
		if -rel < int64(len(s.data)) {
			h.deliver(s.data[-rel:], ts, out)
		}
	}
	h.segs = nil
}

// insert buffers a copy of an early segment; bytes already buffered win.
func (h *half) insert(seq uint32, payload []byte) {
	// Trim against existing segments, possibly splitting the new one.
	type piece struct {
		seq  uint32
		data []byte
	}
	pieces := []piece{{seq, payload}}
	for _, s := range h.segs {
		sEnd := s.seq + uint32(len(s.data))
		var next []piece
		for _, p := range pieces {
			pEnd := p.seq + uint32(len(p.data))
			if seqDiff(pEnd, s.seq) <= 0 || seqDiff(p.seq, sEnd) >= 0 {
				next = append(next, p) // no overlap
				continue
			}
			h.Overlaps++
			if seqDiff(p.seq, s.seq) < 0 { // part before s
				next = append(next, piece{p.seq, p.data[:seqDiff(s.seq, p.seq)]})
			}
			if seqDiff(pEnd, sEnd) > 0 { // part after s
				next = append(next, piece{sEnd, p.data[seqDiff(sEnd, p.seq):]})
			}
		}
		pieces = next
		if len(pieces) == 0 {
			h.Retransmits++
			return
		}
	}
	for _, p := range pieces {
		own := make([]byte, len(p.data))
		copy(own, p.data)
		i := len(h.segs)
		for i > 0 && seqDiff(h.segs[i-1].seq, p.seq) > 0 {
			i--
		}
		h.segs = append(h.segs, segment{})
		copy(h.segs[i+1:], h.segs[i:])
		h.segs[i] = segment{seq: p.seq, data: own}
		h.buf += len(own)
	}
}

func (h *half) checkFin(ts time.Time, out deliverer) {
	if h.fin && !h.ended && len(h.segs) == 0 && seqDiff(h.next, h.finSeq) >= 0 {
		h.ended = true
		out.end(ts)
	}
}

// flush delivers everything buffered, skipping holes, then ends the
// direction. It is used on RST, eviction, idle timeout and end of capture.
func (h *half) flush(ts time.Time, out deliverer) (bufDelta int) {
	before := h.buf
	for len(h.segs) > 0 {
		h.skipTo(h.segs[0].seq, ts, out)
	}
	// Bytes the other side acknowledged, or that a FIN proves were sent,
	// crossed the wire even if the capture missed them.
	if h.started {
		last := h.next
		if h.ackSeen && seqDiff(h.acked, last) > 0 && seqDiff(h.acked, h.next) < maxWindow {
			last = h.acked
		}
		if h.fin && seqDiff(h.finSeq, last) > 0 {
			last = h.finSeq
		}
		if h.fin && seqDiff(last, h.finSeq) > 0 {
			last = h.finSeq // the ACK of a FIN counts the FIN itself
		}
		h.skipTo(last, ts, out)
	}
	if !h.ended {
		h.ended = true
		out.end(ts)
	}
	return h.buf - before
}

// dirDeliverer binds a flow and side to the Handler, translating the side
// into a client/server direction at call time (the flow may be swapped).
type dirDeliverer struct {
	h    Handler
	f    *Flow
	side protocols.Dir
}

func (d *dirDeliverer) dir() protocols.Dir {
	if d.f.swapped {
		return d.side ^ 1
	}
	return d.side
}

func (d *dirDeliverer) data(b []byte, ts time.Time) { d.h.Data(d.f, d.dir(), b, ts) }
func (d *dirDeliverer) gap(n int64, ts time.Time)   { d.h.Gap(d.f, d.dir(), n, ts) }
func (d *dirDeliverer) end(ts time.Time)            { d.h.End(d.f, d.dir(), ts) }
