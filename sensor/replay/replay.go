// Package replay drives the pipeline over saved data: a capture file
// through the sensor, and the host records (the journal of a `run --record`
// directory, or eslogger output) into the detector, merged by time so the
// detector sees reads before the uploads that follow them, as it would live.
// `exfilwatch replay` and the tests that replay recordings share it.
package replay

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
)

// File names inside a `run --record` directory.
const (
	CaptureFile = "capture.pcapng"
	JournalFile = "journal.jsonl"
)

// HostRecord is one host-side record to hand to the detector at its time:
// a file access (with the process the source described, or nil) or a
// process event.
type HostRecord struct {
	Time    time.Time
	Access  *attribution.FileAccess
	Process *attribution.Process
	Event   *attribution.ProcessEvent
}

// Recording is a `run --record` directory opened for replay.
type Recording struct {
	Capture   string // path of the capture file
	Journal   *attribution.Journal
	LocalNets []netip.Prefix // the recording host's networks
	GOOS      string         // the recording host's platform; "linux" when the journal predates it
	Host      []HostRecord   // the journal's file accesses and process events
}

// OpenRecording reads a `run --record` directory's journal.
func OpenRecording(dir string) (*Recording, error) {
	capPath := filepath.Join(dir, CaptureFile)
	if _, err := os.Stat(capPath); err != nil {
		return nil, fmt.Errorf("%s: is a directory without %s (not a run --record directory)", dir, CaptureFile)
	}
	j, err := attribution.ReadJournal(filepath.Join(dir, JournalFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	r := &Recording{Capture: capPath, Journal: j, GOOS: "linux", Host: JournalRecords(j)}
	for _, n := range j.Header.LocalNets {
		if p, err := netip.ParsePrefix(n); err == nil {
			r.LocalNets = append(r.LocalNets, p)
		}
	}
	if j.Header.OS != "" {
		r.GOOS = j.Header.OS
	}
	return r, nil
}

// JournalRecords turns a journal's file-access and process records into
// host records (a record the journal cannot convert is skipped).
func JournalRecords(j *attribution.Journal) []HostRecord {
	var out []HostRecord
	for i := range j.Files {
		rec := &j.Files[i]
		fa, err := rec.File.FileAccess(rec.Time)
		if err != nil {
			continue
		}
		out = append(out, HostRecord{Time: rec.Time, Access: &fa, Process: rec.File.Process})
	}
	for i := range j.Processes {
		ev := j.Processes[i]
		out = append(out, HostRecord{Time: ev.Time, Event: &ev})
	}
	return out
}

// ReadEslogger reads saved eslogger JSON Lines into host records; bad
// lines are counted and skipped (attribution.ReadEslogger).
func ReadEslogger(r io.Reader) ([]HostRecord, attribution.EsloggerFileStats, error) {
	var out []HostRecord
	st, err := attribution.ReadEslogger(r, func(rec any) {
		switch v := rec.(type) {
		case *attribution.FileAccess:
			out = append(out, HostRecord{Time: v.Time, Access: v, Process: v.Process})
		case *attribution.ProcessEvent:
			out = append(out, HostRecord{Time: v.Time, Event: v})
		}
	})
	return out, st, err
}

// Feed hands host records to a detector in time order as the packets'
// clock passes them.
type Feed struct {
	recs []HostRecord
	next int
	d    *detect.Detector
}

// NewFeed sorts recs by time (stable: same-time records keep their order).
func NewFeed(d *detect.Detector, recs ...[]HostRecord) *Feed {
	f := &Feed{d: d}
	for _, r := range recs {
		f.recs = append(f.recs, r...)
	}
	sort.SliceStable(f.recs, func(i, j int) bool { return f.recs[i].Time.Before(f.recs[j].Time) })
	return f
}

// Advance delivers every record up to t and moves the detector's clock to
// t.
func (f *Feed) Advance(t time.Time) {
	for f.next < len(f.recs) && !f.recs[f.next].Time.After(t) {
		f.deliver(&f.recs[f.next])
		f.next++
	}
	f.d.Tick(t)
}

// Rest delivers the records after the last packet and judges what waits.
func (f *Feed) Rest() {
	for ; f.next < len(f.recs); f.next++ {
		f.deliver(&f.recs[f.next])
	}
	f.d.Flush()
}

func (f *Feed) deliver(r *HostRecord) {
	switch {
	case r.Access != nil:
		f.d.FileAccess(*r.Access, r.Process)
	case r.Event != nil:
		f.d.ProcessEvent(*r.Event)
	}
	f.d.Tick(r.Time)
}

// Drive reads every frame of src into the sensor, advancing the feed (nil:
// no detector) to each frame's time, then flushes both. Reading overlaps
// decoding on a second core. It returns the read error that ended the
// capture early, if any: what was decoded before it is still flushed.
func Drive(src capture.Source, s *sensor.Sensor, feed *Feed) error {
	p := capture.NewPrefetcher(src)
	var fr capture.Frame
	var readErr error
	for {
		if err := p.Next(&fr); err != nil {
			if err != io.EOF {
				readErr = err
			}
			break
		}
		if feed != nil {
			feed.Advance(fr.Timestamp)
		}
		s.Frame(&fr)
	}
	p.Close()
	s.Flush()
	if feed != nil {
		feed.Rest()
	}
	return readErr
}
