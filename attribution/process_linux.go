// This file reads Linux processes for ProcessCache from a proc file system:
// root/PID/{stat,status,cmdline} and the exe and cwd links, all through one
// directory handle on root/PID.
//
// gopsutil v4 (process.NewProcess, Name, Exe, CmdlineSlice, Cwd,
// CreateTime, Uids, Username, Ppid) has all these fields, and accepts
// another proc root through a context value. It is not used here because
// each of its getters opens the process's files again by pid (stat alone is
// read for CreateTime, Ppid and Name, status for Name, Uids and Username):
// about ten opens per process instead of five, and between them a pid can
// be reused, so one record could mix two processes. Reading through one
// directory handle cannot: a handle on /proc/PID keeps naming the process
// it was opened on, and reads fail once that process is gone. The one
// lookup gopsutil adds, Username, is os/user.LookupId of the uid, which
// ProcessCache calls itself (memoized). The live tests compare the result
// with gopsutil's for the test process.

package attribution

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the process files read (cmdline has its own option).
const (
	procMaxStatBytes   = 4 << 10
	procMaxStatusBytes = 16 << 10
	procMaxLinkBytes   = 4096 // PATH_MAX
)

// NewProcessCache returns a cache of the processes of the proc file system
// mounted at root ("/proc" for this host; a fixture tree in tests). The
// boot time that start times count from is read from root/stat once.
func NewProcessCache(root string, opts ProcessCacheOptions) *ProcessCache {
	if root == "" {
		root = "/proc"
	}
	return newProcessCache(&procfsSource{root: filepath.Clean(root)}, opts)
}

type procfsSource struct {
	root     string
	bootOnce sync.Once
	boot     time.Time
	bootErr  error
	buf      []byte // read buffer, used under the cache's lock
}

func (s *procfsSource) bootTime() (time.Time, error) {
	s.bootOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join(s.root, "stat"))
		if err != nil {
			s.bootErr = procPathError("boot time", err)
			return
		}
		sec, err := parseProcBootTime(b)
		if err != nil {
			s.bootErr = err
			return
		}
		s.boot = time.Unix(sec, 0)
	})
	return s.boot, s.bootErr
}

func (s *procfsSource) open(pid int32) (procHandle, error) {
	dir := s.root + "/" + strconv.Itoa(int(pid))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, procFileError(pid, "", err)
	}
	return &procfsHandle{src: s, pid: pid, dirfd: fd}, nil
}

// procfsHandle reads one process. It shares its source's buffer: the
// cache's lock serializes reads.
type procfsHandle struct {
	src   *procfsSource
	pid   int32
	dirfd int
}

func (h *procfsHandle) close() { unix.Close(h.dirfd) }

func (h *procfsHandle) stat() (procStat, error) {
	b, _, err := h.read("stat", procMaxStatBytes)
	if err != nil {
		return procStat{}, err
	}
	st, err := parseProcStat(b)
	if err != nil {
		return st, fmt.Errorf("attribution: process %d: %w", h.pid, err)
	}
	if st.PID != h.pid {
		return st, fmt.Errorf("attribution: process %d: %w: stat names pid %d", h.pid, errProcStat, st.PID)
	}
	return st, nil
}

func (h *procfsHandle) details(maxArgs int) procDetails {
	var d procDetails
	d.exe = h.readlink("exe")
	d.cwd = h.readlink("cwd")
	if b, truncated, err := h.read("cmdline", maxArgs); err == nil {
		d.args = parseProcCmdline(b)
		d.argsTruncated = truncated
	}
	if b, _, err := h.read("status", procMaxStatusBytes); err == nil {
		if _, euid, err := parseProcStatusUIDs(b); err == nil {
			d.uid, d.uidOK = euid, true
		}
	}
	return d
}

// read reads at most max bytes of the named file of the process and says
// whether there was more. The returned slice is valid until the next read.
func (h *procfsHandle) read(name string, max int) ([]byte, bool, error) {
	fd, err := unix.Openat(h.dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, procFileError(h.pid, name, err)
	}
	defer unix.Close(fd)
	if cap(h.src.buf) < max+1 {
		h.src.buf = make([]byte, max+1)
	}
	b := h.src.buf[:max+1]
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, procFileError(h.pid, name, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n > max {
		return b[:max], true, nil
	}
	return b[:n], false, nil
}

func (h *procfsHandle) readlink(name string) string {
	var buf [procMaxLinkBytes]byte
	n, err := unix.Readlinkat(h.dirfd, name, buf[:])
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// procFileError classifies a failure to read a process file: gone (the
// process exited: ENOENT, or ESRCH through a handle on a dead process) is
// ErrNotFound, EACCES/EPERM is ErrPermission.
func procFileError(pid int32, name string, err error) error {
	what := "process " + strconv.Itoa(int(pid))
	if name != "" {
		what += " " + name
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%w: %s (%w)", ErrNotFound, what, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("attribution: %s: %w (%w)", what, ErrPermission, err)
	}
	return fmt.Errorf("attribution: %s: %w", what, err)
}
