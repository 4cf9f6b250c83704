package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
)

// summary accumulates the end-of-run figures over every file of a replay.
type summary struct {
	started     time.Time
	elapsed     time.Duration
	filesOK     int
	filesFailed int
	frames      int64
	st          sensor.Stats
	skipped     map[string]uint64
	counts      events.Counts
	det         detect.Stats
}

// addDetect adds one file's detector counters.
func (s *summary) addDetect(d detect.Stats) {
	a := &s.det
	a.FileAccesses += d.FileAccesses
	a.SensitiveReads += d.SensitiveReads
	a.ProcessEvents += d.ProcessEvents
	a.Uploads += d.Uploads
	a.Unattributed += d.Unattributed
	a.Browser += d.Browser
	a.NoSensitive += d.NoSensitive
	a.Allowlisted += d.Allowlisted
	a.Findings += d.Findings
	a.ProcessesEvicted += d.ProcessesEvicted
	a.ReadsDropped += d.ReadsDropped
	a.PendingForced += d.PendingForced
	if a.BySeverity == nil {
		a.BySeverity = map[string]uint64{}
	}
	for k, v := range d.BySeverity {
		a.BySeverity[k] += v
	}
}

func newSummary() *summary {
	return &summary{started: time.Now(), skipped: map[string]uint64{}}
}

func (s *summary) add(path string, f *capture.File, st sensor.Stats) {
	s.frames += f.Frames()
	a, b := &s.st, st
	a.Sensor.Bytes += b.Sensor.Bytes
	a.Sensor.Panics += b.Sensor.Panics
	a.Sensor.HTTPFlows += b.Sensor.HTTPFlows
	a.Sensor.FTPFlows += b.Sensor.FTPFlows
	a.Sensor.FTPDataFlows += b.Sensor.FTPDataFlows
	a.Sensor.OpaqueFlows += b.Sensor.OpaqueFlows
	a.Sensor.ExpectedChannels += b.Sensor.ExpectedChannels
	a.Sensor.ExpectedMatched += b.Sensor.ExpectedMatched
	a.Sensor.ExpectedDropped += b.Sensor.ExpectedDropped
	a.Sensor.ExpectedExpired += b.Sensor.ExpectedExpired
	a.Sensor.Anomalies += b.Sensor.Anomalies
	a.Sensor.FTPTransfers += b.Sensor.FTPTransfers
	a.Sensor.Gaps += b.Sensor.Gaps
	a.Sensor.GapBytes += b.Sensor.GapBytes
	a.Sensor.Retransmits += b.Sensor.Retransmits
	a.Sensor.OutOfOrder += b.Sensor.OutOfOrder
	a.Sensor.OutOfWindow += b.Sensor.OutOfWindow
	a.Sensor.ForcedSkips += b.Sensor.ForcedSkips
	a.Decode.Packets += b.Decode.Packets
	a.Decode.Decoded += b.Decode.Decoded
	a.Decode.BadChecksums += b.Decode.BadChecksums
	a.Decode.Truncated += b.Decode.Truncated
	a.Decode.Reassembled += b.Decode.Reassembled
	a.Decode.Tunnelled += b.Decode.Tunnelled
	a.FragsDropped += b.FragsDropped
	for k, v := range b.Decode.Skipped() {
		s.skipped[k] += v
	}
	a.Flows.Flows += b.Flows.Flows
	a.Flows.TCPFlows += b.Flows.TCPFlows
	a.Flows.UDPFlows += b.Flows.UDPFlows
	a.Flows.Evicted += b.Flows.Evicted
	a.Flows.Orphans += b.Flows.Orphans
	a.Flows.BufferEvictions += b.Flows.BufferEvictions
	a.Flows.PeakActive = max(a.Flows.PeakActive, b.Flows.PeakActive)
	a.Flows.PeakBuffered = max(a.Flows.PeakBuffered, b.Flows.PeakBuffered)
}

// decodeErrors counts frames the decoder could not place, excluding
// fragments held for reassembly and non-TCP/UDP traffic (not errors).
func (s *summary) decodeErrors() uint64 {
	var n uint64
	for k, v := range s.skipped {
		switch k {
		case "ipv4_fragment_pending", "other_ip_protocol", "not_ip":
		default:
			n += v
		}
	}
	return n
}

