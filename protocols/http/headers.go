// Header fields and the framing decision at the end of a header block.
// Framing fields (Content-Length, Transfer-Encoding, Expect) are honoured even
// past the header limits: ignoring them would let a peer hide a body behind
// 64 KiB of padding. Other fields are kept only within the limits.

package http

import (
	"bytes"
	"strconv"
	"time"

	"exfilwatch/protocols"
)

// fieldID names the header fields the parser cares about.
type fieldID uint8

const (
	fNone             fieldID = iota // no field yet in this block: a fold continues nothing
	fOther                           // a field that is not kept: a fold continues it harmlessly
	fHost                            // Host
	fUserAgent                       // User-Agent
	fContentType                     // Content-Type
	fConnection                      // Connection
	fTransferEncoding                // Transfer-Encoding
	fContentEncoding                 // Content-Encoding
	fContentLength                   // Content-Length
	fExpect                          // Expect
)

// headerState is the per-block budget and what the framing fields said.
type headerState struct {
	bytes    int64 // bytes of the block so far, start line included
	count    int   // fields so far
	bytesHit bool  // MaxHeaderBytes was passed (reported once)
	countHit bool  // MaxHeaders was passed (reported once)
	last     fieldID
	cl       clState
	te       teState
}

func (hs *headerState) overLimit() bool { return hs.bytesHit || hs.countHit }

// clState folds every Content-Length value seen into a few numbers, so that a
// peer repeating the field costs no memory.
type clState struct {
	n       int   // valid values seen
	first   int64 // the first valid value
	max     int64 // the largest valid value
	differ  bool  // valid values disagree
	bad     bool  // some value was not a decimal number
	badText string
}

func (c *clState) add(v []byte) {
	for {
		i := bytes.IndexByte(v, ',')
		part := v
		if i >= 0 {
			part = v[:i]
		}
		part = trimSpace(part)
		if n, ok := parseDecimal(part); ok {
			if c.n == 0 {
				c.first, c.max = n, n
			}
			if n != c.first {
				c.differ = true
			}
			if n > c.max {
				c.max = n
			}
			c.n++
		} else if !c.bad {
			c.bad = true
			c.badText = protocols.Quote(part)
		}
		if i < 0 {
			return
		}
		v = v[i+1:]
	}
}

// teState records the transfer codings seen, in order.
type teState struct {
	seen        bool // some coding other than identity
	chunked     bool // chunked appeared anywhere
	chunkedLast bool // chunked was the last coding
}

func (t *teState) add(v []byte) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		tok := v
		if i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if j := bytes.IndexByte(tok, ';'); j >= 0 {
			tok = tok[:j]
		}
		tok = trimSpace(tok)
		switch {
		case len(tok) == 0, equalFold(tok, "identity"):
		case equalFold(tok, "chunked"):
			t.seen, t.chunked, t.chunkedLast = true, true, true
		default:
			t.seen, t.chunkedLast = true, false
		}
	}
}

// parseDecimal accepts 1 to 19 ASCII digits that fit an int64.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold compares b with the lowercase ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// containsFold reports whether b contains the lowercase ASCII string s.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if equalFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

func lookupField(name []byte) fieldID {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			return fHost
		}
	case 6:
		if equalFold(name, "expect") {
			return fExpect
		}
	case 10:
		if equalFold(name, "user-agent") {
			return fUserAgent
		}
		if equalFold(name, "connection") {
			return fConnection
		}
	case 12:
		if equalFold(name, "content-type") {
			return fContentType
		}
	case 14:
		if equalFold(name, "content-length") {
			return fContentLength
		}
	case 16:
		if equalFold(name, "content-encoding") {
			return fContentEncoding
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return fTransferEncoding
		}
	}
	return fOther
}

