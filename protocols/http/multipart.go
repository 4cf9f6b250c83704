// Streaming multipart/* splitting (RFC 2046 5.1): part names, filenames,
// sizes and SHA-256 without buffering part bodies. A delimiter split across
// writes is remembered as the count of its bytes matched so far: those bytes
// are the delimiter's own, so nothing of the data needs to be kept.

package http

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"time"

	"exfilwatch/protocols"
)

// maxBoundaryLen bounds the boundary parameter. RFC 2046 allows 70 bytes;
// some clients exceed that, so the bound is looser but still small, since the
// delimiter is kept per request.
const maxBoundaryLen = 256

// multipart splits one request body into parts as it streams past.
//
// The delimiter is searched as "\n--boundary", with a CR before the LF
// optional (bare-LF bodies exist) and not part of the part's bytes. The start
// of the body and of each part body count as if preceded by a LF, so that a
// delimiter right there is found too.
type multipart struct {
	state   mpState
	delim   []byte // "\n--" + boundary
	matched int    // bytes of delim matched at the end of the data so far
	virtLF  bool   // delim[0] of the current match is implied, not data
	heldCR  bool   // a CR that may start "\r\n--boundary" is held back
	cr      [1]byte
	dashes  int // mpAfterDelim: 0 or 1 dashes seen after the boundary; -1 once skipping to LF

	lines    lineReader // part header lines
	hdrBytes int64      // bytes of the current part's header block
	hdrHit   bool       // MaxMultipartHeaderBytes passed for this part
	parts    int        // parts started in this body
	cur      int        // index in Request.Multipart of the part in progress, -1 if none
	bytes    int64      // body bytes of the part in progress
	hash     hash.Hash  // SHA-256 of the part in progress
	hashOK   bool       // no gap hit the part
}

// start arms the splitter for a new body with the given boundary.
func (m *multipart) start(boundary string) {
	m.delim = append(append(m.delim[:0], "\n--"...), boundary...)
	m.state = mpPreamble
	m.matched, m.virtLF, m.heldCR = 1, true, false
	m.cr[0] = '\r'
	m.dashes = 0
	m.lines.reset()
	m.parts = 0
	m.cur = -1
	if m.hash == nil {
		m.hash = sha256.New()
	}
}

// write feeds de-chunked body bytes.
func (m *multipart) write(p *Parser, tx *Transaction, d []byte) {
	for len(d) > 0 {
		switch m.state {
		case mpPreamble, mpBody:
			n, found := m.scan(d)
			d = d[n:]
			if found {
				if m.state == mpBody {
					m.endPart(tx, true)
				}
				m.state = mpAfterDelim
				m.dashes = 0
			}
		case mpAfterDelim:
			d = d[m.afterDelim(p, tx, d):]
		case mpHeaders:
			d = d[m.header(p, tx, d):]
		default: // mpEpilogue
			return
		}
	}
}

// data accounts d as bytes of the part in progress (nothing in the preamble).
func (m *multipart) data(d []byte) {
	if m.state != mpBody || len(d) == 0 {
		return
	}
	m.bytes += int64(len(d))
	if m.cur >= 0 {
		m.hash.Write(d)
	}
}

// flushHeld gives back as data the bytes held as a possible delimiter start,
// once they turn out not to be one.
func (m *multipart) flushHeld() {
	if m.heldCR {
		m.data(m.cr[:])
	}
	if m.matched > 0 {
		from := 0
		if m.virtLF {
			from = 1
		}
		m.data(m.delim[from:m.matched])
	}
	m.heldCR, m.matched, m.virtLF = false, 0, false
}

// scan consumes d up to the end of the next delimiter (found) or all of it.
func (m *multipart) scan(d []byte) (int, bool) {
	i := 0
	if m.heldCR && m.matched == 0 {
		if d[0] == '\n' {
			m.matched, i = 1, 1
		} else {
			m.flushHeld()
		}
	}
	for m.matched > 0 && i < len(d) {
		if d[i] != m.delim[m.matched] {
			m.flushHeld()
			break
		}
		m.matched++
		i++
		if m.matched == len(m.delim) {
			m.heldCR, m.matched, m.virtLF = false, 0, false
			return i, true
		}
	}
	if i == len(d) {
		return i, false
	}
	start := i
	for {
		j := bytes.IndexByte(d[i:], '\n')
		if j < 0 {
			end := len(d)
			if d[end-1] == '\r' {
				m.data(d[start : end-1])
				m.heldCR = true
			} else {
				m.data(d[start:end])
			}
			return len(d), false
		}
		j += i
		k := min(len(d)-j, len(m.delim))
		if bytes.Equal(d[j:j+k], m.delim[:k]) {
			end := j
			cr := j > start && d[j-1] == '\r'
			if cr {
				end--
			}
			m.data(d[start:end])
			if k == len(m.delim) {
				return j + k, true
			}
			m.matched, m.heldCR = k, cr
			return len(d), false
		}
		i = j + 1
	}
}

