// Package spool is a bounded on-disk queue of records that survives kill -9
// and power loss. sensor/output/README.md documents the format and the rules.
//
// Layout of a spool directory (0700):
//
//	seg-<first seq, 16 hex digits>.log   append-only segments (0600)
//	ack                                  the cursor: first seq not yet delivered
//	LOCK                                 flock'd by the process that has it open
//
// A segment is a run of frames: 4-byte little-endian payload length,
// 4-byte little-endian CRC32C (Castagnoli) of the payload, payload. A
// record's seq is the segment's first seq plus its index in the segment.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

const (
	frameHeader = 8

	// DefaultMaxBytes bounds the segment files of one spool.
	DefaultMaxBytes = 64 << 20
	// DefaultSegmentBytes is the size at which a segment is closed; it is
	// also the unit in which the oldest records are dropped.
	DefaultSegmentBytes = 4 << 20
	// DefaultMaxRecord bounds one record.
	DefaultMaxRecord = 1 << 20
	// DefaultSyncInterval is how often the committer fsyncs what was
	// appended since its last fsync (group commit).
	DefaultSyncInterval = 5 * time.Millisecond

	minSegmentBytes = 4 << 10
	segPrefix       = "seg-"
	segSuffix       = ".log"
	ackName         = "ack"
	ackTmpName      = "ack.tmp"
	lockName        = "LOCK"
)

