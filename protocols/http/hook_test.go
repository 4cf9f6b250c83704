package http

import (
	"testing"
	"time"
)

// hookRecorder notes OnRequest calls and emits in one sequence, with what
// the transaction held at the moment of the call.
type hookRecorder struct {
	log  []string
	reqs []Transaction // copies taken in the hook
	hook []*Transaction
	out  []*Transaction
}

func newHooked() (*Parser, *hookRecorder) {
	r := &hookRecorder{}
	p := New(Limits{}, func(tx *Transaction) {
		r.log = append(r.log, "emit "+tx.Request.Target)
		r.out = append(r.out, tx)
	})
	p.OnRequest(func(tx *Transaction) {
		r.log = append(r.log, "request "+tx.Request.Target)
		r.reqs = append(r.reqs, *tx)
		r.hook = append(r.hook, tx)
	})
	return p, r
}

func (r *hookRecorder) want(t *testing.T, log ...string) {
	t.Helper()
	check(t, "log", r.log, log)
}

// Pipelined uploads on a keep-alive connection: each request is heard of as
// soon as its body ends, in order, before any response; the emitted
// transactions are the same ones, with the same Seq.
func TestOnRequestPipelined(t *testing.T) {
	p, r := newHooked()
	ts1, ts2 := time.Unix(10, 0), time.Unix(11, 0)
	p.Feed(toSrv, []byte("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"), ts1)
	r.want(t, "request /a")
	p.Feed(toSrv, []byte("0\r\n\r\nGET /c HTTP/1.1\r\n\r\n"), ts2)
	r.want(t, "request /a", "request /b", "request /c")
	a, b := r.reqs[0], r.reqs[1]
	if a.Response != nil || a.Request.BodyBytes != 5 || !a.Request.BodyComplete || !a.Request.BodyHashValid ||
		a.Request.BodySHA256 != sum("hello") || !a.Request.End.Equal(ts1) || a.Seq() != 1 {
		t.Fatalf("first request at the hook: %s", dump(&a))
	}
	if b.Request.BodyBytes != 3 || !b.Request.Chunked || !b.Request.End.Equal(ts2) || b.Seq() != 2 || r.reqs[2].Seq() != 3 {
		t.Fatalf("second request at the hook: %s", dump(&b))
	}
	p.Feed(toCli, []byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), ts2)
	r.want(t, "request /a", "request /b", "request /c", "emit /a", "emit /b", "emit /c")
	for i, tx := range r.out {
		if tx != r.hook[i] || tx.Seq() != uint64(i+1) || tx.Response == nil {
			t.Fatalf("emitted #%d is not the transaction the hook saw: %s", i, dump(tx))
		}
		if tx.Request.End != r.reqs[i].Request.End || tx.Request.BodySHA256 != r.reqs[i].Request.BodySHA256 {
			t.Fatalf("request changed after the hook: %s", dump(tx))
		}
	}
}

// A server that never answers: the request is heard of at its last byte;
// the transaction only leaves when the connection ends.
func TestOnRequestWithoutResponse(t *testing.T) {
	p, r := newHooked()
	p.Feed(toSrv, []byte("PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nda"), time.Unix(1, 0))
	r.want(t)
	p.Feed(toSrv, []byte("ta"), time.Unix(2, 0))
	r.want(t, "request /x")
	p.End(toSrv, time.Unix(3, 0))
	r.want(t, "request /x")
	p.End(toCli, time.Unix(4, 0))
	r.want(t, "request /x", "emit /x")
	if r.out[0].Response != nil || !r.out[0].Request.End.Equal(time.Unix(2, 0)) {
		t.Fatalf("emitted %s", dump(r.out[0]))
	}
}

// A body cut short by the connection's end is heard of then, incomplete.
func TestOnRequestGivenUp(t *testing.T) {
	p, r := newHooked()
	p.Feed(toSrv, []byte("POST /cut HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"), time.Unix(1, 0))
	p.Feed(toCli, []byte("HTTP/1.1 100 Continue\r\n\r\n"), time.Unix(1, 0))
	r.want(t)
	p.End(toSrv, time.Unix(5, 0))
	r.want(t, "request /cut")
	if q := r.reqs[0].Request; q.BodyComplete || q.BodyHashValid || q.BodyBytes != 3 || !q.End.Equal(time.Unix(5, 0)) {
		t.Fatalf("given-up request: %+v", q)
	}
	// The interim answer came first: the parser's transaction already has
	// a Response when the hook runs.
	if r.reqs[0].Response == nil || len(r.reqs[0].Response.Informational) != 1 {
		t.Fatalf("interim response not visible at the hook: %s", dump(&r.reqs[0]))
	}
}

// Expect: 100-continue: the hook waits for the body, not the headers.
func TestOnRequestExpectContinue(t *testing.T) {
	p, r := newHooked()
	p.Feed(toSrv, []byte("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), time.Unix(1, 0))
	p.Feed(toCli, []byte("HTTP/1.1 100 Continue\r\n\r\n"), time.Unix(2, 0))
	r.want(t)
	p.Feed(toSrv, []byte("xyz"), time.Unix(3, 0))
	r.want(t, "request /e")
	p.Feed(toCli, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), time.Unix(4, 0))
	r.want(t, "request /e", "emit /e")
}

// Reset drops the hook, and numbering starts again.
func TestOnRequestReset(t *testing.T) {
	p, r := newHooked()
	p.Feed(toSrv, []byte("GET /1 HTTP/1.1\r\n\r\n"), time.Unix(1, 0))
	var out []*Transaction
	p.Reset(func(tx *Transaction) { out = append(out, tx) })
	p.Feed(toSrv, []byte("GET /2 HTTP/1.1\r\n\r\n"), time.Unix(1, 0))
	p.Feed(toCli, []byte("HTTP/1.1 204 No Content\r\n\r\n"), time.Unix(1, 0))
	r.want(t, "request /1")
	if len(out) != 1 || out[0].Seq() != 1 {
		t.Fatalf("after Reset: %d transactions", len(out))
	}
}

// The hook adds no allocation: a whole exchange costs the same with it.
func TestOnRequestAllocs(t *testing.T) {
	req := []byte("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	ts := time.Unix(1, 0)
	measure := func(hook bool) float64 {
		p := New(Limits{}, func(*Transaction) {})
		calls := 0
		if hook {
			p.OnRequest(func(*Transaction) { calls++ })
		}
		n := testing.AllocsPerRun(500, func() {
			p.Feed(toSrv, req, ts)
			p.Feed(toCli, resp, ts)
		})
		if hook && calls == 0 {
			t.Fatal("hook not called")
		}
		return n
	}
	if without, with := measure(false), measure(true); with != without {
		t.Fatalf("%v allocs per exchange with the hook, %v without", with, without)
	}
}
