package syslog

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc3164"

	"exfilwatch/sensor/detect"
)

func TestMessageRFC5424(t *testing.T) {
	f := testFinding(3, `/tmp/.x/we"ird]\dir/cürl`, 1) // critical
	fac := 16
	raw, err := Message(f, RFC5424, MessageOptions{Facility: &fac, Hostname: "sensor-1", PID: 777})
	if err != nil {
		t.Fatal(err)
	}
	// The header byte for byte: <16*8+2>1 TIMESTAMP HOST APP PROCID MSGID.
	wantHead := "<130>1 2025-03-04T05:06:10.123456Z sensor-1 exfilwatch 777 AN0424 " +
		`[exfilwatch@32473 rule="AN0424" severity="critical" id="000000000000000000abc003" pid="4003" exe="/tmp/.x/we\"ird\]\\dir/cürl" dst="198.18.0.2:8080" bytes="100003"] ` + "\xEF\xBB\xBF{"
	if !bytes.HasPrefix(raw, []byte(wantHead)) {
		t.Fatalf("header\n got %q\nwant %q", raw[:min(len(raw), len(wantHead))], wantHead)
	}
	p := parse5424(t, raw)
	checkFinding(t, p, f)
	if !p.bom {
		t.Error("MSG has no BOM")
	}
	if *p.Facility != 16 || deref(p.Hostname) != "sensor-1" || deref(p.ProcID) != "777" {
		t.Errorf("facility %d host %q procid %q", *p.Facility, deref(p.Hostname), deref(p.ProcID))
	}
	if !p.Timestamp.Equal(time.Date(2025, 3, 4, 5, 6, 10, 123456000, time.UTC)) {
		t.Errorf("timestamp %v", p.Timestamp)
	}

	raw, err = Message(f, RFC5424, MessageOptions{NoBOM: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := parse5424(t, raw); p.bom || *p.Facility != DefaultFacility || deref(p.ProcID) == "" {
		t.Errorf("NoBOM: bom %v facility %d procid %q", p.bom, *p.Facility, deref(p.ProcID))
	}
}

func TestSeverityAndFacility(t *testing.T) {
	for sev, want := range map[string]int{"critical": 2, "high": 3, "medium": 4, "low": 5, "": 4} {
		if got := Severity(sev); got != want {
			t.Errorf("Severity(%q) = %d, want %d", sev, got, want)
		}
	}
	for s, want := range map[string]int{"": 10, "authpriv": 10, "local0": 16, "LOCAL7": 23, "kern": 0, "security": 4, "13": 13} {
		got, err := ParseFacility(s)
		if err != nil || got != want {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"local8", "24", "-1", "bogus"} {
		if _, err := ParseFacility(s); err == nil {
			t.Errorf("ParseFacility(%q) accepted", s)
		}
	}
	kern := 0
	raw, err := Message(testFinding(0, "/usr/bin/curl", 0), RFC5424, MessageOptions{Facility: &kern})
	if err != nil || !bytes.HasPrefix(raw, []byte("<5>1 ")) {
		t.Errorf("kern/low: %q %v", raw[:10], err)
	}
	bad := 24
	if _, err := Message(testFinding(0, "", 0), RFC5424, MessageOptions{Facility: &bad}); err == nil {
		t.Error("facility 24 accepted")
	}
}

func TestMessageRFC3164(t *testing.T) {
	f := testFinding(1, "/usr/bin/curl", 0) // medium
	raw, err := Message(f, RFC3164, MessageOptions{Hostname: "sensor 1", PID: 55, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	want := `<84>Mar  4 05:06:08 sensor-1 exfilwatch[55]: [exfilwatch@32473 rule="AN0424" severity="medium" id="000000000000000000abc001" pid="4001" exe="/usr/bin/curl" dst="198.18.0.2:8080" bytes="100001"] {`
	if !bytes.HasPrefix(raw, []byte(want)) {
		t.Fatalf("got  %q\nwant %q", raw[:len(want)], want)
	}
	m, err := rfc3164.NewParser(rfc3164.WithYear(rfc3164.Year{YYYY: 2025})).Parse(raw)
	if err != nil {
		t.Fatalf("go-syslog rfc3164: %v", err)
	}
	sm := m.(*rfc3164.SyslogMessage)
	if deref(sm.Appname) != AppName || deref(sm.ProcID) != "55" || deref(sm.Hostname) != "sensor-1" || *sm.Severity != 4 {
		t.Errorf("parsed app %q procid %q host %q severity %d", deref(sm.Appname), deref(sm.ProcID), deref(sm.Hostname), *sm.Severity)
	}
	msg := deref(sm.Message)
	i := strings.Index(msg, "] {")
	if i < 0 {
		t.Fatalf("MSG %q", msg)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(msg[i+2:]), &doc); err != nil {
		t.Errorf("JSON after the SD element: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	f := testFinding(2, "/usr/bin/cürl", 40)
	full, err := Message(f, RFC5424, MessageOptions{Hostname: "h", PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(f)
	if len(full) < 4000 {
		t.Fatalf("test finding too small: %d", len(full))
	}
	for max := MinMessage; max < len(full)+10; max += 97 {
		fm := &Formatter{Options: MessageOptions{Hostname: "h", PID: 1, MaxSize: max}}
		out, err := fm.Message(f)
		if err != nil {
			t.Fatalf("max %d: %v", max, err)
		}
		if len(out) > max {
			t.Fatalf("max %d: %d octets", max, len(out))
		}
		p := parse5424(t, out) // strict: the cut never splits a UTF-8 sequence
		if len(full) <= max {
			if !bytes.Equal(out, full) || fm.Truncated() != 0 {
				t.Fatalf("max %d: a message that fits was changed", max)
			}
			checkFinding(t, p, f)
			continue
		}
		if fm.Truncated() != 1 {
			t.Fatalf("max %d: truncations counted %d", max, fm.Truncated())
		}
		if p.sd["truncated"] != strconv.Itoa(len(body)) {
			t.Fatalf("max %d: truncated=%q, want %d", max, p.sd["truncated"], len(body))
		}
		checkFinding(t, p, f) // header and SD intact
		if !bytes.HasPrefix(body, p.msg) || !utf8.Valid(p.msg) || len(out) < max-utf8.UTFMax {
			t.Fatalf("max %d: MSG is not the longest prefix of the JSON (%d octets)", max, len(out))
		}
		// Truncating again (a transport with a smaller maximum) keeps the
		// first mark.
		again, err := Truncate(out, MinMessage)
		if err != nil {
			t.Fatal(err)
		}
		if p2 := parse5424(t, again); p2.sd["truncated"] != p.sd["truncated"] || len(again) > MinMessage {
			t.Fatalf("re-truncation: %q", again)
		}
	}

	// 3164 is cut the same way.
	out, err := Message(f, RFC3164, MessageOptions{MaxSize: 1024})
	if err != nil || len(out) > 1024 || !bytes.Contains(out, []byte(` truncated="`+strconv.Itoa(len(body))+`"] {`)) {
		t.Fatalf("3164: %v %q", err, out)
	}
	// Header and SD larger than the maximum: an error, not a broken message.
	long := testFinding(2, "/"+strings.Repeat("ü", 200), 40)
	if _, err := Message(long, RFC5424, MessageOptions{Hostname: strings.Repeat("h", 255), MaxSize: MinMessage}); err == nil ||
		!strings.Contains(err.Error(), "header and structured data need") {
		t.Fatalf("want a clear error, got %v", err)
	}
	if _, err := Message(f, RFC5424, MessageOptions{MaxSize: 100}); err == nil {
		t.Fatal("MaxSize 100 accepted")
	}
	// A foreign message is cut on a character boundary.
	foreign := []byte("<13>1 - - - - - - " + strings.Repeat("é", 400))
	cut, err := Truncate(foreign, 481)
	if err != nil || len(cut) > 481 || !utf8.Valid(cut) {
		t.Fatalf("foreign: %v %d", err, len(cut))
	}
}

func TestSDValues(t *testing.T) {
	f := testFinding(0, "/tmp/\xff\xfebad"+strings.Repeat("x", 300), 0)
	f.Process.PID = -1
	f.RuleID = "AN 0424 with spaces and way more than thirty-two characters"
	f.Upload.Conn.Server = netip.MustParseAddrPort("[2001:2::1]:21")
	raw, err := Message(f, RFC5424, MessageOptions{Hostname: "é[x]"})
	if err != nil {
		t.Fatal(err)
	}
	p := parse5424(t, raw)
	if exe := p.sd["exe"]; !utf8.ValidString(exe) || len(exe) > maxSDValue || !strings.HasPrefix(exe, "/tmp/\uFFFDbad") {
		t.Errorf("exe %q", exe)
	}
	if p.sd["dst"] != "[2001:2::1]:21" || p.sd["rule"] != f.RuleID || deref(p.Hostname) != "---x-" {
		t.Errorf("dst %q rule %q host %q", p.sd["dst"], p.sd["rule"], deref(p.Hostname))
	}
	if got := deref(p.MsgID); got != "AN-0424-with-spaces-and-way-more" {
		t.Errorf("MSGID %q", got)
	}
	// No process, no server: the params are left out, the message stays valid.
	g := testFinding(0, "", 0)
	g.Process = nil
	g.Upload.Conn.Server = netip.AddrPort{}
	g.Created = time.Time{}
	raw, err = Message(g, RFC5424, MessageOptions{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	p = parse5424(t, raw)
	checkFinding(t, p, g)
	if p.Timestamp.Unix() != 1700000000 {
		t.Errorf("timestamp %v", p.Timestamp)
	}
	if _, err := Message(nil, RFC5424, MessageOptions{}); err == nil {
		t.Error("nil finding accepted")
	}
	if _, err := Message(g, Format(9), MessageOptions{}); err == nil {
		t.Error("format 9 accepted")
	}
}

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"": RFC5424, "rfc5424": RFC5424, "RFC3164": RFC3164, "bsd": RFC3164} {
		if got, err := ParseFormat(s); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseFormat("cef"); err == nil {
		t.Error("cef accepted")
	}
}

// FuzzMessage: whatever the finding's fields, the message parses as RFC
// 5424 with go-syslog, the SD params hold the fields, and the MSG is the
// finding's JSON (or its prefix when truncated).
func FuzzMessage(f *testing.F) {
	f.Add("AN0424", "high", "abc", "/usr/bin/curl", "host", int32(42), int64(1000), []byte{198, 18, 0, 2}, uint16(80), 0, int64(1700000000), false)
	f.Add(`A"]\`, "critical", `x]"`, "/tmp/\xff\"]\\", "h h", int32(-5), int64(-1), []byte{}, uint16(0), 481, int64(-62135596800), true)
	f.Add("", "", "", "", "", int32(0), int64(0), []byte{0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(21), 2048, int64(253402300799), false)
	f.Fuzz(func(t *testing.T, rule, sev, id, exe, host string, pid int32, nbytes int64, addr []byte, port uint16, max int, unix int64, noProc bool) {
		fd := testFinding(0, exe, 3)
		fd.RuleID, fd.Severity, fd.ID = rule, sev, id
		fd.Process.PID = pid
		if noProc {
			fd.Process = nil
		}
		fd.Upload.Bytes = nbytes
		fd.Files[0].Path = exe + rule
		fd.Created = time.Unix(int64(uint64(unix)%253402200000), 0) // JSON needs years 0-9999
		if a, ok := netip.AddrFromSlice(addr); ok {
			fd.Upload.Conn.Server = netip.AddrPortFrom(a, port)
		} else {
			fd.Upload.Conn.Server = netip.AddrPort{}
		}
		if max != 0 {
			max = MinMessage + (max&0xffff)%8192
		}
		raw, err := Message(fd, RFC5424, MessageOptions{Hostname: host, MaxSize: max, Now: func() time.Time { return time.Unix(0, 0) }})
		if err != nil {
			if strings.Contains(err.Error(), "header and structured data need") {
				return
			}
			t.Fatal(err)
		}
		if max > 0 && len(raw) > max {
			t.Fatalf("%d octets, max %d", len(raw), max)
		}
		p := parse5424(t, raw)
		body, _ := json.Marshal(fd)
		if !bytes.HasPrefix(body, p.msg) {
			t.Fatalf("MSG is not the JSON's prefix")
		}
		for k, v := range p.sd {
			if k == "truncated" {
				if v != strconv.Itoa(len(body)) {
					t.Fatalf("truncated=%q, JSON %d", v, len(body))
				}
				continue
			}
			w, ok := wantSD(fd)[k]
			if !ok {
				t.Fatalf("unexpected param %s", k)
			}
			w = strings.ToValidUTF8(w, "\uFFFD")
			if len(w) > maxSDValue {
				w = w[:runeCut([]byte(w), maxSDValue)]
			}
			if v != w {
				t.Fatalf("SD %s = %q, want %q", k, v, w)
			}
		}
		if _, cut := p.sd["truncated"]; !cut && !bytes.Equal(body, p.msg) {
			t.Fatal("MSG is not the JSON")
		}
	})
}

var _ = detect.RuleLinux
