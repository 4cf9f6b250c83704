package evidence

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rs/zerolog"

	"exfilwatch/attribution"
	"exfilwatch/sensor/detect"
)

// write puts j's evidence in its directory: written under a temporary name
// and renamed, so a directory named by a finding id is always complete.
func (s *Store) write(j *job) {
	id := j.f.ID
	log := s.opt.Log.With().Str("finding", id).Logger()
	if !validID(id) {
		s.failed(log, fmt.Errorf("finding id %q is not a directory name", id))
		return
	}
	tmp := filepath.Join(s.opt.Dir, tmpPrefix+id)
	final := filepath.Join(s.opt.Dir, id)
	os.RemoveAll(tmp)
	size, missing, err := s.writeDir(tmp, j)
	if err == nil {
		// The same upload replayed again has the same id: the new evidence
		// replaces the old.
		if _, serr := os.Lstat(final); serr == nil {
			err = os.RemoveAll(final)
			s.forget(id)
		}
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.RemoveAll(tmp)
		s.failed(log, err)
		return
	}
	s.dirs = append(s.dirs, dirEntry{name: id, bytes: size, mod: time.Now()})
	s.mu.Lock()
	s.st.FindingsWritten++
	s.st.FlowsMissing += uint64(missing)
	s.syncDirStats()
	s.mu.Unlock()
	if missing > 0 {
		log.Warn().Int("flows_without_packets", missing).Msg("evidence written without some of the finding's packets (evicted or never seen)")
	}
	s.enforceDirBounds()
}

func (s *Store) failed(log zerolog.Logger, err error) {
	s.mu.Lock()
	s.st.FindingsFailed++
	s.mu.Unlock()
	log.Error().Err(err).Msg("evidence not written")
}

func (s *Store) forget(name string) {
	for i, d := range s.dirs {
		if d.name == name {
			s.dirs = append(s.dirs[:i], s.dirs[i+1:]...)
			return
		}
	}
}

// syncDirStats copies the writer's index into the counters (s.mu held).
func (s *Store) syncDirStats() {
	s.st.Dirs = len(s.dirs)
	s.st.DirBytes = 0
	for _, d := range s.dirs {
		s.st.DirBytes += d.bytes
	}
}

// enforceDirBounds removes the oldest finding directories past MaxFindings
// or MaxDirBytes, keeping the newest.
func (s *Store) enforceDirBounds() {
	var total int64
	for _, d := range s.dirs {
		total += d.bytes
	}
	for len(s.dirs) > 1 && (len(s.dirs) > s.opt.MaxFindings || total > s.opt.MaxDirBytes) {
		d := s.dirs[0]
		reason := "max_findings"
		if len(s.dirs) <= s.opt.MaxFindings {
			reason = "max_dir_bytes"
		}
		if err := os.RemoveAll(filepath.Join(s.opt.Dir, d.name)); err != nil {
			s.opt.Log.Error().Err(err).Str("finding", d.name).Msg("evidence directory could not be evicted")
		} else {
			s.opt.Log.Info().Str("finding", d.name).Int64("bytes", d.bytes).Str("reason", reason).
				Msg("oldest evidence directory evicted")
		}
		s.dirs = s.dirs[1:]
		total -= d.bytes
		s.mu.Lock()
		s.st.DirsEvicted++
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.syncDirStats()
	s.mu.Unlock()
}

func (s *Store) writeDir(dir string, j *job) (size int64, missing int, err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, 0, err
	}
	for _, jf := range j.flows {
		if jf.snap.missing || len(jf.snap.pkts) == 0 {
			missing++
		}
	}
	n, err := writeFile(filepath.Join(dir, PacketsFile), func(w *bufio.Writer) error { return s.writePcap(w, j) })
	if err != nil {
		return 0, 0, err
	}
	size += n
	n, err = writeFile(filepath.Join(dir, HostFile), func(w *bufio.Writer) error { return writeJSON(w, hostDoc(j.f)) })
	if err != nil {
		return 0, 0, err
	}
	size += n
	n, err = writeFile(filepath.Join(dir, FindingFile), func(w *bufio.Writer) error { return writeJSON(w, json.RawMessage(j.f.JSON())) }) // encoded once per finding, only indented here
	if err != nil {
		return 0, 0, err
	}
	return size + n, missing, nil
}

// writeFile creates path (0600), fills it and syncs it: evidence should
// survive the sensor being killed right after.
func writeFile(path string, fill func(*bufio.Writer) error) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	var n int64
	if fi, serr := f.Stat(); serr == nil {
		n = fi.Size()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return n, nil
}

