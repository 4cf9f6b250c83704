//go:build linux

package attribution

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// sha256sumOf runs the real sha256sum on path.
func sha256sumOf(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Skipf("sha256sum: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("sha256sum output %q", out)
	}
	return f[0]
}

// Files read by cat and by python3, and written by python3, are hashed
// from the event's descriptor; the predicate and the size limit are obeyed.
func TestFanotifyHashLive(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	dir := fanotifyTmpfs(t)
	secret := filepath.Join(dir, "secret.pdf")
	big := filepath.Join(dir, "big.tar")
	plain := filepath.Join(dir, "plain.txt")
	written := filepath.Join(dir, "written.key")
	content := make([]byte, 300<<10+17) // several pread buffers' worth, not aligned
	for i := range content {
		content[i] = byte(i*7 + i>>9)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{secret, content}, {big, append(content, 'x')}, {plain, content[:100]}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The limit lets secret.pdf through, not big.tar (one byte more).
	fa, err := NewFanotify(FanotifyOptions{Paths: []string{dir}, QueueSize: 256,
		Hash:         func(p string) bool { return p != plain },
		MaxHashBytes: int64(len(content))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fa.Close() })

	catCmd := exec.Command("cat", secret, big, plain)
	catCmd.Stdout = io.Discard
	if err := catCmd.Run(); err != nil {
		t.Fatalf("cat: %v", err)
	}
	py := exec.Command(python, "-c", `
import sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    f.write(data[::-1])
`, secret, written)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("python3: %v: %s", err, out)
	}
	catPID, pyPID := int32(catCmd.Process.Pid), int32(py.Process.Pid)

	type key struct {
		pid  int32
		path string
		kind AccessKind
	}
	got := map[key]FileAccess{}
	want := []key{
		{catPID, secret, AccessRead}, {catPID, big, AccessRead}, {catPID, plain, AccessRead},
		{pyPID, secret, AccessRead}, {pyPID, written, AccessWrite},
	}
	deadline := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case r := <-fa.Events():
			k := key{r.PID, r.Path, r.Access}
			for _, w := range want {
				if w == k {
					got[k] = r
				}
			}
		case <-deadline:
			t.Fatalf("timed out; got %v, stats %+v", got, fa.Stats())
		}
	}
	check := func(k key, hashed bool, size int64) {
		t.Helper()
		r := got[k]
		if r.Hashed != hashed || r.Size != size {
			t.Errorf("%v: Hashed %v Size %d, want %v %d", k, r.Hashed, r.Size, hashed, size)
		}
		if hashed {
			if sum := hex.EncodeToString(r.SHA256[:]); sum != sha256sumOf(t, k.path) {
				t.Errorf("%v: sha256 %s, sha256sum says %s", k, sum, sha256sumOf(t, k.path))
			}
		} else if r.SHA256 != ([32]byte{}) {
			t.Errorf("%v: hash without Hashed", k)
		}
	}
	n := int64(len(content))
	check(want[0], true, n)
	check(want[1], false, n+1) // over the limit: size only
	check(want[2], false, 100) // not selected
	check(want[3], true, n)
	check(want[4], true, n)
	st := fa.Stats()
	if st.Hashed < 3 || st.HashTooLarge == 0 || st.HashErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// hashFD reads from offset 0 whatever the descriptor's offset, and stops
// at the limit.
func TestHashFD(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := []byte("0123456789abcdef")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, 5, 0); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := hashFD(fd, 16, make([]byte, 3), h)
	if err != nil || n != 16 {
		t.Fatalf("hashFD = %d, %v", n, err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("hash differs")
	}
	if _, err := hashFD(fd, 15, make([]byte, 4), h); !errors.Is(err, errHashTooLarge) {
		t.Errorf("limit 15: err %v", err)
	}
	if _, err := hashFD(-1, 15, make([]byte, 4), h); err == nil {
		t.Error("bad fd: no error")
	}
}
