package events

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// TextWriter writes one compact human-readable line per event, for people
// reading a terminal; JSONWriter is the format for machines.
type TextWriter struct {
	w      *bufio.Writer
	err    error
	Counts Counts
}

// NewTextWriter returns a writer to w. Call Flush at the end.
func NewTextWriter(w io.Writer) *TextWriter {
	return &TextWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

// Flush writes buffered lines and returns the first error seen.
func (t *TextWriter) Flush() error {
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
	return t.err
}

func (t *TextWriter) line(ts time.Time, kind string, c *Conn, rest string) {
	if t.err != nil {
		return
	}
	_, err := fmt.Fprintf(t.w, "%s %-8s %s  %s\n", ts.UTC().Format("2006-01-02T15:04:05.000Z"), kind, endpoints(c), rest)
	if err != nil {
		t.err = err
	}
}

func endpoints(c *Conn) string {
	if !c.Client.IsValid() {
		return "(data connection not captured)"
	}
	return addrPort(c.Client) + " -> " + addrPort(c.Server)
}

func addrPort(ap netip.AddrPort) string { return ap.String() }

// HTTP writes one line per transaction.
func (t *TextWriter) HTTP(ev *HTTP) {
	t.Counts.HTTP++
	req, resp := &ev.Tx.Request, ev.Tx.Response
	s := req.Method + " "
	if req.Host != "" && len(req.Target) > 0 && req.Target[0] == '/' {
		s += req.Host
	}
	s += req.Target
	if resp != nil {
		s += " -> " + strconv.Itoa(resp.StatusCode)
	} else {
		s += " -> (no response)"
	}
	s += fmt.Sprintf("  sent %d B", req.BodyBytes)
	if req.BodyHashValid && req.BodyBytes > 0 {
		s += fmt.Sprintf(" sha256 %x…", req.BodySHA256[:6])
	}
	for _, p := range req.Multipart {
		if p.Filename != "" {
			s += fmt.Sprintf("  file %q %d B", p.Filename, p.Bytes)
		}
	}
	if resp != nil {
		s += fmt.Sprintf("  received %d B", resp.BodyBytes)
	}
	if req.UserAgent != "" {
		s += fmt.Sprintf("  ua %q", req.UserAgent)
	}
	if len(ev.Tx.Anomalies) > 0 {
		s += fmt.Sprintf("  anomalies %d (%s)", len(ev.Tx.Anomalies), ev.Tx.Anomalies[0].Name)
	}
	start := req.Start
	if start.IsZero() && resp != nil {
		start = resp.Start
	}
	t.line(start, "http", &ev.Conn, s)
}

// FTPCommand writes one line per command.
func (t *TextWriter) FTPCommand(ev *FTPCommand) {
	t.Counts.FTPCommands++
	c := ev.Cmd
	s := c.Name
	if c.Arg != "" {
		s += " " + c.Arg
	}
	if c.Reply != nil {
		s += " -> " + strconv.Itoa(c.Reply.Code)
	}
	t.line(c.Start, "ftp", &ev.Conn, s)
}

// FTPData writes one line per transfer.
func (t *TextWriter) FTPData(ev *FTPData) {
	t.Counts.FTPData++
	x := ev.T
	dir, n := "download", x.BytesToClient
	if x.Upload {
		dir, n = "upload", x.BytesToServer
	}
	s := fmt.Sprintf("%s %s  %s %s %d B", x.Command, x.Filename, x.Mode, dir, n)
	if x.HashValid && x.HashToServer == x.Upload && n > 0 {
		s += fmt.Sprintf(" sha256 %x…", x.SHA256[:6])
	}
	if x.Reply != nil {
		s += " -> " + strconv.Itoa(x.Reply.Code)
	}
	t.line(x.Start, "ftp_data", &ev.Conn, s)
}

// Flow writes one line per connection summary.
func (t *TextWriter) Flow(ev *Flow) {
	t.Counts.Flows++
	proto := ev.Protocol
	if proto == "" {
		proto = ev.Transport
	}
	s := fmt.Sprintf("%s  %d/%d B  %d/%d packets  %s", proto, ev.Bytes[0], ev.Bytes[1], ev.Packets[0], ev.Packets[1], ev.End.Sub(ev.Start).Round(time.Millisecond))
	if ev.CloseReason != "" {
		s += "  " + ev.CloseReason
	}
	if ev.Gaps > 0 {
		s += fmt.Sprintf("  %d gaps", ev.Gaps)
	}
	t.line(ev.Start, "flow", &ev.Conn, s)
}
