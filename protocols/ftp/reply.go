// Reply lines: 3-digit codes, multi-line replies (RFC 959 §4.2), bounded text.

package ftp

import (
	"time"

	"exfilwatch/protocols"
)

// replyState is where the reply direction stands between lines.
type replyState uint8

const (
	replyFirst replyState = iota // expecting the first line of a reply; initial state, must be zero
	replyMore                    // inside a multi-line reply: waiting for "ddd " with the opening code
)

func (s replyState) String() string {
	switch s {
	case replyFirst:
		return "first_line"
	case replyMore:
		return "multi_line"
	}
	return "invalid"
}

// replyAsm gathers the lines of one reply. Its memory is bounded by
// MaxReplyBytes whatever the number of lines.
type replyAsm struct {
	state   replyState
	code    int
	msg     []byte // joined text, at most MaxReplyBytes
	seen    int64  // text bytes seen, stored or not
	lines   int    // lines seen, stored or not
	gapped  bool   // a gap hit the server direction inside this multi-line reply
	anomaly []protocols.Anomaly
}

func (a *replyAsm) begin(code int) {
	a.code = code
	a.msg = a.msg[:0]
	a.seen = 0
	a.lines = 0
	a.gapped = false
	a.anomaly = nil
}

func (a *replyAsm) note(an protocols.Anomaly) { a.anomaly = addAnomaly(a.anomaly, an) }

// add appends one line's text, "\n"-separated, within the limits.
func (a *replyAsm) add(text []byte, lim Limits) {
	a.lines++
	sep := 0
	if a.lines > 1 {
		sep = 1
	}
	a.seen += int64(sep + len(text))
	if a.lines > lim.maxReplyLines() {
		a.note(protocols.Anomaly{Name: AnomalyTooManyReplyLines, Limit: int64(lim.maxReplyLines())})
		return
	}
	max := lim.maxReplyBytes()
	if sep == 1 && len(a.msg) < max {
		a.msg = append(a.msg, '\n')
	}
	room := max - len(a.msg)
	if len(text) > room {
		text = text[:room]
		a.note(protocols.Anomaly{Name: AnomalyReplyTooLong, Limit: int64(max)})
	}
	a.msg = append(a.msg, text...)
}

// finish returns the reply and its anomalies, with the final counts filled
// in, and readies the assembler for the next reply.
func (a *replyAsm) finish(ts time.Time) (Reply, []protocols.Anomaly) {
	r := Reply{Code: a.code, Message: string(a.msg), Time: ts}
	an := a.anomaly
	for i := range an {
		switch an[i].Name {
		case AnomalyTooManyReplyLines:
			an[i].Observed = int64(a.lines)
		case AnomalyReplyTooLong:
			an[i].Observed = a.seen
		}
	}
	a.state = replyFirst
	a.anomaly = nil
	return r, an
}

// replyCode reads a reply code: three digits, first digit 1..6 (RFC 959
// uses 1..5, RFC 2228 adds 6 for protected replies).
func replyCode(line []byte) (int, bool) {
	if len(line) < 3 {
		return 0, false
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	return code, code >= 100 && code < 700
}

// isReplyEnd reports whether line is a "ddd text" (or bare "ddd") line.
func isReplyEnd(line []byte) bool {
	_, ok := replyCode(line)
	return ok && (len(line) == 3 || line[3] == ' ')
}

// replyLine consumes one server line and hands complete replies to onReply.
//
// A line without a valid code is not dropped: it is taken as a reply with
// Code 0 to the oldest pending command. Servers send one reply per command,
// so a garbled one still answers something; ignoring it would pair every
// later reply with the wrong command (Zeek's ftp-missing-reply-code and
// ftp-invalid-reply-code captures show such servers).
func (s *Session) replyLine(line []byte, total int64, ts time.Time) {
	a := &s.rep
	long := total > int64(len(line))
	tooLong := func() protocols.Anomaly {
		return protocols.Anomaly{Name: AnomalyLineTooLong, Observed: total,
			Limit: int64(s.lim.maxLineBytes()), Detail: protocols.Quote(line)}
	}
	if a.state == replyMore {
		code, ok := replyCode(line)
		if !(a.gapped && ok && code != a.code && isReplyEnd(line)) {
			text := line
			if ok && code == a.code && len(line) > 3 && (line[3] == '-' || line[3] == ' ') {
				text = line[4:]
			}
			if long {
				a.note(tooLong())
			}
			a.add(text, s.lim)
			if ok && code == a.code && isReplyEnd(line) {
				s.onReply(a.finish(ts))
			}
			return
		}
		// The last line of the reply fell into a gap and this line opens
		// the next reply: close the cut one rather than swallow every later
		// reply as its continuation.
		a.note(protocols.Anomaly{Name: AnomalyReplyCutByGap, Detail: protocols.Quote(line)})
		s.onReply(a.finish(ts))
	}

	code, ok := replyCode(line)
	if !ok {
		code = 0
	}
	a.begin(code)
	if long {
		a.note(tooLong())
	}
	switch {
	case !ok:
		a.note(protocols.Anomaly{Name: AnomalyInvalidReplyCode, Detail: protocols.Quote(line)})
		a.add(line, s.lim)
	case len(line) == 3:
		a.add(nil, s.lim)
	case line[3] == ' ':
		a.add(line[4:], s.lim)
	case line[3] == '-':
		a.add(line[4:], s.lim)
		a.state = replyMore
		return
	default:
		// "230OK": keep the code, the server meant it.
		a.note(protocols.Anomaly{Name: AnomalyMalformedReply, Detail: protocols.Quote(line)})
		a.add(line[3:], s.lim)
	}
	s.onReply(a.finish(ts))
}
