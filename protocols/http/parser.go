// The Parser: one per TCP connection. Feed, Gap and End drive one state
// machine per direction; requests wait in a FIFO queue for their responses.

package http

import (
	"crypto/sha256"
	"hash"
	"time"

	"exfilwatch/protocols"
)

// Parser parses both directions of one HTTP/1.x connection. It implements
// protocols.Stream. It is not safe for concurrent use.
type Parser struct {
	lim  Limits // defaults applied
	emit func(*Transaction)
	// onRequest, when set, hears of each request as soon as it is finished
	// (OnRequest).
	onRequest func(*Transaction)
	half      [2]half // indexed by protocols.Dir

	// queue holds transactions in request order until both sides are done.
	// Its length stays within MaxPending requests waiting for a response,
	// plus the one whose response is in progress.
	queue []*Transaction
	// orphans are anomalies seen outside any transaction; the next
	// transaction created carries them.
	orphans []protocols.Anomaly
	// skipResponses counts requests evicted from a full queue whose responses
	// are still to come: those responses are parsed but not recorded, so
	// later ones still match their own requests.
	skipResponses int
	opaque        bool // a tunnel or protocol switch: nothing more is parsed
	// probe is set after a successful CONNECT: the first bytes through the
	// tunnel decide whether it carries plain HTTP (parsed on) or anything
	// else (TLS, SMTP…: opaque).
	probe  bool
	stalls int    // times a state handler made no progress; always 0 unless there is a bug
	seq    uint64 // transactions started on this connection
}

// half is the parser state of one direction.
type half struct {
	dir     protocols.Dir
	state   state
	lines   lineReader
	tx      *Transaction // transaction whose message is in progress on this side
	first   bool         // no line completed yet: a bad first line means a mid-stream start
	skipped int64        // bytes skipped while hunting, reported on resync
	ended   bool

	// The message in progress.
	hdr       headerState
	remaining int64     // bytes left in a Content-Length body or the current chunk
	body      int64     // body bytes so far, de-chunked, gap bytes included
	hash      hash.Hash // client side only: SHA-256 of the de-chunked body
	hashOK    bool      // no gap hit the body so far
	peek      [16]byte  // first body bytes held while telling a skipped body from the next request
	npeek     int
	peekTS    time.Time // ts of the Feed that brought peek[0]
	mpOn      bool      // the body is split by mp
	mp        multipart // client side only

	raw09   int64       // server side: bytes of a first line that may be a raw HTTP/0.9 reply
	scratch Transaction // server side: record for responses to evicted requests, never emitted
}

// New returns a parser for one connection. emit is called once per finished
// transaction; the *Transaction belongs to emit after the call. emit must not
// call back into the Parser.
func New(lim Limits, emit func(*Transaction)) *Parser {
	p := &Parser{lim: lim.resolved(), emit: emit}
	p.half[protocols.ClientToServer] = half{dir: protocols.ClientToServer, first: true, hash: sha256.New()}
	p.half[protocols.ServerToClient] = half{dir: protocols.ServerToClient, first: true}
	return p
}

var _ protocols.Stream = (*Parser)(nil)

// OnRequest sets a hook called once per request when the client side
// finishes it (body complete, or given up on at a gap, a protocol switch or
// the connection's end), before the transaction is emitted: an upload can be
// judged when its last byte is seen instead of when the server answers.
// The *Transaction is the one emit will get later, still owned by the parser:
// its Request is final, but Response, Anomalies and Gap may still change and
// it must not be kept or handed to another goroutine (copy it). Response may
// already be set (a 100 Continue or an early answer). fn must not call back
// into the Parser. Reset removes the hook.
func (p *Parser) OnRequest(fn func(*Transaction)) { p.onRequest = fn }

// Reset readies p for another connection with a new emit callback, keeping
// its limits, line buffers and hash states: a sensor that sees hundreds of
// thousands of short connections reuses parsers instead of allocating them.
// Transactions already emitted are not touched. The OnRequest hook is removed.
func (p *Parser) Reset(emit func(*Transaction)) {
	type kept struct {
		lines, mpLines, delim []byte
		hash, mpHash          hash.Hash
	}
	var k [2]kept
	for i := range p.half {
		h := &p.half[i]
		k[i] = kept{h.lines.buf[:0], h.mp.lines.buf[:0], h.mp.delim[:0], h.hash, h.mp.hash}
	}
	clear(p.queue)
	queue := p.queue[:0]
	*p = Parser{lim: p.lim, emit: emit, queue: queue}
	for i := range p.half {
		h := &p.half[i]
		h.dir, h.first = protocols.Dir(i), true
		h.lines.buf, h.mp.lines.buf, h.mp.delim = k[i].lines, k[i].mpLines, k[i].delim
		h.hash, h.mp.hash = k[i].hash, k[i].mpHash
		if h.hash != nil {
			h.hash.Reset()
		}
		if h.mp.hash != nil {
			h.mp.hash.Reset()
		}
	}
}

