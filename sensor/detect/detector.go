// Package detect is the correlator of the AN0425 (macOS) / AN0424 (Linux)
// rule: it joins the sensor's uploads (HTTP requests with a body, FTP
// STOR/APPE/STOU transfers, bulk outbound bytes on flows no parser
// understood) with the processes that made them and those processes'
// recent reads of sensitive files, and raises one finding per upload, with
// reasons and a severity. It is the only place that owns the window, the
// sensitive path classes, browser identity, the allowlist and the severity
// model (docs/findings.md).
//
// The detector sits in the event stream (it is an events.Sink that passes
// every event on) and is fed the host side separately: FileAccess and
// ProcessEvent records, in time order with the packets as far as the
// caller can (replay merges them by time; live sources deliver them within
// milliseconds). An upload is judged Settle after it ended, so that reads
// and process records delivered a little late still count.
package detect

import (
	"container/list"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/attribution"
	"exfilwatch/config"
	"exfilwatch/protocols"
	"exfilwatch/protocols/dns"
	"exfilwatch/sensor/events"
)

// Rule identifiers: the analytic (per platform) and its detection strategy.
const (
	RuleMacOS = "AN0425"
	RuleLinux = "AN0424"
	Ruleset   = "DET0149"
)

// Defaults of Options.
const (
	DefaultWindow             = 10 * time.Minute
	DefaultMinUploadBytes     = 1024
	DefaultBulkUploadBytes    = 64 << 10
	DefaultSettle             = 500 * time.Millisecond
	DefaultMaxProcesses       = 16384
	DefaultMaxReadsPerProcess = 256
	DefaultMaxPending         = 4096
	DefaultMaxDestinations    = 65536
	// readSlack lets a read that the file-access source timestamped a
	// little after the upload's last packet still count: fanotify and ES
	// stamp a record when it is delivered, the capture when the packet left.
	readSlack = time.Second
)

// Options configure a Detector. Zero values take the defaults.
type Options struct {
	// GOOS is the platform the host data comes from ("darwin" or "linux"):
	// it chooses the rule id, the case rule of paths, and which signals
	// exist (code signatures only on darwin).
	GOOS string
	// RuleID overrides the rule id (default AN0425 on darwin, AN0424
	// elsewhere).
	RuleID string
	// Window: a sensitive read qualifies when it happened at most Window
	// before the upload started (or during the upload).
	Window time.Duration
	// MinUploadBytes is the smallest HTTP request body that is an upload,
	// taken as given: 0 = every request with a body (the configuration's
	// default is DefaultMinUploadBytes).
	MinUploadBytes int64
	// BulkUploadBytes is the smallest outbound payload of a flow no parser
	// understood (TLS, unknown protocols) that counts as an upload.
	BulkUploadBytes int64
	// Settle is how long after an upload ended it is judged.
	Settle time.Duration
	// Sensitive classifies paths into sensitive classes (required for any
	// finding: without it nothing is sensitive).
	Sensitive *config.PathMatcher
	// CredentialClasses are the classes whose reads weigh more (keys,
	// keychains, cloud credentials, browser cookie and login stores).
	CredentialClasses map[string]bool
	// Browsers tells browsers apart (nil: nothing is a browser).
	Browsers *attribution.BrowserClassifier
	// Allow suppresses legitimate automation (nil: nothing is).
	Allow *Allowlist
	// Names returns the DNS names seen resolving to an address. nil: the
	// detector remembers the DNS answers of the event stream itself.
	Names func(netip.Addr) []string
	// Bounds.
	MaxProcesses, MaxReadsPerProcess, MaxPending, MaxDestinations int
	// Log receives debug lines (suppressions with the rule that matched).
	Log zerolog.Logger
	// OnVerdict, when set, is told what was decided for every upload
	// judged (replay --explain: tuning needs to see what was left alone
	// and why). Called with the detector's lock held.
	OnVerdict func(Verdict)
}

