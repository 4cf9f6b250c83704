package evidence_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"exfilwatch/config"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/decode"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/output/evidence"
	"exfilwatch/sensor/replay"
)

// flowCounter is the detector's next sink: it keeps each flow's packet
// count as the sensor's own flow events say.
type flowCounter struct {
	mu      sync.Mutex
	packets map[uint64]uint64
}

func (c *flowCounter) HTTP(*events.HTTP)             {}
func (c *flowCounter) FTPCommand(*events.FTPCommand) {}
func (c *flowCounter) FTPData(*events.FTPData)       {}
func (c *flowCounter) Flow(f *events.Flow) {
	c.mu.Lock()
	c.packets[f.Conn.FlowID] = f.Packets[0] + f.Packets[1]
	c.mu.Unlock()
}

// replayScenario runs a `run --record` recording through the sensor with
// the rule's default configuration, the journal's attributions and host
// records, and an evidence store as the packet tap and a finding sink: the
// same wiring as `exfilwatch replay DIR` (sensor/replay).
func replayScenario(t *testing.T, dir string, st *evidence.Store) ([]*detect.Finding, *flowCounter) {
	t.Helper()
	rec, err := replay.OpenRecording(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sensor.Config{Decode: decode.Options{VerifyChecksums: true}, LocalNets: rec.LocalNets}
	opt, err := detect.OptionsFromConfig(config.Default(), rec.GOOS, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	col := &detect.Collect{}
	fc := &flowCounter{packets: map[uint64]uint64{}}
	d := detect.New(opt, fc, detect.Tee{col, st})
	s := sensor.NewWithDeps(cfg, sensor.Deps{Sink: d, Attributor: rec.Journal.Attributor(), PacketTap: st})
	f, err := capture.Open(rec.Capture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := replay.Drive(f, s, replay.NewFeed(d, rec.Host)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return col.Findings, fc
}

type tsharkPkt struct {
	time, length string
	tuple        string // canonical 5-tuple
}

// tsharkPackets lists a capture's TCP packets as tshark reads them.
func tsharkPackets(t *testing.T, path string) []tsharkPkt {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-Y", "tcp", "-T", "fields", "-E", "separator=|",
		"-e", "frame.time_epoch", "-e", "frame.len", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
		"-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	var pk []tsharkPkt
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != 8 {
			t.Fatalf("tshark line %q", l)
		}
		a := f[2] + f[3] + ":" + f[4]
		b := f[5] + f[6] + ":" + f[7]
		if a > b {
			a, b = b, a
		}
		pk = append(pk, tsharkPkt{time: f[0], length: f[1], tuple: a + " " + b})
	}
	return pk
}

// tsharkConversations counts the TCP conversations of tshark's conv,tcp
// statistics.
func tsharkConversations(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-q", "-z", "conv,tcp").Output()
	if err != nil {
		t.Fatalf("tshark -z conv,tcp %s: %v", path, err)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "<->") {
			n++
		}
	}
	return n
}

func TestEvidenceFromRecordedScenarios(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	for _, sc := range []struct {
		name  string
		flows int
		file  string
	}{
		{"p1_curl_multipart_pdf", 1, "/home/alice/Documents/report.pdf"},
		{"p4_curl_ftp_upload", 2, "/home/alice/Documents/report.pdf"}, // FTP control + data
	} {
		t.Run(sc.name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "..", "captures", "scenarios", sc.name)
			evDir := filepath.Join(t.TempDir(), "evidence")
			st, err := evidence.New(evidence.Options{Dir: evDir, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			findings, fc := replayScenario(t, dir, st)
			if len(findings) != 1 {
				t.Fatalf("%d findings, want 1", len(findings))
			}
			f := findings[0]
			if len(f.Upload.FlowIDs) != sc.flows {
				t.Fatalf("finding flows %v, want %d", f.Upload.FlowIDs, sc.flows)
			}
			stats := st.Stats()
			if stats.FindingsWritten != 1 || stats.FindingsFailed+stats.FindingsDropped+stats.FlowsMissing != 0 {
				t.Fatalf("stats %+v", stats)
			}
			fdir := filepath.Join(evDir, f.ID)
			checkModes(t, fdir)
			pcap := filepath.Join(fdir, evidence.PacketsFile)

			// Our reader: the packets of the finding's flows, all of them
			// (as many as the sensor counted for those flows).
			var want uint64
			for _, id := range f.Upload.FlowIDs {
				want += fc.packets[id]
			}
			got := readOurs(t, pcap)
			if uint64(len(got)) != want || want == 0 {
				t.Fatalf("evidence has %d packets, the sensor counted %d in flows %v", len(got), want, f.Upload.FlowIDs)
			}
			var pk decode.Packet
			dec := decode.NewDecoder(decode.Options{})
			if dec.DecodeFrame(&got[0], &pk) != decode.OK || pk.Flags&(decode.FlagSYN|decode.FlagACK) != decode.FlagSYN {
				t.Fatalf("first evidence packet is not the client's SYN (flags %#x)", pk.Flags)
			}
			if pk.DstPort != f.Upload.Conn.Server.Port() {
				t.Fatalf("first SYN goes to port %d, the upload's server is %s", pk.DstPort, f.Upload.Conn.Server)
			}

			// tshark: the same conversations, and exactly the original
			// capture's packets of those 5-tuples, same times and lengths.
			if n := tsharkConversations(t, pcap); n != sc.flows {
				t.Fatalf("tshark sees %d TCP conversations in the evidence, want %d", n, sc.flows)
			}
			ev := tsharkPackets(t, pcap)
			tuples := map[string]bool{}
			for _, p := range ev {
				tuples[p.tuple] = true
			}
			var orig []tsharkPkt
			for _, p := range tsharkPackets(t, filepath.Join(dir, "capture.pcapng")) {
				if tuples[p.tuple] {
					orig = append(orig, p)
				}
			}
			t.Logf("finding %s: %d packets of flows %v, %d bytes buffered at peak", f.ID, len(got), f.Upload.FlowIDs, stats.PeakBuffered)
			if len(ev) != len(orig) || len(ev) != len(got) {
				t.Fatalf("tshark: %d packets in the evidence, %d of those 5-tuples in the capture, our reader %d", len(ev), len(orig), len(got))
			}
			for i := range ev {
				if ev[i] != orig[i] {
					t.Fatalf("packet %d: evidence %+v, capture %+v", i, ev[i], orig[i])
				}
			}

			// host.json names the file and the process; finding.json is the
			// finding.
			var host struct {
				FindingID string `json:"finding_id"`
				Process   struct {
					Name string `json:"name"`
					PID  int32  `json:"pid"`
				} `json:"process"`
				Files []struct {
					Path    string `json:"path"`
					SHA256  string `json:"sha256"`
					PID     int32  `json:"pid"`
					Process *struct {
						Name string `json:"name"`
					} `json:"process"`
				} `json:"files"`
			}
			readJSON(t, filepath.Join(fdir, evidence.HostFile), &host)
			if host.FindingID != f.ID || host.Process.Name != "curl" || len(host.Files) == 0 || host.Files[0].Path != sc.file {
				t.Fatalf("host.json: %+v", host)
			}
			if p := host.Files[0].Process; p == nil || p.Name != "curl" {
				t.Fatalf("host.json: the file's reader is not named: %+v", host.Files[0])
			}
			var fin struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
				Exfilwatch struct {
					Flow struct {
						IDs []uint64 `json:"ids"`
					} `json:"flow"`
				} `json:"exfilwatch"`
			}
			readJSON(t, filepath.Join(fdir, evidence.FindingFile), &fin)
			if fin.Event.ID != f.ID || fmt.Sprint(fin.Exfilwatch.Flow.IDs) != fmt.Sprint(f.Upload.FlowIDs) {
				t.Fatalf("finding.json: %+v", fin)
			}
		})
	}
}

func readOurs(t *testing.T, path string) []capture.Frame {
	t.Helper()
	f, err := capture.Open(path)
	if err != nil {
		t.Fatalf("our reader: %v", err)
	}
	defer f.Close()
	var out []capture.Frame
	for {
		var fr capture.Frame
		err := f.Next(&fr)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("our reader: %v", err)
		}
		fr.Data = bytes.Clone(fr.Data)
		out = append(out, fr)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(bufio.NewReader(bytes.NewReader(b))).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: mode %v, want 0700", dir, fi.Mode().Perm())
	}
	for _, n := range []string{evidence.PacketsFile, evidence.HostFile, evidence.FindingFile} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", n, fi.Mode().Perm())
		}
	}
}

// BenchmarkReplayWithEvidence is sensor's BenchmarkReplay with the store as
// the packet tap: the cost of keeping every flow's packets (compare with
// go test -run NONE -bench Replay ./sensor/).
func BenchmarkReplayWithEvidence(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "captures", "*.pcap"))
	if len(files) == 0 {
		b.Fatal("no captures")
	}
	var frames []capture.Frame
	var size int64
	for _, p := range files {
		f, err := capture.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		var fr capture.Frame
		for f.Next(&fr) == nil {
			c := fr
			c.Data = bytes.Clone(fr.Data)
			frames = append(frames, c)
			size += int64(len(fr.Data))
		}
		f.Close()
	}
	dir := b.TempDir()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := evidence.New(evidence.Options{Dir: dir, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		w := events.NewJSONWriter(io.Discard)
		s := sensor.NewWithDeps(sensor.Config{Decode: decode.Options{VerifyChecksums: true}}, sensor.Deps{Sink: w, PacketTap: st})
		for i := range frames {
			s.Frame(&frames[i])
		}
		s.Flush()
		w.Flush()
		st.Close()
	}
	b.ReportMetric(float64(len(frames)*b.N)/b.Elapsed().Seconds(), "packets/s")
}
