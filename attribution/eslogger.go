package attribution

// Parser of eslogger(1) JSON Lines (macOS 13+), as described in
// shared/reference/macos-formats.md section 2 and checked against real
// v9/v10/v11 output. eslogger is "NOT API": the parser takes only the
// fields it needs, ignores unknown ones, and accepts both audit_token
// forms (object in message versions 9 and 11, 8-int array in 10).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"
)

// MaxEsloggerLine bounds one eslogger line; longer lines are rejected
// (exec lines with their env and entitlements are a few KiB).
const MaxEsloggerLine = 1 << 20

// FFLAGS bits of es_event_open_t.fflag (xnu bsd/sys/fcntl.h).
const (
	esFREAD  = 0x1
	esFWRITE = 0x2
)

// EsloggerParser turns eslogger JSON lines into *FileAccess and
// *ProcessEvent records and counts the events the kernel dropped. It is
// not safe for concurrent use. The zero value is ready.
type EsloggerParser struct {
	// MachTimeToWall, when set, converts mach_time to wall time for lines
	// without a usable "time" field (eslogger always writes "time", so
	// this is a fallback). Without it such records have a zero Time.
	MachTimeToWall func(machTime uint64) time.Time

	lastSeq    map[string]uint64 // per event short name
	lastGlobal uint64
	haveGlobal bool
	gapEvents  uint64
	gapGlobal  uint64
}

// Gaps returns how many events were lost: events is the sum of the gaps in
// seq_num (counted per event type), global the sum of the gaps in
// global_seq_num (all types). A sequence number that goes backwards
// (eslogger restarted) restarts the count without a gap.
func (p *EsloggerParser) Gaps() (events, global uint64) {
	return p.gapEvents, p.gapGlobal
}

// esAuditToken is an audit_token_t, decoded from either JSON form.
type esAuditToken struct {
	AUID, EUID, EGID, RUID, RGID, ASID uint32
	PID, PIDVersion                    int32
}

