package ftp

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols"
)

// Fuzz op codes: the low 3 bits pick the action, the high 5 bits its size
// or expectation.
const (
	opClient    = iota // feed the next 1..32 client bytes
	opServer           // feed the next 1..32 server bytes
	opOpen             // DataOpen on an announced expectation
	opBytes            // DataBytes, or DataPayload when bit 0x40 is set
	opDataGap          // DataGap
	opClose            // DataClose
	opGap              // control-channel Gap
	opBothLarge        // feed up to 256 bytes of each direction
)

// seedFromScript turns a transcript into fuzz input that replays it in
// order: both streams, and ops that feed them step by step.
func seedFromScript(t testing.TB, script string) (client, server, ops []byte) {
	for _, st := range parseScript(t, script) {
		switch st.kind {
		case 'C', 'S':
			op := byte(opClient)
			if st.kind == 'S' {
				op = opServer
				server = append(server, st.data...)
			} else {
				client = append(client, st.data...)
			}
			for n := len(st.data); n > 0; n -= 32 {
				k := min(n, 32)
				ops = append(ops, byte(k-1)<<3|op)
			}
		case 'o':
			ops = append(ops, byte(st.id-1)<<3|opOpen)
		case 'b':
			ops = append(ops, byte(st.id-1)<<3|opBytes)
		case 'p':
			ops = append(ops, byte(st.id-1)<<3|0x40|opBytes)
		case 'g':
			ops = append(ops, byte(st.id-1)<<3|opDataGap)
		case 'x':
			ops = append(ops, byte(st.id-1)<<3|opClose)
		case 'G':
			ops = append(ops, 1<<3|opGap)
		}
	}
	return client, server, ops
}

func FuzzFeed(f *testing.F) {
	for _, script := range transcripts {
		c, s, ops := seedFromScript(f, script)
		f.Add(c, s, ops)
	}
	for _, script := range []string{
		`
		C PASV
		S 227 (1,2,3,4,5,6)
		C STOR x
		open 1
		S 150 ok
		up 1 1
		close 1
		S 226 ok
		`, `
		C EPRT |2|::1|1|
		open 1
		S 200 ok
		C APPE y
		S 150 ok
		close 1
		S 426 aborted
		`, `
		C FEAT
		S 211-a
		gap S 4
		S 200 b
		C SYST
		S xyz
		`,
	} {
		c, s, ops := seedFromScript(f, script)
		f.Add(c, s, ops)
	}
	f.Add([]byte("USER a\r\nPASS b\r\n\xff\xfb"), []byte("220-x\r\n99 y\r\n230"), []byte{0xff, 0x01, 0x07, 0x3e, 0x06})

	f.Fuzz(func(t *testing.T, client, server, ops []byte) {
		// A hang is a bug too: crash the worker so the input is kept.
		wd := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("hang on %q %q %q", client, server, ops)) })
		defer wd.Stop()
		lim := Limits{}
		if len(ops) > 0 && ops[0]&0x80 != 0 {
			lim = Limits{MaxLineBytes: 16, MaxPendingCommands: 3, MaxExpected: 2, MaxReplyLines: 3,
				MaxReplyBytes: 24, MaxCommandNameBytes: 4, MaxInterimReplies: 1}
		}
		whole := fuzzRun(t, lim, client, server, ops, false)
		bytewise := fuzzRun(t, lim, client, server, ops, true)
		diffLogs(t, "byte-by-byte vs chunked", whole, bytewise)
	})
}

