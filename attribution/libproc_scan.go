package attribution

// The scan logic of the macOS libproc socket table: walk pids → socket
// descriptors → socket_fdinfo, remember what was read, and re-read as
// little as possible. It is untagged and talks to libproc through the
// small libprocAPI interface, so it is tested on Linux with a fake;
// libproc_darwin.go binds the real calls.
//
// A miss triggers a rescan, rate-limited:
//   - a full scan (every socket descriptor re-read) at most once per
//     FullRescan;
//   - between them, a quick scan at most once per QuickRescan: it lists
//     every process's descriptors (one call per process) but re-reads only
//     descriptors it has not seen and sockets whose 5-tuple can still
//     change (listening, bound, unconnected, UDP). A connected TCP socket
//     and a non-Internet socket (most of a Mac's sockets are Unix ones)
//     cannot change without the descriptor being closed and reused, which
//     the next full scan catches.
//
// Sockets stay attributable for Grace after the last scan that saw them.

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Defaults of LibprocOptions.
const (
	DefaultLibprocQuickRescan = 100 * time.Millisecond
	DefaultLibprocFullRescan  = 2 * time.Second
)

// LibprocOptions configures a LibprocTable. Zero fields take the defaults.
type LibprocOptions struct {
	// Grace keeps sockets attributable after the last scan that saw them
	// (DefaultSocketGrace, 30s).
	Grace time.Duration
	// QuickRescan is the least time between two quick scans
	// (DefaultLibprocQuickRescan).
	QuickRescan time.Duration
	// FullRescan is the least time between two full scans
	// (DefaultLibprocFullRescan).
	FullRescan time.Duration
	// MaxSockets bounds the sockets remembered (DefaultMaxSockets).
	MaxSockets int
	// Fallback is asked on a miss when libproc could not read some
	// processes (not root) or failed. On macOS, NewLibprocTable sets an
	// LsofTable built from Lsof unless NoLsofFallback is set.
	Fallback SocketTable
	// NoLsofFallback disables the default lsof fallback.
	NoLsofFallback bool
	// Lsof configures the default lsof fallback.
	Lsof LsofOptions
	// Logf, when set, is told once that processes could not be read.
	Logf func(format string, args ...any)
	// Now is the clock (time.Now).
	Now func() time.Time
}

// LibprocStats counts what a LibprocTable did.
type LibprocStats struct {
	QuickScans, FullScans uint64
	// PIDs and Sockets are the processes and TCP/UDP sockets of the last
	// scan; Denied the processes it could not read (permission).
	PIDs, Sockets, Denied int
	// SocketReads counts proc_pidfdinfo calls.
	SocketReads uint64
	// BadSocketInfos counts socket_fdinfo answers that did not decode.
	BadSocketInfos uint64
	// FallbackLookups and FallbackHits count lookups passed to the
	// fallback table and those it answered.
	FallbackLookups, FallbackHits uint64
	// Dropped counts sockets not remembered because the table was full.
	Dropped uint64
}

// libprocAPI is what the scanner needs from libproc. Errors wrap
// ErrPermission (EPERM/EACCES) or ErrNotFound (the process or descriptor
// is gone) when that is the cause.
type libprocAPI interface {
	// listPIDs returns a proc_listpids(PROC_ALL_PIDS) answer.
	listPIDs() ([]byte, error)
	// listFDs returns a proc_pidinfo(PROC_PIDLISTFDS) answer.
	listFDs(pid int32) ([]byte, error)
	// socketInfo fills buf with proc_pidfdinfo(PROC_PIDFDSOCKETINFO) and
	// returns the byte count.
	socketInfo(pid, fd int32, buf []byte) (int, error)
	// shortInfo returns a proc_pidinfo(PROC_PIDT_SHORTBSDINFO) answer.
	shortInfo(pid int32) ([]byte, error)
}

type libprocPID struct {
	fds      map[int32]libprocFD
	uid      uint32
	uidKnown bool
	gen      uint64
}

type libprocFD struct {
	// final: the socket's 5-tuple cannot change while the descriptor
	// stays open (connected TCP, or not a TCP/UDP socket at all).
	final bool
	inet  bool
	sock  Socket
}

type libprocScanner struct {
	api      libprocAPI
	opts     LibprocOptions
	fallback SocketTable

	mu        sync.Mutex
	idx       *sockinfoIndex
	pids      map[int32]*libprocPID
	gen       uint64
	buf       []byte
	lastQuick time.Time
	lastFull  time.Time
	lastErr   error
	stats     LibprocStats
	warned    bool
}

func newLibprocScanner(api libprocAPI, opts LibprocOptions) *libprocScanner {
	if opts.QuickRescan <= 0 {
		opts.QuickRescan = DefaultLibprocQuickRescan
	}
	if opts.FullRescan <= 0 {
		opts.FullRescan = DefaultLibprocFullRescan
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &libprocScanner{
		api:      api,
		opts:     opts,
		fallback: opts.Fallback,
		idx:      newSockinfoIndex(opts.Grace, opts.MaxSockets),
		pids:     make(map[int32]*libprocPID),
		buf:      make([]byte, SocketFDInfoSize),
	}
}

// Lookup implements SocketTable.
func (s *libprocScanner) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	o, askFallback, err := s.lookupCache(proto, local, remote)
	if !askFallback {
		return o, err
	}
	// The fallback (lsof) may take seconds: ask it without holding the
	// lock, so hits on the libproc cache are not held up.
	fo, ferr := s.fallback.Lookup(proto, local, remote)
	s.mu.Lock()
	s.stats.FallbackLookups++
	if ferr == nil {
		s.stats.FallbackHits++
	}
	s.mu.Unlock()
	if ferr == nil {
		return fo, nil
	}
	if err != nil {
		return Owner{}, err
	}
	return Owner{}, ErrNotFound
}

