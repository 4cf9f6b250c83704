package attribution

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyProcFixture copies the fixture tree (symlinks as symlinks) to a temp
// dir that a test may change.
func copyProcFixture(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "proc")
	err := filepath.WalkDir(procFixture, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(procFixture, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func newFixtureTable(t testing.TB, root string, opts ProcTableOptions) (*ProcTable, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1700001000, 0)}
	if opts.Now == nil {
		opts.Now = clk.now
	}
	tbl, err := NewProcTable(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	return tbl, clk
}

func TestProcTableFixtureLookup(t *testing.T) {
	skipIfBigEndian(t)
	tbl, clk := newFixtureTable(t, procFixture, ProcTableOptions{})
	tests := []struct {
		name          string
		proto         uint8
		local, remote string
		pid           int32
		uid           uint32
		inode         uint64
	}{
		{"tcp4", TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242, 1000, 2001},
		{"v4 flow on a dual-stack tcp6 socket", TCP, "10.0.0.5:8080", "198.51.100.7:40000", 777, 33, 3001},
		{"mapped query", TCP, "[::ffff:10.0.0.5]:8080", "[::ffff:198.51.100.7]:40000", 777, 33, 3001},
		{"tcp6", TCP, "[2001:db8::5]:52000", "[2001:db8::99]:443", 4242, 1000, 3002},
		{"udp connected", UDP, "10.0.0.5:40001", "8.8.8.8:53", 4242, 1000, 4002},
		{"udp unconnected 0.0.0.0", UDP, "10.0.0.5:5353", "224.0.0.251:5353", 777, 33, 4001},
		{"udp dual-stack ::", UDP, "10.0.0.5:9999", "192.0.2.1:1234", 777, 33, 4003},
		{"udp6 ::", UDP, "[2001:db8::5]:9999", "[2001:db8::1]:1234", 777, 33, 4003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tbl.Lookup(tt.proto, ap(tt.local), ap(tt.remote))
			want := Owner{PID: tt.pid, UID: tt.uid, Inode: tt.inode, Seen: clk.t}
			if err != nil || o != want {
				t.Fatalf("got %+v, %v; want %+v", o, err, want)
			}
		})
	}
	misses := []struct {
		name          string
		proto         uint8
		local, remote string
		errText       string
	}{
		{"time_wait has no inode", TCP, "10.0.0.5:51002", "93.184.216.34:443", "no visible owner"},
		{"no process holds the inode", TCP, "10.0.0.5:51010", "203.0.113.9:80", "inode 2002 has no visible owner"},
		{"only a listener on the port: never by port alone", TCP, "10.0.0.5:22", "192.0.2.1:5555", "no tcp socket"},
		{"another remote port", TCP, "10.0.0.5:51000", "93.184.216.34:444", "no tcp socket"},
		{"another local address", TCP, "10.0.0.6:51000", "93.184.216.34:443", "no tcp socket"},
		{"tcp socket is not udp", UDP, "10.0.0.5:51000", "93.184.216.34:443", "no udp socket"},
		{"udp connected elsewhere", UDP, "10.0.0.5:40001", "8.8.4.4:53", "no udp socket"},
		{"v6 flow never matches a v4 file", TCP, "[2001:db8::5]:51000", "[2001:db8::99]:443", "no tcp socket"},
	}
	for _, tt := range misses {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tbl.Lookup(tt.proto, ap(tt.local), ap(tt.remote))
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("got %+v, %v; want ErrNotFound with %q", o, err, tt.errText)
			}
		})
	}
	s := tbl.Stats()
	if s.Lookups != uint64(len(tests)+len(misses)) || s.Hits != uint64(len(tests)) || s.Misses != uint64(len(misses)) || s.BadLines != 0 || s.SockDiagQueries != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestProcTableBadArguments(t *testing.T) {
	tbl, _ := newFixtureTable(t, procFixture, ProcTableOptions{})
	tests := []struct {
		proto         uint8
		local, remote string
	}{
		{1, "10.0.0.5:51000", "93.184.216.34:443"},
		{TCP, "", "93.184.216.34:443"},
		{TCP, "10.0.0.5:51000", ""},
		{TCP, "10.0.0.5:0", "93.184.216.34:443"},
		{TCP, "10.0.0.5:51000", "[2001:db8::1]:443"},
	}
	for _, tt := range tests {
		_, err := tbl.Lookup(tt.proto, ap(tt.local), ap(tt.remote))
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%d %q %q: got %v, want an argument error", tt.proto, tt.local, tt.remote, err)
		}
	}
}

