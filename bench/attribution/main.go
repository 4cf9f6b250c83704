//go:build linux

// Command attribution is the process-attribution benchmark of exfilwatch
// (`make bench-attribution`, bench/attribution.sh; see README.md here).
//
// It builds a two-namespace lab, runs `exfilwatch run` on the host side's
// veth, launches N short-lived client processes there (lifetimes 5 ms, 20 ms,
// 50 ms, 200 ms and 1 s), each making one HTTP upload with a unique path,
// samples `ss -tnp` alongside as the peer, then matches every upload's event
// to the client's pid. It prints the attributed share per lifetime, the
// lookup delays, the peer's share, the targets with PASS/FAIL, and the
// sensor's CPU use on the idle interface.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var lifetimes = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, time.Second}

type config struct {
	n, conc, body, subnet, port  int
	seed                         uint64
	idle, ssInterval, settle     time.Duration
	v6Every                      int
	exfilwatch, client, server   string
	out, work                    string
	hostNS, remNS, hostIf, remIf string
	nethogs                      string // auto, 1, 0
	record                       bool
	sensorArgs                   []string
	niceQuiet                    bool
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fatalf("%s must be a number, not %q", name, v)
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		if n, err := strconv.Atoi(v); err == nil { // plain seconds
			return time.Duration(n) * time.Second
		}
		fatalf("%s must be a duration (20s), not %q", name, v)
	}
	return def
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench-attribution: error: "+format+"\n", a...)
	os.Exit(2)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench-attribution: "+format+"\n", a...)
}

