package attribution

// FileHasher: content hashes for file-access sources that report a path
// but no open file (eslogger on macOS), so the detector can match an
// upload's bytes with a sensitive file the uploader read. fanotify hashes
// through the event's own descriptor instead (fanotify_linux.go).
//
// Untagged: it needs only open(2) flags that Linux and macOS both have,
// and is tested on Linux with real files.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of FileHasherOptions.
const (
	DefaultFileHasherQueue = 4096
	// DefaultFileHasherMaxDelay keeps a record held for its hash, and those
	// queued behind it, well inside the detector's settle time (500 ms):
	// a read delivered after the upload was judged does not count.
	DefaultFileHasherMaxDelay = 250 * time.Millisecond
)

// FileHasherOptions configure NewFileHasher. Zero values take defaults.
type FileHasherOptions struct {
	// QueueLen bounds the records waiting in the pipeline (hashed or
	// not); a record that finds it full is dropped (FileHasherStats.QueueFull).
	// Default DefaultFileHasherQueue.
	QueueLen int
	// MaxBytes is the largest file hashed; default DefaultMaxHashBytes,
	// as for fanotify. Larger files keep Size 0 and no hash.
	MaxBytes int64
	// MaxDelay bounds how long a record may wait for its hash, counted
	// from Submit: past it the hash is given up (FileHasherStats.Late) and
	// the record goes on without one. Default DefaultFileHasherMaxDelay.
	MaxDelay time.Duration
}

// FileHasherStats are the counters of a FileHasher. Every record that
// asked for a hash and did not get one is counted in exactly one of
// TooLarge, QueueFull, Late, NotRegular, Changed or Errors.
type FileHasherStats struct {
	Hashed     uint64 // records given Size, SHA256 and Hashed
	TooLarge   uint64 // file larger than MaxBytes (at open or while read)
	QueueFull  uint64 // records dropped because the queue was full (any record)
	Late       uint64 // hash given up to keep the records behind it on time
	NotRegular uint64 // symlink (O_NOFOLLOW), FIFO, device, directory, socket
	Changed    uint64 // file modified after the access or while hashed
	Errors     uint64 // open or read failed (gone, no permission…)
}

// FileHasher hashes files named by FileAccess records on one worker and
// hands every record submitted, hashed or not, to emit in the order of
// Submit.
//
// Why one ordered queue rather than a pool hashing in parallel: the host
// sink (the detector, a recording's journal) expects eslogger's order, and
// a read held for its hash must not be overtaken by the same process's
// exit or by its next exec. Passing every record through the queue keeps
// the order for free; MaxDelay keeps the added latency bounded, and
// hashing one file at a time is what the disk does best anyway.
//
// The path is opened when the worker gets to it, not when the process read
// it: a file modified (or replaced) since the access's time is not hashed
// (mtime later than the record's Time), since its content may not be what
// was read. Files are opened with O_NOFOLLOW and O_NONBLOCK (a FIFO
// must not block the worker) and hashed only when they are regular.
type FileHasher struct {
	opt  FileHasherOptions
	emit func(any)
	in   chan hasherItem
	done chan struct{}

	mu     sync.Mutex // Submit against Close
	closed bool

	hashed, tooLarge, queueFull, late, notRegular, changed, errs atomic.Uint64
}

type hasherItem struct {
	rec      any
	hash     bool
	deadline time.Time
}

// NewFileHasher starts the worker. emit is called on the worker's
// goroutine, one record at a time, in the order of Submit.
func NewFileHasher(opt FileHasherOptions, emit func(rec any)) *FileHasher {
	if opt.QueueLen <= 0 {
		opt.QueueLen = DefaultFileHasherQueue
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxHashBytes
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = DefaultFileHasherMaxDelay
	}
	h := &FileHasher{opt: opt, emit: emit, in: make(chan hasherItem, opt.QueueLen), done: make(chan struct{})}
	go h.run()
	return h
}