// Feed implements protocols.Stream. b is only read during the call: whole
// header lines are parsed in place, body bytes are counted and hashed in
// place, and only a line split across calls is copied.
func (p *Parser) Feed(dir protocols.Dir, b []byte, ts time.Time) {
	if dir > protocols.ServerToClient {
		return
	}
	h := &p.half[dir]
	for len(b) > 0 && !h.ended && !p.opaque {
		if p.probe {
			if p.probeTunnel(dir, b); p.opaque {
				return
			}
		}
		st := h.state
		n := p.step(h, b, ts)
		if n <= 0 && h.state == st {
			// A handler that neither consumes nor moves on would spin
			// forever on hostile input; drop the rest of b instead.
			p.stalls++
			return
		}
		if n > len(b) {
			n = len(b)
		}
		b = b[n:]
	}
}

// step runs one state handler and returns the bytes it consumed.
func (p *Parser) step(h *half, b []byte, ts time.Time) int {
	switch h.state {
	case stStartLine, stHunt:
		return p.startLine(h, b, ts)
	case stHeaders, stTrailers:
		return p.headerBlock(h, b, ts)
	case stBodyLength:
		return p.bodyLength(h, b, ts)
	case stChunkSize, stChunkEnd:
		return p.chunkLine(h, b, ts)
	case stChunkData:
		return p.chunkData(h, b, ts)
	case stBodyClose:
		p.bodyBytes(h, b)
		return len(b)
	}
	return len(b) // stOpaque
}

// Gap implements protocols.Stream: n bytes of dir were never captured.
func (p *Parser) Gap(dir protocols.Dir, n int64, ts time.Time) {
	if dir > protocols.ServerToClient || n <= 0 || p.opaque {
		return
	}
	h := &p.half[dir]
	if h.ended {
		return
	}
	p.gap(h, n, ts)
}

// End implements protocols.Stream. A close-delimited response completes here;
// any other message in progress is finished as incomplete. Once both
// directions have ended every pending transaction is emitted, those without a
// response with Response == nil.
func (p *Parser) End(dir protocols.Dir, ts time.Time) {
	if dir > protocols.ServerToClient {
		return
	}
	h := &p.half[dir]
	if h.ended {
		return
	}
	if !p.opaque {
		p.endHalf(h, ts)
	}
	h.ended = true
	h.state = stOpaque
	h.lines.reset()
	if p.half[protocols.ClientToServer].ended && p.half[protocols.ServerToClient].ended {
		p.flush(ts)
	}
}

func (p *Parser) endHalf(h *half, ts time.Time) {
	p.flushPeek(h, ts)
	switch h.state {
	case stBodyClose, stTrailers:
		// Close delimits the body; in trailers all data chunks were seen.
		p.finishMessage(h, ts, true)
	case stHeaders, stBodyLength, stChunkSize, stChunkData, stChunkEnd:
		p.finishMessage(h, ts, false)
	case stStartLine:
		if h.tx != nil { // interim response seen, final one never came
			p.finishMessage(h, ts, false)
			return
		}
		if h.dir == protocols.ServerToClient && h.lines.pending() > 0 {
			if tx := p.awaiting09(); tx != nil {
				// A raw HTTP/0.9 reply shorter than one line.
				p.startRaw09(h, tx, h.raw09)
				p.finishMessage(h, ts, true)
			}
		}
	}
}

// flush finishes whatever is in progress and emits every queued transaction.
func (p *Parser) flush(ts time.Time) {
	for i := range p.half {
		h := &p.half[i]
		p.flushPeek(h, ts)
		if h.tx != nil {
			p.finishMessage(h, ts, false)
		}
	}
	q := p.queue
	for _, tx := range q {
		p.deliver(tx)
	}
	clear(q)
	p.queue = q[:0]
}

