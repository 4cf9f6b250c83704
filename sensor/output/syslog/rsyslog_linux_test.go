package syslog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"exfilwatch/internal/rsyslogtest"
	"exfilwatch/sensor/detect"
)

// startRsyslog starts a real rsyslogd that also writes what it parsed.
func startRsyslog(t testing.TB, o rsyslogtest.Options) *rsyslogtest.Rsyslog {
	t.Helper()
	o.Fields = true
	return rsyslogtest.Start(t, o)
}

func makePKI(t testing.TB) *rsyslogtest.PKI {
	t.Helper()
	return rsyslogtest.NewPKI(t, rsyslogtest.PKIOptions{})
}

// sendAll formats and sends the findings, then checks what rsyslog wrote:
// each finding exactly once, intact, valid RFC 5424 for go-syslog, and
// parsed by rsyslog into the same MSGID, APP-NAME and SD.
func sendAll(t *testing.T, r *rsyslogtest.Rsyslog, tr Transport, findings []*detect.Finding) {
	t.Helper()
	fm := &Formatter{}
	for _, f := range findings {
		msg, err := fm.Message(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(msg); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	raw, fields := r.Wait(t, len(findings))
	checkReceived(t, raw, fields, findings)
}

func checkReceived(t *testing.T, raw [][]byte, fields []map[string]string, findings []*detect.Finding) {
	t.Helper()
	if len(raw) != len(findings) || len(fields) != len(findings) {
		t.Fatalf("rsyslog wrote %d raw and %d parsed messages for %d findings", len(raw), len(fields), len(findings))
	}
	byID := map[string]*detect.Finding{}
	for _, f := range findings {
		byID[f.ID] = f
	}
	seen := map[string]int{}
	for i, l := range raw {
		p := parse5424(t, l)
		id := p.sd["id"]
		f := byID[id]
		if f == nil {
			t.Fatalf("message for unknown finding %q", id)
		}
		seen[id]++
		checkFinding(t, p, f)
		if deref(p.ProcID) != strconv.Itoa(os.Getpid()) {
			t.Errorf("PROCID %q, want this process", deref(p.ProcID))
		}
		fl := fields[i]
		if fl["protocol"] != "1" || fl["app"] != AppName || fl["msgid"] != f.RuleID || fl["procid"] != deref(p.ProcID) ||
			fl["pri"] != strconv.Itoa(DefaultFacility*8+Severity(f.Severity)) {
			t.Errorf("rsyslog parsed %v", fl)
		}
		if !strings.HasPrefix(fl["sd"], "["+SDID+" ") || !strings.Contains(fl["sd"], `id="`+id+`"`) {
			t.Errorf("rsyslog structured data %q", fl["sd"])
		}
		// rsyslog keeps the BOM in its msg property: strip it like a
		// receiver that knows RFC 5424 §6.4 does.
		m := strings.TrimPrefix(fl["msg"], "\uFEFF")
		var doc map[string]any
		if err := json.Unmarshal([]byte(m), &doc); err != nil {
			t.Errorf("rsyslog's msg is not the JSON: %v: %q", err, m)
		}
	}
	for _, f := range findings {
		if seen[f.ID] != 1 {
			t.Errorf("finding %s written %d times", f.ID, seen[f.ID])
		}
	}
}

func findings(n int) []*detect.Finding {
	var out []*detect.Finding
	for i := 0; i < n; i++ {
		exe := "/usr/bin/curl"
		if i%3 == 1 {
			exe = `/tmp/.x/we"ird]\dïr/cürl`
		}
		out = append(out, testFinding(i, exe, i%4))
	}
	return out
}

func dial(t testing.TB, url string, opts TransportOptions) Transport {
	t.Helper()
	tr, err := Dial(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestRsyslogUDP(t *testing.T) {
	r := startRsyslog(t, rsyslogtest.Options{})
	tr := dial(t, fmt.Sprintf("udp://127.0.0.1:%d", r.UDPPort), TransportOptions{MaxMessage: 8192})
	if tr.Stream() || tr.Alive() != nil {
		t.Fatal("udp: Stream or Alive")
	}
	sendAll(t, r, tr, findings(20))
}

func TestRsyslogTCP(t *testing.T) {
	r := startRsyslog(t, rsyslogtest.Options{TCP: true})
	tr := dial(t, fmt.Sprintf("tcp://127.0.0.1:%d", r.TCPPort), TransportOptions{})
	if !tr.Stream() {
		t.Fatal("tcp is a stream")
	}
	sendAll(t, r, tr, findings(50))
	checkDelivered(t, tr)
	// The receiver goes away: Alive says so without sending anything.
	r.Stop()
	waitDead(t, tr)
}

// checkDelivered: after rsyslog wrote everything, the connection is alive
// and nothing is left unacknowledged.
func checkDelivered(t *testing.T, tr Transport) {
	t.Helper()
	if err := tr.Alive(); err != nil {
		t.Fatalf("Alive: %v", err)
	}
	if n, err := tr.Unacked(); err != nil || n != 0 {
		t.Fatalf("Unacked = %d, %v", n, err)
	}
}

func TestRsyslogTLS(t *testing.T) {
	p := makePKI(t)
	r := startRsyslog(t, rsyslogtest.Options{TLS: p})
	port := r.TLSPort
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	tr := dial(t, url, TransportOptions{CAFile: p.CAFile})
	sendAll(t, r, tr, findings(50))
	checkDelivered(t, tr)

	// The server name from an override instead of the URL's address.
	tr2 := dial(t, fmt.Sprintf("tls://localhost:%d", port), TransportOptions{CAFile: p.CAFile, ServerName: "syslog.test"})
	if err := tr2.Send([]byte("<13>1 - - x - NAMED - ok")); err != nil {
		t.Fatal(err)
	}

	// A name the certificate does not carry fails at Dial, saying why.
	_, err := Dial(context.Background(), url, TransportOptions{CAFile: p.CAFile, ServerName: "wrong.test"})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), "wrong.test") {
		t.Fatalf("name mismatch: %v", err)
	}
	// A CA that did not sign the server's certificate.
	other := makePKI(t)
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: other.CAFile}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("foreign CA: %v", err)
	}
	// An unreadable or empty CA file fails at Dial, before connecting.
	for _, ca := range []string{filepath.Join(t.TempDir(), "missing.pem"), p.ServerKey, t.TempDir()} {
		_, err := Dial(context.Background(), url, TransportOptions{CAFile: ca})
		if err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("CA %s: %v", ca, err)
		}
	}
	if _, err := Dial(context.Background(), url, TransportOptions{}); err == nil || !strings.Contains(err.Error(), "no CA file") {
		t.Fatalf("no CA: %v", err)
	}
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: p.CAFile, MinTLSVersion: 0x0301}); err == nil {
		t.Fatal("TLS 1.0 accepted")
	}
}