// headerBlock handles stHeaders and stTrailers, one line at a time.
func (p *Parser) headerBlock(h *half, b []byte, ts time.Time) int {
	line, n, done, long := h.lines.next(b, p.lim.MaxLineBytes, ts)
	if !done {
		return n
	}
	hs := &h.hdr
	hs.bytes += h.lines.last
	if h.state == stHeaders && h.dir == protocols.ClientToServer {
		h.tx.Request.HeaderBytes += h.lines.last
	}
	if hs.bytes > int64(p.lim.MaxHeaderBytes) && !hs.bytesHit {
		hs.bytesHit = true
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyHeaderBytesLimit, Observed: hs.bytes, Limit: int64(p.lim.MaxHeaderBytes)})
	}
	switch {
	case long:
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyLineTooLong, Observed: h.lines.last - 1, Limit: int64(p.lim.MaxLineBytes)})
		hs.last = fOther
	case len(line) == 0:
		if h.state == stTrailers {
			p.finishMessage(h, ts, true)
		} else {
			p.headersDone(h, ts)
		}
	case isSpace(line[0]):
		p.foldLine(h, trimSpace(line))
	default:
		p.fieldLine(h, line)
	}
	return n
}

func (p *Parser) fieldLine(h *half, line []byte) {
	hs := &h.hdr
	hs.count++
	if hs.count > p.lim.MaxHeaders && !hs.countHit {
		hs.countHit = true
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyHeaderCountLimit, Observed: int64(hs.count), Limit: int64(p.lim.MaxHeaders)})
	}
	colon := bytes.IndexByte(line, ':')
	var name []byte
	if colon > 0 {
		// "Name : value" is tolerated, as Zeek does; net/http rejects it.
		name = trimSpace(line[:colon])
	}
	if !isToken(name) {
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyBadHeaderLine, Detail: protocols.Quote(line)})
		hs.last = fOther
		return
	}
	if h.state == stTrailers {
		hs.last = fOther // trailers are parsed and skipped
		return
	}
	hs.last = lookupField(name)
	p.fieldValue(h, hs.last, trimSpace(line[colon+1:]), false)
}

// foldLine handles an obs-fold continuation (RFC 9112 5.2): its text joins
// the previous field's value.
func (p *Parser) foldLine(h *half, v []byte) {
	switch h.hdr.last {
	case fNone:
		p.anomaly(h.tx, protocols.Anomaly{Name: AnomalyBadHeaderLine, Detail: protocols.Quote(v)})
	case fOther:
	default:
		p.fieldValue(h, h.hdr.last, v, true)
	}
}

// fieldValue records the value of a field the parser keeps. fold says v
// continues the previous line of the same field.
func (p *Parser) fieldValue(h *half, id fieldID, v []byte, fold bool) {
	hs := &h.hdr
	switch id {
	case fContentLength:
		hs.cl.add(v)
		return
	case fTransferEncoding:
		hs.te.add(v)
	case fExpect:
		if h.dir == protocols.ClientToServer && containsFold(v, "100-continue") {
			h.tx.Request.Expect100 = true
		}
		return
	}
	if hs.overLimit() || len(v) == 0 {
		return
	}
	if h.dir == protocols.ServerToClient {
		r := h.tx.Response
		switch id {
		case fContentType:
			keepFirst(&r.ContentType, v, fold)
		case fContentEncoding:
			joinList(&r.ContentEncoding, v, fold)
		}
		return
	}
	r := &h.tx.Request
	switch id {
	case fHost:
		keepFirst(&r.Host, v, fold)
	case fUserAgent:
		keepFirst(&r.UserAgent, v, fold)
	case fContentType:
		keepFirst(&r.ContentType, v, fold)
	case fConnection:
		joinList(&r.Connection, v, fold)
	case fTransferEncoding:
		joinList(&r.TransferEncoding, v, fold)
	case fContentEncoding:
		joinList(&r.ContentEncoding, v, fold)
	}
}

// keepFirst stores v in a single-valued field unless it is already set; a
// fold extends it.
func keepFirst(dst *string, v []byte, fold bool) {
	switch {
	case fold && *dst != "":
		*dst += " " + string(v)
	case *dst == "":
		*dst = string(v)
	}
}

