// Message boundaries: start lines, the start and finish of each request and
// response, and matching a response to its request.

package http

import (
	"time"

	"exfilwatch/protocols"
)

// startLine handles stStartLine and stHunt: one line at a time, either a
// start line or something to skip.
func (p *Parser) startLine(h *half, b []byte, ts time.Time) int {
	if h.dir == protocols.ServerToClient && h.state == stStartLine && h.tx == nil {
		if tx := p.awaiting09(); tx != nil {
			return p.startLine09(h, tx, b, ts)
		}
	}
	line, n, done, long := h.lines.next(b, p.lim.MaxLineBytes, ts)
	if !done {
		return n
	}
	switch {
	case long:
		if h.state == stStartLine && !h.first {
			p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyLineTooLong, Observed: h.lines.last - 1, Limit: int64(p.lim.MaxLineBytes)})
		}
		if h.tx != nil { // interim response seen; the final one is lost
			p.finishMessage(h, h.lines.start, false)
		}
		p.hunt(h, h.lines.last)
	case len(line) == 0:
		// RFC 9112 2.2: empty lines before a request line are ignored.
		if h.state == stHunt {
			h.skipped += h.lines.last
		}
	case h.dir == protocols.ClientToServer:
		p.requestLine(h, line)
	default:
		p.statusLine(h, line)
	}
	return n
}

// hunt notes that a line of n bytes was not a start line and that the side
// now skips lines until one is.
func (p *Parser) hunt(h *half, n int64) {
	h.first = false
	h.state = stHunt
	h.skipped += n
}

func (p *Parser) requestLine(h *half, line []byte) {
	method, target, version, ok := parseRequestLine(line)
	if ok && h.state == stHunt && !isUpperMethod(method) {
		ok = false
	}
	if !ok {
		if h.first {
			if m, t, ok09 := parseSimpleRequest(line); ok09 {
				p.startRequest(h, m, t, "0.9")
				return
			}
		} else if h.state == stStartLine {
			p.anomaly(nil, protocols.Anomaly{Name: AnomalyBadRequestLine, Detail: protocols.Quote(line)})
		}
		p.hunt(h, h.lines.last)
		return
	}
	p.startRequest(h, method, target, version)
}

func (p *Parser) statusLine(h *half, line []byte) {
	version, code, reason, ok := parseStatusLine(line)
	if !ok {
		if !h.first && h.state == stStartLine {
			p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyBadStatusLine, Detail: protocols.Quote(line)})
		}
		if h.tx != nil { // interim response seen; the final one is lost
			p.finishMessage(h, h.lines.start, false)
		}
		p.hunt(h, h.lines.last)
		return
	}
	p.startResponse(h, version, code, reason)
}

// startLine09 reads the first server line after an HTTP/0.9 request. A
// status line means the server answered in HTTP/1.x anyway; anything else is
// the first line of a raw reply that runs until close.
func (p *Parser) startLine09(h *half, tx *Transaction, b []byte, ts time.Time) int {
	line, n, done, long := h.lines.next(b, p.lim.MaxLineBytes, ts)
	h.raw09 += int64(n)
	if !done {
		return n
	}
	raw := h.raw09
	h.raw09 = 0
	if !long {
		if version, code, reason, ok := parseStatusLine(line); ok {
			p.startResponse(h, version, code, reason)
			return n
		}
	}
	p.startRaw09(h, tx, raw)
	return n
}

func (p *Parser) startRaw09(h *half, tx *Transaction, raw int64) {
	tx.respStarted = true
	tx.Response = &Response{Start: h.lines.start, Version: "0.9", ContentLength: -1}
	h.first = false
	h.tx = tx
	h.body = raw
	h.raw09 = 0
	h.state = stBodyClose
}

func (p *Parser) startRequest(h *half, method, target []byte, version string) {
	tx := p.newTx()
	r := &tx.Request
	r.Start = h.lines.start
	r.Method = string(method)
	r.Target = string(target)
	r.Version = version
	r.HeaderBytes = h.lines.last
	if h.skipped > 0 {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyResync, Observed: h.skipped})
		h.skipped = 0
	}
	h.first = false
	p.pushRequest(tx)
	p.beginMessage(h, tx)
	if version == "0.9" {
		// No headers, no body; the reply is raw bytes until close.
		p.finishMessage(h, h.lines.start, true)
	}
}

func (p *Parser) startResponse(h *half, version string, code int, reason []byte) {
	tx := h.tx
	if tx != nil {
		// The final response after an interim one: keep what the interim
		// ones recorded and start the rest afresh.
		old := tx.Response
		tx.Response = &Response{Start: old.Start, ContentLength: -1, Informational: old.Informational}
	} else {
		switch {
		case p.skipResponses > 0:
			h.scratch = Transaction{discard: true, reqDone: true}
			tx = &h.scratch
		default:
			tx = p.awaiting()
			if tx != nil {
				p.adoptOrphans(tx)
			} else {
				tx = p.newTx()
				tx.reqDone = true
				p.anomaly(tx, protocols.Anomaly{Name: AnomalyUnmatchedResponse})
				p.queue = append(p.queue, tx)
			}
		}
		tx.respStarted = true
		tx.Response = &Response{Start: h.lines.start, ContentLength: -1}
	}
	resp := tx.Response
	resp.Version = version
	resp.StatusCode = code
	resp.Reason = string(reason)
	if h.skipped > 0 {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyResync, Observed: h.skipped})
		h.skipped = 0
	}
	h.first = false
	p.beginMessage(h, tx)
}

// beginMessage resets the per-message state of h for tx's next message.
func (p *Parser) beginMessage(h *half, tx *Transaction) {
	h.tx = tx
	h.state = stHeaders
	h.hdr = headerState{bytes: h.lines.last}
	h.remaining = 0
	h.body = 0
	h.hashOK = true
	h.npeek = 0
	h.mpOn = false
	if h.hash != nil {
		h.hash.Reset()
	}
}

// finishMessage closes the message in progress on h. complete says whether
// its body ended where its framing said it would.
func (p *Parser) finishMessage(h *half, ts time.Time, complete bool) {
	tx := h.tx
	h.tx = nil
	h.state = stStartLine
	if tx == nil {
		return
	}
	if h.dir == protocols.ClientToServer {
		r := &tx.Request
		r.End = ts
		r.BodyBytes = h.body
		r.BodyComplete = complete
		if complete && h.hashOK {
			h.hash.Sum(r.BodySHA256[:0])
			r.BodyHashValid = true
		}
		if h.mpOn {
			h.mp.finish(tx)
			h.mpOn = false
		}
		tx.reqDone = true
		if r.Method == "CONNECT" {
			// The client may start talking through the tunnel before the
			// proxy's answer arrives: skip lines quietly until either the
			// answer makes the connection opaque or a request line shows up.
			h.state = stHunt
		}
		if p.onRequest != nil && !tx.discard {
			p.onRequest(tx)
		}
	} else {
		resp := tx.Response
		resp.End = ts
		resp.BodyBytes = h.body
		resp.BodyComplete = complete
		tx.respDone = true
		if tx.discard && p.skipResponses > 0 {
			p.skipResponses--
		}
	}
	p.emitReady()
}