var (
	// ErrEmpty is returned by Next when no durable record is waiting.
	ErrEmpty = errors.New("spool: empty")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Append for a record over MaxRecord.
	ErrTooLarge = errors.New("spool: record too large")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Options bound a spool. Zero values take the defaults.
type Options struct {
	// MaxBytes bounds the total size of the segment files. When an append
	// would pass it, whole segments are deleted, oldest first, delivered
	// or not.
	MaxBytes int64
	// SegmentBytes is the size at which the active segment is closed and a
	// new one started. It is clamped to MaxBytes/2 so that dropping one
	// segment always makes room.
	SegmentBytes int64
	// MaxRecord bounds one record (clamped to SegmentBytes - 8).
	MaxRecord int
	// SyncInterval is the group commit: Append only writes the record (a
	// kill -9 loses nothing, it is in the page cache) and a committer
	// fsyncs everything appended since its previous fsync, starting fsyncs
	// at most once per SyncInterval. A record is durable against power
	// loss at the latest SyncInterval plus the fsync time(s) after its
	// Append returned (see README.md), and Next returns only durable
	// records. 0 means DefaultSyncInterval; negative means every Append
	// waits for its own fsync (concurrent appends share one).
	SyncInterval time.Duration
	Log          zerolog.Logger
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBytes < 2*minSegmentBytes {
		o.MaxBytes = 2 * minSegmentBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes > o.MaxBytes/2 {
		o.SegmentBytes = o.MaxBytes / 2
	}
	if o.SegmentBytes < minSegmentBytes {
		o.SegmentBytes = minSegmentBytes
	}
	if o.MaxRecord <= 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if int64(o.MaxRecord) > o.SegmentBytes-frameHeader {
		o.MaxRecord = int(o.SegmentBytes - frameHeader)
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
}

// Stats are the spool's counters. Counters count since Open; Depth and
// DepthBytes are the current state.
type Stats struct {
	Appended     uint64 // records appended since Open (written; Unsynced of them not fsync'd yet)
	Unsynced     uint64 // records appended but not yet durable against power loss
	Syncs        uint64 // fsyncs of the active segment by appends and the committer
	SyncErrors   uint64 // failed fsyncs (the records wait for the next successful one)
	Acked        uint64 // records acknowledged since Open
	Dropped      uint64 // undelivered records deleted because the spool was full
	DroppedBytes uint64 // their frame bytes
	Corrupt      uint64 // torn or corrupt tails found and truncated (one per segment)
	Depth        uint64 // records not yet acknowledged
	DepthBytes   uint64 // bytes of segment files on disk (the figure MaxBytes bounds)
	Segments     int
}

type segment struct {
	first uint64
	count uint64
	size  int64
	path  string
}

func (g *segment) end() uint64 { return g.first + g.count }

// Spool is safe for concurrent use. Appends may come from many goroutines;
// the reader side (Next, Rewind, Ack) is meant for one consumer.
type Spool struct {
	dir  string
	opt  Options
	log  zerolog.Logger
	lock *os.File

	syncMu sync.Mutex // serialises fsyncs so concurrent appends share one

	mu     sync.Mutex
	segs   []*segment // oldest first; the last one is the active segment
	w      *os.File   // active segment, O_APPEND
	broken bool       // a failed write could not be undone: rotate before the next
	next   uint64     // seq of the next append
	synced uint64     // every seq <= synced is durable
	ack    uint64     // first seq not acknowledged
	total  int64      // bytes of all segments

	rseq uint64   // next seq Next returns
	rseg *segment // segment rf reads
	rf   *os.File
	roff int64
	// Read-ahead of rf: rbuf holds the segment's bytes from rbufAt, so
	// Next costs one pread per readBuf bytes instead of two per record.
	rbuf   []byte
	rbufAt int64

	wbuf []byte // frame being appended (under mu), reused

	notify chan struct{}
	closed bool
	st     Stats

	// The committer goroutine (group commit).
	wake      chan struct{} // an append left records to fsync
	stopC     chan struct{}
	stopOnce  sync.Once
	committed chan struct{} // closed when the committer has returned
}

// Open opens or creates the spool in dir. A torn or corrupt tail left by a
// crash is truncated and counted (Stats.Corrupt), never fatal.
func Open(dir string, opt Options) (*Spool, error) {
	opt.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	// Findings name users' files: keep the spool private even when an
	// administrator pre-created the directory.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod spool dir: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opt: opt, log: opt.Log, lock: lock, notify: make(chan struct{}, 1),
		wake: make(chan struct{}, 1), stopC: make(chan struct{}), committed: make(chan struct{})}
	if err := s.load(); err != nil {
		s.closeFiles()
		lock.Close()
		return nil, err
	}
	if opt.SyncInterval > 0 {
		go s.committer()
	} else {
		close(s.committed)
	}
	return s, nil
}

func (s *Spool) load() error {
	os.Remove(filepath.Join(s.dir, ackTmpName))
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read spool dir: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 16, 64)
		if err != nil || first == 0 {
			s.log.Warn().Str("file", name).Msg("spool: ignoring a file with a malformed segment name")
			continue
		}
		s.segs = append(s.segs, &segment{first: first, path: filepath.Join(s.dir, name)})
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].first < s.segs[j].first })

	ack, ok, err := readAck(filepath.Join(s.dir, ackName))
	if err != nil {
		s.log.Warn().Err(err).Msg("spool: cursor unreadable; re-sending everything still spooled")
	}
	if ok {
		s.ack = ack
	}

	for i, g := range s.segs {
		maxCount := ^uint64(0)
		if i+1 < len(s.segs) {
			// Seqs must not overlap the next segment's; anything beyond is
			// treated as corrupt.
			maxCount = s.segs[i+1].first - g.first
		}
		if err := s.scanFile(g, maxCount); err != nil {
			return err
		}
	}

	// Delete what was acknowledged (a crash between writing the cursor and
	// deleting the segments leaves them behind) but keep the newest segment
	// so the seq numbering goes on.
	for len(s.segs) > 1 && s.segs[0].end() <= s.ack {
		if err := os.Remove(s.segs[0].path); err != nil {
			return fmt.Errorf("remove acknowledged segment: %w", err)
		}
		s.segs = s.segs[1:]
	}
	next := uint64(1)
	if n := len(s.segs); n > 0 {
		next = s.segs[n-1].end()
	}
	if s.ack > next {
		// The cursor is ahead of what survived (segments lost outside our
		// control): never reuse an acknowledged seq.
		next = s.ack
	}
	if len(s.segs) > 0 && s.ack < s.segs[0].first {
		s.ack = s.segs[0].first
	}
	if s.ack == 0 {
		s.ack = next
	}
	s.next = next
	for _, g := range s.segs {
		s.total += g.size
	}
	if n := len(s.segs); n == 0 || s.segs[n-1].end() != next || s.segs[n-1].size >= s.opt.SegmentBytes {
		if err := s.newSegment(); err != nil {
			return err
		}
	} else {
		g := s.segs[n-1]
		f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open active segment: %w", err)
		}
		// What a killed process left in the page cache is made durable
		// before anyone is told it is there.
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync active segment: %w", err)
		}
		s.w = f
	}
	for s.total > s.opt.MaxBytes && len(s.segs) > 1 {
		if err := s.dropOldest(); err != nil {
			return err
		}
	}
	s.synced = s.next - 1
	s.rseq = s.ack
	return nil
}

