// Package syslog sends findings to a syslog receiver (a SIEM's collector,
// rsyslog, syslog-ng): RFC 5424 or RFC 3164 messages over UDP (RFC 5426),
// TCP (RFC 6587 octet counting), TLS (RFC 5425) or a local Unix socket.
// docs/syslog.md documents the message layout, the defaults and what is
// truncated when a message is too long for its transport.
package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"exfilwatch/sensor/detect"
)

// Format is the syslog message format.
type Format int

const (
	// RFC5424 is the default: structured data and an RFC 3339 timestamp.
	RFC5424 Format = iota
	// RFC3164 is the BSD format that older receivers expect.
	RFC3164
)

func (f Format) String() string {
	switch f {
	case RFC5424:
		return "rfc5424"
	case RFC3164:
		return "rfc3164"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat reads "rfc5424" (or "5424") and "rfc3164" (or "3164", "bsd").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "rfc5424", "5424":
		return RFC5424, nil
	case "rfc3164", "3164", "bsd":
		return RFC3164, nil
	}
	return 0, fmt.Errorf("syslog format %q: want rfc5424 or rfc3164", s)
}

const (
	// AppName is the APP-NAME (RFC 5424) and TAG (RFC 3164).
	AppName = "exfilwatch"
	// SDID is the SD-ID of the finding's structured data element. 32473 is
	// the private enterprise number RFC 5612 reserves for documentation:
	// exfilwatch has no number of its own.
	SDID = "exfilwatch@32473"
	// DefaultFacility is authpriv (10): findings name users' files and
	// command lines, and receivers conventionally keep authpriv in a file
	// only root and the adm group read.
	DefaultFacility = 10
	// MinMessage is the smallest maximum message size accepted: every
	// receiver must take 480 octets (RFC 5426 §3.2).
	MinMessage = 480
	// maxSDValue caps each SD-PARAM value (octets before escaping), so the
	// header and structured data stay far below any maximum message size.
	maxSDValue = 256
)

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12,
	"audit": 13, "alert": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility reads a facility name (kern … local7, authpriv, security
// as auth like BSD syslog.conf) or its number 0–23. "" is DefaultFacility.
func ParseFacility(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return DefaultFacility, nil
	}
	if n, ok := facilities[s]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 23 {
		return n, nil
	}
	return 0, fmt.Errorf("syslog facility %q: want a name such as authpriv, local0…local7, or 0-23", s)
}

// Severity maps a finding's severity to a syslog severity: critical→2
// (crit), high→3 (err), medium→4 (warning), low→5 (notice); anything else
// is 4 rather than being dropped.
func Severity(findingSeverity string) int {
	switch findingSeverity {
	case "critical":
		return 2
	case "high":
		return 3
	case "medium":
		return 4
	case "low":
		return 5
	}
	return 4
}

// MessageOptions are the parts of a message that do not come from the
// finding. The zero value is usable.
type MessageOptions struct {
	// Facility is 0–23; nil means DefaultFacility (authpriv). A pointer
	// because kern (0) is a valid choice.
	Facility *int
	// Hostname defaults to os.Hostname(); characters outside
	// [A-Za-z0-9._:-] become '-' so the header stays parseable.
	Hostname string
	// PID is PROCID (RFC 5424) and the TAG's [pid] (RFC 3164); 0 means
	// this process.
	PID int
	// MaxSize caps the whole message (octets, framing excluded); 0 means
	// no cap here (the transport applies its own). Past it the MSG is
	// truncated as Truncate documents.
	MaxSize int
	// NoBOM leaves out the UTF-8 BOM that RFC 5424 §6.4 puts before a UTF-8
	// MSG, for receivers that would keep it in the JSON text.
	NoBOM bool
	// Location is the time zone of RFC 3164 timestamps (which carry none);
	// nil means time.Local. RFC 5424 timestamps are always UTC.
	Location *time.Location
	// Now gives the timestamp when the finding has no Created time; nil
	// means time.Now.
	Now func() time.Time
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Formatter turns findings into syslog messages and counts truncations;
// safe for concurrent use.
type Formatter struct {
	Format  Format
	Options MessageOptions

	truncated atomic.Uint64
}

// Message formats one finding and counts it when it had to be truncated.
func (fm *Formatter) Message(f *detect.Finding) ([]byte, error) {
	msg, cut, err := message(f, fm.Format, fm.Options)
	if cut {
		fm.truncated.Add(1)
	}
	return msg, err
}

// Truncated is how many messages were cut to fit Options.MaxSize.
func (fm *Formatter) Truncated() uint64 { return fm.truncated.Load() }

// Message formats one finding as a syslog message (without transport
// framing). A message cut to fit opts.MaxSize carries the SD-PARAM
// truncated; use a Formatter to count them.
func Message(f *detect.Finding, format Format, opts MessageOptions) ([]byte, error) {
	msg, _, err := message(f, format, opts)
	return msg, err
}

var hostname = sync1(func() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
})