func TestRsyslogTLSClientCert(t *testing.T) {
	p := makePKI(t)
	r := startRsyslog(t, rsyslogtest.Options{TLS: p, TLSAuthMode: "x509/certvalid"})
	url := fmt.Sprintf("tls://127.0.0.1:%d", r.TLSPort)
	tr := dial(t, url, TransportOptions{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey})
	sendAll(t, r, tr, findings(10))
	checkDelivered(t, tr)

	// Without a client certificate rsyslog refuses us: in the handshake
	// (TLS 1.2) or right after it (TLS 1.3, where the client finishes
	// first); then Send or Alive fails, and nothing is written.
	bad, err := Dial(context.Background(), url, TransportOptions{CAFile: p.CAFile})
	if err == nil {
		defer bad.Close()
		deadline := time.Now().Add(10 * time.Second)
		for err == nil {
			err = bad.Send([]byte("<13>1 - - x - NOCERT - must not arrive"))
			if err == nil {
				err = bad.Alive()
			}
			if time.Now().After(deadline) {
				t.Fatal("a connection without a client certificate stays alive")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("without a client certificate: %v", err)
	raw, _ := r.Read(t)
	if len(raw) != 10 {
		t.Fatalf("%d messages written, want the 10 sent with a certificate", len(raw))
	}
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: p.CAFile, CertFile: p.ClientCert}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("certificate without key: %v", err)
	}
}

func TestRsyslogUnixDatagram(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log.sock")
	r := startRsyslog(t, rsyslogtest.Options{UnixSocket: sock})
	tr := dial(t, "unix://"+sock, TransportOptions{})
	if tr.Stream() {
		t.Fatal("imuxsock is a datagram socket")
	}
	sendAll(t, r, tr, findings(20))
}

// A Unix stream socket (syslog-ng's unix-stream source; rsyslog has none):
// Dial falls back to it and frames each message with LF.
func TestUnixStream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stream.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	release := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var all []byte
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil || bytes.Count(all, []byte{'\n'}) == 3 {
				break
			}
		}
		got <- all
		<-release
	}()
	tr := dial(t, "unix://"+sock, TransportOptions{})
	if !tr.Stream() {
		t.Fatal("stream socket not detected")
	}
	fs := findings(3)
	for _, f := range fs {
		msg, _ := Message(f, RFC5424, MessageOptions{})
		if err := tr.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	ls := lines(<-got)
	if len(ls) != 3 {
		t.Fatalf("%d lines", len(ls))
	}
	for i, l := range ls {
		checkFinding(t, parse5424(t, l), fs[i])
	}
	if err := tr.Alive(); err != nil {
		t.Fatalf("Alive while the peer is open: %v", err)
	}
	close(release) // the receiver closes its end
	waitDead(t, tr)
}

// waitDead: Alive reports a closed peer within a few seconds.
func waitDead(t *testing.T, tr Transport) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tr.Alive() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Alive still nil after the receiver closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("Alive: %v", tr.Alive())
}