// scanFile counts g's valid records and truncates a torn or corrupt tail.
func (s *Spool) scanFile(g *segment, maxCount uint64) error {
	f, err := os.OpenFile(g.path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment: %w", err)
	}
	count, end, torn := ScanSegment(f, fi.Size(), s.opt.MaxRecord, maxCount)
	if torn {
		s.st.Corrupt++
		s.log.Warn().Str("segment", filepath.Base(g.path)).Int64("valid_bytes", end).Int64("cut_bytes", fi.Size()-end).
			Uint64("records", count).Msg("spool: torn or corrupt tail truncated (crash during append or disk damage)")
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("truncate corrupt segment tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync truncated segment: %w", err)
		}
	}
	g.count, g.size = count, end
	return nil
}

// ScanSegment reads frames from r (size bytes) and returns how many are
// valid, where the valid prefix ends, and whether anything follows it (a
// torn or corrupt tail). It stops after maxCount records.
func ScanSegment(r io.ReaderAt, size int64, maxRecord int, maxCount uint64) (count uint64, end int64, torn bool) {
	var hdr [frameHeader]byte
	var buf []byte
	for end < size {
		if count >= maxCount || size-end < frameHeader {
			return count, end, true
		}
		if _, err := r.ReadAt(hdr[:], end); err != nil {
			return count, end, true
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n == 0 || n > int64(maxRecord) || n > size-end-frameHeader {
			return count, end, true
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := r.ReadAt(buf, end+frameHeader); err != nil {
			return count, end, true
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return count, end, true
		}
		end += frameHeader + n
		count++
	}
	return count, end, false
}

func segName(first uint64) string { return fmt.Sprintf("%s%016x%s", segPrefix, first, segSuffix) }

// newSegment starts a segment at s.next and makes its directory entry
// durable: a record fsync'd into a file whose name is lost is lost.
func (s *Spool) newSegment() error {
	g := &segment{first: s.next, path: filepath.Join(s.dir, segName(s.next))}
	f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.w != nil {
		s.w.Close()
	}
	s.w = f
	s.broken = false
	s.segs = append(s.segs, g)
	return nil
}

// rotate closes the active segment durably and starts a new one.
func (s *Spool) rotate() error {
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("sync segment before rotation: %w", err)
	}
	if s.synced < s.next-1 {
		s.synced = s.next - 1
		select { // the records just made durable are readable
		case s.notify <- struct{}{}:
		default:
		}
	}
	return s.newSegment()
}

// dropOldest deletes the oldest segment (never the active one).
func (s *Spool) dropOldest() error {
	g := s.segs[0]
	var lost uint64
	if g.end() > s.ack {
		lost = g.end() - max(g.first, s.ack)
	}
	if s.rseg == g {
		s.closeReader()
	}
	if err := os.Remove(g.path); err != nil {
		return fmt.Errorf("drop oldest segment: %w", err)
	}
	s.segs = s.segs[1:]
	s.total -= g.size
	if s.ack < s.segs[0].first {
		s.ack = s.segs[0].first
	}
	if s.rseq < s.ack {
		s.rseq = s.ack
	}
	s.st.Dropped += lost
	if lost > 0 {
		// Bytes of the undelivered part only when the whole segment was
		// undelivered; otherwise the segment's size is an upper bound.
		s.st.DroppedBytes += uint64(g.size)
	}
	s.log.Warn().Uint64("records", lost).Int64("bytes", g.size).Uint64("dropped_total", s.st.Dropped).
		Int64("max_bytes", s.opt.MaxBytes).Msg("spool full: dropped the oldest segment")
	return nil
}

// Append adds rec. With group commit (SyncInterval > 0, the default) it
// returns once the record is written to the segment: it survives kill -9
// (the page cache outlives the process, and Open fsyncs it), and the
// committer makes it durable against power loss within SyncInterval plus
// the fsync time; Next returns it only then. With SyncInterval < 0 it
// returns once the record is fsync'd (concurrent appends share fsyncs).
// A record that opens a new segment waits for the previous segment's and
// the directory's fsync either way. On error the record may or may not
// be delivered later.
func (s *Spool) Append(rec []byte) error {
	if len(rec) == 0 {
		return errors.New("spool: empty record")
	}
	if len(rec) > s.opt.MaxRecord {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), s.opt.MaxRecord)
	}
	crc := crc32.Checksum(rec, castagnoli)
	fl := int64(frameHeader + len(rec))

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	// One write per frame, so a kill -9 leaves whole frames or a torn
	// tail, never a gap.
	frame := append(s.wbuf[:0], make([]byte, frameHeader)...)
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(frame[4:8], crc)
	frame = append(frame, rec...)
	if cap(frame) <= readBuf {
		s.wbuf = frame
	}
	act := s.segs[len(s.segs)-1]
	if s.broken || (act.size > 0 && act.size+fl > s.opt.SegmentBytes) {
		if err := s.rotate(); err != nil {
			s.mu.Unlock()
			return err
		}
		act = s.segs[len(s.segs)-1]
	}
	for s.total+fl > s.opt.MaxBytes && len(s.segs) > 1 {
		if err := s.dropOldest(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if _, err := s.w.Write(frame); err != nil {
		// Undo a partial frame so the records appended after it stay
		// readable; if that fails too, the next append starts a segment.
		if terr := s.w.Truncate(act.size); terr != nil {
			s.broken = true
		}
		s.mu.Unlock()
		return fmt.Errorf("spool append: %w", err)
	}
	act.size += fl
	act.count++
	s.total += fl
	seq := s.next
	s.next++
	s.st.Appended++
	s.mu.Unlock()
	if s.opt.SyncInterval > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return nil
	}
	_, err := s.syncTo(seq)
	return err
}

