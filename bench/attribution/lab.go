//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lab is the test network, as in cmd/exfilwatch/lab_test.go: a "host"
// namespace (the sensor, the clients, the peer) and a "remote" namespace (the
// upload servers) joined by a veth pair, addressed from 198.18.0.0/15 and
// 2001:2::/48, with no default route. The benchmark creates it and removes it.
type lab struct {
	host, remote    string
	hostIf, remIf   string
	hostIP, remIP   string
	hostIP6, remIP6 string

	mu    sync.Mutex
	procs []*exec.Cmd // long-lived processes to kill at the end
}

func newLab(host, remote, hostIf, remIf string, subnet int) *lab {
	return &lab{
		host: host, remote: remote, hostIf: hostIf, remIf: remIf,
		hostIP: fmt.Sprintf("198.18.%d.1", subnet), remIP: fmt.Sprintf("198.18.%d.2", subnet),
		hostIP6: fmt.Sprintf("2001:2:0:%x::1", subnet), remIP6: fmt.Sprintf("2001:2:0:%x::2", subnet),
	}
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// create makes the namespaces and the veth pair and waits until both ends
// answer over IPv4 and IPv6.
func (l *lab) create() error {
	for _, ns := range []string{l.host, l.remote} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			return fmt.Errorf("namespace %s exists already", ns)
		}
	}
	steps := [][]string{
		{"ip", "netns", "add", l.host},
		{"ip", "netns", "add", l.remote},
		{"ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", l.remIf},
		{"ip", "link", "set", l.hostIf, "netns", l.host},
		{"ip", "link", "set", l.remIf, "netns", l.remote},
	}
	for _, e := range []struct{ ns, ifc, v4, v6 string }{{l.host, l.hostIf, l.hostIP, l.hostIP6}, {l.remote, l.remIf, l.remIP, l.remIP6}} {
		steps = append(steps,
			[]string{"ip", "-n", e.ns, "addr", "add", e.v4 + "/24", "dev", e.ifc},
			[]string{"ip", "-n", e.ns, "addr", "add", e.v6 + "/64", "dev", e.ifc, "nodad"},
			[]string{"ip", "-n", e.ns, "link", "set", e.ifc, "up"},
			[]string{"ip", "-n", e.ns, "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	// Both ends must answer before any test traffic is sent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err4 := run("ip", "netns", "exec", l.host, "ping", "-c1", "-W1", l.remIP)
		err6 := run("ip", "netns", "exec", l.host, "ping", "-6", "-c1", "-W1", l.remIP6)
		if err4 == nil && err6 == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab namespaces not reachable: v4 %v; v6 %v", err4, err6)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// destroy kills what runs in the namespaces and deletes them (the veth pair
// goes with them). It is safe to call more than once.
func (l *lab) destroy() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, c := range procs {
		if c.Process != nil && c.ProcessState == nil {
			c.Process.Kill()
		}
	}
	for _, ns := range []string{l.host, l.remote} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", p).Run()
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// in returns a command run in a namespace through `ip netns exec`, which
// execs it in place: the command's pid is the process's.
func (l *lab) in(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// keep records a long-lived process for destroy.
func (l *lab) keep(c *exec.Cmd) {
	l.mu.Lock()
	l.procs = append(l.procs, c)
	l.mu.Unlock()
}

// nsThread starts processes directly inside a network namespace, without the
// few milliseconds of `ip netns exec` per process: a goroutine locked to an
// OS thread that joined the namespace with setns(2) forks them (a child
// inherits its forking thread's namespaces). The thread is never unlocked,
// so it ends with the goroutine instead of going back to the Go scheduler.
type nsThread struct {
	reqs chan nsStart
}

type nsStart struct {
	cmd  *exec.Cmd
	done chan error
	nice *int
}

func newNSThread(ns string) (*nsThread, error) {
	t := &nsThread{reqs: make(chan nsStart)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := syscall.Open("/run/netns/"+ns, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			ready <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		syscall.Close(fd)
		if err != nil {
			ready <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ready <- nil
		for r := range t.reqs {
			if r.nice != nil {
				r.done <- unix.Setpriority(unix.PRIO_PROCESS, 0, *r.nice)
				continue
			}
			r.done <- r.cmd.Start()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return t, nil
}

// start starts cmd in the namespace.
func (t *nsThread) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	t.reqs <- nsStart{cmd: cmd, done: done}
	return <-done
}

func (t *nsThread) close() { close(t.reqs) }

// nice sets the thread's nice value, which the processes it starts inherit
// (on Linux the nice value is per thread).
func (t *nsThread) nice(n int) error {
	done := make(chan error, 1)
	t.reqs <- nsStart{done: done, nice: &n}
	return <-done
}