func (s *summary) fields() map[string]any {
	secs := s.elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	return map[string]any{
		"files":                s.filesOK + s.filesFailed,
		"files_failed":         s.filesFailed,
		"packets":              s.st.Decode.Packets,
		"bytes":                s.st.Sensor.Bytes,
		"packets_decoded":      s.st.Decode.Decoded,
		"skipped":              s.skipped,
		"decode_errors":        s.decodeErrors(),
		"bad_checksums":        s.st.Decode.BadChecksums,
		"ipv4_reassembled":     s.st.Decode.Reassembled,
		"fragments_dropped":    s.st.FragsDropped,
		"flows":                s.st.Flows.Flows,
		"flows_tcp":            s.st.Flows.TCPFlows,
		"flows_udp":            s.st.Flows.UDPFlows,
		"flows_peak":           s.st.Flows.PeakActive,
		"flows_evicted":        s.st.Flows.Evicted,
		"http_flows":           s.st.Sensor.HTTPFlows,
		"http_transactions":    s.counts.HTTP,
		"ftp_sessions":         s.st.Sensor.FTPFlows,
		"ftp_commands":         s.counts.FTPCommands,
		"ftp_transfers":        s.counts.FTPData,
		"ftp_data_flows":       s.st.Sensor.FTPDataFlows,
		"unrecognised_flows":   s.st.Sensor.OpaqueFlows,
		"anomalies":            s.st.Sensor.Anomalies,
		"gaps":                 s.st.Sensor.Gaps,
		"gap_bytes":            s.st.Sensor.GapBytes,
		"retransmits":          s.st.Sensor.Retransmits,
		"out_of_order":         s.st.Sensor.OutOfOrder,
		"out_of_window":        s.st.Sensor.OutOfWindow,
		"buffer_limit_skips":   s.st.Sensor.ForcedSkips,
		"buffer_evictions":     s.st.Flows.BufferEvictions,
		"buffer_peak_bytes":    s.st.Flows.PeakBuffered,
		"ftp_expected_dropped": s.st.Sensor.ExpectedDropped,
		"ftp_expected_expired": s.st.Sensor.ExpectedExpired,
		"internal_errors":      s.st.Sensor.Panics,
		"file_accesses":        s.det.FileAccesses,
		"sensitive_reads":      s.det.SensitiveReads,
		"process_events":       s.det.ProcessEvents,
		"uploads":              s.det.Uploads,
		"uploads_unattributed": s.det.Unattributed,
		"uploads_by_browsers":  s.det.Browser,
		"uploads_no_sensitive": s.det.NoSensitive,
		"allowlisted":          s.det.Allowlisted,
		"findings":             s.det.Findings,
		"findings_by_severity": s.det.BySeverity,
		"events":               s.counts.HTTP + s.counts.FTPCommands + s.counts.FTPData + s.counts.Flows,
		"elapsed_seconds":      s.elapsed.Seconds(),
		"mb_per_second":        float64(s.st.Sensor.Bytes) / 1e6 / secs,
		"packets_per_second":   float64(s.st.Decode.Packets) / secs,
	}
}

func severities(m map[string]uint64) string {
	var parts []string
	for _, k := range []string{"critical", "high", "medium", "low"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func (s *summary) write(w io.Writer, format string) {
	f := s.fields()
	if format == "json" {
		b, _ := json.Marshal(map[string]any{"level": "info", "message": "replay summary", "summary": f})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	var skipped []string
	for k, v := range s.skipped {
		skipped = append(skipped, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(skipped)
	sk := "none"
	if len(skipped) > 0 {
		sk = strings.Join(skipped, ", ")
	}
	fmt.Fprintf(w, "replay summary\n")
	fmt.Fprintf(w, "  files        %d read, %d failed\n", s.filesOK, s.filesFailed)
	fmt.Fprintf(w, "  packets      %d (%d bytes), %d decoded; not decoded: %s\n", s.st.Decode.Packets, s.st.Sensor.Bytes, s.st.Decode.Decoded, sk)
	fmt.Fprintf(w, "  decode       %d errors, %d bad checksums (decoded anyway), %d IPv4 datagrams reassembled, %d tunnelled\n",
		s.decodeErrors(), s.st.Decode.BadChecksums, s.st.Decode.Reassembled, s.st.Decode.Tunnelled)
	fmt.Fprintf(w, "  flows        %d (%d tcp, %d udp), peak %d open, %d evicted, %d unrecognised, %d packets of no known connection\n",
		s.st.Flows.Flows, s.st.Flows.TCPFlows, s.st.Flows.UDPFlows, s.st.Flows.PeakActive, s.st.Flows.Evicted, s.st.Sensor.OpaqueFlows, s.st.Flows.Orphans)
	fmt.Fprintf(w, "  reassembly   %d gaps (%d bytes), %d retransmissions, %d out of order, %d limit skips, %d buffer evictions\n",
		s.st.Sensor.Gaps, s.st.Sensor.GapBytes, s.st.Sensor.Retransmits, s.st.Sensor.OutOfOrder, s.st.Sensor.ForcedSkips, s.st.Flows.BufferEvictions)
	fmt.Fprintf(w, "  http         %d transactions on %d connections\n", s.counts.HTTP, s.st.Sensor.HTTPFlows)
	fmt.Fprintf(w, "  ftp          %d commands on %d sessions, %d transfers (%d data connections)\n",
		s.counts.FTPCommands, s.st.Sensor.FTPFlows, s.counts.FTPData, s.st.Sensor.FTPDataFlows)
	fmt.Fprintf(w, "  host         %d file accesses (%d sensitive reads), %d process events\n", s.det.FileAccesses, s.det.SensitiveReads, s.det.ProcessEvents)
	fmt.Fprintf(w, "  uploads      %d judged: %d unattributed, %d by browsers, %d without a sensitive read, %d allowlisted\n",
		s.det.Uploads, s.det.Unattributed, s.det.Browser, s.det.NoSensitive, s.det.Allowlisted)
	fmt.Fprintf(w, "  findings     %d %s\n", s.det.Findings, severities(s.det.BySeverity))
	fmt.Fprintf(w, "  anomalies    %d; internal errors %d\n", s.st.Sensor.Anomalies, s.st.Sensor.Panics)
	fmt.Fprintf(w, "  time         %.3fs, %.1f MB/s, %.0f packets/s\n", f["elapsed_seconds"], f["mb_per_second"], f["packets_per_second"])
}