// Verdict is the decision on one upload.
type Verdict struct {
	Time        time.Time // end of the upload
	Protocol    string
	What        string // "POST /upload", "STOR docs.tar", "1.2 MB"
	Bytes       int64
	Destination string // name (address:port) or address:port
	PID         int32
	Process     string // name
	Executable  string
	Outcome     string // one of the Outcome* constants
	Detail      string // the browser's name, the allowlist rule, the finding's severity and id
	FlowIDs     []uint64
}

// Verdict outcomes.
const (
	OutcomeFinding      = "finding"
	OutcomeUnattributed = "unattributed"
	OutcomeLocal        = "local"
	OutcomeBrowser      = "browser"
	OutcomeNoSensitive  = "no_sensitive_read"
	OutcomeAllowlisted  = "allowlisted"
)

func (d *Detector) verdict(u *upload, p *attribution.Process, outcome, detail, dest string) {
	if d.opt.OnVerdict == nil {
		return
	}
	v := Verdict{Time: u.End, Protocol: u.Protocol, Bytes: u.Bytes, Outcome: outcome, Detail: detail, FlowIDs: u.FlowIDs,
		Destination: dest}
	if v.Destination == "" {
		v.Destination = u.Conn.Server.String()
	}
	switch u.Protocol {
	case "http":
		v.What = u.Method + " " + u.Target
	case "ftp":
		v.What = u.FTPCommand + " " + u.FTPFile
	default:
		v.What = "bulk " + u.Protocol
	}
	if p != nil {
		v.PID, v.Process, v.Executable = p.PID, p.Name, p.Executable
	} else if r := u.Conn.Attribution; r != nil {
		v.PID, v.Process = r.PID, r.Name
	}
	d.opt.OnVerdict(v)
}