// syncTo makes every record up to seq durable, with one fsync of the
// active segment that also covers whatever was appended before it starts,
// and tells the reader when records became readable.
func (s *Spool) syncTo(seq uint64) (advanced bool, err error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	if s.synced >= seq {
		s.mu.Unlock()
		return false, nil
	}
	f, target := s.w, s.next-1
	s.mu.Unlock()
	err = f.Sync()
	s.mu.Lock()
	s.st.Syncs++
	switch {
	case err != nil && s.synced >= seq:
		// A rotation synced it and closed f meanwhile.
		err = nil
	case err != nil:
		s.st.SyncErrors++
		err = fmt.Errorf("spool fsync: %w", err)
	case target > s.synced:
		s.synced = target
		advanced = true
	}
	s.mu.Unlock()
	if advanced {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return advanced, err
}

// Sync makes everything appended so far durable (and readable by Next)
// now, without waiting for the committer.
func (s *Spool) Sync() error {
	s.mu.Lock()
	last := s.next - 1
	s.mu.Unlock()
	_, err := s.syncTo(last)
	return err
}

// committer is the group commit: after an append it fsyncs everything
// appended so far, starting fsyncs at most once per SyncInterval, so one
// fsync covers all the records appended meanwhile. When the disk is
// slower than SyncInterval the fsyncs run back to back. A failed fsync is
// counted and retried after a second (or at the next append): its records
// stay invisible to Next until a later fsync succeeds.
func (s *Spool) committer() {
	defer close(s.committed)
	var (
		lastStart time.Time
		retry     <-chan time.Time
		failing   bool
	)
	for {
		select {
		case <-s.wake:
		case <-retry:
		case <-s.stopC:
			return // Close syncs what is left
		}
		retry = nil
		if wait := s.opt.SyncInterval - time.Since(lastStart); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.stopC:
				t.Stop()
				return
			}
		}
		lastStart = time.Now()
		s.mu.Lock()
		last := s.next - 1
		s.mu.Unlock()
		_, err := s.syncTo(last)
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err != nil:
			retry = time.After(time.Second)
			if !failing {
				s.log.Error().Err(err).Msg("spool: fsync failed; the records appended since the last good fsync are not delivered until one succeeds")
			} else {
				s.log.Debug().Err(err).Msg("spool: fsync still failing")
			}
			failing = true
		case failing:
			failing = false
			s.log.Info().Msg("spool: fsync works again")
		}
	}
}

