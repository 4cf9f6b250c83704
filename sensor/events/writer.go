package events

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/protocols"
	"exfilwatch/protocols/ftp"
)

// JSONWriter writes events as JSON Lines. It buffers; call Flush at the end.
// The first write error is kept and returned by Flush and Err.
type JSONWriter struct {
	w      *bufio.Writer
	e      enc
	err    error
	Counts Counts
	// Source names the capture file the events come from (exfilwatch.pcap.file).
	Source string
}

// NewJSONWriter returns a writer to w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	return &JSONWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

// Flush writes buffered lines and returns the first error seen.
func (j *JSONWriter) Flush() error {
	if err := j.w.Flush(); err != nil && j.err == nil {
		j.err = err
	}
	return j.err
}

// Err returns the first write error.
func (j *JSONWriter) Err() error { return j.err }

func (j *JSONWriter) emit() {
	j.e.B = append(j.e.B, '\n')
	if j.err == nil {
		if _, err := j.w.Write(j.e.B); err != nil {
			j.err = err
		}
	}
	j.e.Reset()
}

func endpoint(e *enc, k string, c *Conn, client bool, bytes, packets uint64, withCounts bool) {
	ap := c.Server
	if client {
		ap = c.Client
	}
	e.Open(k)
	if ap.IsValid() {
		e.Key("ip")
		e.B = append(e.B, '"')
		e.B = ap.Addr().AppendTo(e.B)
		e.B = append(e.B, '"')
		e.Int("port", int64(ap.Port()))
	}
	if withCounts {
		e.Uint("bytes", bytes)
		e.Uint("packets", packets)
	}
	e.Close()
}

func network(e *enc, c *Conn, protocol string, bytes, packets uint64, withCounts bool) {
	e.Open("network")
	if c.Transport != "" {
		e.Str("transport", c.Transport)
	}
	if c.Client.IsValid() {
		if c.IPv6 {
			e.Str("type", "ipv6")
		} else {
			e.Str("type", "ipv4")
		}
	}
	e.StrNE("protocol", protocol)
	e.StrNE("direction", c.Direction)
	if withCounts {
		e.Uint("bytes", bytes)
		e.Uint("packets", packets)
	}
	e.Close()
}

// process writes the ECS process fields of an attributed connection.
func process(e *enc, r *attribution.Result) {
	if r == nil || r.Process == nil && r.PID == 0 {
		return
	}
	e.Open("process")
	p := r.Process
	if p == nil {
		e.Int("pid", int64(r.PID))
		e.StrNE("name", r.Name)
		e.Close()
		return
	}
	writeProc(e, p)
	if p.SessionLeader > 0 {
		e.Open("session_leader")
		e.Int("pid", int64(p.SessionLeader))
		e.Close()
	}
	if p.UID != 0 || p.User != "" {
		e.Open("user")
		e.Str("id", strconv.FormatUint(uint64(p.UID), 10))
		e.StrNE("name", p.User)
		e.Close()
	}
	if len(r.Lineage) > 0 {
		e.Open("parent")
		writeProc(e, r.Lineage[0])
		e.Close()
	} else if p.PPID > 0 {
		e.Open("parent")
		e.Int("pid", int64(p.PPID))
		e.Close()
	}
	e.Close()
}

func writeProc(e *enc, p *attribution.Process) {
	e.Int("pid", int64(p.PID))
	e.StrNE("name", p.Name)
	e.StrNE("executable", p.Executable)
	if len(p.Args) > 0 {
		e.OpenArr("args")
		for _, a := range p.Args {
			e.ElemStr(a)
		}
		e.CloseArr()
		e.Int("args_count", int64(len(p.Args)))
		e.Str("command_line", strings.Join(p.Args, " "))
	}
	e.StrNE("working_directory", p.CWD)
	if !p.StartTime.IsZero() {
		e.Time("start", p.StartTime)
	}
}

