package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"exfilwatch/config"
	"exfilwatch/sensor/detect"
)

// runCLI runs the CLI in-process and returns its exit code and stderr.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	errFile := filepath.Join(t.TempDir(), "stderr")
	ef, err := os.Create(errFile)
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = ef
	code := run(append([]string{"exfilwatch", "--log-format", "json"}, args...))
	os.Stderr = saved
	ef.Close()
	b, _ := os.ReadFile(errFile)
	return code, string(b)
}

// recording makes a `run --record` directory from a real capture and a
// journal that attributes every flow of it to proc: what the live sensor
// would have recorded had proc made that traffic. localNets sets the host.
func recording(t *testing.T, capFile string, proc map[string]any, localNets ...string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(capFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, recordCapture), b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, evs, stderr := replayCLI(t, "--no-summary", capFile)
	if code != 0 {
		t.Fatalf("replay %s: exit %d: %s", capFile, code, stderr)
	}
	var j bytes.Buffer
	hdr, _ := json.Marshal(map[string]any{"type": "header", "time": "2026-11-27T00:00:00Z", "version": 1, "host": "lab", "interface": "exh", "local_nets": localNets})
	j.Write(append(hdr, '\n'))
	flows := 0
	sc := bufio.NewScanner(bytes.NewReader(evs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Event struct {
				Dataset string    `json:"dataset"`
				Start   time.Time `json:"start"`
			} `json:"event"`
			Source struct {
				IP   string
				Port uint16
			} `json:"source"`
			Destination struct {
				IP   string
				Port uint16
			} `json:"destination"`
			Network    struct{ Transport string } `json:"network"`
			Exfilwatch struct {
				Flow struct{ ID uint64 } `json:"flow"`
			} `json:"exfilwatch"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event.Dataset != "flow" || ev.Network.Transport != "tcp" {
			continue
		}
		ep := func(a string, p uint16) string { return netip.AddrPortFrom(netip.MustParseAddr(a), p).String() }
		rec, _ := json.Marshal(map[string]any{
			"type": "attribution", "time": ev.Event.Start,
			"flow":   map[string]any{"id": ev.Exfilwatch.Flow.ID, "proto": 6, "client": ep(ev.Source.IP, ev.Source.Port), "server": ep(ev.Destination.IP, ev.Destination.Port), "start": ev.Event.Start},
			"result": map[string]any{"method": "socket_table", "delay_us": 100, "attempts": 1, "pid": proc["pid"], "process": proc},
		})
		j.Write(append(rec, '\n'))
		flows++
	}
	if flows == 0 {
		t.Fatalf("%s: no flows", capFile)
	}
	if err := os.WriteFile(filepath.Join(dir, recordJournal), j.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func proc(pid int, name, exe string) map[string]any {
	return map[string]any{"pid": pid, "ppid": 1, "name": name, "executable": exe, "args": []string{name}, "uid": 1000, "user": "alice"}
}

// Events from replaying real captures with their processes (recordings), then
// learned: one entry per (process, destination) seen often enough, browsers
// and inbound traffic left out, and the file loads and matches as intended.
func TestBaselineLearnFromReplayedCaptures(t *testing.T) {
	repoRoot(t)
	host := []string{"198.18.0.1/32", "2001:2::1/128", "127.0.0.1/32", "::1/128"}
	recs := []string{
		recording(t, "captures/http_curl_put_raw.pcap", proc(101, "curl", "/usr/bin/curl"), host...),   // PUT + POST
		recording(t, "captures/http_curl_multipart.pcap", proc(102, "curl", "/usr/bin/curl"), host...), // multipart POST
		recording(t, "captures/http_python_keepalive.pcap", proc(103, "python3", "/usr/bin/python3.11"), host...),
		recording(t, "captures/ftp_active_port.pcap", proc(104, "backupd", "/opt/backup/bin/backupd"), host...),    // 2 STOR
		recording(t, "captures/http_wget_post.pcap", proc(105, "wget", "/usr/bin/wget"), host...),                  // 1 POST: below --min-count
		recording(t, "captures/http_curl_chunked.pcap", proc(106, "firefox", "/usr/lib/firefox/firefox"), host...), // a browser
		// Seen from the server: inbound, not learned.
		recording(t, "captures/ftp_pasv_noepsv.pcap", proc(107, "vsftpd", "/usr/sbin/vsftpd"), "198.18.0.2/32"),
	}
	events := filepath.Join(t.TempDir(), "normal.jsonl")
	code, stderr := runCLI(t, append([]string{"replay", "--no-summary", "--events", events}, recs...)...)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "baseline.yaml")
	code, stderr = runCLI(t, "baseline", "learn", "--from", events, "--out", out)
	if code != 0 {
		t.Fatalf("baseline learn: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline.yaml:\n%s", b)
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("learned file does not load: %v\n%s", err, b)
	}
	got := map[string]config.AllowEntry{}
	for _, e := range cfg.Allowlist {
		if len(e.Destinations) != 1 || e.TeamID != "" || e.SigningID != "" || e.Name != "" {
			t.Errorf("unexpected entry shape %+v", e)
		}
		got[e.Executable+" -> "+e.Destinations[0]] = e
	}
	want := map[string]string{
		// curl: put_raw PUT 3000 + POST 143360, multipart 20291 (MANIFEST.md).
		"/usr/bin/curl -> 198.18.0.2": "learned: 3 uploads (3 HTTP), 166651 bytes",
		// python3: POST 20000, PUT 143360, multipart POST 23374; the GETs have no body.
		"/usr/bin/python3.11 -> 198.18.0.2": "learned: 3 uploads (3 HTTP), 186734 bytes",
		// backupd: two active-mode STORs (3000 + 20000): the data connections
		// come in from the server, the destination is the control's.
		"/opt/backup/bin/backupd -> 198.18.0.2": "learned: 2 uploads (2 FTP), 23000 bytes",
	}
	for k, prefix := range want {
		e, ok := got[k]
		if !ok {
			t.Errorf("no entry %s", k)
			continue
		}
		if !strings.HasPrefix(e.Reason, prefix) || !strings.Contains(e.Reason, ", first 2026-") || !strings.Contains(e.Reason, ", last 2026-") {
			t.Errorf("%s: reason %q, want prefix %q and first/last seen", k, e.Reason, prefix)
		}
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want only %v", keys(got), keys(want))
	}
	for _, s := range []string{"REVIEW EVERY ENTRY", "# process name: curl", "# process name: backupd"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("output lacks %q", s)
		}
	}
	// The learned allowlist suppresses what it learned, and not the same
	// traffic by a copy of the tool elsewhere.
	al, err := detect.NewAllowlist(cfg.Allowlist, "linux")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := al.Match(&detect.Subject{Name: "curl", Executable: "/usr/bin/curl", DestIP: netip.MustParseAddr("198.18.0.2")}); !ok {
		t.Error("learned curl entry does not match curl")
	}
	if r, ok := al.Match(&detect.Subject{Name: "curl", Executable: "/tmp/curl", DestIP: netip.MustParseAddr("198.18.0.2")}); ok {
		t.Errorf("/tmp/curl allowed by %+v", r)
	}
	if r, ok := al.Match(&detect.Subject{Name: "curl", Executable: "/usr/bin/curl", DestIP: netip.MustParseAddr("198.18.0.3")}); ok {
		t.Errorf("curl to another host allowed by %+v", r)
	}

	// --min-count 1 adds the single wget upload; arguments work like --from.
	code, stderr = runCLI(t, "baseline", "learn", "--min-count", "1", "--out", out, events)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err = config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range cfg.Allowlist {
		found = found || e.Executable == "/usr/bin/wget"
		if e.Executable == "/usr/lib/firefox/firefox" || e.Executable == "/usr/sbin/vsftpd" {
			t.Errorf("learned %s", e.Executable)
		}
	}
	if !found {
		t.Error("--min-count 1: no wget entry")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Host names, code signatures and the cases that must not be learned, on
// hand-made events (the captures have IP hosts and no signatures).
func TestBaselineLearnIdentitiesAndHosts(t *testing.T) {
	ev := func(ts, exe, name, host, ip string, body int, cs string) string {
		proc := fmt.Sprintf(`"process":{"pid":1,"name":%q,"executable":%q%s}`, name, exe, cs)
		if exe == "" {
			proc = fmt.Sprintf(`"process":{"pid":1,"name":%q}`, name)
		}
		return fmt.Sprintf(`{"@timestamp":%q,"event":{"kind":"event","dataset":"http"},"destination":{"ip":%q,"port":80},"network":{"direction":"outbound"},%s,"http":{"request":{"method":"POST","body":{"bytes":%d}}},"url":{"domain":%q}}`,
			ts, ip, proc, body, host)
	}
	dropbox := `,"code_signature":{"signing_id":"com.getdropbox.dropbox","team_id":"G7HH3F8CAK","valid":true}`
	adhoc := `,"code_signature":{"signing_id":"com.getdropbox.dropbox","valid":true}`
	chrome := `,"code_signature":{"signing_id":"com.google.Chrome.helper","team_id":"EQHXZ8M8AV","valid":true}`
	lines := []string{
		ev("2026-11-27T10:00:00Z", "/usr/bin/rsync", "rsync", "NAS.Backup.Example.com", "192.0.2.7", 5000, ""),
		ev("2026-11-27T11:00:00Z", "/usr/bin/rsync", "rsync", "nas.backup.example.com.", "192.0.2.8", 7000, ""),
		ev("2026-11-27T10:30:00Z", "/Applications/Dropbox.app/Contents/MacOS/Dropbox", "Dropbox", "content.dropboxapi.com", "162.125.1.1", 9000, dropbox),
		ev("2026-11-27T10:31:00Z", "/Applications/Dropbox.app/Contents/MacOS/Dropbox", "Dropbox", "content.dropboxapi.com", "162.125.1.2", 9000, dropbox),
		// Ad-hoc "Dropbox" in /tmp: learned by its path, never by the id it claims.
		ev("2026-11-27T10:32:00Z", "/tmp/Dropbox", "Dropbox", "content.dropboxapi.com", "162.125.1.1", 9000, adhoc),
		ev("2026-11-27T10:33:00Z", "/tmp/Dropbox", "Dropbox", "content.dropboxapi.com", "162.125.1.1", 9000, adhoc),
		// Browser helper: never.
		ev("2026-11-27T10:34:00Z", "/Applications/Google Chrome.app/x", "Google Chrome Helper", "example.com", "192.0.2.9", 9000, chrome),
		ev("2026-11-27T10:35:00Z", "/Applications/Google Chrome.app/x", "Google Chrome Helper", "example.com", "192.0.2.9", 9000, chrome),
		// Name only: never.
		ev("2026-11-27T10:36:00Z", "", "backupd", "example.com", "192.0.2.9", 9000, ""),
		ev("2026-11-27T10:37:00Z", "", "backupd", "example.com", "192.0.2.9", 9000, ""),
		// A Host header that would be a glob: the IP is learned instead.
		ev("2026-11-27T10:38:00Z", "/usr/local/bin/sync [beta]", "sync", "*.example.com", "192.0.2.10", 9000, ""),
		ev("2026-11-27T10:39:00Z", "/usr/local/bin/sync [beta]", "sync", "*.example.com", "192.0.2.10", 9000, ""),
		// Too small.
		ev("2026-11-27T10:40:00Z", "/usr/bin/small", "small", "example.com", "192.0.2.9", 100, ""),
		ev("2026-11-27T10:41:00Z", "/usr/bin/small", "small", "example.com", "192.0.2.9", 100, ""),
		`{"event":{"dataset":"flow"},"destination":{"ip":"192.0.2.9"}}`,
		"",
	}
	in := filepath.Join(t.TempDir(), "ev.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b.yaml")
	code, stderr := runCLI(t, "baseline", "learn", "--from", in, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(out)
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var got []string
	for _, e := range cfg.Allowlist {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s", e.Executable, e.TeamID, e.SigningID, strings.Join(e.Destinations, ","), e.Reason))
	}
	// Most uploads first, then by identity and destination.
	want := []string{
		`/tmp/Dropbox|||content.dropboxapi.com,162.125.1.1|learned: 2 uploads (2 HTTP), 18000 bytes, first 2026-11-27T10:32:00Z, last 2026-11-27T10:33:00Z`,
		`/usr/bin/rsync|||nas.backup.example.com,192.0.2.7,192.0.2.8|learned: 2 uploads (2 HTTP), 12000 bytes, first 2026-11-27T10:00:00Z, last 2026-11-27T11:00:00Z`,
		`/usr/local/bin/sync \[beta\]|||192.0.2.10|learned: 2 uploads (2 HTTP), 18000 bytes, first 2026-11-27T10:38:00Z, last 2026-11-27T10:39:00Z`,
		`|G7HH3F8CAK|com.getdropbox.dropbox|content.dropboxapi.com,162.125.1.1,162.125.1.2|learned: 2 uploads (2 HTTP), 18000 bytes, first 2026-11-27T10:30:00Z, last 2026-11-27T10:31:00Z`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s\nfile:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), b)
	}
	// The escaped path matches the real file name, literally.
	al, err := detect.NewAllowlist(cfg.Allowlist, "linux")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := al.Match(&detect.Subject{Executable: "/usr/local/bin/sync [beta]", DestIP: netip.MustParseAddr("192.0.2.10")}); !ok {
		t.Error("escaped executable does not match itself")
	}
	if _, ok := al.Match(&detect.Subject{Executable: "/usr/local/bin/sync b", DestIP: netip.MustParseAddr("192.0.2.10")}); ok {
		t.Error("escaped executable matched as a glob")
	}
}

func TestBaselineLearnBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"event":{"dataset":"flow"}}`+"\n"), 0o600)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"event":{"dataset":"flow"}}`+"\n\n"+`{"event":{"dataset":"http"},"http":`+"\n"), 0o600)
	notEvent := filepath.Join(dir, "not.jsonl")
	os.WriteFile(notEvent, []byte("[1,2]\n"), 0o600)
	noDataset := filepath.Join(dir, "nods.jsonl")
	os.WriteFile(noDataset, []byte(`{"a":1}`), 0o600)
	long := filepath.Join(dir, "long.jsonl")
	os.WriteFile(long, append(append([]byte(`{"event":{"dataset":"flow"}}`+"\n"), bytes.Repeat([]byte("x"), maxBaselineLine+10)...), '\n'), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--from", good, "--from", filepath.Join(dir, "missing.jsonl")}, 1, "missing.jsonl: no such file or directory"},
		{[]string{"--from", bad}, 1, "bad.jsonl:3: bad event JSON: unexpected end of JSON input"},
		{[]string{notEvent}, 1, "not.jsonl:1: not an event (a JSON object per line expected)"},
		{[]string{noDataset}, 1, "nods.jsonl:1: not an exfilwatch event (no event.dataset)"},
		{[]string{long}, 1, fmt.Sprintf("long.jsonl:2: line longer than %d bytes", maxBaselineLine)},
		{[]string{dir}, 1, "is a directory"},
		{nil, 2, "baseline learn: no event file given"},
		{[]string{"--min-count", "0", good}, 2, "--min-count must be at least 1"},
		{[]string{"--out", filepath.Join(dir, "no", "such", "dir.yaml"), good}, 2, "--out:"},
	} {
		code, stderr := runCLI(t, append([]string{"baseline", "learn"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
		var errLines int
		for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if strings.Contains(l, `"level":"error"`) || strings.HasPrefix(l, "exfilwatch:") {
				errLines++
			}
		}
		if errLines != 1 || strings.Contains(stderr, "panic") {
			t.Errorf("%v: want one error line, got %q", c.args, stderr)
		}
	}
}

// An empty period gives an empty, loadable allowlist.
func TestBaselineLearnNothing(t *testing.T) {
	in := filepath.Join(t.TempDir(), "e.jsonl")
	os.WriteFile(in, nil, 0o600)
	l := newLearner(1024)
	if err := l.readFile(in); err != nil {
		t.Fatal(err)
	}
	b, err := l.yaml(2, []string{in})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b, "x")
	if err != nil || len(cfg.Allowlist) != 0 || !strings.Contains(string(b), "allowlist: []") {
		t.Errorf("%v %+v\n%s", err, cfg, b)
	}
}

func FuzzBaselineRead(f *testing.F) {
	f.Add([]byte(`{"@timestamp":"2026-11-27T10:00:00Z","event":{"dataset":"http"},"destination":{"ip":"192.0.2.7"},"process":{"name":"x","executable":"/x"},"http":{"request":{"method":"POST","body":{"bytes":5000}}},"url":{"domain":"a.example.com"}}` + "\n"))
	f.Add([]byte(`{"event":{"dataset":"ftp_data"},"ftp":{"direction":"upload"},"network":{"bytes":9999},"destination":{"ip":"::ffff:1.2.3.4"},"process":{"executable":"/a/*[b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := newLearner(0)
		if err := l.read(bytes.NewReader(b), "f"); err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		out, err := l.yaml(1, []string{"f"})
		if err != nil {
			t.Fatalf("learned output does not validate: %v", err)
		}
		if _, err := config.Parse(out, "out"); err != nil {
			t.Fatal(err)
		}
	})
}
