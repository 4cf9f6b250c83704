// Package protocols holds what every stream parser shares: the direction of a
// byte stream and the anomaly record. Parsers live in sub-packages (http, ftp);
// they know nothing of packets, processes, files or clocks: the sensor feeds
// them reassembled bytes per direction, gaps and ends, with packet timestamps.
package protocols

import "time"

// Dir is the direction of a byte stream inside one connection.
type Dir uint8

const (
	// ClientToServer carries bytes sent by the side that opened the connection.
	ClientToServer Dir = 0
	// ServerToClient carries bytes sent by the side that accepted it.
	ServerToClient Dir = 1
)

// Reverse returns the other direction.
func (d Dir) Reverse() Dir { return d ^ 1 }

func (d Dir) String() string {
	if d == ClientToServer {
		return "to_server"
	}
	return "to_client"
}

// Stream is what the sensor drives for every TCP connection whose content
// was recognised. Feed gets bytes in stream order, exactly once each; b is only
// valid during the call (the parser copies what it keeps). Gap says n bytes in
// that direction were never captured. End says that direction is finished (FIN,
// RST, idle timeout or end of capture). None of them may panic or block, whatever
// the input.
type Stream interface {
	Feed(dir Dir, b []byte, ts time.Time)
	Gap(dir Dir, n int64, ts time.Time)
	End(dir Dir, ts time.Time)
}

// Anomaly records input a parser did not accept as is: a limit that was hit or
// a protocol violation. Parsers keep going after an anomaly and report it
// instead of failing.
type Anomaly struct {
	Name     string // dotted, e.g. "http.header_limit_reached"
	Observed int64  // what was seen (a length, a count), when it applies
	Limit    int64  // the limit that was hit, when it applies
	Detail   string // the offending text, quoted and capped (see Quote)
}

// QuoteLimit caps how much input an anomaly quotes, as net/textproto does.
const QuoteLimit = 80

// Quote returns b as printable text capped at QuoteLimit bytes, for Anomaly.Detail.
func Quote(b []byte) string {
	if len(b) > QuoteLimit {
		b = b[:QuoteLimit]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c >= 0x20 && c < 0x7f && c != '\\':
			out = append(out, c)
		case c == '\\':
			out = append(out, '\\', '\\')
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'x', hex[c>>4], hex[c&15])
		}
	}
	return string(out)
}
