package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain turns the test binary into the crash child when asked, so the
// kill -9 test needs no separate program or go build.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SPOOL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if dir := os.Getenv("SPOOL_UNSYNCED_CHILD"); dir != "" {
		unsyncedChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends from 4 goroutines forever, printing "g i" once
// Append(g-i) returned nil; the parent kills it with SIGKILL.
func crashChild(dir string) {
	s, err := Open(dir, Options{MaxBytes: 256 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				rec := fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("x", 100+(i*37)%900))
				if err := s.Append([]byte(rec)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", g, i)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func mustOpen(t *testing.T, dir string, opt Options) *Spool {
	t.Helper()
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append([]byte(fmt.Sprintf("rec-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll makes what was appended durable (Next returns only that) and
// reads it.
func readAll(t *testing.T, s *Spool) (seqs []uint64, recs []string) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for {
		seq, rec, err := s.Next()
		if errors.Is(err, ErrEmpty) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		recs = append(recs, string(rec))
	}
}

func TestAppendAckReopenResumesAtCursor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := mustOpen(t, dir, Options{})
	appendN(t, s, 0, 10)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		seq, rec, err := s.Next()
		if err != nil || string(rec) != fmt.Sprintf("rec-%d", i) || seq != uint64(i+1) {
			t.Fatalf("Next = %d %q %v", seq, rec, err)
		}
	}
	if err := s.Ack(3); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Appended != 10 || st.Acked != 3 || st.Depth != 7 {
		t.Fatalf("stats %+v", st)
	}
	// Read but unacknowledged (seq 4) must come back after a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	seqs, recs := readAll(t, s)
	if len(recs) != 7 || recs[0] != "rec-3" || seqs[0] != 4 || recs[6] != "rec-9" || seqs[6] != 10 {
		t.Fatalf("after reopen: %v %v", seqs, recs)
	}
	// New appends continue the numbering.
	appendN(t, s, 10, 1)
	s.Sync()
	seq, rec, err := s.Next()
	if err != nil || seq != 11 || string(rec) != "rec-10" {
		t.Fatalf("Next = %d %q %v", seq, rec, err)
	}
	if st := s.Stats(); st.Corrupt != 0 || st.Depth != 8 {
		t.Fatalf("stats %+v", st)
	}

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", e.Name(), fi.Mode())
		}
	}
}

func TestRewindRereadsUnacked(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	appendN(t, s, 0, 5)
	readAll(t, s)
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	s.Rewind()
	seqs, _ := readAll(t, s)
	if len(seqs) != 3 || seqs[0] != 3 {
		t.Fatalf("after rewind %v", seqs)
	}
	// Ack is clamped to what was read.
	s.Rewind()
	if err := s.Ack(5); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Depth != 3 {
		t.Fatalf("ack beyond read position took effect: %+v", st)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(m) == 0 {
		t.Fatal("no segment")
	}
	return m[len(m)-1]
}

func TestTornTailTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(b []byte) []byte
		want int
	}{
		{"half header", func(b []byte) []byte { return append(b, 5, 0, 0) }, 5},
		{"half payload", func(b []byte) []byte { return b[:len(b)-2] }, 4},
		{"crc mismatch in record 3", func(b []byte) []byte {
			off := 0
			for range 2 {
				off += 8 + int(binary.LittleEndian.Uint32(b[off:]))
			}
			b[off+9] ^= 0xff
			return b
		}, 2},
		{"huge length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 'x') }, 5},
		{"zeros (preallocated tail)", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, Options{})
			appendN(t, s, 0, 5)
			s.Close()
			seg := lastSegment(t, dir)
			b, _ := os.ReadFile(seg)
			if err := os.WriteFile(seg, tc.harm(b), 0o600); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, dir, Options{})
			defer s.Close()
			if st := s.Stats(); st.Corrupt != 1 || st.Depth != uint64(tc.want) {
				t.Fatalf("stats %+v", st)
			}
			appendN(t, s, 100, 1)
			_, recs := readAll(t, s)
			if len(recs) != tc.want+1 || recs[len(recs)-1] != "rec-100" {
				t.Fatalf("records %v", recs)
			}
			for i := range tc.want {
				if recs[i] != fmt.Sprintf("rec-%d", i) {
					t.Fatalf("records %v", recs)
				}
			}
		})
	}
}

