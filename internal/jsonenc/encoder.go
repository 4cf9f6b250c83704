package jsonenc

import (
	"strconv"
	"time"
)

// Encoder appends one JSON document at a time to B, without reflection:
// fields come in the order of the calls, so output is byte-stable. Events
// and findings share it; they differ in HTML and TrimmedTime.
type Encoder struct {
	B []byte
	// HTML selects encoding/json's string dialect (HTML characters
	// escaped) instead of the events' one; see AppendString.
	HTML bool
	// TrimmedTime writes times as time.Time.MarshalJSON does (RFC 3339,
	// trailing zeros of the fraction trimmed: findings) instead of with
	// nine digits of nanoseconds (events). The zero value is the events'.
	TrimmedTime bool
	TS          TimeCache

	// comma says, per open object or array, that a value was written and
	// the next needs a comma. The nesting depth is set by the callers'
	// code, never by the data, so a fixed array does (no allocation).
	comma [maxDepth]bool
	depth int
}

const maxDepth = 32

// Reset empties B and forgets open objects, keeping the buffers.
func (e *Encoder) Reset() {
	e.B = e.B[:0]
	e.depth = 0
}

// Sep writes the comma a value needs after a previous one.
func (e *Encoder) Sep() {
	if e.depth > 0 {
		if e.comma[e.depth-1] {
			e.B = append(e.B, ',')
		}
		e.comma[e.depth-1] = true
	}
}

// Key writes a field name; names are constants that need no escaping.
func (e *Encoder) Key(k string) {
	e.Sep()
	e.B = append(e.B, '"')
	e.B = append(e.B, k...)
	e.B = append(e.B, '"', ':')
}

func (e *Encoder) push(c byte) {
	e.B = append(e.B, c)
	e.comma[e.depth] = false
	e.depth++
}

func (e *Encoder) pop(c byte) {
	e.B = append(e.B, c)
	e.depth--
}

// Open starts an object: field k, or an array element (or the document)
// when k is "".
func (e *Encoder) Open(k string) {
	if k == "" {
		e.Sep()
	} else {
		e.Key(k)
	}
	e.push('{')
}

// Close ends an object.
func (e *Encoder) Close() { e.pop('}') }

// OpenArr starts an array field.
func (e *Encoder) OpenArr(k string) {
	e.Key(k)
	e.push('[')
}

// CloseArr ends an array.
func (e *Encoder) CloseArr() { e.pop(']') }

// String appends s quoted in the encoder's dialect.
func (e *Encoder) String(s string) { e.B = AppendString(e.B, s, e.HTML) }

// Str writes a string field.
func (e *Encoder) Str(k, v string) {
	e.Key(k)
	e.String(v)
}

// StrNE writes a string field only when it is not empty.
func (e *Encoder) StrNE(k, v string) {
	if v != "" {
		e.Str(k, v)
	}
}

// ElemStr writes a string array element.
func (e *Encoder) ElemStr(v string) {
	e.Sep()
	e.String(v)
}

// ElemInt writes an integer array element.
func (e *Encoder) ElemInt(v int64) {
	e.Sep()
	e.B = strconv.AppendInt(e.B, v, 10)
}

// Int writes an integer field.
func (e *Encoder) Int(k string, v int64) {
	e.Key(k)
	e.B = strconv.AppendInt(e.B, v, 10)
}

// Uint writes an unsigned integer field.
func (e *Encoder) Uint(k string, v uint64) {
	e.Key(k)
	e.B = strconv.AppendUint(e.B, v, 10)
}

// Bool writes a boolean field.
func (e *Encoder) Bool(k string, v bool) {
	e.Key(k)
	e.B = strconv.AppendBool(e.B, v)
}

// Time writes a time field in UTC, in the format TrimmedTime selects.
func (e *Encoder) Time(k string, t time.Time) {
	e.Key(k)
	e.B = append(e.B, '"')
	if e.TrimmedTime {
		e.B = e.TS.AppendRFC3339Nano(e.B, t)
	} else {
		e.B = e.TS.AppendNano9(e.B, t)
	}
	e.B = append(e.B, '"')
}

// Hex writes bytes as a quoted lower-case hex string.
func (e *Encoder) Hex(k string, v []byte) {
	e.Key(k)
	e.B = AppendHex(e.B, v)
}
