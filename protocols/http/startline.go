// Request and status lines. These checks decide what counts as HTTP at all
// (Sniff, resynchronisation), so they are strict about shape and lenient only
// where real clients are sloppy (extra spaces, trailing whitespace).

package http

import "bytes"

// isKnownMethod reports methods accepted without a version (HTTP/0.9 at the
// start of a stream, Sniff on a short prefix): RFC 9110, WebDAV (RFC 4918,
// 3253, 5323) and a few common extensions. A switch rather than a table keeps
// the package free of mutable globals.
func isKnownMethod(m []byte) bool {
	switch string(m) {
	case "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
		"SEARCH", "REPORT", "CHECKOUT", "CHECKIN", "MERGE", "MKACTIVITY",
		"MKWORKSPACE", "VERSION-CONTROL", "BASELINE-CONTROL", "LABEL", "UPDATE",
		"UNCHECKOUT", "MKCALENDAR", "ACL", "BIND", "UNBIND", "REBIND", "ORDERPATCH",
		"PURGE", "LINK", "UNLINK", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "M-SEARCH":
		return true
	}
	return false
}

// maxMethodLen bounds a method token; the longest known one has 16 bytes.
const maxMethodLen = 32

// isTchar reports whether c may appear in a token (RFC 9110 5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// isUpperMethod reports whether m looks like a method a real client sends:
// uppercase letters, digits, '-' and '_'. Resynchronisation demands it so
// that text inside a body rarely passes for a request line.
func isUpperMethod(m []byte) bool {
	if len(m) == 0 || len(m) > maxMethodLen || m[0] < 'A' || m[0] > 'Z' {
		return false
	}
	for _, c := range m {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validTarget rejects control bytes; spaces inside are allowed because some
// clients send them raw and the target is kept as on the wire.
func validTarget(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// parseVersion accepts "HTTP/1.x" and returns "1.x". Other majors (HTTP/2
// prior-knowledge prefaces, garbage) are not HTTP/1 and are refused.
func parseVersion(v []byte) (string, bool) {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return "", false
	}
	switch v[7] {
	case '0':
		return "1.0", true
	case '1':
		return "1.1", true
	}
	return "1." + string(v[7]), true
}

// parseRequestLine splits "METHOD SP target SP HTTP/1.x". ok is false for
// anything else, including the HTTP/0.9 form (see parseSimpleRequest). The
// target is the token after the method: a raw space inside a target ends it,
// as in tshark and Suricata, so decoders agree on what was requested.
func parseRequestLine(line []byte) (method, target []byte, version string, ok bool) {
	line = trimSpace(line)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > maxMethodLen {
		return nil, nil, "", false
	}
	method = line[:sp]
	if !isToken(method) {
		return nil, nil, "", false
	}
	rest := line[sp+1:]
	vs := bytes.LastIndexByte(rest, ' ')
	if vs < 0 {
		return nil, nil, "", false
	}
	version, ok = parseVersion(rest[vs+1:])
	if !ok {
		return nil, nil, "", false
	}
	target = trimSpace(rest[:vs])
	if i := bytes.IndexAny(target, " \t"); i >= 0 {
		target = target[:i]
	}
	if !validTarget(target) {
		return nil, nil, "", false
	}
	return method, target, version, true
}

// parseSimpleRequest accepts the HTTP/0.9 form "GET /path": a known method,
// one space, and a target starting with '/' with no space in it.
func parseSimpleRequest(line []byte) (method, target []byte, ok bool) {
	line = trimSpace(line)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isKnownMethod(line[:sp]) {
		return nil, nil, false
	}
	target = line[sp+1:]
	if len(target) == 0 || target[0] != '/' || bytes.IndexByte(target, ' ') >= 0 || !validTarget(target) {
		return nil, nil, false
	}
	return line[:sp], target, true
}

// parseStatusLine splits "HTTP/1.x SP 3DIGIT [SP reason]". Like tshark it
// takes the leading digits of a malformed code ("2XX" is 2): the response is
// still framed and counted rather than lost.
func parseStatusLine(line []byte) (version string, code int, reason []byte, ok bool) {
	if len(line) < 10 {
		return "", 0, nil, false
	}
	version, ok = parseVersion(line[:8])
	if !ok || !isSpace(line[8]) {
		return "", 0, nil, false
	}
	rest := line[9:]
	for len(rest) > 0 && isSpace(rest[0]) {
		rest = rest[1:]
	}
	n := 0
	for n < len(rest) && n < 3 && rest[n] >= '0' && rest[n] <= '9' {
		code = code*10 + int(rest[n]-'0')
		n++
	}
	if n == 0 {
		return "", 0, nil, false
	}
	rest = rest[n:]
	for len(rest) > 0 && !isSpace(rest[0]) {
		rest = rest[1:]
	}
	return version, code, trimSpace(rest), true
}