func (t *esAuditToken) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var v []int64
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("audit_token array: %w", err)
		}
		if len(v) != 8 {
			return fmt.Errorf("audit_token array has %d values, want 8", len(v))
		}
		// audit_token_t.val[0..7]: auid, euid, egid, ruid, rgid, pid, asid, pidversion.
		u := make([]uint32, 8)
		for i, x := range v {
			if x < 0 || x > 0xffffffff {
				return fmt.Errorf("audit_token value %d out of range", x)
			}
			u[i] = uint32(x)
		}
		if v[5] > 0x7fffffff || v[7] > 0x7fffffff {
			return errors.New("audit_token pid or pidversion out of range")
		}
		*t = esAuditToken{AUID: u[0], EUID: u[1], EGID: u[2], RUID: u[3], RGID: u[4],
			PID: int32(v[5]), ASID: u[6], PIDVersion: int32(v[7])}
		return nil
	}
	var o struct {
		AUID, EUID, EGID, RUID, RGID, ASID uint32
		PID                                *int32 `json:"pid"`
		PIDVersion                         *int32 `json:"pidversion"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("audit_token: %w", err)
	}
	if o.PID == nil || o.PIDVersion == nil {
		return errors.New("audit_token without pid or pidversion")
	}
	*t = esAuditToken{AUID: o.AUID, EUID: o.EUID, EGID: o.EGID, RUID: o.RUID, RGID: o.RGID,
		ASID: o.ASID, PID: *o.PID, PIDVersion: *o.PIDVersion}
	return nil
}

// esFile is an es_file_t.
type esFile struct {
	Path          *string `json:"path"`
	PathTruncated bool    `json:"path_truncated"`
	Stat          *struct {
		Size *int64 `json:"st_size"`
	} `json:"stat"`
}

// size is the file's st_size when eslogger gave it (0 otherwise).
func (f *esFile) size() int64 {
	if f == nil || f.Stat == nil || f.Stat.Size == nil || *f.Stat.Size < 0 {
		return 0
	}
	return *f.Stat.Size
}

func (f *esFile) path(what string) (string, error) {
	if f == nil || f.Path == nil {
		return "", fmt.Errorf("%s: missing file path", what)
	}
	return *f.Path, nil
}

// esProcess is an es_process_t.
type esProcess struct {
	AuditToken            *esAuditToken `json:"audit_token"`
	ResponsibleAuditToken *esAuditToken `json:"responsible_audit_token"`
	PPID                  int32         `json:"ppid"`
	GroupID               *int32        `json:"group_id"`
	SessionID             *int32        `json:"session_id"`
	CodesigningFlags      *uint32       `json:"codesigning_flags"`
	IsPlatformBinary      bool          `json:"is_platform_binary"`
	SigningID             *string       `json:"signing_id"`
	TeamID                *string       `json:"team_id"`
	Executable            *esFile       `json:"executable"`
	StartTime             string        `json:"start_time"`
}

func (pr *esProcess) token(what string) (*esAuditToken, error) {
	if pr == nil {
		return nil, fmt.Errorf("missing %s", what)
	}
	if pr.AuditToken == nil {
		return nil, fmt.Errorf("%s: missing audit_token", what)
	}
	return pr.AuditToken, nil
}

type esEnvelope struct {
	Version      int                        `json:"version"`
	Time         *string                    `json:"time"`
	MachTime     uint64                     `json:"mach_time"`
	SeqNum       *uint64                    `json:"seq_num"`
	GlobalSeqNum *uint64                    `json:"global_seq_num"`
	EventType    *int                       `json:"event_type"`
	Process      *esProcess                 `json:"process"`
	Event        map[string]json.RawMessage `json:"event"`
	Action       *struct {
		Result *struct {
			ResultType int `json:"result_type"`
			Result     *struct {
				Auth int `json:"auth"`
			} `json:"result"`
		} `json:"result"`
	} `json:"action"`
}

type esOpen struct {
	FFlag *int64  `json:"fflag"`
	File  *esFile `json:"file"`
}

type esClose struct {
	Modified bool    `json:"modified"`
	Target   *esFile `json:"target"`
}

type esDestination struct {
	ExistingFile *esFile `json:"existing_file"`
	NewPath      *struct {
		Dir      *esFile `json:"dir"`
		Filename *string `json:"filename"`
	} `json:"new_path"`
}

type esRename struct {
	Source          *esFile        `json:"source"`
	DestinationType *int           `json:"destination_type"`
	Destination     *esDestination `json:"destination"`
}

type esExec struct {
	Target *esProcess `json:"target"`
	Args   []string   `json:"args"`
	CWD    *esFile    `json:"cwd"`
	Script *esFile    `json:"script"`
}

type esFork struct {
	Child *esProcess `json:"child"`
}

type esExit struct {
	Stat *int `json:"stat"`
}

// ParseLine parses one eslogger JSON line. It returns a *FileAccess (open,
// close, rename), a *ProcessEvent (exec, fork, exit), nil for other events
// and blank lines, or an error for a line that is not a well-formed event
// (the caller counts and skips it). Sequence numbers of every well-formed
// event feed Gaps.
func (p *EsloggerParser) ParseLine(line []byte) (rec any, err error) {
	if len(line) > MaxEsloggerLine {
		return nil, fmt.Errorf("eslogger: line of %d bytes exceeds %d", len(line), MaxEsloggerLine)
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, nil
	}
	var env esEnvelope
	if err := json.Unmarshal(line, &env); err != nil {
		return nil, fmt.Errorf("eslogger: %w", err)
	}
	if len(env.Event) != 1 {
		return nil, fmt.Errorf("eslogger: event has %d keys, want 1", len(env.Event))
	}
	var name string
	var body json.RawMessage
	for k, v := range env.Event {
		name, body = k, v
	}
	tok, err := env.Process.token("process")
	if err != nil {
		return nil, fmt.Errorf("eslogger %s: %w", name, err)
	}
	t, err := p.time(&env)
	if err != nil {
		return nil, fmt.Errorf("eslogger %s: %w", name, err)
	}
	rec, err = p.event(name, body, &env, tok, t)
	if err != nil {
		return nil, fmt.Errorf("eslogger %s: %w", name, err)
	}
	p.sequence(name, &env)
	return rec, nil
}

// time returns the event time: "time" (RFC 3339, nanoseconds), else
// mach_time through MachTimeToWall, else zero.
func (p *EsloggerParser) time(env *esEnvelope) (time.Time, error) {
	if env.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *env.Time)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad time %q", *env.Time)
		}
		return t, nil
	}
	if env.MachTime != 0 && p.MachTimeToWall != nil {
		return p.MachTimeToWall(env.MachTime), nil
	}
	return time.Time{}, nil
}

func (p *EsloggerParser) sequence(name string, env *esEnvelope) {
	if env.SeqNum != nil {
		if p.lastSeq == nil {
			p.lastSeq = make(map[string]uint64)
		}
		cur := *env.SeqNum
		if prev, ok := p.lastSeq[name]; ok && cur > prev+1 {
			p.gapEvents += cur - prev - 1
		}
		p.lastSeq[name] = cur
	}
	if env.GlobalSeqNum != nil {
		cur := *env.GlobalSeqNum
		if p.haveGlobal && cur > p.lastGlobal+1 {
			p.gapGlobal += cur - p.lastGlobal - 1
		}
		p.lastGlobal, p.haveGlobal = cur, true
	}
}

func (p *EsloggerParser) event(name string, body json.RawMessage, env *esEnvelope, tok *esAuditToken, t time.Time) (any, error) {
	fa := func(path string, k AccessKind) *FileAccess {
		r := &FileAccess{Time: t, PID: tok.PID, PIDVersion: tok.PIDVersion,
			Path: path, Access: k, Source: SourceEslogger}
		// The envelope describes the process that made the access; the
		// detector needs its parent, group and signature for lineage.
		if env.Process != nil {
			if pe, err := processEvent("", t, env.Process, tok); err == nil {
				r.Process = pe.Process
			}
		}
		if a := env.Action; a != nil && a.Result != nil && a.Result.ResultType == 0 && a.Result.Result != nil {
			r.Result = a.Result.Result.Auth
		}
		return r
	}
	switch name {
	case "open":
		var e esOpen
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		if e.FFlag == nil {
			return nil, errors.New("missing fflag")
		}
		pth, err := e.File.path("file")
		if err != nil {
			return nil, err
		}
		var k AccessKind
		switch *e.FFlag & (esFREAD | esFWRITE) {
		case esFREAD:
			k = AccessRead
		case esFWRITE:
			k = AccessWrite
		case esFREAD | esFWRITE:
			k = AccessReadWrite
		default:
			// Neither FREAD nor FWRITE (O_EVTONLY, a stat-like open).
			k = AccessUnknown
		}
		r := fa(pth, k)
		r.Size = e.File.size()
		return r, nil
	case "close":
		var e esClose
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		pth, err := e.Target.path("target")
		if err != nil {
			return nil, err
		}
		r := fa(pth, AccessClose)
		r.Modified = e.Modified
		return r, nil
	case "rename":
		var e esRename
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		src, err := e.Source.path("source")
		if err != nil {
			return nil, err
		}
		dst, err := e.Destination.path(e.DestinationType)
		if err != nil {
			return nil, err
		}
		r := fa(src, AccessRenameSource)
		r.DestPath = dst
		return r, nil
	case "exec":
		var e esExec
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		ttok, err := e.Target.token("target")
		if err != nil {
			return nil, err
		}
		ev, err := processEvent(ProcExec, t, e.Target, ttok)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		ev.PrevPIDVersion = tok.PIDVersion
		ev.Process.Args = e.Args
		if e.CWD != nil && e.CWD.Path != nil {
			ev.Process.CWD = *e.CWD.Path
		}
		if e.Script != nil && e.Script.Path != nil {
			ev.Script = *e.Script.Path
		}
		return ev, nil
	case "fork":
		var e esFork
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		ctok, err := e.Child.token("child")
		if err != nil {
			return nil, err
		}
		ev, err := processEvent(ProcFork, t, e.Child, ctok)
		if err != nil {
			return nil, fmt.Errorf("child: %w", err)
		}
		ev.ChildPID, ev.ChildPIDVersion = ctok.PID, ctok.PIDVersion
		ev.PID, ev.PIDVersion, ev.PPID = tok.PID, tok.PIDVersion, env.Process.PPID
		return ev, nil
	case "exit":
		var e esExit
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		if e.Stat == nil {
			return nil, errors.New("missing stat")
		}
		ev, err := processEvent(ProcExit, t, env.Process, tok)
		if err != nil {
			return nil, fmt.Errorf("process: %w", err)
		}
		ev.ExitStatus = *e.Stat
		return ev, nil
	}
	// Other events (create, write, unlink…): the body must still be JSON
	// (checked by the envelope decoder); nothing to report yet.
	return nil, nil
}

// path returns the rename destination: {"existing_file": file} or
// {"new_path": {"dir": file, "filename": name}}, chosen by
// destination_type (0 existing file, 1 new path) or, when absent, by the
// key present.
func (d *esDestination) path(typ *int) (string, error) {
	if d == nil {
		return "", errors.New("missing destination")
	}
	useNew := d.ExistingFile == nil
	if typ != nil {
		switch *typ {
		case 0:
			useNew = false
		case 1:
			useNew = true
		default:
			return "", fmt.Errorf("unknown destination_type %d", *typ)
		}
	}
	if !useNew {
		return d.ExistingFile.path("destination.existing_file")
	}
	if d.NewPath == nil {
		return "", errors.New("missing destination.new_path")
	}
	dir, err := d.NewPath.Dir.path("destination.new_path.dir")
	if err != nil {
		return "", err
	}
	if d.NewPath.Filename == nil {
		return "", errors.New("missing destination.new_path.filename")
	}
	return path.Join(dir, *d.NewPath.Filename), nil
}

// processEvent fills the fields that describe pr.
func processEvent(kind string, t time.Time, pr *esProcess, tok *esAuditToken) (*ProcessEvent, error) {
	exe, err := pr.Executable.path("executable")
	if err != nil {
		return nil, err
	}
	proc := &Process{PID: tok.PID, PPID: pr.PPID, Executable: exe, UID: tok.EUID, PIDVersion: tok.PIDVersion}
	if pr.GroupID != nil {
		proc.PGID = *pr.GroupID
	}
	if pr.SessionID != nil {
		proc.SessionLeader = *pr.SessionID
	}
	if exe != "" {
		proc.Name = path.Base(exe)
	}
	if pr.StartTime != "" {
		st, err := time.Parse(time.RFC3339Nano, pr.StartTime)
		if err != nil {
			return nil, fmt.Errorf("bad start_time %q", pr.StartTime)
		}
		proc.StartTime = st
	}
	ev := &ProcessEvent{Time: t, Kind: kind, PID: tok.PID, PPID: pr.PPID,
		PIDVersion: tok.PIDVersion, Process: proc, PlatformBinary: pr.IsPlatformBinary,
		Source: SourceEslogger}
	if pr.CodesigningFlags != nil {
		ev.CodesigningFlags = *pr.CodesigningFlags
	}
	if pr.SigningID != nil {
		ev.SigningID = *pr.SigningID
	}
	if pr.TeamID != nil {
		ev.TeamID = *pr.TeamID
	}
	// A line without any signing field says nothing of the signature:
	// leave Code nil (unknown) rather than claim an invalid one.
	if pr.CodesigningFlags != nil || pr.SigningID != nil || pr.TeamID != nil || pr.IsPlatformBinary {
		proc.Code = NewCodeSignature(ev.SigningID, ev.TeamID, ev.CodesigningFlags, pr.IsPlatformBinary)
	}
	if r := pr.ResponsibleAuditToken; r != nil {
		ev.ResponsiblePID, ev.ResponsiblePIDVersion = r.PID, r.PIDVersion
	}
	return ev, nil
}