func sync1(fn func() string) func() string {
	var v atomic.Pointer[string]
	return func() string {
		if p := v.Load(); p != nil {
			return *p
		}
		s := fn()
		v.Store(&s)
		return s
	}
}

func message(f *detect.Finding, format Format, opts MessageOptions) ([]byte, bool, error) {
	if f == nil {
		return nil, false, errors.New("syslog message: nil finding")
	}
	if format != RFC5424 && format != RFC3164 {
		return nil, false, fmt.Errorf("syslog message: unknown %v", format)
	}
	if opts.MaxSize != 0 && opts.MaxSize < MinMessage {
		return nil, false, fmt.Errorf("syslog message: maximum size %d is below the %d octets every receiver takes", opts.MaxSize, MinMessage)
	}
	fac := DefaultFacility
	if opts.Facility != nil {
		fac = *opts.Facility
		if fac < 0 || fac > 23 {
			return nil, false, fmt.Errorf("syslog message: facility %d out of range 0-23", fac)
		}
	}
	// Encoded once per finding and shared by every destination (read only:
	// it is copied into the message).
	body := f.JSON()
	host := opts.Hostname
	if host == "" {
		host = hostname()
	}
	host = headerField(host, 255)
	pid := opts.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	ts := f.Created
	if ts.IsZero() {
		if opts.Now != nil {
			ts = opts.Now()
		} else {
			ts = time.Now()
		}
	}

	b := make([]byte, 0, 512+len(body))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(fac*8+Severity(f.Severity)), 10)
	b = append(b, '>')
	if format == RFC5424 {
		b = append(b, '1', ' ')
		if y := ts.UTC().Year(); y < 1 || y > 9999 {
			// RFC 3339 has four-digit years: NILVALUE rather than a
			// timestamp receivers would reject.
			b = append(b, '-')
		} else {
			b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
		}
		b = append(b, ' ')
		b = append(b, host...)
		b = append(b, ' ')
		b = append(b, AppName...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, ' ')
		b = append(b, headerField(f.RuleID, 32)...)
		b = append(b, ' ')
	} else {
		loc := opts.Location
		if loc == nil {
			loc = time.Local
		}
		// RFC 3164 §4.1.2: the day is space-padded ("Jan  5").
		b = ts.In(loc).AppendFormat(b, "Jan _2 15:04:05")
		b = append(b, ' ')
		b = append(b, host...)
		b = append(b, ' ')
		b = append(b, AppName...)
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, ']', ':', ' ')
	}
	b = appendSD(b, f)
	b = append(b, ' ')
	if format == RFC5424 && !opts.NoBOM {
		b = append(b, bom...)
	}
	b = append(b, body...)
	if opts.MaxSize > 0 && len(b) > opts.MaxSize {
		out, err := Truncate(b, opts.MaxSize)
		if err != nil {
			return nil, false, fmt.Errorf("syslog message: finding %s: %w", f.ID, err)
		}
		return out, true, nil
	}
	return b, false, nil
}

