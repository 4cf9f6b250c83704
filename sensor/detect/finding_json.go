package detect

import (
	"net/netip"
	"path"
	"strconv"
	"strings"

	"exfilwatch/attribution"
	"exfilwatch/internal/jsonenc"
)

// The finding's JSON document written by hand, without reflection: with
// encoding/json a 3-4 KB finding cost ~32 µs and 56 allocations, most of
// the CPU when findings are forwarded to a collector. The bytes are the
// ones json.Marshal(f.ECS()) writes — same field order, same omissions,
// same escaping — which ECS() stays to check (goldens and FuzzFindingJSON):
// collectors parse these documents, a changed byte is a changed interface.

// fenc appends one JSON document in encoding/json's dialect (HTML
// characters escaped, times as time.Time.MarshalJSON writes them).
type fenc struct {
	jsonenc.Encoder
}

func newFenc(dst []byte) fenc {
	return fenc{jsonenc.Encoder{B: dst, HTML: true, TrimmedTime: true}}
}

// addr writes an address as netip.Addr.String does ("invalid IP" for the
// zero address).
func (e *fenc) addr(k string, a addrLike) {
	e.Key(k)
	if a.IsValid() && a.Zone() == "" {
		e.B = append(e.B, '"')
		e.B = a.AppendTo(e.B)
		e.B = append(e.B, '"')
		return
	}
	e.B = appendJSONString(e.B, a.String())
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
	e := newFenc(nil)
	e.Open("")
	e.Open("threat")
	e.Str("framework", "MITRE ATT&CK")
	e.Open("tactic")
	strs(&e, "id", "TA0010")
	strs(&e, "name", "Exfiltration")
	strs(&e, "reference", "https://attack.mitre.org/tactics/TA0010/")
	e.Close()
	e.Open("technique")
	strs(&e, "id", "T1048")
	strs(&e, "name", "Exfiltration Over Alternative Protocol")
	strs(&e, "reference", "https://attack.mitre.org/techniques/T1048/")
	e.Open("subtechnique")
	strs(&e, "id", "T1048.003")
	strs(&e, "name", "Exfiltration Over Unencrypted Non-C2 Protocol")
	strs(&e, "reference", "https://attack.mitre.org/techniques/T1048/003/")
	e.Close()
	e.Close()
	e.Close()
	return string(e.B[1:]) // without the '{' that gave it a comma context
}()

func strs(e *fenc, k string, v ...string) {
	e.OpenArr(k)
	for _, s := range v {
		e.ElemStr(s)
	}
	e.CloseArr()
}

const ruleDescription = "A process that is not a browser (or its close lineage) read sensitive user files, then uploaded data over HTTP or FTP (MITRE ATT&CK detection strategy DET0149)."