func main() {
	var c config
	tag := os.Getpid() % 100000
	flag.IntVar(&c.n, "n", envInt("BENCH_N", 1000), "client processes, split evenly over the lifetimes (BENCH_N)")
	flag.IntVar(&c.conc, "concurrency", envInt("BENCH_CONCURRENCY", 12), "clients alive at once (BENCH_CONCURRENCY)")
	var seed int
	flag.IntVar(&seed, "seed", envInt("BENCH_SEED", 1), "shuffle seed (BENCH_SEED)")
	flag.IntVar(&c.body, "body", 256, "upload body bytes")
	flag.IntVar(&c.v6Every, "v6-every", 4, "every Nth client uses IPv6 (0: none)")
	flag.IntVar(&c.subnet, "subnet", 97, "lab addresses 198.18.SUBNET.0/24 and 2001:2:0:SUBNET(hex)::/64")
	flag.IntVar(&c.port, "port", 8080, "upload server port")
	flag.DurationVar(&c.idle, "idle", envDur("BENCH_IDLE", 20*time.Second), "idle CPU measurement window (BENCH_IDLE)")
	flag.DurationVar(&c.ssInterval, "ss-interval", envDur("BENCH_SS_INTERVAL", 5*time.Millisecond), "pause between two ss samples (BENCH_SS_INTERVAL)")
	flag.DurationVar(&c.settle, "settle", 1500*time.Millisecond, "wait after the last client before stopping the sensor")
	flag.StringVar(&c.exfilwatch, "exfilwatch", envOr("EXFILWATCH", "./exfilwatch"), "exfilwatch binary (EXFILWATCH)")
	flag.StringVar(&c.client, "client", "", "the benchmark client binary (bench/attribution/client)")
	flag.StringVar(&c.server, "server", "captures/lab/upload_server.py", "the lab upload server")
	flag.StringVar(&c.out, "out", "bench/.cache/attribution.txt", "report file")
	flag.StringVar(&c.work, "work", "bench/.cache/attribution", "directory for events, logs and per-client records")
	flag.StringVar(&c.hostNS, "host-ns", fmt.Sprintf("exfw-ba-host-%d", tag), "host namespace name")
	flag.StringVar(&c.remNS, "remote-ns", fmt.Sprintf("exfw-ba-rem-%d", tag), "remote namespace name")
	flag.StringVar(&c.hostIf, "host-if", fmt.Sprintf("exfwbah%d", tag), "host-side veth name")
	flag.StringVar(&c.remIf, "remote-if", fmt.Sprintf("exfwbar%d", tag), "remote-side veth name")
	flag.StringVar(&c.nethogs, "nethogs", envOr("BENCH_NETHOGS", "auto"), "run nethogs -t as a second peer: auto (when installed), 1, 0 (BENCH_NETHOGS)")
	flag.BoolVar(&c.record, "record", os.Getenv("BENCH_RECORD") == "1", "also run the sensor with --record (journal and pcapng in the work directory) (BENCH_RECORD=1)")
	lts := flag.String("lifetimes", envOr("BENCH_LIFETIMES", "5ms,20ms,50ms,200ms,1s"), "client lifetimes, comma-separated (BENCH_LIFETIMES)")
	flag.BoolVar(&c.niceQuiet, "nice-peers", os.Getenv("BENCH_PEER_NICE") != "0", "run the peers (ss, nethogs) at nice 10 so they do not take CPU from the sensor (BENCH_PEER_NICE=0: same priority)")
	sensorArgs := flag.String("sensor-args", os.Getenv("BENCH_SENSOR_ARGS"), "extra `exfilwatch run` options for the measured run, space-separated (BENCH_SENSOR_ARGS), e.g. \"--attribution-wait 1ms\"")
	flag.Parse()
	c.sensorArgs = strings.Fields(*sensorArgs)
	lifetimes = nil
	for _, f := range strings.Split(*lts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 {
			fatalf("bad lifetime %q", f)
		}
		lifetimes = append(lifetimes, d)
	}
	sort.Slice(lifetimes, func(i, j int) bool { return lifetimes[i] < lifetimes[j] })
	c.seed = uint64(seed)
	if c.n < len(lifetimes) || c.conc < 1 || c.client == "" {
		fatalf("need -n >= %d, -concurrency >= 1 and -client", len(lifetimes))
	}
	if os.Geteuid() != 0 {
		fatalf("needs root (network namespaces, AF_PACKET)")
	}
	for _, p := range []*string{&c.exfilwatch, &c.client, &c.server} {
		a, err := filepath.Abs(*p)
		if err != nil {
			fatalf("%v", err)
		}
		if _, err := os.Stat(a); err != nil {
			fatalf("%v", err)
		}
		*p = a
	}
	for _, tool := range []string{"ip", "ss", "python3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatalf("%s not installed (bench/attribution.sh installs it)", tool)
		}
	}
	if err := os.MkdirAll(c.work, 0o700); err != nil {
		fatalf("%v", err)
	}
	l := newLab(c.hostNS, c.remNS, c.hostIf, c.remIf, c.subnet)
	// Whatever happens, the namespaces and every process in them go.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: cleaning up", s)
		l.destroy()
		os.Exit(130)
	}()
	code, err := bench(&c, l)
	l.destroy()
	if err != nil {
		logf("error: %v", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// clientRun is one client process and what became of it.
type clientRun struct {
	ID       int            `json:"id"`
	Lifetime time.Duration  `json:"lifetime"`
	V6       bool           `json:"ipv6"`
	Path     string         `json:"path"`
	PID      int            `json:"pid"`
	Launch   time.Time      `json:"launch"` // driver clock, just before fork
	Reaped   time.Time      `json:"reaped"` // driver clock, wait returned
	Err      string         `json:"error,omitempty"`
	Rep      clientReport   `json:"client"`
	Local    netip.AddrPort `json:"local"`

	Event   *eventInfo  `json:"event,omitempty"`
	Journal *journalRec `json:"journal,omitempty"` // with -record: the sensor's lookup answer, however late`
	Verdict string      `json:"verdict"`           // attributed, wrong, unattributed, no_event, failed
	Peer    bool        `json:"peer_ss"`
	Nethogs bool        `json:"peer_nethogs"`
}

type clientReport struct {
	PID        int    `json:"pid"`
	Local      string `json:"local"`
	Start      int64  `json:"t_start"`
	Connect    int64  `json:"t_connect"`
	Connected  int64  `json:"t_connected"`
	Response   int64  `json:"t_response"`
	Exit       int64  `json:"t_exit"`
	Status     int    `json:"status"`
	Error      string `json:"error"`
	LifetimeNS int64  `json:"lifetime_ns"`
}

func (r *clientRun) ok() bool {
	return r.Err == "" && r.Rep.Error == "" && r.Rep.Status >= 200 && r.Rep.Status < 300
}

type eventInfo struct {
	PID      int    `json:"pid,omitempty"`
	Exe      string `json:"executable,omitempty"`
	Status   string `json:"status,omitempty"`
	Method   string `json:"method,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Detail   string `json:"detail,omitempty"`
	DelayUS  int64  `json:"delay_us"`
	Attempts int    `json:"attempts,omitempty"`
	SrcPort  int    `json:"source_port"`
	FlowID   int    `json:"flow_id"`
}

type sensorProc struct {
	cmd    *exec.Cmd
	stderr string
	done   chan error
}

// startSensor runs `exfilwatch run` in the host namespace and waits for its
// "capturing" log line (plus 300 ms: the ring is bound once it is logged).
func startSensor(c *config, l *lab, name string, extra ...string) (*sensorProc, error) {
	stderrPath := filepath.Join(c.work, name+".log")
	f, err := os.Create(stderrPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{c.exfilwatch, "--log-format", "json", "run", "--interface", l.hostIf, "--stats-interval", "0"}, extra...)
	cmd := l.in(l.host, args...)
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	l.keep(cmd)
	s := &sensorProc{cmd: cmd, stderr: stderrPath, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(stderrPath)
		if bytes.Contains(b, []byte(`"message":"capturing"`)) {
			break
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("exfilwatch run exited (%v):\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("exfilwatch run did not log \"capturing\":\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return s, nil
}

// stop sends SIGINT and waits; it returns the "stopped" log line.
func (s *sensorProc) stop() (map[string]any, error) {
	s.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		err = errors.New("did not stop within 30 s of SIGINT")
	}
	b, _ := os.ReadFile(s.stderr)
	var stopped map[string]any
	for _, line := range bytes.Split(b, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["message"] == "stopped" {
			stopped = m
		}
	}
	if err != nil {
		return stopped, fmt.Errorf("exfilwatch run: %v\n%s", err, b)
	}
	return stopped, nil
}

// cpuTicks is a process's utime+stime from /proc/PID/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// after ")": state(0) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(11) stime(12)
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

const clkTck = 100 // USER_HZ, 100 on every Linux architecture Go supports here

// machineBusy reads the total and idle jiffies of /proc/stat.
func machineBusy() (total, idle int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total, idle
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// runClient starts one client in the host namespace and waits for it.
func runClient(c *config, th *nsThread, l *lab, r *clientRun) {
	addr := netip.AddrPortFrom(netip.MustParseAddr(l.remIP), uint16(c.port))
	if r.V6 {
		addr = netip.AddrPortFrom(netip.MustParseAddr(l.remIP6), uint16(c.port))
	}
	cmd := exec.Command(c.client, addr.String(), r.Path, r.Lifetime.String(), strconv.Itoa(c.body))
	cmd.Env = []string{"GOMAXPROCS=1", "GOGC=off"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r.Launch = time.Now()
	if err := th.start(cmd); err != nil {
		r.Err = err.Error()
		return
	}
	r.PID = cmd.Process.Pid
	timer := time.AfterFunc(r.Lifetime+15*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	r.Reaped = time.Now()
	timer.Stop()
	if err != nil {
		r.Err = fmt.Sprintf("%v %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	if jerr := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r.Rep); jerr != nil && r.Err == "" {
		r.Err = fmt.Sprintf("client output %q: %v", out.String(), jerr)
	}
	if r.Rep.PID != 0 && r.Rep.PID != r.PID && r.Err == "" {
		r.Err = fmt.Sprintf("client says pid %d, forked %d", r.Rep.PID, r.PID)
	}
	if ap, err := netip.ParseAddrPort(r.Rep.Local); err == nil {
		r.Local = ap
	}
}

func bench(c *config, l *lab) (int, error) {
	load0 := loadavg()
	started := time.Now()
	logf("load average %s; creating namespaces %s and %s", load0, l.host, l.remote)
	if err := l.create(); err != nil {
		return 0, err
	}
	th, err := newNSThread(l.host)
	if err != nil {
		return 0, err
	}
	defer th.close()
	ssTh, err := newNSThread(l.host)
	if err != nil {
		return 0, err
	}
	if c.niceQuiet {
		if err := ssTh.nice(10); err != nil {
			logf("cannot renice the ss sampler: %v", err)
		}
	}
	defer ssTh.close()

	// Upload servers (single-stack each) in the remote namespace.
	var srvErr bytes.Buffer
	for _, bind := range []string{l.remIP, l.remIP6} {
		cmd := l.in(l.remote, "python3", c.server, "--port", strconv.Itoa(c.port), "--bind", bind)
		cmd.Stderr = io.Discard // one access-log line per request
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		l.keep(cmd)
	}
	ready := func(v6 bool, tag string) error {
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := &clientRun{ID: -1, Lifetime: 0, V6: v6, Path: "/attr-ready/" + tag}
			runClient(c, th, l, r)
			if r.ok() {
				if want := l.hostIP; v6 {
					want = l.hostIP6
					if r.Local.Addr().String() != want {
						return fmt.Errorf("client runs outside the host namespace: local %v", r.Local)
					}
				} else if r.Local.Addr().String() != want {
					return fmt.Errorf("client runs outside the host namespace: local %v", r.Local)
				}
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("upload server not answering (%s %s): %s", r.Err, r.Rep.Error, srvErr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := ready(false, "v4"); err != nil {
		return 0, err
	}
	if err := ready(true, "v6"); err != nil {
		return 0, err
	}
	logf("lab up: %s (%s, %s) ↔ %s (%s, %s)", l.hostIf, l.hostIP, l.hostIP6, l.remIf, l.remIP, l.remIP6)

	// The sensor.
	evFile := filepath.Join(c.work, "events.jsonl")
	os.Remove(evFile)
	extra := append([]string{"--events", evFile}, c.sensorArgs...)
	if c.record {
		rec := filepath.Join(c.work, "record")
		os.RemoveAll(rec)
		extra = append(extra, "--record", rec)
	}
	sensor, err := startSensor(c, l, "sensor", extra...)
	if err != nil {
		return 0, err
	}
	logf("exfilwatch run capturing on %s (pid %d)", l.hostIf, sensor.cmd.Process.Pid)

	runTag := strconv.FormatInt(time.Now().Unix()%1000000, 10)
	// Warm-up clients (not counted): the first lookups build the socket index.
	var warm []*clientRun
	for i := range 4 {
		r := &clientRun{ID: -2 - i, Lifetime: 50 * time.Millisecond, V6: i%2 == 1, Path: fmt.Sprintf("/attr/%s/warm%d/50ms", runTag, i)}
		runClient(c, th, l, r)
		warm = append(warm, r)
		time.Sleep(20 * time.Millisecond)
	}

	// The peers.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ssPath, _ := exec.LookPath("ss")
	peer := newSSPeer(ssTh, c.port, c.ssInterval)
	var peerWG sync.WaitGroup
	peerWG.Add(1)
	go func() { defer peerWG.Done(); peer.run(ctx, ssPath) }()
	var nh *nethogsPeer
	nethogsNote := ""
	if nhPath, err := exec.LookPath("nethogs"); err == nil && c.nethogs != "0" {
		nh = &nethogsPeer{}
		nh.cmd = l.in(l.host, nhPath, "-t", "-v", "2", "-d", "1", l.hostIf)
		if c.niceQuiet {
			nh.cmd = l.in(l.host, "nice", "-n", "10", nhPath, "-t", "-v", "2", "-d", "1", l.hostIf)
		}
		nh.cmd.Stdout, nh.cmd.Stderr = &nh.out, &nh.err
		if err := nh.cmd.Start(); err != nil {
			nethogsNote = "nethogs did not start: " + err.Error()
			nh = nil
		} else {
			l.keep(nh.cmd)
			nh.started = time.Now()
			time.Sleep(1500 * time.Millisecond) // it reads /proc and opens the capture first
		}
	} else if c.nethogs == "1" {
		return 0, errors.New("nethogs requested (BENCH_NETHOGS=1) but not installed")
	} else if c.nethogs == "0" {
		nethogsNote = "nethogs disabled (BENCH_NETHOGS=0)"
	} else {
		nethogsNote = "nethogs not installed"
	}
	time.Sleep(50 * time.Millisecond)

	// The clients: N split evenly over the lifetimes, shuffled.
	runs := make([]*clientRun, c.n)
	for i := range runs {
		lt := lifetimes[i%len(lifetimes)]
		runs[i] = &clientRun{ID: i, Lifetime: lt, V6: c.v6Every > 0 && (i/len(lifetimes))%c.v6Every == c.v6Every-1,
			Path: fmt.Sprintf("/attr/%s/%d/%s", runTag, i, lt)}
	}
	order := make([]*clientRun, len(runs))
	copy(order, runs)
	rng := rand.New(rand.NewPCG(c.seed, 0x6174747269627574))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	sensorCPU0, _ := cpuTicks(sensor.cmd.Process.Pid)
	busyT0, busyI0 := machineBusy()
	phase0 := time.Now()
	logf("launching %d clients, %d at a time (load average %s)", c.n, c.conc, loadavg())
	work := make(chan *clientRun)
	var wg sync.WaitGroup
	var doneN int
	var doneMu sync.Mutex
	for range c.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				runClient(c, th, l, r)
				doneMu.Lock()
				doneN++
				if doneN%200 == 0 {
					logf("%d/%d clients done", doneN, c.n)
				}
				doneMu.Unlock()
			}
		}()
	}
	for _, r := range order {
		work <- r
	}
	close(work)
	wg.Wait()
	phase := time.Since(phase0)
	busyT1, busyI1 := machineBusy()
	sensorCPU1, _ := cpuTicks(sensor.cmd.Process.Pid)
	loadRun := loadavg()
	logf("clients done in %v (load average %s); stopping the sensor", phase.Round(time.Millisecond), loadRun)
	time.Sleep(c.settle)
	cancel()
	peerWG.Wait()
	stopped, serr := sensor.stop()
	if serr != nil {
		return 0, serr
	}
	if nh != nil {
		if t, err := cpuTicks(nh.cmd.Process.Pid); err == nil {
			nh.cpu = pctOfCore(t, time.Since(nh.started))
		}
		nh.cmd.Process.Signal(syscall.SIGTERM)
		waitc := make(chan struct{})
		go func() { nh.cmd.Wait(); close(waitc) }()
		select {
		case <-waitc:
		case <-time.After(5 * time.Second):
			nh.cmd.Process.Kill()
			<-waitc
		}
		nh.parse()
		if nh.refresh == 0 {
			nethogsNote = "nethogs printed nothing: " + strings.TrimSpace(lastLine(nh.err.String()))
		}
	}

	// Match the events to the clients.
	byID, warmEv, other, err := readEvents(evFile, runTag)
	if err != nil {
		return 0, err
	}
	for _, r := range runs {
		classify(r, byID[strconv.Itoa(r.ID)], peer, nh)
	}
	for i, r := range warm {
		classify(r, warmEv[fmt.Sprintf("warm%d", i)], nil, nil)
	}
	peerWrong := ssWrong(runs, peer)
	journaled := false
	if c.record {
		recs, err := readJournal(filepath.Join(c.work, "record", "journal.jsonl"))
		if err != nil {
			logf("journal: %v", err)
		} else {
			matchJournal(runs, recs)
			journaled = true
		}
	}

	// Idle CPU: the sensor with and without attribution, side by side on
	// the idle veth, CPU time over the window after a 2 s start-up.
	logf("idle CPU: %v with and without attribution (load average %s)", c.idle, loadavg())
	idleA, errA := startSensor(c, l, "idle-attribution", "--events", "/dev/null")
	idleN, errN := startSensor(c, l, "idle-no-attribution", "--events", "/dev/null", "--no-attribution")
	if errA != nil || errN != nil {
		return 0, fmt.Errorf("idle sensors: %v %v", errA, errN)
	}
	time.Sleep(2 * time.Second)
	idleBT0, idleBI0 := machineBusy()
	a0, _ := cpuTicks(idleA.cmd.Process.Pid)
	n0, _ := cpuTicks(idleN.cmd.Process.Pid)
	i0 := time.Now()
	time.Sleep(c.idle)
	a1, _ := cpuTicks(idleA.cmd.Process.Pid)
	n1, _ := cpuTicks(idleN.cmd.Process.Pid)
	iw := time.Since(i0)
	idleBT1, idleBI1 := machineBusy()
	idleStopA, _ := idleA.stop()
	idleN.stop()
	idle := idleResult{window: iw,
		withAttr: pctOfCore(a1-a0, iw), without: pctOfCore(n1-n0, iw),
		machine: busyPct(idleBT0, idleBI0, idleBT1, idleBI1), stopped: idleStopA}

	rep := &report{c: c, runs: runs, warm: warm, stopped: stopped, otherEvents: other,
		load0: load0, loadRun: loadRun, load1: loadavg(), phase: phase,
		sensorCPU: pctOfCore(sensorCPU1-sensorCPU0, phase), machine: busyPct(busyT0, busyI0, busyT1, busyI1),
		peer: peer, peerWrong: peerWrong, nh: nh, journaled: journaled, nethogsNote: nethogsNote, idle: idle, elapsed: time.Since(started)}
	text, pass := rep.render()
	fmt.Print(text)
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err == nil {
		os.WriteFile(c.out, []byte(text), 0o644)
	}
	if f, err := os.Create(filepath.Join(c.work, "clients.jsonl")); err == nil {
		w := bufio.NewWriter(f)
		for _, r := range append(append([]*clientRun{}, warm...), runs...) {
			b, _ := json.Marshal(r)
			w.Write(append(b, '\n'))
		}
		w.Flush()
		f.Close()
	}
	logf("report in %s; events, sensor log and per-client records in %s", c.out, c.work)
	if !pass {
		return 1, nil
	}
	return 0, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func pctOfCore(ticks int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return 100 * float64(ticks) / clkTck / d.Seconds()
}

// busyPct is the machine's busy share over all CPUs, in % of one core.
func busyPct(t0, i0, t1, i1 int64) float64 {
	dt := t1 - t0
	if dt <= 0 {
		return 0
	}
	cores := float64(cpuCount())
	return 100 * cores * float64(dt-(i1-i0)) / float64(dt)
}

func cpuCount() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		n = 1
	}
	return n
}

var pathRe = regexp.MustCompile(`^/attr/([0-9]+)/([^/]+)/`)

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

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// readEvents returns this run's http events by client id, the warm-up
// ones, and the count of other http events.
func readEvents(path, runTag string) (byID, warm map[string]*eventInfo, other int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	byID, warm = map[string]*eventInfo{}, map[string]*eventInfo{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, nil, 0, fmt.Errorf("bad event line %q: %v", sc.Text(), err)
		}
		if get(m, "event", "dataset") != "http" {
			continue
		}
		mm := pathRe.FindStringSubmatch(str(get(m, "url", "original")))
		if mm == nil || mm[1] != runTag {
			other++
			continue
		}
		e := &eventInfo{
			PID:      int(num(get(m, "process", "pid"))),
			Exe:      str(get(m, "process", "executable")),
			Status:   str(get(m, "exfilwatch", "attribution", "status")),
			Method:   str(get(m, "exfilwatch", "attribution", "method")),
			Reason:   str(get(m, "exfilwatch", "attribution", "reason")),
			Detail:   str(get(m, "exfilwatch", "attribution", "detail")),
			DelayUS:  num(get(m, "exfilwatch", "attribution", "delay_us")),
			Attempts: int(num(get(m, "exfilwatch", "attribution", "attempts"))),
			SrcPort:  int(num(get(m, "source", "port"))),
			FlowID:   int(num(get(m, "exfilwatch", "flow", "id"))),
		}
		if strings.HasPrefix(mm[2], "warm") {
			warm[mm[2]] = e
		} else {
			byID[mm[2]] = e
		}
	}
	return byID, warm, other, sc.Err()
}

// classify sets a client's verdict: attributed (the event names its pid and
// the client executable), wrong (attributed to something else),
// unattributed, no_event, or failed (the upload itself failed).
func classify(r *clientRun, e *eventInfo, peer *ssPeer, nh *nethogsPeer) {
	r.Event = e
	switch {
	case !r.ok():
		r.Verdict = "failed"
	case e == nil:
		r.Verdict = "no_event"
	case e.Status != "attributed":
		r.Verdict = "unattributed"
	case e.PID == r.PID && filepath.Base(e.Exe) == "attr-client" || e.PID == r.PID && e.Exe == "":
		r.Verdict = "attributed"
	default:
		r.Verdict = "wrong"
	}
	if peer != nil && r.Local.IsValid() {
		peer.mu.Lock()
		_, r.Peer = peer.seen[portPID{r.Local.Port(), r.PID}]
		peer.mu.Unlock()
	}
	if nh != nil && nh.pids != nil {
		r.Nethogs = nh.pids[r.PID]
	}
}

// ssWrong counts the peer's wrong sightings: a client's port seen held by
// another client's pid while the first client lived, or a client's pid seen
// on a port that is not its connection's.
func ssWrong(runs []*clientRun, p *ssPeer) int {
	byPID := map[int]*clientRun{}
	byPort := map[uint16][]*clientRun{}
	for _, r := range runs {
		if r.PID > 0 {
			byPID[r.PID] = r
		}
		if r.Local.IsValid() {
			byPort[r.Local.Port()] = append(byPort[r.Local.Port()], r)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	wrong := 0
	for pp, s := range p.seen {
		if r := byPID[pp.pid]; r != nil && r.Local.IsValid() && r.Local.Port() != pp.port {
			// Only wrong when the sighting falls within that client's life.
			if !s.last.Before(r.Launch) && !s.first.After(r.Reaped) {
				wrong++
				continue
			}
		}
		for _, r := range byPort[pp.port] {
			if r.PID != pp.pid && byPID[pp.pid] != nil && !s.first.Before(time.Unix(0, r.Rep.Connected)) && !s.last.After(time.Unix(0, r.Rep.Exit)) {
				wrong++
				break
			}
		}
	}
	return wrong
}

// ---- report -----------------------------------------------------------------

type idleResult struct {
	window            time.Duration
	withAttr, without float64
	machine           float64
	stopped           map[string]any
}

type report struct {
	c                     *config
	runs, warm            []*clientRun
	stopped               map[string]any
	otherEvents           int
	load0, loadRun, load1 string
	phase, elapsed        time.Duration
	sensorCPU, machine    float64
	peer                  *ssPeer
	peerWrong             int
	journaled             bool
	nh                    *nethogsPeer
	nethogsNote           string
	idle                  idleResult
}

func pct(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func fmtMS(v []float64, q float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", quantile(v, q))
}

type classStats struct {
	label                                        string
	clients, ok, attributed, wrong, unattr, noEv int
	failed, peer, nethogs                        int
	jAttr, jWrong, jNone                         int
	jDelays                                      []float64
	delays, delaysAll, life, resp                []float64
	reasons                                      map[string]int
}

func (r *report) stats(sel func(*clientRun) bool, label string) *classStats {
	s := &classStats{label: label, reasons: map[string]int{}}
	for _, c := range r.runs {
		if !sel(c) {
			continue
		}
		s.clients++
		if c.Verdict == "failed" {
			s.failed++
			continue
		}
		s.ok++
		if c.Rep.LifetimeNS > 0 {
			s.life = append(s.life, float64(c.Rep.LifetimeNS)/1e6)
		}
		if c.Rep.Response > 0 {
			s.resp = append(s.resp, float64(c.Rep.Response-c.Rep.Start)/1e6)
		}
		if c.Peer {
			s.peer++
		}
		if c.Nethogs {
			s.nethogs++
		}
		switch j := c.Journal; {
		case j == nil:
			s.jNone++
		case j.Method != "" && j.PID == c.PID:
			s.jAttr++
			s.jDelays = append(s.jDelays, float64(j.DelayUS)/1000)
		case j.Method != "":
			s.jWrong++
		}
		if c.Event != nil && c.Event.DelayUS > 0 {
			s.delaysAll = append(s.delaysAll, float64(c.Event.DelayUS)/1000)
		}
		switch c.Verdict {
		case "attributed":
			s.attributed++
			s.delays = append(s.delays, float64(c.Event.DelayUS)/1000)
		case "wrong":
			s.wrong++
		case "unattributed":
			s.unattr++
			reason := c.Event.Reason
			if c.Event.Status == "" {
				reason = "(no attribution in the event)"
			}
			s.reasons[reason]++
		case "no_event":
			s.noEv++
			s.reasons["(no http event)"]++
		}
	}
	return s
}

func (r *report) render() (string, bool) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c := r.c
	host, _ := os.Hostname()
	p("exfilwatch attribution benchmark — %s, host %s, %d CPUs\n", time.Now().UTC().Format(time.RFC3339), host, cpuCount())
	p("binary %s; %d clients (%d per lifetime, every %s IPv6), %d at a time, seed %d, body %d bytes\n",
		c.exfilwatch, c.n, c.n/len(lifetimes), ordinal(c.v6Every), c.conc, c.seed, c.body)
	peerPrio := "at nice 10"
	if !c.niceQuiet {
		peerPrio = "at the sensor's priority"
	}
	p("peers (ss -tnp sampling, nethogs) run %s; the sensor runs with its default options", peerPrio)
	if len(c.sensorArgs) > 0 {
		p(" plus %s", strings.Join(c.sensorArgs, " "))
	}
	p("\n")
	p("load average (1 5 15 min): %s at start, %s after the clients, %s at the end\n", r.load0, r.loadRun, r.load1)
	p("client phase %.1f s: machine busy %.0f%% of one core (all processes), exfilwatch run %.1f%% of one core\n\n",
		r.phase.Seconds(), r.machine, r.sensorCPU)

	hasNH := r.nh != nil && r.nh.refresh > 0
	p("%-9s %7s %10s %6s %7s %10s %10s %10s %9s %9s", "lifetime", "clients", "attributed", "wrong", "unattr", "delay p50", "delay p95", "delay max", "lived p50", "resp p50")
	p(" %9s", "ss -p")
	if hasNH {
		p(" %9s", "nethogs")
	}
	p("\n")
	p("%-9s %7s %10s %6s %7s %10s %10s %10s %9s %9s %9s", "", "", "exfilwatch", "", "", "ms", "ms", "ms", "ms", "ms", "peer")
	if hasNH {
		p(" %9s", "peer")
	}
	p("\n")
	var classes []*classStats
	row := func(s *classStats) {
		p("%-9s %7d %10s %6d %7d %10s %10s %10s %9s %9s %9s", s.label, s.ok, pct(s.attributed, s.ok), s.wrong, s.unattr+s.noEv,
			fmtMS(s.delays, 0.5), fmtMS(s.delays, 0.95), fmtMS(s.delays, 1), fmtMS(s.life, 0.5), fmtMS(s.resp, 0.5), pct(s.peer, s.ok))
		if hasNH {
			p(" %9s", pct(s.nethogs, s.ok))
		}
		p("\n")
	}
	for _, lt := range lifetimes {
		s := r.stats(func(x *clientRun) bool { return x.Lifetime == lt }, lt.String())
		classes = append(classes, s)
		row(s)
	}
	all := r.stats(func(*clientRun) bool { return true }, "all")
	row(all)
	v4 := r.stats(func(x *clientRun) bool { return !x.V6 }, "  IPv4")
	v6 := r.stats(func(x *clientRun) bool { return x.V6 }, "  IPv6")
	row(v4)
	row(v6)
	if r.journaled {
		p("\nthe sensor's journal (--record): every lookup answer, however late it came for the event:\n")
		p("%-9s %7s %10s %6s %10s %10s %10s\n", "lifetime", "clients", "looked up", "wrong", "no lookup", "delay p50", "delay p95")
		for _, s := range append(append([]*classStats{}, classes...), all) {
			p("%-9s %7d %10s %6d %10d %10s %10s\n", s.label, s.ok, pct(s.jAttr, s.ok), s.jWrong, s.jNone, fmtMS(s.jDelays, 0.5), fmtMS(s.jDelays, 0.95))
		}
		p("(looked up = a journal record for the client's connection names its pid; no lookup = no record: the sensor never saw the SYN)\n")
	}
	p("\n(clients = uploads that succeeded; attributed = the upload's http event names the client's pid and executable;\n")
	p(" delay = exfilwatch.attribution.delay_us of the attributed ones, from the connection's first packet to the answer;\n")
	p(" lived = the client's own lifetime, main() to exit; resp = main() to the response read)\n")
	failed := all.failed
	if failed > 0 {
		p("failed uploads (not counted): %d", failed)
		n := 0
		for _, x := range r.runs {
			if x.Verdict == "failed" && n < 3 {
				p("; %s %s", x.Err, x.Rep.Error)
				n++
			}
		}
		p("\n")
	}
	if len(all.reasons) > 0 {
		p("\nunattributed by reason:")
		for _, k := range sortedKeys(all.reasons) {
			p(" %s %d", k, all.reasons[k])
		}
		p("\n")
		r.missDetails(&b)
	}
	r.timeline(&b)
	// Delay distribution over all events of the run.
	if len(all.delaysAll) > 0 {
		p("\nlookup delay over all uploads (ms): p50 %s, p90 %s, p99 %s, max %s\n",
			fmtMS(all.delaysAll, 0.5), fmtMS(all.delaysAll, 0.9), fmtMS(all.delaysAll, 0.99), fmtMS(all.delaysAll, 1))
	}
	wres := map[string]int{}
	for _, x := range r.warm {
		wres[x.Verdict]++
	}
	p("warm-up clients (not counted): %v; other http events in the capture: %d\n", wres, r.otherEvents)

	// Peers.
	r.peer.mu.Lock()
	span := r.peer.stopped.Sub(r.peer.started)
	p("\npeer ss -tnp: %d samples in %.1f s (one every %.1f ms, %.1f ms each), %d failed; ss used %.1f%% of one core; wrong sightings %d\n",
		r.peer.samples, span.Seconds(), msPer(span, r.peer.samples+r.peer.failures), msPer(r.peer.busy, r.peer.samples+r.peer.failures),
		r.peer.failures, 100*r.peer.cpu.Seconds()/max(span.Seconds(), 1e-9), r.peerWrong)
	if r.peer.lastErr != "" {
		p("  last ss error: %s\n", r.peer.lastErr)
	}
	r.peer.mu.Unlock()
	switch {
	case hasNH:
		p("peer nethogs -t -d 1: %d refreshes, %.1f%% of one core; it names processes, not connections, so its wrong attributions cannot be counted; unknown-TCP traffic seen: %v\n", r.nh.refresh, r.nh.cpu, r.nh.unknown)
	case r.nethogsNote != "":
		p("peer nethogs: %s\n", r.nethogsNote)
	}

	// Sensor counters.
	if r.stopped != nil {
		recv, drop := num(r.stopped["kernel_received"]), num(r.stopped["kernel_dropped"])
		if drop > 0 {
			p("\nWARNING: the kernel dropped %d of the %d packets for exfilwatch's AF_PACKET ring (%s; the kernel counts drops in received)\n", drop, recv, pct(int(drop), int(recv)))
		}
		p("\nexfilwatch \"stopped\" line: attribution_requests %v, attributed %v, unattributed %v, by reason %v; kernel received %v, dropped %v; flows %v\n",
			r.stopped["attribution_requests"], r.stopped["attributed"], r.stopped["unattributed"], r.stopped["unattributed_by_reason"],
			r.stopped["kernel_received"], r.stopped["kernel_dropped"], r.stopped["flows"])
		if lost := num(r.stopped["attribution_requests"]) - num(r.stopped["attributed"]) - num(r.stopped["unattributed"]); lost > 0 {
			p("  (%d lookups are in neither count: their answers came after their flow had closed, and the resolver counts only answers still awaited)\n", lost)
		}
	}
	p("\nidle CPU (exfilwatch run on the idle veth, %.0f s window after 2 s start-up, both side by side; machine busy %.0f%% of one core meanwhile):\n",
		r.idle.window.Seconds(), r.idle.machine)
	p("  with attribution %.2f%% of one core, --no-attribution %.2f%% (difference %.2f points)\n\n",
		r.idle.withAttr, r.idle.without, r.idle.withAttr-r.idle.without)

	// Targets.
	pass := true
	target := func(ok bool, format string, a ...any) {
		v := "PASS"
		if !ok {
			v, pass = "FAIL", false
		}
		p("  %-4s %s\n", v, fmt.Sprintf(format, a...))
	}
	p("targets:\n")
	for i, s := range classes {
		lt := lifetimes[i]
		switch {
		case lt >= 50*time.Millisecond:
			target(s.ok > 0 && s.attributed == s.ok, "%-6s lifetime: 100%% attributed — %s (%d/%d)", s.label, pct(s.attributed, s.ok), s.attributed, s.ok)
		case lt == 20*time.Millisecond:
			target(s.ok > 0 && float64(s.attributed) >= 0.95*float64(s.ok), "%-6s lifetime: >= 95%% attributed — %s (%d/%d)", s.label, pct(s.attributed, s.ok), s.attributed, s.ok)
		}
	}
	target(all.wrong == 0, "wrong attributions: 0 — %d", all.wrong)
	target(r.idle.withAttr < 2, "idle CPU under 2%% of one core — %.2f%%", r.idle.withAttr)
	for i, s := range classes {
		if lifetimes[i] < 20*time.Millisecond {
			p("  info %-6s lifetime reaches %s attributed (%d/%d); ss -p peer %s\n", s.label, pct(s.attributed, s.ok), s.attributed, s.ok, pct(s.peer, s.ok))
		}
	}
	if failed*20 > all.clients {
		target(false, "uploads failed: %d of %d (more than 5%%: the figures are not reliable)", failed, all.clients)
	}
	p("\ntotal time %.0f s\n", r.elapsed.Seconds())
	return b.String(), pass
}

// timeline says when in the run the first client was missed and how the
// attributed share went before and after it: one miss that turns into many
// shows the sensor falling behind, not short lifetimes.
func (r *report) timeline(b *strings.Builder) {
	var seq []*clientRun
	for _, x := range r.runs {
		if x.Verdict != "failed" && x.Verdict != "" {
			seq = append(seq, x)
		}
	}
	sort.Slice(seq, func(i, j int) bool { return seq[i].Launch.Before(seq[j].Launch) })
	first := -1
	for i, x := range seq {
		if x.Verdict != "attributed" {
			first = i
			break
		}
	}
	if first < 0 || len(seq) == 0 {
		return
	}
	share := func(xs []*clientRun) string {
		n := 0
		for _, x := range xs {
			if x.Verdict == "attributed" {
				n++
			}
		}
		return fmt.Sprintf("%d/%d (%s)", n, len(xs), pct(n, len(xs)))
	}
	x := seq[first]
	reason := x.Verdict
	if x.Event != nil && x.Event.Reason != "" {
		reason += "/" + x.Event.Reason
	}
	tail := seq[len(seq)*9/10:]
	fmt.Fprintf(b, "\ntimeline: the first miss is the %d. client (lifetime %s, %s, %.1f s into the run); attributed before it %s, after it %s, in the last tenth of the run %s\n",
		first+1, x.Lifetime, reason, x.Launch.Sub(seq[0].Launch).Seconds(), share(seq[:first]), share(seq[first+1:]), share(tail))
}

// missDetails lists, for the clients exfilwatch missed, how their lookup
// went against their lifetime: when the answer came relative to the
// client's exit, and the lookup's error.
func (r *report) missDetails(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	type key struct {
		lt             time.Duration
		reason, detail string
	}
	groups := map[key][]*clientRun{}
	for _, x := range r.runs {
		if x.Verdict != "unattributed" && x.Verdict != "no_event" && x.Verdict != "wrong" {
			continue
		}
		k := key{x.Lifetime, x.Verdict, ""}
		if x.Event != nil {
			k.reason = x.Verdict + "/" + x.Event.Reason
			k.detail = genericDetail(x.Event.Detail)
		}
		groups[k] = append(groups[k], x)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].lt != keys[j].lt {
			return keys[i].lt < keys[j].lt
		}
		return keys[i].reason+keys[i].detail < keys[j].reason+keys[j].detail
	})
	p("missed clients by lifetime, reason and detail (SYN ≈ the client's connect call; 'exit' = its exit after the SYN):\n")
	for _, k := range keys {
		g := groups[k]
		var exitAfter, answer []float64
		for _, x := range g {
			if x.Rep.Connect > 0 && x.Rep.Exit > 0 {
				exitAfter = append(exitAfter, float64(x.Rep.Exit-x.Rep.Connect)/1e6)
			}
			if x.Event != nil && x.Event.DelayUS > 0 {
				answer = append(answer, float64(x.Event.DelayUS)/1000)
			}
		}
		p("  %-6s %-28s %4d  exit p50 %s ms after SYN; answer p50 %s ms (min %s)  %s\n", k.lt, k.reason, len(g),
			fmtMS(exitAfter, 0.5), fmtMS(answer, 0.5), fmtMS(answer, 0), k.detail)
	}
}

var detailNums = regexp.MustCompile(`[0-9a-f:.\[\]]*[0-9]+[0-9a-f:.\[\]]*`)

// genericDetail drops addresses, ports and inodes (but inode 0) from a
// lookup error so that errors group.
func genericDetail(s string) string {
	zero := strings.Contains(s, "socket inode 0 ") // no process holds it (time-wait or orphaned)
	s = detailNums.ReplaceAllString(s, "N")
	if zero {
		s = strings.Replace(s, "socket inode N", "socket inode 0", 1)
	}
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

func msPer(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000 / float64(n)
}

func ordinal(n int) string {
	switch n {
	case 0:
		return "no client"
	case 1:
		return "client"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
