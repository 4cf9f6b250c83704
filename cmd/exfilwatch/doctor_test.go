package main

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"exfilwatch/internal/rsyslogtest"
)

// runCLI3 runs the CLI in-process and returns its exit code, stdout and
// stderr.
func runCLI3(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	of, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	ef, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	savedOut, savedErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = of, ef
	code := run(append([]string{"exfilwatch"}, args...))
	os.Stdout, os.Stderr = savedOut, savedErr
	of.Close()
	ef.Close()
	o, _ := os.ReadFile(of.Name())
	e, _ := os.ReadFile(ef.Name())
	return code, string(o), string(e)
}

// testPKI is a CA and a certificate it signed for 127.0.0.1 and
// "collector.test" (server and client use), written as PEM files.
type testPKI struct {
	*rsyslogtest.PKI
	caFile, certFile, keyFile string
	serverCert                tls.Certificate
}

func newTestPKI(t *testing.T, dir, prefix string) testPKI {
	t.Helper()
	p := rsyslogtest.NewPKI(t, rsyslogtest.PKIOptions{Dir: dir, Prefix: prefix, ServerName: "collector.test"})
	return testPKI{PKI: p, caFile: p.CAFile, certFile: p.ServerCert, keyFile: p.ServerKey, serverCert: p.ServerPair}
}

// tlsCollector accepts TLS connections on 127.0.0.1 until the test ends,
// completing each handshake; it reads nothing else.
func tlsCollector(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a loopback TCP port nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func find(results []checkResult, prefix string) *checkResult {
	for i := range results {
		if strings.HasPrefix(results[i].name, prefix) {
			return &results[i]
		}
	}
	return nil
}

func TestDoctorAsRoot(t *testing.T) {
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("needs root on Linux")
	}
	dir := t.TempDir()
	pki := newTestPKI(t, dir, "good")
	good := tlsCollector(t, pki.serverCert)
	closed := closedPort(t)
	cfgFile := writeFile(t, filepath.Join(dir, "exfilwatch.yaml"), `outputs:
  findings:
    path: `+dir+`/log/findings.jsonl
  syslog:
    - url: tcp://`+closed+`
    - url: tls://`+good+`
      ca_file: `+pki.caFile+`
      cert_file: `+pki.certFile+`
      key_file: `+pki.keyFile+`
    - url: tls://`+good+`
      ca_file: `+dir+`/missing-ca.pem
    - url: udp://127.0.0.1:514
  spool:
    dir: `+dir+`/state/spool
    max_bytes: 1MiB
`)
	res := runDoctor(doctorOptions{configPath: cfgFile, configExplicit: true, goos: "linux", euid: os.Geteuid(), timeout: 3 * time.Second})
	for _, r := range res {
		t.Log(r)
	}
	for _, name := range []string{"root", "capture (AF_PACKET)", "file access (fanotify)", "config", "config outputs.spool.dir", "config outputs.findings.path", "config outputs.syslog[1].ca_file", "config outputs.syslog[1].cert_file", "syslog[1] tls://"} {
		if r := find(res, name); r == nil || r.status != statusOK {
			t.Errorf("%s: %v, want ok", name, r)
		}
	}
	r := find(res, "syslog[0] tcp://")
	if r == nil || r.status != statusFail || !strings.Contains(r.detail, "connection refused") || !strings.Contains(r.String(), "— fix: check that the collector listens") {
		t.Errorf("closed port: %v", r)
	}
	r = find(res, "config outputs.syslog[2].ca_file")
	if r == nil || r.status != statusFail || !strings.Contains(r.detail, "missing-ca.pem: no such file") {
		t.Errorf("missing CA (offline): %v", r)
	}
	r = find(res, "syslog[2] tls://")
	if r == nil || r.status != statusFail || !strings.Contains(r.String(), "fix: correct ca_file") {
		t.Errorf("missing CA (dial): %v", r)
	}
	if r := find(res, "syslog[3] udp://"); r == nil || r.status != statusWarn {
		t.Errorf("udp: %v", r)
	}
	if r := find(res, "disk outputs.spool.dir"); r == nil || r.status == statusFail || !strings.Contains(r.detail, "free") {
		t.Errorf("disk: %v", r)
	}

	// The same through the command line: exit 1, one line per check.
	code, out, _ := runCLI3(t, "doctor", "--config", cfgFile, "--timeout", "3s")
	if code != 1 || !strings.Contains(out, "ok    root") || !strings.Contains(out, "fail  syslog[0] tcp://"+closed) {
		t.Errorf("doctor exit %d:\n%s", code, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "ok ") && !strings.HasPrefix(line, "warn ") && !strings.HasPrefix(line, "fail ") {
			t.Errorf("line without a status: %q", line)
		}
	}

	// A healthy configuration exits 0.
	okFile := writeFile(t, filepath.Join(dir, "ok.yaml"), "outputs:\n  syslog:\n    - url: tls://"+good+"\n      ca_file: "+pki.caFile+"\n      server_name: collector.test\n")
	if code, out, _ := runCLI3(t, "doctor", "--config", okFile); code != 0 {
		t.Errorf("healthy config: exit %d\n%s", code, out)
	}
}

