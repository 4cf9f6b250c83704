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
	j.e.b = append(j.e.b, '\n')
	if j.err == nil {
		if _, err := j.w.Write(j.e.b); err != nil {
			j.err = err
		}
	}
	j.e.b = j.e.b[:0]
	j.e.comma = j.e.comma[:0]
}

func endpoint(e *enc, k string, c *Conn, client bool, bytes, packets uint64, withCounts bool) {
	ap := c.Server
	if client {
		ap = c.Client
	}
	e.open(k)
	if ap.IsValid() {
		e.key("ip")
		e.b = append(e.b, '"')
		e.b = ap.Addr().AppendTo(e.b)
		e.b = append(e.b, '"')
		e.int("port", int64(ap.Port()))
	}
	if withCounts {
		e.uint("bytes", bytes)
		e.uint("packets", packets)
	}
	e.close()
}

func network(e *enc, c *Conn, protocol string, bytes, packets uint64, withCounts bool) {
	e.open("network")
	if c.Transport != "" {
		e.str("transport", c.Transport)
	}
	if c.Client.IsValid() {
		if c.IPv6 {
			e.str("type", "ipv6")
		} else {
			e.str("type", "ipv4")
		}
	}
	e.strNE("protocol", protocol)
	e.strNE("direction", c.Direction)
	if withCounts {
		e.uint("bytes", bytes)
		e.uint("packets", packets)
	}
	e.close()
}

// process writes the ECS process fields of an attributed connection.
func process(e *enc, r *attribution.Result) {
	if r == nil || r.Process == nil && r.PID == 0 {
		return
	}
	e.open("process")
	p := r.Process
	if p == nil {
		e.int("pid", int64(r.PID))
		e.strNE("name", r.Name)
		e.close()
		return
	}
	writeProc(e, p)
	if p.SessionLeader > 0 {
		e.open("session_leader")
		e.int("pid", int64(p.SessionLeader))
		e.close()
	}
	if p.UID != 0 || p.User != "" {
		e.open("user")
		e.str("id", strconv.FormatUint(uint64(p.UID), 10))
		e.strNE("name", p.User)
		e.close()
	}
	if len(r.Lineage) > 0 {
		e.open("parent")
		writeProc(e, r.Lineage[0])
		e.close()
	} else if p.PPID > 0 {
		e.open("parent")
		e.int("pid", int64(p.PPID))
		e.close()
	}
	e.close()
}

func writeProc(e *enc, p *attribution.Process) {
	e.int("pid", int64(p.PID))
	e.strNE("name", p.Name)
	e.strNE("executable", p.Executable)
	if len(p.Args) > 0 {
		e.openArr("args")
		for _, a := range p.Args {
			e.elemStr(a)
		}
		e.closeArr()
		e.int("args_count", int64(len(p.Args)))
		e.str("command_line", strings.Join(p.Args, " "))
	}
	e.strNE("working_directory", p.CWD)
	if !p.StartTime.IsZero() {
		e.time("start", p.StartTime)
	}
}

// attributionInfo writes exfilwatch.attribution and the lineage.
func attributionInfo(e *enc, r *attribution.Result) {
	if r == nil {
		return
	}
	e.open("attribution")
	if r.Method != "" {
		e.str("status", "attributed")
		e.str("method", r.Method)
	} else {
		e.str("status", "unattributed")
		e.strNE("reason", r.Reason)
		e.strNE("detail", r.Detail)
	}
	if r.Delay > 0 {
		e.int("delay_us", r.Delay.Microseconds())
	}
	if r.Attempts > 0 {
		e.int("attempts", int64(r.Attempts))
	}
	e.close()
	if len(r.Lineage) > 0 {
		e.openArr("lineage")
		for _, p := range r.Lineage {
			e.open("")
			e.int("pid", int64(p.PID))
			e.strNE("name", p.Name)
			e.strNE("executable", p.Executable)
			if !p.StartTime.IsZero() {
				e.time("start", p.StartTime)
			}
			e.close()
		}
		e.closeArr()
	}
}

