// Test harness: scripted connections, feeding strategies and the invariants
// every state of the parser must satisfy.

package http

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols"
)

const (
	toSrv = protocols.ClientToServer
	toCli = protocols.ServerToClient
)

// event is one call on the Parser.
type event struct {
	dir  protocols.Dir
	data string
	gap  int64
	end  bool
}

func cli(s string) event                   { return event{dir: toSrv, data: s} }
func srv(s string) event                   { return event{dir: toCli, data: s} }
func gapEv(d protocols.Dir, n int64) event { return event{dir: d, gap: n} }
func endEv(d protocols.Dir) event          { return event{dir: d, end: true} }

// closeBoth ends the client side, then the server side.
func closeBoth() []event { return []event{endEv(toSrv), endEv(toCli)} }

// at is the timestamp of event i: every piece of one event shares it, so
// splitting an event does not change any timestamp.
func at(i int) time.Time {
	return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC).Add(time.Duration(i) * time.Second)
}

// splitter decides how event i's data is cut into Feed calls.
type splitter func(i int, d string) []string

func whole(_ int, d string) []string { return []string{d} }

func byteByByte(_ int, d string) []string {
	out := make([]string, len(d))
	for i := range d {
		out[i] = d[i : i+1]
	}
	return out
}

// splitOne cuts event e at offset k and leaves the others whole.
func splitOne(e, k int) splitter {
	return func(i int, d string) []string {
		if i != e || k <= 0 || k >= len(d) {
			return []string{d}
		}
		return []string{d[:k], d[k:]}
	}
}

// run drives a Parser through evs and returns what it emitted. Invariants
// are checked after every call.
func run(t testing.TB, lim Limits, evs []event, cut splitter) []*Transaction {
	t.Helper()
	var out []*Transaction
	// Every run also checks the OnRequest hook: once per request, when the
	// request is finished, before the transaction is emitted.
	notified := map[*Transaction]int{}
	p := New(lim, func(tx *Transaction) {
		if tx.Request.Method != "" && notified[tx] != 1 {
			t.Fatalf("emitted after %d OnRequest calls: %s", notified[tx], dump(tx))
		}
		out = append(out, tx)
	})
	p.OnRequest(func(tx *Transaction) {
		notified[tx]++
		if notified[tx] != 1 || !tx.reqDone || tx.Request.Method == "" || tx.Seq() == 0 {
			t.Fatalf("OnRequest call %d: %s", notified[tx], dump(tx))
		}
	})
	for i, e := range evs {
		ts := at(i)
		switch {
		case e.end:
			p.End(e.dir, ts)
		case e.gap != 0:
			p.Gap(e.dir, e.gap, ts)
		default:
			for _, c := range cut(i, e.data) {
				p.Feed(e.dir, []byte(c), ts)
				checkInvariants(t, p)
			}
		}
		checkInvariants(t, p)
	}
	for _, tx := range out {
		checkTx(t, p, tx)
	}
	return out
}

// checkInvariants asserts the bounded-state promises.
func checkInvariants(t testing.TB, p *Parser) {
	t.Helper()
	lim := p.lim
	maxLine := max(lim.MaxLineBytes, lim.MaxChunkLineBytes) + 1
	if p.stalls != 0 {
		t.Fatalf("parser stalled %d times", p.stalls)
	}
	for i := range p.half {
		h := &p.half[i]
		if len(h.lines.buf) > maxLine || cap(h.lines.buf) > maxLine {
			t.Fatalf("%v line buffer len %d cap %d > %d", h.dir, len(h.lines.buf), cap(h.lines.buf), maxLine)
		}
		mb := lim.MaxMultipartHeaderBytes + 1
		if len(h.mp.lines.buf) > mb || cap(h.mp.lines.buf) > mb {
			t.Fatalf("multipart line buffer len %d cap %d > %d", len(h.mp.lines.buf), cap(h.mp.lines.buf), mb)
		}
		if len(h.mp.delim) > maxBoundaryLen+3 {
			t.Fatalf("delimiter of %d bytes", len(h.mp.delim))
		}
		if h.npeek > len(h.peek) || h.remaining < 0 || h.body < 0 {
			t.Fatalf("%v bad counters: npeek %d remaining %d body %d", h.dir, h.npeek, h.remaining, h.body)
		}
		if h.tx != nil {
			checkTxBounds(t, p, h.tx)
		}
	}
	if len(p.queue) > lim.MaxPending+2 {
		t.Fatalf("queue holds %d > MaxPending+2", len(p.queue))
	}
	if len(p.orphans) > lim.MaxAnomalies+1 {
		t.Fatalf("%d orphan anomalies", len(p.orphans))
	}
	for _, tx := range p.queue {
		checkTxBounds(t, p, tx)
	}
}