func (o *Options) defaults() {
	if o.GOOS == "" {
		o.GOOS = "linux"
	}
	if o.RuleID == "" {
		o.RuleID = RuleLinux
		if o.GOOS == "darwin" {
			o.RuleID = RuleMacOS
		}
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MinUploadBytes < 0 {
		o.MinUploadBytes = 0
	}
	if o.BulkUploadBytes <= 0 {
		o.BulkUploadBytes = DefaultBulkUploadBytes
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.MaxProcesses <= 0 {
		o.MaxProcesses = DefaultMaxProcesses
	}
	if o.MaxReadsPerProcess <= 0 {
		o.MaxReadsPerProcess = DefaultMaxReadsPerProcess
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxDestinations <= 0 {
		o.MaxDestinations = DefaultMaxDestinations
	}
}

// Stats count the detector's work. Every bound that drops something has a
// counter here.
type Stats struct {
	FileAccesses   uint64 // file-access records received
	SensitiveReads uint64 // of which reads of a sensitive path
	ProcessEvents  uint64 // exec/fork/exit records received
	Uploads        uint64 // uploads judged
	Unattributed   uint64 // uploads with no process: cannot be judged
	Browser        uint64 // uploads by a browser: left alone
	NoSensitive    uint64 // uploads with no qualifying sensitive read
	Allowlisted    uint64 // findings suppressed by the allowlist
	Findings       uint64
	BySeverity     map[string]uint64
	ByAllowRule    map[string]uint64 // suppressions per allowlist rule ("allowlist[2]")
	// Bounds.
	ProcessesEvicted uint64 // processes forgotten (MaxProcesses)
	ReadsDropped     uint64 // reads forgotten (MaxReadsPerProcess)
	PendingForced    uint64 // uploads judged early because MaxPending was reached
	DestsEvicted     uint64 // destination memory entries forgotten
	EarlyForgotten   uint64 // times the notice table was cleared (maxEarly)
}

// FindingSink receives findings. It is called with the detector's lock
// held: it must not call back into the detector.
type FindingSink interface {
	Finding(*Finding)
}

// Detector correlates uploads with sensitive reads. It is safe for
// concurrent use: file-access sources feed it from their goroutines while
// the packet pipeline delivers events.
type Detector struct {
	mu      sync.Mutex
	opt     Options
	next    events.Sink
	out     FindingSink
	h       *history
	pending []*upload
	clock   time.Time
	pruned  time.Time
	dests   *destMemory
	stats   Stats
	source  string // capture file being replayed, for findings
	names   *dns.Names
	early   map[txKey]struct{} // HTTP transactions judged from their request notice
}

// New returns a detector that passes every event on to next (may be nil)
// and writes findings to out.
func New(opt Options, next events.Sink, out FindingSink) *Detector {
	opt.defaults()
	d := &Detector{opt: opt, next: next, out: out}
	d.stats.BySeverity = map[string]uint64{}
	d.stats.ByAllowRule = map[string]uint64{}
	d.early = map[txKey]struct{}{}
	d.h = newHistory(opt.MaxProcesses, opt.MaxReadsPerProcess, &d.stats)
	d.dests = newDestMemory(opt.MaxDestinations, &d.stats)
	if d.opt.Names == nil {
		d.names = dns.NewNames(0)
		d.opt.Names = d.names.Names
	}
	return d
}

// Reload replaces the rule's configuration — sensitive classes, window,
// upload sizes, browsers, allowlist, credential classes — keeping what the
// detector remembers (processes, reads, destinations) and the uploads
// waiting to be judged: SIGHUP must not lose a finding in progress. The
// bounds, platform, rule id and hooks stay as they were.
func (d *Detector) Reload(opt Options) {
	opt.defaults()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opt.Window, d.opt.MinUploadBytes, d.opt.BulkUploadBytes = opt.Window, opt.MinUploadBytes, opt.BulkUploadBytes
	d.opt.Sensitive, d.opt.CredentialClasses = opt.Sensitive, opt.CredentialClasses
	d.opt.Browsers, d.opt.Allow = opt.Browsers, opt.Allow
}

// IsSensitive reports whether a path is in a sensitive class under the
// current configuration (file-access sources hash such files when they
// are read, and must follow a SIGHUP reload).
func (d *Detector) IsSensitive(p string) bool {
	d.mu.Lock()
	m := d.opt.Sensitive
	d.mu.Unlock()
	_, ok := m.Match(p)
	return ok
}

// SetSource names the capture file the following events come from
// (findings carry it, so a person finds the packets).
func (d *Detector) SetSource(path string) {
	d.mu.Lock()
	d.source = path
	d.mu.Unlock()
}

// RuleID returns the rule id findings carry.
func (d *Detector) RuleID() string { return d.opt.RuleID }

// Stats returns a copy of the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.BySeverity = make(map[string]uint64, len(d.stats.BySeverity))
	for k, v := range d.stats.BySeverity {
		s.BySeverity[k] = v
	}
	s.ByAllowRule = make(map[string]uint64, len(d.stats.ByAllowRule))
	for k, v := range d.stats.ByAllowRule {
		s.ByAllowRule[k] = v
	}
	return s
}

// isRead reports whether an access lets the process see the file's content.
func isRead(k attribution.AccessKind) bool {
	return k == attribution.AccessRead || k == attribution.AccessReadWrite || k == attribution.AccessRenameSource
}

// FileAccess records one file access and the process that made it (p may
// be nil when it could not be described; the pid then identifies it).
// Only successful reads of sensitive paths are kept.
func (d *Detector) FileAccess(fa attribution.FileAccess, p *attribution.Process) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.FileAccesses++
	if fa.Result != 0 || !isRead(fa.Access) {
		if fa.Access == attribution.AccessExec && p != nil {
			d.h.upsert(fa.PID, fa.PIDVersion, p, fa.Time)
		}
		return
	}
	class, ok := d.opt.Sensitive.Match(fa.Path)
	if !ok {
		return
	}
	if class == "shell_history" && p != nil {
		// A shell or REPL reads its own history at start: that is not a
		// read of user data, and every interactive command's parent does it.
		if b := path.Base(p.Executable); baseIs(b, shells) || baseIs(b, interpreters) || baseIs(p.Name, shells) {
			return
		}
	}
	d.stats.SensitiveReads++
	c := d.h.upsert(fa.PID, fa.PIDVersion, p, fa.Time)
	d.h.addRead(c, read{Time: fa.Time, Path: fa.Path, Class: class, Access: fa.Access,
		Size: fa.Size, SHA256: fa.SHA256, Hashed: fa.Hashed, Source: fa.Source})
}

// ProcessEvent records an exec, fork or exit (Endpoint Security, or the
// journal of a macOS recording).
func (d *Detector) ProcessEvent(ev attribution.ProcessEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.ProcessEvents++
	switch ev.Kind {
	case attribution.ProcExec:
		if ev.PrevPIDVersion != 0 {
			if old := d.h.find(ev.PID, ev.PrevPIDVersion, time.Time{}, ev.Time); old != nil && old.exited.IsZero() {
				old.exited = ev.Time // the old image is gone; its reads stay
			}
		}
		c := d.h.upsert(ev.PID, ev.PIDVersion, ev.Process, ev.Time)
		e := ev
		c.exec = &e
	case attribution.ProcFork:
		if ev.Process != nil {
			d.h.upsert(ev.ChildPID, ev.ChildPIDVersion, ev.Process, ev.Time)
		}
	case attribution.ProcExit:
		c := d.h.upsert(ev.PID, ev.PIDVersion, ev.Process, ev.Time)
		c.exited = ev.Time
	}
}

// Tick advances the detector's clock (packet time in replay, wall time
// live): uploads that ended Settle ago are judged, and reads that fell out
// of the window are forgotten.
func (d *Detector) Tick(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.After(d.clock) {
		d.clock = now
	}
	d.judgeDue(false)
	if d.clock.Sub(d.pruned) >= time.Second {
		d.pruned = d.clock
		d.h.prune(d.clock.Add(-d.opt.Window - d.opt.Settle - readSlack))
	}
}

// Flush judges every pending upload (end of a replay, shutdown).
func (d *Detector) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.judgeDue(true)
}

