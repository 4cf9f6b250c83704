package detect

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"exfilwatch/attribution"
)

// Finding is one upload that the rule flagged. docs/findings.md documents
// its JSON form (ECS alert shape); fields are only ever added.
type Finding struct {
	ID       string // stable for the same upload: replaying a capture twice gives the same ids
	RuleID   string
	GOOS     string
	Created  time.Time // when the finding was made (wall clock)
	Severity string
	Score    int
	Reasons  []Reason

	Process     *attribution.Process
	Parent      *attribution.Process
	Lineage     []*attribution.Process // parent first
	Attribution string                 // how the process was found (pktap, socket_table, journal)
	Code        *attribution.CodeSignature
	Script      *attribution.Script

	Files     []File // the sensitive reads that qualified, oldest first
	BytesRead int64  // sum of the distinct files' sizes (when known)

	Upload           upload
	DestinationName  string   // HTTP Host or DNS name, "" for a raw address
	DestinationHosts []string // every name known for the destination
	ContentMatch     *ContentMatch
	Source           string // capture file (replay)

	json atomic.Value // *findingJSON, set by JSON
}

// Reason is one signal that raised (Weight > 0), lowered (< 0) or only
// explains (0) the finding.
type Reason struct {
	Code        string `json:"code"`
	Description string `json:"description"`
	Weight      int    `json:"weight"`
}

// File is one qualifying sensitive read.
type File struct {
	Path         string
	Class        string
	Time         time.Time
	Access       string
	Size         int64
	SHA256       [32]byte
	Hashed       bool
	ContentMatch bool
	PID          int32
	ProcessName  string
	Executable   string
	Relation     string // self, parent, child, sibling
	Source       string // eslogger, fanotify, journal
}

// ContentMatch says which uploaded content equals which file.
type ContentMatch struct {
	Where  string // "http.request.body", "multipart part …", "ftp data"
	Path   string
	SHA256 [32]byte
}