func TestFullDropsOldestSegments(t *testing.T) {
	dir := t.TempDir()
	opt := Options{MaxBytes: 32 << 10, SegmentBytes: 8 << 10}
	s := mustOpen(t, dir, opt)
	defer s.Close()
	rec := func(i int) []byte { return fmt.Appendf(nil, "%06d%s", i, bytes.Repeat([]byte("y"), 994)) }
	const n = 200
	for i := range n {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Dropped == 0 || st.Dropped+st.Depth != n || st.DepthBytes > uint64(opt.MaxBytes) {
		t.Fatalf("stats %+v", st)
	}
	// Whole segments of 8 records (8 KiB / 1008-byte frames) go at once.
	if st.Dropped%8 != 0 {
		t.Fatalf("dropped %d, not whole segments", st.Dropped)
	}
	seqs, recs := readAll(t, s)
	if uint64(len(recs)) != st.Depth || seqs[0] != st.Dropped+1 {
		t.Fatalf("read %d from seq %d, stats %+v", len(recs), seqs[0], st)
	}
	for k, r := range recs {
		if !bytes.Equal([]byte(r), rec(int(st.Dropped)+k)) {
			t.Fatalf("record %d wrong", k)
		}
	}
	// Reading was in the oldest kept segment when it gets dropped too: the
	// reader jumps to the oldest surviving record.
	s.Rewind()
	s.Next()
	for i := n; i < n+40; i++ {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	seq, _, err := s.Next()
	if err != nil || seq != st.Dropped+1 {
		t.Fatalf("Next after drop = %d %v, stats %+v", seq, err, st)
	}
}

func TestAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{MaxBytes: 1 << 20, SegmentBytes: 4 << 10})
	defer s.Close()
	for i := range 100 {
		if err := s.Append(bytes.Repeat([]byte{byte(i)}, 500)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	seqs, _ := readAll(t, s)
	if err := s.Ack(seqs[len(seqs)-1]); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	if len(before) < 5 || len(after) != 1 {
		t.Fatalf("segments before %d after %d", len(before), len(after))
	}
	if st := s.Stats(); st.Depth != 0 || st.Acked != 100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRecordLimits(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{MaxRecord: 100})
	defer s.Close()
	if err := s.Append(make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if err := s.Append(nil); err == nil {
		t.Fatal("empty record accepted")
	}
}

// TestKill9DuringAppends kills a process appending from 4 goroutines and
// checks that every append it reported is there, in order per goroutine,
// and that the spool opens cleanly (at most one torn tail) and takes more.
func TestKill9DuringAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child")
	}
	dir := filepath.Join(t.TempDir(), "spool")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_CRASH_CHILD="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reported := map[int]int{} // goroutine -> highest index reported
		sc := bufio.NewScanner(out)
		lines := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			g, _ := strconv.Atoi(f[0])
			i, _ := strconv.Atoi(f[1])
			reported[g] = i
			lines++
			if lines == 300+round*97 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Wait()
		if lines < 300 {
			t.Fatalf("child stopped early: %s", stderr.String())
		}

		s := mustOpen(t, dir, Options{MaxBytes: 256 << 20, SegmentBytes: 64 << 10})
		_, recs := readAll(t, s)
		next := map[int]int{}
		for _, r := range recs {
			var g, i int
			if _, err := fmt.Sscanf(r, "%d-%d-", &g, &i); err != nil {
				t.Fatalf("garbled record %q", r)
			}
			// Earlier rounds' children restart numbering at 0.
			if i == 0 {
				next[g] = 0
			}
			if i != next[g] {
				t.Fatalf("goroutine %d: record %d, want %d", g, i, next[g])
			}
			if want := fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("x", 100+(i*37)%900)); r != want {
				t.Fatalf("record %d-%d corrupt", g, i)
			}
			next[g] = i + 1
		}
		for g, i := range reported {
			if next[g] <= i {
				t.Fatalf("round %d: goroutine %d reported %d appended, spool holds up to %d", round, g, i, next[g]-1)
			}
		}
		if st := s.Stats(); st.Corrupt > 1 {
			t.Fatalf("stats %+v", st)
		}
		s.Close()
		// Wait until the killed child's lock is surely gone (it is, once
		// Wait returned) and leave the records for the next round.
		time.Sleep(10 * time.Millisecond)
	}
}

func FuzzSegment(f *testing.F) {
	var seed []byte
	for _, r := range []string{"a", "hello", strings.Repeat("z", 300)} {
		var h [8]byte
		binary.LittleEndian.PutUint32(h[0:4], uint32(len(r)))
		binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum([]byte(r), castagnoli))
		seed = append(append(seed, h[:]...), r...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		count, end, torn := ScanSegment(bytes.NewReader(data), int64(len(data)), 1024, ^uint64(0))
		if end > int64(len(data)) || (torn != (end < int64(len(data)))) {
			t.Fatalf("end %d of %d, torn %v", end, len(data), torn)
		}
		// The valid prefix scans clean to the same count.
		c2, e2, t2 := ScanSegment(bytes.NewReader(data[:end]), end, 1024, ^uint64(0))
		if c2 != count || e2 != end || t2 {
			t.Fatalf("prefix rescan %d %d %v, first %d %d", c2, e2, t2, count, end)
		}
		// Open on it as a crash left it: never a panic, reads what is valid.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{MaxRecord: 1024})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var n uint64
		for {
			_, _, err := s.Next()
			if errors.Is(err, ErrEmpty) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != count {
			t.Fatalf("read %d, scan %d", n, count)
		}
	})
}

