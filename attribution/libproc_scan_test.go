package attribution

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// libprocFake is a pretend libproc: processes with descriptors, sockets
// as socket_fdinfo bytes built by sockinfoFixture, and call counters.
type libprocFake struct {
	mu      sync.Mutex
	procs   map[int32]*libprocFakeProc
	listErr error
	reads   map[[2]int32]int // (pid, fd) → proc_pidfdinfo calls
	lists   int
}

type libprocFakeProc struct {
	uid     uint32
	denied  bool
	files   map[int32]uint32 // fd → PROX_FDTYPE_*
	sockets map[int32][]byte // fd → socket_fdinfo
}

func newLibprocFake() *libprocFake {
	return &libprocFake{procs: map[int32]*libprocFakeProc{}, reads: map[[2]int32]int{}}
}

func (f *libprocFake) proc(pid int32, uid uint32) *libprocFakeProc {
	p := &libprocFakeProc{uid: uid, files: map[int32]uint32{0: 1, 1: 1, 2: 1, 3: 6}, sockets: map[int32][]byte{}}
	f.procs[pid] = p
	return p
}

func (p *libprocFakeProc) sock(fd int32, b []byte) {
	p.files[fd] = ProxFDTypeSocket
	p.sockets[fd] = b
}

func (p *libprocFakeProc) close(fd int32) {
	delete(p.files, fd)
	delete(p.sockets, fd)
}

func (f *libprocFake) listPIDs() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0) // kernel_task
	for pid := range f.procs {
		b = binary.LittleEndian.AppendUint32(b, uint32(pid))
	}
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0), nil
}

func (f *libprocFake) listFDs(pid int32) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	p, ok := f.procs[pid]
	if !ok {
		return nil, fmt.Errorf("%w (no such process)", ErrNotFound)
	}
	if p.denied {
		return nil, fmt.Errorf("%w (operation not permitted)", ErrPermission)
	}
	var b []byte
	for fd, typ := range p.files {
		b = binary.LittleEndian.AppendUint32(b, uint32(fd))
		b = binary.LittleEndian.AppendUint32(b, typ)
	}
	return b, nil
}

func (f *libprocFake) socketInfo(pid, fd int32, buf []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[[2]int32{pid, fd}]++
	p, ok := f.procs[pid]
	if !ok {
		return 0, ErrNotFound
	}
	s, ok := p.sockets[fd]
	if !ok {
		return 0, ErrNotFound
	}
	return copy(buf, s), nil
}

func (f *libprocFake) shortInfo(pid int32) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[pid]
	if !ok {
		return nil, ErrNotFound
	}
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], uint32(pid))
	binary.LittleEndian.PutUint32(b[36:], p.uid)
	return b, nil
}

func (f *libprocFake) readsOf(pid, fd int32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads[[2]int32{pid, fd}]
}

// libprocClock is a manual clock.
type libprocClock struct{ t time.Time }

func (c *libprocClock) now() time.Time      { return c.t }
func (c *libprocClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newLibprocClock() *libprocClock {
	return &libprocClock{t: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)}
}
func libprocTCP4(l, r string, state int32) []byte {
	la, ra := sockinfoAP(l), sockinfoAP(r)
	return (sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 2, vflag: 1,
		lport: la.Port(), fport: ra.Port(), laddr: sockinfoIn4in6(la.Addr().String()), faddr: sockinfoIn4in6(ra.Addr().String()), state: state}).bytes()
}

func libprocUnixSocket() []byte {
	return (sockinfoFixture{family: 1, sotype: 1, kind: 3}).bytes()
}

// libprocFakeTable is a fallback SocketTable that records its lookups.
type libprocFakeTable struct {
	mu      sync.Mutex
	answer  map[string]Owner
	lookups int
	closed  bool
}

func (t *libprocFakeTable) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lookups++
	if o, ok := t.answer[local.String()+">"+remote.String()]; ok {
		return o, nil
	}
	return Owner{}, ErrNotFound
}

func (t *libprocFakeTable) Close() error { t.closed = true; return nil }

