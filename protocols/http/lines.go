// Line framing: LF-terminated lines (CR before the LF optional, as Zeek's
// no_crlf case shows real clients need), with a bounded copy only for lines
// split across Feed calls.

package http

import (
	"bytes"
	"time"
)

// lineReader frames one stream into lines. A line that lies wholly inside the
// fed slice is returned as a sub-slice of it, without copying; only a line
// split across Feed calls is copied into buf, which never holds more than
// max+1 bytes (the +1 is the CR of a line of exactly max bytes).
type lineReader struct {
	buf   []byte    // partial line carried across calls
	n     int64     // bytes of the current line consumed so far
	over  bool      // the current line passed max: its bytes are dropped up to the LF
	last  int64     // bytes of the line just completed, LF included
	start time.Time // ts of the Feed that delivered the current line's first byte
}

// next consumes b up to and including the LF that ends the current line. It
// returns how many bytes it consumed and, when the line ended inside b, done.
// A done line comes without its CR LF; if it was longer than max bytes, long
// is set and line is nil. line is valid only until the next call.
func (r *lineReader) next(b []byte, max int, ts time.Time) (line []byte, used int, done, long bool) {
	if r.n == 0 {
		r.start = ts
		r.buf = r.buf[:0]
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		r.n += int64(len(b))
		if !r.over {
			if len(r.buf)+len(b) > max+1 {
				r.over = true
				r.buf = r.buf[:0]
			} else {
				r.buf = appendBounded(r.buf, b, max+1)
			}
		}
		return nil, len(b), false, false
	}
	used = i + 1
	r.last = r.n + int64(used)
	r.n = 0
	if r.over {
		r.over = false
		return nil, used, true, true
	}
	if len(r.buf) == 0 {
		line = b[:i]
	} else {
		if len(r.buf)+i > max+1 {
			r.buf = r.buf[:0]
			return nil, used, true, true
		}
		r.buf = appendBounded(r.buf, b[:i], max+1)
		line = r.buf
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > max {
		return nil, used, true, true
	}
	return line, used, true, false
}

// pending reports bytes of an unfinished line (for End and Gap decisions).
func (r *lineReader) pending() int64 { return r.n }

// reset drops any unfinished line, as after a gap.
func (r *lineReader) reset() {
	r.n = 0
	r.over = false
	r.buf = r.buf[:0]
}

// appendBounded appends b to buf, growing it to at most limit bytes of
// capacity, so that the buffer cap itself stays bounded (append's own growth
// could overshoot the limit). The caller guarantees len(buf)+len(b) <= limit.
func appendBounded(buf, b []byte, limit int) []byte {
	need := len(buf) + len(b)
	if need > cap(buf) {
		c := 2 * cap(buf)
		if c < 128 {
			c = 128
		}
		if c < need {
			c = need
		}
		if c > limit {
			c = limit
		}
		nb := make([]byte, len(buf), c)
		copy(nb, buf)
		buf = nb
	}
	return append(buf, b...)
}