func (d *Detector) judgeDue(all bool) {
	n := 0
	for _, u := range d.pending {
		if all || !d.clock.Before(u.End.Add(d.opt.Settle)) {
			d.judge(u)
			continue
		}
		d.pending[n] = u
		n++
	}
	clear(d.pending[n:])
	d.pending = d.pending[:n]
}

func (d *Detector) enqueue(u *upload) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u.End.After(d.clock) {
		// Events come at packet time: the clock is at least there.
		d.clock = u.End
	}
	if len(d.pending) >= d.opt.MaxPending {
		d.stats.PendingForced++
		d.judge(d.pending[0])
		d.pending = append(d.pending[:0], d.pending[1:]...)
	}
	d.pending = append(d.pending, u)
}

// --- the event stream -------------------------------------------------------

// HTTP passes the event on and considers its request body, unless the
// upload was already judged from its request notice.
func (d *Detector) HTTP(ev *events.HTTP) {
	if d.next != nil {
		d.next.HTTP(ev)
	}
	k := txKey{ev.FlowID, ev.Tx.Seq()}
	d.mu.Lock()
	_, early := d.early[k]
	delete(d.early, k)
	d.mu.Unlock()
	if early {
		return
	}
	if u := d.httpUpload(ev); u != nil {
		d.enqueue(u)
	}
}

// HTTPRequest (events.RequestSink) judges an upload when its request body
// ended, without waiting for the server's answer: a slow or silent server
// must not hold back a finding. A notice whose process lookup had not
// answered yet is left to the full event, which may carry the late answer.
func (d *Detector) HTTPRequest(ev *events.HTTP) {
	if !ev.Conn.Attribution.Attributed() {
		return
	}
	u := d.httpUpload(ev)
	if u == nil {
		return
	}
	d.mu.Lock()
	if len(d.early) >= maxEarly {
		// Notices whose event never came (a flow evicted mid-way): forget
		// them all rather than grow; at worst an upload is judged twice.
		clear(d.early)
		d.stats.EarlyForgotten++
	}
	d.early[txKey{ev.FlowID, ev.Tx.Seq()}] = struct{}{}
	d.mu.Unlock()
	d.enqueue(u)
}

