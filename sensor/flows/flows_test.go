package flows

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols"
	"exfilwatch/sensor/decode"
)

// recorder is a Handler that writes down what it is told, per flow.
type recorder struct {
	stream map[uint64]*[2]strings.Builder
	log    []string
	closed []*Flow
}

func newRecorder() *recorder { return &recorder{stream: map[uint64]*[2]strings.Builder{}} }

func (r *recorder) Opened(f *Flow) {
	r.stream[f.ID] = &[2]strings.Builder{}
	r.log = append(r.log, fmt.Sprintf("open %d", f.ID))
}

func (r *recorder) Data(f *Flow, d protocols.Dir, b []byte, ts time.Time) {
	r.stream[f.ID][d].Write(b)
}

func (r *recorder) Gap(f *Flow, d protocols.Dir, n int64, ts time.Time) {
	fmt.Fprintf(&r.stream[f.ID][d], "<gap %d>", n)
}

func (r *recorder) End(f *Flow, d protocols.Dir, ts time.Time) {
	r.log = append(r.log, fmt.Sprintf("end %d %v", f.ID, d))
}

func (r *recorder) Closed(f *Flow) {
	snap := *f // the table reuses f after this call
	r.closed = append(r.closed, &snap)
	r.log = append(r.log, fmt.Sprintf("closed %d %v", f.ID, f.Reason()))
}

func (r *recorder) text(id uint64, d protocols.Dir) string { return r.stream[id][d].String() }

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// conn builds packets of one connection between 198.18.0.1:40000 and
// 198.18.0.2:80 with client ISN 1000 and server ISN 5000.
type conn struct {
	tb  *Table
	now time.Time
}

func mapped(a, b, c, d byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a, 13: b, 14: c, 15: d}
}

func (c *conn) send(fromClient bool, flags uint8, seq, ack uint32, payload string) {
	c.now = c.now.Add(time.Millisecond)
	p := decode.Packet{Timestamp: c.now, Proto: decode.ProtoTCP, Flags: flags, Seq: seq, Ack: ack, Payload: []byte(payload), WireLen: 54 + len(payload)}
	if fromClient {
		p.Src, p.Dst, p.SrcPort, p.DstPort = mapped(198, 18, 0, 1), mapped(198, 18, 0, 2), 40000, 80
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort = mapped(198, 18, 0, 2), mapped(198, 18, 0, 1), 80, 40000
	}
	c.tb.Packet(&p)
}

const (
	syn = decode.FlagSYN
	ack = decode.FlagACK
	fin = decode.FlagFIN | decode.FlagACK
	rst = decode.FlagRST
)

func handshake(c *conn) {
	c.send(true, syn, 1000, 0, "")
	c.send(false, syn|ack, 5000, 1001, "")
	c.send(true, ack, 1001, 5001, "")
}

func TestInOrderBothDirectionsAndFINClose(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1001, 5001, "GET / HTTP/1.1\r\n")
	c.send(true, ack, 1017, 5001, "\r\n")
	c.send(false, ack, 5001, 1019, "HTTP/1.1 200 OK\r\n")
	c.send(true, fin, 1019, 5018, "")
	c.send(false, fin, 5018, 1020, "")
	c.send(true, ack, 1020, 5019, "")
	if got := r.text(1, protocols.ClientToServer); got != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("client stream %q", got)
	}
	if got := r.text(1, protocols.ServerToClient); got != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("server stream %q", got)
	}
	// The last ACK of the FIN exchange takes the flow out of the table at once.
	if len(r.closed) != 1 || r.closed[0].Reason() != CloseFIN || len(c.tb.m) != 0 {
		t.Fatalf("closed %v, table %d", r.log, len(c.tb.m))
	}
	f := r.closed[0]
	if f.Packets(protocols.ClientToServer) != 6 || f.Packets(protocols.ServerToClient) != 3 {
		t.Fatalf("packets %d/%d", f.Packets(0), f.Packets(1))
	}
	if f.Client().AddrPort().String() != "198.18.0.1:40000" {
		t.Fatalf("client %v", f.Client().AddrPort())
	}
	// A retransmitted FIN or ACK after that opens no flow.
	c.send(false, fin, 5018, 1020, "")
	c.send(true, ack, 1020, 5019, "")
	if c.tb.C.Flows != 1 || c.tb.C.Orphans != 2 {
		t.Fatalf("flows %d orphans %d", c.tb.C.Flows, c.tb.C.Orphans)
	}
}

func TestFINWithoutFinalACKLingers(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{ClosedLinger: time.Second}, r), now: t0}
	handshake(c)
	c.send(true, fin, 1001, 5001, "")
	c.send(false, fin, 5001, 1002, "")
	if len(r.closed) != 0 || len(c.tb.m) != 1 {
		t.Fatalf("closed before the last ACK or linger: %v", r.log)
	}
	c.now = c.now.Add(2 * time.Second)
	p := decode.Packet{Timestamp: c.now, Proto: decode.ProtoUDP, Src: mapped(10, 0, 0, 1), Dst: mapped(10, 0, 0, 2), SrcPort: 5353, DstPort: 5353}
	c.tb.Packet(&p)
	if len(r.closed) != 1 || r.closed[0].Reason() != CloseFIN {
		t.Fatalf("log %v", r.log)
	}
}

