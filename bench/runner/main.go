// Command runner runs one benchmarked command and measures it the same way
// for every tool: wall-clock time around fork/exec/wait, CPU time and peak
// resident set size from the rusage that wait4 returns for the child
// (ru_maxrss, in KiB on Linux; it covers the child's own waited-for children
// too).
//
//	runner -name exfilwatch -file capture.pcap [-stdout FILE] [-stderr FILE] \
//	       [-result FILE] [-timeout 30m] -- exfilwatch replay --events /dev/null capture.pcap
//
// It appends one JSON line to -result (default: stdout) and exits 0 once it
// has measured the command, whatever the command's exit status (recorded in
// "exit"); it exits 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one measured run.
type Result struct {
	Type      string   `json:"type"` // "run"
	Name      string   `json:"name"`
	File      string   `json:"file,omitempty"`
	FileBytes int64    `json:"file_bytes,omitempty"`
	Cmd       []string `json:"cmd"`
	Seconds   float64  `json:"seconds"`
	UserSec   float64  `json:"user_s"`
	SysSec    float64  `json:"sys_s"`
	MaxRSSKiB int64    `json:"maxrss_kib"`
	Exit      int      `json:"exit"`
	TimedOut  bool     `json:"timed_out,omitempty"`
	// OtherCPU is the CPU time the rest of the machine used during the run
	// (all CPUs' busy time from /proc/stat minus the command's): above a few
	// tenths of the wall time, other work competed with the measurement.
	OtherCPU float64 `json:"other_cpu_s"`
	Error    string  `json:"error,omitempty"`
	Start    string  `json:"start"`
}

func main() {
	name := flag.String("name", "", "tool name for the report (required)")
	file := flag.String("file", "", "input file, recorded with its size")
	stdout := flag.String("stdout", "", "send the command's stdout to this file (default: inherit)")
	stderr := flag.String("stderr", "", "send the command's stderr to this file (default: inherit)")
	result := flag.String("result", "-", "append the JSON result line to this file ('-': stdout)")
	timeout := flag.Duration("timeout", 0, "kill the command after this long (0: no limit)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: runner -name NAME [-file F] [-stdout F] [-stderr F] [-result F] [-timeout D] -- command [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *name == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	r := measure(*name, *file, *stdout, *stderr, *timeout, flag.Args())
	b, _ := json.Marshal(r)
	b = append(b, '\n')
	if *result == "-" {
		os.Stdout.Write(b)
	} else {
		f, err := os.OpenFile(*result, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.Write(b)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "runner:", err)
			os.Exit(1)
		}
	}
	status := "ok"
	if r.Error != "" {
		status = r.Error
	}
	fmt.Fprintf(os.Stderr, "runner: %-10s %6.2fs  maxrss %7.1f MB  exit %d  %s\n",
		r.Name, r.Seconds, float64(r.MaxRSSKiB)*1024/1e6, r.Exit, status)
}

func redirect(path string, def *os.File) (*os.File, func(), error) {
	if path == "" {
		return def, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func measure(name, file, stdout, stderr string, timeout time.Duration, argv []string) Result {
	r := Result{Type: "run", Name: name, File: file, Cmd: argv, Exit: -1, Start: time.Now().UTC().Format(time.RFC3339)}
	if file != "" {
		if fi, err := os.Stat(file); err == nil {
			r.FileBytes = fi.Size()
		}
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var closeOut, closeErr func()
	var err error
	if cmd.Stdout, closeOut, err = redirect(stdout, os.Stdout); err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeOut()
	if cmd.Stderr, closeErr, err = redirect(stderr, os.Stderr); err != nil {
		r.Error = err.Error()
		return r
	}
	defer closeErr()

	busy0 := cpuBusy()
	t0 := time.Now()
	err = cmd.Run()
	r.Seconds = time.Since(t0).Seconds()
	busy1 := cpuBusy()
	if ps := cmd.ProcessState; ps != nil {
		r.Exit = ps.ExitCode()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSSKiB = ru.Maxrss // KiB on Linux
			r.UserSec = time.Duration(ru.Utime.Nano()).Seconds()
			r.SysSec = time.Duration(ru.Stime.Nano()).Seconds()
		}
	}
	if busy0 >= 0 && busy1 >= 0 {
		r.OtherCPU = max(0, busy1-busy0-r.UserSec-r.SysSec)
	}
	if ctx.Err() != nil {
		r.TimedOut = true
		r.Error = fmt.Sprintf("killed after %v", timeout)
	} else if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			r.Error = err.Error() // could not start
		} else {
			r.Error = ee.Error()
		}
	}
	return r
}

// cpuBusy returns the seconds all CPUs have spent busy since boot (user,
// nice, system, irq, softirq, steal from /proc/stat, in USER_HZ=100 ticks),
// or -1 if unknown.
func cpuBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return ticks / 100
}
