package evidence_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/output/evidence"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// frame makes a frame whose first byte numbers it (the store does not
// decode frames: any bytes do).
func frame(n int, size int, at time.Time) *capture.Frame {
	b := make([]byte, size)
	b[0], b[1] = byte(n>>8), byte(n)
	return &capture.Frame{Data: b, Timestamp: at, WireLen: size + 4, LinkType: 1, Interface: 2}
}

func finding(id string, flows ...uint64) *detect.Finding {
	f := &detect.Finding{ID: id, RuleID: "test"}
	f.Upload.FlowIDs = flows
	return f
}

func newStore(t *testing.T, opt evidence.Options) *evidence.Store {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = filepath.Join(t.TempDir(), "ev")
	}
	opt.Log = zerolog.Nop()
	s, err := evidence.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func numbers(fr []capture.Frame) []int {
	var out []int
	for _, f := range fr {
		out = append(out, int(f.Data[0])<<8|int(f.Data[1]))
	}
	return out
}

// A long flow keeps its first and last packets; the middle is counted and
// the capture says so.
func TestHeadAndTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	// 100-byte frames cost 164: the head holds 10, the tail the last 5.
	s := newStore(t, evidence.Options{Dir: dir, MaxFlowHead: 10 * 164, MaxFlowTail: 5 * 164})
	for i := range 100 {
		s.Packet(7, frame(i, 100, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	s.FlowClosed(7)
	s.Finding(finding("f1", 7))
	s.Close()
	st := s.Stats()
	if st.Packets != 100 || st.PacketsOmitted != 85 || st.BytesOmitted != 85*100 || st.FindingsWritten != 1 {
		t.Fatalf("stats %+v", st)
	}
	pcap := filepath.Join(dir, "f1", evidence.PacketsFile)
	got := readOurs(t, pcap)
	want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 95, 96, 97, 98, 99}
	if g := numbers(got); len(g) != len(want) || g[0] != 0 || g[9] != 9 || g[10] != 95 || g[14] != 99 {
		t.Fatalf("kept packets %v, want %v", g, want)
	}
	if !got[0].Timestamp.Equal(t0) || got[0].WireLen != 104 || got[0].LinkType != 1 {
		t.Fatalf("first packet %v len %d link %d", got[0].Timestamp, got[0].WireLen, got[0].LinkType)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.comment").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "85 packets (8500 bytes) omitted") {
			t.Fatalf("no omission comment in the capture: %q", out)
		}
	}
}

// The global bound evicts closed rings first, then the least recently
// active open one; a flow whose ring was evicted starts a ring marked as
// missing its start.
func TestGlobalBoundEvictsClosedThenOldest(t *testing.T) {
	// Each flow: ring overhead 256 + 4 packets × 164.
	s := newStore(t, evidence.Options{MaxBufferedBytes: 3*(256+4*164) + 100})
	at := t0
	feed := func(id uint64, n int) {
		for i := range n {
			at = at.Add(time.Millisecond)
			s.Packet(id, frame(i, 100, at))
		}
	}
	feed(1, 4)
	s.FlowClosed(1)
	feed(2, 4)
	feed(3, 4)
	if st := s.Stats(); st.Rings != 3 || st.RingsEvictedClosed+st.RingsEvictedOpen != 0 {
		t.Fatalf("before the bound: %+v", st)
	}
	feed(4, 4) // closed flow 1 goes first
	if st := s.Stats(); st.RingsEvictedClosed != 1 || st.RingsEvictedOpen != 0 || st.Rings != 3 {
		t.Fatalf("after flow 4: %+v", st)
	}
	feed(3, 1) // 3 is now more recent than 2
	feed(5, 4) // the least recently active open flow, 2, goes
	st := s.Stats()
	if st.RingsEvictedOpen < 1 || st.Buffered > 3*(256+4*164)+100 {
		t.Fatalf("after flow 5: %+v", st)
	}
	s.Finding(finding("gone", 1))
	s.Finding(finding("kept", 3))
	s.Close()
	st = s.Stats()
	if st.FlowsMissing != 1 || st.FindingsWritten != 2 {
		t.Fatalf("findings: %+v", st)
	}
}