func TestOutOfOrderRetransmitAndOverlapFirstWins(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1011, 5001, "KLMNO")      // early: buffered
	c.send(true, ack, 1013, 5001, "xxxPQ")      // overlaps the buffered "MNO": first copy wins
	c.send(true, ack, 1001, 5001, "ABCDEFGHIJ") // fills the hole
	c.send(true, ack, 1001, 5001, "ABCDE")      // retransmission
	c.send(true, ack, 1016, 5001, "zzRST")      // overlaps delivered "PQ": only "RST" is new
	if got := r.text(1, protocols.ClientToServer); got != "ABCDEFGHIJKLMNOPQRST" {
		t.Fatalf("stream %q", got)
	}
	f := c.tb.head
	h := f.Half(protocols.ClientToServer)
	if h.Retransmits != 1 || h.OutOfOrder != 2 || h.Bytes != 20 {
		t.Fatalf("stats %+v", h)
	}
	if c.tb.C.Buffered != 0 {
		t.Fatalf("buffered %d after drain", c.tb.C.Buffered)
	}
}

func TestGapSkippedWhenPeerAcknowledgesIt(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1001, 5001, "AAAA")
	// 1005..1009 lost by the capture
	c.send(true, ack, 1009, 5001, "CCCC")
	c.send(false, ack, 5001, 1013, "") // the server got everything
	c.send(true, ack, 1013, 5001, "DD")
	if got := r.text(1, protocols.ClientToServer); got != "AAAA<gap 4>CCCCDD" {
		t.Fatalf("stream %q", got)
	}
	if h := c.tb.head.Half(protocols.ClientToServer); h.Gaps != 1 || h.GapBytes != 4 {
		t.Fatalf("stats %+v", h)
	}
}

func TestGapAtEndCountsBytesUpToFIN(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1001, 5001, "HEAD")
	c.send(true, fin, 1105, 5001, "") // 100 bytes never captured before the FIN
	c.tb.Flush()
	if got := r.text(1, protocols.ClientToServer); got != "HEAD<gap 100>" {
		t.Fatalf("stream %q", got)
	}
}

func TestPerFlowBufferLimitForcesSkip(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{MaxBufferedPerFlow: 10}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1011, 5001, "0123456")
	c.send(true, ack, 1018, 5001, "789ab") // 12 buffered > 10: skip the hole
	if got := r.text(1, protocols.ClientToServer); got != "<gap 10>0123456789ab" {
		t.Fatalf("stream %q", got)
	}
	if h := c.tb.head.Half(protocols.ClientToServer); h.ForcedSkips != 1 {
		t.Fatalf("stats %+v", h)
	}
	if c.tb.C.Buffered != 0 {
		t.Fatalf("buffered %d", c.tb.C.Buffered)
	}
}

func TestMidStreamPickupGuessesClientFromPorts(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	c.send(false, ack, 7000, 3000, "HTTP/1.1 200 OK\r\n") // server speaks first in the capture
	c.send(true, ack, 3000, 7017, "GET /next HTTP/1.1\r\n")
	f := c.tb.head
	if f.SawSYN || f.Client().Port != 40000 {
		t.Fatalf("client %v sawSYN %v", f.Client().AddrPort(), f.SawSYN)
	}
	if got := r.text(1, protocols.ServerToClient); got != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("server stream %q", got)
	}
	if got := r.text(1, protocols.ClientToServer); got != "GET /next HTTP/1.1\r\n" {
		t.Fatalf("client stream %q", got)
	}
}

func TestRSTClosesAndFlushesBuffered(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1005, 5001, "LATE")
	c.send(false, rst, 5001, 0, "")
	if got := r.text(1, protocols.ClientToServer); got != "<gap 4>LATE" {
		t.Fatalf("stream %q", got)
	}
	if len(r.closed) != 1 || r.closed[0].Reason() != CloseRST {
		t.Fatalf("log %v", r.log)
	}
	// Late packets of the reset connection open no flow.
	c.send(true, ack, 1009, 5001, "")
	c.send(true, rst, 1009, 0, "")
	if c.tb.C.Flows != 1 {
		t.Fatalf("flows %d", c.tb.C.Flows)
	}
}

func TestIdleTimeoutUsesPacketTime(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{TCPIdleTimeout: time.Minute}, r), now: t0}
	handshake(c)
	c.now = c.now.Add(2 * time.Minute)
	// A packet of another connection moves packet time on.
	p := decode.Packet{Timestamp: c.now, Proto: decode.ProtoUDP, Src: mapped(10, 0, 0, 1), Dst: mapped(10, 0, 0, 2), SrcPort: 5353, DstPort: 5353}
	c.tb.Packet(&p)
	if len(r.closed) != 1 || r.closed[0].Reason() != CloseIdle {
		t.Fatalf("log %v", r.log)
	}
}

