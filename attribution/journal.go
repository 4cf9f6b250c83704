package attribution

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"
)

// The host journal: what the host side observed during a live run, written
// beside the packet capture by `run --record DIR` so that `replay DIR`
// reproduces the same attributed events offline. One JSON object per line;
// docs/journal.md documents the record types. A reader skips record types
// it does not know, and fields are only ever added, so the version stays 1
// while a journal written by a newer exfilwatch still reads here.

// JournalVersion is written in the header record.
const JournalVersion = 1

// Journal record types.
const (
	RecHeader      = "header"
	RecAttribution = "attribution"
	RecFileAccess  = "file_access"
	RecProcess     = "process"
)

// JournalRecord is one line of the journal.
type JournalRecord struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// header
	Version int    `json:"version,omitempty"`
	Host    string `json:"host,omitempty"`
	// OS is runtime.GOOS of the recording host ("linux", "darwin"); ""
	// in journals written before it was recorded.
	OS        string   `json:"os,omitempty"`
	Interface string   `json:"interface,omitempty"`
	LocalNets []string `json:"local_nets,omitempty"`
	// attribution
	Flow   *JournalFlow   `json:"flow,omitempty"`
	Result *JournalResult `json:"result,omitempty"`
	// file_access
	File *JournalFileAccess `json:"file,omitempty"`
	// process
	Event *JournalProcessEvent `json:"event,omitempty"`
}

// JournalFileAccess is a FileAccess as written in the journal, with the
// process as it was described when the access was seen.
type JournalFileAccess struct {
	PID        int32  `json:"pid"`
	PIDVersion int32  `json:"pidversion,omitempty"`
	Path       string `json:"path"`
	DestPath   string `json:"dest_path,omitempty"`
	Access     string `json:"access"`
	Modified   bool   `json:"modified,omitempty"`
	Result     int    `json:"result,omitempty"`
	Source     string `json:"source"`
	// Size is FileAccess.Size, SHA256 its hash in lower-case hex, present
	// only when the file was hashed.
	Size    int64    `json:"size,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Process *Process `json:"process,omitempty"`
}

// FileAccess returns the record as a FileAccess at time t (the record's
// time). A bad access name or hash is an error: the journal is the
// sensor's own output.
func (f *JournalFileAccess) FileAccess(t time.Time) (FileAccess, error) {
	k, ok := ParseAccessKind(f.Access)
	if !ok {
		return FileAccess{}, fmt.Errorf("file_access %s: unknown access %q", f.Path, f.Access)
	}
	fa := FileAccess{Time: t, PID: f.PID, PIDVersion: f.PIDVersion, Path: f.Path, DestPath: f.DestPath,
		Access: k, Modified: f.Modified, Result: f.Result, Source: f.Source, Size: f.Size}
	if f.SHA256 != "" {
		if len(f.SHA256) != 2*len(fa.SHA256) {
			return FileAccess{}, fmt.Errorf("file_access %s: sha256 %q is not 64 hex digits", f.Path, f.SHA256)
		}
		if _, err := hex.Decode(fa.SHA256[:], []byte(f.SHA256)); err != nil {
			return FileAccess{}, fmt.Errorf("file_access %s: sha256: %w", f.Path, err)
		}
		fa.Hashed = true
	}
	return fa, nil
}

// JournalProcessEvent is a ProcessEvent as written in the journal (the
// record's time is the event's).
type JournalProcessEvent struct {
	Kind                  string   `json:"kind"`
	PID                   int32    `json:"pid"`
	PPID                  int32    `json:"ppid,omitempty"`
	PIDVersion            int32    `json:"pidversion,omitempty"`
	PrevPIDVersion        int32    `json:"prev_pidversion,omitempty"`
	Process               *Process `json:"process,omitempty"`
	SigningID             string   `json:"signing_id,omitempty"`
	TeamID                string   `json:"team_id,omitempty"`
	PlatformBinary        bool     `json:"platform_binary,omitempty"`
	CodesigningFlags      uint32   `json:"codesigning_flags,omitempty"`
	Script                string   `json:"script,omitempty"`
	ResponsiblePID        int32    `json:"responsible_pid,omitempty"`
	ResponsiblePIDVersion int32    `json:"responsible_pidversion,omitempty"`
	ExitStatus            int      `json:"exit_status,omitempty"`
	ChildPID              int32    `json:"child_pid,omitempty"`
	ChildPIDVersion       int32    `json:"child_pidversion,omitempty"`
	Source                string   `json:"source,omitempty"`
}

func toJournalProcess(ev *ProcessEvent) *JournalProcessEvent {
	return &JournalProcessEvent{Kind: ev.Kind, PID: ev.PID, PPID: ev.PPID, PIDVersion: ev.PIDVersion,
		PrevPIDVersion: ev.PrevPIDVersion, Process: ev.Process, SigningID: ev.SigningID, TeamID: ev.TeamID,
		PlatformBinary: ev.PlatformBinary, CodesigningFlags: ev.CodesigningFlags, Script: ev.Script,
		ResponsiblePID: ev.ResponsiblePID, ResponsiblePIDVersion: ev.ResponsiblePIDVersion,
		ExitStatus: ev.ExitStatus, ChildPID: ev.ChildPID, ChildPIDVersion: ev.ChildPIDVersion, Source: ev.Source}
}

// ProcessEvent returns the record as a ProcessEvent at time t.
func (e *JournalProcessEvent) ProcessEvent(t time.Time) ProcessEvent {
	return ProcessEvent{Time: t, Kind: e.Kind, PID: e.PID, PPID: e.PPID, PIDVersion: e.PIDVersion,
		PrevPIDVersion: e.PrevPIDVersion, Process: e.Process, SigningID: e.SigningID, TeamID: e.TeamID,
		PlatformBinary: e.PlatformBinary, CodesigningFlags: e.CodesigningFlags, Script: e.Script,
		ResponsiblePID: e.ResponsiblePID, ResponsiblePIDVersion: e.ResponsiblePIDVersion,
		ExitStatus: e.ExitStatus, ChildPID: e.ChildPID, ChildPIDVersion: e.ChildPIDVersion, Source: e.Source}
}

// JournalFlow identifies the flow a lookup was for.
type JournalFlow struct {
	ID     uint64    `json:"id"`
	Proto  uint8     `json:"proto"`
	Client string    `json:"client"`
	Server string    `json:"server"`
	Start  time.Time `json:"start"`
}

// JournalResult is a Result as written in the journal.
type JournalResult struct {
	Method   string     `json:"method,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	DelayUS  int64      `json:"delay_us"`
	Attempts int        `json:"attempts,omitempty"`
	PID      int32      `json:"pid,omitempty"`
	Name     string     `json:"name,omitempty"`
	Process  *Process   `json:"process,omitempty"`
	Lineage  []*Process `json:"lineage,omitempty"`
	Detail   string     `json:"detail,omitempty"`
}

