package main

import "strconv"

// A piece is part of an application message: a literal (headers, command
// lines), or n bulk bytes taken from one of the fixed pseudorandom blocks,
// optionally framed with HTTP chunked transfer-encoding. Bulk bytes are never
// materialised: segments are filled straight from the block.
type piece struct {
	lit   []byte
	n     int64
	text  bool // take bytes from the printable-text block
	chunk int  // >0: emit the n bytes as chunks of this size, then "0\r\n\r\n"
}

func lit(b []byte) piece                   { return piece{lit: b} }
func litS(s string) piece                  { return piece{lit: []byte(s)} }
func bulk(n int64) piece                   { return piece{n: n} }
func textBody(n int64) piece               { return piece{n: n, text: true} }
func chunked(n int64, chunk int) piece     { return piece{n: n, chunk: chunk} }
func chunkedText(n int64, chunk int) piece { return piece{n: n, chunk: chunk, text: true} }
func (p piece) isBulk() bool               { return p.lit == nil }
func (p piece) wireLen() int64 {
	if !p.isBulk() {
		return int64(len(p.lit))
	}
	if p.chunk == 0 {
		return p.n
	}
	full := p.n / int64(p.chunk)
	l := p.n + full*int64(len(strconv.FormatInt(int64(p.chunk), 16))+4)
	if rest := p.n % int64(p.chunk); rest > 0 {
		l += int64(len(strconv.FormatInt(rest, 16)) + 4)
	}
	return l + 5 // "0\r\n\r\n"
}

// msg streams the bytes of a sequence of pieces.
type msg struct {
	p       []piece
	i       int   // current piece
	off     int64 // bytes of the current piece (its body for bulk) already produced
	boff    int   // starting offset in the block for bulk bytes
	pend    []byte
	pendBuf [24]byte
	cleft   int64 // chunked: body bytes left in the current chunk
	final   bool  // chunked: terminator queued
	sent    int64 // wire bytes produced so far
}

func (m *msg) wireLen() int64 {
	var l int64
	for _, p := range m.p {
		l += p.wireLen()
	}
	return l
}

func (m *msg) done() bool { return m.i >= len(m.p) && len(m.pend) == 0 }

// fill copies the next bytes of the message into dst and returns how many.
func (m *msg) fill(g *gen, dst []byte) int {
	n := 0
	for n < len(dst) {
		if len(m.pend) > 0 {
			if m.final && n > 0 && len(m.pend) > len(dst)-n {
				// Keep the last-chunk terminator in one segment, as a
				// server writing it separately would: tshark 4.0 marks a
				// terminator split after its "\r" as a malformed packet.
				break
			}
			c := copy(dst[n:], m.pend)
			m.pend = m.pend[c:]
			n += c
			continue
		}
		if m.i >= len(m.p) {
			break
		}
		p := &m.p[m.i]
		if !p.isBulk() {
			c := copy(dst[n:], p.lit[m.off:])
			m.off += int64(c)
			n += c
			if m.off == int64(len(p.lit)) {
				m.next()
			}
			continue
		}
		if p.chunk > 0 && m.cleft == 0 {
			if m.final {
				m.next()
				continue
			}
			size := min(int64(p.chunk), p.n-m.off)
			b := m.pendBuf[:0]
			if m.off > 0 {
				b = append(b, '\r', '\n') // end of the previous chunk
			}
			if size == 0 {
				b = append(b, "0\r\n\r\n"...)
				m.final = true
			} else {
				b = strconv.AppendInt(b, size, 16)
				b = append(b, '\r', '\n')
				m.cleft = size
			}
			m.pend = b
			continue
		}
		want := int64(len(dst) - n)
		if p.chunk > 0 {
			want = min(want, m.cleft)
		} else {
			want = min(want, p.n-m.off)
		}
		blk := g.block
		if p.text {
			blk = g.text
		}
		pos := (int64(m.boff) + m.off) % blockSize
		c := copy(dst[n:n+int(want)], blk[pos:]) // block has blockPad spare bytes
		m.off += int64(c)
		n += c
		if p.chunk > 0 {
			m.cleft -= int64(c)
		} else if m.off == p.n {
			m.next()
		}
	}
	m.sent += int64(n)
	return n
}

func (m *msg) next() {
	m.i++
	m.off = 0
	m.cleft = 0
	m.final = false
}
