//go:build linux

package attribution

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fanotifyTmpfs mounts a private 4 MiB tmpfs on a temp dir, so the watch
// never covers the machine's real filesystems, and unmounts it on cleanup.
func fanotifyTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify test needs root (CAP_SYS_ADMIN for fanotify and mount)")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestFanotifyLive(t *testing.T) {
	dir := fanotifyTmpfs(t)
	src := filepath.Join(dir, "src.txt")
	dst := filepath.Join(dir, "dst.txt")
	bin := filepath.Join(dir, "true")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true binary to copy")
	}
	b, err := os.ReadFile(trueBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}

	fa, err := NewFanotify(FanotifyOptions{Paths: []string{dir}, QueueSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fa.Close() })

	// Our own access: skipped and counted.
	if err := os.WriteFile(filepath.Join(dir, "self.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The shell reads (builtin read), writes (builtin echo) and then execs
	// the copied binary, all under one pid.
	cmd := exec.Command("/bin/sh", "-c", `read x < "$1"; echo x > "$2"; exec "$3"`, "sh", src, dst, bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	pid := int32(cmd.Process.Pid)

	type key struct {
		path string
		kind AccessKind
	}
	want := map[key]bool{
		{src, AccessRead}:  false,
		{dst, AccessRead}:  false, // the write-open is reported as an open
		{dst, AccessWrite}: false,
	}
	if fa.ExecEvents {
		want[key{bin, AccessExec}] = false
	} else {
		t.Log("kernel without FAN_OPEN_EXEC: exec seen as an open")
		want[key{bin, AccessRead}] = false
	}
	missing := len(want)
	deadline := time.After(5 * time.Second)
	for missing > 0 {
		select {
		case r := <-fa.Events():
			t.Logf("%+v", r)
			if r.Source != SourceFanotify {
				t.Errorf("source %q", r.Source)
			}
			if r.PID == int32(os.Getpid()) {
				t.Errorf("own event delivered: %+v", r)
			}
			if r.PID != pid {
				continue
			}
			if r.Modified != (r.Access == AccessWrite) {
				t.Errorf("Modified=%v for %v", r.Modified, r.Access)
			}
			k := key{r.Path, r.Access}
			if seen, ok := want[k]; ok && !seen {
				want[k] = true
				missing--
			}
		case <-deadline:
			t.Fatalf("timed out; seen %v, stats %+v", want, fa.Stats())
		}
	}
	st := fa.Stats()
	if st.Self == 0 {
		t.Errorf("own write not counted: %+v", st)
	}
	if st.Events == 0 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFanotifyClose(t *testing.T) {
	dir := fanotifyTmpfs(t)
	fa, err := NewFanotify(FanotifyOptions{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the reader block in poll
	done := make(chan struct{})
	go func() { fa.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, ok := <-fa.Events(); ok {
		t.Fatal("Events not closed after Close")
	}
	if err := fa.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFanotifyDrop(t *testing.T) {
	dir := fanotifyTmpfs(t)
	fa, err := NewFanotify(FanotifyOptions{Paths: []string{dir}, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	script := `for i in 1 2 3 4 5 6 7 8; do echo x > "$1/f$i"; done`
	if out, err := exec.Command("/bin/sh", "-c", script, "sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fa.Stats().Dropped == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := fa.Stats(); st.Dropped == 0 || st.Events != 1 {
		t.Fatalf("stats %+v, want 1 event and drops", st)
	}
}

func TestNewFanotifyErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify test needs root (CAP_SYS_ADMIN)")
	}
	if _, err := NewFanotify(FanotifyOptions{}); err == nil {
		t.Error("no paths: no error")
	}
	if _, err := NewFanotify(FanotifyOptions{Paths: []string{filepath.Join(t.TempDir(), "missing")}}); err == nil {
		t.Error("missing path: no error")
	}
}