func toJournal(r Result) *JournalResult {
	return &JournalResult{Method: r.Method, Reason: r.Reason, DelayUS: r.Delay.Microseconds(), Attempts: r.Attempts,
		PID: r.PID, Name: r.Name, Process: r.Process, Lineage: r.Lineage, Detail: r.Detail}
}

func (j *JournalResult) result() Result {
	return Result{Method: j.Method, Reason: j.Reason, Delay: time.Duration(j.DelayUS) * time.Microsecond, Attempts: j.Attempts,
		PID: j.PID, Name: j.Name, Process: j.Process, Lineage: j.Lineage, Detail: j.Detail}
}

// JournalWriter appends records; it is safe for concurrent use (the
// resolver's workers write answers as they come).
type JournalWriter struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

// CreateJournal creates (truncates) a journal file, mode 0600: it names
// processes and their arguments. header.OS defaults to runtime.GOOS.
func CreateJournal(path string, header JournalRecord) (*JournalWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	j := &JournalWriter{f: f, w: bufio.NewWriter(f)}
	header.Type, header.Version = RecHeader, JournalVersion
	if header.OS == "" {
		header.OS = runtime.GOOS
	}
	j.write(&header)
	return j, j.err
}

func (j *JournalWriter) write(r *JournalRecord) {
	b, err := json.Marshal(r)
	if err == nil {
		b = append(b, '\n')
		_, err = j.w.Write(b)
	}
	if err != nil && j.err == nil {
		j.err = fmt.Errorf("write journal: %w", err)
	}
}

// Attribution records the answer for one flow.
func (j *JournalWriter) Attribution(q Request, r Result, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.write(&JournalRecord{Type: RecAttribution, Time: at.UTC(), Flow: &JournalFlow{ID: q.ID, Proto: q.Proto,
		Client: q.Client.String(), Server: q.Server.String(), Start: q.Start.UTC()}, Result: toJournal(r)})
}

// FileAccess records one file access and the process that made it (nil
// when it could not be described).
func (j *JournalWriter) FileAccess(fa FileAccess, p *Process) {
	rec := &JournalFileAccess{PID: fa.PID, PIDVersion: fa.PIDVersion, Path: fa.Path, DestPath: fa.DestPath,
		Access: fa.Access.String(), Modified: fa.Modified, Result: fa.Result, Source: fa.Source, Size: fa.Size, Process: p}
	if fa.Hashed {
		rec.SHA256 = hex.EncodeToString(fa.SHA256[:])
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.write(&JournalRecord{Type: RecFileAccess, Time: fa.Time.UTC(), File: rec})
}

// ProcessEvent records a process exec, fork or exit (eslogger on macOS).
func (j *JournalWriter) ProcessEvent(ev ProcessEvent) {
	rec := &JournalRecord{Type: RecProcess, Time: ev.Time.UTC(), Event: toJournalProcess(&ev)}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.write(rec)
}

// Flush writes buffered records to the file.
func (j *JournalWriter) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); err != nil && j.err == nil {
		j.err = err
	}
	return j.err
}