// id derives the finding id from what identifies the upload.
func (f *Finding) id() string {
	h := sha256.New()
	u := &f.Upload
	fmt.Fprintf(h, "%s|%s|%s|%s|%d|%s|%s", f.RuleID, u.Protocol, u.Conn.Client, u.Conn.Server,
		u.Start.UnixNano(), u.FTPFile, u.Target)
	var b [8]byte
	for _, id := range u.FlowIDs {
		binary.BigEndian.PutUint64(b[:], id)
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// --- JSON (ECS alert shape) ---------------------------------------------------

const (
	ruleNameMac   = "Non-browser process uploaded over HTTP/FTP after reading sensitive user data (macOS)"
	ruleNameLinux = "Non-browser process uploaded over HTTP/FTP after reading sensitive user data (Linux)"
)

type ecsFinding struct {
	Timestamp   time.Time     `json:"@timestamp"`
	Event       ecsEvent      `json:"event"`
	Rule        ecsRule       `json:"rule"`
	Threat      ecsThreat     `json:"threat"`
	Process     *ecsProcess   `json:"process,omitempty"`
	File        []ecsFile     `json:"file"`
	Source      ecsEndpoint   `json:"source"`
	Destination ecsEndpoint   `json:"destination"`
	URL         *ecsURL       `json:"url,omitempty"`
	HTTP        *ecsHTTP      `json:"http,omitempty"`
	UserAgent   *ecsOriginal  `json:"user_agent,omitempty"`
	FTP         *ecsFTP       `json:"ftp,omitempty"`
	Network     ecsNetwork    `json:"network"`
	Exfilwatch  ecsExfilwatch `json:"exfilwatch"`
}

type ecsEvent struct {
	Kind     string    `json:"kind"`
	Category []string  `json:"category"`
	Type     []string  `json:"type"`
	Dataset  string    `json:"dataset"`
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Severity int       `json:"severity"`
}

type ecsRule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Ruleset     string `json:"ruleset"`
	Category    string `json:"category"`
	Reference   string `json:"reference"`
	Description string `json:"description"`
}

type ecsThreat struct {
	Framework string       `json:"framework"`
	Tactic    ecsIDName    `json:"tactic"`
	Technique ecsTechnique `json:"technique"`
}

type ecsIDName struct {
	ID        []string `json:"id"`
	Name      []string `json:"name"`
	Reference []string `json:"reference,omitempty"`
}

type ecsTechnique struct {
	ID           []string  `json:"id"`
	Name         []string  `json:"name"`
	Reference    []string  `json:"reference,omitempty"`
	Subtechnique ecsIDName `json:"subtechnique"`
}

type ecsProcess struct {
	PID           int32             `json:"pid"`
	Name          string            `json:"name,omitempty"`
	Executable    string            `json:"executable,omitempty"`
	Args          []string          `json:"args,omitempty"`
	ArgsCount     int               `json:"args_count,omitempty"`
	CommandLine   string            `json:"command_line,omitempty"`
	WorkingDir    string            `json:"working_directory,omitempty"`
	Start         *time.Time        `json:"start,omitempty"`
	PGID          int32             `json:"pgid,omitempty"`
	User          *ecsUser          `json:"user,omitempty"`
	Parent        *ecsProcess       `json:"parent,omitempty"`
	CodeSignature *ecsCodeSignature `json:"code_signature,omitempty"`
}

type ecsUser struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type ecsCodeSignature struct {
	Exists    bool   `json:"exists"`
	Valid     bool   `json:"valid"`
	SigningID string `json:"signing_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
	Trusted   bool   `json:"trusted"`
	AdHoc     bool   `json:"adhoc,omitempty"`
	Platform  bool   `json:"platform_binary,omitempty"`
}

type ecsFile struct {
	Path       string       `json:"path"`
	Name       string       `json:"name"`
	Directory  string       `json:"directory"`
	Size       *int64       `json:"size,omitempty"`
	Hash       *ecsHash     `json:"hash,omitempty"`
	Accessed   time.Time    `json:"accessed"`
	Exfilwatch ecsFileExtra `json:"exfilwatch"`
}

type ecsHash struct {
	SHA256 string `json:"sha256"`
}

type ecsFileExtra struct {
	Class        string `json:"class"`
	Access       string `json:"access"`
	Relation     string `json:"relation"`
	PID          int32  `json:"pid"`
	ProcessName  string `json:"process_name,omitempty"`
	Executable   string `json:"executable,omitempty"`
	ContentMatch bool   `json:"content_match,omitempty"`
	Source       string `json:"source,omitempty"`
}

type ecsEndpoint struct {
	IP     string `json:"ip"`
	Port   uint16 `json:"port"`
	Domain string `json:"domain,omitempty"`
}

type ecsURL struct {
	Original string `json:"original,omitempty"`
	Full     string `json:"full,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Port     uint16 `json:"port,omitempty"`
	Path     string `json:"path,omitempty"`
}

type ecsHTTP struct {
	Request ecsHTTPRequest `json:"request"`
}

type ecsHTTPRequest struct {
	Method   string  `json:"method"`
	MimeType string  `json:"mime_type,omitempty"`
	Body     ecsBody `json:"body"`
}

type ecsBody struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
}

type ecsOriginal struct {
	Original string `json:"original"`
}

