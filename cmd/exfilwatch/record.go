package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"exfilwatch/attribution"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/replay"
)

// A recording directory holds what `run --record DIR` saw: every captured
// frame and the host journal. `replay DIR` reads both back.
const (
	recordCapture = replay.CaptureFile
	recordJournal = replay.JournalFile
)

// recorder writes the frames of a live run to a pcapng file, one interface
// block per (interface, link type) met, with nanosecond timestamps so that a
// replay sees the same times.
type recorder struct {
	dir     string
	f       *os.File
	bw      *bufio.Writer
	w       *pcapgo.NgWriter
	ifaces  map[[2]int]int // (capture interface index, link type) → pcapng interface id
	journal *attribution.JournalWriter
	iface   string
}

func newRecorder(dir, iface string, header attribution.JournalRecord) (*recorder, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, recordCapture), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--record: %w", unwrapPath(err))
	}
	j, err := attribution.CreateJournal(filepath.Join(dir, recordJournal), header)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--record: %w", err)
	}
	return &recorder{dir: dir, f: f, bw: bufio.NewWriterSize(f, 1<<20), ifaces: map[[2]int]int{}, journal: j, iface: iface}, nil
}

func (r *recorder) ngInterface(fr *capture.Frame) pcapgo.NgInterface {
	name := r.iface
	if ifc, err := net.InterfaceByIndex(fr.Interface); err == nil && fr.Interface > 0 {
		name = ifc.Name
	}
	return pcapgo.NgInterface{Name: name, LinkType: layers.LinkType(fr.LinkType), TimestampResolution: 9, SnapLength: 0, OS: runtime.GOOS}
}

func (r *recorder) frame(fr *capture.Frame) error {
	key := [2]int{fr.Interface, int(fr.LinkType)}
	id, ok := r.ifaces[key]
	if !ok {
		var err error
		if r.w == nil {
			r.w, err = pcapgo.NewNgWriterInterface(r.bw, r.ngInterface(fr), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
				Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "exfilwatch " + version}})
			id = 0
		} else {
			id, err = r.w.AddInterface(r.ngInterface(fr))
		}
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
		r.ifaces[key] = id
	}
	ci := gopacket.CaptureInfo{Timestamp: fr.Timestamp, CaptureLength: len(fr.Data), Length: fr.WireLen, InterfaceIndex: id}
	if err := r.w.WritePacket(ci, fr.Data); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (r *recorder) close() error {
	var errs []error
	if r.w == nil { // no frame at all: still leave a valid, empty capture
		var err error
		r.w, err = pcapgo.NewNgWriterInterface(r.bw, pcapgo.NgInterface{Name: r.iface, LinkType: layers.LinkTypeEthernet, TimestampResolution: 9, OS: runtime.GOOS},
			pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "exfilwatch " + version}})
		errs = append(errs, err)
	}
	if r.w != nil {
		errs = append(errs, r.w.Flush())
	}
	errs = append(errs, r.bw.Flush(), r.f.Close(), r.journal.Close())
	return errors.Join(errs...)
}