// Close flushes and closes the file.
func (j *JournalWriter) Close() error {
	err := j.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxJournalLine bounds one record: a process with enormous arguments is
// still one line, but a damaged file cannot make the reader hold gigabytes.
const maxJournalLine = 4 << 20

// Journal is a journal read back for replay.
type Journal struct {
	Header JournalRecord
	byFlow map[journalKey][]JournalRecord
	// Files are the file-access records, in order.
	Files []JournalRecord
	// Processes are the process records (exec, fork, exit), in order.
	Processes []ProcessEvent
	Skipped   int // lines of unknown type (records added by later versions)
}

type journalKey struct {
	proto          uint8
	client, server netip.AddrPort
}

// ReadJournal reads a journal. A malformed line is an error naming the line:
// a journal is written by the sensor itself, so damage is worth saying.
func ReadJournal(path string) (*Journal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	return readJournal(f, path)
}

func readJournal(r io.Reader, name string) (*Journal, error) {
	j := &Journal{byFlow: map[journalKey][]JournalRecord{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxJournalLine)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec JournalRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		switch rec.Type {
		case RecHeader:
			if rec.Version > JournalVersion {
				return nil, fmt.Errorf("%s: journal version %d is newer than this exfilwatch (%d)", name, rec.Version, JournalVersion)
			}
			j.Header = rec
		case RecAttribution:
			if rec.Flow == nil || rec.Result == nil {
				return nil, fmt.Errorf("%s line %d: attribution record without flow or result", name, line)
			}
			c, err1 := netip.ParseAddrPort(rec.Flow.Client)
			s, err2 := netip.ParseAddrPort(rec.Flow.Server)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s line %d: bad flow endpoints %q %q", name, line, rec.Flow.Client, rec.Flow.Server)
			}
			k := journalKey{rec.Flow.Proto, c, s}
			j.byFlow[k] = append(j.byFlow[k], rec)
		case RecFileAccess:
			if rec.File == nil || rec.File.Path == "" {
				return nil, fmt.Errorf("%s line %d: file_access record without a path", name, line)
			}
			// A malformed hash is damage; an access name this version does
			// not know may come from a newer one, and FileAccess reports it
			// to whoever converts the record.
			if h := rec.File.SHA256; h != "" {
				if _, err := hex.DecodeString(h); err != nil || len(h) != 64 {
					return nil, fmt.Errorf("%s line %d: file_access sha256 %q is not 64 hex digits", name, line, h)
				}
			}
			j.Files = append(j.Files, rec)
		case RecProcess:
			if rec.Event == nil || rec.Event.Kind == "" {
				return nil, fmt.Errorf("%s line %d: process record without an event kind", name, line)
			}
			j.Processes = append(j.Processes, rec.Event.ProcessEvent(rec.Time))
		default:
			j.Skipped++
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s line %d: record longer than %d bytes", name, line+1, maxJournalLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if j.Header.Type == "" {
		return nil, fmt.Errorf("%s: no header record: not an exfilwatch journal", name)
	}
	return j, nil
}

// journalTolerance is how far a replayed flow's first packet may be from
// the recorded one: the same packets, so the same time, give or take clock
// rounding in the capture file.
const journalTolerance = time.Second

// Attributor answers lookups from the journal: the recorded answer for the
// same 5-tuple whose flow started closest in time (ports are reused, so a
// 5-tuple alone is not enough).
func (j *Journal) Attributor() *JournalAttributor {
	return &JournalAttributor{j: j, answers: map[uint64]*Result{}}
}

// JournalAttributor implements the sensor's Attributor in replay.
type JournalAttributor struct {
	j       *Journal
	answers map[uint64]*Result
	Missing int // flows the journal has no record for
}

// Begin finds the recorded answer for a flow.
func (a *JournalAttributor) Begin(q Request) {
	recs := a.j.byFlow[journalKey{q.Proto, q.Client, q.Server}]
	if len(recs) == 0 { // the roles may have been corrected from content after the lookup
		recs = a.j.byFlow[journalKey{q.Proto, q.Server, q.Client}]
	}
	var best *JournalRecord
	var bestD time.Duration
	for i := range recs {
		d := recs[i].Flow.Start.Sub(q.Start)
		if d < 0 {
			d = -d
		}
		if d <= journalTolerance && (best == nil || d < bestD) {
			best, bestD = &recs[i], d
		}
	}
	if best == nil {
		a.Missing++
		return
	}
	res := best.Result.result()
	a.answers[q.ID] = &res
}

// Result returns the recorded answer, or nil when the journal had none.
func (a *JournalAttributor) Result(id uint64, _ time.Duration) *Result { return a.answers[id] }

// Peek returns the recorded answer; the journal is always ready.
func (a *JournalAttributor) Peek(id uint64) (*Result, bool) { return a.answers[id], true }

// Forget drops a flow's answer.
func (a *JournalAttributor) Forget(id uint64) { delete(a.answers, id) }
