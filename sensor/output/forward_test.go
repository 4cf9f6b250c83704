package output

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/output/spool"
)

// TestMain makes the test binary the sensor child of the kill -9 test.
func TestMain(m *testing.M) {
	if arg := os.Getenv("FORWARD_CHILD"); arg != "" {
		forwardChild(arg)
		return
	}
	os.Exit(m.Run())
}

// lineSender is a minimal real transport: newline-framed messages over TCP
// or UDP, with the non-blocking liveness check a stream needs.
type lineSender struct {
	c      net.Conn
	stream bool
}

func dialLine(network, addr string) DialFunc {
	return func(ctx context.Context) (Sender, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &lineSender{c: c, stream: network == "tcp"}, nil
	}
}

func (s *lineSender) Send(b []byte) error {
	s.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := s.c.Write(append(append([]byte(nil), b...), '\n'))
	return err
}

func (s *lineSender) Close() error { return s.c.Close() }
func (s *lineSender) Stream() bool { return s.stream }

func (s *lineSender) Alive() error {
	var b [64]byte
	s.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer s.c.SetReadDeadline(time.Time{})
	n, err := s.c.Read(b[:])
	if n > 0 {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}

// collector is a real TCP syslog-like collector that can crash and come
// back on the same address.
type collector struct {
	t    *testing.T
	addr string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	got   []string
	perC  [][]string // messages per connection, to check order within each
}

func newCollector(t *testing.T, up bool) *collector {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, addr: ln.Addr().String()}
	if up {
		c.serve(ln)
	} else {
		ln.Close()
	}
	t.Cleanup(c.stop)
	return c
}

func (c *collector) start() {
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; TIME_WAIT does not block a listener
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.serve(ln)
}

func (c *collector) serve(ln net.Listener) {
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			idx := len(c.perC)
			c.perC = append(c.perC, nil)
			c.mu.Unlock()
			go func() {
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					c.mu.Lock()
					c.got = append(c.got, sc.Text())
					c.perC[idx] = append(c.perC[idx], sc.Text())
					c.mu.Unlock()
				}
			}()
		}
	}()
}

// stop is a collector crash: listener and connections closed, whatever
// sits unread in the socket buffers is lost.
func (c *collector) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func (c *collector) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// check asserts every message 0..n-1 arrived, first arrivals in order,
// each connection's stream in order, and returns the duplicate count.
func (c *collector) check(t *testing.T, prefix string, from, n int) int {
	t.Helper()
	got := c.received()
	seen := map[string]bool{}
	next := from
	for _, m := range got {
		if seen[m] {
			continue
		}
		seen[m] = true
		if m != fmt.Sprintf("%s%d", prefix, next) {
			t.Fatalf("first arrival %q, want %s%d", m, prefix, next)
		}
		next++
	}
	if next != from+n {
		t.Fatalf("received %d distinct messages, want %d", next-from, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ci, ms := range c.perC {
		for i := 1; i < len(ms); i++ {
			a, _ := strconv.Atoi(strings.TrimPrefix(ms[i-1], prefix))
			b, _ := strconv.Atoi(strings.TrimPrefix(ms[i], prefix))
			if b != a+1 {
				t.Fatalf("connection %d: %q after %q", ci, ms[i], ms[i-1])
			}
		}
	}
	return len(got) - n
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func idFormat(f *detect.Finding) ([]byte, error) { return []byte(f.ID), nil }

func testOptions(dir, addr string) ForwarderOptions {
	return ForwarderOptions{
		Name: addr, Dir: dir, Dial: dialLine("tcp", addr), Format: idFormat,
		ConfirmDelay: 50 * time.Millisecond, MaxBatch: 20, MaxInflight: 100,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		FlushTimeout: 2 * time.Second, Log: zerolog.Nop(),
	}
}

func newForwarder(t *testing.T, opt ForwarderOptions) *Forwarder {
	t.Helper()
	f, err := NewForwarder(opt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestForwardCollectorDownAndBack(t *testing.T) {
	col := newCollector(t, true)
	opt := testOptions(t.TempDir(), col.addr)
	f := newForwarder(t, opt)
	defer f.Close()

	const n = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			f.Finding(&detect.Finding{ID: fmt.Sprintf("m%d", i)})
			time.Sleep(time.Millisecond)
		}
	}()
	// Two crashes while messages keep coming.
	for _, at := range []int{100, 250} {
		waitFor(t, "messages before the crash", 10*time.Second, func() bool { return len(col.received()) >= at })
		col.stop()
		time.Sleep(150 * time.Millisecond)
		col.start()
	}
	<-done
	waitFor(t, "all messages", 15*time.Second, func() bool { return f.Stats().Depth == 0 })
	dups := col.check(t, "m", 0, n)
	st := f.Stats()
	failures := int(st.SendFailures)
	if st.SendFailures == 0 || st.Spooled != n || st.Acked != n {
		t.Fatalf("stats %+v", st)
	}
	// The documented bound: at most MaxInflight re-sent messages per
	// broken connection, and every duplicate is a counted re-send.
	if dups > failures*opt.MaxInflight || uint64(dups) > st.Retried {
		t.Fatalf("%d duplicates, %d connection failures, stats %+v", dups, failures, st)
	}
	t.Logf("duplicates %d, connection failures %d, dial failures %d, retried %d", dups, failures, st.DialFailures, st.Retried)
}

func TestForwardCollectorDownAtStart(t *testing.T) {
	col := newCollector(t, false)
	dir := t.TempDir()
	f := newForwarder(t, testOptions(dir, col.addr))
	defer f.Close()
	for i := range 50 {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("d%d", i)})
	}
	waitFor(t, "dial failures", 5*time.Second, func() bool { return f.Stats().DialFailures >= 2 })
	if st := f.Stats(); st.Depth != 50 || st.Sent != 0 || st.Connected {
		t.Fatalf("while down: %+v", st)
	}
	col.start()
	waitFor(t, "delivery", 10*time.Second, func() bool { return f.Stats().Depth == 0 })
	if dups := col.check(t, "d", 0, 50); dups != 0 {
		t.Fatalf("%d duplicates without a failure after connecting", dups)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "seg-*")); len(segs) != 1 {
		t.Fatalf("segments left: %v", segs)
	}
}