func TestLibprocScannerFindsAndCaches(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	curl := f.proc(8812, 501)
	curl.sock(5, libprocTCP4("10.0.0.5:49822", "203.0.113.9:21", 4))
	curl.sock(6, libprocUnixSocket())
	mdns := f.proc(412, 65)
	mdns.sock(4, (sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 3, lport: 5353}).bytes())
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now})

	o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:49822"), sockinfoAP("203.0.113.9:21"))
	if err != nil || o.PID != 8812 || o.UID != 501 || !o.Seen.Equal(clk.t) {
		t.Fatalf("Lookup = %+v, %v", o, err)
	}
	// The IPv4-mapped form of the same flow, and a UDP flow to the
	// dual-stack wildcard socket, come from the cache: no new scan.
	if o, err := s.Lookup(TCP, sockinfoAP("[::ffff:10.0.0.5]:49822"), sockinfoAP("[::ffff:203.0.113.9]:21")); err != nil || o.PID != 8812 {
		t.Fatalf("mapped lookup = %+v, %v", o, err)
	}
	if o, err := s.Lookup(UDP, sockinfoAP("[fe80::1]:5353"), sockinfoAP("[ff02::fb]:5353")); err != nil || o.PID != 412 || o.UID != 65 {
		t.Fatalf("udp lookup = %+v, %v", o, err)
	}
	if st := s.Stats(); st.FullScans != 1 || st.QuickScans != 0 || st.PIDs != 2 || st.Sockets != 2 || st.SocketReads != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestLibprocScannerIncremental: a quick scan reads only new descriptors
// and sockets whose 5-tuple can change; a descriptor reused for another
// socket is found by the next full scan.
func TestLibprocScannerIncremental(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	p := f.proc(700, 501)
	p.sock(5, libprocTCP4("10.0.0.5:50000", "198.51.100.7:443", 4)) // connected: final
	p.sock(6, libprocUnixSocket())                                  // not inet: final
	p.sock(7, libprocTCP4("0.0.0.0:8080", "0.0.0.0:0", 1))          // listening: re-read
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now, QuickRescan: 100 * time.Millisecond, FullRescan: 2 * time.Second})
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}

	// A new connection on a new descriptor: found by a quick scan.
	p.sock(8, libprocTCP4("10.0.0.5:50001", "198.51.100.7:443", 2))
	clk.add(150 * time.Millisecond)
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:50001"), sockinfoAP("198.51.100.7:443")); err != nil || o.PID != 700 {
		t.Fatalf("new socket: %+v, %v", o, err)
	}
	if f.readsOf(700, 5) != 1 || f.readsOf(700, 6) != 1 {
		t.Errorf("final descriptors re-read: fd5 %d, fd6 %d", f.readsOf(700, 5), f.readsOf(700, 6))
	}
	if f.readsOf(700, 7) != 2 || f.readsOf(700, 8) != 1 {
		t.Errorf("fd7 read %d times, fd8 %d", f.readsOf(700, 7), f.readsOf(700, 8))
	}
	if st := s.Stats(); st.QuickScans != 1 || st.FullScans != 1 {
		t.Errorf("stats %+v", st)
	}

	// Descriptor 5 closed and reused for another connection: a quick scan
	// trusts the old socket, the full scan sees the new one.
	p.sock(5, libprocTCP4("10.0.0.5:50002", "192.0.2.80:80", 4))
	clk.add(150 * time.Millisecond)
	if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:50002"), sockinfoAP("192.0.2.80:80")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reused descriptor found by a quick scan: %v", err)
	}
	clk.add(2 * time.Second)
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:50002"), sockinfoAP("192.0.2.80:80")); err != nil || o.PID != 700 {
		t.Fatalf("reused descriptor after a full scan: %+v, %v", o, err)
	}
	// The socket the descriptor held before is still attributable (grace).
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:50000"), sockinfoAP("198.51.100.7:443")); err != nil || o.PID != 700 {
		t.Fatalf("old socket within grace: %+v, %v", o, err)
	}
}

func TestLibprocScannerRateLimitAndGrace(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	p := f.proc(900, 501)
	p.sock(3, libprocTCP4("10.0.0.5:40000", "203.0.113.1:80", 4))
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now, Grace: 30 * time.Second})
	if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:40000"), sockinfoAP("203.0.113.1:80")); err != nil {
		t.Fatal(err)
	}
	// Misses right after a scan do not scan again.
	lists := f.lists
	for i := 0; i < 10; i++ {
		if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("203.0.113.1:2")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("miss: %v", err)
		}
	}
	if f.lists != lists {
		t.Errorf("%d listings for misses within QuickRescan", f.lists-lists)
	}
	// The process exits (a short upload): its socket is still attributed
	// for the grace period, then forgotten.
	delete(f.procs, 900)
	clk.add(3 * time.Second)
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	clk.add(20 * time.Second)
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:40000"), sockinfoAP("203.0.113.1:80")); err != nil || o.PID != 900 {
		t.Fatalf("within grace: %+v, %v", o, err)
	}
	clk.add(11 * time.Second)
	if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:40000"), sockinfoAP("203.0.113.1:80")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after grace: %v", err)
	}
}

