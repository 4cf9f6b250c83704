package attribution

// The process cache of the macOS ProcessSource: a process is described
// once per (pid, start time) and served from the cache until its pid is
// reused. Untagged (the name does not end in _darwin): it reaches the OS
// through darwinProcAPI, faked in tests; darwin_process.go binds libproc
// and sysctl.

import (
	"fmt"
	"path"
	"strings"
	"sync"
)

// Defaults of DarwinProcessOptions.
const (
	DefaultDarwinMaxProcesses = 4096
	DefaultDarwinMaxArgBytes  = 16 << 10
)

// DarwinProcessOptions configures the macOS ProcessSource. Zero fields take
// the defaults.
type DarwinProcessOptions struct {
	// MaxProcesses bounds the processes cached (DefaultDarwinMaxProcesses);
	// the oldest described is dropped first.
	MaxProcesses int
	// MaxArgBytes bounds the arguments kept per process
	// (DefaultDarwinMaxArgBytes): later arguments are dropped and the last
	// kept one is cut, so a process with a huge command line cannot fill
	// the cache.
	MaxArgBytes int
}

// darwinProcAPI is what the cache needs from macOS. Errors wrap
// ErrNotFound (no such process) or ErrPermission when that is the cause.
type darwinProcAPI interface {
	// bsdInfo returns a proc_pidinfo(PROC_PIDTBSDINFO) answer.
	bsdInfo(pid int32) ([]byte, error)
	// path returns proc_pidpath.
	path(pid int32) (string, error)
	// procName returns proc_name.
	procName(pid int32) (string, error)
	// procArgs2 returns the kern.procargs2 sysctl.
	procArgs2(pid int32) ([]byte, error)
	// vnodePathInfo returns a proc_pidinfo(PROC_PIDVNODEPATHINFO) answer.
	vnodePathInfo(pid int32) ([]byte, error)
	// uniqInfo returns a proc_pidinfo(PROC_PIDUNIQIDENTIFIERINFO) answer.
	uniqInfo(pid int32) ([]byte, error)
	// sessionID returns getsid(pid).
	sessionID(pid int32) (int32, error)
	// userName returns the login name of uid.
	userName(uid uint32) (string, error)
}

type darwinProcKey struct {
	pid         int32
	sec, usec   uint64
	idVersion   int32
	haveVersion bool
}

type darwinProcCache struct {
	api  darwinProcAPI
	opts DarwinProcessOptions

	mu    sync.Mutex
	procs map[darwinProcKey]*Process
	byPID map[int32]darwinProcKey
	order []darwinProcKey // insertion order, for eviction
	users map[uint32]string
}

func newDarwinProcCache(api darwinProcAPI, opts DarwinProcessOptions) *darwinProcCache {
	if opts.MaxProcesses <= 0 {
		opts.MaxProcesses = DefaultDarwinMaxProcesses
	}
	if opts.MaxArgBytes <= 0 {
		opts.MaxArgBytes = DefaultDarwinMaxArgBytes
	}
	return &darwinProcCache{
		api:   api,
		opts:  opts,
		procs: make(map[darwinProcKey]*Process),
		byPID: make(map[int32]darwinProcKey),
		users: make(map[uint32]string),
	}
}

// process returns the process with this pid as it is now. Only the BSD
// info is required; the executable, arguments, directory, user and session
// are filled when the OS gives them (it refuses most of them for other
// users' processes unless the sensor is root).
func (c *darwinProcCache) process(pid int32) (*Process, error) {
	raw, err := c.api.bsdInfo(pid)
	if err != nil {
		return nil, fmt.Errorf("attribution: process %d: %w", pid, err)
	}
	bi, err := DecodeBSDInfo(raw)
	if err != nil {
		return nil, fmt.Errorf("attribution: process %d: %w", pid, err)
	}
	if bi.PID != pid {
		return nil, fmt.Errorf("attribution: process %d: proc_bsdinfo is for pid %d: %w", pid, bi.PID, ErrNotFound)
	}
	key := darwinProcKey{pid: pid, sec: bi.StartSec, usec: bi.StartUsec}
	// exec keeps the pid and start time; the pid version tells the images
	// apart, when the OS gives it.
	if b, err := c.api.uniqInfo(pid); err == nil {
		if u, err := DecodeUniqIdentifierInfo(b); err == nil {
			key.idVersion, key.haveVersion = u.IDVersion, true
		}
	}

	c.mu.Lock()
	if p, ok := c.procs[key]; ok {
		c.mu.Unlock()
		return darwinCloneProcess(p), nil
	}
	c.mu.Unlock()

	p := c.describe(pid, bi)

	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byPID[pid]; ok && old != key {
		delete(c.procs, old) // the pid was reused, or the process exec'd
	}
	if _, ok := c.procs[key]; !ok {
		c.order = append(c.order, key)
	}
	c.procs[key] = p
	c.byPID[pid] = key
	c.evictLocked()
	return darwinCloneProcess(p), nil
}

