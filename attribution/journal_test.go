package attribution

import (
	"net/netip"
	"os"
	"path/filepath"
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
