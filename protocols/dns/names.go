package dns

import (
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxAddrs is the number of addresses a Names remembers when
// NewNames is given zero or less. At ~200 bytes an entry it is about 3 MB.
const DefaultMaxAddrs = 16384

// MaxNamesPerAddr bounds the names remembered for one address: a CDN
// address serves many names, and the most recently resolved matter most.
const MaxNamesPerAddr = 8

// Names remembers which names recently resolved to which address, so that a
// connection with no Host header can be named by its destination address.
// It is bounded: past its size the least recently resolved address is
// forgotten (counted in Evictions). It is safe for concurrent use.
type Names struct {
	mu    sync.Mutex
	max   int
	m     map[netip.Addr]*nameEntry
	head  *nameEntry // most recently resolved
	tail  *nameEntry
	stats NamesStats
}

// NamesStats are a Names' counters.
type NamesStats struct {
	Addrs int // addresses remembered now
	// Evictions are addresses forgotten because the table was full.
	Evictions uint64
	// NamesDropped are names forgotten for an address that already had
	// MaxNamesPerAddr more recent ones.
	NamesDropped uint64
}

type nameEntry struct {
	addr       netip.Addr
	names      []Resolved // most recent first
	prev, next *nameEntry
}

// NewNames returns a table of at most maxAddrs addresses (DefaultMaxAddrs
// when maxAddrs <= 0).
func NewNames(maxAddrs int) *Names {
	if maxAddrs <= 0 {
		maxAddrs = DefaultMaxAddrs
	}
	return &Names{max: maxAddrs, m: make(map[netip.Addr]*nameEntry)}
}

// Observe records the addresses of a response. Each A/AAAA answer names its
// address with its owner and with every name whose CNAME chain in the same
// response leads to that owner (the name the client asked for first). at is
// the packet time; it orders names, nothing expires by it.
func (n *Names) Observe(r *Response, at time.Time) {
	if r == nil || len(r.Answers) == 0 {
		return
	}
	// Owner -> the names that alias it (the CNAME chain backwards), computed
	// once per owner: round-robin sets repeat the same owner.
	alias := make(map[string]string)
	for i := range r.Answers {
		if a := &r.Answers[i]; a.Type == TypeCNAME {
			if _, dup := alias[a.Target]; !dup {
				alias[a.Target] = a.Name
			}
		}
	}
	chains := make(map[string][]string)
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range r.Answers {
		a := &r.Answers[i]
		if a.Type == TypeCNAME || !a.Addr.IsValid() {
			continue
		}
		chain, ok := chains[a.Name]
		if !ok {
			chain = aliasesOf(alias, a.Name)
			chains[a.Name] = chain
		}
		e := n.entry(a.Addr.Unmap())
		// The owner first and the farthest alias last, so that the name
		// the client asked for ends up first.
		n.add(e, a.Name, at)
		for _, c := range chain {
			n.add(e, c, at)
		}
	}
}

// aliasesOf follows alias (CNAME target -> owner) back from name: its
// aliases, nearest first. A loop ends the walk, and so does MaxAnswers.
func aliasesOf(alias map[string]string, name string) []string {
	var out []string
	cur := name
	for range MaxAnswers {
		owner, ok := alias[cur]
		if !ok || owner == name {
			break
		}
		for _, o := range out {
			if o == owner {
				return out
			}
		}
		out = append(out, owner)
		cur = owner
	}
	return out
}

// entry returns the address's entry, now the most recent, creating it (and
// evicting the oldest) if needed.
func (n *Names) entry(addr netip.Addr) *nameEntry {
	if e := n.m[addr]; e != nil {
		n.unlink(e)
		n.pushFront(e)
		return e
	}
	if len(n.m) >= n.max && n.tail != nil {
		old := n.tail
		n.unlink(old)
		delete(n.m, old.addr)
		n.stats.Evictions++
	}
	e := &nameEntry{addr: addr}
	n.m[addr] = e
	n.pushFront(e)
	return e
}

// add puts name first in e's list.
func (n *Names) add(e *nameEntry, name string, at time.Time) {
	for i := range e.names {
		if e.names[i].Name == name {
			copy(e.names[1:i+1], e.names[:i])
			e.names[0] = Resolved{name, at}
			return
		}
	}
	if len(e.names) >= MaxNamesPerAddr {
		e.names = e.names[:MaxNamesPerAddr-1]
		n.stats.NamesDropped++
	}
	e.names = append(e.names, Resolved{})
	copy(e.names[1:], e.names)
	e.names[0] = Resolved{name, at}
}

// Resolved is a name that resolved to an address, and when it last did.
type Resolved struct {
	Name string
	At   time.Time
}

// Lookup returns the names that resolved to ip with the packet time of their
// latest answer, most recent first (nil when none).
func (n *Names) Lookup(ip netip.Addr) []Resolved {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[ip.Unmap()]
	if e == nil {
		return nil
	}
	return append([]Resolved(nil), e.names...)
}

// Names returns the names that resolved to ip, most recent first (nil when
// none). The slice is the caller's.
func (n *Names) Names(ip netip.Addr) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[ip.Unmap()]
	if e == nil {
		return nil
	}
	out := make([]string, len(e.names))
	for i := range e.names {
		out[i] = e.names[i].Name
	}
	return out
}

// Stats returns the counters.
func (n *Names) Stats() NamesStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Addrs = len(n.m)
	return s
}

func (n *Names) pushFront(e *nameEntry) {
	e.prev, e.next = nil, n.head
	if n.head != nil {
		n.head.prev = e
	}
	n.head = e
	if n.tail == nil {
		n.tail = e
	}
}

func (n *Names) unlink(e *nameEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		n.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		n.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