// txKey names one HTTP transaction: its flow and its number on the flow.
type txKey struct {
	flow uint64
	seq  uint64
}

// maxEarly bounds the transactions judged from their notice and waiting for
// their event.
const maxEarly = 1 << 16

func (d *Detector) httpUpload(ev *events.HTTP) *upload {
	req := &ev.Tx.Request
	if req.Method == "" || req.BodyBytes <= 0 || req.BodyBytes < d.opt.MinUploadBytes {
		return nil
	}
	u := &upload{Protocol: "http", Conn: ev.Conn, Start: req.Start, End: req.End, Bytes: req.BodyBytes,
		Method: req.Method, Target: req.Target, Host: req.Host, UserAgent: req.UserAgent, ContentType: req.ContentType}
	if u.End.IsZero() {
		u.End = u.Start
	}
	if req.BodyHashValid {
		u.Hashes = append(u.Hashes, contentHash{Where: "http.request.body", SHA256: req.BodySHA256})
	}
	for i := range req.Multipart {
		p := &req.Multipart[i]
		if p.HashValid && p.Bytes > 0 {
			u.Hashes = append(u.Hashes, contentHash{Where: "multipart part " + partName(p.Name, p.Filename), SHA256: p.SHA256})
		}
	}
	u.FlowIDs = []uint64{ev.FlowID}
	return u
}

func partName(name, filename string) string {
	if filename != "" {
		return strconv.Quote(name) + " (" + strconv.Quote(filename) + ")"
	}
	return strconv.Quote(name)
}

// DNS passes the event on (when the next sink takes DNS events) and
// remembers its answers, to name upload destinations.
func (d *Detector) DNS(ev *events.DNS) {
	if ds, ok := d.next.(events.DNSSink); ok {
		ds.DNS(ev)
	}
	if d.names != nil {
		d.names.Observe(&ev.Response, ev.Time)
	}
}

// FTPCommand passes the event on.
func (d *Detector) FTPCommand(ev *events.FTPCommand) {
	if d.next != nil {
		d.next.FTPCommand(ev)
	}
}

// FTPData passes the event on and considers uploads (STOR, APPE, STOU).
func (d *Detector) FTPData(ev *events.FTPData) {
	if d.next != nil {
		d.next.FTPData(ev)
	}
	t := ev.T
	if t == nil || !t.Upload || t.BytesToServer <= 0 {
		return
	}
	// The destination is the FTP server as the user named it: the control
	// connection's (port 21 or whatever was given), not a passive data
	// port. The process is the control connection's, else the data
	// connection's (curl, ftp, lftp own both; a data connection the sensor
	// did not see, or saw only from its middle, has none).
	conn := ev.Control
	if !conn.Server.IsValid() {
		conn = ev.Conn
	}
	if !conn.Attribution.Attributed() && ev.Conn.Attribution.Attributed() {
		conn.Attribution = ev.Conn.Attribution
	}
	u := &upload{Protocol: "ftp", Conn: conn, Start: t.Start, End: t.End, Bytes: t.BytesToServer,
		FTPCommand: t.Command, FTPFile: t.Filename, FTPStoredAs: t.StoredAs}
	if t.CommandStart.After(u.Start) {
		u.Start = t.CommandStart
	}
	if t.HashValid {
		u.Hashes = append(u.Hashes, contentHash{Where: "ftp data", SHA256: t.SHA256})
	}
	if ev.Control.FlowID != 0 {
		u.FlowIDs = append(u.FlowIDs, ev.Control.FlowID)
	}
	if ev.Conn.FlowID != 0 {
		u.FlowIDs = append(u.FlowIDs, ev.Conn.FlowID)
	}
	d.enqueue(u)
}

