//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The peer: `ss -tnp` run in the host namespace in a loop, as fast as it goes
// (one sample, then a short sleep), recording which client port it saw held
// by which pid. A client counts as attributed by the peer when one sample at
// least showed its connection with its pid.

type portPID struct {
	port uint16
	pid  int
}

type ssSighting struct {
	first, last time.Time
	n           int
}

type ssPeer struct {
	th       *nsThread
	args     []string
	interval time.Duration

	mu       sync.Mutex
	seen     map[portPID]*ssSighting
	samples  int
	failures int
	lastErr  string
	busy     time.Duration // wall time spent in ss
	cpu      time.Duration // user+system CPU of the ss processes
	started  time.Time
	stopped  time.Time
}

// newSSPeer samples the TCP connections to the upload servers' port.
func newSSPeer(th *nsThread, port int, interval time.Duration) *ssPeer {
	return &ssPeer{th: th, interval: interval, seen: map[portPID]*ssSighting{},
		args: []string{"-Htnp",
			"state", "syn-sent", "state", "established", "state", "fin-wait-1", "state", "fin-wait-2",
			"state", "close-wait", "state", "last-ack", "state", "closing",
			"dport", "=", ":" + strconv.Itoa(port)}}
}

func (p *ssPeer) run(ctx context.Context, ssPath string) {
	p.started = time.Now()
	defer func() { p.stopped = time.Now() }()
	for ctx.Err() == nil {
		cmd := exec.Command(ssPath, p.args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		t0 := time.Now()
		err := p.th.start(cmd)
		if err == nil {
			err = cmd.Wait()
		}
		t1 := time.Now()
		p.mu.Lock()
		p.busy += t1.Sub(t0)
		if cmd.ProcessState != nil {
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				p.cpu += time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
			}
		}
		if err != nil {
			p.failures++
			p.lastErr = err.Error()
		} else {
			p.samples++
			for _, pp := range parseSS(out.Bytes()) {
				s := p.seen[pp]
				if s == nil {
					s = &ssSighting{first: t0}
					p.seen[pp] = s
				}
				s.last, s.n = t1, s.n+1
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(p.interval):
		}
	}
}

var ssPIDRe = regexp.MustCompile(`pid=(\d+)`)

// parseSS reads `ss -Htnp` lines: the first field that parses as ip:port is
// the local end; every pid= in the users:(...) column holds the socket.
// Lines without users (the process is gone) give nothing.
func parseSS(b []byte) []portPID {
	var out []portPID
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		ui := strings.Index(line, "users:(")
		if ui < 0 {
			continue
		}
		var local netip.AddrPort
		for _, f := range strings.Fields(line[:ui]) {
			if ap, err := netip.ParseAddrPort(f); err == nil {
				local = ap
				break
			}
			// ss writes a scoped address as addr%if:port.
			if i := strings.LastIndex(f, "%"); i > 0 {
				if j := strings.LastIndex(f, ":"); j > i {
					if ap, err := netip.ParseAddrPort(f[:i] + f[j:]); err == nil {
						local = ap
						break
					}
				}
			}
		}
		if !local.IsValid() {
			continue
		}
		for _, m := range ssPIDRe.FindAllStringSubmatch(line[ui:], -1) {
			pid, _ := strconv.Atoi(m[1])
			out = append(out, portPID{local.Port(), pid})
		}
	}
	return out
}

// nethogs, the second peer (when installed): `nethogs -t -v 2 -d 1 IF`
// prints, every second, one line per process with traffic so far:
// "PROGRAM/PID/UID<TAB>SENT<TAB>RECEIVED". A client counts as attributed by
// nethogs when its pid appears on such a line. nethogs names no port, so
// wrong attributions cannot be told; traffic it could not attribute is on
// "unknown TCP" lines.
type nethogsPeer struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	err     bytes.Buffer
	pids    map[int]bool
	unknown bool
	refresh int
	started time.Time
	cpu     float64 // % of one core
}

var nethogsLineRe = regexp.MustCompile(`^(.*)/(\d+)/(\d+)\t[0-9.]+\t[0-9.]+$`)

func (n *nethogsPeer) parse() {
	n.pids = map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(n.out.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Refreshing:") {
			n.refresh++
			continue
		}
		if strings.HasPrefix(line, "unknown TCP") {
			n.unknown = true
			continue
		}
		if m := nethogsLineRe.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[2])
			if pid > 0 {
				n.pids[pid] = true
			}
		}
	}
}
