// Package evidence keeps, for each finding, what a responder needs to check
// it without the sensor: the packets of the finding's flows from their first
// packet (packets.pcapng), the host records that qualified (host.json) and
// the finding itself (finding.json), in a directory named by the finding id.
//
// Packets have to be kept before anyone knows they matter: a finding is made
// after the upload ended, when its flow may already have left the flow
// table. The Store is the sensor's PacketTap: it keeps a bounded ring per
// flow (the first MaxFlowHead bytes and the most recent MaxFlowTail bytes,
// so the start and the end of a long upload both survive), keeps the rings
// of closed flows for Linger, and bounds all rings together by
// MaxBufferedBytes, evicting closed rings first (oldest close first), then
// the least recently active open ones. Every drop is counted.
//
// Findings arrive with the detector's lock held: Finding only snapshots the
// rings and hands the work to one writer goroutine through a bounded queue.
// A finding whose flows are still open waits (up to FinalizeWait) for them
// to close, so that the response and the close are in the capture too.
package evidence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
)

// File names inside a finding's directory.
const (
	PacketsFile = "packets.pcapng"
	HostFile    = "host.json"
	FindingFile = "finding.json"
)

// tmpPrefix marks a finding directory being written; one left by a crash is
// removed at start.
const tmpPrefix = ".tmp-"

// Options configure a Store. Zero values mean the defaults.
type Options struct {
	// Dir is the evidence directory (created 0700 if missing). Required.
	Dir string
	// MaxFlowHead is how many bytes of each flow are kept from its first
	// packet on (default 256 KiB); MaxFlowTail how many of its most recent
	// packets after that (default 1 MiB). Packets in between are counted
	// (PacketsOmitted) and noted in the capture, not kept. Each packet
	// costs its captured length plus 64 bytes.
	MaxFlowHead int
	MaxFlowTail int
	// MaxBufferedBytes bounds the rings of all flows together (default
	// 64 MiB).
	MaxBufferedBytes int
	// Linger is how long a closed flow's packets are kept, in packet time
	// (default 10s): findings come about a second after an upload ends.
	Linger time.Duration
	// FinalizeWait is how long a finding whose flows are still open waits
	// for them to close before it is written, wall clock (default 2s).
	FinalizeWait time.Duration
	// MaxPending bounds the findings waiting for their flows (default 32);
	// past it a finding is written at once.
	MaxPending int
	// QueueLen bounds the findings waiting for the writer (default 16);
	// past it a finding's evidence is dropped (FindingsDropped).
	QueueLen int
	// MaxDirBytes and MaxFindings bound the evidence directory (defaults
	// 1 GiB and 1000 findings); the oldest finding directories go first.
	// The newest one is always kept, even alone over MaxDirBytes.
	MaxDirBytes int64
	MaxFindings int
	// Application names the writer in the capture's section header.
	Application string
	Log         zerolog.Logger
}