// Flow passes the event on and considers bulk outbound bytes on flows no
// parser understood.
func (d *Detector) Flow(ev *events.Flow) {
	if d.next != nil {
		d.next.Flow(ev)
	}
	if ev.Protocol != "" && !ev.Encrypted {
		return
	}
	out := int64(ev.Payload[protocols.ClientToServer])
	if out < d.opt.BulkUploadBytes || ev.Direction == "inbound" {
		return
	}
	proto := "tcp"
	if ev.Transport == "udp" {
		proto = "udp"
	}
	if ev.Encrypted {
		proto = "ftp-tls"
	}
	d.enqueue(&upload{Protocol: proto, Conn: ev.Conn, Start: ev.Start, End: ev.End, Bytes: out,
		FlowIDs: []uint64{ev.FlowID}})
}

// --- judging ----------------------------------------------------------------

// upload is one candidate upload.
type upload struct {
	Protocol   string // http, ftp, tcp, udp, ftp-tls
	Conn       events.Conn
	Start, End time.Time
	Bytes      int64
	Hashes     []contentHash
	FlowIDs    []uint64
	// HTTP
	Method, Target, Host, UserAgent, ContentType string
	// FTP
	FTPCommand, FTPFile, FTPStoredAs string
}

type contentHash struct {
	Where  string
	SHA256 [32]byte
}

// relation of a reading process to the uploader.
const (
	RelSelf    = "self"
	RelParent  = "parent"
	RelChild   = "child"
	RelSibling = "sibling"
)

type related struct {
	c   *proc
	rel string
}

func (d *Detector) judge(u *upload) {
	d.stats.Uploads++
	r := u.Conn.Attribution
	if r == nil || (r.Process == nil && r.PID == 0) {
		d.stats.Unattributed++
		d.verdict(u, nil, OutcomeUnattributed, "no process known for the connection", "")
		return
	}
	if isLocalOnly(u.Conn.Server.Addr()) || u.Conn.Server.Addr() == u.Conn.Client.Addr() {
		d.verdict(u, r.Process, OutcomeLocal, "never left the host", "")
		return
	}
	pid := r.PID
	var pv int32
	var start time.Time
	if r.Process != nil {
		pid, pv, start = r.Process.PID, r.Process.PIDVersion, r.Process.StartTime
	}
	self := d.h.find(pid, pv, start, u.Start)
	if self == nil {
		self = d.h.upsert(pid, pv, r.Process, u.Start)
	} else if r.Process != nil && (self.p == nil || richer(r.Process, self.p)) {
		self.p = r.Process
	}
	proc := self.p
	if proc == nil {
		proc = r.Process
	}
	if proc == nil {
		proc = &attribution.Process{PID: pid, Name: r.Name}
	}

	id := d.codeIdentity(self, proc)
	if name, ok := d.opt.Browsers.IsBrowser(id); d.opt.Browsers != nil && ok {
		d.stats.Browser++
		d.opt.Log.Debug().Str("browser", name).Int32("pid", pid).Str("executable", proc.Executable).
			Uint64("flow", u.Conn.FlowID).Msg("upload by a browser: left alone")
		d.verdict(u, proc, OutcomeBrowser, name, "")
		return
	}

	destName, hosts := d.destination(u)
	identityKey := proc.Executable
	if id.SigningID != "" && id.ValidSignature {
		identityKey = id.TeamID + ":" + id.SigningID
	}
	if identityKey == "" {
		identityKey = proc.Name
	}
	destKey := destName
	if destKey == "" {
		destKey = u.Conn.Server.Addr().String()
	}
	newDest := d.dests.observe(identityKey, destKey)

	rel := d.relatives(self, r, u)
	files := d.qualifying(rel, u)
	if len(files) == 0 {
		d.stats.NoSensitive++
		d.verdict(u, proc, OutcomeNoSensitive, "no sensitive file read by it or its close lineage in the "+d.opt.Window.String()+" window", destKey)
		return
	}

	f := &Finding{
		RuleID: d.opt.RuleID, GOOS: d.opt.GOOS, Created: time.Now().UTC(),
		Process: proc, Lineage: r.Lineage, Attribution: r.Method, Code: proc.Code,
		Files: files, Upload: *u, DestinationName: destName, DestinationHosts: hosts,
		Source: d.source,
	}
	if len(r.Lineage) > 0 {
		f.Parent = r.Lineage[0]
	}
	script := ""
	if self.exec != nil {
		script = self.exec.Script
	}
	if s := attribution.ScriptOf(proc, script); s.Interpreter != "" {
		f.Script = &s
	}
	d.assess(f, id, newDest)

	if d.opt.Allow != nil {
		subj := &Subject{Name: proc.Name, Executable: proc.Executable, SigningID: id.SigningID, TeamID: id.TeamID,
			SignatureValid: id.ValidSignature && id.TeamID != "" || id.ValidSignature && id.PlatformBinary,
			DestIP:         u.Conn.Server.Addr(), DestHosts: d.confirmedNames(u.Conn.Server.Addr()), Classes: f.Classes()}
		if rule, ok := d.opt.Allow.Match(subj); ok {
			d.stats.Allowlisted++
			d.stats.ByAllowRule[ruleKey(rule)]++
			d.opt.Log.Debug().Str("rule", rule.Desc).Str("reason", rule.Reason).Int32("pid", proc.PID).
				Str("executable", proc.Executable).Str("destination", destKey).Strs("classes", subj.Classes).
				Msg("finding suppressed by the allowlist")
			d.verdict(u, proc, OutcomeAllowlisted, rule.Desc+" ("+rule.Reason+")", destKey)
			return
		}
	}
	f.ID = f.id()
	d.stats.Findings++
	d.stats.BySeverity[f.Severity]++
	if d.out != nil {
		d.out.Finding(f)
	}
	d.verdict(u, proc, OutcomeFinding, f.Severity+" "+f.ID, destKey)
}

