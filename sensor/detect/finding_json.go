package detect

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/internal/jsonenc"
)

// The finding's JSON document written by hand, without reflection: with
// encoding/json a 3-4 KB finding cost ~32 µs and 56 allocations, most of
// the CPU when findings are forwarded to a collector. The bytes are the
// ones json.Marshal(f.ECS()) writes — same field order, same omissions,
// same escaping — which ECS() stays to check (goldens and FuzzFindingJSON):
// collectors parse these documents, a changed byte is a changed interface.

// fenc appends one JSON document to b; like sensor/events' enc, the field
// order is the order of the calls.
type fenc struct {
	b     []byte
	comma [16]bool // per open object/array: a value was written, the next needs a comma
	depth int
	ts    jsonenc.TimeCache // a finding's times mostly share a second or two
}

func (e *fenc) sep() {
	if e.depth > 0 {
		if e.comma[e.depth-1] {
			e.b = append(e.b, ',')
		}
		e.comma[e.depth-1] = true
	}
}

// key writes a field name; names are constants that need no escaping.
func (e *fenc) key(k string) {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *fenc) push(c byte) {
	e.b = append(e.b, c)
	e.comma[e.depth] = false
	e.depth++
}

func (e *fenc) pop(c byte) {
	e.b = append(e.b, c)
	e.depth--
}

func (e *fenc) open(k string) {
	if k == "" {
		e.sep()
	} else {
		e.key(k)
	}
	e.push('{')
}

func (e *fenc) close() { e.pop('}') }

func (e *fenc) openArr(k string) {
	e.key(k)
	e.push('[')
}

func (e *fenc) closeArr() { e.pop(']') }

func (e *fenc) str(k, v string) {
	e.key(k)
	e.b = appendJSONString(e.b, v)
}

// strNE is a string field tagged omitempty.
func (e *fenc) strNE(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

func (e *fenc) elemStr(v string) {
	e.sep()
	e.b = appendJSONString(e.b, v)
}

func (e *fenc) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *fenc) uint(k string, v uint64) {
	e.key(k)
	e.b = strconv.AppendUint(e.b, v, 10)
}

func (e *fenc) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

// time writes t in UTC as time.Time.MarshalJSON does (RFC 3339 with the
// nanoseconds' trailing zeros trimmed). A year outside 0-9999, which
// MarshalJSON refuses, is written as AppendFormat gives it: the finding is
// kept, still valid JSON.
func (e *fenc) time(k string, t time.Time) {
	e.key(k)
	e.b = append(e.b, '"')
	e.b = e.ts.AppendRFC3339Nano(e.b, t)
	e.b = append(e.b, '"')
}

func (e *fenc) hex(k string, v []byte) {
	e.key(k)
	e.b = jsonenc.AppendHex(e.b, v)
}

// addr writes an address as netip.Addr.String does ("invalid IP" for the
// zero address).
func (e *fenc) addr(k string, a addrLike) {
	e.key(k)
	if a.IsValid() && a.Zone() == "" {
		e.b = append(e.b, '"')
		e.b = a.AppendTo(e.b)
		e.b = append(e.b, '"')
		return
	}
	e.b = appendJSONString(e.b, a.String())
}

type addrLike interface {
	IsValid() bool
	Zone() string
	AppendTo([]byte) []byte
	String() string
}

// appendJSONString appends s quoted as encoding/json does by default
// (jsonenc's html dialect).
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	return jsonenc.AppendString(b, s, true)
}

// ruleThreatJSON is the constant "threat" object, encoded once.
var ruleThreatJSON = func() string {
	var e fenc
	e.push('{')
	e.open("threat")
	e.str("framework", "MITRE ATT&CK")
	e.open("tactic")
	strs(&e, "id", "TA0010")
	strs(&e, "name", "Exfiltration")
	strs(&e, "reference", "https://attack.mitre.org/tactics/TA0010/")
	e.close()
	e.open("technique")
	strs(&e, "id", "T1048")
	strs(&e, "name", "Exfiltration Over Alternative Protocol")
	strs(&e, "reference", "https://attack.mitre.org/techniques/T1048/")
	e.open("subtechnique")
	strs(&e, "id", "T1048.003")
	strs(&e, "name", "Exfiltration Over Unencrypted Non-C2 Protocol")
	strs(&e, "reference", "https://attack.mitre.org/techniques/T1048/003/")
	e.close()
	e.close()
	e.close()
	return string(e.b[1:]) // without the '{' that gave it a comma context
}()

func strs(e *fenc, k string, v ...string) {
	e.openArr(k)
	for _, s := range v {
		e.elemStr(s)
	}
	e.closeArr()
}

const ruleDescription = "A process that is not a browser (or its close lineage) read sensitive user files, then uploaded data over HTTP or FTP (MITRE ATT&CK detection strategy DET0149)."

