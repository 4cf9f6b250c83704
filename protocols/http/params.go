// Header parameters: the multipart boundary in Content-Type, and name and
// filename in a part's Content-Disposition (RFC 2183, 5987, 6266).

package http

import (
	"strings"
	"unicode/utf8"
)

// multipartBoundary reports whether ct is a multipart/* media type and, if
// its boundary parameter is usable, returns it.
func multipartBoundary(ct string) (string, bool) {
	mt, params := ct, ""
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		mt, params = ct[:i], ct[i:]
	}
	mt = strings.TrimSpace(mt)
	if len(mt) < len("multipart/") || !strings.EqualFold(mt[:len("multipart/")], "multipart/") {
		return "", false
	}
	for {
		key, val, rest, ok := nextParam(params)
		if !ok {
			return "", true
		}
		params = rest
		if strings.EqualFold(key, "boundary") {
			if !validBoundary(val) {
				return "", true
			}
			return val, true
		}
	}
}

func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > maxBoundaryLen {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// nextParam parses the next "; key=value" of a header value; value may be a
// quoted string, in which only \" and \\ are escapes (browsers send Windows
// paths with raw backslashes). Every call that returns ok consumes input.
func nextParam(s string) (key, val, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t;")
	if s == "" {
		return "", "", "", false
	}
	eq := strings.IndexAny(s, "=;")
	if eq < 0 {
		return strings.TrimSpace(s), "", "", true
	}
	key = strings.TrimSpace(s[:eq])
	if s[eq] == ';' {
		return key, "", s[eq:], true
	}
	s = strings.TrimLeft(s[eq+1:], " \t")
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s, ';')
		if end < 0 {
			end = len(s)
		}
		return key, strings.TrimSpace(s[:end]), s[end:], true
	}
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			b.WriteByte(s[i+1])
			i += 2
			continue
		}
		i++
		if c == '"' {
			break
		}
		b.WriteByte(c)
	}
	return key, b.String(), s[i:], true
}

// parseDisposition takes name and filename from a Content-Disposition value.
// filename* (RFC 5987/6266) wins over filename when it decodes.
func parseDisposition(v string, part *Part) {
	i := strings.IndexByte(v, ';')
	if i < 0 {
		return
	}
	v = v[i:]
	var filename, extended string
	for {
		key, val, rest, ok := nextParam(v)
		if !ok {
			break
		}
		v = rest
		switch {
		case strings.EqualFold(key, "name"):
			if part.Name == "" {
				part.Name = val
			}
		case strings.EqualFold(key, "filename"):
			if filename == "" {
				filename = val
			}
		case strings.EqualFold(key, "filename*"):
			if s, ok := decodeExtValue(val); ok && extended == "" {
				extended = s
			}
		}
	}
	if extended != "" {
		filename = extended
	}
	if part.Filename == "" {
		part.Filename = filename
	}
}

// decodeExtValue decodes an RFC 5987 ext-value: charset'lang'pct-encoded.
// UTF-8 is kept as is (invalid bytes and all, since the caller quotes);
// ISO-8859-1 is converted to UTF-8.
func decodeExtValue(v string) (string, bool) {
	i := strings.IndexByte(v, '\'')
	if i < 0 {
		return "", false
	}
	charset, rest := v[:i], v[i+1:]
	j := strings.IndexByte(rest, '\'')
	if j < 0 {
		return "", false
	}
	enc := rest[j+1:]
	out := make([]byte, 0, len(enc))
	for k := 0; k < len(enc); k++ {
		c := enc[k]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if k+2 >= len(enc) {
			return "", false
		}
		hi, ok1 := unhex(enc[k+1])
		lo, ok2 := unhex(enc[k+2])
		if !ok1 || !ok2 {
			return "", false
		}
		out = append(out, hi<<4|lo)
		k += 2
	}
	if strings.EqualFold(charset, "iso-8859-1") {
		u := make([]byte, 0, 2*len(out))
		for _, c := range out {
			u = utf8.AppendRune(u, rune(c))
		}
		out = u
	}
	return string(out), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
