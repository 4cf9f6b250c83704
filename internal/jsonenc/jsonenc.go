// Package jsonenc holds the pieces of JSON encoding that the sensor's two
// hand-written encoders share (sensor/events' ECS event lines and
// sensor/detect's findings): string escaping and time formatting, written
// for speed because both run once per event or finding on the hot path.
//
// Strings come in two dialects, both kept byte-for-byte as they were when
// each encoder had its own copy: changing a byte changes what collectors and
// goldens see.
//   - html=true is encoding/json's default (json.Marshal of a string): <, >
//     and & as \u003c \u003e \u0026, \b and \f in short form, DEL as is,
//     each byte of invalid UTF-8 as the escape \ufffd.
//   - html=false is the events' dialect: no HTML escaping, \b and \f as
//     \u0008 \u000c, DEL as \u007f (it upsets terminals reading the lines),
//     each byte of invalid UTF-8 as the character U+FFFD itself.
//
// Both escape ", \, the other control characters, and U+2028/U+2029 (which
// break JavaScript readers of the JSON).
package jsonenc

import (
	"encoding/hex"
	"time"
	"unicode/utf8"
)

// dialect is one way of escaping: a table lookup per byte keeps the common
// case (printable ASCII) to one load and one branch.
type dialect struct {
	safe [256]bool             // ASCII bytes copied as they are (none of 0x80-0xff)
	esc  [utf8.RuneSelf]string // what an unsafe ASCII byte becomes
	bad  string                // what each byte of invalid UTF-8 becomes
}

var htmlDialect, eventsDialect = newDialect(true), newDialect(false)

func newDialect(html bool) *dialect {
	const hexd = "0123456789abcdef"
	d := &dialect{bad: "\ufffd"}
	if html {
		d.bad = `\ufffd`
	}
	for c := range utf8.RuneSelf {
		switch {
		case c == '"' || c == '\\':
			d.esc[c] = `\` + string(rune(c))
		case c == '\n':
			d.esc[c] = `\n`
		case c == '\r':
			d.esc[c] = `\r`
		case c == '\t':
			d.esc[c] = `\t`
		case html && c == '\b':
			d.esc[c] = `\b`
		case html && c == '\f':
			d.esc[c] = `\f`
		case c < 0x20, html && (c == '<' || c == '>' || c == '&'), !html && c == 0x7f:
			d.esc[c] = `\u00` + string(hexd[c>>4]) + string(hexd[c&15])
		default:
			d.safe[c] = true
		}
	}
	return d
}

// AppendString appends s to dst as a quoted JSON string in the dialect html
// selects (see the package comment).
func AppendString[S string | []byte](dst []byte, s S, html bool) []byte {
	dst = append(dst, '"')
	dst = AppendChars(dst, s, html)
	return append(dst, '"')
}

// AppendChars appends s escaped as AppendString does, without the quotes:
// for a string assembled from pieces in place. Pieces may be escaped one by
// one only where an ASCII byte separates them (it ends any UTF-8 sequence).
func AppendChars[S string | []byte](dst []byte, s S, html bool) []byte {
	d := eventsDialect
	if html {
		d = htmlDialect
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if d.safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			dst = append(dst, d.esc[c]...)
			i++
			start = i
			continue
		}
		// A small copy to a string stays on the stack (as encoding/json
		// does for []byte); for a string it is no copy at all.
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, d.bad...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', byte('8'+r-'\u2028'))
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// AppendHex appends v as a quoted lower-case hex string (hashes).
func AppendHex(dst, v []byte) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, v)
	return append(dst, '"')
}

// TimeCache formats times in UTC, remembering the date and time of day of
// the last second it formatted: events and a finding's times come in bursts
// within one second, and time.AppendFormat is otherwise the costliest part
// of encoding them. The zero value is ready; it is not safe for concurrent
// use.
type TimeCache struct {
	sec int64
	n   int      // length of the remembered prefix; 0: none yet
	buf [32]byte // "2006-01-02T15:04:05" (a year past 9999 is longer)
}

const prefixLayout = "2006-01-02T15:04:05"

// prefix appends t's "2006-01-02T15:04:05" in UTC, as t.AppendFormat
// writes it (years outside 0-9999 included).
func (c *TimeCache) prefix(dst []byte, t time.Time) []byte {
	if sec := t.Unix(); sec != c.sec || c.n == 0 {
		t = t.UTC()
		if y, mo, d := t.Date(); y < 0 || y > 9999 {
			p := t.AppendFormat(c.buf[:0], prefixLayout)
			if len(p) > len(c.buf) {
				// Cannot happen for the years time.Time holds;
				// stay correct without caching if it did.
				c.n = 0
				return append(dst, p...)
			}
			c.sec, c.n = sec, len(p)
		} else {
			// The digits written directly: AppendFormat reads its
			// layout on every call, and a finding's times often
			// differ by a second or more.
			h, mi, s := t.Clock()
			b := &c.buf
			put4(b[0:4], y)
			b[4] = '-'
			put2(b[5:7], int(mo))
			b[7] = '-'
			put2(b[8:10], d)
			b[10] = 'T'
			put2(b[11:13], h)
			b[13] = ':'
			put2(b[14:16], mi)
			b[16] = ':'
			put2(b[17:19], s)
			c.sec, c.n = sec, len(prefixLayout)
		}
	}
	return append(dst, c.buf[:c.n]...)
}

func put2(b []byte, v int) {
	_ = b[1]
	b[0] = byte('0' + v/10)
	b[1] = byte('0' + v%10)
}

func put4(b []byte, v int) {
	_ = b[3]
	put2(b[0:2], v/100)
	put2(b[2:4], v%100)
}

// AppendNano9 appends t in UTC as "2006-01-02T15:04:05.000000000Z" (always
// nine digits of nanoseconds, so the events' timestamps line up and sort as
// text), without quotes.
func (c *TimeCache) AppendNano9(dst []byte, t time.Time) []byte {
	dst = c.prefix(dst, t)
	return appendFrac(dst, t.Nanosecond(), false)
}

// AppendRFC3339Nano appends t in UTC as t.UTC().AppendFormat(dst,
// time.RFC3339Nano) does (trailing zeros of the nanoseconds trimmed, no
// fraction when they are zero), without quotes. For years 0-9999 these are
// the bytes of time.Time.MarshalJSON; for others, which MarshalJSON refuses,
// still a valid JSON string once quoted.
func (c *TimeCache) AppendRFC3339Nano(dst []byte, t time.Time) []byte {
	dst = c.prefix(dst, t)
	return appendFrac(dst, t.Nanosecond(), true)
}

// appendFrac appends ".nnnnnnnnnZ" (trimmed of trailing zeros, or just
// "Z" for zero nanoseconds, when trim is set).
func appendFrac(dst []byte, ns int, trim bool) []byte {
	if trim && ns == 0 {
		return append(dst, 'Z')
	}
	var d [11]byte
	d[0] = '.'
	for i := 9; i >= 1; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	n := 10
	if trim {
		for d[n-1] == '0' {
			n--
		}
	}
	d[n] = 'Z'
	return append(dst, d[:n+1]...)
}
