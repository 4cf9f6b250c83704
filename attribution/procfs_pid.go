// This file holds the pure parsers of /proc/PID/{stat,status,cmdline} and of
// /proc/stat's boot time. They take bytes, so they are tested everywhere;
// process_linux.go reads the files.

package attribution

import (
	"bytes"
	"errors"
	"fmt"
)

var errProcStat = errors.New("attribution: malformed /proc stat")

// procStat is what the sensor uses of /proc/PID/stat (proc(5)).
type procStat struct {
	PID        int32
	Comm       string // field 2, without the parentheses (at most 15 bytes)
	State      byte   // field 3: R, S, D, Z, X…
	PPID       int32  // field 4
	PGID       int32  // field 5: the process group
	Session    int32  // field 6: the session id, which is the pid of the session leader
	StartTicks uint64 // field 22: start time in clock ticks after boot
}

// parseProcStat parses /proc/PID/stat. The command name may contain spaces and
// parentheses, so it runs from the first '(' to the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return st, fmt.Errorf("%w: no (comm): %q", errProcStat, procQuote(b))
	}
	pid, ok := procParseDec(bytes.TrimSpace(b[:open]), 31)
	if !ok {
		return st, fmt.Errorf("%w: bad pid: %q", errProcStat, procQuote(b))
	}
	st.PID = int32(pid)
	st.Comm = string(b[open+1 : closing])
	// Fields 3.. after the comm; we need up to field 22 (index 19), and
	// field 23 must follow so that a cut file cannot shorten the start time.
	var buf [21][]byte
	f := procFields(b[closing+1:], buf[:0])
	if len(f) < 21 {
		return st, fmt.Errorf("%w: %d fields after comm, want at least 21", errProcStat, len(f))
	}
	if len(f[0]) != 1 {
		return st, fmt.Errorf("%w: bad state %q", errProcStat, procQuote(f[0]))
	}
	st.State = f[0][0]
	ppid, ok1 := procParseDec(f[1], 31)
	pgrp, ok4 := procParseDec(f[2], 31)
	sid, ok2 := procParseDec(f[3], 31)
	start, ok3 := procParseDec(f[19], 64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return st, fmt.Errorf("%w: bad ppid, pgrp, session or starttime in %q", errProcStat, procQuote(b))
	}
	st.PPID, st.PGID, st.Session, st.StartTicks = int32(ppid), int32(pgrp), int32(sid), start
	return st, nil
}

// parseProcStatusUIDs returns the real and effective user ids from the "Uid:"
// line of /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
func parseProcStatusUIDs(b []byte) (real, effective uint32, err error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		var buf [4][]byte
		f := procFields(rest, buf[:0])
		if len(f) < 2 {
			return 0, 0, fmt.Errorf("%w: status Uid line %q", errProcStat, procQuote(line))
		}
		r, ok1 := procParseDec(f[0], 32)
		e, ok2 := procParseDec(f[1], 32)
		if !ok1 || !ok2 {
			return 0, 0, fmt.Errorf("%w: status Uid line %q", errProcStat, procQuote(line))
		}
		return uint32(r), uint32(e), nil
	}
	return 0, 0, fmt.Errorf("%w: status has no Uid line", errProcStat)
}

// parseProcCmdline splits /proc/PID/cmdline at NULs. A process that rewrote its
// command line without NULs (setproctitle) gives one argument. An empty
// cmdline (kernel thread, zombie) gives nil.
func parseProcCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	args := make([]string, len(parts))
	for i, p := range parts {
		args[i] = string(p)
	}
	return args
}

// parseProcBootTime returns the "btime" of /proc/stat: the boot time in seconds
// since the epoch.
func parseProcBootTime(b []byte) (int64, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			v, ok := procParseDec(bytes.TrimSpace(rest), 62)
			if !ok {
				return 0, fmt.Errorf("%w: btime %q", errProcStat, procQuote(line))
			}
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("%w: /proc/stat has no btime line", errProcStat)
}
