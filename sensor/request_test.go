package sensor

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"exfilwatch/attribution"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/events"
)

// reqSink records request notices and events in one sequence, with the
// packet time at which each arrived.
type reqSink struct {
	sink
	now  *time.Time
	log  []reqEntry
	reqs []events.HTTP
}

type reqEntry struct {
	kind string // "request", "http", "flow"
	flow uint64
	seq  uint64
	at   time.Time
}

func (k *reqSink) HTTPRequest(e *events.HTTP) {
	k.reqs = append(k.reqs, *e)
	k.log = append(k.log, reqEntry{"request", e.FlowID, e.Tx.Seq(), *k.now})
}

func (k *reqSink) HTTP(e *events.HTTP) {
	k.sink.HTTP(e)
	k.log = append(k.log, reqEntry{"http", e.FlowID, e.Tx.Seq(), *k.now})
}

func (k *reqSink) Flow(e *events.Flow) {
	k.sink.Flow(e)
	k.log = append(k.log, reqEntry{"flow", e.FlowID, 0, *k.now})
}

// fixedAttributor answers every lookup at once, with one result per flow.
type fixedAttributor map[uint64]*attribution.Result

func (a fixedAttributor) Begin(r attribution.Request) {
	a[r.ID] = &attribution.Result{Method: attribution.MethodSocketTable, PID: int32(1000 + r.ID), Name: "curl"}
}
func (a fixedAttributor) Peek(id uint64) (*attribution.Result, bool) { return a[id], a[id] != nil }
func (a fixedAttributor) Result(id uint64, _ time.Duration) *attribution.Result {
	return a[id]
}
func (a fixedAttributor) Forget(uint64) {}