// fuzzRun plays one fuzz input and checks the session's invariants
// throughout. With bytewise, every Feed is cut into single bytes.
func fuzzRun(t *testing.T, lim Limits, client, server, ops []byte, bytewise bool) []string {
	r := &recorder{}
	h := r.handler()
	emitted := map[uint64]bool{}
	// What each live channel was given per direction (0 to the server):
	// its payload, and whether some bytes came without content.
	payload := map[uint64]*[2][]byte{}
	voided := map[uint64]*[2]bool{}
	inner := h.Transfer
	h.Transfer = func(x *Transfer) {
		if p := payload[x.ExpectationID]; p != nil {
			i := dirIndex(x.HashToServer)
			if x.HashValid == voided[x.ExpectationID][i] {
				t.Fatalf("transfer %d: HashValid %v, but bytes without content %v", x.ExpectationID, x.HashValid, voided[x.ExpectationID][i])
			}
			if x.HashValid && x.SHA256 != sha256.Sum256(p[i]) {
				t.Fatalf("transfer %d: hash of %d bytes wrong", x.ExpectationID, len(p[i]))
			}
		}
		if emitted[x.ExpectationID] {
			t.Fatalf("transfer %d emitted twice", x.ExpectationID)
		}
		emitted[x.ExpectationID] = true
		if x.ExpectationID == 0 || x.ExpectationID > uint64(len(r.exps)) {
			t.Fatalf("transfer for unannounced expectation %d", x.ExpectationID)
		}
		if x.BytesToServer < 0 || x.BytesToClient < 0 {
			t.Fatalf("negative bytes: %+v", *x)
		}
		if !x.Start.IsZero() && x.End.Before(x.Start) {
			t.Fatalf("End before Start: %+v", *x)
		}
		inner(x)
	}
	innerCmd := h.Command
	h.Command = func(c *Command) {
		checkCommand(t, lim, c)
		innerCmd(c)
	}
	s := NewSession(lim, h)

	feed := func(dir protocols.Dir, b []byte, ts time.Time) {
		if bytewise {
			feedBytewise(s, dir, b, ts)
		} else {
			s.Feed(dir, b, ts)
		}
	}
	take := func(b *[]byte, n int) []byte {
		n = min(n, len(*b))
		p := (*b)[:n]
		*b = (*b)[n:]
		return p
	}
	pick := func(op byte) uint64 {
		if len(r.exps) == 0 || op>>3 == 31 {
			return uint64(op >> 3) // often unknown: must be ignored
		}
		return r.exps[int(op>>3)%len(r.exps)].ID
	}
	ts := t0
	for _, op := range ops {
		ts = ts.Add(time.Millisecond)
		n := int(op>>3) + 1
		switch op & 7 {
		case opClient:
			feed(protocols.ClientToServer, take(&client, n), ts)
		case opServer:
			feed(protocols.ServerToClient, take(&server, n), ts)
		case opOpen:
			s.DataOpen(pick(op), ts)
		case opBytes:
			id, up := pick(op), op&0x20 != 0
			live := s.findChan(id) != nil
			if live && payload[id] == nil {
				payload[id], voided[id] = new([2][]byte), new([2]bool)
			}
			if op&0x40 != 0 {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(ts.UnixMilli()) + byte(i)
				}
				if live {
					payload[id][dirIndex(up)] = append(payload[id][dirIndex(up)], b...)
				}
				s.DataPayload(id, up, b)
			} else {
				if live {
					voided[id][dirIndex(up)] = true
				}
				s.DataBytes(id, up, int64(n)*1000)
			}
		case opDataGap:
			id, up := pick(op), op&0x20 != 0
			if s.findChan(id) != nil {
				if payload[id] == nil {
					payload[id], voided[id] = new([2][]byte), new([2]bool)
				}
				voided[id][dirIndex(up)] = true
			}
			s.DataGap(id, up, int64(n))
		case opClose:
			s.DataClose(pick(op), ts)
		case opGap:
			s.Gap(protocols.Dir(op>>3&1), int64(n), ts)
		case opBothLarge:
			feed(protocols.ClientToServer, take(&client, n*8), ts)
			feed(protocols.ServerToClient, take(&server, n*8), ts)
		}
		checkSession(t, lim, s)
	}
	feed(protocols.ClientToServer, client, ts)
	feed(protocols.ServerToClient, server, ts)
	checkSession(t, lim, s)
	s.End(protocols.ServerToClient, ts)
	s.End(protocols.ClientToServer, ts)
	if len(s.chans) != 0 || len(s.pending) != 0 {
		t.Fatalf("state after End: %d chans, %d pending", len(s.chans), len(s.pending))
	}
	for _, a := range r.anoms {
		checkAnomaly(t, a)
	}
	return r.log
}

func checkSession(t *testing.T, lim Limits, s *Session) {
	t.Helper()
	if len(s.pending) > lim.maxPendingCommands() {
		t.Fatalf("%d pending commands", len(s.pending))
	}
	if len(s.chans) > lim.maxExpected() {
		t.Fatalf("%d data channels", len(s.chans))
	}
	for _, f := range s.fr {
		if len(f.buf) > lim.maxLineBytes() {
			t.Fatalf("line buffer %d bytes", len(f.buf))
		}
	}
	if len(s.rep.msg) > lim.maxReplyBytes() {
		t.Fatalf("reply buffer %d bytes", len(s.rep.msg))
	}
}

func checkCommand(t *testing.T, lim Limits, c *Command) {
	t.Helper()
	if len(c.Name) > lim.maxCommandNameBytes() || len(c.Interim) > lim.maxInterimReplies() {
		t.Fatalf("command over limits: %+v", c)
	}
	if len(c.Arg) > lim.maxLineBytes() {
		t.Fatalf("argument %d bytes", len(c.Arg))
	}
	if secretArg(c.Name) && c.Arg != "" && c.Arg != redacted {
		t.Fatalf("credential not redacted: %q", c.Arg)
	}
	if c.Reply != nil && len(c.Reply.Message) > lim.maxReplyBytes() {
		t.Fatalf("reply %d bytes", len(c.Reply.Message))
	}
	for _, r := range c.Interim {
		if len(r.Message) > lim.maxReplyBytes() {
			t.Fatalf("interim reply %d bytes", len(r.Message))
		}
	}
	if len(c.Anomalies) > 16 {
		t.Fatalf("%d anomalies on one command", len(c.Anomalies))
	}
	for _, a := range c.Anomalies {
		checkAnomaly(t, a)
	}
}

func checkAnomaly(t *testing.T, a protocols.Anomaly) {
	t.Helper()
	if !strings.HasPrefix(a.Name, "ftp.") || len(a.Detail) > 4*protocols.QuoteLimit {
		t.Fatalf("bad anomaly %+v", a)
	}
}
