// Content-based detection: the sensor offers the first bytes of each side of
// a new stream to Sniff, so HTTP is found on any port.

package http

import (
	"bytes"

	"exfilwatch/protocols"
)

// Verdict is Sniff's answer.
type Verdict uint8

const (
	No       Verdict = iota // not HTTP/1.x from this side
	Yes                     // an HTTP/1.x request or status line starts here
	NeedMore                // still a possible prefix: ask again with more bytes
)

func (v Verdict) String() string {
	switch v {
	case No:
		return "no"
	case Yes:
		return "yes"
	case NeedMore:
		return "need_more"
	}
	return "invalid"
}

// sniffMaxLine is how many bytes Sniff waits for the end of a request line
// whose method it does not know before it gives up.
const sniffMaxLine = 1024

// Sniff reports whether first, the first bytes of one side of a stream, start
// an HTTP/1.x message. Client side: a known method, SP and the start of a
// target; or any uppercase token, SP, a target and " HTTP/1.x" before the line
// end. Server side: "HTTP/1.0 " or "HTTP/1.1 " and three digits.
func Sniff(dir protocols.Dir, first []byte) Verdict {
	switch dir {
	case protocols.ClientToServer:
		return sniffRequest(first)
	case protocols.ServerToClient:
		return sniffStatus(first)
	}
	return No
}

func sniffStatus(b []byte) Verdict {
	const prefix = "HTTP/1."
	for i := 0; i < len(b) && i < 12; i++ {
		c := b[i]
		var ok bool
		switch {
		case i < len(prefix):
			ok = c == prefix[i]
		case i == 7:
			ok = c == '0' || c == '1'
		case i == 8:
			ok = c == ' '
		default:
			ok = c >= '0' && c <= '9'
		}
		if !ok {
			return No
		}
	}
	if len(b) < 12 {
		return NeedMore
	}
	return Yes
}

func sniffRequest(b []byte) Verdict {
	line, complete := b, false
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line, complete = b[:i], true
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		// Still inside the method token.
		if complete || len(line) > maxMethodLen || len(line) > 0 && !isUpperMethod(line) {
			return No
		}
		return NeedMore
	}
	method := line[:sp]
	if !isUpperMethod(method) {
		return No
	}
	rest := line[sp+1:]
	if isKnownMethod(method) {
		if len(rest) == 0 {
			if complete {
				return No
			}
			return NeedMore
		}
		if c := rest[0]; c <= ' ' || c == 0x7f {
			return No
		}
		return Yes
	}
	if complete {
		if _, _, _, ok := parseRequestLine(line); ok {
			return Yes
		}
		return No
	}
	if len(b) >= sniffMaxLine || !validTarget(rest) && len(rest) > 0 {
		return No
	}
	return NeedMore
}