// TestProcTableIncremental: the first lookup reads fd tables only until it
// finds the owner (newest pids first); a later lookup reads only the pids
// not read yet, and an indexed inode costs no rescan.
func TestProcTableIncremental(t *testing.T) {
	skipIfBigEndian(t)
	root := copyProcFixture(t)
	tbl, clk := newFixtureTable(t, root, ProcTableOptions{})
	mustOwner(t, tbl, TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242)
	if s := tbl.Stats(); s.Rescans != 1 || s.ScannedPIDs != 1 {
		t.Fatalf("first lookup: %+v", s) // 4242 is the highest pid: found at once
	}
	mustOwner(t, tbl, TCP, "10.0.0.5:8080", "198.51.100.7:40000", 777)
	if s := tbl.Stats(); s.Rescans != 2 || s.ScannedPIDs != 3 {
		t.Fatalf("second lookup: %+v", s) // 4200 then 777, not 4242 again
	}
	mustOwner(t, tbl, UDP, "10.0.0.5:40001", "8.8.8.8:53", 4242)
	if s := tbl.Stats(); s.Rescans != 2 {
		t.Fatalf("indexed inode rescanned: %+v", s)
	}

	// A process that appeared since: only it is read.
	writeProcess(t, root, 5000, "socket:[6001]")
	appendLine(t, root, "net/tcp", "10.0.0.5:51500", "93.184.216.34:443", 6001)
	before := tbl.Stats()
	mustOwner(t, tbl, TCP, "10.0.0.5:51500", "93.184.216.34:443", 5000)
	if s := tbl.Stats(); s.ScannedPIDs != before.ScannedPIDs+1 {
		t.Fatalf("new pid: read %d fd tables, want 1", s.ScannedPIDs-before.ScannedPIDs)
	}

	// An inode nobody holds: one full walk, then remembered as unowned for
	// MinRescanInterval: a retry costs no walk.
	_, err := tbl.Lookup(TCP, ap("10.0.0.5:51010"), ap("203.0.113.9:80"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	s1 := tbl.Stats()
	if s1.FullRescans != 1 {
		t.Fatalf("no full walk for an unknown inode: %+v", s1)
	}
	tbl.Lookup(TCP, ap("10.0.0.5:51010"), ap("203.0.113.9:80"))
	if s := tbl.Stats(); s.Rescans != s1.Rescans {
		t.Fatalf("retry within MinRescanInterval rescanned")
	}

	// A known process swaps a socket under the same fd count (its fd
	// directory looks unchanged): found by the next full walk, which waits
	// for MinRescanInterval.
	fd := filepath.Join(root, "100", "fd", "255")
	os.Remove(fd)
	os.Symlink("socket:[6002]", fd)
	appendLine(t, root, "net/tcp", "10.0.0.5:51600", "93.184.216.34:443", 6002)
	if _, err := tbl.Lookup(TCP, ap("10.0.0.5:51600"), ap("93.184.216.34:443")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("full walk not rate-limited: %v", err)
	}
	clk.t = clk.t.Add(DefaultProcRescanInterval)
	mustOwner(t, tbl, TCP, "10.0.0.5:51600", "93.184.216.34:443", 100)
	if s := tbl.Stats(); s.FullRescans != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProcTableGrace: the owner of a flow whose process exited and whose
// socket closed is still answered for Grace after it was last seen; a new
// socket on the same 5-tuple (port reuse) is never given the old owner.
func TestProcTableGrace(t *testing.T) {
	skipIfBigEndian(t)
	root := copyProcFixture(t)
	tbl, clk := newFixtureTable(t, root, ProcTableOptions{Grace: 10 * time.Second})
	seen := clk.t
	mustOwner(t, tbl, TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242)

	// curl exits: its pid directory and its socket are gone.
	os.RemoveAll(filepath.Join(root, "4242"))
	removeLine(t, root, "net/tcp", "0500000A:C738")
	clk.t = clk.t.Add(9 * time.Second)
	o, err := tbl.Lookup(TCP, ap("10.0.0.5:51000"), ap("93.184.216.34:443"))
	if err != nil || o != (Owner{PID: 4242, UID: 1000, Inode: 2001, Seen: seen}) {
		t.Fatalf("within grace: %+v %v", o, err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if _, err := tbl.Lookup(TCP, ap("10.0.0.5:51000"), ap("93.184.216.34:443")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after grace: %v", err)
	}

	// Port reuse: the same 5-tuple, a new socket of a new process.
	mustOwner(t, tbl, TCP, "10.0.0.5:8080", "198.51.100.7:40000", 777)
	replaceInode(t, root, "net/tcp6", "3001", "3101")
	writeProcess(t, root, 5001, "socket:[3101]")
	mustOwner(t, tbl, TCP, "10.0.0.5:8080", "198.51.100.7:40000", 5001)
	// Reused again, by a socket no visible process holds: the remembered
	// owner (5001, inode 3101) is not given to inode 3102.
	replaceInode(t, root, "net/tcp6", "3101", "3102")
	clk.t = clk.t.Add(time.Second)
	if o, err := tbl.Lookup(TCP, ap("10.0.0.5:8080"), ap("198.51.100.7:40000")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("port reuse got the old owner: %+v %v", o, err)
	}
	if s := tbl.Stats(); s.GraceHits != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProcTableScan: Scan remembers every connected socket's owner, so the
// flows of processes that exited before their first lookup are answered.
func TestProcTableScan(t *testing.T) {
	skipIfBigEndian(t)
	root := copyProcFixture(t)
	var notified []int32
	tbl, clk := newFixtureTable(t, root, ProcTableOptions{OnOwner: func(pid int32) { notified = append(notified, pid) }})
	if err := tbl.Scan(); err != nil {
		t.Fatal(err)
	}
	seen := clk.t
	if s := tbl.Stats(); s.RecentSockets != 6 || s.FullRescans != 1 {
		t.Fatalf("stats %+v", s) // 2001, 3001, 3002, 4001, 4002, 4003; 2002 and 2003 have no holder
	}
	if fmt.Sprint(notified) != "[777 4242]" {
		t.Fatalf("OnOwner calls %v", notified)
	}
	// Everything exits.
	for _, pid := range []string{"4242", "777"} {
		os.RemoveAll(filepath.Join(root, pid))
	}
	for _, f := range []string{"net/tcp", "net/tcp6", "net/udp", "net/udp6"} {
		b := readFixture(t, f)
		os.WriteFile(filepath.Join(root, f), b[:strings.IndexByte(string(b), '\n')+1], 0o644)
	}
	clk.t = clk.t.Add(5 * time.Second)
	for _, tt := range []struct {
		proto         uint8
		local, remote string
		pid           int32
	}{
		{TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242},
		{TCP, "10.0.0.5:8080", "198.51.100.7:40000", 777},
		{TCP, "[2001:db8::5]:52000", "[2001:db8::99]:443", 4242},
		{UDP, "10.0.0.5:40001", "8.8.8.8:53", 4242},
		{UDP, "10.0.0.5:5353", "224.0.0.251:5353", 777},
		{UDP, "10.0.0.5:9999", "192.0.2.1:1234", 777},
	} {
		o, err := tbl.Lookup(tt.proto, ap(tt.local), ap(tt.remote))
		if err != nil || o.PID != tt.pid || !o.Seen.Equal(seen) {
			t.Errorf("%s → %s: %+v %v", tt.local, tt.remote, o, err)
		}
	}
	// A second Scan of the same sockets does not call OnOwner again.
	notified = nil
	tbl.Scan()
	if len(notified) != 0 {
		t.Fatalf("OnOwner called again: %v", notified)
	}
}

func TestProcTableBadInput(t *testing.T) {
	skipIfBigEndian(t)
	if _, err := NewProcTable(filepath.Join(t.TempDir(), "missing"), ProcTableOptions{}); err == nil {
		t.Error("missing root: no error")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := NewProcTable(file, ProcTableOptions{}); err == nil {
		t.Error("root is a file: no error")
	}

	t.Run("garbage and huge lines are skipped and counted", func(t *testing.T) {
		root := copyProcFixture(t)
		good := readFixture(t, "net/tcp")
		bad := "garbage\n" + strings.Repeat("Z", 100000) + "\n\x00\x01\x02\n" + string(good[strings.IndexByte(string(good), '\n')+1:]) + "   9: 0500000A:C7"
		os.WriteFile(filepath.Join(root, "net/tcp"), []byte(bad), 0o644)
		tbl, _ := newFixtureTable(t, root, ProcTableOptions{})
		if err := tbl.Scan(); err != nil {
			t.Fatal(err)
		}
		if s := tbl.Stats(); s.BadLines != 4 {
			t.Fatalf("bad lines %d, want 4 (garbage, huge, binary, truncated)", s.BadLines)
		}
		mustOwner(t, tbl, TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242)
	})
	t.Run("missing net files", func(t *testing.T) {
		root := copyProcFixture(t)
		os.RemoveAll(filepath.Join(root, "net"))
		tbl, _ := newFixtureTable(t, root, ProcTableOptions{})
		if _, err := tbl.Lookup(TCP, ap("10.0.0.5:51000"), ap("93.184.216.34:443")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v", err)
		}
		if err := tbl.Scan(); err != nil {
			t.Fatalf("scan: %v", err)
		}
	})
	t.Run("unreadable net file", func(t *testing.T) {
		root := copyProcFixture(t)
		p := filepath.Join(root, "net/tcp")
		os.Remove(p)
		os.Mkdir(p, 0o755) // reading a directory fails even as root
		tbl, _ := newFixtureTable(t, root, ProcTableOptions{})
		_, err := tbl.Lookup(TCP, ap("10.0.0.5:51000"), ap("93.184.216.34:443"))
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "net/tcp") {
			t.Fatalf("got %v", err)
		}
		if err := tbl.Scan(); err == nil {
			t.Fatal("scan: no error")
		}
	})
	t.Run("vanished and unreadable fd tables", func(t *testing.T) {
		root := copyProcFixture(t)
		os.RemoveAll(filepath.Join(root, "4242", "fd"))
		os.WriteFile(filepath.Join(root, "4242", "fd"), []byte("not a dir"), 0o644)
		os.RemoveAll(filepath.Join(root, "777"))
		tbl, _ := newFixtureTable(t, root, ProcTableOptions{})
		for _, q := range [][2]string{{"10.0.0.5:51000", "93.184.216.34:443"}, {"10.0.0.5:8080", "198.51.100.7:40000"}} {
			if _, err := tbl.Lookup(TCP, ap(q[0]), ap(q[1])); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%v: got %v", q, err)
			}
		}
		if s := tbl.Stats(); s.UnreadableFDTables == 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("index entry gone stale", func(t *testing.T) {
		root := copyProcFixture(t)
		tbl, clk := newFixtureTable(t, root, ProcTableOptions{Grace: -1})
		mustOwner(t, tbl, TCP, "10.0.0.5:51000", "93.184.216.34:443", 4242)
		// 4242 hands the socket to a new process and closes its fd.
		os.Remove(filepath.Join(root, "4242", "fd", "3"))
		writeProcess(t, root, 5002, "socket:[2001]")
		clk.t = clk.t.Add(time.Second)
		mustOwner(t, tbl, TCP, "10.0.0.5:51000", "93.184.216.34:443", 5002)
	})
}

func mustOwner(t *testing.T, tbl *ProcTable, proto uint8, local, remote string, pid int32) {
	t.Helper()
	o, err := tbl.Lookup(proto, ap(local), ap(remote))
	if err != nil || o.PID != pid {
		t.Fatalf("Lookup %s → %s: %+v, %v; want pid %d", local, remote, o, err, pid)
	}
}

// writeProcess adds root/PID with fd/3 linked to target.
func writeProcess(t *testing.T, root string, pid int, target string) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stat"), []byte(statOf("new")), 0o644)
	if err := os.Symlink(target, filepath.Join(dir, "fd", "3")); err != nil {
		t.Fatal(err)
	}
}

// appendLine adds an ESTABLISHED IPv4 socket to root/name.
func appendLine(t *testing.T, root, name, local, remote string, inode uint64) {
	t.Helper()
	hexAP := func(s string) string {
		a := ap(s)
		b := a.Addr().As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], a.Port())
	}
	line := fmt.Sprintf("  99: %s %s 01 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0 20 4 30 10 -1\n", hexAP(local), hexAP(remote), inode)
	f, err := os.OpenFile(filepath.Join(root, name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(line)
}

func removeLine(t *testing.T, root, name, substr string) {
	t.Helper()
	p := filepath.Join(root, name)
	b, _ := os.ReadFile(p)
	var keep []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.Contains(l, substr) {
			keep = append(keep, l)
		}
	}
	os.WriteFile(p, []byte(strings.Join(keep, "")), 0o644)
}

func replaceInode(t *testing.T, root, name, old, new string) {
	t.Helper()
	p := filepath.Join(root, name)
	b, _ := os.ReadFile(p)
	s := strings.Replace(string(b), " "+old+" ", " "+new+" ", 1)
	if s == string(b) {
		t.Fatalf("inode %s not in %s", old, name)
	}
	os.WriteFile(p, []byte(s), 0o644)
}