// AppendJSON appends the finding's JSON document (ECS alert shape,
// docs/findings.md) to dst: the bytes of json.Marshal(f.ECS()).
func (f *Finding) AppendJSON(dst []byte) []byte {
	e := newFenc(dst)
	u := &f.Upload
	e.Open("")
	e.Time("@timestamp", u.End)

	e.Open("event")
	e.Str("kind", "alert")
	strs(&e, "category", "network", "file")
	strs(&e, "type", "connection", "access")
	e.Str("dataset", "exfilwatch.finding")
	e.Str("id", f.ID)
	e.Time("created", f.Created)
	e.Time("start", u.Start)
	e.Time("end", u.End)
	e.Int("severity", int64(SeverityNumber(f.Severity)))
	e.Close()

	e.Open("rule")
	e.Str("id", f.RuleID)
	if f.RuleID == RuleMacOS {
		e.Str("name", ruleNameMac)
	} else {
		e.Str("name", ruleNameLinux)
	}
	e.Str("ruleset", Ruleset)
	e.Str("category", "Exfiltration")
	e.Str("reference", "https://attack.mitre.org/techniques/T1048/003/")
	e.Str("description", ruleDescription)
	e.Close()
	e.Sep()
	e.B = append(e.B, ruleThreatJSON...)

	if p := f.Process; p != nil {
		e.Open("process")
		procFields(&e, p)
		if p.UID != 0 || p.User != "" {
			e.Open("user")
			e.Key("id")
			e.B = append(e.B, '"')
			e.B = strconv.AppendUint(e.B, uint64(p.UID), 10)
			e.B = append(e.B, '"')
			e.StrNE("name", p.User)
			e.Close()
		}
		if f.Parent != nil {
			e.Open("parent")
			procFields(&e, f.Parent)
			e.Close()
		} else if p.PPID > 0 {
			e.Open("parent")
			e.Int("pid", int64(p.PPID))
			e.Close()
		}
		if c := f.Code; c != nil {
			e.Open("code_signature")
			e.Bool("exists", true)
			e.Bool("valid", c.Valid)
			e.StrNE("signing_id", c.SigningID)
			e.StrNE("team_id", c.TeamID)
			e.Bool("trusted", c.Valid && !c.AdHoc && (c.TeamID != "" || c.Platform))
			if c.AdHoc {
				e.Bool("adhoc", true)
			}
			if c.Platform {
				e.Bool("platform_binary", true)
			}
			e.Close()
		}
		e.Close()
	}

	e.OpenArr("file")
	for i := range f.Files {
		fl := &f.Files[i]
		e.Open("")
		e.Str("path", fl.Path)
		e.Str("name", path.Base(fl.Path))
		e.Str("directory", path.Dir(fl.Path))
		if fl.Size > 0 || fl.Hashed {
			e.Int("size", fl.Size)
		}
		if fl.Hashed {
			e.Open("hash")
			e.Hex("sha256", fl.SHA256[:])
			e.Close()
		}
		e.Time("accessed", fl.Time)
		e.Open("exfilwatch")
		e.Str("class", fl.Class)
		e.Str("access", fl.Access)
		e.Str("relation", fl.Relation)
		e.Int("pid", int64(fl.PID))
		e.StrNE("process_name", fl.ProcessName)
		e.StrNE("executable", fl.Executable)
		if fl.ContentMatch {
			e.Bool("content_match", true)
		}
		e.StrNE("source", fl.Source)
		e.Close()
		e.Close()
	}
	e.CloseArr()

	e.Open("source")
	e.addr("ip", u.Conn.Client.Addr())
	e.Uint("port", uint64(u.Conn.Client.Port()))
	e.Close()
	e.Open("destination")
	e.addr("ip", u.Conn.Server.Addr())
	e.Uint("port", uint64(u.Conn.Server.Port()))
	e.StrNE("domain", f.DestinationName)
	e.Close()

	switch u.Protocol {
	case "http":
		urlFields(&e, u)
		e.Open("http")
		e.Open("request")
		e.Str("method", u.Method)
		e.StrNE("mime_type", mime(u.ContentType))
		e.Open("body")
		e.Int("bytes", u.Bytes)
		var body *contentHash
		for i := range u.Hashes {
			if u.Hashes[i].Where == "http.request.body" {
				body = &u.Hashes[i]
			}
		}
		if body != nil {
			e.Hex("sha256", body.SHA256[:])
		}
		e.Close()
		e.Close()
		e.Close()
		if u.UserAgent != "" {
			e.Open("user_agent")
			e.Str("original", u.UserAgent)
			e.Close()
		}
	case "ftp":
		e.Open("ftp")
		e.Str("command", u.FTPCommand)
		e.StrNE("filename", u.FTPFile)
		e.StrNE("stored_as", u.FTPStoredAs)
		if n := len(u.Hashes); n > 0 {
			e.Hex("sha256", u.Hashes[n-1].SHA256[:])
		}
		e.Close()
	}

	e.Open("network")
	if u.Conn.Transport == "" {
		e.Str("transport", "tcp")
	} else {
		e.Str("transport", u.Conn.Transport)
	}
	e.Str("protocol", u.Protocol)
	e.StrNE("direction", u.Conn.Direction)
	e.Int("bytes", u.Bytes)
	if u.Conn.IPv6 {
		e.Str("type", "ipv6")
	} else {
		e.Str("type", "ipv4")
	}
	e.Close()

	e.Open("exfilwatch")
	e.Str("severity", f.Severity)
	e.Int("score", int64(f.Score))
	if f.Reasons == nil {
		e.Key("reasons")
		e.B = append(e.B, "null"...)
	} else {
		e.OpenArr("reasons")
		for i := range f.Reasons {
			r := &f.Reasons[i]
			e.Open("")
			e.Str("code", r.Code)
			e.Str("description", r.Description)
			e.Int("weight", int64(r.Weight))
			e.Close()
		}
		e.CloseArr()
	}
	lineage := false
	for _, l := range f.Lineage {
		if l == nil {
			continue
		}
		if !lineage {
			e.OpenArr("lineage")
			lineage = true
		}
		e.Open("")
		procFields(&e, l)
		e.Close()
	}
	if lineage {
		e.CloseArr()
	}
	if s := f.Script; s != nil {
		e.Open("script")
		e.Str("interpreter", s.Interpreter)
		e.StrNE("path", s.Path)
		e.StrNE("inline", s.Inline)
		e.StrNE("module", s.Module)
		e.Close()
	}
	e.Open("attribution")
	e.Str("method", f.Attribution)
	e.Close()
	e.Open("upload")
	e.Str("protocol", u.Protocol)
	e.Int("bytes", u.Bytes)
	e.Int("bytes_read", f.BytesRead)
	e.Time("start", u.Start)
	e.Time("end", u.End)
	if len(u.Hashes) > 0 {
		e.OpenArr("hashes")
		for i := range u.Hashes {
			e.Open("")
			e.Str("where", u.Hashes[i].Where)
			e.Hex("sha256", u.Hashes[i].SHA256[:])
			e.Close()
		}
		e.CloseArr()
	}
	if len(f.DestinationHosts) > 0 {
		strs(&e, "destination_names", f.DestinationHosts...)
	}
	e.Close()
	if cm := f.ContentMatch; cm != nil {
		e.Open("content_match")
		e.Str("where", cm.Where)
		e.Str("path", cm.Path)
		e.Hex("sha256", cm.SHA256[:])
		e.Close()
	}
	e.Open("flow")
	e.Key("ids")
	if u.FlowIDs == nil {
		e.B = append(e.B, "null"...)
	} else {
		e.B = append(e.B, '[')
		for i, id := range u.FlowIDs {
			if i > 0 {
				e.B = append(e.B, ',')
			}
			e.B = strconv.AppendUint(e.B, id, 10)
		}
		e.B = append(e.B, ']')
	}
	e.Close()
	if f.Source != "" {
		e.Open("pcap")
		e.Str("file", f.Source)
		e.Close()
	}
	e.Str("platform", f.GOOS)
	e.Close()

	e.Close()
	return e.B
}