func flowRef(e *enc, c *Conn, source string) {
	attributionInfo(e, c.Attribution)
	e.open("flow")
	e.uint("id", c.FlowID)
	if c.ClientGuessed {
		e.bool("source_guessed", true)
	}
	e.strNE("tunnel", c.Tunnel)
	e.close()
	if source != "" {
		e.open("pcap")
		e.str("file", source)
		e.close()
	}
}

func anomalies(e *enc, list []protocols.Anomaly) {
	if len(list) == 0 {
		return
	}
	e.openArr("anomalies")
	for _, a := range list {
		e.open("")
		e.str("name", a.Name)
		if a.Observed != 0 {
			e.int("observed", a.Observed)
		}
		if a.Limit != 0 {
			e.int("limit", a.Limit)
		}
		e.strNE("detail", a.Detail)
		e.close()
	}
	e.closeArr()
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
	e.open("http")
	if req.Version != "" {
		e.str("version", req.Version)
	} else if resp != nil {
		e.strNE("version", resp.Version)
	}
	e.open("request")
	e.strNE("method", req.Method)
	e.open("body")
	e.int("bytes", req.BodyBytes)
	if req.BodyHashValid && req.BodyBytes > 0 {
		e.hex("sha256", req.BodySHA256[:])
	}
	e.close()
	e.int("bytes", req.HeaderBytes+req.BodyBytes)
	e.strNE("mime_type", mimeType(req.ContentType))
	e.close()
	if resp != nil {
		e.open("response")
		e.int("status_code", int64(resp.StatusCode))
		e.open("body")
		e.int("bytes", resp.BodyBytes)
		e.close()
		e.strNE("mime_type", mimeType(resp.ContentType))
		e.close()
	}
	e.close()
	if req.Target != "" || req.Host != "" {
		e.open("url")
		e.strNE("original", req.Target)
		dom, port := hostPort(req.Host)
		if dom == "" {
			dom, port = targetHost(req.Target)
		}
		e.strNE("domain", dom)
		if port > 0 {
			e.int("port", int64(port))
		}
		path, query := splitTarget(req.Target)
		e.strNE("path", path)
		e.strNE("query", query)
		e.close()
	}
	if req.UserAgent != "" {
		e.open("user_agent")
		e.str("original", req.UserAgent)
		e.close()
	}
	e.open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.open("http")
	e.strNE("host", req.Host)
	if req.ContentLength >= 0 && req.Method != "" {
		e.int("request_content_length", req.ContentLength)
	}
	e.strNE("request_content_type", req.ContentType)
	e.strNE("request_transfer_encoding", req.TransferEncoding)
	e.strNE("request_content_encoding", req.ContentEncoding)
	if req.Chunked {
		e.bool("request_chunked", true)
	}
	if req.Expect100 {
		e.bool("expect_continue", true)
	}
	e.bool("request_body_complete", req.BodyComplete)
	e.strNE("connection", req.Connection)
	if resp != nil {
		e.strNE("response_reason", resp.Reason)
		e.strNE("response_content_encoding", resp.ContentEncoding)
		e.bool("response_body_complete", resp.BodyComplete)
		if len(resp.Informational) > 0 {
			e.openArr("informational")
			for _, c := range resp.Informational {
				e.elemInt(int64(c))
			}
			e.closeArr()
		}
	}
	if tx.Gap {
		e.bool("gap", true)
	}
	anomalies(e, tx.Anomalies)
	e.close()
	if len(req.Multipart) > 0 {
		e.openArr("multipart")
		for i := range req.Multipart {
			p := &req.Multipart[i]
			e.open("")
			e.str("name", p.Name)
			e.strNE("filename", p.Filename)
			e.strNE("mime_type", p.ContentType)
			e.int("bytes", p.Bytes)
			if p.HashValid {
				e.hex("sha256", p.SHA256[:])
			}
			e.close()
		}
		e.closeArr()
	}
	e.close()
	e.close()
	j.emit()
}