func readFrames(t *testing.T, name string) []capture.Frame {
	t.Helper()
	f, err := capture.Open(filepath.Join("..", "captures", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []capture.Frame
	var fr capture.Frame
	for f.Next(&fr) == nil {
		c := fr
		c.Data = bytes.Clone(fr.Data)
		out = append(out, c)
	}
	return out
}

// replayNotices runs frames through a sensor whose sink takes request
// notices and whose attributor answers at once; it returns the sink after
// Flush, and how many log entries were there before Flush.
func replayNotices(t *testing.T, frames []capture.Frame, attr Attributor) (*reqSink, int) {
	t.Helper()
	var now time.Time
	k := &reqSink{now: &now}
	s := NewWithDeps(Config{}, Deps{Sink: k, Attributor: attr})
	for i := range frames {
		now = frames[i].Timestamp
		s.Frame(&frames[i])
	}
	before := len(k.log)
	s.Flush()
	return k, before
}

// checkNotices asserts the contract with the HTTP events: one notice per
// request with a body, none for the others, each before its event, at the
// packet that ended the body, with the same connection and attribution and
// the request as the event will have it. immediate: lookups answered at
// once, so nothing waited.
func checkNotices(t *testing.T, k *reqSink, wantBodies int, immediate bool) {
	t.Helper()
	type key struct{ flow, seq uint64 }
	noticeAt := map[key]int{}
	for i, e := range k.log {
		if e.kind != "request" {
			continue
		}
		kk := key{e.flow, e.seq}
		if _, dup := noticeAt[kk]; dup {
			t.Fatalf("two notices for flow %d transaction %d", e.flow, e.seq)
		}
		noticeAt[kk] = i
	}
	if len(noticeAt) != wantBodies || len(k.reqs) != wantBodies {
		t.Fatalf("%d notices, want %d", len(k.reqs), wantBodies)
	}
	byKey := map[key]events.HTTP{}
	for _, n := range k.reqs {
		byKey[key{n.FlowID, n.Tx.Seq()}] = n
	}
	matched := 0
	for i, e := range k.log {
		if e.kind != "http" {
			continue
		}
		ev := k.http[matched]
		matched++
		kk := key{ev.FlowID, ev.Tx.Seq()}
		at, ok := noticeAt[kk]
		if ev.Tx.Request.BodyBytes <= 0 {
			if ok {
				t.Fatalf("notice for %s %s without a body", ev.Tx.Request.Method, ev.Tx.Request.Target)
			}
			continue
		}
		if !ok || at > i {
			t.Fatalf("%s %s: notice at %d (found %v), event at %d", ev.Tx.Request.Method, ev.Tx.Request.Target, at, ok, i)
		}
		n := byKey[kk]
		if !reflect.DeepEqual(n.Conn, ev.Conn) || n.Attribution == nil || n.Attribution.PID == 0 {
			t.Fatalf("notice conn %+v, event conn %+v", n.Conn, ev.Conn)
		}
		if n.Tx == ev.Tx || n.Tx.Response != nil || !reflect.DeepEqual(n.Tx.Request, ev.Tx.Request) {
			t.Fatalf("notice request differs from the event's:\n%+v\n%+v", n.Tx.Request, ev.Tx.Request)
		}
		// Told at the packet that carried the last body byte.
		if got := k.log[at].at; immediate && !got.Equal(n.Tx.Request.End) {
			t.Fatalf("%s %s: notice at %v, body ended at %v", ev.Tx.Request.Method, ev.Tx.Request.Target, got, n.Tx.Request.End)
		}
		// Before the response: its status line (when no interim answer
		// came first), or at least its end.
		if r := ev.Tx.Response; immediate && r != nil {
			if len(r.Informational) == 0 && !k.log[at].at.Before(r.Start) || !k.log[at].at.Before(r.End) {
				t.Fatalf("%s %s: notice at %v, response %v..%v", ev.Tx.Request.Method, ev.Tx.Request.Target, k.log[at].at, r.Start, r.End)
			}
		}
	}
}

// Real curl uploads answered by the server (one with Expect: 100-continue).
func TestRequestNoticeCurl(t *testing.T) {
	k, _ := replayNotices(t, readFrames(t, "http_curl_put_raw.pcap"), fixedAttributor{})
	if len(k.http) != 2 {
		t.Fatalf("%d http events", len(k.http))
	}
	checkNotices(t, k, 2, true)
}

// Keep-alive: four transactions on one connection (two uploads between two
// downloads), then a multipart upload on another.
func TestRequestNoticeKeepAlive(t *testing.T) {
	k, _ := replayNotices(t, readFrames(t, "http_python_keepalive.pcap"), fixedAttributor{})
	if len(k.http) != 5 {
		t.Fatalf("%d http events", len(k.http))
	}
	checkNotices(t, k, 3, true)
	var seqs []uint64
	for _, n := range k.reqs {
		seqs = append(seqs, n.Tx.Seq())
	}
	if !reflect.DeepEqual(seqs, []uint64{2, 3, 1}) || len(k.reqs[2].Tx.Request.Multipart) != 3 {
		t.Fatalf("notices for transactions %v", seqs)
	}
}

// The server never answers (the capture is cut before the final response):
// the notice is out as soon as the body ends, while the flow is still open;
// the transaction event follows only when the flow is flushed.
func TestRequestNoticeWithoutResponse(t *testing.T) {
	frames := readFrames(t, "http_curl_put_raw.pcap")
	cut := -1
	for i := range frames {
		p := gopacket.NewPacket(frames[i].Data, layers.LinkTypeEthernet, gopacket.Default)
		if tl := p.TransportLayer(); tl != nil && bytes.HasPrefix(tl.LayerPayload(), []byte("HTTP/1.1 2")) {
			cut = i
			break
		}
	}
	if cut < 0 {
		t.Fatal("no final response in the capture")
	}
	k, before := replayNotices(t, frames[:cut], fixedAttributor{})
	var kinds []string
	for _, e := range k.log {
		kinds = append(kinds, e.kind)
	}
	if !reflect.DeepEqual(kinds, []string{"request", "http", "flow"}) || before != 1 {
		t.Fatalf("log %v, %d entries before the flush", kinds, before)
	}
	n, ev := k.reqs[0], k.http[0]
	if n.Tx.Request.Target != "/put/notes.txt" || n.Tx.Request.BodyBytes != 3000 || !n.Tx.Request.BodyComplete || n.Tx.Response != nil {
		t.Fatalf("notice %+v", n.Tx.Request)
	}
	if ev.Tx.Response == nil || ev.Tx.Response.StatusCode != 100 || n.Conn != ev.Conn || n.FlowID != k.flows[0].FlowID {
		t.Fatalf("event %+v conn %+v", ev.Tx.Response, ev.Conn)
	}
}

// Notices wait for the connection's process lookup like events, and keep
// their place in the order.
func TestRequestNoticeWaitsForAttribution(t *testing.T) {
	at := &slowAttributor{released: map[uint64]bool{}}
	var now time.Time
	k := &reqSink{now: &now}
	s := NewWithDeps(Config{AttributionWait: time.Hour}, Deps{Sink: k, Attributor: at})
	frames := readFrames(t, "http_curl_put_raw.pcap")
	for i := range frames {
		now = frames[i].Timestamp
		s.Frame(&frames[i])
	}
	if len(k.log) != 0 {
		t.Fatalf("%d written before the lookups answered", len(k.log))
	}
	at.released[1], at.released[2] = true, true
	s.Tick(now)
	s.Flush()
	if len(k.log) < 4 || k.log[0].kind != "request" || k.reqs[0].Attribution.PID != 1 {
		t.Fatalf("log %+v", k.log)
	}
	checkNotices(t, k, 2, false)
}

// A sink without RequestSink gets no notices, and neither does Async's
// wrapped sink unless it takes them.
func TestRequestNoticeOnlyForRequestSinks(t *testing.T) {
	if events.WantsRequests(&sink{}) || !events.WantsRequests(&reqSink{}) {
		t.Fatal("WantsRequests on plain sinks")
	}
	plain := &sink{}
	a := events.NewAsync(plain, func() error { return nil })
	defer a.Close()
	if events.WantsRequests(a) {
		t.Fatal("Async over a sink without RequestSink wants requests")
	}
	var now time.Time
	k := &reqSink{now: &now}
	b := events.NewAsync(k, func() error { return nil })
	if !events.WantsRequests(b) {
		t.Fatal("Async over a RequestSink does not want requests")
	}
	s := New(Config{}, b)
	frames := readFrames(t, "http_curl_put_raw.pcap")
	for i := range frames {
		s.Frame(&frames[i])
	}
	s.Flush()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(k.reqs) != 2 || k.log[0].kind != "request" {
		t.Fatalf("through Async: %d notices, log %+v", len(k.reqs), k.log)
	}
}