// procFields writes what procECS fills in of a process.
func procFields(e *fenc, p *attribution.Process) {
	e.Int("pid", int64(p.PID))
	e.StrNE("name", p.Name)
	e.StrNE("executable", p.Executable)
	if len(p.Args) > 0 {
		strs(e, "args", p.Args...)
		e.Int("args_count", int64(len(p.Args)))
		// The command line is the arguments joined by spaces, escaped
		// piece by piece: a space ends any UTF-8 sequence, so the bytes
		// are those of escaping the joined string. Empty, it is omitted.
		if len(p.Args) > 1 || p.Args[0] != "" {
			e.Key("command_line")
			e.B = append(e.B, '"')
			for i, a := range p.Args {
				if i > 0 {
					e.B = append(e.B, ' ')
				}
				e.B = jsonenc.AppendChars(e.B, a, true)
			}
			e.B = append(e.B, '"')
		}
	}
	e.StrNE("working_directory", p.CWD)
	if !p.StartTime.IsZero() {
		e.Time("start", p.StartTime)
	}
	if p.PGID != 0 {
		e.Int("pgid", int64(p.PGID))
	}
}

// urlFields writes the "url" object as ECS() builds it.
func urlFields(e *fenc, u *upload) {
	e.Open("url")
	e.StrNE("original", u.Target)
	host := hostOnly(u.Host)
	if host == "" {
		host = u.Conn.Server.Addr().String()
	}
	pth := u.Target
	e.Key("full")
	if strings.HasPrefix(pth, "http://") || strings.HasPrefix(pth, "https://") {
		e.B = appendJSONString(e.B, pth)
		pth = absPath(pth)
	} else {
		// "http://" + host + port + target, assembled after the escaped
		// document in e.B's spare room so it costs no allocation; escaped
		// as one string because invalid UTF-8 could straddle the pieces.
		mark := len(e.B)
		e.B = append(e.B, "http://"...)
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			e.B = append(e.B, '[')
			e.B = append(e.B, host...)
			e.B = append(e.B, ']')
		} else {
			e.B = append(e.B, host...)
		}
		if port := u.Conn.Server.Port(); port != 80 {
			e.B = append(e.B, ':')
			e.B = strconv.AppendUint(e.B, uint64(port), 10)
		}
		e.B = append(e.B, pth...)
		n := len(e.B) - mark
		e.B = appendJSONString(e.B, e.B[mark:mark+n])
		e.B = append(e.B[:mark], e.B[mark+n:]...)
	}
	e.StrNE("domain", host)
	if port := u.Conn.Server.Port(); port != 0 {
		e.Uint("port", uint64(port))
	}
	if i := strings.IndexAny(pth, "?#"); i >= 0 {
		pth = pth[:i]
	}
	e.StrNE("path", pth)
	e.Close()
}