// afterDelim reads what follows "--boundary": "--" closes the body, anything
// else up to the LF is transport padding before the next part's headers.
func (m *multipart) afterDelim(p *Parser, tx *Transaction, d []byte) int {
	n := 0
	for n < len(d) && m.dashes >= 0 {
		if d[n] != '-' {
			m.dashes = -1
			break
		}
		n++
		if m.dashes++; m.dashes == 2 {
			m.state = mpEpilogue
			return n
		}
	}
	if m.dashes == 1 && n == len(d) {
		return n
	}
	m.dashes = -1
	j := bytes.IndexByte(d[n:], '\n')
	if j < 0 {
		return len(d)
	}
	m.beginPart(p, tx)
	return n + j + 1
}

func (m *multipart) beginPart(p *Parser, tx *Transaction) {
	m.parts++
	m.cur = -1
	switch {
	case m.parts <= p.lim.MaxMultipartParts:
		tx.Request.Multipart = append(tx.Request.Multipart, Part{})
		m.cur = len(tx.Request.Multipart) - 1
	case m.parts == p.lim.MaxMultipartParts+1:
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyMultipartPartLimit, Observed: int64(m.parts), Limit: int64(p.lim.MaxMultipartParts)})
	}
	m.state = mpHeaders
	m.lines.reset()
	m.hdrBytes, m.hdrHit = 0, false
}

// header reads one part header line.
func (m *multipart) header(p *Parser, tx *Transaction, d []byte) int {
	max := p.lim.MaxMultipartHeaderBytes
	line, n, done, long := m.lines.next(d, max, time.Time{})
	if !done {
		return n
	}
	m.hdrBytes += m.lines.last
	if m.hdrBytes > int64(max) && !m.hdrHit {
		m.hdrHit = true
		p.anomaly(tx, protocols.Anomaly{Name: AnomalyMultipartHeaderLimit, Observed: m.hdrBytes, Limit: int64(max)})
	}
	switch {
	case long:
	case len(line) == 0:
		m.state = mpBody
		m.matched, m.virtLF, m.heldCR = 1, true, false
		m.bytes, m.hashOK = 0, true
		m.hash.Reset()
	case !m.hdrHit && m.cur >= 0 && m.cur < len(tx.Request.Multipart):
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break
		}
		name, v := trimSpace(line[:colon]), trimSpace(line[colon+1:])
		part := &tx.Request.Multipart[m.cur]
		switch {
		case equalFold(name, "content-disposition"):
			parseDisposition(string(v), part)
		case equalFold(name, "content-type") && part.ContentType == "":
			part.ContentType = string(v)
		}
	}
	return n
}

// endPart records the size and hash of the part in progress.
func (m *multipart) endPart(tx *Transaction, terminated bool) {
	if m.cur >= 0 && m.cur < len(tx.Request.Multipart) {
		part := &tx.Request.Multipart[m.cur]
		part.Bytes = m.bytes
		if terminated && m.hashOK {
			m.hash.Sum(part.SHA256[:0])
			part.HashValid = true
		}
	}
	m.cur = -1
}

// gap accounts n uncaptured body bytes. Inside a part body they are assumed
// to belong to that part (its hash is lost); elsewhere the part in progress
// is lost and the splitter waits for the next delimiter.
func (m *multipart) gap(tx *Transaction, n int64) {
	m.flushHeld()
	switch m.state {
	case mpBody:
		m.bytes += n
		m.hashOK = false
	case mpPreamble, mpEpilogue:
	default:
		m.endPart(tx, false)
		m.lines.reset()
		m.state = mpPreamble
	}
}

// finish closes the splitter at the end of the request body; a part still
// open was not terminated by a delimiter.
func (m *multipart) finish(tx *Transaction) {
	switch m.state {
	case mpBody:
		m.flushHeld()
		m.endPart(tx, false)
	case mpHeaders:
		m.endPart(tx, false)
	}
	m.state = mpEpilogue
}
