package detect

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/sensor/events"
)

var updateHandmade = flag.Bool("update-handmade", false, "rewrite testdata/golden/handmade_*.json from json.Marshal of the findings")

var hmT = time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)

// handmadeFindings exercise every optional part of the document, and the
// strings encoding/json escapes (HTML characters, control characters,
// U+2028/U+2029, invalid UTF-8).
func handmadeFindings() map[string]*Finding {
	weird := "/Users/bob/Dоcuments/<script>&\"x\"\\y\x00\x01\x1f\x7f\u2028\u2029é\xff\xfe\xe2\x80/ünï 漢字 🙂.pdf"
	sig := &Finding{
		ID: "mac-http-full", RuleID: RuleMacOS, GOOS: "darwin", Created: hmT, Severity: SeverityCritical, Score: 9,
		Reasons: []Reason{{Code: "sensitive_read", Description: "read <keychain> & \"ssh\" key", Weight: 3},
			{Code: "lineage_read", Description: "explains only\n\ttab", Weight: 0},
			{Code: "signed", Description: "signed by a team", Weight: -2}},
		Process: &attribution.Process{PID: 501, PPID: 1, Name: "python3", Executable: "/usr/bin/python3",
			Args: []string{"python3", "-c", "import os; print('<&>')", weird}, CWD: "/Users/bob",
			StartTime: time.Date(2026, 1, 2, 3, 0, 0, 0, time.FixedZone("X", 3600)), UID: 501, User: "bob", PGID: 500},
		Parent: &attribution.Process{PID: 400, Name: "zsh", Executable: "/bin/zsh", Args: []string{"-zsh"},
			StartTime: time.Date(2026, 1, 2, 2, 0, 0, 123, time.UTC)},
		Lineage: []*attribution.Process{
			{PID: 400, Name: "zsh", Executable: "/bin/zsh"},
			nil,
			{PID: 300, Name: "Terminal", Executable: "/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal",
				StartTime: time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		},
		Attribution: "pktap",
		Code:        &attribution.CodeSignature{SigningID: "com.apple.python3", TeamID: "", Valid: true, Platform: true},
		Script:      &attribution.Script{Interpreter: "python", Inline: "import os; print('<&>')\nx=1"},
		Files: []File{
			{Path: "/Users/bob/Library/Keychains/login.keychain-db", Class: "keychains", Time: hmT.Add(-time.Second),
				Access: "read", Size: 4096, Hashed: true, SHA256: [32]byte{1, 2, 3, 0xff}, ContentMatch: true,
				PID: 501, ProcessName: "python3", Executable: "/usr/bin/python3", Relation: RelSelf, Source: "eslogger"},
			{Path: weird, Class: "documents", Time: hmT.Add(-2 * time.Second), Access: "open", Size: 0, Hashed: true,
				PID: 502, ProcessName: "cp", Relation: RelChild},
			{Path: "relative.txt", Class: "documents", Access: "read", Size: 0, PID: 0},
			{Path: "/", Class: "x"},
			{Path: "", Class: ""},
		},
		BytesRead: 4096,
		Upload: upload{Protocol: "http",
			Conn: events.Conn{FlowID: 7, Client: netip.MustParseAddrPort("[2001:2::1]:51234"),
				Server: netip.MustParseAddrPort("[2001:2::2]:8443"), IPv6: true, Transport: "tcp", Direction: "outbound"},
			Start: hmT.Add(-time.Second), End: hmT.Add(-time.Millisecond), Bytes: 123456,
			Hashes: []contentHash{{Where: "http.request.body", SHA256: [32]byte{9, 9}},
				{Where: "multipart part \"file\" <report.pdf>", SHA256: [32]byte{8}}},
			FlowIDs: []uint64{7, 18446744073709551615}, Method: "PUT", Target: "/up/load?x=<1>&y=2#frag",
			Host: "[2001:2::2]:8443", UserAgent: "Python-urllib/3.12 <&>", ContentType: " Application/JSON ; charset=utf-8"},
		DestinationName:  "exfil.example",
		DestinationHosts: []string{"exfil.example", "cdn.exfil.example"},
		ContentMatch:     &ContentMatch{Where: "http.request.body", Path: weird, SHA256: [32]byte{0xab}},
		Source:           "captures/<x>&y.pcapng",
	}
	ftp := &Finding{
		ID: "linux-ftp-module", RuleID: RuleLinux, GOOS: "linux", Created: hmT, Severity: SeverityMedium, Score: 3,
		Reasons: []Reason{{Code: "network_tool", Description: "curl", Weight: 1}},
		Process: &attribution.Process{PID: 1234, PPID: 1000, Name: "python3", Executable: "/usr/bin/python3.12",
			Args: []string{"python3", "-m", "ftplib_up"}, UID: 0, User: "root"},
		Attribution: "socket_table",
		Script:      &attribution.Script{Interpreter: "python", Module: "ftplib_up"},
		Files: []File{{Path: "/root/.ssh/id_ed25519", Class: "ssh", Time: hmT.Add(-3 * time.Second), Access: "read",
			Size: 411, Hashed: false, PID: 1234, Relation: RelSelf, Source: "fanotify"}},
		BytesRead: 411,
		Upload: upload{Protocol: "ftp",
			Conn:  events.Conn{FlowID: 3, Client: netip.MustParseAddrPort("198.18.0.1:40000"), Server: netip.MustParseAddrPort("198.18.0.2:21")},
			Start: hmT.Add(-2 * time.Second), End: hmT, Bytes: 411,
			Hashes:  []contentHash{{Where: "ftp data", SHA256: [32]byte{1}}, {Where: "ftp data 2", SHA256: [32]byte{2}}},
			FlowIDs: []uint64{3, 4}, FTPCommand: "STOU", FTPFile: "id_ed25519", FTPStoredAs: "id_ed25519.1"},
	}
	bare := &Finding{ID: "", RuleID: "", GOOS: "", Severity: "", Upload: upload{Protocol: "tcp"}}
	noParentLinuxHTTP := &Finding{
		ID: "http-abs-url", RuleID: RuleLinux, GOOS: "linux", Created: hmT, Severity: SeverityLow,
		Reasons: []Reason{},
		Process: &attribution.Process{PID: 77, PPID: 76, Name: "wget", UID: 1000},
		Files:   []File{},
		Upload: upload{Protocol: "http",
			Conn:  events.Conn{Client: netip.MustParseAddrPort("198.18.0.1:1"), Server: netip.MustParseAddrPort("198.18.0.2:80"), Transport: "udp"},
			Start: hmT, End: hmT, Method: "POST", Target: "https://h.example", Host: "h.example:80"},
		DestinationHosts: []string{},
	}
	absPath := &Finding{
		ID: "http-abs-path", RuleID: RuleMacOS, GOOS: "darwin", Created: hmT, Severity: SeverityHigh,
		Process: &attribution.Process{PID: 88, Name: "curl", User: "x"},
		Upload: upload{Protocol: "http",
			Conn:   events.Conn{Client: netip.MustParseAddrPort("198.18.0.1:1"), Server: netip.MustParseAddrPort("198.18.0.2:80")},
			Start:  hmT, End: hmT, Method: "POST", Target: "http://h.example/a/b?c#d", Host: "",
			Hashes: []contentHash{{Where: "multipart part", SHA256: [32]byte{5}}}},
	}
	v6NoHost := &Finding{
		ID: "http-v6-nohost", RuleID: RuleLinux, GOOS: "linux", Created: hmT,
		Process: &attribution.Process{PID: 99},
		Parent:  &attribution.Process{PID: 98, Name: "sh"},
		Upload: upload{Protocol: "http",
			Conn:  events.Conn{Client: netip.MustParseAddrPort("[2001:2::1]:1"), Server: netip.MustParseAddrPort("[2001:2::9]:8080"), IPv6: true},
			Start: hmT, End: hmT, Method: "POST", Target: "/x"},
	}
	return map[string]*Finding{"mac_http_full": sig, "linux_ftp_module": ftp, "bare": bare,
		"linux_http_abs_url": noParentLinuxHTTP, "mac_http_abs_path": absPath, "http_v6_nohost": v6NoHost}
}

func TestHandmadeFindingGoldens(t *testing.T) {
	for name, f := range handmadeFindings() {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			p := filepath.Join("testdata", "golden", "handmade_"+name+".json")
			if *updateHandmade {
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s differs:\n got %s\nwant %s", p, b, want)
			}
		})
	}
}
