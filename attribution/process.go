// This file is the OS-independent process cache: records keyed by (pid,
// start time), kept after the process exits, bounded by LRU, and the walk
// up the parent chain. Reading a process is behind procSource; the Linux
// source (root/PID/{stat,status,cmdline,exe,cwd}) is in process_linux.go.

package attribution

import (
	"container/list"
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of ProcessCacheOptions and of Lineage.
const (
	DefaultMaxProcesses   = 4096
	DefaultProcessRefresh = 5 * time.Second
	DefaultMaxArgsBytes   = 32 << 10
	DefaultMaxLineage     = 16
	// DefaultClockTicks is USER_HZ, the unit of /proc/PID/stat's start
	// time. The kernel fixes it at 100 for user space on every architecture
	// Go supports (sysconf(_SC_CLK_TCK) and gopsutil's go-sysconf say the
	// same).
	DefaultClockTicks = 100
)

// procMaxUserNames bounds the uid → name memo.
const procMaxUserNames = 1024

// ProcessCacheOptions configures NewProcessCache. The zero value means the
// documented defaults.
type ProcessCacheOptions struct {
	// MaxProcesses bounds the records kept, live or exited; the least
	// recently used is evicted first (Stats.Evictions). Default
	// DefaultMaxProcesses.
	MaxProcesses int
	// RefreshAfter is how long a live process's record is reused before its
	// command line, executable and directory are read again. A process that
	// executes another program gets a new name and is read again at once.
	// Default DefaultProcessRefresh.
	RefreshAfter time.Duration
	// MaxArgsBytes bounds the command line read (Stats.ArgsTruncated counts
	// the cut ones). Default DefaultMaxArgsBytes.
	MaxArgsBytes int
	// ClockTicks is the unit of the kernel's process start times, per
	// second. Default DefaultClockTicks.
	ClockTicks int64
	// UserName maps a uid to a name; nil means os/user.LookupId (the
	// lookup gopsutil's Process.Username does), memoized per uid. An
	// unknown uid gives "".
	UserName func(uid uint32) (string, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *ProcessCacheOptions) maxProcesses() int {
	if o.MaxProcesses > 0 {
		return o.MaxProcesses
	}
	return DefaultMaxProcesses
}

func (o *ProcessCacheOptions) refreshAfter() time.Duration {
	if o.RefreshAfter > 0 {
		return o.RefreshAfter
	}
	return DefaultProcessRefresh
}

func (o *ProcessCacheOptions) maxArgsBytes() int {
	if o.MaxArgsBytes > 0 {
		return o.MaxArgsBytes
	}
	return DefaultMaxArgsBytes
}

func (o *ProcessCacheOptions) clockTicks() int64 {
	if o.ClockTicks > 0 {
		return o.ClockTicks
	}
	return DefaultClockTicks
}

func (o *ProcessCacheOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// ProcessCacheStats are the counters of a ProcessCache since it was made.
type ProcessCacheStats struct {
	Lookups       uint64 // calls to Process, ProcessAt, Snapshot, and lineage steps
	Hits          uint64 // live process answered from its record
	Reads         uint64 // full reads of a process
	Exited        uint64 // answered from the record of a process that is gone
	Reused        uint64 // pid now names a newer process than the one asked for
	Evictions     uint64 // records evicted by MaxProcesses
	ArgsTruncated uint64 // command lines cut at MaxArgsBytes
	Errors        uint64 // unreadable or malformed process files
	Entries       int    // records now
}

// ProcessCache describes processes and remembers them, keyed by (pid,
// start time): a pid reused by a new process never gets the old process's
// record, and a process that exited is still described by its last record.
// It is safe for concurrent use; calls are serialized.
type ProcessCache struct {
	src     procSource
	opts    ProcessCacheOptions
	refresh time.Duration
	hz      int64

	mu      sync.Mutex
	lru     list.List // of *procEntry, most recently used at the front
	entries map[procKey]*list.Element
	byPID   map[int32][]uint64 // start ticks of the records of a pid, ascending
	users   map[uint32]string
	stats   ProcessCacheStats
}

var _ ProcessSource = (*ProcessCache)(nil)

type procKey struct {
	pid   int32
	start uint64 // clock ticks after boot
}

type procEntry struct {
	key    procKey
	comm   string
	p      *Process
	readAt time.Time
}

// procSource reads live processes.
type procSource interface {
	// open returns a handle on the live process, or an error wrapping
	// ErrNotFound when there is none.
	open(pid int32) (procHandle, error)
	// bootTime is the time start ticks count from.
	bootTime() (time.Time, error)
}

// procHandle reads one process; every read names the same process even if
// its pid is reused meanwhile (errors then wrap ErrNotFound).
type procHandle interface {
	stat() (procStat, error)
	details(maxArgs int) procDetails
	close()
}

// procDetails are the fields beyond stat, each empty when unreadable.
type procDetails struct {
	exe, cwd      string
	args          []string
	argsTruncated bool
	uid           uint32
	uidOK         bool
}

func newProcessCache(src procSource, opts ProcessCacheOptions) *ProcessCache {
	return &ProcessCache{
		src:     src,
		opts:    opts,
		refresh: opts.refreshAfter(),
		hz:      opts.clockTicks(),
		entries: make(map[procKey]*list.Element),
		byPID:   make(map[int32][]uint64),
		users:   make(map[uint32]string),
	}
}

// Process implements ProcessSource: the process with this pid as it is now,
// or, when the pid is gone, the last record of the process that had it
// (the record is shared: do not modify it). It returns an error wrapping
// ErrNotFound when the pid is gone and was never seen.
func (c *ProcessCache) Process(pid int32) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.get(pid, ^uint64(0))
	if err != nil {
		return nil, err
	}
	return e.p, nil
}

// ProcessAt returns the process that had pid at time at: the live process
// if it had started by then, else the record of an earlier process with the
// pid. Use it with Owner.Seen, so a flow's owner that exited is not
// confused with a newer process that got its pid. Start times come from
// the boot time, which the kernel gives in whole seconds, so a process that
// started up to one second after at is still taken as having had the pid.
func (c *ProcessCache) ProcessAt(pid int32, at time.Time) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	boot, err := c.src.bootTime()
	if err != nil {
		return nil, err
	}
	maxStart := ^uint64(0)
	if !at.IsZero() {
		d := at.Sub(boot) + time.Second
		if d < 0 {
			return nil, fmt.Errorf("%w: pid %d at %v, before boot", ErrNotFound, pid, at)
		}
		maxStart = uint64(d.Seconds() * float64(c.hz))
	}
	e, err := c.get(pid, maxStart)
	if err != nil {
		return nil, err
	}
	return e.p, nil
}

// Snapshot records the process and its ancestors (up to
// DefaultMaxLineage) now, so that the process and its lineage stay
// described after they exit. Records are read as by Process: again only
// when stale or when the process executed another program. Call it as
// soon as a process is known to matter, for example from
// ProcTableOptions.OnOwner. A pid already gone gives its last record.
func (c *ProcessCache) Snapshot(pid int32) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.get(pid, ^uint64(0))
	if err != nil {
		return nil, err
	}
	c.lineage(e, DefaultMaxLineage)
	return e.p, nil
}

