//go:build linux

package attribution

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Fanotify reports opens, close-after-write and execs of files on the
// watched mounts (or filesystems) as FileAccess records, from a fanotify
// notification group (no permission events: it never delays the
// processes it watches). It needs CAP_SYS_ADMIN.
//
// The PID of a record is the process that did the access; resolve it to a
// process through the attribution cache. Events caused by this process are
// skipped and counted (FanotifyStats.Self).
type Fanotify struct {
	// ExecEvents reports whether FAN_OPEN_EXEC is watched. It is false on
	// kernels before 5.0, where execs are only seen as opens (AccessRead).
	ExecEvents bool

	fd     int
	wake   [2]int // pipe: Close writes to wake[1] to stop the reader
	out    chan FileAccess
	self   int32
	done   chan struct{}
	closed sync.Once

	hash     func(string) bool
	maxHash  int64
	jobs     chan *hashJob // to the hash worker
	hashDone chan struct{} // closed when the worker has drained jobs

	events, dropped, overflows, errs, selfEvents atomic.Uint64
	hashed, hashTooLarge, hashBusy, hashErrs     atomic.Uint64
}

// hashJob is one kernel event whose file is to be hashed: its records,
// held back until the hash is known, and the event's descriptor, which
// the worker closes.
type hashJob struct {
	fd   int
	recs [2]FileAccess
	n    int
}

// NewFanotify starts a fanotify source on opts.Paths. It fails when a
// path cannot be marked (missing, or no CAP_SYS_ADMIN).
func NewFanotify(opts FanotifyOptions) (*Fanotify, error) {
	if len(opts.Paths) == 0 {
		return nil, errors.New("attribution: fanotify: no paths to watch")
	}
	qs := opts.QueueSize
	if qs <= 0 {
		qs = 8192
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("attribution: fanotify_init: %w", err)
	}
	f := &Fanotify{fd: fd, ExecEvents: true, self: int32(os.Getpid()), hash: opts.Hash, maxHash: opts.MaxHashBytes}
	if f.maxHash <= 0 {
		f.maxHash = DefaultMaxHashBytes
	}
	markFlags := uint(unix.FAN_MARK_ADD | unix.FAN_MARK_MOUNT)
	if opts.Filesystem {
		markFlags = unix.FAN_MARK_ADD | unix.FAN_MARK_FILESYSTEM
	}
	for _, p := range opts.Paths {
		if err := f.mark(markFlags, p); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	if err := unix.Pipe2(f.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attribution: fanotify: pipe: %w", err)
	}
	f.out = make(chan FileAccess, qs)
	f.done = make(chan struct{})
	// Hashing runs on its own goroutine so that a large file does not
	// hold up the reader (the kernel queue would overflow and lose other
	// processes' accesses); the bounded queue keeps the descriptors held
	// and the delay of held-back records bounded.
	f.jobs = make(chan *hashJob, hashQueueLen)
	f.hashDone = make(chan struct{})
	go f.hashWorker()
	go f.run()
	return f, nil
}

// mark adds p to the group, dropping FAN_OPEN_EXEC (for every path) when
// the kernel does not know it.
func (f *Fanotify) mark(flags uint, p string) error {
	for {
		mask := uint64(unix.FAN_OPEN | unix.FAN_CLOSE_WRITE)
		if f.ExecEvents {
			mask |= unix.FAN_OPEN_EXEC
		}
		err := unix.FanotifyMark(f.fd, flags, mask, unix.AT_FDCWD, p)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EINVAL) && f.ExecEvents {
			f.ExecEvents = false
			continue
		}
		return fmt.Errorf("attribution: fanotify_mark %s: %w", p, err)
	}
}

// Events returns the channel of records. It is closed after Close.
func (f *Fanotify) Events() <-chan FileAccess { return f.out }

// Stats returns the counters so far.
func (f *Fanotify) Stats() FanotifyStats {
	return FanotifyStats{
		Events:    f.events.Load(),
		Dropped:   f.dropped.Load(),
		Overflows: f.overflows.Load(),
		Errors:    f.errs.Load(),
		Self:      f.selfEvents.Load(),

		Hashed:       f.hashed.Load(),
		HashTooLarge: f.hashTooLarge.Load(),
		HashBusy:     f.hashBusy.Load(),
		HashErrors:   f.hashErrs.Load(),
	}
}

// Close stops the reader, waits for it and releases the fanotify fd. It
// is safe to call more than once and while the reader is waiting.
func (f *Fanotify) Close() error {
	f.closed.Do(func() {
		unix.Write(f.wake[1], []byte{0})
		<-f.done
		unix.Close(f.fd)
		unix.Close(f.wake[0])
		unix.Close(f.wake[1])
	})
	return nil
}

