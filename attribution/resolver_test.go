package attribution

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// tableAfter answers ErrNotFound until `after` lookups were made.
type tableAfter struct {
	mu    sync.Mutex
	calls int
	after int
	owner Owner
	err   error
}

func (t *tableAfter) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if t.err != nil {
		return Owner{}, t.err
	}
	if t.calls <= t.after {
		return Owner{}, ErrNotFound
	}
	return t.owner, nil
}
func (t *tableAfter) Close() error { return nil }

type procMap map[int32]*Process

func (m procMap) Process(pid int32) (*Process, error) {
	if p, ok := m[pid]; ok {
		return p, nil
	}
	return nil, ErrNotFound
}

var (
	hostA  = netip.MustParseAddrPort("198.18.0.1:40000")
	remote = netip.MustParseAddrPort("198.18.0.2:80")
	procs  = procMap{
		300: {PID: 300, PPID: 200, Name: "curl", Executable: "/usr/bin/curl", Args: []string{"curl", "-T", "x"}, SessionLeader: 100},
		200: {PID: 200, PPID: 100, Name: "sh", Executable: "/bin/sh", SessionLeader: 100},
		100: {PID: 100, PPID: 1, Name: "bash", Executable: "/bin/bash", SessionLeader: 100},
		1:   {PID: 1, Name: "init"},
	}
	isLocal = func(a netip.Addr) bool { return a == hostA.Addr() }
)

func TestResolverRetriesUntilTheSocketAppears(t *testing.T) {
	tb := &tableAfter{after: 3, owner: Owner{PID: 300}}
	r := NewResolver(tb, procs, ResolverOptions{Local: isLocal, Retries: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}})
	defer r.Close()
	r.Begin(Request{ID: 1, Proto: TCP, Client: hostA, Server: remote, Start: time.Now()})
	res := r.Result(1, time.Second)
	if !res.Attributed() || res.Method != MethodSocketTable || res.Process.Executable != "/usr/bin/curl" || res.Attempts != 4 {
		t.Fatalf("%+v", res)
	}
	if len(res.Lineage) != 2 || res.Lineage[0].Name != "sh" || res.Lineage[1].Name != "bash" {
		t.Fatalf("lineage %+v", res.Lineage)
	}
}

func TestResolverGivesUpWithAReason(t *testing.T) {
	cases := []struct {
		name   string
		table  SocketTable
		client netip.AddrPort
		reason string
	}{
		{"never found", &tableAfter{after: 1 << 30}, hostA, ReasonNoSocket},
		{"not local", &tableAfter{}, netip.MustParseAddrPort("203.0.113.9:1234"), ReasonNotLocal},
		{"permission", &tableAfter{err: ErrPermission}, hostA, ReasonPermission},
		{"socket already closed", &tableAfter{err: fmt.Errorf("%w (%w): x", ErrNotFound, ErrSocketClosed)}, hostA, ReasonProcessGone},
		{"no table", nil, hostA, ReasonUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewResolver(c.table, procs, ResolverOptions{Local: isLocal, Retries: []time.Duration{time.Millisecond}})
			defer r.Close()
			r.Begin(Request{ID: 7, Proto: TCP, Client: c.client, Server: remote})
			res := r.Result(7, time.Second)
			if res.Attributed() || res.Reason != c.reason {
				t.Fatalf("%+v", res)
			}
			if st := r.Stats(); st.Unattributed != 1 || st.ByReason[c.reason] != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestResolverInboundLooksUpTheServerSide(t *testing.T) {
	tb := &tableAfter{owner: Owner{PID: 100}}
	local := func(a netip.Addr) bool { return a == remote.Addr() }
	r := NewResolver(tb, procs, ResolverOptions{Local: local})
	defer r.Close()
	r.Begin(Request{ID: 2, Proto: TCP, Client: hostA, Server: remote})
	if res := r.Result(2, time.Second); !res.Attributed() || res.PID != 100 {
		t.Fatalf("%+v", res)
	}
}

func TestResolverPKTAPNeedsNoTable(t *testing.T) {
	r := NewResolver(nil, procs, ResolverOptions{Local: isLocal})
	defer r.Close()
	r.Begin(Request{ID: 3, Client: hostA, Server: remote, PID: 300, Name: "curl"})
	r.Begin(Request{ID: 4, Client: hostA, Server: remote, PID: 999, Name: "Google Chrome He"})
	if res := r.Result(3, time.Second); res.Method != MethodPKTAP || res.Process == nil || res.Process.Name != "curl" {
		t.Fatalf("%+v", res)
	}
	// A pid that cannot be described keeps the header's name.
	if res := r.Result(4, time.Second); res.Method != MethodPKTAP || res.Process != nil || res.Name != "Google Chrome He" || res.PID != 999 {
		t.Fatalf("%+v", res)
	}
}

func TestResolverResultTimesOutAndUnknownIsNil(t *testing.T) {
	tb := &tableAfter{after: 1 << 30}
	r := NewResolver(tb, procs, ResolverOptions{Local: isLocal, Retries: []time.Duration{time.Second}})
	defer r.Close()
	r.Begin(Request{ID: 5, Client: hostA, Server: remote})
	if res := r.Result(5, 10*time.Millisecond); res.Attributed() || res.Reason != ReasonTimeout {
		t.Fatalf("%+v", res)
	}
	if r.Result(12345, time.Millisecond) != nil {
		t.Fatal("unknown flow answered")
	}
}

func TestResolverQueueFullAnswersAtOnce(t *testing.T) {
	tb := &tableAfter{after: 1 << 30}
	r := NewResolver(tb, procs, ResolverOptions{Local: isLocal, MaxPending: 1, Workers: 1, Retries: []time.Duration{200 * time.Millisecond}})
	defer r.Close()
	for i := uint64(1); i <= 5; i++ {
		r.Begin(Request{ID: i, Client: hostA, Server: remote})
	}
	full := 0
	for i := uint64(1); i <= 5; i++ {
		if res := r.Result(i, time.Millisecond); res.Reason == ReasonQueueFull {
			full++
		}
	}
	if full == 0 || r.Stats().QueueFull == 0 {
		t.Fatalf("no lookup refused: %+v", r.Stats())
	}
}