// Stats returns the cache's counters.
func (c *ProcessCache) Stats() ProcessCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.entries)
	return s
}

// get returns the record of pid's process that started at or before
// maxStart: the live one (read again if stale), else a record.
func (c *ProcessCache) get(pid int32, maxStart uint64) (*procEntry, error) {
	c.stats.Lookups++
	if pid <= 0 {
		return nil, fmt.Errorf("%w: pid %d", ErrNotFound, pid)
	}
	h, err := c.src.open(pid)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return c.recorded(pid, maxStart)
		}
		c.stats.Errors++
		return nil, err
	}
	defer h.close()
	st, err := h.stat()
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return c.recorded(pid, maxStart)
		}
		c.stats.Errors++
		return nil, err
	}
	if st.StartTicks > maxStart {
		c.stats.Reused++
		return c.recorded(pid, maxStart)
	}
	key := procKey{pid, st.StartTicks}
	now := c.opts.now()
	old := c.entry(key)
	if old != nil {
		dead := st.State == 'Z' || st.State == 'X'
		if dead || (old.comm == st.Comm && now.Sub(old.readAt) < c.refresh) {
			c.stats.Hits++
			return old, nil
		}
	}
	boot, err := c.src.bootTime()
	if err != nil {
		c.stats.Errors++
		return nil, err
	}
	d := h.details(c.opts.maxArgsBytes())
	c.stats.Reads++
	if d.argsTruncated {
		c.stats.ArgsTruncated++
	}
	if old != nil && old.comm == st.Comm && d.exe == "" && d.args == nil {
		// Exiting while we read: keep what we knew.
		old.readAt = now
		return old, nil
	}
	p := &Process{
		PID:           pid,
		PPID:          st.PPID,
		Name:          procName(st.Comm, d.exe, d.args),
		Executable:    d.exe,
		Args:          d.args,
		CWD:           d.cwd,
		StartTime:     boot.Add(procTicksToDuration(st.StartTicks, c.hz)),
		SessionLeader: st.Session,
		PGID:          st.PGID,
	}
	if d.uidOK {
		p.UID = d.uid
		p.User = c.userName(d.uid)
	}
	return c.store(&procEntry{key: key, comm: st.Comm, p: p, readAt: now}), nil
}

