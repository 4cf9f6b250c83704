package attribution

// sockinfoIndex is the socket cache shared by the macOS tables (libproc and
// lsof): sockets by 5-tuple, each with the time it was last seen, kept for a
// grace period after it disappears so that a connection whose process has
// already closed it (short uploads, short-lived tools) is still attributed.

import (
	"net/netip"
	"time"
)

const (
	// DefaultSocketGrace is how long a socket stays attributable after the
	// last scan that saw it.
	DefaultSocketGrace = 30 * time.Second
	// DefaultMaxSockets bounds the sockets a table remembers.
	DefaultMaxSockets = 1 << 18
)

// sockinfoKey is a socket's identity in the index. Addresses are unmapped and
// without zone (packets carry no zone); an unspecified local address is the
// zero Addr, so a wildcard socket matches either family (a dual-stack ::
// socket is reported as 0.0.0.0, see DecodeSocketFDInfo); a socket with no
// peer has the zero Remote.
type sockinfoKey struct {
	proto         uint8
	local, remote netip.AddrPort
}

func sockinfoKeyOf(proto uint8, local, remote netip.AddrPort) sockinfoKey {
	return sockinfoKey{proto: proto, local: sockinfoNormLocal(local), remote: sockinfoNormRemote(remote)}
}

func sockinfoNormAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func sockinfoNormLocal(ap netip.AddrPort) netip.AddrPort {
	a := sockinfoNormAddr(ap.Addr())
	if !a.IsValid() || a.IsUnspecified() {
		return netip.AddrPortFrom(netip.Addr{}, ap.Port())
	}
	return netip.AddrPortFrom(a, ap.Port())
}

func sockinfoNormRemote(ap netip.AddrPort) netip.AddrPort {
	a := sockinfoNormAddr(ap.Addr())
	if (!a.IsValid() || a.IsUnspecified()) && ap.Port() == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, ap.Port())
}

type sockinfoEntry struct {
	sock Socket
	seen time.Time
}

type sockinfoIndex struct {
	grace      time.Duration
	max        int
	entries    map[sockinfoKey]*sockinfoEntry
	dropped    uint64    // sockets not remembered because the index was full
	lastExpire time.Time // last expiry forced by a full index
}

func newSockinfoIndex(grace time.Duration, max int) *sockinfoIndex {
	if grace <= 0 {
		grace = DefaultSocketGrace
	}
	if max <= 0 {
		max = DefaultMaxSockets
	}
	return &sockinfoIndex{grace: grace, max: max, entries: make(map[sockinfoKey]*sockinfoEntry)}
}

// put records s as seen at now. When two processes hold the same socket
// (inherited descriptors, SO_REUSEPORT) the last one put wins.
func (x *sockinfoIndex) put(s Socket, now time.Time) {
	k := sockinfoKeyOf(s.Proto, s.Local, s.Remote)
	if e, ok := x.entries[k]; ok {
		e.sock, e.seen = s, now
		return
	}
	if len(x.entries) >= x.max {
		// Expiring walks the whole index: when full, at most once a
		// second, so a scan over a full index stays linear.
		if now.Sub(x.lastExpire) >= time.Second || now.Before(x.lastExpire) {
			x.lastExpire = now
			x.expire(now)
		}
		if len(x.entries) >= x.max {
			x.dropped++
			return
		}
	}
	x.entries[k] = &sockinfoEntry{sock: s, seen: now}
}

// expire forgets the sockets not seen within the grace period.
func (x *sockinfoIndex) expire(now time.Time) {
	for k, e := range x.entries {
		if now.Sub(e.seen) > x.grace {
			delete(x.entries, k)
		}
	}
}

// lookup finds the socket of a connection, trying in order:
//   - the exact 5-tuple;
//   - UDP: a socket bound to the local address and port with no peer, then
//     one bound to the wildcard address;
//   - TCP: a listening socket on the local address and port, then on the
//     wildcard address (a connection that is being accepted).
//
// Entries older than the grace period are ignored.
func (x *sockinfoIndex) lookup(proto uint8, local, remote netip.AddrPort, now time.Time) (sockinfoEntry, bool) {
	k := sockinfoKeyOf(proto, local, remote)
	if e, ok := x.fresh(k, now); ok {
		return e, true
	}
	bound := sockinfoKey{proto: proto, local: k.local}
	wild := sockinfoKey{proto: proto, local: netip.AddrPortFrom(netip.Addr{}, k.local.Port())}
	for _, c := range [...]sockinfoKey{bound, wild} {
		e, ok := x.fresh(c, now)
		if !ok {
			continue
		}
		if proto == TCP && e.sock.State != "LISTEN" {
			continue
		}
		return e, true
	}
	return sockinfoEntry{}, false
}

func (x *sockinfoIndex) fresh(k sockinfoKey, now time.Time) (sockinfoEntry, bool) {
	e, ok := x.entries[k]
	if !ok || now.Sub(e.seen) > x.grace {
		return sockinfoEntry{}, false
	}
	return *e, true
}

// owner is the Owner answer for an entry.
func (e sockinfoEntry) owner() Owner {
	return Owner{PID: e.sock.PID, UID: e.sock.UID, Inode: e.sock.Inode, Seen: e.seen}
}
