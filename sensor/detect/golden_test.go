package detect_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/config"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/replay"
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
// does (sensor/replay, the same driver): the capture through the sensor,
// the journal's attributions and host records merged by time into the
// detector, configured from the scenario's exfilwatch.yaml when it has one.
func replayScenario(t *testing.T, dir string) []*detect.Finding {
	t.Helper()
	rec, err := replay.OpenRecording(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sensor.Config{LocalNets: rec.LocalNets}
	cfg.Flows.MaxFlows = 100000
	cfg.Flows.MaxBufferedPerFlow = 4 << 20
	cfg.Flows.MaxBufferedTotal = 64 << 20
	cfg.Flows.TCPIdleTimeout = 5 * time.Minute
	cfg.Flows.UDPIdleTimeout = time.Minute
	cfg.Decode.VerifyChecksums = true
	cfg.MaxExpectedChannels = 4096
	ruleCfg := config.Default()
	if p := filepath.Join(dir, "exfilwatch.yaml"); fileExists(p) {
		if ruleCfg, err = config.Load(p); err != nil {
			t.Fatal(err)
		}
	}
	opt, err := detect.OptionsFromConfig(ruleCfg, rec.GOOS, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	out := &detect.Collect{}
	d := detect.New(opt, discard{}, out)
	d.SetSource("captures/scenarios/" + filepath.Base(dir) + "/capture.pcapng")
	f, err := capture.Open(rec.Capture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := sensor.NewWithDeps(cfg, sensor.Deps{Sink: d, Attributor: rec.Journal.Attributor()})
	if err := replay.Drive(f, s, replay.NewFeed(d, rec.Host)); err != nil {
		t.Fatal(err)
	}
	return out.Findings
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
