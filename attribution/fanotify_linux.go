//go:build linux

package attribution

import (
	"errors"
	"fmt"
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

	events, dropped, overflows, errs, selfEvents atomic.Uint64
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
	f := &Fanotify{fd: fd, ExecEvents: true, self: int32(os.Getpid())}
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
	defer unix.Close(fd)
	if m.PID == f.self {
		f.selfEvents.Add(1)
		return
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		f.errs.Add(1)
		return
	}
	for _, k := range fanotifyAccesses(m.Mask) {
		r := FileAccess{
			Time:     now,
			PID:      m.PID,
			Path:     path,
			Access:   k,
			Modified: k == AccessWrite,
			Source:   SourceFanotify,
		}
		select {
		case f.out <- r:
			f.events.Add(1)
		default:
			f.dropped.Add(1)
		}
	}
}