type ecsFTP struct {
	Command  string `json:"command"`
	Filename string `json:"filename,omitempty"`
	StoredAs string `json:"stored_as,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
}

type ecsNetwork struct {
	Transport string `json:"transport"`
	Protocol  string `json:"protocol"`
	Direction string `json:"direction,omitempty"`
	Bytes     int64  `json:"bytes"`
	Type      string `json:"type"`
}

type ecsExfilwatch struct {
	Severity     string           `json:"severity"`
	Score        int              `json:"score"`
	Reasons      []Reason         `json:"reasons"`
	Lineage      []ecsProcess     `json:"lineage,omitempty"`
	Script       *ecsScript       `json:"script,omitempty"`
	Attribution  ecsAttribution   `json:"attribution"`
	Upload       ecsUpload        `json:"upload"`
	ContentMatch *ecsContentMatch `json:"content_match,omitempty"`
	Flow         ecsFlows         `json:"flow"`
	Pcap         *ecsPcap         `json:"pcap,omitempty"`
	Platform     string           `json:"platform"`
}

type ecsScript struct {
	Interpreter string `json:"interpreter"`
	Path        string `json:"path,omitempty"`
	Inline      string `json:"inline,omitempty"`
	Module      string `json:"module,omitempty"`
}

type ecsAttribution struct {
	Method string `json:"method"`
}

type ecsUpload struct {
	Protocol  string          `json:"protocol"`
	Bytes     int64           `json:"bytes"`
	BytesRead int64           `json:"bytes_read"`
	Start     time.Time       `json:"start"`
	End       time.Time       `json:"end"`
	Hashes    []ecsUploadHash `json:"hashes,omitempty"`
	Hosts     []string        `json:"destination_names,omitempty"`
}

type ecsUploadHash struct {
	Where  string `json:"where"`
	SHA256 string `json:"sha256"`
}

type ecsContentMatch struct {
	Where  string `json:"where"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

type ecsFlows struct {
	IDs []uint64 `json:"ids"`
}

type ecsPcap struct {
	File string `json:"file"`
}

func procECS(p *attribution.Process) *ecsProcess {
	if p == nil {
		return nil
	}
	e := &ecsProcess{PID: p.PID, Name: p.Name, Executable: p.Executable, Args: p.Args, WorkingDir: p.CWD, PGID: p.PGID}
	if len(p.Args) > 0 {
		e.ArgsCount = len(p.Args)
		e.CommandLine = strings.Join(p.Args, " ")
	}
	if !p.StartTime.IsZero() {
		t := p.StartTime.UTC()
		e.Start = &t
	}
	return e
}

// ECS returns the finding's JSON document.
func (f *Finding) ECS() any {
	u := &f.Upload
	name := ruleNameLinux
	if f.RuleID == RuleMacOS {
		name = ruleNameMac
	}
	doc := &ecsFinding{
		Timestamp: u.End.UTC(),
		Event: ecsEvent{Kind: "alert", Category: []string{"network", "file"}, Type: []string{"connection", "access"},
			Dataset: "exfilwatch.finding", ID: f.ID, Created: f.Created.UTC(), Start: u.Start.UTC(), End: u.End.UTC(),
			Severity: SeverityNumber(f.Severity)},
		Rule: ecsRule{ID: f.RuleID, Name: name, Ruleset: Ruleset, Category: "Exfiltration",
			Reference:   "https://attack.mitre.org/techniques/T1048/003/",
			Description: "A process that is not a browser (or its close lineage) read sensitive user files, then uploaded data over HTTP or FTP (MITRE ATT&CK detection strategy DET0149)."},
		Threat: ecsThreat{Framework: "MITRE ATT&CK",
			Tactic: ecsIDName{ID: []string{"TA0010"}, Name: []string{"Exfiltration"}, Reference: []string{"https://attack.mitre.org/tactics/TA0010/"}},
			Technique: ecsTechnique{ID: []string{"T1048"}, Name: []string{"Exfiltration Over Alternative Protocol"},
				Reference: []string{"https://attack.mitre.org/techniques/T1048/"},
				Subtechnique: ecsIDName{ID: []string{"T1048.003"}, Name: []string{"Exfiltration Over Unencrypted Non-C2 Protocol"},
					Reference: []string{"https://attack.mitre.org/techniques/T1048/003/"}}}},
		Process:     procECS(f.Process),
		Source:      ecsEndpoint{IP: u.Conn.Client.Addr().String(), Port: u.Conn.Client.Port()},
		Destination: ecsEndpoint{IP: u.Conn.Server.Addr().String(), Port: u.Conn.Server.Port(), Domain: f.DestinationName},
		Network:     ecsNetwork{Transport: u.Conn.Transport, Protocol: u.Protocol, Direction: u.Conn.Direction, Bytes: u.Bytes, Type: "ipv4"},
		Exfilwatch: ecsExfilwatch{Severity: f.Severity, Score: f.Score, Reasons: f.Reasons, Platform: f.GOOS,
			Attribution: ecsAttribution{Method: f.Attribution},
			Upload:      ecsUpload{Protocol: u.Protocol, Bytes: u.Bytes, BytesRead: f.BytesRead, Start: u.Start.UTC(), End: u.End.UTC(), Hosts: f.DestinationHosts},
			Flow:        ecsFlows{IDs: u.FlowIDs}},
	}
	if u.Conn.IPv6 {
		doc.Network.Type = "ipv6"
	}
	if doc.Network.Transport == "" {
		doc.Network.Transport = "tcp"
	}
	if f.Source != "" {
		doc.Exfilwatch.Pcap = &ecsPcap{File: f.Source}
	}
	if doc.Process != nil {
		p := f.Process
		if p.UID != 0 || p.User != "" {
			doc.Process.User = &ecsUser{ID: fmt.Sprint(p.UID), Name: p.User}
		}
		doc.Process.Parent = procECS(f.Parent)
		if f.Parent == nil && p.PPID > 0 {
			doc.Process.Parent = &ecsProcess{PID: p.PPID}
		}
		if c := f.Code; c != nil {
			doc.Process.CodeSignature = &ecsCodeSignature{Exists: true, Valid: c.Valid, SigningID: c.SigningID, TeamID: c.TeamID,
				Trusted: c.Valid && !c.AdHoc && (c.TeamID != "" || c.Platform), AdHoc: c.AdHoc, Platform: c.Platform}
		} else if f.GOOS == "darwin" {
			doc.Process.CodeSignature = nil // unknown: not "unsigned"
		}
	}
	for _, l := range f.Lineage {
		if e := procECS(l); e != nil {
			doc.Exfilwatch.Lineage = append(doc.Exfilwatch.Lineage, *e)
		}
	}
	if s := f.Script; s != nil {
		doc.Exfilwatch.Script = &ecsScript{Interpreter: s.Interpreter, Path: s.Path, Inline: s.Inline, Module: s.Module}
	}
	doc.File = make([]ecsFile, 0, len(f.Files))
	for _, fl := range f.Files {
		ef := ecsFile{Path: fl.Path, Name: path.Base(fl.Path), Directory: path.Dir(fl.Path), Accessed: fl.Time.UTC(),
			Exfilwatch: ecsFileExtra{Class: fl.Class, Access: fl.Access, Relation: fl.Relation, PID: fl.PID,
				ProcessName: fl.ProcessName, Executable: fl.Executable, ContentMatch: fl.ContentMatch, Source: fl.Source}}
		if fl.Size > 0 || fl.Hashed {
			sz := fl.Size
			ef.Size = &sz
		}
		if fl.Hashed {
			ef.Hash = &ecsHash{SHA256: hex.EncodeToString(fl.SHA256[:])}
		}
		doc.File = append(doc.File, ef)
	}
	for _, h := range u.Hashes {
		doc.Exfilwatch.Upload.Hashes = append(doc.Exfilwatch.Upload.Hashes, ecsUploadHash{Where: h.Where, SHA256: hex.EncodeToString(h.SHA256[:])})
	}
	if cm := f.ContentMatch; cm != nil {
		doc.Exfilwatch.ContentMatch = &ecsContentMatch{Where: cm.Where, Path: cm.Path, SHA256: hex.EncodeToString(cm.SHA256[:])}
	}
	switch u.Protocol {
	case "http":
		doc.HTTP = &ecsHTTP{Request: ecsHTTPRequest{Method: u.Method, MimeType: mime(u.ContentType), Body: ecsBody{Bytes: u.Bytes}}}
		for _, h := range u.Hashes {
			if h.Where == "http.request.body" {
				doc.HTTP.Request.Body.SHA256 = hex.EncodeToString(h.SHA256[:])
			}
		}
		doc.URL = &ecsURL{Original: u.Target, Port: u.Conn.Server.Port()}
		host := hostOnly(u.Host)
		if host == "" {
			host = u.Conn.Server.Addr().String()
		}
		doc.URL.Domain = host
		pth := u.Target
		if strings.HasPrefix(pth, "http://") || strings.HasPrefix(pth, "https://") {
			doc.URL.Full = pth
			pth = absPath(pth)
		} else {
			hp := host
			if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
				hp = "[" + host + "]"
			}
			if port := u.Conn.Server.Port(); port != 80 {
				hp += ":" + fmt.Sprint(port)
			}
			doc.URL.Full = "http://" + hp + pth
		}
		if i := strings.IndexAny(pth, "?#"); i >= 0 {
			pth = pth[:i]
		}
		doc.URL.Path = pth
		if u.UserAgent != "" {
			doc.UserAgent = &ecsOriginal{Original: u.UserAgent}
		}
	case "ftp":
		doc.FTP = &ecsFTP{Command: u.FTPCommand, Filename: u.FTPFile, StoredAs: u.FTPStoredAs}
		for _, h := range u.Hashes {
			doc.FTP.SHA256 = hex.EncodeToString(h.SHA256[:])
		}
	}
	return doc
}