func TestPortReuseStartsANewFlow(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	handshake(c)
	c.send(true, ack, 1001, 5001, "first")
	c.send(true, syn, 90000, 0, "") // new ISN on the same 5-tuple, no FIN seen
	c.send(false, syn|ack, 70000, 90001, "")
	c.send(true, ack, 90001, 70001, "second")
	if c.tb.C.Flows != 2 || c.tb.C.ClosedBy[CloseReused] != 1 {
		t.Fatalf("flows %d closedBy %v", c.tb.C.Flows, c.tb.C.ClosedBy)
	}
	if r.text(1, protocols.ClientToServer) != "first" || r.text(2, protocols.ClientToServer) != "second" {
		t.Fatalf("streams %q %q", r.text(1, 0), r.text(2, 0))
	}
	// A retransmitted SYN is not a new connection.
	c.send(true, syn, 90000, 0, "")
	if c.tb.C.Flows != 2 {
		t.Fatalf("retransmitted SYN made a flow")
	}
}

func TestMaxFlowsEvictsLeastRecentlyActive(t *testing.T) {
	r := newRecorder()
	tb := NewTable(Limits{MaxFlows: 2}, r)
	for i := range 3 {
		p := decode.Packet{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), Proto: decode.ProtoTCP, Flags: syn, Src: mapped(10, 0, 0, byte(i+1)), Dst: mapped(10, 0, 0, 100), SrcPort: 40000, DstPort: 80}
		tb.Packet(&p)
	}
	if tb.C.Evicted != 1 || len(r.closed) != 1 || r.closed[0].ID != 1 || r.closed[0].Reason() != CloseEvicted {
		t.Fatalf("evicted %d log %v", tb.C.Evicted, r.log)
	}
	if len(tb.m) != 2 {
		t.Fatalf("table holds %d", len(tb.m))
	}
}

func TestTotalBufferLimitShedsOldest(t *testing.T) {
	r := newRecorder()
	tb := NewTable(Limits{MaxBufferedTotal: 8, MaxBufferedPerFlow: 100}, r)
	a := &conn{tb: tb, now: t0}
	handshake(a)
	a.send(true, ack, 1011, 5001, "aaaaa") // 5 buffered in flow 1
	p := decode.Packet{Timestamp: a.now.Add(time.Millisecond), Proto: decode.ProtoTCP, Flags: ack, Seq: 100, Src: mapped(10, 0, 0, 9), Dst: mapped(10, 0, 0, 100), SrcPort: 50000, DstPort: 80, Payload: []byte("b")}
	tb.Packet(&p)
	p.Seq, p.Payload = 110, []byte("cccccc") // 6 more buffered in flow 2: 11 > 8
	tb.Packet(&p)
	if tb.C.BufferEvictions != 1 || tb.C.Buffered != 6 {
		t.Fatalf("evictions %d buffered %d", tb.C.BufferEvictions, tb.C.Buffered)
	}
	if got := r.text(1, protocols.ClientToServer); got != "<gap 10>aaaaa" {
		t.Fatalf("oldest flow stream %q", got)
	}
}

func TestSequenceWrap(t *testing.T) {
	r := newRecorder()
	c := &conn{tb: NewTable(Limits{}, r), now: t0}
	c.send(true, syn, 0xfffffffd, 0, "")
	c.send(false, syn|ack, 5000, 0xfffffffe, "")
	c.send(true, ack, 0xfffffffe, 5001, "ab")
	c.send(true, ack, 2, 5001, "ef") // early, after the wrap
	c.send(true, ack, 0, 5001, "cd")
	if got := r.text(1, protocols.ClientToServer); got != "abcdef" {
		t.Fatalf("stream %q", got)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	r := &nopHandler{}
	tb := NewTable(Limits{}, r)
	p := decode.Packet{Timestamp: t0, Proto: decode.ProtoTCP, Flags: syn, Seq: 1, Src: mapped(10, 0, 0, 1), Dst: mapped(10, 0, 0, 2), SrcPort: 40000, DstPort: 80}
	tb.Packet(&p)
	payload := make([]byte, 1448)
	seq := uint32(2)
	n := testing.AllocsPerRun(1000, func() {
		p.Flags, p.Seq, p.Payload = ack, seq, payload
		tb.Packet(&p)
		seq += 1448
	})
	if n != 0 {
		t.Fatalf("%v allocations per in-order segment", n)
	}
}

type nopHandler struct{}

func (nopHandler) Opened(*Flow)                                 {}
func (nopHandler) Data(*Flow, protocols.Dir, []byte, time.Time) {}
func (nopHandler) Gap(*Flow, protocols.Dir, int64, time.Time)   {}
func (nopHandler) End(*Flow, protocols.Dir, time.Time)          {}
func (nopHandler) Closed(*Flow)                                 {}
