package attribution

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var fixtureUsers = map[uint32]string{0: "root", 33: "www-data", 1000: "alice"}

func newFixtureCache(t testing.TB, root string) *ProcessCache {
	t.Helper()
	return NewProcessCache(root, ProcessCacheOptions{
		UserName: func(uid uint32) (string, error) {
			if n, ok := fixtureUsers[uid]; ok {
				return n, nil
			}
			return "", errors.New("unknown uid")
		},
	})
}

// fixtureStart is the start time of a fixture process: btime 1700000000
// plus its start ticks at 100 Hz.
func fixtureStart(ticks int64) time.Time {
	return time.Unix(1700000000, 0).Add(time.Duration(ticks) * 10 * time.Millisecond)
}

func TestProcessCacheFixture(t *testing.T) {
	c := newFixtureCache(t, procFixture)
	tests := []Process{
		{PID: 4242, PPID: 4200, Name: "curl", Executable: "/usr/bin/curl",
			Args: []string{"curl", "-T", "secret.txt", "https://example.com/upload"}, CWD: "/home/alice/docs",
			StartTime: fixtureStart(90012), UID: 1000, User: "alice", SessionLeader: 100, PGID: 4200},
		{PID: 4200, PPID: 100, Name: "sh", Executable: "/usr/bin/dash",
			Args: []string{"sh", "-c", "curl -T secret.txt https://example.com/upload"}, CWD: "/home/alice/docs",
			StartTime: fixtureStart(90000), UID: 1000, User: "alice", SessionLeader: 100, PGID: 100},
		{PID: 777, PPID: 1, Name: "python3", Executable: "/usr/bin/python3.11",
			Args: []string{"python3", "-m", "http.server", "8080"}, CWD: "/var/www",
			StartTime: fixtureStart(3000), UID: 33, User: "www-data", SessionLeader: 777, PGID: 777},
		{PID: 1, PPID: 0, Name: "systemd", Executable: "/usr/lib/systemd/systemd",
			Args: []string{"/sbin/init", "splash"}, CWD: "/", StartTime: fixtureStart(2), UID: 0, User: "root", SessionLeader: 1, PGID: 1},
		// Name cut at 15 bytes by the kernel, completed from the executable;
		// setuid: the effective uid (0) is the process's user.
		{PID: 555, PPID: 100, Name: "very-long-process-name", Executable: "/opt/bin/very-long-process-name (deleted)",
			Args: []string{"./very-long-process-name", "--flag"}, CWD: "/tmp",
			StartTime: fixtureStart(95000), UID: 0, User: "root", SessionLeader: 100, PGID: 100},
		// A zombie: no executable, directory or command line any more.
		{PID: 556, PPID: 100, Name: "defunct-child", StartTime: fixtureStart(95500), UID: 1000, User: "alice", SessionLeader: 100, PGID: 100},
	}
	for _, want := range tests {
		t.Run(want.Name, func(t *testing.T) {
			got, err := c.Process(want.PID)
			if err != nil {
				t.Fatal(err)
			}
			g, w := *got, want
			g.StartTime, w.StartTime = time.Time{}, time.Time{}
			if !reflect.DeepEqual(g, w) || !got.StartTime.Equal(want.StartTime) {
				t.Fatalf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestProcessCacheFixtureErrors(t *testing.T) {
	c := newFixtureCache(t, procFixture)
	tests := []struct {
		pid      int32
		notFound bool
		errText  string
	}{
		{99999, true, "process 99999"},
		{666, false, "no (comm)"},          // garbage stat
		{667, false, "stat names pid 668"}, // stat of another process
	}
	for _, tt := range tests {
		_, err := c.Process(tt.pid)
		if err == nil || errors.Is(err, ErrNotFound) != tt.notFound || !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("pid %d: got %v, want error with %q (not found: %v)", tt.pid, err, tt.errText, tt.notFound)
		}
	}
	if s := c.Stats(); s.Errors != 2 {
		t.Errorf("stats %+v", s)
	}

	// Unreadable files: stat is a directory; the boot time is missing.
	root := copyProcFixture(t)
	os.Remove(filepath.Join(root, "4200", "stat"))
	os.Mkdir(filepath.Join(root, "4200", "stat"), 0o755)
	os.Remove(filepath.Join(root, "stat"))
	c = newFixtureCache(t, root)
	if _, err := c.Process(4200); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("stat is a directory: %v", err)
	}
	if _, err := c.Process(4242); err == nil || !strings.Contains(err.Error(), "boot time") {
		t.Errorf("no /proc/stat: %v", err)
	}
	// Unreadable optional files leave their fields empty.
	root = copyProcFixture(t)
	for _, f := range []string{"cmdline", "status", "exe", "cwd"} {
		os.Remove(filepath.Join(root, "4242", f))
	}
	os.Mkdir(filepath.Join(root, "4242", "cmdline"), 0o755)
	p, err := newFixtureCache(t, root).Process(4242)
	if err != nil || p.Name != "curl" || p.Args != nil || p.Executable != "" || p.User != "" || p.PPID != 4200 {
		t.Errorf("partial process: %+v %v", p, err)
	}
}

func TestLineageFixture(t *testing.T) {
	c := newFixtureCache(t, procFixture)
	for _, tt := range []struct {
		pid  int32
		want string
	}{
		{4242, "[4242 4200 100]"}, // curl ← sh ← login bash (session leader)
		{555, "[555 100]"},
		{777, "[777]"}, // a daemon is its own session leader
		{1, "[1]"},
	} {
		got, err := c.Lineage(tt.pid, 0)
		if err != nil || fmt.Sprint(lineagePIDs(got)) != tt.want {
			t.Errorf("Lineage(%d) = %v, %v; want %s", tt.pid, lineagePIDs(got), err, tt.want)
		}
	}
}

// TestProcessCacheFixtureExitAndReuse: a process read once is described
// after its /proc directory is gone; a new process with its pid (another
// start time) gets its own record.
func TestProcessCacheFixtureExitAndReuse(t *testing.T) {
	root := copyProcFixture(t)
	c := newFixtureCache(t, root)
	curl, err := c.Snapshot(4242)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(root, "4242"))
	os.RemoveAll(filepath.Join(root, "4200"))
	got, err := c.Process(4242)
	if err != nil || got != curl {
		t.Fatalf("exited: %+v %v", got, err)
	}
	lin, err := c.Lineage(4242, 0)
	if err != nil || fmt.Sprint(lineagePIDs(lin)) != "[4242 4200 100]" {
		t.Fatalf("lineage after exit: %v %v", lineagePIDs(lin), err)
	}
	// pid 4242 reused by a new process, started 2000 s after curl.
	os.MkdirAll(filepath.Join(root, "4242"), 0o755)
	stat := strings.Replace(strings.Replace(statOf("sshd"), "321 (", "4242 (", 1), " 777 ", " 290012 ", 1)
	os.WriteFile(filepath.Join(root, "4242", "stat"), []byte(stat), 0o644)
	now, err := c.Process(4242)
	if err != nil || now.Name != "sshd" || !now.StartTime.Equal(curl.StartTime.Add(2000*time.Second)) {
		t.Fatalf("reused: %+v %v", now, err)
	}
	// A flow seen while curl ran is curl's, not the new process's.
	at, err := c.ProcessAt(4242, curl.StartTime.Add(10*time.Second))
	if err != nil || at != curl {
		t.Fatalf("ProcessAt while curl ran: %+v %v", at, err)
	}
	at, err = c.ProcessAt(4242, now.StartTime.Add(time.Second))
	if err != nil || at != now {
		t.Fatalf("ProcessAt after the reuse: %+v %v", at, err)
	}
}
