package attribution

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// collect runs a hasher whose emitted records are kept in order.
func collectHashed(t *testing.T, opt FileHasherOptions) (*FileHasher, func() []any) {
	t.Helper()
	out := make(chan any, 1024)
	h := NewFileHasher(opt, func(rec any) { out <- rec })
	t.Cleanup(h.Close)
	return h, func() []any {
		h.Close()
		close(out)
		var recs []any
		for r := range out {
			recs = append(recs, r)
		}
		return recs
	}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFileHasherHashesInOrder(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "report.pdf")
	content := []byte("%PDF-1.7 a document worth stealing\n")
	writeFile(t, doc, content)
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, nil)
	now := time.Now()

	h, done := collectHashed(t, FileHasherOptions{})
	exec := &ProcessEvent{Kind: ProcExec, PID: 7}
	read := &FileAccess{Time: now, PID: 7, Path: doc, Access: AccessRead}
	notAsked := &FileAccess{Time: now, PID: 7, Path: doc, Access: AccessRead}
	emptyRead := &FileAccess{Time: now, PID: 7, Path: empty, Access: AccessRead}
	exit := &ProcessEvent{Kind: ProcExit, PID: 7}
	for _, s := range []struct {
		rec  any
		hash bool
	}{{exec, true}, {read, true}, {notAsked, false}, {emptyRead, true}, {exit, false}} {
		if !h.Submit(s.rec, s.hash) {
			t.Fatal("Submit refused a record on an empty queue")
		}
	}
	recs := done()
	want := []any{exec, read, notAsked, emptyRead, exit}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Fatalf("record %d out of order: %#v", i, recs[i])
		}
	}
	if !read.Hashed || read.SHA256 != sha256.Sum256(content) || read.Size != int64(len(content)) {
		t.Fatalf("read not hashed right: size %d hashed %v", read.Size, read.Hashed)
	}
	if notAsked.Hashed || notAsked.Size != 0 {
		t.Fatal("a record submitted without hash was hashed")
	}
	if !emptyRead.Hashed || emptyRead.SHA256 != sha256.Sum256(nil) {
		t.Fatal("empty file not hashed")
	}
	if st := h.Stats(); st.Hashed != 2 || st.Errors+st.NotRegular+st.Changed+st.TooLarge+st.Late+st.QueueFull != 0 {
		t.Fatalf("stats %+v", st)
	}
	if h.Submit(&FileAccess{}, false) {
		t.Fatal("Submit after Close accepted a record")
	}
}

func TestFileHasherRefusesWhatIsNotTheFileRead(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "id_rsa")
	writeFile(t, secret, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	writeFile(t, big, make([]byte, 4097))
	small := filepath.Join(dir, "small")
	writeFile(t, small, make([]byte, 4096))
	replaced := filepath.Join(dir, "replaced.pdf")
	writeFile(t, replaced, []byte("what the process read"))

	// Hold the worker on a first record until the replacement is done,
	// so the hash of "replaced" is taken after it.
	gate := make(chan struct{})
	out := make(chan any, 64)
	h := NewFileHasher(FileHasherOptions{MaxBytes: 4096, MaxDelay: 10 * time.Second}, func(rec any) {
		if ev, ok := rec.(*ProcessEvent); ok && ev.Kind == ProcFork {
			<-gate
		}
		out <- rec
	})
	defer h.Close()
	now := time.Now()
	recs := map[string]*FileAccess{}
	h.Submit(&ProcessEvent{Kind: ProcFork}, false)
	for _, p := range []string{link, fifo, big, small, replaced, dir, filepath.Join(dir, "missing"), "/dev/zero"} {
		recs[p] = &FileAccess{Time: now, Path: p, Access: AccessRead}
		h.Submit(recs[p], true)
	}
	// Replace as an editor saves: a new file renamed over the old one.
	time.Sleep(20 * time.Millisecond) // past the coarse clock of file times
	tmp := filepath.Join(dir, "new")
	writeFile(t, tmp, []byte("something else entirely"))
	if err := os.Rename(tmp, replaced); err != nil {
		t.Fatal(err)
	}
	close(gate)

	timeout := time.After(10 * time.Second) // a FIFO opened without O_NONBLOCK hangs here
	for i := 0; i < 1+len(recs); i++ {
		select {
		case <-out:
		case <-timeout:
			t.Fatalf("only %d records emitted: the worker is blocked", i)
		}
	}
	for p, fa := range recs {
		if (p == small) != fa.Hashed {
			t.Errorf("%s: hashed %v", p, fa.Hashed)
		}
	}
	st := h.Stats()
	want := FileHasherStats{Hashed: 1, TooLarge: 1, NotRegular: 4, Changed: 1, Errors: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

func TestFileHasherBounds(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "doc")
	writeFile(t, doc, []byte("x"))
	gate := make(chan struct{})
	var emitted []any
	h := NewFileHasher(FileHasherOptions{QueueLen: 2, MaxDelay: 20 * time.Millisecond}, func(rec any) {
		if len(emitted) == 0 {
			<-gate
		}
		emitted = append(emitted, rec)
	})
	first := &ProcessEvent{Kind: ProcExec}
	h.Submit(first, false)
	// Wait until the worker holds the first record: the queue is empty.
	deadline := time.Now().Add(5 * time.Second)
	for len(h.in) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	late := &FileAccess{Time: time.Now(), Path: doc, Access: AccessRead}
	second := &FileAccess{Time: time.Now(), Path: doc, Access: AccessRead}
	if !h.Submit(late, true) || !h.Submit(second, false) {
		t.Fatal("queue of 2 refused the first 2 records")
	}
	start := time.Now()
	if h.Submit(&FileAccess{Path: doc}, true) {
		t.Fatal("full queue accepted a record")
	}
	if time.Since(start) > time.Second {
		t.Fatal("Submit blocked on a full queue")
	}
	time.Sleep(50 * time.Millisecond) // past late's deadline
	close(gate)
	h.Close()
	if len(emitted) != 3 || emitted[1] != late || emitted[2] != second {
		t.Fatalf("emitted %v", emitted)
	}
	if late.Hashed {
		t.Fatal("a record past its deadline was still hashed")
	}
	if st := h.Stats(); st.QueueFull != 1 || st.Late != 1 || st.Hashed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
