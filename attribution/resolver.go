package attribution

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Attribution methods, as events name them (exfilwatch.attribution.method).
const (
	MethodPKTAP       = "pktap"
	MethodSocketTable = "socket_table"
	MethodJournal     = "journal"
)

// Reasons a flow stays unattributed (exfilwatch.attribution.reason).
const (
	ReasonNoSocket    = "no_socket"      // no socket matched the 5-tuple before the retries ran out
	ReasonNotLocal    = "not_local"      // neither end is an address of this host
	ReasonProcessGone = "process_gone"   // the socket's process exited before it could be described
	ReasonQueueFull   = "queue_full"     // too many lookups pending: the flow was not looked up
	ReasonTimeout     = "lookup_timeout" // the answer did not come before the event had to be written
	ReasonPermission  = "permission"     // the sensor may not read the socket table
	ReasonUnsupported = "unsupported"    // no socket table on this platform
	ReasonError       = "table_error"    // the table failed in another way
)

// Result is what is known of the process behind one flow.
type Result struct {
	Method string // MethodPKTAP, MethodSocketTable, MethodJournal; "" when unattributed
	Reason string // set when unattributed
	// Delay is the time from the flow's first packet to the answer.
	Delay    time.Duration
	Attempts int
	Process  *Process   // nil when unattributed
	Lineage  []*Process // the parent first, up to the session leader
	// Name is a process name known without a full description (a PKTAP
	// header's 16-character comm) when Process could not be completed.
	Name string
	PID  int32
	// Detail is the last lookup error of an unattributed flow, for the
	// operator (not part of the event contract's fixed vocabulary).
	Detail string `json:"-"`
}

// Attributed reports whether a process was found.
func (r *Result) Attributed() bool { return r != nil && r.Method != "" }

// Request asks for the owner of one flow.
type Request struct {
	ID             uint64 // the flow's id, unique within the sensor's run
	Proto          uint8
	Client, Server netip.AddrPort
	Start          time.Time // the flow's first packet (wall clock in live capture)
	// PID and Name come from per-packet metadata (PKTAP) when the capture
	// has it: the process is then known without a socket-table race.
	PID  int32
	Name string
}

// ResolverOptions tune the lookups. Zero values mean the defaults.
type ResolverOptions struct {
	// Local reports whether an address is one of this host's. Required.
	Local func(netip.Addr) bool
	// Retries are the waits between lookups of a socket not found yet
	// (default 1, 2, 4, 8, 16 ms: about 30 ms in all). A connection's socket
	// exists before its first packet, so a miss is a race with the inode
	// scan, short by nature; long retries only hold a worker while the next
	// short-lived process exits.
	Retries []time.Duration
	// MaxPending bounds the lookups queued (default 4096).
	MaxPending int
	// Workers run lookups in parallel (default 4).
	Workers int
	// MaxLineage bounds the ancestors described (default 8).
	MaxLineage int
	// MaxResults bounds the answers kept (default 65536): the oldest are
	// forgotten first.
	MaxResults int
	// Observe, when set, is called with every answer as it is made (from a
	// worker goroutine): `run --record` writes them to the host journal.
	Observe func(Request, Result)
}

func (o ResolverOptions) retries() []time.Duration {
	if o.Retries != nil {
		return o.Retries
	}
	return []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond}
}

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// ResolverStats count the resolver's work.
type ResolverStats struct {
	Requests, Attributed, Unattributed, QueueFull, Waited, WaitTimeouts, Dropped uint64
	ByMethod                                                                     map[string]uint64
	ByReason                                                                     map[string]uint64
}

// Resolver looks up the process of each new flow in the background, as soon
// as its first packet is seen, so that short-lived processes are caught while
// their socket still exists. The packet path only enqueues (Begin) and, when
// it writes an event, collects the answer (Result).
type Resolver struct {
	table SocketTable
	procs ProcessSource
	opt   ResolverOptions
	reqs  chan Request

	mu      sync.Mutex
	pending map[uint64]*slot
	order   []uint64 // insertion order, to bound pending
	stats   ResolverStats
	closed  atomic.Bool
	wg      sync.WaitGroup
}