// head opens an event: @timestamp and the ECS event object.
func head(e *enc, dataset string, start, end time.Time) {
	e.open("")
	e.time("@timestamp", start)
	e.open("event")
	e.str("kind", "event")
	e.str("dataset", dataset)
	e.time("start", start)
	e.time("end", end)
	e.int("duration", end.Sub(start).Nanoseconds())
	e.close()
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
	e.open("ftp")
	e.str("command", c.Name)
	e.strNE("arg", c.Arg)
	if c.Reply != nil {
		writeReply(e, "reply", c.Reply)
	}
	if len(c.Interim) > 0 {
		e.openArr("interim")
		for i := range c.Interim {
			e.open("")
			e.int("code", int64(c.Interim[i].Code))
			e.strNE("message", c.Interim[i].Message)
			e.close()
		}
		e.closeArr()
	}
	e.close()
	e.open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	if len(c.Anomalies) > 0 {
		e.open("ftp")
		anomalies(e, c.Anomalies)
		e.close()
	}
	e.close()
	e.close()
	j.emit()
}

func writeReply(e *enc, k string, r *ftp.Reply) {
	e.open(k)
	e.int("code", int64(r.Code))
	e.strNE("message", r.Message)
	e.close()
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
	e.open("network")
	if ev.Transport != "" {
		e.str("transport", ev.Transport)
		if ev.IPv6 {
			e.str("type", "ipv6")
		} else {
			e.str("type", "ipv4")
		}
	}
	e.str("protocol", "ftp-data")
	e.strNE("direction", ev.Direction)
	e.int("bytes", n)
	e.close()
	process(e, ev.Attribution)
	e.open("ftp")
	e.strNE("command", t.Command)
	e.strNE("filename", t.Filename)
	if t.Mode == ftp.Active {
		e.str("mode", "active")
	} else {
		e.str("mode", "passive")
	}
	e.str("direction", dir)
	if t.Reply != nil {
		writeReply(e, "reply", t.Reply)
	}
	e.close()
	if hashed := t.BytesToClient; t.HashValid {
		if t.HashToServer {
			hashed = t.BytesToServer
		}
		if hashed > 0 {
			e.open("file")
			e.open("hash")
			e.hex("sha256", t.SHA256[:])
			e.close()
			e.close()
		}
	}
	e.open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.open("ftp_data")
	e.strNE("stored_as", t.StoredAs)
	e.int("bytes_to_server", t.BytesToServer)
	e.int("bytes_to_client", t.BytesToClient)
	if t.Gap {
		e.bool("gap", true)
	}
	if ev.Conn.FlowID == 0 {
		e.bool("data_connection_seen", false)
	}
	e.open("control")
	e.uint("flow_id", ev.Control.FlowID)
	endpoint(e, "source", &ev.Control, true, 0, 0, false)
	endpoint(e, "destination", &ev.Control, false, 0, 0, false)
	e.close()
	e.close()
	e.close()
	e.close()
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
	e.open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	e.open("flow_summary")
	e.open("payload_bytes")
	e.uint("to_server", ev.Payload[0])
	e.uint("to_client", ev.Payload[1])
	e.close()
	if ev.Gaps > 0 {
		e.uint("gaps", ev.Gaps)
		e.open("gap_bytes")
		e.uint("to_server", ev.GapBytes[0])
		e.uint("to_client", ev.GapBytes[1])
		e.close()
	}
	if ev.Retransmits > 0 {
		e.uint("retransmits", ev.Retransmits)
	}
	if ev.OutOfOrder > 0 {
		e.uint("out_of_order", ev.OutOfOrder)
	}
	if ev.BadChecksum > 0 {
		e.uint("bad_checksums", ev.BadChecksum)
	}
	if ev.Transport == "tcp" {
		e.bool("handshake_seen", ev.SawSYN)
		e.strNE("close_reason", ev.CloseReason)
	}
	if ev.Encrypted {
		e.bool("encrypted", true)
	}
	e.close()
	e.close()
	e.close()
	j.emit()
}
