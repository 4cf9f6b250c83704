package http

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// fuzzLimits are small so that fuzzing reaches every limit quickly.
var fuzzLimits = Limits{
	MaxLineBytes: 64, MaxHeaderBytes: 256, MaxHeaders: 8, MaxChunkLineBytes: 32,
	MaxPending: 3, MaxMultipartParts: 3, MaxMultipartHeaderBytes: 64, MaxChunkSize: 1 << 20,
	MaxAnomalies: 4, MaxInformational: 2,
}

// schedule interleaves the two directions in pieces chosen by seed, with the
// odd gap, and ends both sides in a seed-chosen order.
func schedule(client, server []byte, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	var evs []event
	rest := [2][]byte{client, server}
	for len(rest[0])+len(rest[1]) > 0 {
		d := toSrv
		if len(rest[0]) == 0 || len(rest[1]) > 0 && r.IntN(2) == 1 {
			d = toCli
		}
		if r.IntN(40) == 0 {
			evs = append(evs, gapEv(d, 1+r.Int64N(200)))
			continue
		}
		n := 1 + r.IntN(min(len(rest[d]), 1+r.IntN(256)))
		evs = append(evs, event{dir: d, data: string(rest[d][:n])})
		rest[d] = rest[d][n:]
	}
	if r.IntN(2) == 0 {
		return append(evs, endEv(toSrv), endEv(toCli))
	}
	return append(evs, endEv(toCli), endEv(toSrv))
}

// FuzzFeed drives both directions with arbitrary bytes in random pieces. It
// checks that nothing panics, that state stays bounded after every call (run
// checks the line buffers, queue, anomaly lists), that emitted transactions
// are sane, and that cutting every Feed further never changes the result.
func FuzzFeed(f *testing.F) {
	for i, x := range exchanges() {
		var c, s strings.Builder
		for _, e := range x.evs {
			if e.dir == toSrv {
				c.WriteString(e.data)
			} else {
				s.WriteString(e.data)
			}
		}
		f.Add([]byte(c.String()), []byte(s.String()), uint64(i))
	}
	f.Add([]byte("GET /path\r\n"), []byte("raw"), uint64(7))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n"), []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbody"), uint64(3))

	f.Fuzz(func(t *testing.T, client, server []byte, seed uint64) {
		if len(client)+len(server) > 1<<16 {
			return
		}
		lim := fuzzLimits
		if seed&1 == 1 {
			lim = Limits{}
		}
		evs := schedule(client, server, seed)
		want := run(t, lim, evs, whole)

		r := rand.New(rand.NewPCG(seed, 1))
		cut := func(_ int, d string) []string {
			var out []string
			for len(d) > 0 {
				n := 1 + r.IntN(len(d))
				out = append(out, d[:n])
				d = d[n:]
			}
			return out
		}
		if got := run(t, lim, evs, cut); !same(got, want) {
			t.Fatalf("further cuts changed the result:\n%s", diff(got, want))
		}
	})
}