func (s *libprocScanner) lookupCache(proto uint8, local, remote netip.AddrPort) (Owner, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if e, ok := s.idx.lookup(proto, local, remote, now); ok {
		return e.owner(), false, nil
	}
	var err error
	switch {
	case s.lastFull.IsZero() || now.Sub(s.lastFull) >= s.opts.FullRescan:
		err = s.scanLocked(true)
	case now.Sub(s.lastQuick) >= s.opts.QuickRescan:
		err = s.scanLocked(false)
	default:
		err = s.lastErr
	}
	if err == nil {
		if e, ok := s.idx.lookup(proto, local, remote, s.opts.Now()); ok {
			return e.owner(), false, nil
		}
	}
	if s.fallback != nil && (err != nil || s.stats.Denied > 0) {
		return Owner{}, true, err
	}
	if err != nil {
		return Owner{}, false, err
	}
	return Owner{}, false, ErrNotFound
}

// Refresh does a full scan now.
func (s *libprocScanner) Refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scanLocked(true)
}

// Stats returns the counters.
func (s *libprocScanner) Stats() LibprocStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Dropped = s.idx.dropped
	return st
}

func (s *libprocScanner) scanLocked(full bool) error {
	now := s.opts.Now()
	s.lastQuick = now
	if full {
		s.lastFull = now
		s.stats.FullScans++
	} else {
		s.stats.QuickScans++
	}
	raw, err := s.api.listPIDs()
	if err != nil {
		s.lastErr = fmt.Errorf("attribution: libproc: listing processes: %w", err)
		return s.lastErr
	}
	s.lastErr = nil
	s.gen++
	pids := DecodePIDList(raw)
	denied, sockets := 0, 0
	for _, pid := range pids {
		n, ok := s.scanPID(pid, full, now)
		if !ok {
			denied++
		}
		sockets += n
	}
	for pid, p := range s.pids {
		if p.gen != s.gen {
			delete(s.pids, pid) // exited; its sockets stay in the index for Grace
		}
	}
	s.idx.expire(now)
	s.stats.PIDs, s.stats.Sockets, s.stats.Denied = len(pids), sockets, denied
	if denied > 0 && !s.warned && s.opts.Logf != nil {
		s.warned = true
		then := "their sockets are not attributed"
		if s.fallback != nil {
			then = "asking the fallback table on misses"
		}
		s.opts.Logf("attribution: libproc could not read the descriptors of %d of %d processes (not root?); %s", denied, len(pids), then)
	}
	return nil
}

// scanPID reads pid's socket descriptors. It returns the TCP/UDP sockets
// found, and false when permission was denied.
func (s *libprocScanner) scanPID(pid int32, full bool, now time.Time) (int, bool) {
	raw, err := s.api.listFDs(pid)
	if err != nil {
		delete(s.pids, pid)
		return 0, !errors.Is(err, ErrPermission)
	}
	p := s.pids[pid]
	if p == nil {
		p = &libprocPID{fds: map[int32]libprocFD{}}
		s.pids[pid] = p
	}
	p.gen = s.gen
	if full {
		p.uidKnown = false
	}
	fds := DecodeFDList(raw)
	next := make(map[int32]libprocFD, len(p.fds))
	sockets := 0
	for _, fi := range fds {
		if fi.Type != ProxFDTypeSocket {
			continue
		}
		if old, ok := p.fds[fi.FD]; ok && old.final && !full {
			next[fi.FD] = old
			if old.inet {
				s.idx.put(old.sock, now)
				sockets++
			}
			continue
		}
		s.stats.SocketReads++
		n, err := s.api.socketInfo(pid, fi.FD, s.buf)
		if err != nil {
			if errors.Is(err, ErrPermission) {
				p.fds = next
				return sockets, false
			}
			continue // closed since the listing, or the process exited
		}
		sock, err := DecodeSocketFDInfo(s.buf[:min(n, len(s.buf))])
		switch {
		case errors.Is(err, ErrNotInetSocket):
			next[fi.FD] = libprocFD{final: true}
			continue
		case err != nil:
			s.stats.BadSocketInfos++
			continue
		}
		if !p.uidKnown {
			if b, err := s.api.shortInfo(pid); err == nil {
				if si, err := DecodeBSDShortInfo(b); err == nil {
					p.uid, p.uidKnown = si.UID, true
				}
			}
		}
		sock.PID, sock.FD, sock.UID = pid, fi.FD, p.uid
		s.idx.put(sock, now)
		sockets++
		next[fi.FD] = libprocFD{
			final: sock.Proto == TCP && sock.Remote.IsValid(),
			inet:  true,
			sock:  sock,
		}
	}
	p.fds = next
	return sockets, true
}

// Close closes the fallback table.
func (s *libprocScanner) Close() error {
	if s.fallback != nil {
		return s.fallback.Close()
	}
	return nil
}