func checkTxBounds(t testing.TB, p *Parser, tx *Transaction) {
	t.Helper()
	if len(tx.Anomalies) > p.lim.MaxAnomalies+1 {
		t.Fatalf("%d anomalies kept", len(tx.Anomalies))
	}
	if len(tx.Request.Multipart) > p.lim.MaxMultipartParts {
		t.Fatalf("%d parts kept", len(tx.Request.Multipart))
	}
	if tx.Response != nil && len(tx.Response.Informational) > p.lim.MaxInformational {
		t.Fatalf("%d informational codes kept", len(tx.Response.Informational))
	}
}

// checkTx asserts that an emitted transaction is sane.
func checkTx(t testing.TB, p *Parser, tx *Transaction) {
	t.Helper()
	checkTxBounds(t, p, tx)
	r := tx.Request
	if r.Method == "" && !hasAnomaly(tx, AnomalyUnmatchedResponse) {
		t.Fatalf("transaction without method nor unmatched_response: %s", dump(tx))
	}
	if r.Method != "" && (r.Version == "" || r.Target == "") {
		t.Fatalf("request without version or target: %s", dump(tx))
	}
	if r.BodyBytes < 0 || r.HeaderBytes < 0 {
		t.Fatalf("negative counts: %s", dump(tx))
	}
	if r.BodyHashValid && !r.BodyComplete {
		t.Fatalf("hash valid on an incomplete body: %s", dump(tx))
	}
	if tx.Response != nil && tx.Response.BodyBytes < 0 {
		t.Fatalf("negative response body: %s", dump(tx))
	}
	if !tx.reqDone || tx.Response != nil && !tx.respDone {
		t.Fatalf("emitted unfinished transaction: %s", dump(tx))
	}
	for _, a := range tx.Anomalies {
		if !strings.HasPrefix(a.Name, "http.") {
			t.Fatalf("anomaly name %q", a.Name)
		}
	}
}

func hasAnomaly(tx *Transaction, name string) bool {
	for _, a := range tx.Anomalies {
		if a.Name == name {
			return true
		}
	}
	return false
}

func anomalyNames(tx *Transaction) []string {
	var out []string
	for _, a := range tx.Anomalies {
		out = append(out, a.Name)
	}
	return out
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func dump(tx *Transaction) string {
	s := fmt.Sprintf("%+v", *tx)
	if tx.Response != nil {
		s += fmt.Sprintf(" resp=%+v", *tx.Response)
	}
	return s
}

// same reports whether two runs emitted identical transactions.
func same(a, b []*Transaction) bool { return reflect.DeepEqual(a, b) }

func diff(a, b []*Transaction) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%d vs %d transactions\n", len(a), len(b))
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = dump(a[i])
		}
		if i < len(b) {
			y = dump(b[i])
		}
		if x != y {
			fmt.Fprintf(&s, "#%d\n  %s\n  %s\n", i, x, y)
		}
	}
	return s.String()
}

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// runSplits runs evs whole, byte by byte and with each event split in two at
// every offset; all runs must agree. It returns the whole run's result.
func runSplits(t *testing.T, lim Limits, evs []event) []*Transaction {
	t.Helper()
	want := run(t, lim, evs, whole)
	if got := run(t, lim, evs, byteByByte); !same(got, want) {
		t.Fatalf("byte by byte differs:\n%s", diff(got, want))
	}
	for e, ev := range evs {
		for k := 1; k < len(ev.data); k++ {
			if got := run(t, lim, evs, splitOne(e, k)); !same(got, want) {
				t.Fatalf("event %d split at %d differs:\n%s", e, k, diff(got, want))
			}
		}
	}
	return want
}
