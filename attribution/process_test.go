package attribution

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// fakeProcs is an in-memory procSource: the cache logic is tested on every
// platform without a proc file system.
type fakeProcs struct {
	boot    time.Time
	procs   map[int32]*fakeProc
	details int // calls to details
}

type fakeProc struct {
	st      procStat
	d       procDetails
	statErr error
}

func newFakeProcs() *fakeProcs {
	return &fakeProcs{boot: time.Unix(1700000000, 0), procs: make(map[int32]*fakeProc)}
}

func (f *fakeProcs) add(pid, ppid, sid int32, start uint64, comm, exe string, args ...string) *fakeProc {
	p := &fakeProc{
		st: procStat{PID: pid, Comm: comm, State: 'S', PPID: ppid, Session: sid, StartTicks: start},
		d:  procDetails{exe: exe, cwd: "/", args: args, uid: 1000, uidOK: true},
	}
	f.procs[pid] = p
	return p
}

func (f *fakeProcs) open(pid int32) (procHandle, error) {
	p := f.procs[pid]
	if p == nil {
		return nil, fmt.Errorf("%w: process %d", ErrNotFound, pid)
	}
	return fakeHandle{f, p}, nil
}

func (f *fakeProcs) bootTime() (time.Time, error) { return f.boot, nil }

type fakeHandle struct {
	f *fakeProcs
	p *fakeProc
}

func (h fakeHandle) stat() (procStat, error) { return h.p.st, h.p.statErr }
func (h fakeHandle) details(int) procDetails {
	h.f.details++
	return h.p.d
}
func (h fakeHandle) close() {}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestCache(src procSource, opts ProcessCacheOptions) (*ProcessCache, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1700001000, 0)}
	opts.Now = clk.now
	if opts.UserName == nil {
		opts.UserName = func(uid uint32) (string, error) {
			if uid == 1000 {
				return "alice", nil
			}
			return "", errors.New("unknown uid")
		}
	}
	return newProcessCache(src, opts), clk
}

func TestProcessCacheFields(t *testing.T) {
	f := newFakeProcs()
	f.add(4242, 4200, 100, 90012, "curl", "/usr/bin/curl", "curl", "-T", "x")
	c, _ := newTestCache(f, ProcessCacheOptions{})
	p, err := c.Process(4242)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{PID: 4242, PPID: 4200, Name: "curl", Executable: "/usr/bin/curl", Args: []string{"curl", "-T", "x"},
		CWD: "/", StartTime: time.Unix(1700000900, 120e6), UID: 1000, User: "alice", SessionLeader: 100}
	if fmt.Sprint(*p) != fmt.Sprint(want) || !p.StartTime.Equal(want.StartTime) {
		t.Fatalf("got %+v\nwant %+v", *p, want)
	}
}