func writeJSON(w *bufio.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// writePcap writes the flows' packets merged back in capture order, with
// their original timestamps, lengths and link types: one interface block
// per (capture interface, link type). The first packet of each flow carries
// a comment saying what of the flow is missing, if anything.
func (s *Store) writePcap(bw *bufio.Writer, j *job) error {
	type ref struct {
		p       *pkt
		comment string
	}
	var all []ref
	for i := range j.flows {
		fp := &j.flows[i].snap
		for k := range fp.pkts {
			r := ref{p: &fp.pkts[k]}
			if k == 0 {
				r.comment = flowComment(fp)
			}
			all = append(all, r)
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].p.seq < all[b].p.seq })
	info := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS,
		Application: s.opt.Application, Comment: "exfilwatch evidence for finding " + j.f.ID}}
	ngIface := func(p *pkt) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: fmt.Sprintf("if%d", p.iface), LinkType: layers.LinkType(p.link),
			TimestampResolution: 9, OS: runtime.GOOS}
	}
	var w *pcapgo.NgWriter
	var err error
	ifaces := map[[2]int]int{}
	for _, r := range all {
		p := r.p
		key := [2]int{p.iface, int(p.link)}
		id, ok := ifaces[key]
		if !ok {
			if w == nil {
				w, err = pcapgo.NewNgWriterInterface(bw, ngIface(p), info)
				id = 0
			} else {
				id, err = w.AddInterface(ngIface(p))
			}
			if err != nil {
				return fmt.Errorf("pcapng: %w", err)
			}
			ifaces[key] = id
		}
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.wire, InterfaceIndex: id}
		var opts pcapgo.NgPacketOptions
		if r.comment != "" {
			opts.Comments = []string{r.comment}
		}
		if err := w.WritePacketWithOptions(ci, p.data, opts); err != nil {
			return fmt.Errorf("pcapng: %w", err)
		}
	}
	if w == nil { // no packet at all: still a valid, empty capture
		w, err = pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{Name: "none", LinkType: layers.LinkTypeEthernet,
			TimestampResolution: 9, OS: runtime.GOOS}, info)
		if err != nil {
			return fmt.Errorf("pcapng: %w", err)
		}
	}
	return w.Flush()
}

func flowComment(fp *flowPackets) string {
	c := fmt.Sprintf("exfilwatch flow %d: %d packets kept", fp.id, len(fp.pkts))
	if fp.partial {
		c += "; the flow's first packets were evicted (evidence memory bound)"
	}
	if fp.omitted > 0 {
		c += fmt.Sprintf("; %d packets (%d bytes) omitted between the flow's first and last kept packets", fp.omitted, fp.omitBytes)
	}
	return c
}

// host.json: the host records behind the finding.

type hostFile struct {
	Path         string               `json:"path"`
	Class        string               `json:"class"`
	Time         time.Time            `json:"time"`
	Access       string               `json:"access,omitempty"`
	Size         *int64               `json:"size,omitempty"`
	SHA256       string               `json:"sha256,omitempty"`
	ContentMatch bool                 `json:"content_match,omitempty"`
	Relation     string               `json:"relation"`
	Source       string               `json:"source,omitempty"`
	PID          int32                `json:"pid"`
	ProcessName  string               `json:"process_name,omitempty"`
	Executable   string               `json:"executable,omitempty"`
	Process      *attribution.Process `json:"process,omitempty"` // the reader, when it is the uploader or in its lineage
}

type hostScript struct {
	Interpreter string `json:"interpreter"`
	Path        string `json:"path,omitempty"`
	Inline      string `json:"inline,omitempty"`
	Module      string `json:"module,omitempty"`
}

type hostRecords struct {
	FindingID   string                     `json:"finding_id"`
	RuleID      string                     `json:"rule_id"`
	Platform    string                     `json:"platform,omitempty"`
	Attribution string                     `json:"attribution,omitempty"`
	Process     *attribution.Process       `json:"process,omitempty"`
	Parent      *attribution.Process       `json:"parent,omitempty"`
	Lineage     []*attribution.Process     `json:"lineage,omitempty"`
	Code        *attribution.CodeSignature `json:"code_signature,omitempty"`
	Script      *hostScript                `json:"script,omitempty"`
	Files       []hostFile                 `json:"files"`
	BytesRead   int64                      `json:"bytes_read"`
	FlowIDs     []uint64                   `json:"flow_ids"`
}

func hostDoc(f *detect.Finding) *hostRecords {
	d := &hostRecords{FindingID: f.ID, RuleID: f.RuleID, Platform: f.GOOS, Attribution: f.Attribution,
		Process: f.Process, Parent: f.Parent, Lineage: f.Lineage, Code: f.Code, BytesRead: f.BytesRead,
		FlowIDs: f.Upload.FlowIDs, Files: []hostFile{}}
	if sc := f.Script; sc != nil {
		d.Script = &hostScript{Interpreter: sc.Interpreter, Path: sc.Path, Inline: sc.Inline, Module: sc.Module}
	}
	known := append([]*attribution.Process{f.Process, f.Parent}, f.Lineage...)
	for _, fl := range f.Files {
		h := hostFile{Path: fl.Path, Class: fl.Class, Time: fl.Time.UTC(), Access: fl.Access, ContentMatch: fl.ContentMatch,
			Relation: fl.Relation, Source: fl.Source, PID: fl.PID, ProcessName: fl.ProcessName, Executable: fl.Executable}
		if fl.Size > 0 || fl.Hashed {
			sz := fl.Size
			h.Size = &sz
		}
		if fl.Hashed {
			h.SHA256 = hex.EncodeToString(fl.SHA256[:])
		}
		for _, p := range known {
			if p != nil && p.PID == fl.PID {
				h.Process = p
				break
			}
		}
		d.Files = append(d.Files, h)
	}
	return d
}
