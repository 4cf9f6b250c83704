// This file is the Linux socket table: a flow's 5-tuple → socket inode
// (netlink sock_diag, or root/net/{tcp,udp}{,6}) → the process holding the
// inode (the index of root/*/fd in procfs_index_linux.go) → a remembered
// answer kept for a grace period. The hot path to keep fast is
// ProcTable.Lookup.

package attribution

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// procSockdiagMaxFailures is how many sock_diag failures in a row turn the
// fast path off for the table's life.
const procSockdiagMaxFailures = 3

// procMaxUnowned bounds the memory of inodes no process was seen to hold.
const procMaxUnowned = 4096

// ProcTable is the Linux SocketTable. It is safe for concurrent use; calls
// are serialized.
//
// Lookup finds the socket of the exact 5-tuple (for UDP, failing that, the
// unconnected socket bound to the local port), then the process holding the
// socket's inode. The inode → (pid, fd) index is built from root/PID/fd and
// kept incrementally: a lookup of an inode the index lacks reads first the
// fd tables of processes that appeared since the last search, then of those
// whose fd count changed, and only then, at most once per
// MinRescanInterval, every other process (a process may close a socket and
// open another under the same count). Each search stops at the process that
// holds the inode. An index hit is confirmed with one readlink.
//
// Every answer is remembered by 5-tuple for Grace after the socket was last
// seen, so a flow whose process already exited, or closed the socket, is
// still attributed when the table saw the socket alive: by an earlier
// Lookup, or by Scan. A remembered answer is used only when no live socket
// with another inode now has the 5-tuple (port reuse).
type ProcTable struct {
	root        string
	opts        ProcTableOptions
	grace       time.Duration
	rescanEvery time.Duration

	mu           sync.Mutex
	diag         *sockdiagConn // nil when off
	diagFailures int
	br           *bufio.Reader
	pids         map[int32]*procPIDState
	inodes       map[uint64]procInodeOwner
	unowned      map[uint64]time.Time // inodes a full walk found no holder of, and when
	lastFullWalk time.Time
	recent       *procRecent
	stats        ProcTableStats
	pending      []int32 // OnOwner calls to make once unlocked
	want         map[uint64]struct{}
	listed       map[int32]struct{}
	probed       map[int32]procPIDState // fd tables probe read in this rescan
	lastProbed   int32                  // the last pid allocated when rescan last probed
	scratch      []Socket
	linkBuf      [64]byte
}

var _ SocketTable = (*ProcTable)(nil)

// NewProcTable returns the socket table of the kernel whose proc file system
// is mounted at root ("/proc" for this host; a fixture tree in tests). The
// netlink fast path is used only when root is "/proc" (see
// ProcTableOptions.DisableSockDiag); if it cannot be opened the table reads
// root/net instead.
func NewProcTable(root string, opts ProcTableOptions) (*ProcTable, error) {
	if root == "" {
		root = "/proc"
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, procPathError("proc root", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("attribution: proc root %s is not a directory", root)
	}
	t := &ProcTable{
		root:        root,
		opts:        opts,
		grace:       opts.grace(),
		rescanEvery: opts.minRescanInterval(),
		br:          newProcNetReader(),
		pids:        make(map[int32]*procPIDState),
		inodes:      make(map[uint64]procInodeOwner),
		unowned:     make(map[uint64]time.Time),
		recent:      newProcRecent(opts.maxRecent()),
		want:        make(map[uint64]struct{}),
		listed:      make(map[int32]struct{}),
		probed:      make(map[int32]procPIDState),
	}
	if !opts.DisableSockDiag && root == "/proc" {
		if d, err := newSockdiagConn(); err == nil {
			t.diag = d
		} else {
			t.stats.SockDiagErrors++
		}
	}
	return t, nil
}

// Close implements SocketTable: it closes the netlink socket.
func (t *ProcTable) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.diag == nil {
		return nil
	}
	err := t.diag.Close()
	t.diag = nil
	return err
}

// Stats returns the table's counters.
func (t *ProcTable) Stats() ProcTableStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.RecentEvictions = t.recent.evictions
	s.RecentSockets = len(t.recent.m)
	s.IndexedInodes = len(t.inodes)
	s.KnownPIDs = len(t.pids)
	s.SockDiagActive = t.diag != nil
	return s
}

// Lookup implements SocketTable. local is this host's end; IPv4-mapped
// addresses are accepted and unmapped. It returns an error wrapping
// ErrNotFound when no live socket with a visible owner matches and no
// answer for the 5-tuple is remembered, and another error for a bad
// argument or an unreadable table.
func (t *ProcTable) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	local = procUnmap(local)
	remote = procUnmap(remote)
	if proto != TCP && proto != UDP {
		return Owner{}, fmt.Errorf("attribution: lookup: unknown protocol %d", proto)
	}
	if !local.IsValid() || local.Port() == 0 || !remote.IsValid() || local.Addr().Is4() != remote.Addr().Is4() {
		return Owner{}, fmt.Errorf("attribution: lookup: bad endpoints %v → %v", local, remote)
	}
	t.mu.Lock()
	now := t.opts.now()
	t.stats.Lookups++
	o, err := t.lookupLocked(proto, local, remote, now)
	pending := t.takePending()
	t.mu.Unlock()
	t.notify(pending)
	return o, err
}