// recorded returns the latest record of pid that started at or before
// maxStart.
func (c *ProcessCache) recorded(pid int32, maxStart uint64) (*procEntry, error) {
	starts := c.byPID[pid]
	i, _ := slices.BinarySearch(starts, maxStart)
	if i < len(starts) && starts[i] == maxStart {
		i++
	}
	if i == 0 {
		return nil, fmt.Errorf("%w: process %d", ErrNotFound, pid)
	}
	c.stats.Exited++
	return c.entry(procKey{pid, starts[i-1]}), nil
}

func (c *ProcessCache) entry(k procKey) *procEntry {
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*procEntry)
}

func (c *ProcessCache) store(e *procEntry) *procEntry {
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return e
	}
	c.entries[e.key] = c.lru.PushFront(e)
	starts := c.byPID[e.key.pid]
	i, _ := slices.BinarySearch(starts, e.key.start)
	c.byPID[e.key.pid] = slices.Insert(starts, i, e.key.start)
	for len(c.entries) > c.opts.maxProcesses() {
		back := c.lru.Back()
		old := back.Value.(*procEntry)
		c.lru.Remove(back)
		delete(c.entries, old.key)
		s := c.byPID[old.key.pid]
		if j, ok := slices.BinarySearch(s, old.key.start); ok {
			s = slices.Delete(s, j, j+1)
		}
		if len(s) == 0 {
			delete(c.byPID, old.key.pid)
		} else {
			c.byPID[old.key.pid] = s
		}
		c.stats.Evictions++
	}
	return e
}

func (c *ProcessCache) userName(uid uint32) string {
	if name, ok := c.users[uid]; ok {
		return name
	}
	lookup := c.opts.UserName
	if lookup == nil {
		lookup = procLookupUser
	}
	name, err := lookup(uid)
	if err != nil {
		name = ""
	}
	if len(c.users) >= procMaxUserNames {
		clear(c.users)
	}
	c.users[uid] = name
	return name
}

func procLookupUser(uid uint32) (string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

// procName is the kernel's command name, which is cut at 15 bytes,
// completed from the executable or argv[0] when one of them starts with it.
func procName(comm, exe string, args []string) string {
	const commMax = 15 // TASK_COMM_LEN - 1
	if len(comm) < commMax {
		return comm
	}
	cands := []string{filepath.Base(strings.TrimSuffix(exe, " (deleted)"))}
	if len(args) > 0 {
		cands = append(cands, filepath.Base(args[0]))
	}
	for _, c := range cands {
		if len(c) > len(comm) && strings.HasPrefix(c, comm) {
			return c
		}
	}
	return comm
}

// procTicksToDuration converts clock ticks without overflowing for long
// uptimes.
func procTicksToDuration(ticks uint64, hz int64) time.Duration {
	h := uint64(hz)
	return time.Duration(ticks/h)*time.Second + time.Duration(ticks%h)*time.Second/time.Duration(h)
}

// CSAdHoc is CS_ADHOC (0x00000002, xnu osfmk/kern/cs_blobs.h): the code is
// ad-hoc signed, so its signing id is whatever the signer chose and it has
// no team id.
const CSAdHoc uint32 = 0x00000002

// NewCodeSignature builds a CodeSignature from Endpoint Security's
// signing_id, team_id, codesigning_flags and is_platform_binary.
func NewCodeSignature(signingID, teamID string, flags uint32, platformBinary bool) *CodeSignature {
	valid, platform := IdentityFromCodesigningFlags(flags)
	return &CodeSignature{
		SigningID: signingID,
		TeamID:    teamID,
		Flags:     flags,
		Valid:     valid,
		AdHoc:     flags&CSAdHoc != 0,
		Platform:  platform || platformBinary,
	}
}

// CodeIdentity returns what the browser classifier needs of p: its
// executable and, when known, its code signature. The responsible
// process's fields stay empty (a Process does not know its responsible
// process; use IdentityFromEvent when an event does).
func (p *Process) CodeIdentity() CodeIdentity {
	var id CodeIdentity
	if p == nil {
		return id
	}
	id.Executable = p.Executable
	if c := p.Code; c != nil {
		id.SigningID = c.SigningID
		id.TeamID = c.TeamID
		id.ValidSignature = c.Valid
		id.PlatformBinary = c.Platform
	}
	return id
}