func ruleKey(r AllowRule) string {
	return "allowlist[" + strconv.Itoa(r.Index) + "]"
}

func isLocalOnly(a netip.Addr) bool {
	return a.IsLoopback() || a.IsUnspecified()
}

// codeIdentity is what the browser classifier and the allowlist judge: the
// code signature when known (macOS), the executable otherwise.
func (d *Detector) codeIdentity(self *proc, p *attribution.Process) attribution.CodeIdentity {
	id := p.CodeIdentity()
	if self.exec != nil {
		var resp *attribution.ProcessEvent
		if rp := d.h.find(self.exec.ResponsiblePID, self.exec.ResponsiblePIDVersion, time.Time{}, self.exec.Time); rp != nil && rp.exec != nil {
			resp = rp.exec
		} else if self.exec.ResponsiblePID == self.exec.PID {
			resp = self.exec
		}
		eid := attribution.IdentityFromEvent(self.exec, resp)
		if id.SigningID == "" {
			id = eid
		} else {
			id.ResponsibleSigningID, id.ResponsibleTeamID, id.ResponsiblePlatformBinary =
				eid.ResponsibleSigningID, eid.ResponsibleTeamID, eid.ResponsiblePlatformBinary
		}
	}
	if id.Executable == "" {
		id.Executable = p.Executable
	}
	return id
}

// destination returns the name the upload went to (HTTP Host, else a DNS
// name seen for the address) and every name known for it.
func (d *Detector) destination(u *upload) (string, []string) {
	var hosts []string
	name := ""
	if h := hostOnly(u.Host); h != "" {
		if _, err := netip.ParseAddr(h); err != nil {
			name = strings.ToLower(h)
			hosts = append(hosts, name)
		}
	}
	if d.opt.Names != nil {
		for _, n := range d.opt.Names(u.Conn.Server.Addr()) {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if !contains(hosts, n) {
				hosts = append(hosts, n)
			}
		}
	}
	if name == "" && len(hosts) > 0 {
		name = hosts[0]
	}
	return name, hosts
}