func (f *Fanotify) run() {
	defer close(f.done)
	defer close(f.out)
	defer func() {
		close(f.jobs)
		<-f.hashDone // the worker sends its last records before out closes
	}()
	buf := make([]byte, 64<<10)
	pfd := []unix.PollFd{
		{Fd: int32(f.fd), Events: unix.POLLIN},
		{Fd: int32(f.wake[0]), Events: unix.POLLIN},
	}
	for {
		pfd[0].Revents, pfd[1].Revents = 0, 0
		_, err := unix.Poll(pfd, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			f.errs.Add(1)
			return
		}
		if pfd[1].Revents != 0 {
			return
		}
		if pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			f.errs.Add(1)
			return
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			continue
		}
		n, err := unix.Read(f.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			f.errs.Add(1)
			// Transient errors of the event's fd creation (EMFILE,
			// ENFILE…) lose one event; back off so a persistent one
			// does not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now()
		if _, err := parseFanotifyEvents(buf[:n], func(m fanotifyMeta) { f.handle(now, m) }); err != nil {
			f.errs.Add(1)
		}
	}
}

func (f *Fanotify) handle(now time.Time, m fanotifyMeta) {
	if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
		f.overflows.Add(1)
	}
	if m.FD < 0 {
		return
	}
	fd := int(m.FD)
	if m.PID == f.self {
		f.selfEvents.Add(1)
		unix.Close(fd)
		return
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		f.errs.Add(1)
		unix.Close(fd)
		return
	}
	var size int64
	regular := false
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		size, regular = st.Size, true
	}
	j := hashJob{fd: fd}
	wantHash := false
	for _, k := range fanotifyAccesses(m.Mask) {
		// What a process reads, and what it wrote, may leave the host;
		// what it executes is not content it sends.
		wantHash = wantHash || k == AccessRead || k == AccessWrite
		j.recs[j.n] = FileAccess{
			Time:     now,
			PID:      m.PID,
			Path:     path,
			Access:   k,
			Modified: k == AccessWrite,
			Source:   SourceFanotify,
			Size:     size,
		}
		j.n++
	}
	if wantHash && f.hash != nil && regular && f.hash(path) {
		if size > f.maxHash {
			f.hashTooLarge.Add(1)
		} else {
			select {
			case f.jobs <- &j:
				return // the worker emits the records and closes fd
			default:
				f.hashBusy.Add(1)
			}
		}
	}
	unix.Close(fd)
	f.emit(j.recs[:j.n])
}

func (f *Fanotify) emit(recs []FileAccess) {
	for _, r := range recs {
		select {
		case f.out <- r:
			f.events.Add(1)
		default:
			f.dropped.Add(1)
		}
	}
}

// hashWorker hashes the files queued by handle, in order, and emits their
// records.
func (f *Fanotify) hashWorker() {
	defer close(f.hashDone)
	buf := make([]byte, 256<<10)
	h := sha256.New()
	for j := range f.jobs {
		n, err := hashFD(j.fd, f.maxHash, buf, h)
		unix.Close(j.fd)
		switch {
		case errors.Is(err, errHashTooLarge):
			f.hashTooLarge.Add(1) // it grew past the limit since fstat
		case err != nil:
			f.hashErrs.Add(1)
		default:
			f.hashed.Add(1)
			var sum [32]byte
			h.Sum(sum[:0])
			for i := range j.recs[:j.n] {
				// The size of what was hashed: the file may have changed
				// since fstat.
				j.recs[i].Size, j.recs[i].SHA256, j.recs[i].Hashed = n, sum, true
			}
		}
		f.emit(j.recs[:j.n])
	}
}

var errHashTooLarge = errors.New("attribution: file larger than the hash limit")

// hashFD hashes the whole content of fd into h (reset first) by pread
// from offset 0, so the descriptor's own offset does not matter and the
// file read is the one the process opened even if its path was replaced.
// It returns the number of bytes hashed, or errHashTooLarge after max.
func hashFD(fd int, max int64, buf []byte, h hash.Hash) (int64, error) {
	h.Reset()
	var off int64
	for {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return off, fmt.Errorf("attribution: fanotify: read for hash: %w", err)
		}
		if n == 0 {
			return off, nil
		}
		off += int64(n)
		if off > max {
			return off, errHashTooLarge
		}
		h.Write(buf[:n])
	}
}