func TestForwardSpoolFullWhileDown(t *testing.T) {
	col := newCollector(t, false)
	opt := testOptions(t.TempDir(), col.addr)
	opt.Spool = spool.Options{MaxBytes: 32 << 10, SegmentBytes: 8 << 10}
	opt.Format = func(f *detect.Finding) ([]byte, error) {
		return []byte(f.ID + " " + strings.Repeat("p", 1000)), nil
	}
	f := newForwarder(t, opt)
	defer f.Close()
	const n = 200
	for i := range n {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("s%d", i)})
	}
	st := f.Stats()
	if st.Dropped == 0 || st.Dropped+st.Depth != n || st.DepthBytes > 32<<10 {
		t.Fatalf("stats %+v", st)
	}
	col.start()
	waitFor(t, "delivery", 10*time.Second, func() bool { return f.Stats().Depth == 0 })
	got := col.received()
	if uint64(len(got)) != n-st.Dropped {
		t.Fatalf("received %d, want %d", len(got), n-st.Dropped)
	}
	for k, m := range got {
		if want := fmt.Sprintf("s%d ", int(st.Dropped)+k); !strings.HasPrefix(m, want) {
			t.Fatalf("message %d = %.10q, want the newest %d (oldest dropped)", k, m, len(got))
		}
	}
}

func TestForwardUDPAckedWhenSent(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, strings.TrimSuffix(string(buf[:n]), "\n"))
			mu.Unlock()
		}
	}()
	opt := testOptions(t.TempDir(), pc.LocalAddr().String())
	opt.Dial = dialLine("udp", pc.LocalAddr().String())
	opt.ConfirmDelay = time.Hour // a datagram must never wait for it
	f := newForwarder(t, opt)
	defer f.Close()
	for i := range 30 {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("u%d", i)})
	}
	waitFor(t, "datagrams acked", 5*time.Second, func() bool { return f.Stats().Acked == 30 })
	waitFor(t, "datagrams", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 30 })
	mu.Lock()
	defer mu.Unlock()
	for i, m := range got {
		if m != fmt.Sprintf("u%d", i) {
			t.Fatalf("datagram %d = %q", i, m)
		}
	}
}

func TestForwardCloseLeavesRestForNextStart(t *testing.T) {
	col := newCollector(t, false)
	dir := t.TempDir()
	opt := testOptions(dir, col.addr)
	opt.FlushTimeout = 300 * time.Millisecond
	f := newForwarder(t, opt)
	for i := range 10 {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("c%d", i)})
	}
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with the collector down", d)
	}
	f.Finding(&detect.Finding{ID: "after-close"}) // counted, never a panic
	if st := f.Stats(); st.SpoolErrors != 1 {
		t.Fatalf("finding after Close: %+v", st)
	}
	col.start()
	f = newForwarder(t, opt)
	waitFor(t, "delivery after restart", 10*time.Second, func() bool { return f.Stats().Depth == 0 })
	col.check(t, "c", 0, 10)
	// Close flushes what arrives while connected.
	for i := 10; i < 20; i++ {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("c%d", i)})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	col.check(t, "c", 0, 20)
}

// forwardChild is the sensor process of the kill -9 test: "dir addr n"
// spools n findings, says so, and keeps forwarding until killed.
func forwardChild(arg string) {
	p := strings.Fields(arg)
	n, _ := strconv.Atoi(p[2])
	opt := ForwarderOptions{
		Name: p[1], Dir: p[0], Dial: dialLine("tcp", p[1]), Format: idFormat,
		ConfirmDelay: 50 * time.Millisecond, MaxBatch: 20,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		Log: zerolog.New(os.Stderr),
	}
	f, err := NewForwarder(opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range n {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("k%d", i)})
	}
	fmt.Printf("spooled %d\n", f.Stats().Spooled)
	for {
		time.Sleep(20 * time.Millisecond)
		if st := f.Stats(); st.Depth == 0 && n == 0 {
			fmt.Println("delivered")
			n = -1
		}
	}
}

