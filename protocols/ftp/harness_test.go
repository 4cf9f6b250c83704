// Test harness: a small script language for transcripts and a recorder of
// everything a Session reports.

package ftp

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols"
)

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// at returns the timestamp of script step i.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// step is one action of a script, done at time at(index).
type step struct {
	kind byte // 'C' client bytes, 'S' server bytes, 'o' open, 'b' bytes, 'p' payload, 'g' data gap, 'x' close, 'G' control gap, 'E' end
	data []byte
	dir  protocols.Dir
	id   uint64
	up   bool
	n    int64
}

// parseScript reads one action per line:
//
//	C text           client line, CRLF appended
//	S text           server line, CRLF appended
//	c "go string"    raw client bytes (strconv.Unquote)
//	s "go string"    raw server bytes
//	open ID | close ID
//	up ID N | down ID N        DataBytes
//	upd ID text | downd ID text  DataPayload of text (no CRLF)
//	dgap ID up|down N          DataGap
//	gap C|S N                  control-channel Gap
//	end                        End both directions (server first)
//
// Lines are not trimmed: "S  EPRT" sends " EPRT".
func parseScript(t testing.TB, script string) []step {
	t.Helper()
	var steps []step
	for _, l := range splitLines(script) {
		verb, rest, _ := strings.Cut(l, " ")
		f := strings.Fields(rest)
		num := func(i int) int64 {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("script line %q: %v", l, err)
			}
			return v
		}
		switch verb {
		case "C":
			steps = append(steps, step{kind: 'C', data: []byte(rest + "\r\n"), dir: protocols.ClientToServer})
		case "S":
			steps = append(steps, step{kind: 'S', data: []byte(rest + "\r\n"), dir: protocols.ServerToClient})
		case "c", "s":
			raw, err := strconv.Unquote(rest)
			if err != nil {
				t.Fatalf("script line %q: %v", l, err)
			}
			st := step{kind: 'C', data: []byte(raw), dir: protocols.ClientToServer}
			if verb == "s" {
				st.kind, st.dir = 'S', protocols.ServerToClient
			}
			steps = append(steps, st)
		case "open":
			steps = append(steps, step{kind: 'o', id: uint64(num(0))})
		case "close":
			steps = append(steps, step{kind: 'x', id: uint64(num(0))})
		case "up", "down":
			steps = append(steps, step{kind: 'b', id: uint64(num(0)), up: verb == "up", n: num(1)})
		case "upd", "downd":
			_, text, _ := strings.Cut(rest, " ")
			steps = append(steps, step{kind: 'p', id: uint64(num(0)), up: verb == "upd", data: []byte(text)})
		case "dgap":
			steps = append(steps, step{kind: 'g', id: uint64(num(0)), up: f[1] == "up", n: num(2)})
		case "gap":
			d := protocols.ClientToServer
			if f[0] == "S" {
				d = protocols.ServerToClient
			}
			steps = append(steps, step{kind: 'G', dir: d, n: num(1)})
		case "end":
			steps = append(steps, step{kind: 'E'})
		default:
			t.Fatalf("bad script line %q", l)
		}
	}
	return steps
}

// splitLines returns a script's lines, leading tabs removed, blank lines skipped.
func splitLines(script string) []string {
	var out []string
	for _, l := range strings.Split(script, "\n") {
		if l = strings.TrimLeft(l, "\t"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// recorder keeps everything a Session reports, and a log line per event in
// order, for comparing runs.
type recorder struct {
	cmds  []*Command
	exps  []Expectation
	xfers []*Transfer
	anoms []protocols.Anomaly
	unsol []*Reply
	log   []string
}

func (r *recorder) handler() Handler {
	return Handler{
		Command: func(c *Command) {
			r.cmds = append(r.cmds, c)
			r.log = append(r.log, fmt.Sprintf("cmd %s %q %s..%s reply=%s interim=%v anoms=%v",
				c.Name, c.Arg, c.Start.Format(time.TimeOnly), c.End.Format(time.TimeOnly),
				fmtReply(c.Reply), c.Interim, c.Anomalies))
		},
		Expect: func(e Expectation) {
			r.exps = append(r.exps, e)
			r.log = append(r.log, fmt.Sprintf("expect %+v", e))
		},
		Transfer: func(x *Transfer) {
			r.xfers = append(r.xfers, x)
			c := *x
			c.Reply = nil // a pointer would print as an address
			r.log = append(r.log, fmt.Sprintf("transfer %+v reply=%s", c, fmtReply(x.Reply)))
		},
		Anomaly: func(a protocols.Anomaly) {
			r.anoms = append(r.anoms, a)
			r.log = append(r.log, fmt.Sprintf("anomaly %+v", a))
		},
		Unsolicited: func(rp *Reply) {
			r.unsol = append(r.unsol, rp)
			r.log = append(r.log, "unsolicited "+fmtReply(rp))
		},
	}
}

func fmtReply(r *Reply) string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%d:%q@%s", r.Code, r.Message, r.Time.Format(time.TimeOnly))
}

// feeder decides how a step's bytes are cut into Feed calls.
type feeder func(s *Session, dir protocols.Dir, b []byte, ts time.Time)

func feedWhole(s *Session, dir protocols.Dir, b []byte, ts time.Time) { s.Feed(dir, b, ts) }

func feedBytewise(s *Session, dir protocols.Dir, b []byte, ts time.Time) {
	for i := range b {
		s.Feed(dir, b[i:i+1], ts)
	}
}

// run plays steps on a new Session and returns what it reported.
func run(t testing.TB, lim Limits, steps []step, feed feeder) (*recorder, *Session) {
	t.Helper()
	r := &recorder{}
	s := NewSession(lim, r.handler())
	play(s, steps, feed)
	return r, s
}

func play(s *Session, steps []step, feed feeder) {
	for i, st := range steps {
		ts := at(i)
		switch st.kind {
		case 'C', 'S':
			// Copy, and scribble over the copy after the call: the
			// parser must not keep b.
			b := append([]byte(nil), st.data...)
			feed(s, st.dir, b, ts)
			for j := range b {
				b[j] = '#'
			}
		case 'o':
			s.DataOpen(st.id, ts)
		case 'b':
			s.DataBytes(st.id, st.up, st.n)
		case 'p':
			// The session must hash in place and keep nothing.
			b := append([]byte(nil), st.data...)
			s.DataPayload(st.id, st.up, b)
			for j := range b {
				b[j] = '#'
			}
		case 'g':
			s.DataGap(st.id, st.up, st.n)
		case 'x':
			s.DataClose(st.id, ts)
		case 'G':
			s.Gap(st.dir, st.n, ts)
		case 'E':
			s.End(protocols.ServerToClient, ts)
			s.End(protocols.ClientToServer, ts)
		}
	}
}

// cmdSummary renders commands as "NAME arg=code" for compact assertions.
func cmdSummary(cmds []*Command) []string {
	var out []string
	for _, c := range cmds {
		code := "-"
		if c.Reply != nil {
			code = strconv.Itoa(c.Reply.Code)
		}
		s := c.Name
		if c.Arg != "" {
			s += " " + c.Arg
		}
		out = append(out, s+"="+code)
	}
	return out
}

func anomalyNames(list []protocols.Anomaly) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Name)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func diffLogs(t *testing.T, what string, want, got []string) {
	t.Helper()
	if equalStrings(want, got) {
		return
	}
	n := min(len(want), len(got))
	for i := 0; i < n; i++ {
		if want[i] != got[i] {
			t.Fatalf("%s: event %d differs:\nwant %s\ngot  %s", what, i, want[i], got[i])
		}
	}
	t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
}