// Closed flows are kept for Linger in packet time, then dropped.
func TestLinger(t *testing.T) {
	s := newStore(t, evidence.Options{Linger: 10 * time.Second})
	s.Packet(1, frame(0, 60, t0))
	s.FlowClosed(1)
	s.Packet(2, frame(0, 60, t0.Add(9*time.Second)))
	if st := s.Stats(); st.RingsExpired != 0 || st.Rings != 2 {
		t.Fatalf("within linger: %+v", st)
	}
	s.Packet(2, frame(1, 60, t0.Add(11*time.Second)))
	if st := s.Stats(); st.RingsExpired != 1 || st.Rings != 1 {
		t.Fatalf("past linger: %+v", st)
	}
}

// A finding on a flow still open waits for it to close, so that the rest
// of the connection (response, FIN) is in the evidence; one whose flow never
// closes is written after FinalizeWait.
func TestFindingWaitsForItsFlows(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	s := newStore(t, evidence.Options{Dir: dir, FinalizeWait: 300 * time.Millisecond})
	s.Packet(1, frame(0, 60, t0))
	s.Packet(2, frame(0, 60, t0))
	s.Finding(finding("waits", 1))
	s.Finding(finding("times-out", 2))
	s.Packet(1, frame(1, 60, t0.Add(time.Millisecond)))
	s.FlowClosed(1)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().FindingsWritten < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Stats(); st.FindingsWritten != 2 {
		t.Fatalf("%+v", st)
	}
	if n := numbers(readOurs(t, filepath.Join(dir, "waits", evidence.PacketsFile))); len(n) != 2 || n[1] != 1 {
		t.Fatalf("waits: packets %v, want [0 1]", n)
	}
	if n := numbers(readOurs(t, filepath.Join(dir, "times-out", evidence.PacketsFile))); len(n) != 1 {
		t.Fatalf("times-out: packets %v", n)
	}
}

func listDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// The evidence directory keeps MaxFindings directories and MaxDirBytes,
// the oldest going first, also across a restart.
func TestDirBounds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	s := newStore(t, evidence.Options{Dir: dir, MaxFindings: 2})
	for i, id := range []string{"a1", "a2", "a3"} {
		s.Packet(uint64(i+1), frame(0, 60, t0))
		s.FlowClosed(uint64(i + 1))
		s.Finding(finding(id, uint64(i+1)))
		// Directories are ordered by modification time: keep them apart.
		for s.Stats().FindingsWritten < uint64(i+1) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()
	if st := s.Stats(); st.DirsEvicted != 1 || st.Dirs != 2 || st.DirBytes <= 0 {
		t.Fatalf("%+v", st)
	}
	if got := listDirs(t, dir); strings.Join(got, ",") != "a2,a3" {
		t.Fatalf("dirs %v, want a2,a3", got)
	}

	// A restart with a smaller byte bound keeps only the newest, and
	// removes a directory left half-written.
	if err := os.Mkdir(filepath.Join(dir, ".tmp-a4"), 0o700); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, evidence.Options{Dir: dir, MaxDirBytes: 1})
	if st := s2.Stats(); st.DirsEvicted != 1 || st.Dirs != 1 {
		t.Fatalf("restart: %+v", st)
	}
	if got := listDirs(t, dir); strings.Join(got, ",") != "a3" {
		t.Fatalf("after restart: dirs %v, want a3", got)
	}
}

// A finding that cannot be written, or comes after Close, is counted and
// never blocks.
func TestFailuresAreCounted(t *testing.T) {
	s := newStore(t, evidence.Options{})
	s.Finding(finding("../escape", 1))
	s.Close()
	s.Finding(finding("late", 1))
	st := s.Stats()
	if st.FindingsFailed != 1 || st.FindingsDropped != 1 || st.FindingsWritten != 0 || st.Findings != 2 {
		t.Fatalf("%+v", st)
	}
	if _, err := evidence.New(evidence.Options{}); err == nil {
		t.Fatal("New without a directory: no error")
	}
}