func (t *ProcTable) lookupLocked(proto uint8, local, remote netip.AddrPort, now time.Time) (Owner, error) {
	s, found, err := t.findSocket(proto, local, remote)
	if err != nil {
		return Owner{}, err
	}
	key := procFlowKey{proto, local, remote}
	if found && s.Inode != 0 {
		if pid, ok := t.ownerOf(s.Inode, now); ok {
			o := Owner{PID: pid, UID: s.UID, Inode: s.Inode, Seen: now}
			if t.recent.put(key, o) && t.opts.OnOwner != nil {
				t.pending = append(t.pending, pid)
			}
			t.stats.Hits++
			return o, nil
		}
	}
	if t.grace > 0 {
		since := now.Add(-t.grace)
		t.recent.expire(since)
		var o Owner
		var ok bool
		if proto == UDP {
			o, ok = t.recent.lookupUDP(local, remote, since)
		} else {
			o, ok = t.recent.get(key, since)
		}
		if ok && (!found || s.Inode == 0 || s.Inode == o.Inode) {
			t.stats.GraceHits++
			return o, nil
		}
	}
	t.stats.Misses++
	name := procProtoName(proto)
	if found {
		if s.Inode == 0 {
			// TIME_WAIT or closing: the process let go of the socket, and no
			// retry will find an owner.
			return Owner{}, fmt.Errorf("%w (%w): %s %v → %v: socket inode 0 has no visible owner", ErrNotFound, ErrSocketClosed, name, local, remote)
		}
		return Owner{}, fmt.Errorf("%w: %s %v → %v: socket inode %d has no visible owner", ErrNotFound, name, local, remote, s.Inode)
	}
	return Owner{}, fmt.Errorf("%w: no %s socket %v → %v", ErrNotFound, name, local, remote)
}

// Scan reads every TCP and UDP socket of the table, finds the owners of the
// sockets the index lacks, and remembers each socket's owner for Grace.
// Calling it at a cadence lets flows of processes that lived between two
// scans but exited before their flow was looked up still be attributed.
// Listening TCP sockets and sockets without an inode are skipped. Owners
// already in the index are taken as they are, without the readlink that
// Lookup confirms them with. It returns the first error reading root/net;
// bad lines are only counted.
func (t *ProcTable) Scan() error {
	t.mu.Lock()
	err := t.scanLocked()
	pending := t.takePending()
	t.mu.Unlock()
	t.notify(pending)
	return err
}

