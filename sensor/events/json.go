package events

import (
	"strconv"
	"time"

	"exfilwatch/internal/jsonenc"
)

// enc appends one JSON object at a time to a byte slice, without reflection:
// the short-connection benchmark writes two events per connection and
// encoding/json's reflection would cost more than decoding the packets. The
// field order is the order of the calls, so output is byte-stable.
type enc struct {
	b     []byte
	comma []bool // per open object/array: a value was written, the next needs a comma

	ts jsonenc.TimeCache // events come in bursts within one second
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

// time writes t in UTC as RFC 3339 with nine digits of nanoseconds.
func (e *enc) time(k string, t time.Time) {
	e.key(k)
	e.b = append(e.b, '"')
	e.b = e.ts.AppendNano9(e.b, t)
	e.b = append(e.b, '"')
}

func (e *enc) hex(k string, v []byte) {
	e.key(k)
	e.b = jsonenc.AppendHex(e.b, v)
}

// appendString appends s as a JSON string in the events' dialect (no HTML
// escaping; invalid UTF-8, which hostile traffic puts in any header, as
// U+FFFD so every line stays valid JSON).
func appendString(b []byte, s string) []byte {
	return jsonenc.AppendString(b, s, false)
}