// absPath is the path of an absolute-form request target. It looks for the
// first '/' from byte 8 on (past "https://", one byte into the host of an
// "http://" URL: a one-byte host name is no host anyway); a target of
// "http://" alone has no byte 8 and used to panic here.
func absPath(target string) string {
	if len(target) > 8 {
		if i := strings.IndexByte(target[8:], '/'); i >= 0 {
			return target[8+i:]
		}
	}
	return "/"
}

func mime(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// MarshalJSON writes the ECS document (AppendJSON, not memoized: a caller
// of json.Marshal may have changed the finding since JSON was called).
func (f *Finding) MarshalJSON() ([]byte, error) { return f.AppendJSON(nil), nil }

// JSON returns the finding's JSON document, encoded once: the findings
// file, every syslog destination and the evidence store each need it, and
// a finding does not change once emitted. The slice is shared: append to a
// copy (its capacity is its length, so append copies), never write into it.
func (f *Finding) JSON() []byte {
	if m, _ := f.json.Load().(*findingJSON); m != nil && m.of == f {
		return m.b
	}
	b := f.AppendJSON(make([]byte, 0, 4096))
	b = b[:len(b):len(b)]
	// Two callers racing both encode; either result is the same bytes.
	f.json.Store(&findingJSON{of: f, b: b})
	return b
}

// findingJSON is the memoized document and the finding it was made for: a
// copy of a Finding (a test's template, changed afterwards) copies the memo
// too, and must not take the original's bytes for its own.
type findingJSON struct {
	of *Finding
	b  []byte
}

// Text is a compact human-readable line.
func (f *Finding) Text() string {
	u := &f.Upload
	who := "?"
	if p := f.Process; p != nil {
		who = fmt.Sprintf("%s[%d]", p.Name, p.PID)
		if p.Executable != "" {
			who = fmt.Sprintf("%s[%d] %s", p.Name, p.PID, p.Executable)
		}
	}
	if f.Script != nil && f.Script.Path != "" {
		who += " script " + f.Script.Path
	}
	what := u.Protocol
	switch u.Protocol {
	case "http":
		what = u.Method + " " + u.Target
	case "ftp":
		what = "FTP " + u.FTPCommand + " " + u.FTPFile
	}
	dest := u.Conn.Server.String()
	if f.DestinationName != "" {
		dest = f.DestinationName + " (" + dest + ")"
	}
	var files []string
	for _, fl := range f.Files {
		s := fl.Path
		if fl.Relation != RelSelf {
			s += " [by " + fl.Relation + " " + fl.ProcessName + "]"
		}
		files = append(files, s)
	}
	var codes []string
	for _, r := range f.Reasons {
		if r.Weight != 0 || r.Code == ReasonLineageRead {
			codes = append(codes, r.Code)
		}
	}
	return fmt.Sprintf("%s %s %s: %s uploaded %d bytes (%s) to %s after reading %s; reasons: %s; flows %v; id %s",
		u.End.UTC().Format(time.RFC3339), strings.ToUpper(f.Severity), f.RuleID, who, u.Bytes, what, dest,
		strings.Join(files, ", "), strings.Join(codes, ","), u.FlowIDs, f.ID)
}

// Writer writes findings as JSON Lines or text lines; safe for concurrent
// use.
type Writer struct {
	mu    sync.Mutex
	w     *bufio.Writer
	text  bool
	err   error
	Count uint64
}

// NewWriter returns a writer of format "json" or "text".
func NewWriter(w io.Writer, format string) *Writer {
	return &Writer{w: bufio.NewWriter(w), text: format == "text"}
}

// Finding writes one finding and flushes it: a finding is rare and must
// not sit in a buffer when the sensor is killed.
func (w *Writer) Finding(f *Finding) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.text {
		_, err = w.w.WriteString(f.Text())
	} else {
		_, err = w.w.Write(f.JSON())
	}
	if err == nil {
		err = w.w.WriteByte('\n')
	}
	if err == nil {
		err = w.w.Flush()
	}
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write finding: %w", err)
	}
	w.Count++
}

// Written returns how many findings were written.
func (w *Writer) Written() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Count
}

// Err returns the first write error.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Collect keeps findings in memory (tests, summaries).
type Collect struct {
	mu       sync.Mutex
	Findings []*Finding
}

// Finding appends.
func (c *Collect) Finding(f *Finding) {
	c.mu.Lock()
	c.Findings = append(c.Findings, f)
	c.mu.Unlock()
}

// Tee sends findings to several sinks.
type Tee []FindingSink

// Finding sends f to every sink.
func (t Tee) Finding(f *Finding) {
	for _, s := range t {
		s.Finding(f)
	}
}
