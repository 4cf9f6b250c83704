package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Golden files are reviewed by hand against captures/MANIFEST.md before they
// are committed; -update rewrites them for that review, never to make a
// failing test pass.
var update = flag.Bool("update", false, "rewrite captures/golden/*.jsonl from the current output (then review them by hand)")

// repoRoot makes paths in events ("exfilwatch.pcap.file") independent of
// where the test runs.
func repoRoot(t *testing.T) {
	t.Helper()
	t.Chdir(filepath.Join("..", ".."))
}

func goldenCaptures(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"captures/*.pcap", "captures/*.pcapng", "captures/*.pcap.gz", "captures/demo/*.pcapng"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("only %d captures found", len(files))
	}
	return files
}

// replay runs the CLI in-process and returns its exit code, events and stderr.
func replayCLI(t *testing.T, args ...string) (code int, events []byte, stderr string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "events.jsonl")
	errFile := filepath.Join(t.TempDir(), "stderr")
	ef, err := os.Create(errFile)
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = ef
	code = run(append([]string{"exfilwatch", "--log-format", "json", "replay", "--events", out}, args...))
	os.Stderr = saved
	ef.Close()
	events, _ = os.ReadFile(out)
	e, _ := os.ReadFile(errFile)
	return code, events, string(e)
}

func TestGoldenEvents(t *testing.T) {
	repoRoot(t)
	for _, capFile := range goldenCaptures(t) {
		t.Run(capFile, func(t *testing.T) {
			code, got, stderr := replayCLI(t, capFile)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("internal error: %s", stderr)
			}
			checkJSONLines(t, got)
			golden := filepath.Join("captures", "golden", strings.TrimPrefix(filepath.Base(capFile), "")+".jsonl")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (review the output, then run go test -run TestGoldenEvents -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) || i < len(wl); i++ {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s", golden, i+1, g, w)
					}
				}
			}
		})
	}
}