func TestDoctorTLSWrongCA(t *testing.T) {
	dir := t.TempDir()
	server := newTestPKI(t, dir, "server")
	other := newTestPKI(t, dir, "other")
	addr := tlsCollector(t, server.serverCert)
	cfgFile := writeFile(t, filepath.Join(dir, "x.yaml"), "outputs:\n  syslog:\n    - url: tls://"+addr+"\n      ca_file: "+other.caFile+"\n    - url: tls://"+addr+"\n      ca_file: "+server.caFile+"\n      server_name: wrong.test\n")
	cfg, problems := checkConfigFile(cfgFile)
	if len(problems) != 0 || cfg == nil {
		t.Fatalf("offline problems: %v", problems)
	}
	for i, want := range []string{"certificate signed by unknown authority", "not wrong.test"} {
		r := syslogCheck("s", cfg.Outputs.Syslog[i], 3*time.Second)
		if r.status != statusFail || !strings.Contains(r.detail, want) || !strings.Contains(r.fix, "ca_file must hold the CA") {
			t.Errorf("destination %d: %v", i, r)
		}
	}
}

func TestDoctorNotRootAndNoConfig(t *testing.T) {
	res := runDoctor(doctorOptions{configPath: filepath.Join(t.TempDir(), "absent.yaml"), goos: runtime.GOOS, euid: 501, timeout: time.Second})
	if r := find(res, "root"); r == nil || r.status != statusFail || !strings.Contains(r.fix, "sudo") {
		t.Errorf("root: %v", r)
	}
	if r := find(res, "config"); r == nil || r.status != statusWarn || !strings.Contains(r.detail, "built-in defaults") {
		t.Errorf("absent default config: %v", r)
	}
	res = runDoctor(doctorOptions{configPath: filepath.Join(t.TempDir(), "absent.yaml"), configExplicit: true, goos: runtime.GOOS, euid: 0, timeout: time.Second})
	if r := find(res, "config"); r == nil || r.status != statusFail {
		t.Errorf("absent --config: %v", r)
	}
}

// A small tmpfs stands for a disk too small for the spool's bound.
func TestDoctorTinyDisk(t *testing.T) {
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("needs root on Linux")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	r := diskCheck("disk", filepath.Join(mnt, "spool", "new"), 16<<20, 1<<20)
	if r.status != statusWarn || !strings.Contains(r.detail, "2.0 MiB free") || !strings.Contains(r.fix, "lower max_bytes") {
		t.Errorf("tiny disk: %v", r)
	}
	if r := diskCheck("disk", mnt, 64<<10, 64<<10); r.status != statusOK {
		t.Errorf("small bound on tiny disk: %v", r)
	}
}