func (t *ProcTable) scanLocked() error {
	now := t.opts.now()
	t.stats.Scans++
	socks := t.scratch[:0]
	var firstErr error
	for _, f := range procNetFiles {
		err := t.readProcNet(f.name, f.proto, f.ipv6, func(s *Socket) bool {
			if s.Inode != 0 && !(s.Proto == TCP && s.State == "LISTEN") {
				socks = append(socks, *s)
			}
			return true
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	t.scratch = socks[:0]
	clear(t.want)
	t.expireUnowned(now)
	for i := range socks {
		ino := socks[i].Inode
		if _, ok := t.inodes[ino]; ok {
			continue
		}
		if ts, ok := t.unowned[ino]; ok && now.Sub(ts) < t.rescanEvery {
			continue
		}
		t.want[ino] = struct{}{}
	}
	if len(t.want) > 0 {
		if t.rescan(t.want, now, true) {
			for ino := range t.want {
				t.unowned[ino] = now
			}
		}
	}
	for i := range socks {
		s := &socks[i]
		ow, ok := t.inodes[s.Inode]
		if !ok {
			continue
		}
		o := Owner{PID: ow.pid, UID: s.UID, Inode: s.Inode, Seen: now}
		if t.recent.put(procFlowKey{s.Proto, s.Local, s.Remote}, o) && t.opts.OnOwner != nil {
			t.pending = append(t.pending, ow.pid)
		}
	}
	if t.grace > 0 {
		t.recent.expire(now.Add(-t.grace))
	}
	return firstErr
}

func (t *ProcTable) takePending() []int32 {
	if len(t.pending) == 0 {
		return nil
	}
	p := slices.Clone(t.pending)
	slices.Sort(p)
	p = slices.Compact(p)
	t.pending = t.pending[:0]
	return p
}

func (t *ProcTable) notify(pids []int32) {
	for _, pid := range pids {
		t.opts.OnOwner(pid)
	}
}

// findSocket returns the live socket that carries the flow.
func (t *ProcTable) findSocket(proto uint8, local, remote netip.AddrPort) (Socket, bool, error) {
	if t.diag != nil {
		t.stats.SockDiagQueries++
		a, found, err := t.diag.query(proto, local, remote)
		if err == nil {
			t.diagFailures = 0
			found = found && procDiagMatches(proto, a, local, remote)
			if !found && local.Addr().IsLinkLocalUnicast() {
				// The kernel matches a socket bound to an interface (as
				// link-local connections are) only when the request names
				// that interface, which a flow's addresses do not say:
				// search root/net instead.
				return t.findInProcNet(proto, local, remote)
			}
			if !found {
				return Socket{}, false, nil
			}
			s := Socket{Proto: proto, Local: a.local, UID: a.uid, Inode: a.inode, FD: -1}
			if a.remote.Port() != 0 || !a.remote.Addr().IsUnspecified() {
				s.Remote = a.remote
			}
			if proto == TCP && int(a.state) < len(procTCPStates) {
				s.State = procTCPStates[a.state]
			}
			return s, true, nil
		}
		t.stats.SockDiagErrors++
		if t.diagFailures++; t.diagFailures >= procSockdiagMaxFailures {
			t.diag.Close()
			t.diag = nil
		}
	}
	return t.findInProcNet(proto, local, remote)
}

// procDiagMatches checks the kernel's answer: a TCP answer must be the
// exact connection (not the listener of the local port), a UDP answer a
// socket on the local port that is connected to remote or to nothing.
func procDiagMatches(proto uint8, a sockdiagAnswer, local, remote netip.AddrPort) bool {
	if proto == TCP {
		return a.local == local && a.remote == remote
	}
	if a.local.Port() != local.Port() || (a.local.Addr() != local.Addr() && !a.local.Addr().IsUnspecified()) {
		return false
	}
	return a.remote == remote || (a.remote.Port() == 0 && a.remote.Addr().IsUnspecified())
}

type procNetFile struct {
	name  string
	proto uint8
	ipv6  bool
}

var procNetFiles = []procNetFile{
	{"net/tcp", TCP, false}, {"net/tcp6", TCP, true},
	{"net/udp", UDP, false}, {"net/udp6", UDP, true},
}

// findInProcNet searches root/net for the flow's socket. An IPv4 flow is
// searched in the IPv6 file as well: a dual-stack socket carries it with
// IPv4-mapped addresses.
func (t *ProcTable) findInProcNet(proto uint8, local, remote netip.AddrPort) (Socket, bool, error) {
	var (
		best      Socket
		bestScore = -1
	)
	for _, f := range procNetFiles {
		if f.proto != proto || (!f.ipv6 && !local.Addr().Is4()) {
			continue
		}
		err := t.readProcNet(f.name, f.proto, f.ipv6, func(s *Socket) bool {
			score := procMatchScore(s, local, remote)
			if score < 0 {
				return true
			}
			if s.Inode != 0 {
				score++ // prefer a socket a process holds
			}
			if score > bestScore {
				best, bestScore = *s, score
			}
			return bestScore < procBestScore
		})
		if err != nil {
			return Socket{}, false, err
		}
		if bestScore == procBestScore {
			break
		}
	}
	return best, bestScore >= 0, nil
}

const procBestScore = 5 // exact local and remote (4), with an inode (+1)

// procMatchScore rates how well s carries the flow: -1 not at all; TCP
// needs the exact pair; UDP takes the exact pair (4) or, for unconnected
// sockets, the local address (2) or the wildcard address (1) on the port.
func procMatchScore(s *Socket, local, remote netip.AddrPort) int {
	if s.Local.Port() != local.Port() {
		return -1
	}
	if s.Proto == TCP {
		if s.Local == local && s.Remote == remote {
			return 4
		}
		return -1
	}
	score := 0
	switch {
	case s.Local.Addr() == local.Addr():
		score = 2
	case s.Local.Addr().IsUnspecified():
		score = 1
	default:
		return -1
	}
	switch {
	case s.Remote == remote:
		score += 2
	case s.Remote.IsValid():
		return -1 // connected elsewhere
	}
	return score
}

// readProcNet streams root/name through fn. A missing file (no IPv6) is
// not an error; bad lines are counted in the stats.
func (t *ProcTable) readProcNet(name string, proto uint8, ipv6 bool, fn func(*Socket) bool) error {
	path := filepath.Join(t.root, name)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return procPathError(name, err)
	}
	defer f.Close()
	t.stats.ProcNetReads++
	t.br.Reset(f)
	err = scanProcNet(t.br, proto, ipv6, fn)
	t.br.Reset(nil)
	var bad *ProcNetError
	if errors.As(err, &bad) {
		t.stats.BadLines += uint64(bad.Bad)
		return nil
	}
	return err
}

// procPathError wraps a failure to read part of the proc tree, mapping
// permission errors to ErrPermission.
func procPathError(what string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("attribution: %s: %w (%w)", what, ErrPermission, err)
	}
	return fmt.Errorf("attribution: %s: %w", what, err)
}

func procUnmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

func procProtoName(proto uint8) string {
	if proto == UDP {
		return "udp"
	}
	return "tcp"
}
