package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lab is the test network: a "host" namespace (the sensor and the clients;
// it stands for the Mac) and a "remote" namespace (servers) joined by a veth
// pair, addressed from 198.18.0.0/15 and 2001:2::/48, with no default route.
// The test creates it and removes it.
type lab struct {
	t               *testing.T
	host, remote    string
	hostIf, remIf   string
	hostIP, remIP   string
	hostIP6, remIP6 string
}

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("live lab test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("live lab test needs root (network namespaces, AF_PACKET); make test runs it as root")
	}
	for _, tool := range []string{"ip", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run make deps", tool)
		}
	}
}

func newLab(t *testing.T, subnet int) *lab {
	t.Helper()
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, subnet)
	l := &lab{
		t: t, host: "exfw-t-host-" + id, remote: "exfw-t-rem-" + id,
		hostIf: "exfwh" + id, remIf: "exfwr" + id,
		hostIP: fmt.Sprintf("198.18.%d.1", subnet), remIP: fmt.Sprintf("198.18.%d.2", subnet),
		hostIP6: fmt.Sprintf("2001:2:0:%x::1", subnet), remIP6: fmt.Sprintf("2001:2:0:%x::2", subnet),
	}
	if len(l.hostIf) > 15 {
		l.hostIf, l.remIf = l.hostIf[:15], l.remIf[:15]
	}
	t.Cleanup(l.destroy)
	l.must("ip", "netns", "add", l.host)
	l.must("ip", "netns", "add", l.remote)
	l.must("ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", l.remIf)
	l.must("ip", "link", "set", l.hostIf, "netns", l.host)
	l.must("ip", "link", "set", l.remIf, "netns", l.remote)
	for _, ns := range []struct{ ns, ifc, v4, v6 string }{{l.host, l.hostIf, l.hostIP, l.hostIP6}, {l.remote, l.remIf, l.remIP, l.remIP6}} {
		l.must("ip", "-n", ns.ns, "addr", "add", ns.v4+"/24", "dev", ns.ifc)
		l.must("ip", "-n", ns.ns, "addr", "add", ns.v6+"/64", "dev", ns.ifc, "nodad")
		l.must("ip", "-n", ns.ns, "link", "set", ns.ifc, "up")
		l.must("ip", "-n", ns.ns, "link", "set", "lo", "up")
	}
	// Both ends must answer before any test traffic is sent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err4 := exec.Command("ip", "netns", "exec", l.host, "ping", "-c1", "-W1", l.remIP).Run()
		err6 := exec.Command("ip", "netns", "exec", l.host, "ping", "-6", "-c1", "-W1", l.remIP6).Run()
		if err4 == nil && err6 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab namespaces not reachable: v4 %v v6 %v", err4, err6)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return l
}

func (l *lab) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *lab) destroy() {
	exec.Command("ip", "netns", "pids", l.host).Run()
	for _, ns := range []string{l.host, l.remote} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", p).Run()
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// in runs a command in a namespace.
func (l *lab) in(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// httpServer starts a python3 upload server in the remote namespace.
func (l *lab) httpServer(port int) {
	l.t.Helper()
	srv, err := filepath.Abs(filepath.Join("..", "..", "captures", "lab", "upload_server.py"))
	if err != nil {
		l.t.Fatal(err)
	}
	var errb bytes.Buffer
	for _, bind := range []string{l.remIP, l.remIP6} { // the server is single-stack
		cmd := l.in(l.remote, "python3", srv, "--port", fmt.Sprint(port), "--bind", bind)
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			l.t.Fatal(err)
		}
		l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("ip", "netns", "exec", l.host, "curl", "-s", "-o", "/dev/null", fmt.Sprintf("http://%s:%d/status", l.remIP, port)).Run() != nil {
		if time.Now().After(deadline) {
			l.t.Fatalf("upload server did not start: %s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "exfilwatch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func readEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		evs = append(evs, m)
	}
	return evs
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// TestRunLiveCapture runs `exfilwatch run` on the host namespace's veth while
// real curl and python3 clients upload to a real server in the remote
// namespace, then stops it with SIGINT: the uploads must be in the events,
// and the open flows flushed.
func TestRunLiveCapture(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	l := newLab(t, 200)
	l.httpServer(8080)
	evFile := filepath.Join(t.TempDir(), "events.jsonl")
	var stderr bytes.Buffer
	sensor := l.in(l.host, bin, "--log-format", "json", "run", "--interface", l.hostIf, "--events", evFile, "--stats-interval", "1s")
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, `"message":"capturing"`)
	time.Sleep(300 * time.Millisecond) // the ring is bound once "capturing" is logged
	payload := filepath.Join(t.TempDir(), "doc.bin")
	os.WriteFile(payload, bytes.Repeat([]byte("confidential "), 2000), 0o644) // 26000 bytes
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.host, "curl", "-sS", "-F", "file=@"+payload, fmt.Sprintf("http://%s:8080/upload/live", l.remIP)).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.host, "python3", "-c",
		fmt.Sprintf(`import http.client; c=http.client.HTTPConnection("%s",8080); c.request("PUT","/put/live6",body=b"x"*5000); print(c.getresponse().status)`, l.remIP6)).CombinedOutput(); err != nil {
		t.Fatalf("python3: %v %s", err, out)
	}
	// A connection still open at SIGINT must be flushed.
	hold := l.in(l.host, "python3", "-c", fmt.Sprintf(`import socket,time; s=socket.create_connection(("%s",8080)); s.sendall(b"POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+b"y"*3000); time.sleep(30)`, l.remIP))
	hold.Start()
	defer func() { hold.Process.Kill(); hold.Wait() }()
	time.Sleep(700 * time.Millisecond)
	sensor.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- sensor.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		sensor.Process.Kill()
		t.Fatalf("run did not stop on SIGINT\n%s", stderr.String())
	}
	evs := readEvents(t, evFile)
	var multipart, put6, open bool
	for _, e := range evs {
		if get(e, "event", "dataset") != "http" {
			continue
		}
		switch get(e, "url", "original") {
		case "/upload/live":
			parts, _ := get(e, "exfilwatch", "multipart").([]any)
			if len(parts) == 1 && get(parts[0].(map[string]any), "bytes") == float64(26000) && get(e, "http", "response", "status_code") == float64(200) && get(e, "network", "direction") == "outbound" {
				multipart = true
			}
		case "/put/live6":
			put6 = get(e, "http", "request", "body", "bytes") == float64(5000) && get(e, "network", "type") == "ipv6"
		case "/open":
			open = get(e, "http", "request", "body", "bytes") == float64(3000) && get(e, "http", "response") == nil
		}
	}
	if !multipart || !put6 || !open {
		t.Fatalf("events missing (multipart %v, ipv6 put %v, open at SIGINT %v):\n%d events\n%s", multipart, put6, open, len(evs), stderr.String())
	}
	if !strings.Contains(stderr.String(), `"kernel_received"`) || !strings.Contains(stderr.String(), `"message":"stopped"`) {
		t.Fatalf("no kernel counters logged:\n%s", stderr.String())
	}
}

func waitFor(t *testing.T, b *bytes.Buffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in:\n%s", s, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