// Notify returns a channel that receives a value after appends.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Next returns the next durable record after the read position and moves
// the read position past it. It returns ErrEmpty when none is waiting.
// The record stays in the spool until Ack.
func (s *Spool) Next() (uint64, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, ErrClosed
	}
	for {
		if s.rseq < s.ack {
			s.rseq = s.ack
			s.closeReader()
		}
		if s.rseq > s.synced {
			return 0, nil, ErrEmpty
		}
		if s.rseg == nil || s.rseq < s.rseg.first || s.rseq >= s.rseg.end() {
			if err := s.seekReader(); err != nil {
				return 0, nil, err
			}
			if s.rseg == nil {
				return 0, nil, ErrEmpty
			}
			continue
		}
		hdr, err := s.readAt(s.roff, frameHeader)
		if err != nil {
			return 0, nil, err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n == 0 || n > int64(s.opt.MaxRecord) || s.roff+frameHeader+n > s.rseg.size {
			s.skipDamaged()
			continue
		}
		b, err := s.readAt(s.roff+frameHeader, n)
		if err != nil {
			return 0, nil, err
		}
		if crc32.Checksum(b, castagnoli) != sum {
			s.skipDamaged()
			continue
		}
		rec := append([]byte(nil), b...)
		seq := s.rseq
		s.rseq++
		s.roff += frameHeader + n
		return seq, rec, nil
	}
}

// readBuf is the read-ahead of Next.
const readBuf = 256 << 10

// readAt returns n bytes of the segment being read from offset off, from
// the read-ahead, refilling it when needed. The slice is valid until the
// next call.
func (s *Spool) readAt(off, n int64) ([]byte, error) {
	if off >= s.rbufAt && off+n <= s.rbufAt+int64(len(s.rbuf)) {
		return s.rbuf[off-s.rbufAt : off-s.rbufAt+n], nil
	}
	// Read what the segment holds now (appended bytes are complete frames
	// in the page cache), at least the n bytes asked for.
	want := max(min(int64(readBuf), s.rseg.size-off), n)
	if int64(cap(s.rbuf)) < want {
		s.rbuf = make([]byte, max(want, readBuf))
	}
	s.rbuf = s.rbuf[:want]
	got, err := s.rf.ReadAt(s.rbuf, off)
	s.rbuf, s.rbufAt = s.rbuf[:got], off
	if int64(got) < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("spool read: %w", err)
	}
	return s.rbuf[:n], nil
}

// skipDamaged gives up on the rest of a segment damaged after Open (the
// disk changed under us): counted, and reading goes on with the next one.
func (s *Spool) skipDamaged() {
	s.st.Corrupt++
	s.log.Error().Str("segment", filepath.Base(s.rseg.path)).Uint64("seq", s.rseq).
		Msg("spool: segment damaged after it was written; skipping its remaining records")
	s.rseq = s.rseg.end()
	s.closeReader()
}

