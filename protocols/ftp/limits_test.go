package ftp

import (
	"strconv"
	"strings"
	"testing"

	"exfilwatch/protocols"
)

func TestLimitDefaults(t *testing.T) {
	var l Limits
	for _, c := range []struct{ got, want int }{
		{l.maxLineBytes(), DefaultMaxLineBytes},
		{l.maxPendingCommands(), DefaultMaxPendingCommands},
		{l.maxExpected(), DefaultMaxExpected},
		{l.maxReplyLines(), DefaultMaxReplyLines},
		{l.maxReplyBytes(), DefaultMaxReplyBytes},
		{l.maxCommandNameBytes(), DefaultMaxCommandNameBytes},
		{l.maxInterimReplies(), DefaultMaxInterimReplies},
		{Limits{MaxLineBytes: -1}.maxLineBytes(), DefaultMaxLineBytes},
		{Limits{MaxLineBytes: 7}.maxLineBytes(), 7},
	} {
		if c.got != c.want {
			t.Errorf("got %d, want %d", c.got, c.want)
		}
	}
}

// findAnomaly returns the anomaly named name in list.
func findAnomaly(list []protocols.Anomaly, name string) (protocols.Anomaly, bool) {
	for _, a := range list {
		if a.Name == name {
			return a, true
		}
	}
	return protocols.Anomaly{}, false
}

// Each limit twice: the legal extreme passes untouched, one more trips the
// named anomaly and parsing goes on.
func TestLineLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxLineBytes: 32}} {
		max := lim.maxLineBytes()
		ok := "STOR " + strings.Repeat("a", max-5)
		long := "STOR " + strings.Repeat("b", max-5+100)
		r, _ := run(t, lim, parseScript(t, `
			C `+ok+`
			S 500 no
			C `+long+`
			S 500 no
			C NOOP
			S 200 ok
		`), feedBytewise)
		if got := cmdSummary(r.cmds); len(got) != 3 || r.cmds[2].Name != "NOOP" || r.cmds[2].Reply.Code != 200 {
			t.Fatalf("max %d: %q", max, got)
		}
		if len(r.cmds[0].Anomalies) != 0 || len(r.cmds[0].Arg) != max-5 {
			t.Errorf("max %d: legal line: %v, arg %d bytes", max, r.cmds[0].Anomalies, len(r.cmds[0].Arg))
		}
		a, found := findAnomaly(r.cmds[1].Anomalies, AnomalyLineTooLong)
		if !found || a.Observed != int64(len(long)) || a.Limit != int64(max) {
			t.Errorf("max %d: long line anomaly %+v", max, r.cmds[1].Anomalies)
		}
		if got := len("STOR ") + len(r.cmds[1].Arg); got != max {
			t.Errorf("max %d: truncated line is %d bytes", max, got)
		}
	}
}