// headerField makes s a valid header token: PRINTUSASCII without spaces
// (RFC 5424 §6), and without '[' or ']' so Truncate finds the SD element
// unambiguously; "-" when empty (the NILVALUE).
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	if len(s) > max {
		s = s[:max]
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	out := []byte(s)
	for i, c := range out {
		if !tokenByte(c) {
			out[i] = '-'
		}
	}
	return string(out)
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

// appendSD writes the finding's SD element: the fields a SIEM filters on,
// which stay intact when the JSON MSG is truncated.
func appendSD(b []byte, f *detect.Finding) []byte {
	b = append(b, '[')
	b = append(b, SDID...)
	b = appendParam(b, "rule", f.RuleID)
	b = appendParam(b, "severity", f.Severity)
	b = appendParam(b, "id", f.ID)
	if p := f.Process; p != nil {
		b = appendParam(b, "pid", strconv.FormatInt(int64(p.PID), 10))
		if p.Executable != "" {
			b = appendParam(b, "exe", p.Executable)
		}
	}
	if s := f.Upload.Conn.Server; s.IsValid() {
		b = appendParam(b, "dst", s.String())
	}
	b = appendParam(b, "bytes", strconv.FormatInt(f.Upload.Bytes, 10))
	return append(b, ']')
}

// appendParam writes ` name="value"` with the value made valid UTF-8,
// capped at maxSDValue octets on a character boundary, and escaped per
// RFC 5424 §6.3.3 ('"', '\' and ']' get a backslash).
func appendParam(b []byte, name, value string) []byte {
	if !utf8.ValidString(value) {
		value = strings.ToValidUTF8(value, "\uFFFD")
	}
	if len(value) > maxSDValue {
		value = value[:runeCut([]byte(value), maxSDValue)]
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '"', '\\', ']':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// runeCut returns the largest n ≤ max such that b[:n] does not end inside
// a UTF-8 sequence.
func runeCut(b []byte, max int) int {
	if max >= len(b) {
		return len(b)
	}
	n := max
	// Step back over continuation bytes to the start of the cut character
	// (at most 3: a UTF-8 sequence is at most 4 bytes).
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(b[n]); i++ {
		n--
	}
	return n
}

// Truncate cuts a message made by this package to at most max octets: the
// header and the SD element stay intact, the MSG (the finding's JSON) is
// cut on a UTF-8 character boundary, and the SD element gains
// truncated="N", N being the MSG's original length in octets (BOM
// excluded). A message already marked keeps its first mark. A message
// without our SD element is cut on a character boundary as it is. It
// fails when the header and SD element alone exceed max.
func Truncate(msg []byte, max int) ([]byte, error) {
	if len(msg) <= max {
		return msg, nil
	}
	if max < MinMessage {
		return nil, fmt.Errorf("maximum message size %d is below %d octets", max, MinMessage)
	}
	start := bytes.Index(msg, []byte("["+SDID+" "))
	if start < 0 {
		start = bytes.Index(msg, []byte("["+SDID+"]"))
	}
	if start < 0 {
		return msg[:runeCut(msg, max)], nil
	}
	end := sdEnd(msg, start)
	if end < 0 {
		return msg[:runeCut(msg, max)], nil
	}
	// msg[end] is the SD element's ']'; the MSG follows one space.
	msgStart := end + 1
	if msgStart < len(msg) && msg[msgStart] == ' ' {
		msgStart++
	}
	hasBOM := bytes.HasPrefix(msg[msgStart:], bom)
	body := msg[msgStart:]
	if hasBOM {
		body = body[len(bom):]
	}
	var mark []byte
	if !bytes.Contains(msg[start:end], []byte(` truncated="`)) {
		mark = appendParam(nil, "truncated", strconv.Itoa(len(body)))
	}
	head := len(msg[:end]) + len(mark) + 1 + (msgStart - end - 1)
	if hasBOM {
		head += len(bom)
	}
	if head > max {
		return nil, fmt.Errorf("header and structured data need %d octets, more than the maximum message size %d", head, max)
	}
	out := make([]byte, 0, max)
	out = append(out, msg[:end]...)
	out = append(out, mark...)
	out = append(out, msg[end:msgStart]...)
	if hasBOM {
		out = append(out, bom...)
	}
	out = append(out, body[:runeCut(body, max-len(out))]...)
	return out, nil
}

// sdEnd finds the ']' closing the SD element that starts at msg[start],
// skipping escaped characters inside quoted values; -1 when there is none.
func sdEnd(msg []byte, start int) int {
	inQuote := false
	for i := start + 1; i < len(msg); i++ {
		switch c := msg[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ']':
			return i
		}
	}
	return -1
}