// unsyncedChild appends 500 records with a committer that fsyncs only the
// first (SyncInterval 1h), says how many are still unsynced, and waits for
// SIGKILL.
func unsyncedChild(dir string) {
	s, err := Open(dir, Options{SegmentBytes: 1 << 20, SyncInterval: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range 500 {
		if err := s.Append([]byte(fmt.Sprintf("u-%d-%s", i, strings.Repeat("z", i%300)))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		// An idle committer fsyncs the first append at once; the next one
		// may start only an hour later.
		for i == 0 && s.Stats().Unsynced != 0 {
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Printf("unsynced %d\n", s.Stats().Unsynced)
	select {}
}

// TestKill9BeforeGroupCommit is the group commit's crash case: a process
// killed after Append returned but before any fsync of those records.
// kill -9 keeps the page cache, so every record must be there, and Open
// must make them durable (Unsynced 0) before handing them out.
func TestKill9BeforeGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child")
	}
	dir := filepath.Join(t.TempDir(), "spool")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_UNSYNCED_CHILD="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "unsynced 499" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q (%s): 499 appends must still be waiting for their fsync", sc.Text(), stderr.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s := mustOpen(t, dir, Options{SyncInterval: time.Hour})
	defer s.Close()
	if st := s.Stats(); st.Unsynced != 0 || st.Depth != 500 || st.Corrupt != 0 {
		t.Fatalf("after the kill: %+v", st)
	}
	// Readable without any Sync: Open fsync'd the killed process's records.
	for i := range 500 {
		seq, rec, err := s.Next()
		if err != nil || seq != uint64(i+1) || string(rec) != fmt.Sprintf("u-%d-%s", i, strings.Repeat("z", i%300)) {
			t.Fatalf("record %d: seq %d %.20q %v", i, seq, rec, err)
		}
	}
}

// TestGroupCommit: appends return before their fsync; Next hands out only
// fsync'd records; the committer syncs within its interval and one fsync
// covers many appends.
func TestGroupCommit(t *testing.T) {
	t.Run("nothing readable before the fsync", func(t *testing.T) {
		s := mustOpen(t, t.TempDir(), Options{SyncInterval: time.Hour})
		defer s.Close()
		// An idle committer fsyncs at once; the next fsync may start only
		// an hour after that one.
		appendN(t, s, 0, 1)
		waitSynced := time.Now().Add(5 * time.Second)
		for s.Stats().Unsynced != 0 {
			if time.Now().After(waitSynced) {
				t.Fatal("the idle committer did not fsync the first append")
			}
			time.Sleep(time.Millisecond)
		}
		<-s.Notify()
		if seq, _, err := s.Next(); err != nil || seq != 1 {
			t.Fatalf("Next after the first fsync: %d %v", seq, err)
		}
		appendN(t, s, 1, 3)
		if _, _, err := s.Next(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("Next before the fsync: %v", err)
		}
		if st := s.Stats(); st.Unsynced != 3 || st.Appended != 4 || st.Depth != 4 || st.Syncs != 1 {
			t.Fatalf("stats %+v", st)
		}
		select {
		case <-s.Notify():
			t.Fatal("notified of records no fsync covers")
		default:
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.Notify():
		default:
			t.Fatal("no notification after the fsync")
		}
		if seq, _, err := s.Next(); err != nil || seq != 2 {
			t.Fatalf("Next after Sync: %d %v", seq, err)
		}
		if st := s.Stats(); st.Unsynced != 0 || st.Syncs != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("committer", func(t *testing.T) {
		const interval = 20 * time.Millisecond
		s := mustOpen(t, t.TempDir(), Options{SyncInterval: interval})
		defer s.Close()
		start := time.Now()
		const n = 2000
		for i := range n {
			if err := s.Append([]byte(fmt.Sprintf("g-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		appended := time.Since(start)
		got := 0
		deadline := time.Now().Add(5 * time.Second)
		for got < n {
			_, rec, err := s.Next()
			if errors.Is(err, ErrEmpty) {
				if time.Now().After(deadline) {
					t.Fatalf("committer made %d of %d readable in 5s: %+v", got, n, s.Stats())
				}
				select {
				case <-s.Notify():
				case <-time.After(time.Second):
				}
				continue
			}
			if err != nil || string(rec) != fmt.Sprintf("g-%d", got) {
				t.Fatalf("record %d: %q %v", got, rec, err)
			}
			got++
		}
		el := time.Since(start)
		st := s.Stats()
		// fsyncs start at most once per interval.
		if max := uint64(el/interval) + 2; st.Unsynced != 0 || st.Syncs > max || st.Syncs == 0 {
			t.Fatalf("%d fsyncs in %v (at most %d), stats %+v", st.Syncs, el, max, st)
		}
		t.Logf("%d appends in %v, all durable after %v with %d fsyncs", n, appended, el, st.Syncs)
	})
	t.Run("synchronous", func(t *testing.T) {
		s := mustOpen(t, t.TempDir(), Options{SyncInterval: -1})
		defer s.Close()
		appendN(t, s, 0, 5)
		// Each Append returned after its fsync: readable at once.
		if seq, _, err := s.Next(); err != nil || seq != 1 {
			t.Fatalf("Next: %d %v", seq, err)
		}
		if st := s.Stats(); st.Unsynced != 0 || st.Syncs != 5 {
			t.Fatalf("stats %+v", st)
		}
	})
}
