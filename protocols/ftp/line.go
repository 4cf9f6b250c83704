// Line framing: CRLF (or bare LF) lines, telnet IAC sequences stripped,
// bounded length, resynchronisation after a capture gap.

package ftp

import (
	"bytes"
	"time"
)

// Telnet bytes that may appear on an FTP control connection (RFC 959 §4.1.2
// says it speaks the Telnet protocol; clients send IAC IP IAC DM before ABOR).
const (
	telnetIAC  = 0xFF
	telnetWILL = 251 // WILL, WONT, DO and DONT (251..254) take one option byte
	telnetDONT = 254
)

// iacState tracks a telnet command split across Feed calls.
type iacState uint8

const (
	iacNone iacState = iota // plain data; initial state, must be zero
	iacCmd                  // saw IAC: the next byte is a telnet command
	iacOpt                  // saw IAC WILL/WONT/DO/DONT: the next byte is its option
)

func (s iacState) String() string {
	switch s {
	case iacNone:
		return "none"
	case iacCmd:
		return "iac"
	case iacOpt:
		return "iac_option"
	}
	return "invalid"
}

// framer turns one direction's bytes into lines. It stores at most max bytes
// of the current line and only counts the rest, so a peer that never sends LF
// costs nothing more than max.
type framer struct {
	max      int
	buf      []byte    // current line, telnet stripped, at most max bytes
	dropped  int64     // bytes of the current line beyond max
	lastCR   bool      // the last data byte of the line was CR
	inLine   bool      // a byte of the current line was seen (even a stripped one)
	start    time.Time // timestamp of the Feed that brought the line's first byte
	iac      iacState  // telnet command in progress
	skipping bool      // after a gap: the rest of the line is lost, drop up to LF
}

// scan consumes b up to and including the LF that ends the current line. It
// returns the bytes consumed and whether a complete line waits in the framer
// (take it with line, then call reset).
//
// LF ends a line in every telnet state: servers such as vsftpd and pure-ftpd
// do not interpret telnet, so letting "IAC LF" hide a line end would let a
// client smuggle a command past the parser.
func (f *framer) scan(b []byte, ts time.Time) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	end := bytes.IndexByte(b, '\n')
	seg := b
	if end >= 0 {
		seg = b[:end]
	}
	if f.skipping {
		if end < 0 {
			return len(b), false
		}
		f.skipping = false
		f.iac = iacNone
		return end + 1, false
	}
	if !f.inLine {
		f.inLine = true
		f.start = ts
	}
	if f.iac == iacNone && bytes.IndexByte(seg, telnetIAC) < 0 {
		f.put(seg) // common case: no telnet in this segment
	} else {
		f.stripTelnet(seg)
	}
	if end < 0 {
		return len(b), false
	}
	f.iac = iacNone
	return end + 1, true
}

// stripTelnet appends seg minus telnet commands: IAC IAC is a literal 0xFF,
// IAC WILL/WONT/DO/DONT x is dropped whole, any other IAC x is dropped.
func (f *framer) stripTelnet(seg []byte) {
	for i, c := range seg {
		switch f.iac {
		case iacCmd:
			f.iac = iacNone
			switch {
			case c == telnetIAC:
				f.put(seg[i : i+1])
			case c >= telnetWILL && c <= telnetDONT:
				f.iac = iacOpt
			}
			continue
		case iacOpt:
			f.iac = iacNone
			continue
		}
		if c == telnetIAC {
			f.iac = iacCmd
			continue
		}
		f.put(seg[i : i+1])
	}
}

// put stores what fits under max and counts the rest.
func (f *framer) put(p []byte) {
	room := f.max - len(f.buf)
	if room < 0 {
		room = 0
	}
	if len(p) == 0 {
		return
	}
	f.lastCR = p[len(p)-1] == '\r'
	if len(p) > room {
		f.dropped += int64(len(p) - room)
		p = p[:room]
	}
	f.buf = append(f.buf, p...)
}

// line returns the completed line without its CR, how long it really was,
// and when it started. The slice is valid until reset.
func (f *framer) line() (text []byte, total int64, start time.Time) {
	text = f.buf
	total = int64(len(text)) + f.dropped
	if f.lastCR {
		total--
		if f.dropped == 0 {
			text = text[:len(text)-1]
		}
	}
	return text, total, f.start
}

// reset prepares for the next line, keeping the buffer's capacity.
func (f *framer) reset() {
	f.buf = f.buf[:0]
	f.dropped = 0
	f.lastCR = false
	f.inLine = false
}

// gap forgets the current line and drops input up to the next LF: the line
// lost bytes and cannot be trusted.
func (f *framer) gap() {
	f.reset()
	f.iac = iacNone
	f.skipping = true
}

// partial reports whether a direction ended in the middle of a line.
func (f *framer) partial() bool {
	return f.inLine && !f.skipping && (len(f.buf) > 0 || f.dropped > 0)
}