type slot struct {
	done chan struct{}
	res  Result
}

// NewResolver starts a resolver over a socket table and a process source.
// table may be nil (PKTAP-only attribution).
func NewResolver(table SocketTable, procs ProcessSource, opt ResolverOptions) *Resolver {
	r := &Resolver{table: table, procs: procs, opt: opt,
		reqs:    make(chan Request, orDefault(opt.MaxPending, 4096)),
		pending: make(map[uint64]*slot)}
	r.stats.ByMethod = map[string]uint64{}
	r.stats.ByReason = map[string]uint64{}
	for range orDefault(opt.Workers, 4) {
		r.wg.Add(1)
		go r.work()
	}
	return r
}

// Begin queues the lookup of a new flow. It never blocks: when the queue is
// full the flow is answered "queue_full" at once.
func (r *Resolver) Begin(q Request) {
	s := &slot{done: make(chan struct{})}
	r.mu.Lock()
	r.stats.Requests++
	r.pending[q.ID] = s
	r.order = append(r.order, q.ID)
	r.boundLocked()
	r.mu.Unlock()
	select {
	case r.reqs <- q:
	default:
		r.finish(s, Result{Reason: ReasonQueueFull})
		r.mu.Lock()
		r.stats.QueueFull++
		r.mu.Unlock()
	}
}

// boundLocked forgets the oldest answers past MaxResults (flows whose
// events were never collected, e.g. evicted ones).
func (r *Resolver) boundLocked() {
	max := orDefault(r.opt.MaxResults, 65536)
	for len(r.pending) > max && len(r.order) > 0 {
		id := r.order[0]
		r.order = r.order[1:]
		if _, ok := r.pending[id]; ok {
			delete(r.pending, id)
			r.stats.Dropped++
		}
	}
	if len(r.order) > 2*max { // compact: ids already forgotten
		keep := r.order[:0]
		for _, id := range r.order {
			if _, ok := r.pending[id]; ok {
				keep = append(keep, id)
			}
		}
		r.order = keep
	}
}

// Result returns the answer for a flow, waiting at most wait for a lookup
// still running. A flow never begun is answered nil.
func (r *Resolver) Result(id uint64, wait time.Duration) *Result {
	r.mu.Lock()
	s := r.pending[id]
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	select {
	case <-s.done:
	default:
		r.mu.Lock()
		r.stats.Waited++
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-s.done:
			t.Stop()
		case <-t.C:
			r.mu.Lock()
			r.stats.WaitTimeouts++
			r.mu.Unlock()
			return &Result{Reason: ReasonTimeout}
		}
	}
	res := s.res
	return &res
}

// Peek returns a flow's answer without waiting: ready is false while its
// lookup runs. A flow never begun (or forgotten) is ready with a nil answer.
func (r *Resolver) Peek(id uint64) (res *Result, ready bool) {
	r.mu.Lock()
	s := r.pending[id]
	r.mu.Unlock()
	if s == nil {
		return nil, true
	}
	select {
	case <-s.done:
		out := s.res
		return &out, true
	default:
		return nil, false
	}
}

// Forget drops a closed flow's answer.
func (r *Resolver) Forget(id uint64) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
}

// Stats returns a copy of the counters.
func (r *Resolver) Stats() ResolverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.ByMethod = make(map[string]uint64, len(r.stats.ByMethod))
	for k, v := range r.stats.ByMethod {
		st.ByMethod[k] = v
	}
	st.ByReason = make(map[string]uint64, len(r.stats.ByReason))
	for k, v := range r.stats.ByReason {
		st.ByReason[k] = v
	}
	return st
}

// Close stops the workers after the queued lookups.
func (r *Resolver) Close() {
	if r.closed.CompareAndSwap(false, true) {
		close(r.reqs)
		r.wg.Wait()
	}
}

