// Package captures_test replays the real captures in captures/ through the
// sensor, in process, and compares its events with the facts that
// captures/lab/manifest.py extracted independently (tshark, payload files,
// server logs) into captures/expected/<capture>.facts.json.
//
//	go test ./captures/                  committed captures (no root needed)
//	go test ./captures/ -run Lab -v      re-records the lab first (root, netns)
//
// TestLabRecordingDecodes is skipped under -short and when not root.
package captures_test

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
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCapturesMatchFacts replays every committed capture and checks its
// http, ftp and ftp_data events and flow summaries against its facts file,
// then checks that each .pcap.gz gives the same events as its .pcap.
func TestCapturesMatchFacts(t *testing.T) {
	if n := checkCaptures(t, "."); n == 0 {
		t.Fatal("no facts files in expected/")
	}
	if n := checkGzipCopies(t, "."); n == 0 {
		t.Error("no .gz capture to compare")
	}
}

// labTimeout bounds record.sh (it takes 1-3 minutes; more when it has to
// install packages first).
const labTimeout = 9 * time.Minute

// TestLabRecordingDecodes is the end-to-end test with real components: it
// runs captures/record.sh (curl, wget, python3 against upload_server.py and
// vsftpd in two fresh network namespaces, tcpdump/dumpcap recording) into a
// temporary directory (EXFW_REC_OUT; the committed captures are not touched),
// then replays every fresh capture and checks it against the facts that the
// same run's manifest.py wrote, exactly as TestCapturesMatchFacts does. It
// also checks that every fact marked stable equals the committed one.
//
// record.sh names its namespaces and veths after its PID, so parallel runs do
// not collide, and removes them (and every process it started) on exit.
func TestLabRecordingDecodes(t *testing.T) {
	if testing.Short() {
		t.Skip("re-records the capture lab (1-3 minutes); skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("re-recording needs root (network namespaces, veth, tcpdump, vsftpd): run as root without -short")
	}
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		t.Skipf("cannot create a network namespace here (unshare --net: %v)", err)
	}
	script, err := filepath.Abs("record.sh")
	if err != nil {
		t.Fatal(err)
	}
	before := treeHashes(t, ".")

	timeout := labTimeout
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 30*time.Second; left < timeout {
			timeout = left
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := filepath.Join(t.TempDir(), "captures")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "EXFW_REC_OUT="+out)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	// On timeout, SIGTERM the script's process group: its trap then kills
	// what it started and deletes its namespaces (SIGKILL would leak them).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(100 * time.Millisecond)
	t.Logf("record.sh took %s", took)
	if err != nil {
		t.Fatalf("record.sh (EXFW_REC_OUT=%s) failed after %s: %v\n%s", out, took, err, tail(log.String(), 60))
	}
	if testing.Verbose() {
		t.Logf("record.sh output (tail):\n%s", tail(log.String(), 25))
	}

	// the fresh captures against the fresh facts
	n := checkCaptures(t, out)
	if committed := len(loadFacts(t, ".")); n != committed {
		t.Errorf("the lab wrote %d facts files, %d are committed", n, committed)
	}
	checkGzipCopies(t, out)

	// the payloads are made deterministically
	for _, name := range []string{"keys.tar", "notes.txt", "report.pdf"} {
		a, err1 := os.ReadFile(filepath.Join("payloads", name))
		b, err2 := os.ReadFile(filepath.Join(out, "payloads", name))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("payloads/%s differs from the fresh one (%v, %v)", name, err1, err2)
		}
	}

	// facts marked stable must not change on re-record
	t.Run("stable facts", func(t *testing.T) { compareStable(t, ".", out) })

	if after := treeHashes(t, "."); !reflect.DeepEqual(before, after) {
		t.Errorf("the committed captures changed during the lab run: %s", diffKeys(before, after))
	}
}

// compareStable compares two recordings' facts files: same number of facts
// in each list, and every field equal except those a fact names "unstable".
func compareStable(t *testing.T, committedRoot, freshRoot string) {
	load := func(root string) map[string]map[string]any {
		paths, _ := filepath.Glob(filepath.Join(root, "expected", "*.facts.json"))
		m := map[string]map[string]any{}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			m[filepath.Base(p)] = v
		}
		return m
	}
	old, fresh := load(committedRoot), load(freshRoot)
	names := make([]string, 0, len(old))
	for n := range old {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		nf, ok := fresh[name]
		if !ok {
			t.Errorf("%s: not written by the lab run", name)
			continue
		}
		for _, list := range []string{"http", "ftp", "ftp_data", "connections"} {
			a, _ := old[name][list].([]any)
			b, _ := nf[list].([]any)
			if len(a) != len(b) {
				t.Errorf("%s: %s: %d facts committed, %d recorded", name, list, len(a), len(b))
				continue
			}
			for i := range a {
				x, _ := a[i].(map[string]any)
				y, _ := b[i].(map[string]any)
				skip := map[string]bool{"stable": true, "unstable": true}
				for _, m := range []map[string]any{x, y} {
					u, _ := m["unstable"].([]any)
					for _, k := range u {
						skip[fmt.Sprint(k)] = true
					}
				}
				if !reflect.DeepEqual(x["unstable"], y["unstable"]) {
					t.Errorf("%s: %s #%d: unstable fields %v committed, %v recorded", name, list, i+1, x["unstable"], y["unstable"])
				}
				keys := map[string]bool{}
				for k := range x {
					keys[k] = true
				}
				for k := range y {
					keys[k] = true
				}
				for k := range keys {
					if !skip[k] && !reflect.DeepEqual(x[k], y[k]) {
						t.Errorf("%s: %s #%d: %s is %v committed, %v recorded (marked stable)", name, list, i+1, k, x[k], y[k])
					}
				}
			}
		}
	}
}

// treeHashes hashes the files record.sh installs by default (captures,
// payloads, MANIFEST.md, facts), which a lab run with EXFW_REC_OUT must not
// touch. Other files in captures/ are left out: other work may change them.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, pat := range []string{"*.pcap", "*.pcapng", "*.gz", "demo/*", "payloads/*", "MANIFEST.md", "expected/*.facts.json"} {
		paths, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			m[p] = hex.EncodeToString(sum[:])
		}
	}
	if len(m) == 0 {
		t.Fatalf("no committed captures under %s", root)
	}
	return m
}

func diffKeys(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+" (new)")
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