// AppendJSON appends the finding's JSON document (ECS alert shape,
// docs/findings.md) to dst: the bytes of json.Marshal(f.ECS()).
func (f *Finding) AppendJSON(dst []byte) []byte {
	e := fenc{b: dst}
	u := &f.Upload
	e.push('{')
	e.time("@timestamp", u.End)

	e.open("event")
	e.str("kind", "alert")
	strs(&e, "category", "network", "file")
	strs(&e, "type", "connection", "access")
	e.str("dataset", "exfilwatch.finding")
	e.str("id", f.ID)
	e.time("created", f.Created)
	e.time("start", u.Start)
	e.time("end", u.End)
	e.int("severity", int64(SeverityNumber(f.Severity)))
	e.close()

	e.open("rule")
	e.str("id", f.RuleID)
	if f.RuleID == RuleMacOS {
		e.str("name", ruleNameMac)
	} else {
		e.str("name", ruleNameLinux)
	}
	e.str("ruleset", Ruleset)
	e.str("category", "Exfiltration")
	e.str("reference", "https://attack.mitre.org/techniques/T1048/003/")
	e.str("description", ruleDescription)
	e.close()
	e.sep()
	e.b = append(e.b, ruleThreatJSON...)

	if p := f.Process; p != nil {
		e.open("process")
		procFields(&e, p)
		if p.UID != 0 || p.User != "" {
			e.open("user")
			e.key("id")
			e.b = append(e.b, '"')
			e.b = strconv.AppendUint(e.b, uint64(p.UID), 10)
			e.b = append(e.b, '"')
			e.strNE("name", p.User)
			e.close()
		}
		if f.Parent != nil {
			e.open("parent")
			procFields(&e, f.Parent)
			e.close()
		} else if p.PPID > 0 {
			e.open("parent")
			e.int("pid", int64(p.PPID))
			e.close()
		}
		if c := f.Code; c != nil {
			e.open("code_signature")
			e.bool("exists", true)
			e.bool("valid", c.Valid)
			e.strNE("signing_id", c.SigningID)
			e.strNE("team_id", c.TeamID)
			e.bool("trusted", c.Valid && !c.AdHoc && (c.TeamID != "" || c.Platform))
			if c.AdHoc {
				e.bool("adhoc", true)
			}
			if c.Platform {
				e.bool("platform_binary", true)
			}
			e.close()
		}
		e.close()
	}

	e.openArr("file")
	for i := range f.Files {
		fl := &f.Files[i]
		e.open("")
		e.str("path", fl.Path)
		e.str("name", path.Base(fl.Path))
		e.str("directory", path.Dir(fl.Path))
		if fl.Size > 0 || fl.Hashed {
			e.int("size", fl.Size)
		}
		if fl.Hashed {
			e.open("hash")
			e.hex("sha256", fl.SHA256[:])
			e.close()
		}
		e.time("accessed", fl.Time)
		e.open("exfilwatch")
		e.str("class", fl.Class)
		e.str("access", fl.Access)
		e.str("relation", fl.Relation)
		e.int("pid", int64(fl.PID))
		e.strNE("process_name", fl.ProcessName)
		e.strNE("executable", fl.Executable)
		if fl.ContentMatch {
			e.bool("content_match", true)
		}
		e.strNE("source", fl.Source)
		e.close()
		e.close()
	}
	e.closeArr()

	e.open("source")
	e.addr("ip", u.Conn.Client.Addr())
	e.uint("port", uint64(u.Conn.Client.Port()))
	e.close()
	e.open("destination")
	e.addr("ip", u.Conn.Server.Addr())
	e.uint("port", uint64(u.Conn.Server.Port()))
	e.strNE("domain", f.DestinationName)
	e.close()

	switch u.Protocol {
	case "http":
		urlFields(&e, u)
		e.open("http")
		e.open("request")
		e.str("method", u.Method)
		e.strNE("mime_type", mime(u.ContentType))
		e.open("body")
		e.int("bytes", u.Bytes)
		var body *contentHash
		for i := range u.Hashes {
			if u.Hashes[i].Where == "http.request.body" {
				body = &u.Hashes[i]
			}
		}
		if body != nil {
			e.hex("sha256", body.SHA256[:])
		}
		e.close()
		e.close()
		e.close()
		if u.UserAgent != "" {
			e.open("user_agent")
			e.str("original", u.UserAgent)
			e.close()
		}
	case "ftp":
		e.open("ftp")
		e.str("command", u.FTPCommand)
		e.strNE("filename", u.FTPFile)
		e.strNE("stored_as", u.FTPStoredAs)
		if n := len(u.Hashes); n > 0 {
			e.hex("sha256", u.Hashes[n-1].SHA256[:])
		}
		e.close()
	}

	e.open("network")
	if u.Conn.Transport == "" {
		e.str("transport", "tcp")
	} else {
		e.str("transport", u.Conn.Transport)
	}
	e.str("protocol", u.Protocol)
	e.strNE("direction", u.Conn.Direction)
	e.int("bytes", u.Bytes)
	if u.Conn.IPv6 {
		e.str("type", "ipv6")
	} else {
		e.str("type", "ipv4")
	}
	e.close()

	e.open("exfilwatch")
	e.str("severity", f.Severity)
	e.int("score", int64(f.Score))
	if f.Reasons == nil {
		e.key("reasons")
		e.b = append(e.b, "null"...)
	} else {
		e.openArr("reasons")
		for i := range f.Reasons {
			r := &f.Reasons[i]
			e.open("")
			e.str("code", r.Code)
			e.str("description", r.Description)
			e.int("weight", int64(r.Weight))
			e.close()
		}
		e.closeArr()
	}
	lineage := false
	for _, l := range f.Lineage {
		if l == nil {
			continue
		}
		if !lineage {
			e.openArr("lineage")
			lineage = true
		}
		e.open("")
		procFields(&e, l)
		e.close()
	}
	if lineage {
		e.closeArr()
	}
	if s := f.Script; s != nil {
		e.open("script")
		e.str("interpreter", s.Interpreter)
		e.strNE("path", s.Path)
		e.strNE("inline", s.Inline)
		e.strNE("module", s.Module)
		e.close()
	}
	e.open("attribution")
	e.str("method", f.Attribution)
	e.close()
	e.open("upload")
	e.str("protocol", u.Protocol)
	e.int("bytes", u.Bytes)
	e.int("bytes_read", f.BytesRead)
	e.time("start", u.Start)
	e.time("end", u.End)
	if len(u.Hashes) > 0 {
		e.openArr("hashes")
		for i := range u.Hashes {
			e.open("")
			e.str("where", u.Hashes[i].Where)
			e.hex("sha256", u.Hashes[i].SHA256[:])
			e.close()
		}
		e.closeArr()
	}
	if len(f.DestinationHosts) > 0 {
		strs(&e, "destination_names", f.DestinationHosts...)
	}
	e.close()
	if cm := f.ContentMatch; cm != nil {
		e.open("content_match")
		e.str("where", cm.Where)
		e.str("path", cm.Path)
		e.hex("sha256", cm.SHA256[:])
		e.close()
	}
	e.open("flow")
	e.key("ids")
	if u.FlowIDs == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i, id := range u.FlowIDs {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = strconv.AppendUint(e.b, id, 10)
		}
		e.b = append(e.b, ']')
	}
	e.close()
	if f.Source != "" {
		e.open("pcap")
		e.str("file", f.Source)
		e.close()
	}
	e.str("platform", f.GOOS)
	e.close()

	e.close()
	return e.b
}