// attributionInfo writes exfilwatch.attribution and the lineage.
func attributionInfo(e *enc, r *attribution.Result) {
	if r == nil {
		return
	}
	e.Open("attribution")
	if r.Method != "" {
		e.Str("status", "attributed")
		e.Str("method", r.Method)
	} else {
		e.Str("status", "unattributed")
		e.StrNE("reason", r.Reason)
		e.StrNE("detail", r.Detail)
	}
	if r.Delay > 0 {
		e.Int("delay_us", r.Delay.Microseconds())
	}
	if r.Attempts > 0 {
		e.Int("attempts", int64(r.Attempts))
	}
	e.Close()
	if len(r.Lineage) > 0 {
		e.OpenArr("lineage")
		for _, p := range r.Lineage {
			e.Open("")
			e.Int("pid", int64(p.PID))
			e.StrNE("name", p.Name)
			e.StrNE("executable", p.Executable)
			if !p.StartTime.IsZero() {
				e.Time("start", p.StartTime)
			}
			e.Close()
		}
		e.CloseArr()
	}
}

func flowRef(e *enc, c *Conn, source string) {
	attributionInfo(e, c.Attribution)
	e.Open("flow")
	e.Uint("id", c.FlowID)
	if c.ClientGuessed {
		e.Bool("source_guessed", true)
	}
	e.StrNE("tunnel", c.Tunnel)
	e.Close()
	if source != "" {
		e.Open("pcap")
		e.Str("file", source)
		e.Close()
	}
}

func anomalies(e *enc, list []protocols.Anomaly) {
	if len(list) == 0 {
		return
	}
	e.OpenArr("anomalies")
	for _, a := range list {
		e.Open("")
		e.Str("name", a.Name)
		if a.Observed != 0 {
			e.Int("observed", a.Observed)
		}
		if a.Limit != 0 {
			e.Int("limit", a.Limit)
		}
		e.StrNE("detail", a.Detail)
		e.Close()
	}
	e.CloseArr()
}

// HTTP writes one http event.
func (j *JSONWriter) HTTP(ev *HTTP) {
	j.Counts.HTTP++
	tx := ev.Tx
	req, resp := &tx.Request, tx.Response
	start, end := req.Start, req.End
	if resp != nil && resp.End.After(end) {
		end = resp.End
	}
	if start.IsZero() && resp != nil {
		start = resp.Start
	}
	e := &j.e
	head(e, "http", start, end)
	endpoint(e, "source", &ev.Conn, true, 0, 0, false)
	endpoint(e, "destination", &ev.Conn, false, 0, 0, false)
	network(e, &ev.Conn, "http", 0, 0, false)
	process(e, ev.Attribution)
	e.Open("http")
	if req.Version != "" {
		e.Str("version", req.Version)
	} else if resp != nil {
		e.StrNE("version", resp.Version)
	}
	e.Open("request")
	e.StrNE("method", req.Method)
	e.Open("body")
	e.Int("bytes", req.BodyBytes)
	if req.BodyHashValid && req.BodyBytes > 0 {
		e.Hex("sha256", req.BodySHA256[:])
	}
	e.Close()
	e.Int("bytes", req.HeaderBytes+req.BodyBytes)
	e.StrNE("mime_type", mimeType(req.ContentType))
	e.Close()
	if resp != nil {
		e.Open("response")
		e.Int("status_code", int64(resp.StatusCode))
		e.Open("body")
		e.Int("bytes", resp.BodyBytes)
		e.Close()
		e.StrNE("mime_type", mimeType(resp.ContentType))
		e.Close()
	}
	e.Close()
	if req.Target != "" || req.Host != "" {
		e.Open("url")
		e.StrNE("original", req.Target)
		dom, port := hostPort(req.Host)
		if dom == "" {
			dom, port = targetHost(req.Target)
		}
		e.StrNE("domain", dom)
		if port > 0 {
			e.Int("port", int64(port))
		}
		path, query := splitTarget(req.Target)
		e.StrNE("path", path)
		e.StrNE("query", query)
		e.Close()
	}
	if req.UserAgent != "" {
		e.Open("user_agent")
		e.Str("original", req.UserAgent)
		e.Close()
	}
	e.Open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.Open("http")
	e.StrNE("host", req.Host)
	if req.ContentLength >= 0 && req.Method != "" {
		e.Int("request_content_length", req.ContentLength)
	}
	e.StrNE("request_content_type", req.ContentType)
	e.StrNE("request_transfer_encoding", req.TransferEncoding)
	e.StrNE("request_content_encoding", req.ContentEncoding)
	if req.Chunked {
		e.Bool("request_chunked", true)
	}
	if req.Expect100 {
		e.Bool("expect_continue", true)
	}
	e.Bool("request_body_complete", req.BodyComplete)
	e.StrNE("connection", req.Connection)
	if resp != nil {
		e.StrNE("response_reason", resp.Reason)
		e.StrNE("response_content_encoding", resp.ContentEncoding)
		e.Bool("response_body_complete", resp.BodyComplete)
		if len(resp.Informational) > 0 {
			e.OpenArr("informational")
			for _, c := range resp.Informational {
				e.ElemInt(int64(c))
			}
			e.CloseArr()
		}
	}
	if tx.Gap {
		e.Bool("gap", true)
	}
	anomalies(e, tx.Anomalies)
	e.Close()
	if len(req.Multipart) > 0 {
		e.OpenArr("multipart")
		for i := range req.Multipart {
			p := &req.Multipart[i]
			e.Open("")
			e.Str("name", p.Name)
			e.StrNE("filename", p.Filename)
			e.StrNE("mime_type", p.ContentType)
			e.Int("bytes", p.Bytes)
			if p.HashValid {
				e.Hex("sha256", p.SHA256[:])
			}
			e.Close()
		}
		e.CloseArr()
	}
	e.Close()
	e.Close()
	j.emit()
}