// checkJSONLines asserts every line is a JSON object with a dataset.
func checkJSONLines(t *testing.T, b []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var ev struct {
			Event struct{ Dataset string } `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v", n, err)
		}
		switch ev.Event.Dataset {
		case "http", "ftp", "ftp_data", "flow":
		default:
			t.Fatalf("line %d: dataset %q", n, ev.Event.Dataset)
		}
	}
	if n == 0 {
		t.Fatal("no events")
	}
}

func TestGzipGivesTheSameEvents(t *testing.T) {
	repoRoot(t)
	_, plain, _ := replayCLI(t, "captures/http_curl_multipart.pcap")
	_, gz, _ := replayCLI(t, "captures/http_curl_multipart.pcap.gz")
	plain = bytes.ReplaceAll(plain, []byte(`http_curl_multipart.pcap"`), []byte(`X"`))
	gz = bytes.ReplaceAll(gz, []byte(`http_curl_multipart.pcap.gz"`), []byte(`X"`))
	if len(plain) == 0 || !bytes.Equal(plain, gz) {
		t.Fatalf("gzip replay differs:\n%s\n%s", plain, gz)
	}
}

func TestBadInputOneLineErrorAndOthersKept(t *testing.T) {
	dir := t.TempDir()
	good, err := filepath.Abs(filepath.Join("..", "..", "captures", "http_curl_multipart.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownLink := append([]byte(nil), goodBytes...)
	unknownLink[20], unknownLink[21], unknownLink[22], unknownLink[23] = 0x39, 0x30, 0, 0 // link type 12345
	var gzTrunc bytes.Buffer
	zw := gzip.NewWriter(&gzTrunc)
	zw.Write(goodBytes)
	zw.Close()
	cases := []struct {
		name, path, want string
		keepsEvents      bool
	}{
		{"missing", filepath.Join(dir, "nope.pcap"), "no such file or directory", false},
		{"empty", write("empty.pcap", nil), "empty file", false},
		{"not a capture", write("text.pcap", []byte("hello, this is not a capture\n")), "not a pcap or pcapng file", false},
		{"header only half", write("half.pcap", goodBytes[:10]), "pcap header: truncated header", false},
		{"truncated last record", write("trunc.pcap", goodBytes[:len(goodBytes)-100]), "truncated: the last record is incomplete (record ", true},
		{"truncated gzip", write("trunc.pcap.gz", gzTrunc.Bytes()[:gzTrunc.Len()-40]), "truncated", true},
		{"unknown link type", write("link.pcap", unknownLink), "unsupported link type 12345", false},
		{"directory", dir, "is a directory", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, events, stderr := replayCLI(t, c.path, good)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, stderr)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if strings.Contains(l, `"level":"error"`) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.Contains(lines[0], filepath.Base(c.path)) {
				t.Fatalf("want one error line naming the file and %q, got:\n%s", c.want, stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
				t.Fatalf("stack trace in output: %s", stderr)
			}
			// The good file after it is still decoded.
			if n := bytes.Count(events, []byte(`"dataset":"http"`)); c.keepsEvents && n < 2 || !c.keepsEvents && n != 1 {
				t.Fatalf("%d http events", n)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"exfilwatch", "replay"},
		{"exfilwatch", "--log-level", "loud", "replay", "x.pcap"},
		{"exfilwatch", "replay", "--max-flows", "0", "x.pcap"},
		{"exfilwatch", "replay", "--no-such-flag", "x.pcap"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestBinaryHelpAndVersion runs the built binary: --help must explain every
// flag, and version must answer.
func TestBinaryHelpAndVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "exfilwatch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "replay", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("replay --help: %v", err)
	}
	for _, f := range []string{"--events", "--max-flows", "--max-buffer-per-flow", "--max-buffer-total", "--tcp-idle-timeout", "--udp-idle-timeout", "--verify-checksums", "--max-expected-ftp-data", "--no-summary"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("replay --help does not explain %s", f)
		}
	}
	out, _ = exec.Command(bin, "--help").CombinedOutput()
	for _, f := range []string{"--log-level", "--log-format", "replay", "version"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("--help does not explain %s", f)
		}
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "exfilwatch ") {
		t.Fatalf("version: %q %v", out, err)
	}
	_ = io.Discard
}

// TestAppleSamplesAttributedFromMetadata replays captures written by Apple's
// tcpdump (in the team's shared reference folder, beside the checkout): each
// flow is attributed from the per-packet process metadata, delegated sockets
// to the app they work for, and loopback packets seen twice count once.
func TestAppleSamplesAttributedFromMetadata(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "reference", "macos-samples")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared reference samples not beside the checkout (%v)", err)
	}
	want := map[string][]string{ // file → "pid name" of each flow, in order
		"apple_tcpdump_radar-101007576-iperf.pcapng":       {"53245 iperf"},
		"gopacket_pktap_v1_chrome_helper_linktype258.pcap": {"2227 Google Chrome He"},
		"apple_tcpdump_radar-88502733.pcapng":              {"554 packetdrill"},
	}
	for file, flows := range want {
		code, out, stderr := replayCLI(t, filepath.Join(dir, file))
		if code != 0 {
			t.Fatalf("%s: exit %d %s", file, code, stderr)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var e struct {
				Event   struct{ Dataset string }
				Process struct {
					PID  int
					Name string
				}
				Network struct{ Packets int }
			}
			json.Unmarshal([]byte(l), &e)
			if e.Event.Dataset == "flow" {
				got = append(got, fmt.Sprintf("%d %s", e.Process.PID, e.Process.Name))
				if file == "apple_tcpdump_radar-101007576-iperf.pcapng" && e.Network.Packets != 12 {
					t.Errorf("iperf loopback flow has %d packets, want 12 (24 captured, each twice)", e.Network.Packets)
				}
			}
		}
		if strings.Join(got, ",") != strings.Join(flows, ",") {
			t.Errorf("%s: flows attributed to %v, want %v", file, got, flows)
		}
	}
}