// esloggerCheck's classification, with stand-in executables for the three
// ways eslogger fails on a Mac and for one that runs.
func TestEsloggerCheck(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nif [ \"$1\" = --list-events ]; then echo exit; exit 0; fi\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		status     checkStatus
		want       string
	}{
		{"missing", filepath.Join(dir, "nope"), statusFail, "upgrade to macOS 13"},
		{"no FDA", script("nofda", "echo 'Not permitted to create an ES Client (ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED)' >&2; exit 1"), statusFail, "Full Disk Access"},
		{"not root", script("notroot", "echo 'ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED' >&2; exit 1"), statusFail, "run as root"},
		{"runs", script("runs", "exec sleep 30"), statusOK, "Endpoint Security accepted it"},
		{"list fails", filepath.Join(dir, "broken"), statusFail, "--list-events"},
	}
	writeFile(t, cases[4].path, "")
	os.Chmod(cases[4].path, 0o755)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := esloggerCheck(c.path, 700*time.Millisecond)
			if r.status != c.status || !strings.Contains(r.String(), c.want) {
				t.Errorf("got %v, want %s with %q", r, c.status, c.want)
			}
		})
	}
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir, "cc")
	good := writeFile(t, filepath.Join(dir, "good.yaml"), `allowlist:
  - executable: /usr/bin/rsync
outputs:
  findings: {path: `+dir+`/log/findings.jsonl, max_bytes: 10MiB}
  syslog:
    - url: tls://collector.test:6514
      ca_file: `+pki.caFile+`
      cert_file: `+pki.certFile+`
      key_file: `+pki.keyFile+`
  spool: {dir: `+dir+`/spool}
`)
	code, out, errOut := runCLI3(t, "check-config", good)
	if code != 0 || errOut != "" {
		t.Fatalf("good: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{good + ": ok", "allowlist: 1 entries", "syslog: tls://collector.test:6514 (rfc5424, facility authpriv", "TLS ≥ 1.2", "client certificate", "findings: " + dir + "/log/findings.jsonl (json, rotated at 10485760 bytes, 5 kept)", "spool: " + dir + "/spool"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	// Offline problems: a CA file that is not PEM, a key that is not the
	// certificate's, a spool "directory" that is a file.
	other := newTestPKI(t, dir, "other")
	notPEM := writeFile(t, filepath.Join(dir, "ca.txt"), "not a certificate\n")
	afile := writeFile(t, filepath.Join(dir, "afile"), "")
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), `outputs:
  syslog:
    - url: tls://collector.test:6514
      ca_file: `+notPEM+`
      cert_file: `+pki.certFile+`
      key_file: `+other.keyFile+`
  spool: {dir: `+afile+`}
  evidence: {dir: `+afile+`/sub}
`)
	code, out, errOut = runCLI3(t, "check-config", bad)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || out != "" || len(lines) != 4 {
		t.Fatalf("bad: exit %d, %d lines\n%s%s", code, len(lines), out, errOut)
	}
	for i, want := range []string{
		bad + ": outputs.syslog[0].ca_file: " + notPEM + ": no PEM certificate in the file",
		bad + ": outputs.syslog[0].cert_file: " + pki.certFile + " with " + other.keyFile + ": tls: private key does not match public key",
		bad + ": outputs.spool.dir: " + afile + " exists and is not a directory",
		bad + ": outputs.evidence.dir: " + afile + " is not a directory",
	} {
		if lines[i] != want {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want)
		}
	}

	// Loader problems come through unchanged, one per line.
	syntax := writeFile(t, filepath.Join(dir, "syntax.yaml"), "outputs:\n  syslog:\n    - url: tcp://h\n  stats_interval: soon\n")
	code, _, errOut = runCLI3(t, "check-config", syntax)
	want := syntax + `:3: outputs.syslog[0].url: url "tcp://h": want tcp://host:port (the port is required)` + "\n" +
		syntax + `:4: outputs.stats_interval: bad duration "soon" (use e.g. 10m, 1h)` + "\n"
	if code != 1 || errOut != want {
		t.Errorf("syntax: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI3(t, "check-config", filepath.Join(dir, "absent.yaml")); code != 1 || !strings.Contains(errOut, "absent.yaml: open") {
		t.Errorf("absent: exit %d %s", code, errOut)
	}
}

func TestCheckExpiredClientCert(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir, "exp")
	if err := checkKeyPair(pki.certFile, pki.keyFile, time.Now()); err != nil {
		t.Fatal(err)
	}
	err := checkKeyPair(pki.certFile, pki.keyFile, time.Now().Add(48*time.Hour))
	if err == nil || !strings.Contains(err.Error(), "certificate expired on") {
		t.Errorf("expired: %v", err)
	}
}
