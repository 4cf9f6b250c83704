package syslog

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"exfilwatch/sensor/detect"
)

// rsyslog is one rsyslogd run by a test in the foreground, with its own
// configuration, work directory and output files.
type rsyslog struct {
	dir     string
	raw     string // one line per message: %rawmsg%
	fields  string // one JSON object per message: what rsyslog parsed
	udpPort int    // always listening: the readiness probe
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	stop    func() // idempotent
}

// startRsyslog writes a configuration with the given inputs (and modules)
// and starts rsyslogd; it returns once a probe datagram was written out, so
// every input listens.
func startRsyslog(t testing.TB, inputs string) *rsyslog {
	t.Helper()
	return startRsyslogFields(t, inputs, true)
}

// startRsyslogFields can leave out the parsed-fields file (the benchmark
// measures us, not rsyslog's JSON escaping).
func startRsyslogFields(t testing.TB, inputs string, fields bool) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/rsyslogd"); err2 != nil {
			t.Fatalf("rsyslogd not found (%v): these tests need a real rsyslog: apt-get install rsyslog rsyslog-gnutls (make deps does)", err)
		}
		bin = "/usr/sbin/rsyslogd"
	}
	r := &rsyslog{dir: t.TempDir(), udpPort: freePort(t, "udp")}
	r.raw = filepath.Join(r.dir, "raw.log")
	r.fields = filepath.Join(r.dir, "fields.log")
	conf := fmt.Sprintf(`
global(workDirectory=%[1]q maxMessageSize="256k" net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="on")
module(load="imudp")
%[2]s
input(type="imudp" address="127.0.0.1" port="%[3]d")
template(name="raw" type="string" string="%%rawmsg%%\n")
template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="protocol" name="protocol-version" format="jsonf")
}
action(type="omfile" file=%[4]q template="raw" flushOnTXEnd="on" asyncWriting="off")
%[6]saction(type="omfile" file=%[5]q template="fields" flushOnTXEnd="on" asyncWriting="off")
`, r.dir, inputs, r.udpPort, r.raw, r.fields, map[bool]string{true: "", false: "# "}[fields])
	confPath := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.stderr = new(bytes.Buffer)
	r.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	exited := make(chan struct{})
	go func() { r.cmd.Wait(); close(exited) }()
	r.stop = func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			r.cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(r.stop)
	probe, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.udpPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited: %s\nconfiguration:\n%s", r.stderr, conf)
		default:
		}
		probe.Write([]byte("<13>1 - - probe - PROBE - ready"))
		if b, _ := os.ReadFile(r.raw); bytes.Contains(b, []byte("PROBE")) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd wrote no probe within 15s: %s", r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// received waits until rsyslog wrote want messages of ours (probes left
// out) and returns them, raw and as parsed by rsyslog; it waits a little
// longer to catch duplicates.
func (r *rsyslog) received(t testing.TB, want int) (raw [][]byte, fields []map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, fields = r.read(t)
		if len(raw) >= want && len(fields) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d of %d messages; rsyslogd said: %s", len(raw), want, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return r.read(t)
}

func (r *rsyslog) read(t testing.TB) (raw [][]byte, fields []map[string]string) {
	rb, _ := os.ReadFile(r.raw)
	for _, l := range lines(complete(rb)) {
		if !bytes.Contains(l, []byte(" PROBE ")) {
			raw = append(raw, l)
		}
	}
	fb, _ := os.ReadFile(r.fields)
	for _, l := range lines(complete(fb)) {
		var m map[string]string
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("rsyslog fields line %q: %v", l, err)
		}
		if m["msgid"] != "PROBE" {
			fields = append(fields, m)
		}
	}
	return raw, fields
}