func (r *Resolver) finish(s *slot, res Result) {
	s.res = res
	close(s.done)
	r.mu.Lock()
	if res.Method != "" {
		r.stats.Attributed++
		r.stats.ByMethod[res.Method]++
	} else {
		r.stats.Unattributed++
		r.stats.ByReason[res.Reason]++
	}
	r.mu.Unlock()
}

func (r *Resolver) work() {
	defer r.wg.Done()
	for q := range r.reqs {
		res := r.resolve(q)
		if r.opt.Observe != nil {
			r.opt.Observe(q, res)
		}
		r.mu.Lock()
		s := r.pending[q.ID]
		r.mu.Unlock()
		if s != nil {
			r.finish(s, res)
		}
	}
}

func (r *Resolver) resolve(q Request) Result {
	if q.PID > 0 {
		res := Result{Method: MethodPKTAP, PID: q.PID, Name: q.Name}
		r.describe(&res, q.PID, q.Start)
		return res
	}
	if r.table == nil {
		return Result{Reason: ReasonUnsupported}
	}
	type side struct{ local, remote netip.AddrPort }
	var sides []side
	local := r.opt.Local
	if local != nil && local(q.Client.Addr()) {
		sides = append(sides, side{q.Client, q.Server})
	}
	if local != nil && local(q.Server.Addr()) {
		sides = append(sides, side{q.Server, q.Client})
	}
	if len(sides) == 0 {
		return Result{Reason: ReasonNotLocal}
	}
	waits := r.opt.retries()
	var lastErr error
	for attempt := 0; ; attempt++ {
		for _, sd := range sides {
			o, err := r.table.Lookup(q.Proto, sd.local, sd.remote)
			if err == nil {
				res := Result{Method: MethodSocketTable, PID: o.PID, Attempts: attempt + 1, Delay: since(q.Start)}
				r.describe(&res, o.PID, q.Start)
				return res
			}
			lastErr = err
		}
		if attempt >= len(waits) || !errors.Is(lastErr, ErrNotFound) || errors.Is(lastErr, ErrSocketClosed) {
			break
		}
		time.Sleep(waits[attempt])
	}
	res := Result{Reason: ReasonNoSocket, Attempts: len(waits) + 1, Delay: since(q.Start)}
	if lastErr != nil {
		res.Detail = lastErr.Error()
	}
	switch {
	case errors.Is(lastErr, ErrSocketClosed):
		res.Reason = ReasonProcessGone
	case errors.Is(lastErr, ErrPermission):
		res.Reason = ReasonPermission
	case errors.Is(lastErr, ErrUnsupported):
		res.Reason = ReasonUnsupported
	case lastErr != nil && !errors.Is(lastErr, ErrNotFound):
		res.Reason = ReasonError
	}
	return res
}

func since(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	if d := time.Since(t); d > 0 {
		return d
	}
	return 0
}

// describe fills the process and its lineage. A process already gone keeps
// what the socket table or PKTAP said (pid, name).
func (r *Resolver) describe(res *Result, pid int32, start time.Time) {
	if res.Delay == 0 {
		res.Delay = since(start)
	}
	if r.procs == nil || pid <= 0 {
		return
	}
	p, err := r.procs.Process(pid)
	if err != nil || p == nil {
		if res.Method == MethodSocketTable {
			// The socket was found, so the process existed: say who, as
			// far as known, rather than dropping the attribution.
			res.Process = &Process{PID: pid}
		}
		return
	}
	res.Process = p
	if res.Name == "" {
		res.Name = p.Name
	}
	seen := map[int32]bool{p.PID: true}
	cur := p
	for range orDefault(r.opt.MaxLineage, 8) {
		if cur.PPID <= 0 || seen[cur.PPID] || cur.PID == cur.SessionLeader {
			break
		}
		parent, err := r.procs.Process(cur.PPID)
		if err != nil || parent == nil {
			break
		}
		res.Lineage = append(res.Lineage, parent)
		seen[parent.PID] = true
		cur = parent
	}
}