// Submit queues rec for emit. When hash is set and rec is a *FileAccess,
// the file at its Path is hashed first and the record's Size, SHA256 and
// Hashed are set on success. Other records (a *ProcessEvent…) pass through
// in order. Submit never blocks: it returns false when the queue is full
// or the hasher closed, and the record is dropped.
func (h *FileHasher) Submit(rec any, hash bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	it := hasherItem{rec: rec}
	if fa, ok := rec.(*FileAccess); ok && hash && fa != nil {
		it.hash, it.deadline = true, time.Now().Add(h.opt.MaxDelay)
	}
	select {
	case h.in <- it:
		return true
	default:
		h.queueFull.Add(1)
		return false
	}
}

// Close stops taking records, emits those queued (hashing them as asked,
// within their deadlines) and waits for the worker. Safe to call twice.
func (h *FileHasher) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.in)
	}
	h.mu.Unlock()
	<-h.done
}

// Stats returns the counters so far.
func (h *FileHasher) Stats() FileHasherStats {
	return FileHasherStats{
		Hashed: h.hashed.Load(), TooLarge: h.tooLarge.Load(), QueueFull: h.queueFull.Load(),
		Late: h.late.Load(), NotRegular: h.notRegular.Load(), Changed: h.changed.Load(), Errors: h.errs.Load(),
	}
}

func (h *FileHasher) run() {
	defer close(h.done)
	buf := make([]byte, 256<<10)
	sum := sha256.New()
	for it := range h.in {
		if it.hash {
			h.hash(it.rec.(*FileAccess), it.deadline, buf, sum)
		}
		h.emit(it.rec)
	}
}

// Hash outcomes, each counted once.
var (
	errHasherLate       = errors.New("attribution: hash: deadline passed")
	errHasherNotRegular = errors.New("attribution: hash: not a regular file")
	errHasherChanged    = errors.New("attribution: hash: file changed since the access")
	errHasherTooLarge   = errors.New("attribution: hash: file larger than the limit")
)

func (h *FileHasher) hash(fa *FileAccess, deadline time.Time, buf []byte, sum hash.Hash) {
	n, err := h.hashPath(fa.Path, fa.Time, deadline, buf, sum)
	switch {
	case err == nil:
		h.hashed.Add(1)
		fa.Size, fa.Hashed = n, true
		sum.Sum(fa.SHA256[:0])
	case errors.Is(err, errHasherTooLarge):
		h.tooLarge.Add(1)
	case errors.Is(err, errHasherLate):
		h.late.Add(1)
	case errors.Is(err, errHasherNotRegular):
		h.notRegular.Add(1)
	case errors.Is(err, errHasherChanged):
		h.changed.Add(1)
	default:
		h.errs.Add(1)
	}
}

// hashPath hashes the regular file at p into sum (reset first) and returns
// the bytes hashed. accessed is the access's time (zero: unknown).
func (h *FileHasher) hashPath(p string, accessed, deadline time.Time, buf []byte, sum hash.Hash) (int64, error) {
	if !time.Now().Before(deadline) {
		return 0, errHasherLate
	}
	// O_NOFOLLOW: a symlink planted at a sensitive path must not make the
	// sensor read (and report the hash of) whatever it points to.
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return 0, errHasherNotRegular
		}
		return 0, fmt.Errorf("attribution: hash: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("attribution: hash: %w", err)
	}
	if !st.Mode().IsRegular() {
		return 0, errHasherNotRegular
	}
	if st.Size() > h.opt.MaxBytes {
		return 0, errHasherTooLarge
	}
	if !accessed.IsZero() && st.ModTime().After(accessed) {
		return 0, errHasherChanged
	}
	sum.Reset()
	var n int64
	for {
		if !time.Now().Before(deadline) {
			return n, errHasherLate
		}
		k, err := f.Read(buf)
		n += int64(k)
		if n > h.opt.MaxBytes {
			return n, errHasherTooLarge // it grew since fstat
		}
		sum.Write(buf[:k])
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("attribution: hash: read %s: %w", p, err)
		}
	}
	// Written to while hashed: what was hashed may be half old, half new.
	if st2, err := f.Stat(); err != nil || !st2.ModTime().Equal(st.ModTime()) || st2.Size() != n {
		return n, errHasherChanged
	}
	return n, nil
}
