package detect_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/config"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
)

// -update rewrites the goldens from json.Marshal(f). Only for a deliberate
// change of the finding document: review every changed golden by hand.
var updateGoldens = flag.Bool("update", false, "rewrite testdata/golden from json.Marshal of the findings")

// goldenCreated replaces the wall-clock creation time so goldens are stable.
var goldenCreated = time.Date(2025, 3, 4, 5, 6, 7, 891000000, time.UTC)

// The findings of every recorded scenario, byte for byte as they were when
// encoding/json wrote them from ECS(): the hand encoder must not change one
// byte of what collectors have been parsing.
func TestScenarioFindingGoldens(t *testing.T) {
	root := filepath.Join("..", "..")
	dirs, _ := filepath.Glob(filepath.Join(root, "captures", "scenarios", "*", "capture.pcapng"))
	if len(dirs) == 0 {
		t.Fatal("no scenarios in captures/scenarios")
	}
	total := 0
	for _, c := range dirs {
		dir := filepath.Dir(c)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			fs := replayScenario(t, dir)
			total += len(fs)
			// The reference (encoding/json over ECS()) and the hand
			// encoder, the way each output takes it, must all give the
			// golden bytes.
			var ref, hand, marshal, memo bytes.Buffer
			for _, f := range fs {
				f.Created = goldenCreated
				b, err := json.Marshal(f.ECS())
				if err != nil {
					t.Fatalf("finding %s: %v", f.ID, err)
				}
				ref.Write(b)
				ref.WriteByte('\n')
				hand.Write(f.AppendJSON(nil))
				hand.WriteByte('\n')
				if b, err = json.Marshal(f); err != nil {
					t.Fatalf("finding %s: %v", f.ID, err)
				}
				marshal.Write(b)
				marshal.WriteByte('\n')
				w := detect.NewWriter(&memo, "json")
				w.Finding(f)
				w.Finding(f) // the memoized document, the second time
				if err := w.Err(); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join("testdata", "golden", "scenario_"+name+".jsonl")
			checkGolden(t, p, ref.Bytes())
			if *updateGoldens {
				return
			}
			checkGolden(t, p, hand.Bytes())
			checkGolden(t, p, marshal.Bytes())
			twice := bytes.Split(memo.Bytes(), []byte("\n"))
			var once bytes.Buffer
			for i := 0; i+1 < len(twice); i += 2 {
				if !bytes.Equal(twice[i], twice[i+1]) {
					t.Fatalf("Writer wrote a finding two ways:\n%s\n%s", twice[i], twice[i+1])
				}
				once.Write(twice[i])
				once.WriteByte('\n')
			}
			checkGolden(t, p, once.Bytes())
		})
	}
	// Each positive scenario raises at least one finding: goldens of only
	// empty files would prove nothing.
	if total < 8 {
		t.Fatalf("%d findings over all scenarios, want at least 8", total)
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *updateGoldens {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run with -update once, then review)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n got %s\nwant %s", path, got, want)
	}
}

