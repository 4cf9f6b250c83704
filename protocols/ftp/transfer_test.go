package ftp

import (
	"crypto/sha256"
	"testing"
)

// Data-connection orderings: when the Transfer is emitted and what it holds.
func TestTransferOrdering(t *testing.T) {
	type wantX struct {
		cmd, file   string
		up, down    int64
		code        int // 0: Reply nil
		gap         bool
		emittedLast string // the script line after which the Transfer was emitted
	}
	tests := []struct {
		name   string
		script string
		want   []wantX
	}{{
		name: "data open before the transfer command",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			up 1 100
			C STOR early.bin
			S 150 Ok to send data.
			up 1 23
			close 1
			S 226 Transfer complete.
		`,
		want: []wantX{{cmd: "STOR", file: "early.bin", up: 123, code: 226, emittedLast: "S 226 Transfer complete."}},
	}, {
		name: "data close before the 226",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C RETR a
			open 1
			S 150 Opening BINARY mode data connection for a (10 bytes).
			down 1 10
			close 1
			S 226 Transfer complete.
		`,
		want: []wantX{{cmd: "RETR", file: "a", down: 10, code: 226, emittedLast: "S 226 Transfer complete."}},
	}, {
		name: "226 before data close",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C RETR a
			open 1
			S 150 Opening BINARY mode data connection for a (10 bytes).
			down 1 10
			S 226 Transfer complete.
			close 1
		`,
		want: []wantX{{cmd: "RETR", file: "a", down: 10, code: 226, emittedLast: "close 1"}},
	}, {
		name: "two consecutive transfers",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR one
			open 1
			S 150 Ok to send data.
			up 1 1
			close 1
			S 226 Transfer complete.
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,65).
			C STOR two
			open 2
			S 150 Ok to send data.
			up 2 2
			S 226 Transfer complete.
			close 2
		`,
		want: []wantX{
			{cmd: "STOR", file: "one", up: 1, code: 226, emittedLast: "S 226 Transfer complete."},
			{cmd: "STOR", file: "two", up: 2, code: 226, emittedLast: "close 2"},
		},
	}, {
		name: "error without data connection: no transfer",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C RETR missing
			S 550 Failed to open file.
			open 1
			close 1
			end
		`,
	}, {
		name: "error after the data connection opened: zero bytes",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			C RETR missing
			S 550 Failed to open file.
			close 1
		`,
		want: []wantX{{cmd: "RETR", file: "missing", code: 550, emittedLast: "close 1"}},
	}, {
		name: "425 without any expectation",
		script: `
			C RETR a
			S 425 Use PORT or PASV first.
			end
		`,
	}, {
		name: "unclaimed data connection flushed at End with no command",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			up 1 10
			close 1
			C QUIT
			S 221 Goodbye.
			end
		`,
		want: []wantX{{up: 10, emittedLast: "end"}},
	}, {
		name: "session ends mid-transfer",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR cut
			open 1
			S 150 Ok to send data.
			up 1 50
			end
		`,
		want: []wantX{{cmd: "STOR", file: "cut", up: 50, emittedLast: "end"}},
	}, {
		name: "success reply but the data connection never seen",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR unseen
			S 150 Ok to send data.
			S 226 Transfer complete.
			end
		`,
	}, {
		name: "capture gap on the data connection",
		script: `
			C PORT 10,0,0,5,4,0
			S 200 PORT command successful. Consider using PASV.
			C STOR g
			open 1
			S 150 Ok to send data.
			up 1 10
			dgap 1 up 90
			down 1 3
			close 1
			S 226 Transfer complete.
		`,
		want: []wantX{{cmd: "STOR", file: "g", up: 100, down: 3, gap: true, code: 226, emittedLast: "S 226 Transfer complete."}},
	}, {
		name: "server connects before replying 200 to PORT",
		script: `
			C PORT 10,0,0,5,4,0
			open 1
			S 200 PORT command successful. Consider using PASV.
			C RETR f
			S 150 Opening BINARY mode data connection for f (7 bytes).
			down 1 7
			close 1
			S 226 Transfer complete.
		`,
		want: []wantX{{cmd: "RETR", file: "f", down: 7, code: 226, emittedLast: "S 226 Transfer complete."}},
	}, {
		name: "refused PORT is forgotten",
		script: `
			C PORT 10,0,0,5,4,0
			S 500 Illegal PORT command.
			C RETR f
			open 1
			S 425 Use PORT or PASV first.
			close 1
			end
		`,
	}, {
		name: "PASV twice: the connected expectation makes the transfer",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,65).
			C RETR a
			open 2
			S 150 Opening BINARY mode data connection for a (4 bytes).
			down 2 4
			close 2
			S 226 Transfer complete.
			end
		`,
		want: []wantX{{cmd: "RETR", file: "a", down: 4, code: 226, emittedLast: "S 226 Transfer complete."}},
	}, {
		name: "pending transfer command evicted: transfer emitted on close without reply",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C RETR a
			open 1
			down 1 4
			C NOOP
			C NOOP
			close 1
		`,
		want: []wantX{{cmd: "RETR", file: "a", down: 4, emittedLast: "close 1"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := Limits{}
			if tt.name == "pending transfer command evicted: transfer emitted on close without reply" {
				lim.MaxPendingCommands = 2
			}
			steps := parseScript(t, tt.script)
			r := &recorder{}
			s := NewSession(lim, r.handler())
			emittedAt := map[int]string{} // transfer index -> script line
			lines := splitLines(tt.script)
			for i := range steps {
				n := len(r.xfers)
				play(s, steps[i:i+1], feedWhole) // one step at a time, at(0)… times do not matter here
				for k := n; k < len(r.xfers); k++ {
					emittedAt[k] = lines[i]
				}
			}
			if len(r.xfers) != len(tt.want) {
				t.Fatalf("%d transfers, want %d: %v", len(r.xfers), len(tt.want), r.log)
			}
			for i, w := range tt.want {
				x := r.xfers[i]
				code := 0
				if x.Reply != nil {
					code = x.Reply.Code
				}
				if x.Command != w.cmd || x.Filename != w.file || x.BytesToServer != w.up || x.BytesToClient != w.down ||
					code != w.code || x.Gap != w.gap || x.Upload != isUpload(w.cmd) {
					t.Errorf("transfer %d = %+v (code %d), want %+v", i, *x, code, w)
				}
				if emittedAt[i] != w.emittedLast {
					t.Errorf("transfer %d emitted after %q, want after %q", i, emittedAt[i], w.emittedLast)
				}
			}
			if len(s.chans) != 0 && steps[len(steps)-1].kind == 'E' {
				t.Errorf("%d data channels left after End", len(s.chans))
			}
		})
	}
}

// Transfer times: Start and End span the data open, command, replies and
// close, whatever their order.
func TestTransferTimes(t *testing.T) {
	script := `
		C PASV
		S 227 Entering Passive Mode (198,18,0,2,156,64).
		open 1
		C STOR x
		S 150 Ok to send data.
		S 226 Transfer complete.
		close 1
	`
	r, _ := run(t, Limits{}, parseScript(t, script), feedWhole)
	if len(r.xfers) != 1 {
		t.Fatal(r.log)
	}
	x := r.xfers[0]
	if !x.Start.Equal(when(t, script, "open 1")) || !x.End.Equal(when(t, script, "close 1")) ||
		!x.CommandStart.Equal(when(t, script, "C STOR x")) {
		t.Errorf("times %v %v %v", x.Start, x.End, x.CommandStart)
	}
}

func TestDataCallsOnUnknownIDs(t *testing.T) {
	r := &recorder{}
	s := NewSession(Limits{}, r.handler())
	s.DataOpen(7, t0)
	s.DataBytes(7, true, 10)
	s.DataGap(7, false, 10)
	s.DataClose(7, t0)
	s.DataBytes(0, true, -5)
	s.End(0, t0)
	s.End(1, t0)
	s.DataClose(1, t0)
	if len(r.log) != 0 {
		t.Errorf("%v", r.log)
	}
}

func TestDataBytesSaturates(t *testing.T) {
	r, s := run(t, Limits{}, parseScript(t, `
		C PASV
		S 227 (1,2,3,4,5,6)
		C RETR x
	`), feedWhole)
	s.DataBytes(1, false, 1<<62)
	s.DataBytes(1, false, 1<<62)
	s.DataBytes(1, false, 1<<62)
	s.DataGap(1, false, -1)
	s.DataClose(1, t0)
	s.End(1, t0)
	s.End(0, t0)
	if len(r.xfers) != 1 || r.xfers[0].BytesToClient != 1<<63-1 {
		t.Errorf("%v", r.log)
	}
}

func TestDataBytesAllocs(t *testing.T) {
	_, s := run(t, Limits{}, parseScript(t, `
		C PASV
		S 227 Entering Passive Mode (198,18,0,2,156,64).
		C PASV
		S 227 Entering Passive Mode (198,18,0,2,156,65).
		C STOR x
	`), feedWhole)
	s.DataOpen(2, t0)
	n := testing.AllocsPerRun(1000, func() {
		s.DataBytes(2, true, 1460)
		s.DataBytes(1, false, 1)
		s.DataBytes(99, true, 1)
	})
	if n != 0 {
		t.Errorf("DataBytes allocates %v times per run", n)
	}
}

// The data connection's content hash: which direction, from which byte,
// and what voids it.
func TestTransferHash(t *testing.T) {
	sum := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	tests := []struct {
		name     string
		script   string
		toServer bool
		valid    bool
		want     [32]byte
	}{{
		name: "bytes before the STOR are hashed with the rest",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			upd 1 early-
			C STOR early.bin
			S 150 Ok to send data.
			upd 1 late
			close 1
			S 226 Transfer complete.
		`,
		toServer: true, valid: true, want: sum("early-late"),
	}, {
		name: "RETR hashes the download; upload bytes before the command are not mixed in",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			upd 1 noise
			C RETR a
			S 150 Opening BINARY mode data connection.
			downd 1 file
			downd 1 -content
			close 1
			S 226 Transfer complete.
		`,
		toServer: false, valid: true, want: sum("file-content"),
	}, {
		name: "a gap voids the hash",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR x
			open 1
			upd 1 abc
			dgap 1 up 10
			upd 1 def
			close 1
			S 226 Transfer complete.
		`,
		toServer: true, valid: false,
	}, {
		name: "a gap in the other direction does not",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR x
			open 1
			upd 1 abc
			dgap 1 down 10
			close 1
			S 226 Transfer complete.
		`,
		toServer: true, valid: true, want: sum("abc"),
	}, {
		name: "bytes counted without content void the hash",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C APPE x
			open 1
			upd 1 abc
			up 1 5
			close 1
			S 226 Transfer complete.
		`,
		toServer: true, valid: false,
	}, {
		name: "empty upload: the hash of nothing",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			C STOR empty
			open 1
			close 1
			S 226 Transfer complete.
		`,
		toServer: true, valid: true, want: sum(""),
	}, {
		name: "unclaimed channel that only uploaded",
		script: `
			C PASV
			S 227 Entering Passive Mode (198,18,0,2,156,64).
			open 1
			upd 1 orphan
			close 1
			end
		`,
		toServer: true, valid: true, want: sum("orphan"),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := run(t, Limits{}, parseScript(t, tc.script), feedWhole)
			if len(r.xfers) != 1 {
				t.Fatalf("%d transfers: %v", len(r.xfers), r.log)
			}
			x := r.xfers[0]
			if x.HashToServer != tc.toServer || x.HashValid != tc.valid {
				t.Fatalf("HashToServer %v HashValid %v, want %v %v", x.HashToServer, x.HashValid, tc.toServer, tc.valid)
			}
			if tc.valid && x.SHA256 != tc.want {
				t.Errorf("sha256 %x, want %x", x.SHA256, tc.want)
			}
		})
	}
}

func TestDataPayloadAllocs(t *testing.T) {
	_, s := run(t, Limits{}, parseScript(t, `
		C PASV
		S 227 Entering Passive Mode (198,18,0,2,156,64).
		C STOR x
	`), feedWhole)
	b := make([]byte, 1460)
	s.DataPayload(1, true, b) // allocates the hash state
	n := testing.AllocsPerRun(1000, func() {
		s.DataPayload(1, true, b)
		s.DataPayload(1, false, b) // the other direction is not hashed once bound
		s.DataPayload(99, true, b)
	})
	if n != 0 {
		t.Errorf("DataPayload allocates %v times per run", n)
	}
}
