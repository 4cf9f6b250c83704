package sensor

import (
	"time"

	"exfilwatch/attribution"
	"exfilwatch/sensor/events"
)

// Events wait here, in order, for their connections' process lookups: the
// packet path never blocks on a lookup (a blocked capture loop drops
// packets). An event leaves when every lookup it needs has answered, or
// when AttributionWait has passed since it was ready (it then says
// lookup_timeout). Replay from a journal is always answered at once, so
// nothing waits there.

type pendingEvent struct {
	events.Record
	deadline time.Time
}

// maxPendingEvents bounds the queue: past it the oldest event leaves at
// once, unattributed if it must.
const maxPendingEvents = 65536

// resolve fills a connection's attribution if it can be known now.
func (s *Sensor) resolve(c *events.Conn, final bool) bool {
	if c == nil || s.attr == nil || c.FlowID == 0 || c.Attribution != nil {
		return true
	}
	r, ready := s.attr.Peek(c.FlowID)
	if ready {
		c.Attribution = r
		return true
	}
	if final {
		c.Attribution = &attribution.Result{Reason: attribution.ReasonTimeout}
		s.C.AttributionTimeouts++
		return true
	}
	return false
}

func (s *Sensor) ready(pe *pendingEvent, final bool) bool {
	a, b := pe.Conns()
	ra := s.resolve(a, final)
	rb := s.resolve(b, final)
	return ra && rb
}

// emit writes an event now, or queues it behind earlier ones.
func (s *Sensor) emit(pe *pendingEvent) {
	if len(s.pending) == 0 && s.ready(pe, false) {
		s.write(pe)
		return
	}
	pe.deadline = s.now.Add(s.cfg.attributionWait())
	if len(s.pending) >= maxPendingEvents {
		s.drain(true, 1)
	}
	s.pending = append(s.pending, *pe)
	s.C.EventsDeferred++
}

// drain writes the queued events that can go, in order. force writes up
// to n of them whatever their lookups say (n < 0: all).
func (s *Sensor) drain(force bool, n int) {
	i := 0
	for ; i < len(s.pending); i++ {
		pe := &s.pending[i]
		expired := !s.now.Before(pe.deadline)
		final := expired || (force && (n < 0 || i < n))
		if !s.ready(pe, final) {
			break
		}
		s.write(pe)
		*pe = pendingEvent{}
	}
	if i > 0 {
		rest := copy(s.pending, s.pending[i:])
		clear(s.pending[rest:])
		s.pending = s.pending[:rest]
	}
}

// waitPending gives the lookups of queued events their full time (used at
// shutdown), then writes everything.
func (s *Sensor) waitPending() {
	if s.attr == nil {
		s.drain(true, -1)
		return
	}
	for i := range s.pending {
		pe := &s.pending[i]
		a, b := pe.Conns()
		for _, c := range []*events.Conn{a, b} {
			if c != nil && c.Attribution == nil && c.FlowID != 0 {
				if r := s.attr.Result(c.FlowID, s.cfg.attributionWait()); r != nil {
					c.Attribution = r
				}
			}
		}
	}
	s.drain(true, -1)
}

func (s *Sensor) write(pe *pendingEvent) { pe.Deliver(s.sink) }
