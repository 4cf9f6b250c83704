package events

import (
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// enc appends one JSON object at a time to a byte slice, without reflection:
// the short-connection benchmark writes two events per connection and
// encoding/json's reflection would cost more than decoding the packets. The
// field order is the order of the calls, so output is byte-stable.
type enc struct {
	b     []byte
	comma []bool // per open object/array: a value was written, the next needs a comma

	// The formatted date and time of the last second seen: events come in
	// bursts within the same second, and time.Format is the costliest part
	// of encoding otherwise.
	tsSec    int64
	tsPrefix []byte // "2006-01-02T15:04:05."
}

func (e *enc) sep() {
	if n := len(e.comma); n > 0 {
		if e.comma[n-1] {
			e.b = append(e.b, ',')
		}
		e.comma[n-1] = true
	}
}

func (e *enc) key(k string) {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) open(k string) {
	if k == "" {
		e.sep()
	} else {
		e.key(k)
	}
	e.b = append(e.b, '{')
	e.comma = append(e.comma, false)
}

func (e *enc) close() {
	e.b = append(e.b, '}')
	e.comma = e.comma[:len(e.comma)-1]
}

func (e *enc) openArr(k string) {
	e.key(k)
	e.b = append(e.b, '[')
	e.comma = append(e.comma, false)
}

func (e *enc) closeArr() {
	e.b = append(e.b, ']')
	e.comma = e.comma[:len(e.comma)-1]
}

func (e *enc) str(k, v string) {
	e.key(k)
	e.b = appendString(e.b, v)
}

// strNE writes a string field only when it is not empty.
func (e *enc) strNE(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

func (e *enc) elemStr(v string) {
	e.sep()
	e.b = appendString(e.b, v)
}

func (e *enc) elemInt(v int64) {
	e.sep()
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *enc) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *enc) uint(k string, v uint64) {
	e.key(k)
	e.b = strconv.AppendUint(e.b, v, 10)
}

func (e *enc) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

// time writes t in UTC as RFC 3339 with nanoseconds.
func (e *enc) time(k string, t time.Time) {
	e.key(k)
	t = t.UTC()
	if sec := t.Unix(); sec != e.tsSec || e.tsPrefix == nil {
		e.tsSec = sec
		e.tsPrefix = t.AppendFormat(e.tsPrefix[:0], "2006-01-02T15:04:05.")
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, e.tsPrefix...)
	ns := t.Nanosecond()
	var d [9]byte
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	e.b = append(e.b, d[:]...)
	e.b = append(e.b, 'Z', '"')
}

func (e *enc) hex(k string, v []byte) {
	e.key(k)
	e.b = append(e.b, '"')
	e.b = hex.AppendEncode(e.b, v)
	e.b = append(e.b, '"')
}

// appendString appends s as a JSON string. Invalid UTF-8 (hostile traffic
// puts anything in a header) becomes U+FFFD so every line stays valid JSON.
func appendString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexd[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
