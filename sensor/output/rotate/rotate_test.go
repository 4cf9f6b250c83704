package rotate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"exfilwatch/sensor/output/rotate"
)

func line(i int) []byte {
	return fmt.Appendf(nil, "{\"n\":%d,\"pad\":\"%s\"}\n", i, strings.Repeat("x", 10))
}

// lines reads a file's JSON lines, failing on a line that is not whole.
func lines(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a whole line: %q", path, b)
	}
	var out []int
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var v struct{ N int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%s: line %q split or damaged: %v", path, l, err)
		}
		out = append(out, v.N)
	}
	return out
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestRotatesBySizeKeepingN(t *testing.T) {
	p := filepath.Join(t.TempDir(), "findings.jsonl")
	l := len(line(0)) // 27 bytes
	w, err := rotate.Open(p, rotate.Options{MaxBytes: int64(3 * l), Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := w.Write(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// 3 lines a file: 9 | 6 7 8 | 3 4 5, and 0 1 2 were rotated out.
	for name, want := range map[string]string{p: "[9]", p + ".1": "[6 7 8]", p + ".2": "[3 4 5]"} {
		if got := fmt.Sprint(lines(t, name)); got != want {
			t.Fatalf("%s: %s, want %s", filepath.Base(name), got, want)
		}
		if m := mode(t, name); m != 0o600 {
			t.Fatalf("%s: mode %v", name, m)
		}
	}
	if _, err := os.Stat(p + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s.3 exists beyond Keep", p)
	}
	if st := w.Stats(); st.Rotations != 3 || st.Bytes != uint64(10*l) || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := w.Write(line(10)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// A line written in pieces stays in one file, even past MaxBytes; a line
// longer than MaxBytes gets a file of its own.
func TestNeverSplitsALine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ev.jsonl")
	w, err := rotate.Open(p, rotate.Options{MaxBytes: 40, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(line(1)) // 27 bytes
	whole := line(2)
	w.Write(whole[:5]) // fits
	w.Write(whole[5:]) // would pass 40, but the line is open: no rotation
	long := fmt.Appendf(nil, "{\"n\":3,\"pad\":\"%s\"}\n", strings.Repeat("y", 100))
	w.Write(long)
	w.Write(line(4))
	if got := fmt.Sprint(lines(t, p+".2"), lines(t, p+".1"), lines(t, p)); got != "[1 2] [3] [4]" {
		t.Fatalf("files (oldest first): %s", got)
	}
}

// Many goroutines: every line once, whole, in order of the files.
func TestConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.jsonl")
	w, err := rotate.Open(p, rotate.Options{MaxBytes: 1000, Keep: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const g, n = 8, 200
	var wg sync.WaitGroup
	for k := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := w.Write(line(k*n + i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	w.Close()
	seen := map[int]bool{}
	files := int(w.Stats().Rotations) + 1
	for i := range files {
		name := p
		if i > 0 {
			name = fmt.Sprintf("%s.%d", p, i)
		}
		if fi, err := os.Stat(name); err != nil || fi.Size() > 1000 {
			t.Fatalf("%s: %v, over MaxBytes or missing", name, err)
		}
		for _, v := range lines(t, name) {
			if seen[v] {
				t.Fatalf("line %d twice", v)
			}
			seen[v] = true
		}
	}
	if len(seen) != g*n {
		t.Fatalf("%d lines of %d", len(seen), g*n)
	}
}

// logrotate moves the file away, then SIGHUP → Reopen: writing goes on in
// a new file at the path.
func TestReopenAfterExternalRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.jsonl")
	w, err := rotate.Open(p, rotate.Options{MaxBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(line(1))
	if err := os.Rename(p, p+"-20250301"); err != nil {
		t.Fatal(err)
	}
	w.Write(line(2)) // still the moved file until the reopen
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Write(line(3))
	if got := fmt.Sprint(lines(t, p+"-20250301"), lines(t, p)); got != "[1 2] [3]" {
		t.Fatalf("moved, new: %s", got)
	}
	if m := mode(t, p); m != 0o600 {
		t.Fatalf("reopened file mode %v", m)
	}
	if st := w.Stats(); st.Reopens != 1 || st.Rotations != 0 {
		t.Fatalf("%+v", st)
	}
}

// An existing file is appended to, its size counts, and Keep < 0 keeps no
// rotated file.
func TestAppendsToExistingAndKeepNone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	if err := os.WriteFile(p, append(line(0), line(1)...), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := rotate.Open(p, rotate.Options{MaxBytes: int64(3*len(line(0))) - 1, Keep: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(line(2)) // the third line would pass MaxBytes: rotate first
	w.Close()
	if got := fmt.Sprint(lines(t, p)); got != "[2]" {
		t.Fatalf("file: %s", got)
	}
	if _, err := os.Stat(p + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Keep -1 left a rotated file")
	}
	if _, err := rotate.Open(filepath.Join(p, "sub", "x"), rotate.Options{}); err == nil || !strings.Contains(err.Error(), "rotate: open") {
		t.Fatalf("open under a file: %v", err)
	}
}
