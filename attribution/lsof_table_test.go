package attribution

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lsofFakeCommand writes a shell script that stands in for lsof: it counts
// its runs in a file, prints the -F fixture and exits 1 (as lsof does when
// one -i selection matched nothing).
func lsofFakeCommand(t *testing.T, body string) (path, runs string) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	runs = filepath.Join(dir, "runs")
	path = filepath.Join(dir, "lsof")
	script := "#!/bin/sh\necho run >> '" + runs + "'\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

func lsofRuns(t *testing.T, runs string) int {
	b, err := os.ReadFile(runs)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run")
}

func TestLsofTable(t *testing.T) {
	fixture, err := filepath.Abs(filepath.Join("testdata", "darwin", "lsof_F_pcRuftPnT.txt"))
	if err != nil {
		t.Fatal(err)
	}
	path, runs := lsofFakeCommand(t, "test \"$*\" = '-nP -iTCP -iUDP -FpcRuftPnT' || { echo bad args: $* >&2; exit 2; }\ncat '"+fixture+"'\nexit 1")
	clk := newLibprocClock()
	tab, err := NewLsofTable(LsofOptions{Path: path, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()

	o, err := tab.Lookup(TCP, sockinfoAP("10.184.10.188:64647"), sockinfoAP("76.76.21.61:443"))
	if err != nil || o.PID != 37224 || o.UID != 501 {
		t.Fatalf("Lookup = %+v, %v", o, err)
	}
	// The v4-mapped socket of the -F fixture (type IPv6, IPv4 addresses)
	// matches the IPv4 flow; the link-local one matches without a zone.
	if o, err := tab.Lookup(TCP, sockinfoAP("10.0.0.5:49823"), sockinfoAP("203.0.113.9:40015")); err != nil || o.PID != 8812 {
		t.Fatalf("mapped: %+v, %v", o, err)
	}
	if o, err := tab.Lookup(UDP, sockinfoAP("[fe80::aede:48ff:fe00:1122]:5353"), sockinfoAP("[ff02::fb]:5353")); err != nil || o.PID != 412 {
		t.Fatalf("link-local: %+v, %v", o, err)
	}
	if n := lsofRuns(t, runs); n != 1 {
		t.Errorf("%d runs for hits after the first", n)
	}
	// A miss within MinInterval does not run lsof again; after it, it does.
	if _, err := tab.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if n := lsofRuns(t, runs); n != 1 {
		t.Errorf("%d runs, want 1 within MinInterval", n)
	}
	clk.add(DefaultLsofMinInterval)
	if _, err := tab.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if n := lsofRuns(t, runs); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	if st := tab.Stats(); st.Runs != 2 || st.Failures != 0 || st.Sockets != len(lsofWantF) {
		t.Errorf("stats %+v", st)
	}
}

func TestLsofTableTimeout(t *testing.T) {
	path, _ := lsofFakeCommand(t, "exec sleep 10")
	var logged []string
	tab, err := NewLsofTable(LsofOptions{Path: path, Timeout: 200 * time.Millisecond,
		Logf: func(f string, a ...any) { logged = append(logged, f) }})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = tab.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2"))
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("lookup took %v", d)
	}
	if st := tab.Stats(); st.Failures != 1 || len(logged) != 1 {
		t.Errorf("stats %+v, logged %q", st, logged)
	}
}

func TestLsofTableFailures(t *testing.T) {
	if _, err := NewLsofTable(LsofOptions{Path: filepath.Join(t.TempDir(), "no-lsof")}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("missing command: %v", err)
	}
	path, _ := lsofFakeCommand(t, "echo 'lsof: WARNING: cannot stat() /Volumes/x' >&2\nexit 1")
	tab, err := NewLsofTable(LsofOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); err == nil || !strings.Contains(err.Error(), "WARNING") {
		t.Fatalf("exit 1 without output: %v", err)
	}
	// Output past MaxOutput is cut; what came before is used.
	fixture, _ := filepath.Abs(filepath.Join("testdata", "darwin", "lsof_F_pcRuftPnT.txt"))
	path, _ = lsofFakeCommand(t, "cat '"+fixture+"'; yes 'x' | head -c 100000")
	tab, err = NewLsofTable(LsofOptions{Path: path, MaxOutput: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := tab.Lookup(TCP, sockinfoAP("10.184.10.188:64647"), sockinfoAP("76.76.21.61:443")); err != nil || o.PID != 37224 {
		t.Fatalf("capped output: %+v, %v", o, err)
	}
}

// TestLsofTableDoesNotBlockOthers: while lsof runs, other lookups miss at
// once instead of waiting for it.
func TestLsofTableDoesNotBlockOthers(t *testing.T) {
	fixture, _ := filepath.Abs(filepath.Join("testdata", "darwin", "lsof_F_pcRuftPnT.txt"))
	path, runs := lsofFakeCommand(t, "sleep 1; cat '"+fixture+"'")
	tab, err := NewLsofTable(LsofOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tab.Lookup(TCP, sockinfoAP("10.184.10.188:64647"), sockinfoAP("76.76.21.61:443"))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := tab.Lookup(TCP, sockinfoAP("10.0.0.5:1"), sockinfoAP("10.0.0.9:2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("concurrent miss: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("concurrent lookup waited %v", d)
	}
	if err := <-done; err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	if n := lsofRuns(t, runs); n != 1 {
		t.Errorf("%d runs", n)
	}
}