// TestProcessCachePIDReuse: a pid that names a new process (another start
// time) gets a new record; the old record stays reachable by time.
func TestProcessCachePIDReuse(t *testing.T) {
	f := newFakeProcs()
	f.add(10, 1, 1, 100, "curl", "/usr/bin/curl", "curl")
	c, _ := newTestCache(f, ProcessCacheOptions{})
	old, err := c.Process(10)
	if err != nil {
		t.Fatal(err)
	}
	f.add(10, 1, 1, 50000, "sshd", "/usr/sbin/sshd", "sshd") // exited, pid reused 499s later
	now, err := c.Process(10)
	if err != nil || now.Name != "sshd" || now == old {
		t.Fatalf("reused pid: %+v %v", now, err)
	}
	if old.Name != "curl" {
		t.Fatal("the old record was modified")
	}
	// At a time when only curl had the pid.
	at, err := c.ProcessAt(10, f.boot.Add(200*time.Second))
	if err != nil || at != old {
		t.Fatalf("ProcessAt before reuse: %+v %v", at, err)
	}
	at, err = c.ProcessAt(10, f.boot.Add(600*time.Second))
	if err != nil || at != now {
		t.Fatalf("ProcessAt after reuse: %+v %v", at, err)
	}
	// Before either process started.
	if _, err := c.ProcessAt(10, f.boot.Add(-time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ProcessAt before boot: %v", err)
	}
	if _, err := c.ProcessAt(10, f.boot.Add(-500*time.Millisecond)); !errors.Is(err, ErrNotFound) { // 1.5s before curl started
		t.Fatalf("ProcessAt before the first start: %v", err)
	}
	if s := c.Stats(); s.Reused == 0 || s.Entries != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestProcessCacheKeepsExited(t *testing.T) {
	f := newFakeProcs()
	f.add(10, 1, 1, 100, "curl", "/usr/bin/curl", "curl")
	c, _ := newTestCache(f, ProcessCacheOptions{})
	if _, err := c.Process(11); !errors.Is(err, ErrNotFound) {
		t.Fatalf("never seen: %v", err)
	}
	p, _ := c.Process(10)
	delete(f.procs, 10)
	got, err := c.Process(10)
	if err != nil || got != p {
		t.Fatalf("exited: %+v %v", got, err)
	}
	// Gone between open and stat.
	f.add(12, 1, 1, 100, "sh", "/bin/sh", "sh")
	c.Process(12)
	f.procs[12].statErr = fmt.Errorf("%w: gone", ErrNotFound)
	if got, err := c.Process(12); err != nil || got.Name != "sh" {
		t.Fatalf("gone during read: %+v %v", got, err)
	}
	if s := c.Stats(); s.Exited != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestProcessCacheRefresh(t *testing.T) {
	f := newFakeProcs()
	p := f.add(10, 1, 1, 100, "bash", "/usr/bin/bash", "bash")
	c, clk := newTestCache(f, ProcessCacheOptions{RefreshAfter: time.Second})
	first, _ := c.Process(10)
	if again, _ := c.Process(10); again != first || f.details != 1 {
		t.Fatalf("not cached: %d reads", f.details)
	}
	// exec: same pid and start time, new name → read at once.
	p.st.Comm, p.d.exe, p.d.args = "curl", "/usr/bin/curl", []string{"curl", "x"}
	execd, _ := c.Process(10)
	if execd.Name != "curl" || execd.Executable != "/usr/bin/curl" || f.details != 2 {
		t.Fatalf("exec not seen: %+v", execd)
	}
	// Same name, new args: seen after RefreshAfter.
	p.d.args = []string{"curl", "y"}
	if got, _ := c.Process(10); got.Args[1] != "x" {
		t.Fatal("refreshed too early")
	}
	clk.t = clk.t.Add(time.Second)
	if got, _ := c.Process(10); got.Args[1] != "y" {
		t.Fatal("not refreshed after RefreshAfter")
	}
	// Snapshot reads by the same rule: not again while fresh.
	n := f.details
	c.Snapshot(10)
	if f.details != n {
		t.Fatal("Snapshot read a fresh record again")
	}
	// A zombie keeps its record.
	p.st.State, p.d = 'Z', procDetails{}
	clk.t = clk.t.Add(time.Hour)
	if got, _ := c.Process(10); got.Executable != "/usr/bin/curl" {
		t.Fatalf("zombie overwrote the record: %+v", got)
	}
}

func TestProcessCacheLRU(t *testing.T) {
	f := newFakeProcs()
	for pid := int32(10); pid < 13; pid++ {
		f.add(pid, 1, 1, 100, "p", "/p", "p")
	}
	c, _ := newTestCache(f, ProcessCacheOptions{MaxProcesses: 2})
	c.Process(10)
	c.Process(11)
	c.Process(10) // 11 is now the least recently used
	c.Process(12)
	s := c.Stats()
	if s.Evictions != 1 || s.Entries != 2 {
		t.Fatalf("stats %+v", s)
	}
	delete(f.procs, 11)
	delete(f.procs, 10)
	if _, err := c.Process(11); !errors.Is(err, ErrNotFound) {
		t.Fatalf("evicted record still answered: %v", err)
	}
	if _, err := c.Process(10); err != nil {
		t.Fatalf("kept record lost: %v", err)
	}
	if len(c.byPID) != 2 {
		t.Fatalf("byPID not pruned: %v", c.byPID)
	}
}

func TestProcessCacheErrors(t *testing.T) {
	f := newFakeProcs()
	p := f.add(10, 1, 1, 100, "x", "/x", "x")
	p.statErr = errors.New("attribution: malformed stat")
	c, _ := newTestCache(f, ProcessCacheOptions{})
	if _, err := c.Process(10); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("bad stat: %v", err)
	}
	for _, pid := range []int32{0, -1} {
		if _, err := c.Process(pid); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pid %d: %v", pid, err)
		}
	}
	if s := c.Stats(); s.Errors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestProcName(t *testing.T) {
	tests := []struct {
		comm, exe string
		args      []string
		want      string
	}{
		{"curl", "/usr/bin/curl", []string{"curl"}, "curl"},
		{"very-long-proce", "/opt/bin/very-long-process-name (deleted)", nil, "very-long-process-name"},
		{"very-long-proce", "", []string{"./very-long-process-name"}, "very-long-process-name"},
		{"very-long-proce", "/bin/other", []string{"other"}, "very-long-proce"},
		{"short", "/usr/bin/longer-name", nil, "short"},
	}
	for _, tt := range tests {
		if got := procName(tt.comm, tt.exe, tt.args); got != tt.want {
			t.Errorf("procName(%q, %q, %q) = %q, want %q", tt.comm, tt.exe, tt.args, got, tt.want)
		}
	}
}

func TestProcTicksToDuration(t *testing.T) {
	// 10 years of uptime at 100 Hz does not overflow.
	ticks := uint64(10 * 365 * 24 * 3600 * 100)
	if got := procTicksToDuration(ticks+7, 100); got != 10*365*24*time.Hour+70*time.Millisecond {
		t.Fatalf("got %v", got)
	}
	if got := procTicksToDuration(1, 1024); got != time.Second/1024 {
		t.Fatalf("got %v", got)
	}
}