func TestLibprocScannerPermissionFallback(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	mine := f.proc(1000, 501)
	mine.sock(4, libprocTCP4("10.0.0.5:1000", "10.0.0.9:80", 4))
	other := f.proc(1001, 0)
	other.denied = true
	other.sock(4, libprocTCP4("10.0.0.5:2000", "10.0.0.9:80", 4))
	fb := &libprocFakeTable{answer: map[string]Owner{"10.0.0.5:2000>10.0.0.9:80": {PID: 1001}}}
	var logs []string
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now, Fallback: fb, Logf: func(format string, args ...any) {
		logs = append(logs, fmt.Sprintf(format, args...))
	}})
	// Readable process: libproc answers, the fallback is not asked.
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:1000"), sockinfoAP("10.0.0.9:80")); err != nil || o.PID != 1000 {
		t.Fatalf("%+v, %v", o, err)
	}
	if fb.lookups != 0 {
		t.Errorf("fallback asked %d times for a hit", fb.lookups)
	}
	clk.add(time.Second)
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:2000"), sockinfoAP("10.0.0.9:80")); err != nil || o.PID != 1001 {
		t.Fatalf("fallback answer: %+v, %v", o, err)
	}
	if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:3000"), sockinfoAP("10.0.0.9:80")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss everywhere: %v", err)
	}
	st := s.Stats()
	if st.Denied != 1 || st.FallbackLookups != 2 || st.FallbackHits != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "1 of 2 processes") {
		t.Errorf("logs %q", logs)
	}
	if err := s.Close(); err != nil || !fb.closed {
		t.Errorf("Close: %v, fallback closed %v", err, fb.closed)
	}
}

func TestLibprocScannerListError(t *testing.T) {
	f := newLibprocFake()
	f.listErr = errors.New("proc_listpids: boom")
	clk := newLibprocClock()
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now})
	if _, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	// With a fallback, the fallback answers.
	fb := &libprocFakeTable{answer: map[string]Owner{"10.0.0.5:1>10.0.0.9:2": {PID: 42}}}
	s = newLibprocScanner(f, LibprocOptions{Now: clk.now, Fallback: fb})
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); err != nil || o.PID != 42 {
		t.Fatalf("%+v, %v", o, err)
	}
}

// TestLibprocScannerBadSocketInfo: a short or malformed answer is counted
// and skipped, not fatal.
func TestLibprocScannerBadSocketInfo(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	p := f.proc(5, 0)
	p.sock(3, libprocTCP4("10.0.0.5:1", "10.0.0.9:2", 4)[:400])
	bad := libprocTCP4("10.0.0.5:3", "10.0.0.9:4", 4)
	bad[344] = 99
	p.sock(4, bad)
	p.sock(5, libprocTCP4("10.0.0.5:5", "10.0.0.9:6", 4))
	s := newLibprocScanner(f, LibprocOptions{Now: clk.now})
	if o, err := s.Lookup(TCP, sockinfoAP("10.0.0.5:5"), sockinfoAP("10.0.0.9:6")); err != nil || o.PID != 5 {
		t.Fatalf("%+v, %v", o, err)
	}
	if st := s.Stats(); st.BadSocketInfos != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestLibprocScannerConcurrentLookups(t *testing.T) {
	f := newLibprocFake()
	clk := newLibprocClock()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk.now() }
	p := f.proc(10, 501)
	for i := int32(0); i < 50; i++ {
		p.sock(100+i, libprocTCP4(fmt.Sprintf("10.0.0.5:%d", 20000+i), "10.0.0.9:443", 4))
	}
	s := newLibprocScanner(f, LibprocOptions{Now: now})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				o, err := s.Lookup(TCP, sockinfoAP(fmt.Sprintf("10.0.0.5:%d", 20000+(i+g)%50)), sockinfoAP("10.0.0.9:443"))
				if err != nil || o.PID != 10 {
					t.Errorf("%+v, %v", o, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}