// head opens an event: @timestamp and the ECS event object.
func head(e *enc, dataset string, start, end time.Time) {
	e.Open("")
	e.Time("@timestamp", start)
	e.Open("event")
	e.Str("kind", "event")
	e.Str("dataset", dataset)
	e.Time("start", start)
	e.Time("end", end)
	e.Int("duration", end.Sub(start).Nanoseconds())
	e.Close()
}

// mimeType drops parameters (charset, boundary) as ECS mime_type wants.
func mimeType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// hostPort splits a Host header. An IPv6 literal keeps its brackets, as ECS
// asks of url.domain.
func hostPort(h string) (string, int) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", 0
	}
	host, port := h, 0
	if hh, ps, err := net.SplitHostPort(h); err == nil {
		host = hh
		for _, c := range ps {
			if c < '0' || c > '9' || port > 65535 {
				port = 0
				break
			}
			port = port*10 + int(c-'0')
		}
	}
	host = strings.Trim(host, "[]")
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return host, port
}

// targetHost takes the host from an absolute-form target (proxies, CONNECT).
func targetHost(t string) (string, int) {
	if i := strings.Index(t, "://"); i >= 0 {
		rest := t[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if k := strings.LastIndexByte(rest, '@'); k >= 0 {
			rest = rest[k+1:]
		}
		return hostPort(rest)
	}
	return "", 0
}

func splitTarget(t string) (path, query string) {
	if i := strings.Index(t, "://"); i >= 0 {
		rest := t[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "/", ""
		}
		t = rest[j:]
	}
	if !strings.HasPrefix(t, "/") {
		return "", "" // authority-form (CONNECT) or asterisk-form
	}
	if i := strings.IndexByte(t, '#'); i >= 0 {
		t = t[:i]
	}
	if i := strings.IndexByte(t, '?'); i >= 0 {
		return t[:i], t[i+1:]
	}
	return t, ""
}

// FTPCommand writes one ftp event.
func (j *JSONWriter) FTPCommand(ev *FTPCommand) {
	j.Counts.FTPCommands++
	c := ev.Cmd
	e := &j.e
	head(e, "ftp", c.Start, c.End)
	endpoint(e, "source", &ev.Conn, true, 0, 0, false)
	endpoint(e, "destination", &ev.Conn, false, 0, 0, false)
	network(e, &ev.Conn, "ftp", 0, 0, false)
	process(e, ev.Attribution)
	e.Open("ftp")
	e.Str("command", c.Name)
	e.StrNE("arg", c.Arg)
	if c.Reply != nil {
		writeReply(e, "reply", c.Reply)
	}
	if len(c.Interim) > 0 {
		e.OpenArr("interim")
		for i := range c.Interim {
			e.Open("")
			e.Int("code", int64(c.Interim[i].Code))
			e.StrNE("message", c.Interim[i].Message)
			e.Close()
		}
		e.CloseArr()
	}
	e.Close()
	e.Open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	if len(c.Anomalies) > 0 {
		e.Open("ftp")
		anomalies(e, c.Anomalies)
		e.Close()
	}
	e.Close()
	e.Close()
	j.emit()
}

func writeReply(e *enc, k string, r *ftp.Reply) {
	e.Open(k)
	e.Int("code", int64(r.Code))
	e.StrNE("message", r.Message)
	e.Close()
}

// FTPData writes one ftp_data event.
func (j *JSONWriter) FTPData(ev *FTPData) {
	j.Counts.FTPData++
	t := ev.T
	e := &j.e
	head(e, "ftp_data", t.Start, t.End)
	endpoint(e, "source", &ev.Conn, true, 0, 0, false)
	endpoint(e, "destination", &ev.Conn, false, 0, 0, false)
	n := t.BytesToClient
	dir := "download"
	if t.Upload {
		n = t.BytesToServer
		dir = "upload"
	}
	e.Open("network")
	if ev.Transport != "" {
		e.Str("transport", ev.Transport)
		if ev.IPv6 {
			e.Str("type", "ipv6")
		} else {
			e.Str("type", "ipv4")
		}
	}
	e.Str("protocol", "ftp-data")
	e.StrNE("direction", ev.Direction)
	e.Int("bytes", n)
	e.Close()
	process(e, ev.Attribution)
	e.Open("ftp")
	e.StrNE("command", t.Command)
	e.StrNE("filename", t.Filename)
	if t.Mode == ftp.Active {
		e.Str("mode", "active")
	} else {
		e.Str("mode", "passive")
	}
	e.Str("direction", dir)
	if t.Reply != nil {
		writeReply(e, "reply", t.Reply)
	}
	e.Close()
	if hashed := t.BytesToClient; t.HashValid {
		if t.HashToServer {
			hashed = t.BytesToServer
		}
		if hashed > 0 {
			e.Open("file")
			e.Open("hash")
			e.Hex("sha256", t.SHA256[:])
			e.Close()
			e.Close()
		}
	}
	e.Open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.Open("ftp_data")
	e.StrNE("stored_as", t.StoredAs)
	e.Int("bytes_to_server", t.BytesToServer)
	e.Int("bytes_to_client", t.BytesToClient)
	if t.Gap {
		e.Bool("gap", true)
	}
	if ev.Conn.FlowID == 0 {
		e.Bool("data_connection_seen", false)
	}
	e.Open("control")
	e.Uint("flow_id", ev.Control.FlowID)
	endpoint(e, "source", &ev.Control, true, 0, 0, false)
	endpoint(e, "destination", &ev.Control, false, 0, 0, false)
	e.Close()
	e.Close()
	e.Close()
	e.Close()
	j.emit()
}

// Flow writes one flow summary event.
func (j *JSONWriter) Flow(ev *Flow) {
	j.Counts.Flows++
	e := &j.e
	head(e, "flow", ev.Start, ev.End)
	endpoint(e, "source", &ev.Conn, true, ev.Bytes[0], ev.Packets[0], true)
	endpoint(e, "destination", &ev.Conn, false, ev.Bytes[1], ev.Packets[1], true)
	network(e, &ev.Conn, ev.Protocol, ev.Bytes[0]+ev.Bytes[1], ev.Packets[0]+ev.Packets[1], true)
	process(e, ev.Attribution)
	e.Open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.Open("flow_summary")
	e.Open("payload_bytes")
	e.Uint("to_server", ev.Payload[0])
	e.Uint("to_client", ev.Payload[1])
	e.Close()
	if ev.Gaps > 0 {
		e.Uint("gaps", ev.Gaps)
		e.Open("gap_bytes")
		e.Uint("to_server", ev.GapBytes[0])
		e.Uint("to_client", ev.GapBytes[1])
		e.Close()
	}
	if ev.Retransmits > 0 {
		e.Uint("retransmits", ev.Retransmits)
	}
	if ev.OutOfOrder > 0 {
		e.Uint("out_of_order", ev.OutOfOrder)
	}
	if ev.BadChecksum > 0 {
		e.Uint("bad_checksums", ev.BadChecksum)
	}
	if ev.Transport == "tcp" {
		e.Bool("handshake_seen", ev.SawSYN)
		e.StrNE("close_reason", ev.CloseReason)
	}
	if ev.Encrypted {
		e.Bool("encrypted", true)
	}
	e.Close()
	e.Close()
	e.Close()
	j.emit()
}
