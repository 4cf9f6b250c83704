// Bodies: Content-Length, chunked and close-delimited, and what a capture gap
// does to each. Body bytes are only counted and hashed, in place: this is the
// path that must run at line rate and allocate nothing.

package http

import (
	"bytes"
	"time"

	"exfilwatch/protocols"
)

// bodyBytes accounts d as body of the message in progress on h.
func (p *Parser) bodyBytes(h *half, d []byte) {
	h.body += int64(len(d))
	if h.hash != nil {
		h.hash.Write(d)
	}
	if h.mpOn {
		h.mp.write(p, h.tx, d)
	}
}

// bodyLength handles stBodyLength.
func (p *Parser) bodyLength(h *half, b []byte, ts time.Time) int {
	if h.body == 0 && p.expectAnswered(h) {
		return p.peekBody(h, b, ts)
	}
	k := len(b)
	if int64(k) > h.remaining {
		k = int(h.remaining)
	}
	p.bodyBytes(h, b[:k])
	h.remaining -= int64(k)
	if h.remaining == 0 {
		p.finishMessage(h, ts, true)
	}
	return k
}

// chunkData handles stChunkData.
func (p *Parser) chunkData(h *half, b []byte, _ time.Time) int {
	k := len(b)
	if int64(k) > h.remaining {
		k = int(h.remaining)
	}
	p.bodyBytes(h, b[:k])
	h.remaining -= int64(k)
	if h.remaining == 0 {
		h.state = stChunkEnd
	}
	return k
}

// expectAnswered reports whether the request in progress on h sent
// "Expect: 100-continue" and got a final response before any body byte: the
// client may then skip the body and send the next request (RFC 9110 10.1.1),
// and reading that request as body would lose it.
func (p *Parser) expectAnswered(h *half) bool {
	tx := h.tx
	return h.dir == protocols.ClientToServer && tx != nil && tx.Request.Expect100 &&
		tx.respDone && tx.Response != nil && tx.Response.StatusCode >= 200
}

// expectRefused reports, for a request that expectAnswered, whether line (the
// first line where the body should be) is the next request instead.
func (p *Parser) expectRefused(h *half, line []byte) bool {
	if !p.expectAnswered(h) {
		return false
	}
	if _, _, _, ok := parseRequestLine(line); !ok {
		return false
	}
	p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyExpectBodyNotSent, Detail: protocols.Quote(line)})
	return true
}

// peekBody collects the first bytes of a Content-Length body whose request
// expectAnswered, until Sniff can tell a request line from body data. The
// peek is bounded (len(h.peek)) and its outcome does not depend on how the
// bytes were split across Feed calls.
func (p *Parser) peekBody(h *half, b []byte, ts time.Time) int {
	if h.npeek == 0 {
		h.peekTS = ts
	}
	room := int64(len(h.peek) - h.npeek)
	k := min(int64(len(b)), room, h.remaining-int64(h.npeek))
	h.npeek += copy(h.peek[h.npeek:], b[:k])
	if h.npeek < len(h.peek) && int64(h.npeek) < h.remaining {
		return int(k) // decide on a fixed amount, whatever the split
	}
	if Sniff(protocols.ClientToServer, h.peek[:h.npeek]) != Yes {
		p.flushPeek(h, ts)
		return int(k)
	}
	// The next request, not a body: replay the peeked bytes as such, with
	// the timestamp of the Feed that brought the first of them.
	var replay [len(h.peek)]byte
	n := copy(replay[:], h.peek[:h.npeek])
	h.npeek = 0
	p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyExpectBodyNotSent, Detail: protocols.Quote(replay[:n])})
	p.finishMessage(h, h.peekTS, false)
	for r := replay[:n]; len(r) > 0 && !p.opaque; {
		st := h.state
		m := p.step(h, r, h.peekTS)
		if m <= 0 && h.state == st {
			p.stalls++
			break
		}
		r = r[min(m, len(r)):]
	}
	return int(k)
}

