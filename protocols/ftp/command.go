// Command lines: name and argument, credential redaction, command classes.

package ftp

import (
	"bytes"
	"time"

	"exfilwatch/protocols"
)

// Command is one client command line with the server's answer to it.
//
// Every client line is a Command, even an empty or non-alphabetic one:
// vsftpd and pure-ftpd answer such lines with 500, so dropping them would
// shift every later reply onto the wrong command. Such lines carry
// AnomalyInvalidCommand.
type Command struct {
	Start time.Time // when the command line's first byte was fed
	End   time.Time // when the final reply completed; when the session ended or the command was evicted if none came
	Name  string    // upper-cased ASCII, at most MaxCommandNameBytes; "" for an empty line
	Arg   string    // the text after the first space, as sent; PASS/ACCT arguments are "<redacted>"

	Reply     *Reply  // final (non-1xx) reply, nil if none came
	Interim   []Reply // 1xx replies (e.g. 150), at most MaxInterimReplies
	Anomalies []protocols.Anomaly
}

// Reply is one complete server reply (RFC 959 §4.2).
type Reply struct {
	Code    int       // 100..699; 0 when the line had no valid code (AnomalyInvalidReplyCode)
	Message string    // text after the code; lines of a multi-line reply joined with "\n", at most MaxReplyBytes
	Time    time.Time // when the reply's last line was fed
}

// redacted replaces credentials: they must not leave the sensor.
const redacted = "<redacted>"

// Command classes the session acts on.
type cmdClass uint8

const (
	classOther    cmdClass = iota // no side effect on the session
	classTransfer                 // STOR STOU APPE RETR LIST NLST MLSD: consumes expectations
	classActive                   // PORT EPRT LPRT: announces an active-mode expectation
	classAuth                     // AUTH: 234 switches the session to TLS
	classRein                     // REIN: 2xx forgets unused expectations
	classQuit                     // QUIT: 221 ends the dialogue
)

func (c cmdClass) String() string {
	switch c {
	case classOther:
		return "other"
	case classTransfer:
		return "transfer"
	case classActive:
		return "active"
	case classAuth:
		return "auth"
	case classRein:
		return "rein"
	case classQuit:
		return "quit"
	}
	return "invalid"
}

func classify(name string) cmdClass {
	switch name {
	case "STOR", "STOU", "APPE", "RETR", "LIST", "NLST", "MLSD":
		return classTransfer
	case "PORT", "EPRT", "LPRT":
		return classActive
	case "AUTH":
		return classAuth
	case "REIN":
		return classRein
	case "QUIT":
		return classQuit
	}
	return classOther
}

// isUpload reports whether a transfer command sends file content to the server.
func isUpload(name string) bool {
	return name == "STOR" || name == "STOU" || name == "APPE"
}

// secretArg reports whether the command's argument is a credential.
func secretArg(name string) bool { return name == "PASS" || name == "ACCT" }

// parseCommand splits a line at its first space, as vsftpd and pure-ftpd do,
// and validates the name. Leading spaces are not skipped: servers reject
// " USER x" as an empty command, and so do we.
func parseCommand(line []byte, total int64, lim Limits) (*Command, []protocols.Anomaly) {
	rawName, rawArg := line, []byte(nil)
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		rawName, rawArg = line[:i], line[i+1:]
	}
	maxName := lim.maxCommandNameBytes()
	name := upperASCII(rawName, maxName)
	c := &Command{Name: name, Arg: string(rawArg)}
	if secretArg(name) && len(rawArg) > 0 {
		c.Arg = redacted
	}
	detail := func() string { return quoteLine(line) }
	var an []protocols.Anomaly
	if total > int64(len(line)) {
		an = append(an, protocols.Anomaly{Name: AnomalyLineTooLong, Observed: total,
			Limit: int64(lim.maxLineBytes()), Detail: detail()})
	}
	if len(rawName) > maxName {
		an = append(an, protocols.Anomaly{Name: AnomalyCommandNameTooLong,
			Observed: int64(len(rawName)), Limit: int64(maxName), Detail: detail()})
	}
	if len(rawName) == 0 || !isLetters(rawName) {
		an = append(an, protocols.Anomaly{Name: AnomalyInvalidCommand, Detail: detail()})
	}
	return c, an
}

// quoteLine quotes a client line for an anomaly, hiding credentials.
func quoteLine(line []byte) string {
	name, _, _ := bytes.Cut(line, []byte{' '})
	if secretArg(upperASCII(name, 8)) {
		return protocols.Quote(append(name[:len(name):len(name)], " "+redacted...))
	}
	return protocols.Quote(line)
}

func isLetters(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// upperASCII upper-cases ASCII letters only (strings.ToUpper would rewrite
// invalid UTF-8) and keeps at most max bytes.
func upperASCII(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

// addAnomaly appends a unless an anomaly of the same name is already there:
// a hostile peer can repeat a violation endlessly, the record stays bounded.
func addAnomaly(list []protocols.Anomaly, a protocols.Anomaly) []protocols.Anomaly {
	for _, x := range list {
		if x.Name == a.Name {
			return list
		}
	}
	return append(list, a)
}