func (o *Options) defaults() {
	if o.MaxFlowHead <= 0 {
		o.MaxFlowHead = 256 << 10
	}
	if o.MaxFlowTail <= 0 {
		o.MaxFlowTail = 1 << 20
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	if o.Linger <= 0 {
		o.Linger = 10 * time.Second
	}
	if o.FinalizeWait <= 0 {
		o.FinalizeWait = 2 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 32
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 16
	}
	if o.MaxDirBytes <= 0 {
		o.MaxDirBytes = 1 << 30
	}
	if o.MaxFindings <= 0 {
		o.MaxFindings = 1000
	}
	if o.Application == "" {
		o.Application = "exfilwatch"
	}
}

// Stats are the store's counters.
type Stats struct {
	Packets        uint64 `json:"packets"`         // packets kept (ever)
	PacketsOmitted uint64 `json:"packets_omitted"` // dropped between a flow's head and tail
	BytesOmitted   uint64 `json:"bytes_omitted"`
	Buffered       int    `json:"buffered"` // bytes held in rings now
	PeakBuffered   int    `json:"peak_buffered"`
	Rings          int    `json:"rings"` // flows with a ring now
	// RingsExpired left after Linger; RingsEvictedClosed and
	// RingsEvictedOpen were dropped for MaxBufferedBytes (an open flow's
	// later packets start a new ring marked as missing its start).
	RingsExpired       uint64 `json:"rings_expired"`
	RingsEvictedClosed uint64 `json:"rings_evicted_closed"`
	RingsEvictedOpen   uint64 `json:"rings_evicted_open"`
	// Findings received; written; Failed could not be written (a file
	// system error, logged); Dropped found the queue full or the store
	// closed. FlowsMissing are finding flows of which no packet was left.
	Findings        uint64 `json:"findings"`
	FindingsWritten uint64 `json:"findings_written"`
	FindingsFailed  uint64 `json:"findings_failed"`
	FindingsDropped uint64 `json:"findings_dropped"`
	FlowsMissing    uint64 `json:"flows_missing"`
	// The evidence directory: finding directories and bytes now, and the
	// directories removed for MaxFindings / MaxDirBytes.
	Dirs        int    `json:"dirs"`
	DirBytes    int64  `json:"dir_bytes"`
	DirsEvicted uint64 `json:"dirs_evicted"`
}

type jobFlow struct {
	id   uint64
	r    *ring // the ring when the finding came (nil: none)
	snap flowPackets
}

type job struct {
	f        *detect.Finding
	flows    []jobFlow
	deadline time.Time
}

type dirEntry struct {
	name  string
	bytes int64
	mod   time.Time
}

// Store keeps packets per flow and writes findings' evidence. Packet and
// FlowClosed come from the sensor's goroutine, Finding from the detector's;
// all are safe for concurrent use and never block on the disk.
type Store struct {
	opt Options

	mu      sync.Mutex
	rings   map[uint64]*ring
	open    list // least recently active at the back
	closed  list // oldest close at the back
	seq     uint64
	maxID   uint64
	now     time.Time // latest packet time
	pending []*job
	done    bool
	st      Stats

	q      chan *job
	exited chan struct{}
	dirs   []dirEntry // the writer's index of the directory, oldest first
}

// New opens the evidence directory, applies its bounds to what a previous
// run left, and starts the writer.
func New(opt Options) (*Store, error) {
	opt.defaults()
	if opt.Dir == "" {
		return nil, errors.New("evidence: no directory")
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if fi, err := os.Stat(opt.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opt.Log.Warn().Str("dir", opt.Dir).Str("mode", fi.Mode().Perm().String()).
			Msg("evidence directory is readable by other users: it holds captured uploads")
	}
	s := &Store{opt: opt, rings: map[uint64]*ring{}, q: make(chan *job, opt.QueueLen), exited: make(chan struct{})}
	if err := s.scan(); err != nil {
		return nil, err
	}
	s.enforceDirBounds()
	go s.worker()
	return s, nil
}

// scan indexes the finding directories already there.
func (s *Store) scan() error {
	ents, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(s.opt.Dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			os.RemoveAll(p) // a write cut short by a crash
			continue
		}
		if !validID(name) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		s.dirs = append(s.dirs, dirEntry{name: name, bytes: dirSize(p), mod: fi.ModTime()})
	}
	sort.SliceStable(s.dirs, func(i, j int) bool { return s.dirs[i].mod.Before(s.dirs[j].mod) })
	s.mu.Lock()
	s.syncDirStats()
	s.mu.Unlock()
	return nil
}

func dirSize(p string) int64 {
	var n int64
	ents, _ := os.ReadDir(p)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// validID keeps a finding id usable as one path element.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Packet keeps a copy of one frame of flow flowID (sensor.PacketTap).
func (s *Store) Packet(flowID uint64, fr *capture.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fr.Timestamp.After(s.now) {
		s.now = fr.Timestamp
		s.expire()
	}
	r := s.rings[flowID]
	if r == nil {
		// Ids grow with each new flow and a flow's first packet is shown
		// first: an id not above the highest seen lost its ring earlier.
		r = &ring{id: flowID, partial: flowID <= s.maxID}
		s.maxID = max(s.maxID, flowID)
		s.rings[flowID] = r
		s.open.pushFront(r)
		s.account(ringOverhead)
	} else if !r.closed {
		s.open.moveToFront(r)
	}
	s.seq++
	before := r.omitted
	beforeBytes := r.omitBytes
	s.account(r.add(frameToPkt(s.seq, fr), s.opt.MaxFlowHead, s.opt.MaxFlowTail))
	s.st.Packets++
	s.st.PacketsOmitted += r.omitted - before
	s.st.BytesOmitted += r.omitBytes - beforeBytes
	s.shed(r)
}

// FlowClosed starts flowID's linger (sensor.PacketTap).
func (s *Store) FlowClosed(flowID uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rings[flowID]; r != nil && !r.closed {
		r.closed, r.closedAt = true, s.now
		s.open.remove(r)
		s.closed.pushFront(r)
	}
	if len(s.pending) > 0 {
		s.finishClosed(flowID)
	}
	s.expire()
}

func (s *Store) account(delta int) {
	s.st.Buffered += delta
	s.st.PeakBuffered = max(s.st.PeakBuffered, s.st.Buffered)
}

func (s *Store) drop(r *ring) {
	if r.closed {
		s.closed.remove(r)
	} else {
		s.open.remove(r)
	}
	delete(s.rings, r.id)
	s.account(-r.bytes())
}

// expire drops closed rings past their linger.
func (s *Store) expire() {
	for r := s.closed.back; r != nil && s.now.Sub(r.closedAt) > s.opt.Linger; r = s.closed.back {
		s.drop(r)
		s.st.RingsExpired++
	}
}

// shed keeps the rings under MaxBufferedBytes: closed flows first, then the
// least recently active open ones, never keep (the flow being added to).
func (s *Store) shed(keep *ring) {
	for s.st.Buffered > s.opt.MaxBufferedBytes {
		if r := s.closed.back; r != nil {
			s.drop(r)
			s.st.RingsEvictedClosed++
			continue
		}
		r := s.open.back
		if r == keep {
			r = r.prev
		}
		if r == nil {
			return
		}
		s.drop(r)
		s.st.RingsEvictedOpen++
	}
}

// Finding snapshots the packets of f's flows and queues f's evidence. It is
// called with the detector's lock held and does no I/O (detect.FindingSink).
func (s *Store) Finding(f *detect.Finding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Findings++
	if s.done {
		s.st.FindingsDropped++
		return
	}
	j := &job{f: f}
	open := false
	seen := map[uint64]bool{}
	for _, id := range f.Upload.FlowIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		jf := jobFlow{id: id, r: s.rings[id]}
		if jf.r != nil {
			jf.snap = jf.r.snapshot()
			open = open || !jf.r.closed
		} else {
			jf.snap = flowPackets{id: id, missing: true}
		}
		j.flows = append(j.flows, jf)
	}
	if open && len(s.pending) < s.opt.MaxPending {
		j.deadline = time.Now().Add(s.opt.FinalizeWait)
		s.pending = append(s.pending, j)
		return
	}
	s.finalize(j)
	s.enqueue(j)
}

// finalize takes the latest packets of each of j's flows whose ring is still
// the one the finding saw; an evicted ring leaves the snapshot taken then.
func (s *Store) finalize(j *job) {
	for i := range j.flows {
		jf := &j.flows[i]
		if jf.r != nil && s.rings[jf.id] == jf.r {
			jf.snap = jf.r.snapshot()
		}
	}
}

func (s *Store) flowsDone(j *job) bool {
	for _, jf := range j.flows {
		if r := s.rings[jf.id]; r != nil && r == jf.r && !r.closed {
			return false
		}
	}
	return true
}

// finishClosed queues the pending findings that only waited for flowID.
func (s *Store) finishClosed(flowID uint64) {
	kept := s.pending[:0]
	for _, j := range s.pending {
		has := false
		for _, jf := range j.flows {
			has = has || jf.id == flowID
		}
		if has && s.flowsDone(j) {
			s.finalize(j)
			s.enqueue(j)
			continue
		}
		kept = append(kept, j)
	}
	clear(s.pending[len(kept):])
	s.pending = kept
}

// due takes the pending findings past their deadline (all when force).
func (s *Store) due(now time.Time, force bool) []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*job
	kept := s.pending[:0]
	for _, j := range s.pending {
		if force || !now.Before(j.deadline) || s.flowsDone(j) {
			s.finalize(j)
			out = append(out, j)
			continue
		}
		kept = append(kept, j)
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	return out
}

// enqueue hands j to the writer without waiting (s.mu held).
func (s *Store) enqueue(j *job) {
	select {
	case s.q <- j:
	default:
		s.st.FindingsDropped++
		s.opt.Log.Warn().Str("finding", j.f.ID).Int("queue", s.opt.QueueLen).
			Msg("evidence not written: the writer is behind (queue full)")
	}
}

func (s *Store) worker() {
	defer close(s.exited)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case j, ok := <-s.q:
			if !ok {
				return
			}
			s.write(j)
		case now := <-tick.C:
			for _, j := range s.due(now, false) {
				s.write(j)
			}
		}
	}
}

// Close writes the findings still waiting for their flows, waits for the
// writer and stops it. Findings after Close are counted as dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	s.done = true
	s.mu.Unlock()
	// No sender is left once done is set: the queue can be fed and closed.
	for _, j := range s.due(time.Time{}, true) {
		s.q <- j
	}
	close(s.q)
	<-s.exited
	return nil
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Rings = len(s.rings)
	return st
}
