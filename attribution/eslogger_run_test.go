package attribution

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// standIn writes an executable shell script that plays eslogger.
func standIn(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "eslogger")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEsloggerRunnerRestarts: the stand-in prints the real sample lines, a
// malformed line and a line over MaxLine, then exits (first run) or stays
// (second run). Records of both runs arrive, the restart, the bad lines and
// the parser's sequence gaps are counted, and the arguments are the fixed
// event list.
func TestEsloggerRunnerRestarts(t *testing.T) {
	if _, err := os.Stat(esloggerSample); err != nil {
		t.Skipf("real samples not present: %v", err)
	}
	dir := t.TempDir()
	bin := standIn(t, dir, `
d=$(dirname "$0")
printf '%s\n' "$@" > "$d/argv"
n=$(cat "$d/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/count"
cat '`+esloggerSample+`'
echo '{"not": json'
head -c 70000 /dev/zero | tr '\0' a; echo
echo "run $n" >&2
if [ $n -ge 2 ]; then exec sleep 60; fi
exit 3
`)
	var logs syncBuffer
	r, err := RunEslogger(context.Background(), EsloggerOptions{Path: bin, RestartMin: 20 * time.Millisecond,
		RestartMax: 200 * time.Millisecond, MaxLine: 64 << 10, KillAfter: time.Second,
		Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var recs []any
	for len(recs) < 8 {
		select {
		case rec := <-r.Records():
			recs = append(recs, rec)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d records, want 8; stats %+v", len(recs), r.Stats())
		}
	}
	waitFor(t, "second run's lines", 5*time.Second, func() bool { return r.Stats().Lines == 12 })
	st := r.Stats()
	// Expected gaps: the same lines through one parser, twice.
	var want EsloggerParser
	for range 2 {
		for _, l := range readLines(t, esloggerSample) {
			if _, err := want.ParseLine(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	ge, gg := want.Gaps()
	if st.Starts != 2 || st.Restarts != 1 || st.Records != 8 || st.BadLines != 4 || st.LongLines != 2 ||
		st.Dropped != 0 || !st.Running || st.GapEvents != ge || st.GapGlobal != gg || !strings.Contains(st.LastError, "exit status 3: run 1") {
		t.Errorf("stats %+v; want 2 starts, 1 restart, 8 records, 4 bad (2 long), gaps %d/%d", st, ge, gg)
	}
	for i, rec := range recs {
		ev, ok := rec.(*ProcessEvent)
		if !ok || ev.Source != SourceEslogger {
			t.Fatalf("record %d: %T", i, rec)
		}
		if i%4 == 2 && (ev.Kind != ProcFork || ev.Process.PGID != 19745 || ev.Process.Code == nil || ev.Process.Code.TeamID != "CKG9MXH72F") {
			t.Errorf("record %d: %+v %+v", i, ev, ev.Process)
		}
	}
	argv, err := os.ReadFile(filepath.Join(dir, "argv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(argv)); strings.Join(got, " ") != "exec fork exit open close rename" {
		t.Errorf("arguments %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-r.Records(); ok {
		t.Error("Records not closed after Close")
	}
	if st := r.Stats(); st.Running {
		t.Error("still running after Close")
	}
	if !strings.Contains(logs.String(), "eslogger exited; restarting") {
		t.Errorf("restart not logged: %s", logs.String())
	}
}

// TestEsloggerRunnerDrops: a full channel drops records and counts them.
func TestEsloggerRunnerDrops(t *testing.T) {
	if _, err := os.Stat(esloggerSample); err != nil {
		t.Skipf("real samples not present: %v", err)
	}
	bin := standIn(t, t.TempDir(), `cat '`+esloggerSample+`' '`+esloggerSample+`' '`+esloggerSample+`'; exec sleep 60`+"\n")
	r, err := RunEslogger(context.Background(), EsloggerOptions{Path: bin, Buffer: 2, KillAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, "12 lines", 5*time.Second, func() bool { return r.Stats().Lines == 12 })
	if st := r.Stats(); st.Records != 2 || st.Dropped != 10 {
		t.Errorf("stats %+v, want 2 records and 10 dropped", st)
	}
}

// TestEsloggerRunnerNotPermitted: a stand-in that fails like eslogger
// without Full Disk Access is classified, logged once at error level and
// retried slowly.
func TestEsloggerRunnerNotPermitted(t *testing.T) {
	bin := standIn(t, t.TempDir(), `echo "Failed to create ES client: ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED" >&2; exit 1`+"\n")
	var logs syncBuffer
	r, err := RunEslogger(context.Background(), EsloggerOptions{Path: bin, SlowRetry: 30 * time.Millisecond,
		RestartMin: time.Hour, Logger: zerolog.New(&logs).Level(zerolog.InfoLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, "three attempts", 5*time.Second, func() bool { return r.Stats().Restarts >= 2 })
	if err := r.Err(); !errors.Is(err, ErrEsloggerNotPermitted) || !strings.Contains(err.Error(), "ERR_NOT_PERMITTED") ||
		!strings.Contains(err.Error(), "SystemPolicyAllFiles") {
		t.Errorf("err %v", err)
	}
	if n := strings.Count(logs.String(), `"level":"error"`); n != 1 {
		t.Errorf("%d error lines, want 1:\n%s", n, logs.String())
	}
	if st := r.Stats(); st.Records != 0 || st.Running && st.Starts < 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestEsloggerRunnerMissing(t *testing.T) {
	r, err := RunEslogger(context.Background(), EsloggerOptions{Path: filepath.Join(t.TempDir(), "no", "eslogger"), SlowRetry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure", 5*time.Second, func() bool { return r.Err() != nil })
	if err := r.Err(); !errors.Is(err, ErrEsloggerMissing) || strings.Contains(err.Error(), "\n") {
		t.Errorf("err %v", err)
	}
	// Slow retry: no second attempt within the test.
	time.Sleep(50 * time.Millisecond)
	if st := r.Stats(); st.Starts != 0 || st.Restarts != 0 {
		t.Errorf("stats %+v", st)
	}
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v while waiting to retry", d)
	}
}

// TestEsloggerRunnerKillsHungChild: a stand-in that ignores SIGTERM (and
// whose own child holds the output pipe) is killed by Close.
func TestEsloggerRunnerKillsHungChild(t *testing.T) {
	dir := t.TempDir()
	bin := standIn(t, dir, `trap '' TERM
echo $$ > "$(dirname "$0")/pid"
while :; do sleep 0.2; done
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := RunEslogger(ctx, EsloggerOptions{Path: bin, KillAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, "the stand-in's pid", 5*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err == nil && pid > 0
	})
	time.Sleep(100 * time.Millisecond) // let the shell install its trap and loop
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Close took %v, want SIGTERM, a 300ms wait, then SIGKILL", d)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("stand-in %d still exists after Close: %v", pid, err)
	}
	if st := r.Stats(); st.Running || st.Starts != 1 || st.Restarts != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Cancelling the context stops the runner as Close does.
func TestEsloggerRunnerContext(t *testing.T) {
	bin := standIn(t, t.TempDir(), "exec sleep 60\n")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := RunEslogger(ctx, EsloggerOptions{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "start", 5*time.Second, func() bool { return r.Stats().Running })
	cancel()
	select {
	case _, ok := <-r.Records():
		if ok {
			t.Fatal("record from sleep")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Records not closed after cancel")
	}
	r.Close()
}

func TestEsloggerRunnerBadOptions(t *testing.T) {
	for _, ev := range [][]string{{"exec", "--oslog"}, {"exec fork"}, {""}, {"EXEC"}, {"a;b"}} {
		if _, err := RunEslogger(context.Background(), EsloggerOptions{Events: ev}); err == nil {
			t.Errorf("events %q accepted", ev)
		}
	}
}

func TestClassifyEslogger(t *testing.T) {
	exit1 := errors.New("exit status 1")
	for _, c := range []struct {
		stderr string
		euid   int
		want   error
	}{
		{"Failed: ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED\n", 0, ErrEsloggerNotPermitted},
		{"Not permitted to create an ES Client\n", 0, ErrEsloggerNotPermitted},
		{"ERROR: es_new_client: ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED", 0, ErrEsloggerNotRoot},
		{"eslogger: not privileged\n", 0, ErrEsloggerNotRoot},
		{"something odd\n", 501, ErrEsloggerNotRoot},
		{"something odd\nsecond line\n", 0, nil},
		{"", 0, nil},
	} {
		err := classifyEslogger(exit1, c.stderr, c.euid)
		if got := esloggerClass(err); got != c.want {
			t.Errorf("%q euid %d: %v, want class %v", c.stderr, c.euid, err, c.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: multi-line error %q", c.stderr, err)
		}
	}
}

func FuzzEsloggerReadLines(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 4)
	f.Add([]byte(strings.Repeat("x", 100)+"\nshort\n"), 8)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var buf []byte
		var got [][]byte
		var longs int
		for {
			line, tooLong, err := readBoundedLine(br, max, &buf)
			if tooLong {
				longs++
			} else if len(line) > 0 || err == nil {
				got = append(got, bytes.Clone(line))
			}
			if err != nil {
				break
			}
		}
		// Reference: split at newlines.
		var want [][]byte
		wantLongs := 0
		parts := bytes.Split(in, []byte{'\n'})
		if len(parts) > 0 && len(parts[len(parts)-1]) == 0 {
			parts = parts[:len(parts)-1]
		}
		for _, p := range parts {
			if len(p) > max {
				wantLongs++
			} else {
				want = append(want, p)
			}
		}
		if longs != wantLongs || len(got) != len(want) {
			t.Fatalf("lines %d long %d, want %d long %d", len(got), longs, len(want), wantLongs)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d %q, want %q", i, got[i], want[i])
			}
		}
	})
}