// complete drops a last line rsyslog is still writing.
func complete(b []byte) []byte {
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pki is a CA with a server certificate (syslog.test, 127.0.0.1) and a
// client certificate, made at test time.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func makePKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "exfilwatch test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{cn},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	}
	leaf(2, "syslog.test", x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey)
	leaf(3, "sensor.test", x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsInput is the rsyslog configuration of a TLS listener (gtls driver);
// authMode "anon" takes any client, "x509/certvalid" requires a client
// certificate signed by the CA.
func tlsInput(p *pki, port int, authMode string) string {
	return fmt.Sprintf(`
global(defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q
       defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%q)
input(type="imtcp" address="127.0.0.1" port="%d")
`, p.caFile, p.serverCert, p.serverKey, authMode, port)
}

// sendAll formats and sends the findings, then checks what rsyslog wrote:
// each finding exactly once, intact, valid RFC 5424 for go-syslog, and
// parsed by rsyslog into the same MSGID, APP-NAME and SD.
func sendAll(t *testing.T, r *rsyslog, tr Transport, findings []*detect.Finding) {
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
	raw, fields := r.received(t, len(findings))
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
	r := startRsyslog(t, "")
	tr := dial(t, fmt.Sprintf("udp://127.0.0.1:%d", r.udpPort), TransportOptions{MaxMessage: 8192})
	if tr.Stream() || tr.Alive() != nil {
		t.Fatal("udp: Stream or Alive")
	}
	sendAll(t, r, tr, findings(20))
}

func TestRsyslogTCP(t *testing.T) {
	port := freePort(t, "tcp")
	r := startRsyslog(t, fmt.Sprintf(`module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d")`, port))
	tr := dial(t, fmt.Sprintf("tcp://127.0.0.1:%d", port), TransportOptions{})
	if !tr.Stream() {
		t.Fatal("tcp is a stream")
	}
	sendAll(t, r, tr, findings(50))
	checkDelivered(t, tr)
	// The receiver goes away: Alive says so without sending anything.
	r.stop()
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
	port := freePort(t, "tcp")
	r := startRsyslog(t, tlsInput(p, port, "anon"))
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	tr := dial(t, url, TransportOptions{CAFile: p.caFile})
	sendAll(t, r, tr, findings(50))
	checkDelivered(t, tr)

	// The server name from an override instead of the URL's address.
	tr2 := dial(t, fmt.Sprintf("tls://localhost:%d", port), TransportOptions{CAFile: p.caFile, ServerName: "syslog.test"})
	if err := tr2.Send([]byte("<13>1 - - x - NAMED - ok")); err != nil {
		t.Fatal(err)
	}

	// A name the certificate does not carry fails at Dial, saying why.
	_, err := Dial(context.Background(), url, TransportOptions{CAFile: p.caFile, ServerName: "wrong.test"})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), "wrong.test") {
		t.Fatalf("name mismatch: %v", err)
	}
	// A CA that did not sign the server's certificate.
	other := makePKI(t)
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: other.caFile}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("foreign CA: %v", err)
	}
	// An unreadable or empty CA file fails at Dial, before connecting.
	for _, ca := range []string{filepath.Join(t.TempDir(), "missing.pem"), p.serverKey, t.TempDir()} {
		_, err := Dial(context.Background(), url, TransportOptions{CAFile: ca})
		if err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("CA %s: %v", ca, err)
		}
	}
	if _, err := Dial(context.Background(), url, TransportOptions{}); err == nil || !strings.Contains(err.Error(), "no CA file") {
		t.Fatalf("no CA: %v", err)
	}
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: p.caFile, MinTLSVersion: 0x0301}); err == nil {
		t.Fatal("TLS 1.0 accepted")
	}
}

func TestRsyslogTLSClientCert(t *testing.T) {
	p := makePKI(t)
	port := freePort(t, "tcp")
	r := startRsyslog(t, tlsInput(p, port, "x509/certvalid"))
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	tr := dial(t, url, TransportOptions{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey})
	sendAll(t, r, tr, findings(10))
	checkDelivered(t, tr)

	// Without a client certificate rsyslog refuses us: in the handshake
	// (TLS 1.2) or right after it (TLS 1.3, where the client finishes
	// first); then Send or Alive fails, and nothing is written.
	bad, err := Dial(context.Background(), url, TransportOptions{CAFile: p.caFile})
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
	raw, _ := r.read(t)
	if len(raw) != 10 {
		t.Fatalf("%d messages written, want the 10 sent with a certificate", len(raw))
	}
	if _, err := Dial(context.Background(), url, TransportOptions{CAFile: p.caFile, CertFile: p.clientCert}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("certificate without key: %v", err)
	}
}

func TestRsyslogUnixDatagram(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log.sock")
	r := startRsyslog(t, fmt.Sprintf(`module(load="imuxsock" sysSock.use="off")
input(type="imuxsock" socket=%q rateLimit.interval="0" useSpecialParser="off" parseHostname="on")`, sock))
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
	r := startRsyslog(t, "")
	tr := dial(t, fmt.Sprintf("udp://127.0.0.1:%d", r.udpPort), TransportOptions{MaxMessage: 8192})
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
	_, fields := r.received(t, len(fs))
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
	tcpPort, tlsPort := freePort(t, "tcp"), freePort(t, "tcp")
	sock := filepath.Join(t.TempDir(), "log.sock")
	r := startRsyslog(t, tlsInput(p, tlsPort, "anon")+fmt.Sprintf(`
module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d")
module(load="imuxsock" sysSock.use="off")
input(type="imuxsock" socket=%q rateLimit.interval="0" useSpecialParser="off" parseHostname="on")`, tcpPort, sock))
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
		{fmt.Sprintf("udp://127.0.0.1:%d", r.udpPort), TransportOptions{}, DefaultMaxUDP},
		{fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort), TransportOptions{}, DefaultMaxStream},
		{fmt.Sprintf("tls://127.0.0.1:%d", tlsPort), TransportOptions{CAFile: p.caFile, MaxMessage: 20000}, 20000},
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
		raw, _ := r.received(t, i+1)
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
	port := freePort(b, "tcp")
	r := startRsyslogFields(b, tlsInput(p, port, "anon"), false)
	tr := dial(b, fmt.Sprintf("tls://127.0.0.1:%d", port), TransportOptions{CAFile: p.caFile})
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
		rb, _ := os.ReadFile(r.raw)
		n := bytes.Count(rb, []byte("\n")) - bytes.Count(rb, []byte(" PROBE "))
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