// joinList appends v to a list-valued field, as repeated fields combine
// (RFC 9110 5.3); a fold extends the last element.
func joinList(dst *string, v []byte, fold bool) {
	switch {
	case *dst == "":
		*dst = string(v)
	case fold:
		*dst += " " + string(v)
	default:
		*dst += ", " + string(v)
	}
}

// contentLength reports the usable Content-Length of the block and the
// anomalies around it: the largest of differing values wins (Zeek's choice:
// an evader gains nothing by under-declaring).
func (p *Parser) contentLength(tx *Transaction, hs *headerState) (int64, bool) {
	c := &hs.cl
	if c.bad {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyBadContentLength, Detail: c.badText})
	}
	if c.differ {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyMultipleContentLength, Observed: c.max, Detail: "first " + strconv.FormatInt(c.first, 10)})
	}
	if c.n == 0 {
		return -1, false
	}
	return c.max, true
}

// headersDone decides how the message's body is framed (RFC 9112 6.3).
func (p *Parser) headersDone(h *half, ts time.Time) {
	tx := h.tx
	hs := &h.hdr
	cl, hasCL := p.contentLength(tx, hs)
	te := hs.te
	if te.chunked && !te.chunkedLast {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyBadTransferEncoding, Detail: "chunked is not the last coding"})
	}
	if te.chunked && hasCL {
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyContentLengthChunked, Observed: cl})
	}
	if h.dir == protocols.ClientToServer {
		p.requestFraming(h, tx, cl, hasCL, ts)
	} else {
		p.responseFraming(h, tx, cl, hasCL, ts)
	}
}

func (p *Parser) requestFraming(h *half, tx *Transaction, cl int64, hasCL bool, ts time.Time) {
	r := &tx.Request
	te := h.hdr.te
	r.ContentLength = cl
	r.Chunked = te.chunked
	if te.seen && !te.chunked {
		// A server answers 400 (RFC 9112 6.3); the body, if any, is
		// framed by Content-Length as far as the sensor can tell.
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyBadTransferEncoding, Detail: protocols.Quote([]byte(r.TransferEncoding))})
	}
	if boundary, isMP := multipartBoundary(r.ContentType); isMP {
		if boundary == "" {
			p.anomaly(tx, protocols.Anomaly{Name: AnomalyBadMultipartBoundary, Detail: protocols.Quote([]byte(r.ContentType))})
		} else {
			h.mp.start(boundary)
			h.mpOn = true
		}
	}
	switch {
	case te.chunked:
		h.state = stChunkSize
	case hasCL && cl > 0:
		h.remaining = cl
		h.state = stBodyLength
	default:
		p.finishMessage(h, ts, true)
	}
}

func (p *Parser) responseFraming(h *half, tx *Transaction, cl int64, hasCL bool, ts time.Time) {
	resp := tx.Response
	te := h.hdr.te
	resp.ContentLength = cl
	resp.Chunked = te.chunked
	code := resp.StatusCode
	if code >= 100 && code < 200 && code != 101 {
		// Interim: no body, and the final response follows on the same
		// transaction.
		if len(resp.Informational) < p.lim.MaxInformational {
			resp.Informational = append(resp.Informational, code)
		} else {
			p.anomaly(tx, protocols.Anomaly{Name: AnomalyTooManyInformational, Observed: int64(len(resp.Informational) + 1), Limit: int64(p.lim.MaxInformational)})
		}
		h.state = stStartLine
		return
	}
	method := tx.Request.Method
	if code == 101 || method == "CONNECT" && code >= 200 && code < 300 {
		p.finishMessage(h, ts, true)
		p.tunnel(ts, code != 101)
		return
	}
	switch {
	case method == "HEAD" || code == 204 || code == 304:
		p.finishMessage(h, ts, true)
	case te.chunked:
		h.state = stChunkSize
	case te.seen:
		// A coding other than chunked: the body runs until close and
		// Content-Length is ignored (RFC 9112 6.3 item 3).
		h.state = stBodyClose
	case hasCL && cl == 0:
		p.finishMessage(h, ts, true)
	case hasCL:
		h.remaining = cl
		h.state = stBodyLength
	default:
		h.state = stBodyClose
	}
}