// Zeek's too-long-command case: a huge line is reported once, truncated,
// and the next command is parsed.
func TestLongCommandReportedOnce(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C `+strings.Repeat("A", 100000)+`
		S 500 Command too long.
		C USER x
		S 331 ok
	`), feedWhole)
	want := []string{strings.Repeat("A", DefaultMaxCommandNameBytes) + "=500", "USER x=331"}
	if got := cmdSummary(r.cmds); !equalStrings(got, want) {
		t.Fatalf("%q", got)
	}
	names := anomalyNames(r.cmds[0].Anomalies)
	if !equalStrings(names, []string{AnomalyLineTooLong, AnomalyCommandNameTooLong}) {
		t.Errorf("%q", names)
	}
	if a := r.cmds[0].Anomalies[0]; a.Observed != 100000 || len(a.Detail) > protocols.QuoteLimit {
		t.Errorf("%+v", a)
	}
}

func TestReplyLineLimit(t *testing.T) {
	lim := Limits{MaxLineBytes: 20}
	r, _ := run(t, lim, parseScript(t, `
		C HELP
		S 214-`+strings.Repeat("h", 40)+`
		S 214 end
	`), feedWhole)
	c := r.cmds[0]
	if c.Reply.Code != 214 || c.Reply.Message != strings.Repeat("h", 16)+"\nend" {
		t.Errorf("%+v", c.Reply)
	}
	if a, ok := findAnomaly(c.Anomalies, AnomalyLineTooLong); !ok || a.Observed != 44 {
		t.Errorf("%+v", c.Anomalies)
	}
}

func TestPendingLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxPendingCommands: 3}} {
		max := lim.maxPendingCommands()
		noops := func(n int) string { return strings.Repeat("NOOP\r\n", n) }
		oks := func(n int) string { return strings.Repeat("200 ok\r\n", n) }

		// Legal extreme: max pipelined commands, all answered.
		r, _ := run(t, lim, []step{
			{kind: 'C', dir: protocols.ClientToServer, data: []byte(noops(max))},
			{kind: 'S', dir: protocols.ServerToClient, data: []byte(oks(max))},
		}, feedWhole)
		if len(r.cmds) != max {
			t.Fatalf("max %d: %d commands", max, len(r.cmds))
		}
		for _, c := range r.cmds {
			if c.Reply == nil || len(c.Anomalies) != 0 {
				t.Fatalf("max %d: %+v", max, c)
			}
		}

		// One more: the oldest goes out without reply, the rest still pair.
		r, _ = run(t, lim, []step{
			{kind: 'C', dir: protocols.ClientToServer, data: []byte("USER a\r\n" + noops(max))},
			{kind: 'S', dir: protocols.ServerToClient, data: []byte(oks(max))},
		}, feedWhole)
		if len(r.cmds) != max+1 || r.cmds[0].Name != "USER" || r.cmds[0].Reply != nil {
			t.Fatalf("max %d: %v", max, r.log)
		}
		a, ok := findAnomaly(r.cmds[0].Anomalies, AnomalyTooManyPending)
		if !ok || a.Observed != int64(max+1) || a.Limit != int64(max) {
			t.Errorf("max %d: %+v", max, r.cmds[0].Anomalies)
		}
		for _, c := range r.cmds[1:] {
			if c.Reply == nil || c.Reply.Code != 200 {
				t.Errorf("max %d: %+v", max, c)
			}
		}
	}
}

func pasvScript(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("C PASV\nS 227 Entering Passive Mode (10,0,0,1,4," + strconv.Itoa(i) + ")\n")
	}
	return b.String()
}

func TestExpectedLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxExpected: 2}} {
		max := lim.maxExpected()
		r, s := run(t, lim, parseScript(t, pasvScript(max)), feedWhole)
		if len(r.exps) != max || len(r.anoms) != 0 || len(s.chans) != max {
			t.Fatalf("max %d: %d expectations, %v", max, len(r.exps), r.anoms)
		}

		r, s = run(t, lim, parseScript(t, pasvScript(max+1)), feedWhole)
		if len(r.exps) != max+1 || len(s.chans) != max {
			t.Fatalf("max %d: %d expectations, %d kept", max, len(r.exps), len(s.chans))
		}
		if len(r.anoms) != 1 || r.anoms[0].Name != AnomalyTooManyExpected || r.anoms[0].Observed != int64(max+1) ||
			r.anoms[0].Limit != int64(max) {
			t.Errorf("max %d: %+v", max, r.anoms)
		}
		if s.findChan(1) != nil || s.findChan(2) == nil {
			t.Errorf("max %d: the oldest was not the one dropped", max)
		}
	}
}

// When every tracked channel carries a connection, the oldest is flushed as
// a Transfer instead of losing its bytes.
func TestExpectedLimitFlushesOpenChannel(t *testing.T) {
	r, _ := run(t, Limits{MaxExpected: 1}, parseScript(t, `
		C PASV
		S 227 (10,0,0,1,4,0)
		C RETR a
		open 1
		down 1 99
		C PASV
		S 227 (10,0,0,1,4,1)
	`), feedWhole)
	if len(r.xfers) != 1 || r.xfers[0].BytesToClient != 99 || r.xfers[0].Command != "RETR" || r.xfers[0].Reply != nil {
		t.Fatalf("%v", r.log)
	}
}

func TestReplyLinesLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxReplyLines: 3}} {
		max := lim.maxReplyLines()
		reply := func(lines int) string {
			var b strings.Builder
			b.WriteString("214-first\r\n")
			for i := 2; i < lines; i++ {
				b.WriteString(" line\r\n")
			}
			b.WriteString("214 last\r\n")
			return b.String()
		}
		for _, n := range []int{max, max + 1} {
			r, _ := run(t, lim, []step{
				{kind: 'C', dir: protocols.ClientToServer, data: []byte("HELP\r\nNOOP\r\n")},
				{kind: 'S', dir: protocols.ServerToClient, data: []byte(reply(n) + "200 ok\r\n")},
			}, feedWhole)
			if len(r.cmds) != 2 || r.cmds[1].Reply.Code != 200 {
				t.Fatalf("max %d, %d lines: %v", max, n, r.log)
			}
			msg := r.cmds[0].Reply.Message
			a, tripped := findAnomaly(r.cmds[0].Anomalies, AnomalyTooManyReplyLines)
			if n == max {
				if tripped || strings.Count(msg, "\n") != max-1 || !strings.HasSuffix(msg, "last") {
					t.Errorf("max %d legal: %q %v", max, msg, r.cmds[0].Anomalies)
				}
				continue
			}
			if !tripped || a.Observed != int64(n) || a.Limit != int64(max) || strings.Count(msg, "\n") != max-1 {
				t.Errorf("max %d abuse: %+v, %d lines kept", max, r.cmds[0].Anomalies, strings.Count(msg, "\n")+1)
			}
		}
	}
}

func TestReplyBytesLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxReplyBytes: 10}} {
		max := lim.maxReplyBytes()
		for _, n := range []int{max, max + 1} {
			// Two lines whose text and separator add up to n bytes.
			first := strings.Repeat("a", n/2)
			last := strings.Repeat("b", n-len(first)-1)
			r, _ := run(t, Limits{MaxReplyBytes: lim.MaxReplyBytes, MaxLineBytes: 1 << 16}, []step{
				{kind: 'C', dir: protocols.ClientToServer, data: []byte("STAT\r\n")},
				{kind: 'S', dir: protocols.ServerToClient, data: []byte("211-" + first + "\r\n211 " + last + "\r\n")},
			}, feedWhole)
			c := r.cmds[0]
			a, tripped := findAnomaly(c.Anomalies, AnomalyReplyTooLong)
			if len(c.Reply.Message) > max {
				t.Fatalf("message %d bytes over %d", len(c.Reply.Message), max)
			}
			if n == max && (tripped || len(c.Reply.Message) != n) {
				t.Errorf("max %d legal: %d bytes, %v", max, len(c.Reply.Message), c.Anomalies)
			}
			if n > max && (!tripped || a.Observed != int64(n) || a.Limit != int64(max)) {
				t.Errorf("max %d abuse: %+v", max, c.Anomalies)
			}
		}
	}
}

func TestCommandNameLimit(t *testing.T) {
	lim := Limits{MaxCommandNameBytes: 4}
	r, _ := run(t, lim, parseScript(t, `
		C STOR x
		C STORE x
		end
	`), feedWhole)
	if len(r.cmds[0].Anomalies) != 0 || r.cmds[0].Name != "STOR" {
		t.Errorf("%+v", r.cmds[0])
	}
	a, ok := findAnomaly(r.cmds[1].Anomalies, AnomalyCommandNameTooLong)
	if r.cmds[1].Name != "STOR" || !ok || a.Observed != 5 || a.Limit != 4 {
		t.Errorf("%+v", r.cmds[1])
	}
}

func TestInterimLimit(t *testing.T) {
	for _, lim := range []Limits{{}, {MaxInterimReplies: 1}} {
		max := lim.maxInterimReplies()
		for _, n := range []int{max, max + 1} {
			r, _ := run(t, lim, []step{
				{kind: 'C', dir: protocols.ClientToServer, data: []byte("RETR x\r\n")},
				{kind: 'S', dir: protocols.ServerToClient, data: []byte(strings.Repeat("150 wait\r\n", n) + "226 ok\r\n")},
			}, feedWhole)
			c := r.cmds[0]
			a, tripped := findAnomaly(c.Anomalies, AnomalyTooManyInterim)
			if len(c.Interim) != max || c.Reply.Code != 226 || tripped != (n > max) {
				t.Errorf("max %d, %d interim: %+v", max, n, c)
			}
			if tripped && (a.Observed != int64(max+1) || a.Limit != int64(max)) {
				t.Errorf("%+v", a)
			}
		}
	}
}

// Anomalies of one kind are recorded once per command: a peer repeating a
// violation cannot grow a Command.
func TestAnomaliesBoundedPerCommand(t *testing.T) {
	var b strings.Builder
	b.WriteString("211-x\r\n")
	for i := 0; i < 1000; i++ {
		b.WriteString(strings.Repeat("z", 50) + "\r\n")
	}
	b.WriteString("211 end\r\n")
	r, _ := run(t, Limits{MaxLineBytes: 10, MaxReplyLines: 2}, []step{
		{kind: 'C', dir: protocols.ClientToServer, data: []byte("STAT\r\n")},
		{kind: 'S', dir: protocols.ServerToClient, data: []byte(b.String())},
	}, feedWhole)
	if got := anomalyNames(r.cmds[0].Anomalies); !equalStrings(got, []string{AnomalyLineTooLong, AnomalyTooManyReplyLines}) {
		t.Errorf("%q", got)
	}
}