// seekReader opens the segment holding rseq (or the next one after a gap)
// and finds rseq's offset.
func (s *Spool) seekReader() error {
	s.closeReader()
	for _, g := range s.segs {
		if g.end() <= s.rseq || g.count == 0 {
			continue
		}
		if s.rseq < g.first {
			s.rseq = g.first
		}
		f, err := os.Open(g.path)
		if err != nil {
			return fmt.Errorf("open segment for reading: %w", err)
		}
		var off int64
		var hdr [frameHeader]byte
		for i := g.first; i < s.rseq; i++ {
			if _, err := f.ReadAt(hdr[:], off); err != nil {
				f.Close()
				return fmt.Errorf("seek in segment: %w", err)
			}
			off += frameHeader + int64(binary.LittleEndian.Uint32(hdr[0:4]))
		}
		s.rseg, s.rf, s.roff = g, f, off
		return nil
	}
	return nil
}

func (s *Spool) closeReader() {
	if s.rf != nil {
		s.rf.Close()
	}
	s.rseg, s.rf, s.roff = nil, nil, 0
	s.rbuf, s.rbufAt = s.rbuf[:0], 0
}

// Rewind moves the read position back to the first unacknowledged record,
// so what was read but not acknowledged is read again.
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rseq != s.ack {
		s.rseq = s.ack
		s.closeReader()
	}
}

// Ack acknowledges every record up to and including seq (clamped to what
// Next returned): the cursor is made durable, then fully acknowledged
// segments are deleted.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if seq >= s.rseq {
		seq = s.rseq - 1
	}
	if seq < s.ack {
		return nil
	}
	newAck := seq + 1
	if err := writeAck(s.dir, newAck); err != nil {
		return err
	}
	s.st.Acked += s.countRange(s.ack, newAck)
	s.ack = newAck
	for len(s.segs) > 1 && s.segs[0].end() <= s.ack {
		g := s.segs[0]
		if s.rseg == g {
			s.closeReader()
		}
		if err := os.Remove(g.path); err != nil {
			return fmt.Errorf("remove delivered segment: %w", err)
		}
		s.segs = s.segs[1:]
		s.total -= g.size
	}
	return nil
}

// countRange counts the records with lo <= seq < hi (gaps left by damage
// hold none).
func (s *Spool) countRange(lo, hi uint64) uint64 {
	var n uint64
	for _, g := range s.segs {
		a, b := max(lo, g.first), min(hi, g.end())
		if b > a {
			n += b - a
		}
	}
	return n
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Depth = s.countRange(s.ack, s.next)
	st.Unsynced = s.next - 1 - s.synced
	st.DepthBytes = uint64(s.total)
	st.Segments = len(s.segs)
	return st
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close syncs and closes the spool; what was not acknowledged stays for
// the next Open.
func (s *Spool) Close() error {
	s.stopOnce.Do(func() { close(s.stopC) })
	<-s.committed
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.w != nil {
		if e := s.w.Sync(); e != nil {
			err = fmt.Errorf("spool close: %w", e)
		}
	}
	s.closeFiles()
	s.lock.Close()
	return err
}

func (s *Spool) closeFiles() {
	s.closeReader()
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
}

// The cursor file: 8-byte little-endian seq, 4-byte CRC32C of those 8.
func readAck(path string) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read spool cursor: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, false, fmt.Errorf("spool cursor %s is corrupt (%d bytes)", path, len(b))
	}
	return binary.LittleEndian.Uint64(b[:8]), true, nil
}

// writeAck replaces the cursor atomically: temp file, fsync, rename, fsync
// of the directory. A crash leaves the old or the new cursor, never half.
func writeAck(dir string, seq uint64) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], seq)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	tmp := filepath.Join(dir, ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write spool cursor: %w", err)
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return fmt.Errorf("write spool cursor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync spool cursor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close spool cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ackName)); err != nil {
		return fmt.Errorf("install spool cursor: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open spool dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}
