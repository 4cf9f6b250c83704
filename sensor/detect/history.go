package detect

import (
	"container/list"
	"time"

	"exfilwatch/attribution"
)

// The detector's memory of the host side: which processes existed (from
// file-access records, exec/fork/exit events and attributed flows) and which
// sensitive files each of them read. Processes are keyed by pid and told
// apart by start time or pidversion: pids are reused. Everything is bounded:
// processes by MaxProcesses (least recently active forgotten first), reads
// by MaxReadsPerProcess (oldest forgotten first), and reads older than the
// window are pruned as the clock advances.

// read is one sensitive file access remembered for the rule.
type read struct {
	Time   time.Time
	Path   string
	Class  string
	Access attribution.AccessKind
	Size   int64
	SHA256 [32]byte
	Hashed bool
	Source string
}

// proc is one process the detector knows of.
type proc struct {
	pid        int32
	pidVersion int32     // macOS audit-token pidversion; 0 when unknown
	start      time.Time // process start; zero when unknown
	seen       time.Time // first record of it (a lower bound of its start)
	exited     time.Time // zero while it runs (as far as we know)
	p          *attribution.Process
	// From an Endpoint Security exec event (macOS), when seen.
	exec        *attribution.ProcessEvent
	reads       []read
	elem        *list.Element
	lastTouched time.Time
}

// history holds the processes, bounded.
type history struct {
	byPID    map[int32][]*proc
	lru      *list.List // of *proc, most recently touched at the front
	maxProcs int
	maxReads int
	stats    *Stats
}

func newHistory(maxProcs, maxReads int, st *Stats) *history {
	return &history{byPID: map[int32][]*proc{}, lru: list.New(), maxProcs: maxProcs, maxReads: maxReads, stats: st}
}

// startTolerance is how far two sources' start times of one process may be
// apart: /proc start times have clock-tick (10 ms) precision and are
// converted through the boot time; libproc and ES report microseconds.
const startTolerance = time.Second

// find returns the process with this pid that matches the identity given
// (pidversion when both know it, else start time within tolerance) and, when
// neither is known, the one alive at t. nil when none.
func (h *history) find(pid, pidVersion int32, start, t time.Time) *proc {
	var best *proc
	for _, c := range h.byPID[pid] {
		switch {
		case pidVersion != 0 && c.pidVersion != 0:
			if c.pidVersion == pidVersion {
				return c
			}
		case !start.IsZero() && !c.start.IsZero():
			d := c.start.Sub(start)
			if d < 0 {
				d = -d
			}
			if d <= startTolerance {
				return c
			}
		default:
			// Not enough to tell instances apart: take the one alive at t,
			// the latest started.
			if c.aliveAt(t) && (best == nil || c.seenOrStart().After(best.seenOrStart())) {
				best = c
			}
		}
	}
	return best
}

func (c *proc) seenOrStart() time.Time {
	if !c.start.IsZero() {
		return c.start
	}
	return c.seen
}

// aliveAt: started (or first seen) no later than t, not exited before t.
// The start bound allows startTolerance for the sources' clocks.
func (c *proc) aliveAt(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	if s := c.seenOrStart(); !s.IsZero() && s.After(t.Add(startTolerance)) {
		return false
	}
	return c.exited.IsZero() || !c.exited.Before(t.Add(-startTolerance))
}

// upsert returns the process record for this identity, creating it, and
// completes what is known of it from p.
func (h *history) upsert(pid, pidVersion int32, p *attribution.Process, at time.Time) *proc {
	var start time.Time
	if p != nil {
		start = p.StartTime
		if pidVersion == 0 {
			pidVersion = p.PIDVersion
		}
	}
	c := h.find(pid, pidVersion, start, at)
	if c == nil {
		c = &proc{pid: pid, pidVersion: pidVersion, start: start, seen: at}
		h.byPID[pid] = append(h.byPID[pid], c)
		c.elem = h.lru.PushFront(c)
		h.bound()
	} else {
		h.lru.MoveToFront(c.elem)
	}
	if c.pidVersion == 0 {
		c.pidVersion = pidVersion
	}
	if c.start.IsZero() {
		c.start = start
	}
	if p != nil && (c.p == nil || richer(p, c.p)) {
		c.p = p
	}
	if c.seen.IsZero() || (!at.IsZero() && at.Before(c.seen)) {
		c.seen = at
	}
	c.lastTouched = at
	return c
}

// richer reports whether a describes a process better than b (arguments or
// an executable b lacks): the first description of a process caught at
// exit may be thin.
func richer(a, b *attribution.Process) bool {
	return (b.Executable == "" && a.Executable != "") || (len(b.Args) == 0 && len(a.Args) > 0) || (b.PGID == 0 && a.PGID != 0)
}

func (h *history) bound() {
	for h.lru.Len() > h.maxProcs {
		old := h.lru.Back().Value.(*proc)
		h.remove(old)
		h.stats.ProcessesEvicted++
	}
}

func (h *history) remove(c *proc) {
	h.lru.Remove(c.elem)
	list := h.byPID[c.pid]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.byPID, c.pid)
	} else {
		h.byPID[c.pid] = list
	}
}

// addRead remembers a sensitive read, dropping the oldest past the bound.
func (h *history) addRead(c *proc, r read) {
	if len(c.reads) >= h.maxReads {
		copy(c.reads, c.reads[1:])
		c.reads = c.reads[:len(c.reads)-1]
		h.stats.ReadsDropped++
	}
	c.reads = append(c.reads, r)
}

// prune forgets reads older than cutoff, and processes that exited before
// cutoff and hold no reads.
func (h *history) prune(cutoff time.Time) {
	for e := h.lru.Back(); e != nil; {
		prev := e.Prev()
		c := e.Value.(*proc)
		n := 0
		for _, r := range c.reads {
			if !r.Time.Before(cutoff) {
				c.reads[n] = r
				n++
			}
		}
		clear(c.reads[n:])
		c.reads = c.reads[:n]
		if n == 0 && !c.exited.IsZero() && c.exited.Before(cutoff) {
			h.remove(c)
		}
		e = prev
	}
}

// all calls fn for every process (no particular order).
func (h *history) all(fn func(*proc)) {
	for e := h.lru.Front(); e != nil; e = e.Next() {
		fn(e.Value.(*proc))
	}
}

// ppid and pgid of a known process (0 when unknown).
func (c *proc) ppid() int32 {
	if c.p != nil {
		return c.p.PPID
	}
	if c.exec != nil {
		return c.exec.PPID
	}
	return 0
}

func (c *proc) pgid() int32 {
	if c.p != nil {
		return c.p.PGID
	}
	return 0
}
