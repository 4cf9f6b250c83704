package attribution

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestJournalRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	w, err := CreateJournal(path, JournalRecord{Host: "mac", Interface: "pktap,all", LocalNets: []string{"198.18.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	cl, sv := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("198.18.0.2:80")
	p := &Process{PID: 300, PPID: 200, Name: "curl", Executable: "/usr/bin/curl", Args: []string{"curl", "-T", "x"}, StartTime: t0.Add(-time.Second), User: "alice", UID: 501}
	w.Attribution(Request{ID: 1, Proto: TCP, Client: cl, Server: sv, Start: t0}, Result{Method: MethodSocketTable, PID: 300, Process: p, Lineage: []*Process{{PID: 200, Name: "sh"}}, Delay: 1500 * time.Microsecond, Attempts: 2}, t0)
	// The same 5-tuple reused a minute later by another process.
	w.Attribution(Request{ID: 9, Proto: TCP, Client: cl, Server: sv, Start: t0.Add(time.Minute)}, Result{Reason: ReasonNoSocket}, t0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	j, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if j.Header.Interface != "pktap,all" || j.Header.Version != JournalVersion {
		t.Fatalf("header %+v", j.Header)
	}
	a := j.Attributor()
	a.Begin(Request{ID: 5, Proto: TCP, Client: cl, Server: sv, Start: t0.Add(10 * time.Microsecond)})
	a.Begin(Request{ID: 6, Proto: TCP, Client: sv, Server: cl, Start: t0.Add(time.Minute)}) // roles swapped
	a.Begin(Request{ID: 7, Proto: TCP, Client: cl, Server: sv, Start: t0.Add(time.Hour)})
	r := a.Result(5, 0)
	if r == nil || r.Method != MethodSocketTable || r.Process.Executable != "/usr/bin/curl" || len(r.Lineage) != 1 || r.Delay != 1500*time.Microsecond || !r.Process.StartTime.Equal(p.StartTime) {
		t.Fatalf("%+v", r)
	}
	if r := a.Result(6, 0); r == nil || r.Reason != ReasonNoSocket {
		t.Fatalf("%+v", r)
	}
	if a.Result(7, 0) != nil || a.Missing != 1 {
		t.Fatalf("a flow an hour later matched: missing %d", a.Missing)
	}
}

func TestJournalFileAccessRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	w, err := CreateJournal(path, JournalRecord{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	w.FileAccess(FileAccess{Time: t0, PID: 42, Path: "/home/alice/Documents/q3.pdf", Access: AccessRead, Source: SourceFanotify}, &Process{PID: 42, Name: "tar"})
	w.FileAccess(FileAccess{Time: t0, PID: 43, Path: "/tmp/x", Access: AccessWrite, Modified: true, Source: SourceFanotify}, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	j, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Files) != 2 || j.Files[0].File.Path != "/home/alice/Documents/q3.pdf" || j.Files[0].File.Access != "read" ||
		j.Files[0].File.Process.Name != "tar" || !j.Files[1].File.Modified || j.Files[1].File.Process != nil {
		t.Fatalf("%+v", j.Files)
	}
}

func TestJournalBadInput(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      "{\"type\":\"header\",\"version\":1}\nnot json\n",
		"no header":     "{\"type\":\"attribution\",\"flow\":{\"client\":\"1.2.3.4:1\",\"server\":\"1.2.3.4:2\"},\"result\":{}}\n",
		"bad endpoints": "{\"type\":\"header\",\"version\":1}\n{\"type\":\"attribution\",\"flow\":{\"client\":\"x\",\"server\":\"y\"},\"result\":{}}\n",
		"future":        "{\"type\":\"header\",\"version\":99}\n",
		"huge line":     "{\"type\":\"header\",\"version\":1}\n\"" + strings.Repeat("a", maxJournalLine+10) + "\"\n",
	} {
		if _, err := readJournal(strings.NewReader(body), "j"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := readJournal(strings.NewReader("{\"type\":\"header\",\"version\":1}\n{\"type\":\"file_access\",\"path\":\"/x\"}\n"), "j"); err == nil {
		t.Error("file_access without its file object accepted")
	}
	j, err := readJournal(strings.NewReader("{\"type\":\"header\",\"version\":1}\n{\"type\":\"file_hash\",\"path\":\"/x\"}\n"), "j")
	if err != nil || j.Skipped != 1 {
		t.Fatalf("unknown record types must be skipped: %v %+v", err, j)
	}
}

// Size and hash of file accesses, the recording host's OS, and process
// records round-trip.
func TestJournalHashesAndProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	w, err := CreateJournal(path, JournalRecord{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	sum := sha256.Sum256([]byte("q3"))
	w.FileAccess(FileAccess{Time: t0, PID: 42, Path: "/home/alice/q3.pdf", Access: AccessRead, Source: SourceFanotify,
		Size: 2, SHA256: sum, Hashed: true}, nil)
	w.FileAccess(FileAccess{Time: t0, PID: 42, Path: "/home/alice/big.tar", Access: AccessRead, Source: SourceFanotify, Size: 1 << 40}, nil)
	exec := ProcessEvent{Time: t0.Add(time.Second), Kind: ProcExec, PID: 50, PPID: 1, PIDVersion: 7, PrevPIDVersion: 6,
		Process: &Process{PID: 50, Name: "curl", Executable: "/usr/bin/curl"}, SigningID: "com.apple.curl",
		PlatformBinary: true, CodesigningFlags: 0x2000, ResponsiblePID: 40, ResponsiblePIDVersion: 3, Source: SourceEslogger}
	fork := ProcessEvent{Time: t0.Add(2 * time.Second), Kind: ProcFork, PID: 50, PIDVersion: 7, ChildPID: 51, ChildPIDVersion: 9, Source: SourceEslogger}
	exit := ProcessEvent{Time: t0.Add(3 * time.Second), Kind: ProcExit, PID: 51, PIDVersion: 9, ExitStatus: 256, Source: SourceEslogger}
	for _, ev := range []ProcessEvent{exec, fork, exit} {
		w.ProcessEvent(ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"sha256":"`+hex.EncodeToString(sum[:])+`"`) || strings.Count(string(raw), `"sha256"`) != 1 {
		t.Errorf("sha256 must be hex and only on hashed records:\n%s", raw)
	}
	j, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if j.Header.OS != runtime.GOOS {
		t.Errorf("header os %q", j.Header.OS)
	}
	if len(j.Files) != 2 {
		t.Fatalf("%d files", len(j.Files))
	}
	fa, err := j.Files[0].File.FileAccess(j.Files[0].Time)
	if err != nil || !fa.Hashed || fa.SHA256 != sum || fa.Size != 2 || fa.Access != AccessRead || !fa.Time.Equal(t0) {
		t.Errorf("hashed access: %+v %v", fa, err)
	}
	fa, err = j.Files[1].File.FileAccess(j.Files[1].Time)
	if err != nil || fa.Hashed || fa.Size != 1<<40 {
		t.Errorf("unhashed access: %+v %v", fa, err)
	}
	if len(j.Processes) != 3 {
		t.Fatalf("%d processes", len(j.Processes))
	}
	for i, want := range []ProcessEvent{exec, fork, exit} {
		got := j.Processes[i]
		if !got.Time.Equal(want.Time) {
			t.Errorf("event %d time %v", i, got.Time)
		}
		got.Time, want.Time = time.Time{}, time.Time{}
		gp, wp := got.Process, want.Process
		got.Process, want.Process = nil, nil
		if got != want || (gp == nil) != (wp == nil) || (gp != nil && gp.Executable != wp.Executable) {
			t.Errorf("event %d:\n got %+v %+v\nwant %+v %+v", i, got, gp, want, wp)
		}
	}
}

// A journal written before size, sha256, os and process records reads as
// before; the new fields are simply absent.
func TestJournalOldFormat(t *testing.T) {
	old := `{"type":"header","time":"2026-11-27T10:00:00Z","version":1,"host":"mac-01","interface":"pktap,all"}
{"type":"file_access","time":"2026-11-27T10:00:01Z","file":{"pid":7,"path":"/a","access":"read","source":"fanotify"}}
{"type":"file_access","time":"2026-11-27T10:00:02Z","file":{"pid":7,"path":"/b","access":"teleport","source":"later"}}
`
	j, err := readJournal(strings.NewReader(old), "old")
	if err != nil {
		t.Fatal(err)
	}
	if j.Header.OS != "" || len(j.Files) != 2 || len(j.Processes) != 0 {
		t.Fatalf("%+v", j)
	}
	if fa, err := j.Files[0].File.FileAccess(j.Files[0].Time); err != nil || fa.Hashed || fa.Size != 0 {
		t.Errorf("%+v %v", fa, err)
	}
	// An access kind from a later version: kept, and converting it says why not.
	if _, err := j.Files[1].File.FileAccess(j.Files[1].Time); err == nil || !strings.Contains(err.Error(), "teleport") {
		t.Errorf("unknown access: %v", err)
	}
}

func TestJournalBadNewRecords(t *testing.T) {
	const h = "{\"type\":\"header\",\"version\":1}\n"
	for name, body := range map[string]string{
		"short hash":        h + `{"type":"file_access","file":{"pid":1,"path":"/x","access":"read","sha256":"abcd"}}` + "\n",
		"non-hex hash":      h + `{"type":"file_access","file":{"pid":1,"path":"/x","access":"read","sha256":"` + strings.Repeat("zz", 32) + `"}}` + "\n",
		"process, no event": h + `{"type":"process","time":"2026-11-27T10:00:00Z"}` + "\n",
		"process, no kind":  h + `{"type":"process","event":{"pid":3}}` + "\n",
	} {
		if _, err := readJournal(strings.NewReader(body), "j"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseAccessKind(t *testing.T) {
	for k := AccessUnknown; k <= AccessClose; k++ {
		if got, ok := ParseAccessKind(k.String()); !ok || got != k {
			t.Errorf("%v: %v %v", k, got, ok)
		}
	}
	if _, ok := ParseAccessKind("READ"); ok {
		t.Error("names are lower case")
	}
}