func startChild(t *testing.T, arg string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FORWARD_CHILD="+arg)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func expectLine(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	if !sc.Scan() || sc.Text() != want {
		t.Fatalf("child said %q, want %q (%v)", sc.Text(), want, sc.Err())
	}
}

func TestForwardKill9WhileCollectorDown(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns children")
	}
	col := newCollector(t, false)
	dir := filepath.Join(t.TempDir(), "dest0")
	cmd, sc := startChild(t, fmt.Sprintf("%s %s %d", dir, col.addr, 120))
	expectLine(t, sc, "spooled 120")
	time.Sleep(100 * time.Millisecond) // let it fail a few dials
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	col.start()
	_, sc = startChild(t, fmt.Sprintf("%s %s %d", dir, col.addr, 0))
	expectLine(t, sc, "spooled 0")
	done := make(chan bool, 1)
	go func() { done <- sc.Scan() && sc.Text() == "delivered" }()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("child did not report delivery")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for the restarted sensor to deliver")
	}
	if dups := col.check(t, "k", 0, 120); dups != 0 {
		t.Fatalf("%d duplicates although nothing was sent before the kill", dups)
	}
}

// TestForwardConfirmCatchesWriteToDeadCollector is the case the removal
// rule exists for: a single message written to a connection whose
// collector has just died is accepted by the kernel and lost on the wire.
// It must stay spooled and arrive after the collector is back.
func TestForwardConfirmCatchesWriteToDeadCollector(t *testing.T) {
	col := newCollector(t, true)
	f := newForwarder(t, testOptions(t.TempDir(), col.addr))
	defer f.Close()
	f.Finding(&detect.Finding{ID: "w0"})
	waitFor(t, "first delivery", 5*time.Second, func() bool { return f.Stats().Acked == 1 })
	col.stop()
	time.Sleep(50 * time.Millisecond) // the FIN reaches the idle connection
	f.Finding(&detect.Finding{ID: "w1"})
	waitFor(t, "write to the dead connection", 5*time.Second, func() bool { return f.Stats().Sent >= 2 })
	time.Sleep(200 * time.Millisecond)
	if st := f.Stats(); st.Acked != 1 || st.Depth != 1 || st.SendFailures == 0 {
		t.Fatalf("message written to a dead collector was acknowledged: %+v", st)
	}
	col.start()
	waitFor(t, "delivery after restart", 10*time.Second, func() bool { return f.Stats().Depth == 0 })
	col.check(t, "w", 0, 2)
}

func TestSpoolDirPerDestination(t *testing.T) {
	a := SpoolDir("/var/spool/x", "tcp://collector:514")
	b := SpoolDir("/var/spool/x", "tcp://collector:515")
	if a == b || a != SpoolDir("/var/spool/x", "tcp://collector:514") || filepath.Dir(a) != "/var/spool/x" {
		t.Fatalf("%s %s", a, b)
	}
	if d := SpoolDir("/r", "../../etc"); filepath.Dir(d) != "/r" {
		t.Fatalf("escaped root: %s", d)
	}
}

// TestForwardPipelinesBatches: batches are written while earlier ones wait
// out their ConfirmDelay, so the rate is not MaxBatch per ConfirmDelay
// (here that would take 20 s), yet never more than MaxInflight messages
// are unconfirmed, and each is removed only after its ConfirmDelay.
func TestForwardPipelinesBatches(t *testing.T) {
	col := newCollector(t, true)
	opt := testOptions(t.TempDir(), col.addr)
	opt.ConfirmDelay, opt.MaxBatch, opt.MaxInflight = 100*time.Millisecond, 10, 500
	f := newForwarder(t, opt)
	defer f.Close()
	const n = 2000
	start := time.Now()
	for i := range n {
		f.Finding(&detect.Finding{ID: fmt.Sprintf("p%d", i)})
	}
	var maxInFlight uint64
	var firstAck time.Duration
	waitFor(t, "delivery", 5*time.Second, func() bool {
		st := f.Stats()
		maxInFlight = max(maxInFlight, st.InFlight)
		if st.Acked > 0 && firstAck == 0 {
			firstAck = time.Since(start)
		}
		return st.Depth == 0
	})
	el := time.Since(start)
	if dups := col.check(t, "p", 0, n); dups != 0 {
		t.Fatalf("%d duplicates without a failure", dups)
	}
	if maxInFlight > uint64(opt.MaxInflight) || maxInFlight <= uint64(opt.MaxBatch) {
		t.Fatalf("in flight at most %d, want more than one batch and at most %d", maxInFlight, opt.MaxInflight)
	}
	if firstAck < opt.ConfirmDelay {
		t.Fatalf("first acknowledgement after %v, before ConfirmDelay %v", firstAck, opt.ConfirmDelay)
	}
	if el > 3*time.Second {
		t.Fatalf("%d messages took %v: batches are not pipelined", n, el)
	}
	if st := f.Stats(); st.Unsynced != 0 || st.InFlight != 0 || st.Acked != n {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%d messages confirmed in %v, at most %d in flight", n, el, maxInFlight)
}