func (c *darwinProcCache) describe(pid int32, bi BSDInfo) *Process {
	p := &Process{
		PID:       pid,
		PPID:      bi.PPID,
		StartTime: bi.StartTime,
		UID:       bi.UID,
		PGID:      bi.PGID,
	}
	exe, _ := c.api.path(pid)
	if b, err := c.api.procArgs2(pid); err == nil {
		exe2, args, _ := ParseProcArgs2(b) // partial arguments are kept
		if exe == "" {
			exe = exe2
		}
		p.Args = darwinTrimArgs(args, c.opts.MaxArgBytes)
	}
	p.Executable = exe
	p.Name = DarwinProcessName(bi.Comm, bi.Name, exe)
	if p.Name == "" {
		p.Name, _ = c.api.procName(pid)
	}
	if b, err := c.api.vnodePathInfo(pid); err == nil {
		p.CWD, _ = DecodeVnodePathCWD(b)
	}
	if sid, err := c.api.sessionID(pid); err == nil {
		p.SessionLeader = sid
	}
	p.User = c.userName(bi.UID)
	return p
}

// userName names uid, remembering the answer (also a failure, as "").
func (c *darwinProcCache) userName(uid uint32) string {
	c.mu.Lock()
	name, ok := c.users[uid]
	c.mu.Unlock()
	if ok {
		return name
	}
	name, _ = c.api.userName(uid)
	c.mu.Lock()
	if len(c.users) < 4096 {
		c.users[uid] = name
	}
	c.mu.Unlock()
	return name
}

func (c *darwinProcCache) evictLocked() {
	for len(c.procs) > c.opts.MaxProcesses && len(c.order) > 0 {
		k := c.order[0]
		c.order = c.order[1:]
		if _, ok := c.procs[k]; !ok {
			continue
		}
		delete(c.procs, k)
		if c.byPID[k.pid] == k {
			delete(c.byPID, k.pid)
		}
	}
	// Keys of replaced processes stay in order until they reach its head:
	// compact when it holds many more keys than the cache.
	if len(c.order) > 2*c.opts.MaxProcesses {
		live := c.order[:0]
		for _, k := range c.order {
			if _, ok := c.procs[k]; ok {
				live = append(live, k)
			}
		}
		c.order = live
	}
}

// execUUID returns the LC_UUID of pid's main executable.
func (c *darwinProcCache) execUUID(pid int32) ([16]byte, error) {
	b, err := c.api.uniqInfo(pid)
	if err != nil {
		return [16]byte{}, fmt.Errorf("attribution: process %d: %w", pid, err)
	}
	u, err := DecodeUniqIdentifierInfo(b)
	if err != nil {
		return [16]byte{}, fmt.Errorf("attribution: process %d: %w", pid, err)
	}
	return u.UUID, nil
}

// DarwinProcessName picks a process's name as lsof does (pbi_name, else
// pbi_comm), then completes a name the kernel cut (pbi_comm keeps 15
// characters, PKTAP's pth_comm 16) from the executable's file name when
// that starts with it: "Google Chrome He" → "Google Chrome Helper".
func DarwinProcessName(comm, name, exe string) string {
	n := name
	if n == "" {
		n = comm
	}
	base := ""
	if exe != "" {
		base = path.Base(exe)
	}
	if n == "" {
		return base
	}
	if len(n) >= MaxComLen-1 && len(base) > len(n) && strings.HasPrefix(base, n) {
		return base
	}
	return n
}

func darwinTrimArgs(args []string, max int) []string {
	total := 0
	for i, a := range args {
		if total+len(a) > max {
			out := args[:i:i]
			if room := max - total; room > 0 {
				out = append(out, a[:room])
			}
			return out
		}
		total += len(a)
	}
	return args
}

func darwinCloneProcess(p *Process) *Process {
	q := *p
	q.Args = append([]string(nil), p.Args...)
	if p.Code != nil {
		c := *p.Code
		q.Code = &c
	}
	return &q
}