func TestRsyslogRFC3164(t *testing.T) {
	r := startRsyslog(t, rsyslogtest.Options{})
	tr := dial(t, fmt.Sprintf("udp://127.0.0.1:%d", r.UDPPort), TransportOptions{MaxMessage: 8192})
	fs := findings(5)
	fm := &Formatter{Format: RFC3164}
	for _, f := range fs {
		msg, err := fm.Message(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	_, fields := r.Wait(t, len(fs))
	if len(fields) != len(fs) {
		t.Fatalf("%d messages", len(fields))
	}
	for i, fl := range fields {
		f := fs[i]
		if fl["protocol"] != "0" || fl["app"] != AppName || fl["procid"] != strconv.Itoa(os.Getpid()) ||
			fl["pri"] != strconv.Itoa(DefaultFacility*8+Severity(f.Severity)) {
			t.Errorf("rsyslog parsed %v", fl)
		}
		// MSG: the SD element, a space, the JSON.
		msg := strings.TrimSpace(fl["msg"])
		j := strings.Index(msg, "] {")
		if !strings.HasPrefix(msg, "["+SDID+" ") || j < 0 || !strings.Contains(msg[:j], `id="`+f.ID+`"`) {
			t.Fatalf("msg %q", msg)
		}
		want, _ := json.Marshal(f)
		if msg[j+2:] != string(want) {
			t.Errorf("JSON differs:\n got %s\nwant %s", msg[j+2:], want)
		}
	}
}

// An oversized finding on each transport: truncated as documented (header
// and SD intact, truncated="<JSON length>", a valid UTF-8 prefix of the
// JSON), counted, and delivered once.
func TestRsyslogOversized(t *testing.T) {
	p := makePKI(t)
	sock := filepath.Join(t.TempDir(), "log.sock")
	r := startRsyslog(t, rsyslogtest.Options{TLS: p, TCP: true, UnixSocket: sock})
	big := testFinding(7, "/usr/bin/cürl", 200)
	body, _ := json.Marshal(big)
	if len(body) < 3*DefaultMaxStream {
		t.Fatalf("finding of %d octets is not oversized", len(body))
	}
	cases := []struct {
		url  string
		opts TransportOptions
		max  int
	}{
		{fmt.Sprintf("udp://127.0.0.1:%d", r.UDPPort), TransportOptions{}, DefaultMaxUDP},
		{fmt.Sprintf("tcp://127.0.0.1:%d", r.TCPPort), TransportOptions{}, DefaultMaxStream},
		{fmt.Sprintf("tls://127.0.0.1:%d", r.TLSPort), TransportOptions{CAFile: p.CAFile, MaxMessage: 20000}, 20000},
		{"unix://" + sock, TransportOptions{MaxMessage: 1000}, 1000},
	}
	for i, c := range cases {
		f := *big
		f.ID = fmt.Sprintf("big%d", i)
		tr := dial(t, c.url, c.opts)
		if tr.MaxMessage() != c.max {
			t.Fatalf("%s: MaxMessage %d, want %d", c.url, tr.MaxMessage(), c.max)
		}
		msg, err := Message(&f, RFC5424, MessageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(msg); err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if tr.Truncated() != 1 {
			t.Fatalf("%s: %d truncations counted", c.url, tr.Truncated())
		}
		raw, _ := r.Wait(t, i+1)
		if len(raw) != i+1 {
			t.Fatalf("%s: %d messages written", c.url, len(raw))
		}
		got := raw[i]
		pm := parse5424(t, got)
		checkFinding(t, pm, &f)
		fb, _ := json.Marshal(&f)
		if len(got) > c.max || len(got) < c.max-utf8Max || pm.sd["truncated"] != strconv.Itoa(len(fb)) || !bytes.HasPrefix(fb, pm.msg) {
			t.Errorf("%s: %d octets (max %d), truncated=%q (JSON %d)", c.url, len(got), c.max, pm.sd["truncated"], len(fb))
		}
	}
}

const utf8Max = 4

// BenchmarkTLSToRsyslog: findings formatted and sent over TLS to a real
// rsyslog on loopback, counted once rsyslog has written them all.
func BenchmarkTLSToRsyslog(b *testing.B) {
	p := makePKI(b)
	r := rsyslogtest.Start(b, rsyslogtest.Options{TLS: p})
	tr := dial(b, fmt.Sprintf("tls://127.0.0.1:%d", r.TLSPort), TransportOptions{CAFile: p.CAFile})
	fs := findings(16)
	fm := &Formatter{}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		msg, err := fm.Message(fs[i%len(fs)])
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	sent := time.Since(start)
	// Delivered means written by rsyslog: count its lines.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := r.Count()
		if n >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("rsyslog wrote %d of %d", n, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	b.ReportMetric(sent.Seconds()/float64(b.N)*1e6, "µs-send/op")
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "findings/s")
}
