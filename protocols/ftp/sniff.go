// Content detection: does a new stream look like an FTP control connection?

package ftp

import "exfilwatch/protocols"

// Verdict is Sniff's answer.
type Verdict uint8

const (
	No       Verdict = iota // not an FTP control connection, as far as these bytes tell
	NeedMore                // too few bytes to decide: call again with more
	Yes                     // looks like FTP
)

func (v Verdict) String() string {
	switch v {
	case No:
		return "no"
	case NeedMore:
		return "need_more"
	case Yes:
		return "yes"
	}
	return "invalid"
}

// Commands that open a session, followed by a space (case-insensitive), as
// Zeek's dpd signature does for USER.
var sniffOpeners = [...]string{"USER ", "AUTH "}

// Whole command lines common enough to pick up a session already under way.
// Each must be followed by CRLF or LF: a bare word is too weak a signal.
var sniffLines = [...]string{
	"FEAT", "SYST", "PASV", "EPSV", "EPSV ALL", "EPSV 1", "EPSV 2",
	"PWD", "XPWD", "CDUP", "NOOP", "QUIT", "ABOR", "REIN", "STAT", "HELP",
	"TYPE I", "TYPE A", "TYPE A N", "TYPE L 8", "MODE S", "STRU F",
	"LIST", "NLST", "MLSD", "PBSZ 0", "PROT P", "PROT C", "OPTS UTF8 ON",
}

// Sniff tells from the first bytes of one direction of a stream whether it
// is an FTP control connection. Server side: "220" then ' ' or '-' (the
// greeting). Client side: "USER " or "AUTH " (any case), or one of a few
// common complete command lines, for sessions picked up mid-way.
func Sniff(dir protocols.Dir, first []byte) Verdict {
	switch dir {
	case protocols.ServerToClient:
		if len(first) < 4 {
			if hasPrefix("220", first) {
				return NeedMore
			}
			return No
		}
		if string(first[:3]) == "220" && (first[3] == ' ' || first[3] == '-') {
			return Yes
		}
		return No
	case protocols.ClientToServer:
		more := false
		check := func(pat string) bool {
			if len(first) >= len(pat) {
				return foldEqual(first[:len(pat)], pat)
			}
			if foldEqual(first, pat[:len(first)]) {
				more = true
			}
			return false
		}
		for _, p := range sniffOpeners {
			if check(p) {
				return Yes
			}
		}
		for _, l := range sniffLines {
			if check(l+"\r\n") || check(l+"\n") {
				return Yes
			}
		}
		if more {
			return NeedMore
		}
	}
	return No
}

// hasPrefix reports whether b is a prefix of s.
func hasPrefix(s string, b []byte) bool {
	return len(b) <= len(s) && string(b) == s[:len(b)]
}

// foldEqual compares b to an upper-case ASCII pattern, ignoring the case of
// ASCII letters only (bytes.EqualFold would also fold non-ASCII runes, such
// as the Kelvin sign to 'K').
func foldEqual(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}