// procFields writes what procECS fills in of a process.
func procFields(e *fenc, p *attribution.Process) {
	e.int("pid", int64(p.PID))
	e.strNE("name", p.Name)
	e.strNE("executable", p.Executable)
	if len(p.Args) > 0 {
		strs(e, "args", p.Args...)
		e.int("args_count", int64(len(p.Args)))
		// The command line is the arguments joined by spaces, escaped
		// piece by piece: a space ends any UTF-8 sequence, so the bytes
		// are those of escaping the joined string. Empty, it is omitted.
		if len(p.Args) > 1 || p.Args[0] != "" {
			e.key("command_line")
			e.b = append(e.b, '"')
			for i, a := range p.Args {
				if i > 0 {
					e.b = append(e.b, ' ')
				}
				e.b = jsonenc.AppendChars(e.b, a, true)
			}
			e.b = append(e.b, '"')
		}
	}
	e.strNE("working_directory", p.CWD)
	if !p.StartTime.IsZero() {
		e.time("start", p.StartTime)
	}
	if p.PGID != 0 {
		e.int("pgid", int64(p.PGID))
	}
}

// urlFields writes the "url" object as ECS() builds it.
func urlFields(e *fenc, u *upload) {
	e.open("url")
	e.strNE("original", u.Target)
	host := hostOnly(u.Host)
	if host == "" {
		host = u.Conn.Server.Addr().String()
	}
	pth := u.Target
	e.key("full")
	if strings.HasPrefix(pth, "http://") || strings.HasPrefix(pth, "https://") {
		e.b = appendJSONString(e.b, pth)
		pth = absPath(pth)
	} else {
		// "http://" + host + port + target, assembled after the escaped
		// document in e.b's spare room so it costs no allocation; escaped
		// as one string because invalid UTF-8 could straddle the pieces.
		mark := len(e.b)
		e.b = append(e.b, "http://"...)
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			e.b = append(e.b, '[')
			e.b = append(e.b, host...)
			e.b = append(e.b, ']')
		} else {
			e.b = append(e.b, host...)
		}
		if port := u.Conn.Server.Port(); port != 80 {
			e.b = append(e.b, ':')
			e.b = strconv.AppendUint(e.b, uint64(port), 10)
		}
		e.b = append(e.b, pth...)
		n := len(e.b) - mark
		e.b = appendJSONString(e.b, e.b[mark:mark+n])
		e.b = append(e.b[:mark], e.b[mark+n:]...)
	}
	e.strNE("domain", host)
	if port := u.Conn.Server.Port(); port != 0 {
		e.uint("port", uint64(port))
	}
	if i := strings.IndexAny(pth, "?#"); i >= 0 {
		pth = pth[:i]
	}
	e.strNE("path", pth)
	e.close()
}