// replayScenario replays a `run --record` directory as `exfilwatch replay`
// does (cmd/exfilwatch/replay.go): the capture through the sensor, the
// journal's attributions and host records merged by time into the detector.
func replayScenario(t *testing.T, dir string) []*detect.Finding {
	t.Helper()
	j, err := attribution.ReadJournal(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sensor.Config{}
	cfg.Flows.MaxFlows = 100000
	cfg.Flows.MaxBufferedPerFlow = 4 << 20
	cfg.Flows.MaxBufferedTotal = 64 << 20
	cfg.Flows.TCPIdleTimeout = 5 * time.Minute
	cfg.Flows.UDPIdleTimeout = time.Minute
	cfg.Decode.VerifyChecksums = true
	cfg.MaxExpectedChannels = 4096
	for _, n := range j.Header.LocalNets {
		if p, err := netip.ParsePrefix(n); err == nil {
			cfg.LocalNets = append(cfg.LocalNets, p)
		}
	}
	goos := "linux"
	if j.Header.OS != "" {
		goos = j.Header.OS
	}
	ruleCfg := config.Default()
	if p := filepath.Join(dir, "exfilwatch.yaml"); fileExists(p) {
		if ruleCfg, err = config.Load(p); err != nil {
			t.Fatal(err)
		}
	}
	opt := detectorOptions(t, ruleCfg, goos)
	out := &detect.Collect{}
	d := detect.New(opt, discard{}, out)
	name := filepath.Base(dir)
	d.SetSource("captures/scenarios/" + name + "/capture.pcapng")

	type rec struct {
		t  time.Time
		fa *attribution.FileAccess
		p  *attribution.Process
		ev *attribution.ProcessEvent
	}
	var recs []rec
	for i := range j.Files {
		r := &j.Files[i]
		fa, err := r.File.FileAccess(r.Time)
		if err != nil {
			continue
		}
		recs = append(recs, rec{t: r.Time, fa: &fa, p: r.File.Process})
	}
	for i := range j.Processes {
		ev := j.Processes[i]
		recs = append(recs, rec{t: ev.Time, ev: &ev})
	}
	sort.SliceStable(recs, func(a, b int) bool { return recs[a].t.Before(recs[b].t) })
	next := 0
	deliver := func(r *rec) {
		if r.fa != nil {
			d.FileAccess(*r.fa, r.p)
		} else {
			d.ProcessEvent(*r.ev)
		}
		d.Tick(r.t)
	}

	f, err := capture.Open(filepath.Join(dir, "capture.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := sensor.NewWithDeps(cfg, sensor.Deps{Sink: d, Attributor: j.Attributor()})
	var fr capture.Frame
	for {
		if err := f.Next(&fr); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		for next < len(recs) && !recs[next].t.After(fr.Timestamp) {
			deliver(&recs[next])
			next++
		}
		d.Tick(fr.Timestamp)
		s.Frame(&fr)
	}
	s.Flush()
	for ; next < len(recs); next++ {
		deliver(&recs[next])
	}
	d.Flush()
	return out.Findings
}

// detectorOptions is cmd/exfilwatch's detectorOptions (which a test here
// cannot import).
func detectorOptions(t *testing.T, cfg *config.Config, goos string) detect.Options {
	t.Helper()
	opt := detect.Options{GOOS: goos, CredentialClasses: map[string]bool{
		"keychains": true, "browser_stores": true, "password_stores": true, "ssh": true, "gpg": true,
		"cloud_credentials": true, "dev_tokens": true,
	}}
	m, err := config.NewPathMatcherFor(cfg.SensitiveClasses(goos), goos)
	if err != nil {
		t.Fatal(err)
	}
	opt.Sensitive = m
	if cfg.Rule.Window > 0 {
		opt.Window = time.Duration(cfg.Rule.Window)
	}
	opt.MinUploadBytes = int64(cfg.Rule.MinUploadBytes)
	opt.BulkUploadBytes = int64(cfg.Rule.BulkUploadBytes)
	var mac []attribution.BrowserRule
	var linux []string
	if cfg.UseDefaultBrowsers() {
		mac = attribution.DefaultMacBrowsers()
		linux = attribution.DefaultLinuxBrowsers()
	}
	b := attribution.NewBrowserClassifier(mac, linux)
	for _, id := range cfg.Browsers.Add {
		if id.SigningID != "" {
			if err := b.AddRule(attribution.BrowserRule{Name: id.Name, TeamID: id.TeamID, SigningID: id.SigningID}); err != nil {
				t.Fatal(err)
			}
		}
		if id.Path != "" {
			if err := b.AddLinuxPath(id.Path); err != nil {
				t.Fatal(err)
			}
		}
	}
	opt.Browsers = b
	allow, err := detect.NewAllowlist(cfg.Allowlist, goos)
	if err != nil {
		t.Fatal(err)
	}
	if allow.Len() > 0 {
		opt.Allow = allow
	}
	return opt
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type discard struct{}

func (discard) HTTP(*events.HTTP)             {}
func (discard) FTPCommand(*events.FTPCommand) {}
func (discard) FTPData(*events.FTPData)       {}
func (discard) Flow(*events.Flow)             {}
