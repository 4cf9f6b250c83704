// This file is the OS-independent part of the procfs socket table: its
// options, its counters and the bounded memory of recently seen sockets.
// The table itself is in procfs_linux.go (procfs_other.go elsewhere).

package attribution

import (
	"container/list"
	"net/netip"
	"time"
)

// Defaults of ProcTableOptions.
const (
	DefaultProcSocketGrace    = 30 * time.Second
	DefaultProcMaxRecent      = 65536
	DefaultProcRescanInterval = 50 * time.Millisecond
)

// ProcTableOptions configures NewProcTable. The zero value means the
// documented defaults.
type ProcTableOptions struct {
	// Grace is how long a socket → owner answer is remembered after the
	// socket was last seen, so a flow whose process (or socket) is gone by
	// the time it is looked up is still attributed. Default
	// DefaultProcSocketGrace (30s); negative disables.
	Grace time.Duration
	// MaxRecent bounds the remembered socket → owner answers; the oldest
	// are evicted first (counted in Stats.RecentEvictions). Default
	// DefaultProcMaxRecent.
	MaxRecent int
	// MinRescanInterval is the shortest interval between two walks over
	// every process's fd table, and how long an inode no process holds is
	// remembered as such. Walks over new processes and over processes whose
	// fd count changed are not limited. Default DefaultProcRescanInterval.
	MinRescanInterval time.Duration
	// DisableSockDiag turns off the netlink sock_diag fast path and reads
	// root/net/* instead. The fast path asks the kernel of the sensor's own
	// network namespace, so it is only used when root is "/proc".
	DisableSockDiag bool
	// OnOwner, when set, is called with the pid of each owner the table
	// learns for a socket it had not seen, after Lookup or Scan released
	// the table's lock and before it returns. Wire (*ProcessCache).Snapshot
	// here to describe processes while they live.
	OnOwner func(pid int32)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *ProcTableOptions) grace() time.Duration {
	switch {
	case o.Grace < 0:
		return 0
	case o.Grace == 0:
		return DefaultProcSocketGrace
	}
	return o.Grace
}

func (o *ProcTableOptions) maxRecent() int {
	if o.MaxRecent > 0 {
		return o.MaxRecent
	}
	return DefaultProcMaxRecent
}

func (o *ProcTableOptions) minRescanInterval() time.Duration {
	if o.MinRescanInterval > 0 {
		return o.MinRescanInterval
	}
	return DefaultProcRescanInterval
}

func (o *ProcTableOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// ProcTableStats are the counters of a ProcTable since it was made.
type ProcTableStats struct {
	Lookups         uint64 // calls to Lookup
	Hits            uint64 // answered from a live socket and its owner
	GraceHits       uint64 // answered from a remembered (recently closed) socket
	Misses          uint64 // ErrNotFound
	SockDiagQueries uint64 // netlink sock_diag requests sent
	SockDiagErrors  uint64 // sock_diag failures that fell back to root/net
	ProcNetReads    uint64 // root/net/* files read
	BadLines        uint64 // unparsable root/net lines skipped
	Rescans         uint64 // searches of the /proc/*/fd tables for inodes
	// FullRescans counts searches that went on to the processes whose fd
	// table looked unchanged (at most one per MinRescanInterval, unless Scan).
	FullRescans uint64
	ScannedPIDs uint64 // fd tables read
	// ProbedPIDs counts the fd tables read by number, newest pid first,
	// before root was listed (included in ScannedPIDs).
	ProbedPIDs uint64
	ScannedFDs uint64 // fd links read
	// UnreadableFDTables counts fd tables that could not be read: the
	// process exited meanwhile, or the sensor lacks the right (not root).
	UnreadableFDTables uint64
	Scans              uint64 // calls to Scan
	RecentEvictions    uint64 // remembered answers evicted by MaxRecent
	SockDiagActive     bool   // the sock_diag fast path is in use now
	RecentSockets      int    // remembered answers now
	IndexedInodes      int    // socket inodes with a known owner now
	KnownPIDs          int    // processes whose fd table is indexed now
}

// procFlowKey is a socket's identity as the sensor sees it. remote is zero for
// an unconnected UDP socket.
type procFlowKey struct {
	proto         uint8
	local, remote netip.AddrPort
}

// procRecent remembers owner answers by flow for a grace period, with a
// bound on their number. Entries are kept in the order they were last seen.
type procRecent struct {
	max       int
	m         map[procFlowKey]*list.Element
	order     list.List // of *procRecentEntry, most recently seen at the front
	evictions uint64
}

type procRecentEntry struct {
	key   procFlowKey
	owner Owner // owner.Seen is when the socket was last seen alive
}

func newProcRecent(max int) *procRecent {
	return &procRecent{max: max, m: make(map[procFlowKey]*list.Element)}
}

// put remembers owner for k, seen at owner.Seen. It reports whether k was
// new or had another owner.
func (r *procRecent) put(k procFlowKey, owner Owner) (changed bool) {
	if el, ok := r.m[k]; ok {
		e := el.Value.(*procRecentEntry)
		changed = e.owner.PID != owner.PID || e.owner.Inode != owner.Inode
		e.owner = owner
		r.order.MoveToFront(el)
		return changed
	}
	r.m[k] = r.order.PushFront(&procRecentEntry{key: k, owner: owner})
	for len(r.m) > r.max {
		last := r.order.Back()
		delete(r.m, last.Value.(*procRecentEntry).key)
		r.order.Remove(last)
		r.evictions++
	}
	return true
}

// get returns the owner remembered for k if it was seen at or after since.
func (r *procRecent) get(k procFlowKey, since time.Time) (Owner, bool) {
	el, ok := r.m[k]
	if !ok {
		return Owner{}, false
	}
	o := el.Value.(*procRecentEntry).owner
	if o.Seen.Before(since) {
		return Owner{}, false
	}
	return o, true
}

// expire forgets the entries last seen before since.
func (r *procRecent) expire(since time.Time) {
	for el := r.order.Back(); el != nil; el = r.order.Back() {
		e := el.Value.(*procRecentEntry)
		if !e.owner.Seen.Before(since) {
			return
		}
		delete(r.m, e.key)
		r.order.Remove(el)
	}
}

// lookupUDP finds a remembered UDP answer: the exact flow first, then an
// unconnected socket on the local address, then one on the wildcard
// address of either family.
func (r *procRecent) lookupUDP(local, remote netip.AddrPort, since time.Time) (Owner, bool) {
	if o, ok := r.get(procFlowKey{UDP, local, remote}, since); ok {
		return o, true
	}
	if o, ok := r.get(procFlowKey{UDP, local, netip.AddrPort{}}, since); ok {
		return o, true
	}
	for _, w := range procWildcards(local.Addr()) {
		if o, ok := r.get(procFlowKey{UDP, netip.AddrPortFrom(w, local.Port()), netip.AddrPort{}}, since); ok {
			return o, true
		}
	}
	return Owner{}, false
}

// procWildcards are the unspecified addresses a socket can be bound to and
// still receive traffic for a: 0.0.0.0 and :: for IPv4 (a dual-stack IPv6
// socket receives IPv4), :: for IPv6.
func procWildcards(a netip.Addr) []netip.Addr {
	if a.Is4() {
		return procWildcards4
	}
	return procWildcards6
}

var (
	procWildcards4 = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	procWildcards6 = []netip.Addr{netip.IPv6Unspecified()}
)