// flushPeek accounts peeked bytes as the body they turned out to be.
func (p *Parser) flushPeek(h *half, ts time.Time) {
	if h.npeek == 0 {
		return
	}
	n := h.npeek
	h.npeek = 0
	p.bodyBytes(h, h.peek[:n])
	h.remaining -= int64(n)
	if h.remaining == 0 && h.state == stBodyLength {
		p.finishMessage(h, ts, true)
	}
}

// chunkLine handles stChunkSize and stChunkEnd.
func (p *Parser) chunkLine(h *half, b []byte, ts time.Time) int {
	line, n, done, long := h.lines.next(b, p.lim.MaxChunkLineBytes, ts)
	if !done {
		return n
	}
	if long {
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyChunkLineTooLong, Observed: h.lines.last - 1, Limit: int64(p.lim.MaxChunkLineBytes)})
		p.loseSync(h, ts)
		return n
	}
	if h.state == stChunkEnd {
		if len(line) == 0 {
			h.state = stChunkSize
			return n
		}
		// Data ran on past the chunk: read the line as the next size
		// line, which is what a lenient server does.
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyMissingChunkCRLF, Detail: protocols.Quote(line)})
	}
	size, ok := parseChunkSize(line)
	if !ok {
		if h.body == 0 && h.state == stChunkSize {
			// First size line: maybe the next request after a refused
			// Expect: 100-continue.
			if p.expectRefused(h, line) {
				p.finishMessage(h, ts, false)
				p.requestLine(h, line)
				return n
			}
		}
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyBadChunkSize, Detail: protocols.Quote(line)})
		p.loseSync(h, ts)
		return n
	}
	if size > p.lim.MaxChunkSize {
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyChunkSizeLimit, Observed: size, Limit: p.lim.MaxChunkSize})
		p.loseSync(h, ts)
		return n
	}
	if size == 0 {
		h.state = stTrailers
		h.hdr = headerState{}
		return n
	}
	h.remaining = size
	h.state = stChunkData
	return n
}

// parseChunkSize reads "HEX[;ext]" with optional whitespace around the size.
// Extensions are dropped unread. Sizes over int64 are refused.
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimSpace(line)
	if len(line) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if n > (1<<63-1)>>4 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// loseSync gives up on the message in progress on h; the side then hunts for
// the next start line.
func (p *Parser) loseSync(h *half, ts time.Time) {
	h.lines.reset()
	h.raw09 = 0
	if h.tx != nil {
		p.finishMessage(h, ts, false)
	}
	h.state = stHunt
	h.first = false
}

// gap handles n uncaptured bytes on h. Inside a body of known extent the
// bytes are counted as body (they were on the wire) and sync is kept; where
// the extent is unknown, sync is lost.
func (p *Parser) gap(h *half, n int64, ts time.Time) {
	p.flushPeek(h, ts)
	tx := h.tx
	if h.dir == protocols.ServerToClient && tx == nil && h.state == stStartLine {
		if t := p.awaiting09(); t != nil {
			// Inside the first line of a raw HTTP/0.9 reply: it is body.
			raw := h.raw09
			h.lines.reset()
			p.startRaw09(h, t, raw)
			tx = t
		}
	}
	if tx != nil {
		tx.Gap = true
	}
	p.anomaly(tx, protocols.Anomaly{Name: AnomalyContentGap, Observed: n})
	switch h.state {
	case stBodyClose:
		p.bodyGap(h, n)
	case stBodyLength:
		k := min(n, h.remaining)
		p.bodyGap(h, k)
		h.remaining -= k
		if h.remaining == 0 {
			p.finishMessage(h, ts, true)
			if n > k { // the gap ran into whatever followed
				p.loseSync(h, ts)
			}
		}
	case stChunkData:
		k := min(n, h.remaining)
		p.bodyGap(h, k)
		h.remaining -= k
		if n > k {
			p.loseSync(h, ts)
		} else if h.remaining == 0 {
			h.state = stChunkEnd
		}
	case stOpaque:
	default:
		p.loseSync(h, ts)
	}
}

// bodyGap counts n missing body bytes: the length stays right, the hash is
// lost.
func (p *Parser) bodyGap(h *half, n int64) {
	h.body += n
	h.hashOK = false
	if h.mpOn {
		h.mp.gap(h.tx, n)
	}
}