// confirmedNames are the names DNS answers in the stream gave for the
// address. The allowlist matches host globs against these only: an HTTP
// Host header is whatever the client wrote, so trusting it would let any
// upload claim an allowlisted destination.
func (d *Detector) confirmedNames(a netip.Addr) []string {
	if d.opt.Names == nil {
		return nil
	}
	var out []string
	for _, n := range d.opt.Names(a) {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	return out
}

// hostOnly strips the port (and IPv6 brackets) from a Host header.
func hostOnly(h string) string {
	h = strings.TrimSpace(h)
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		return h[:i]
	}
	return h
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// relatives returns the uploader and its close lineage: its parent, its
// children, and its siblings in the same process group (a shell pipeline:
// `tar … | curl -T - …`).
func (d *Detector) relatives(self *proc, r *attribution.Result, u *upload) []related {
	out := []related{{self, RelSelf}}
	seen := map[*proc]bool{self: true}
	add := func(c *proc, rel string) {
		if c != nil && !seen[c] {
			seen[c] = true
			out = append(out, related{c, rel})
		}
	}
	ppid := self.ppid()
	if len(r.Lineage) > 0 && r.Lineage[0] != nil {
		par := r.Lineage[0]
		ppid = par.PID
		add(d.h.find(par.PID, par.PIDVersion, par.StartTime, u.Start), RelParent)
	} else if ppid > 1 {
		add(d.h.find(ppid, 0, time.Time{}, u.Start), RelParent)
	}
	pgid := self.pgid()
	if pgid == 0 && r.Process != nil {
		pgid = r.Process.PGID
	}
	from := u.Start.Add(-d.opt.Window)
	d.h.all(func(c *proc) {
		if seen[c] || !c.activeBetween(from, u.End) {
			return
		}
		cp := c.ppid()
		switch {
		case cp == self.pid && cp != 0 && (self.start.IsZero() || c.start.IsZero() || !c.start.Before(self.start.Add(-startTolerance))):
			add(c, RelChild)
		case ppid > 1 && cp == ppid && c.pid != self.pid:
			cg := c.pgid()
			if pgid == 0 || cg == 0 || cg == pgid {
				add(c, RelSibling)
			}
		}
	})
	return out
}

// activeBetween: the process may have run during [from, to].
func (c *proc) activeBetween(from, to time.Time) bool {
	if s := c.seenOrStart(); !s.IsZero() && s.After(to.Add(readSlack)) {
		return false
	}
	return c.exited.IsZero() || !c.exited.Before(from)
}

// qualifying returns the sensitive reads by the related processes within
// the window before the upload (or during it), one per (process, path):
// the latest.
func (d *Detector) qualifying(rel []related, u *upload) []File {
	from, to := u.Start.Add(-d.opt.Window), u.End.Add(readSlack)
	var out []File
	idx := map[string]int{}
	for _, rc := range rel {
		for _, rd := range rc.c.reads {
			if rd.Time.Before(from) || rd.Time.After(to) {
				continue
			}
			k := strconv.Itoa(int(rc.c.pid)) + "\x00" + rd.Path
			f := File{Path: rd.Path, Class: rd.Class, Time: rd.Time, Access: rd.Access.String(), Size: rd.Size,
				SHA256: rd.SHA256, Hashed: rd.Hashed, PID: rc.c.pid, Relation: rc.rel, Source: rd.Source}
			if rc.c.p != nil {
				f.ProcessName, f.Executable = rc.c.p.Name, rc.c.p.Executable
			}
			if i, ok := idx[k]; ok {
				if !rd.Time.Before(out[i].Time) {
					out[i] = f
				}
				continue
			}
			idx[k] = len(out)
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// destMemory remembers which destinations each process identity uploaded
// to, to tell a new destination: bounded, least recently used forgotten.
type destMemory struct {
	idx   map[string]*list.Element
	lru   *list.List // of string keys, most recent at the front
	max   int
	stats *Stats
}

func newDestMemory(max int, st *Stats) *destMemory {
	return &destMemory{idx: map[string]*list.Element{}, lru: list.New(), max: max, stats: st}
}

// observe records (identity, destination) and reports whether it is new.
func (m *destMemory) observe(identity, dest string) bool {
	k := identity + "\x00" + dest
	if e, ok := m.idx[k]; ok {
		m.lru.MoveToFront(e)
		return false
	}
	m.idx[k] = m.lru.PushFront(k)
	if m.lru.Len() > m.max {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.idx, old.Value.(string))
		m.stats.DestsEvicted++
	}
	return true
}
