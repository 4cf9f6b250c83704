package ftp

import (
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols"
)

// transcripts used by the split and truncation tests.
var transcripts = map[string]string{
	"vsftpd passive":   vsftpdPassive,
	"pure-ftpd active": pureftpdActive,
	"vsftpd stou":      vsftpdStou,
	"auth tls": `
		S 220 (vsFTPd 3.0.3)
		C AUTH TLS
		S 234 Proceed with negotiation.
		c "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
		end
	`,
	"telnet and bare LF": `
		s "220-multi\n220 line\r\n"
		c "\xff\xfb\x01USER \xff\xffa\nPASV\r\n"
		S 331 pw
		S 227 Entering Passive Mode (10,0,0,1,4,1)
		c "\xff\xf4\xff\xf2ABOR\r\n"
		S 226 ok
		end
	`,
}

// Feeding a transcript whole, byte by byte, or cut in two at any offset of
// any step must give the same events.
func TestSplitAtEveryOffset(t *testing.T) {
	for name, script := range transcripts {
		t.Run(name, func(t *testing.T) {
			steps := parseScript(t, script)
			want, _ := run(t, Limits{}, steps, feedWhole)
			got, _ := run(t, Limits{}, steps, feedBytewise)
			diffLogs(t, "byte by byte", want.log, got.log)
			for _, st := range steps {
				for k := 1; k < len(st.data); k++ {
					split := func(s *Session, dir protocols.Dir, b []byte, ts time.Time) {
						if len(b) != len(st.data) || string(b) != string(st.data) {
							s.Feed(dir, b, ts)
							return
						}
						s.Feed(dir, b[:k], ts)
						s.Feed(dir, b[k:], ts)
					}
					got, _ := run(t, Limits{}, steps, split)
					diffLogs(t, "split", want.log, got.log)
				}
			}
		})
	}
}

// Every prefix of a transcript, then End: no panic, and what is reported
// is consistent with the full run: commands are a prefix of the full run's
// (names in order), never more transfers, nothing left in the tables.
func TestTruncationSweep(t *testing.T) {
	for name, script := range transcripts {
		t.Run(name, func(t *testing.T) {
			steps := parseScript(t, script)
			full, _ := run(t, Limits{}, steps, feedWhole)
			var names []string
			for _, c := range full.cmds {
				names = append(names, c.Name)
			}
			total := 0
			for _, st := range steps {
				total += len(st.data)
			}
			for cut := 0; cut <= total; cut++ {
				var part []step
				left := cut
				for _, st := range steps {
					if st.kind == 'E' {
						continue
					}
					if st.kind == 'C' || st.kind == 'S' {
						if left == 0 {
							break
						}
						if len(st.data) > left {
							st.data = st.data[:left]
						}
						left -= len(st.data)
					}
					part = append(part, st)
				}
				part = append(part, step{kind: 'E'})
				r, s := run(t, Limits{}, part, feedWhole)
				if len(r.cmds) > len(names) {
					t.Fatalf("cut %d: %d commands, full run has %d", cut, len(r.cmds), len(names))
				}
				for i, c := range r.cmds {
					if c.Name != names[i] {
						t.Fatalf("cut %d: command %d is %q, full run has %q", cut, i, c.Name, names[i])
					}
				}
				if len(r.xfers) > len(full.xfers) {
					t.Fatalf("cut %d: %d transfers, full run has %d", cut, len(r.xfers), len(full.xfers))
				}
				if len(s.chans) != 0 || len(s.pending) != 0 {
					t.Fatalf("cut %d: state left after End: %d chans, %d pending", cut, len(s.chans), len(s.pending))
				}
			}
		})
	}
}

func TestEndIsIdempotentAndFinal(t *testing.T) {
	r, s := run(t, Limits{}, parseScript(t, vsftpdPassive), feedWhole)
	n := len(r.log)
	s.End(protocols.ServerToClient, t0)
	s.End(protocols.ClientToServer, t0)
	s.Feed(protocols.ClientToServer, []byte("NOOP\r\n"), t0)
	s.Feed(protocols.ServerToClient, []byte("200 ok\r\n"), t0)
	s.Gap(protocols.ClientToServer, 5, t0)
	s.Feed(protocols.Dir(7), []byte("NOOP\r\n"), t0)
	s.Gap(protocols.Dir(7), 1, t0)
	s.End(protocols.Dir(7), t0)
	if len(r.log) != n {
		t.Errorf("events after End: %q", r.log[n:])
	}
	if strings.Contains(strings.Join(r.log, "\n"), "NOOP") {
		t.Error("NOOP decoded after End")
	}
}