// tunnel stops all parsing after a 101: what follows is another protocol,
// and is neither parsed nor counted. After a successful CONNECT the tunnel
// is probed first (probeTunnel): proxies carry plain HTTP too.
func (p *Parser) tunnel(ts time.Time, connect bool) {
	p.flush(ts)
	if connect {
		p.probe = true
		for i := range p.half {
			h := &p.half[i]
			h.state, h.first, h.tx, h.skipped = stStartLine, true, nil, 0
			h.lines.reset()
		}
		return
	}
	p.opaque = true
	for i := range p.half {
		p.half[i].state = stOpaque
		p.half[i].lines.reset()
	}
}

// probeTunnel decides on the first bytes through a CONNECT tunnel: a request
// line from the client keeps the parser going; anything else, or the server
// speaking first, makes the connection opaque.
func (p *Parser) probeTunnel(dir protocols.Dir, b []byte) {
	// Stray line ends after the CONNECT exchange's headers decide nothing.
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	if len(b) == 0 {
		return
	}
	if dir == protocols.ClientToServer && Sniff(dir, b) != No {
		p.probe = false
		return
	}
	p.probe = false
	p.opaque = true
	for i := range p.half {
		p.half[i].state = stOpaque
		p.half[i].lines.reset()
	}
}

func (p *Parser) deliver(tx *Transaction) {
	if p.emit != nil && !tx.discard {
		p.emit(tx)
	}
}

// emitReady emits finished transactions from the head of the queue, so that
// they leave in request order.
func (p *Parser) emitReady() {
	for len(p.queue) > 0 {
		tx := p.queue[0]
		if !tx.reqDone || !tx.respDone {
			return
		}
		p.popFront(0)
		p.deliver(tx)
	}
}

// popFront removes queue[i], shifting rather than reslicing so the backing
// array does not creep forward and reallocate.
func (p *Parser) popFront(i int) {
	copy(p.queue[i:], p.queue[i+1:])
	p.queue[len(p.queue)-1] = nil
	p.queue = p.queue[:len(p.queue)-1]
}

// pushRequest queues tx. If MaxPending requests already wait for a response,
// the oldest of them is emitted now without one.
func (p *Parser) pushRequest(tx *Transaction) {
	waiting, oldest := 0, -1
	for i, t := range p.queue {
		if !t.respStarted {
			if oldest < 0 {
				oldest = i
			}
			waiting++
		}
	}
	if waiting >= p.lim.MaxPending && oldest >= 0 {
		old := p.queue[oldest]
		p.popFront(oldest)
		p.anomaly(old, protocols.Anomaly{Name: AnomalyTooManyPending, Observed: int64(waiting + 1), Limit: int64(p.lim.MaxPending)})
		old.respDone = true
		p.skipResponses++
		p.deliver(old)
	}
	p.queue = append(p.queue, tx)
}

// awaiting returns the oldest request no response has been matched to.
func (p *Parser) awaiting() *Transaction {
	for _, t := range p.queue {
		if !t.respStarted {
			return t
		}
	}
	return nil
}

// awaiting09 returns the request the next server bytes answer, if it is an
// HTTP/0.9 request (whose reply has no status line).
func (p *Parser) awaiting09() *Transaction {
	if p.skipResponses > 0 {
		return nil
	}
	if t := p.awaiting(); t != nil && t.Request.Version == "0.9" {
		return t
	}
	return nil
}

// newTx allocates a transaction carrying the orphan anomalies.
func (p *Parser) newTx() *Transaction {
	p.seq++
	tx := &Transaction{seq: p.seq}
	tx.Request.ContentLength = -1
	p.adoptOrphans(tx)
	return tx
}

// adoptOrphans moves the anomalies seen outside any transaction to tx, the
// next one a message starts on.
func (p *Parser) adoptOrphans(tx *Transaction) {
	if tx.discard {
		return
	}
	for _, a := range p.orphans {
		p.anomaly(tx, a)
	}
	p.orphans = p.orphans[:0]
}

// anomaly records a on tx, or keeps it for the next transaction if tx is nil.
func (p *Parser) anomaly(tx *Transaction, a protocols.Anomaly) {
	if tx == nil {
		p.orphans = addAnomaly(p.orphans, p.lim.MaxAnomalies, a)
		return
	}
	if !tx.discard {
		tx.Anomalies = addAnomaly(tx.Anomalies, p.lim.MaxAnomalies, a)
	}
}
