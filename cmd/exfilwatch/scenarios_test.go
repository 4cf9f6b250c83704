package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The detection scenarios in captures/scenarios/ were recorded with real
// tools (captures/record_scenarios.sh): each directory is a `run --record`
// recording (capture.pcapng + journal.jsonl), maybe an exfilwatch.yaml, and
// an expected.json written by hand from what the scenario does. Replaying
// each must give exactly the expected findings: every positive found, no
// finding on a negative.

type expectedScenario struct {
	Scenario    string            `json:"scenario"`
	Description string            `json:"description"`
	Positive    bool              `json:"positive"`
	Findings    []expectedFinding `json:"findings"`
}

type expectedFinding struct {
	ProcessName    string   `json:"process_name"`
	Protocol       string   `json:"protocol"`
	Files          []string `json:"files"`
	ContentMatch   bool     `json:"content_match"`
	ReasonsInclude []string `json:"reasons_include"`
	MinSeverity    string   `json:"min_severity"`
}

// gotFinding is the part of a finding's JSON the scenarios check.
type gotFinding struct {
	Event struct {
		Kind     string `json:"kind"`
		ID       string `json:"id"`
		Severity int    `json:"severity"`
	} `json:"event"`
	Rule struct {
		ID      string `json:"id"`
		Ruleset string `json:"ruleset"`
	} `json:"rule"`
	Process struct {
		Name string `json:"name"`
		PID  int    `json:"pid"`
	} `json:"process"`
	File []struct {
		Path string `json:"path"`
	} `json:"file"`
	Network struct {
		Protocol string `json:"protocol"`
	} `json:"network"`
	Exfilwatch struct {
		Severity string `json:"severity"`
		Reasons  []struct {
			Code string `json:"code"`
		} `json:"reasons"`
		ContentMatch *struct {
			Path string `json:"path"`
		} `json:"content_match"`
		Flow struct {
			IDs []uint64 `json:"ids"`
		} `json:"flow"`
	} `json:"exfilwatch"`
}

var severityRank = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

func replayFindings(t *testing.T, args ...string) ([]gotFinding, []byte, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "findings.jsonl")
	code, _, stderr := replayArgs(t, append([]string{"--findings", out}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var got []gotFinding
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var f gotFinding
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("finding is not JSON: %v: %s", err, sc.Bytes())
		}
		got = append(got, f)
	}
	return got, raw, stderr
}

// replayArgs runs `exfilwatch replay` in process with no event output.
func replayArgs(t *testing.T, args ...string) (int, []byte, string) {
	t.Helper()
	errPath := filepath.Join(t.TempDir(), "stderr")
	ef, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = ef
	code := run(append([]string{"exfilwatch", "--log-format", "json", "replay"}, args...))
	os.Stderr = old
	ef.Close()
	e, _ := os.ReadFile(errPath)
	return code, nil, string(e)
}

func TestScenarios(t *testing.T) {
	repoRoot(t)
	dirs, _ := filepath.Glob(filepath.Join("captures", "scenarios", "*", "expected.json"))
	if len(dirs) == 0 {
		t.Fatal("no scenarios in captures/scenarios")
	}
	var positives, found, negatives, falseFindings int
	for _, exp := range dirs {
		dir := filepath.Dir(exp)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			var want expectedScenario
			b, err := os.ReadFile(exp)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("%s: %v", exp, err)
			}
			args := []string{"--no-summary"}
			if _, err := os.Stat(filepath.Join(dir, "exfilwatch.yaml")); err == nil {
				args = append(args, "--config", filepath.Join(dir, "exfilwatch.yaml"))
			}
			got, _, _ := replayFindings(t, append(args, dir)...)
			if want.Positive {
				positives += len(want.Findings)
			} else {
				negatives++
			}
			matched := make([]bool, len(got))
			for _, w := range want.Findings {
				ok := false
				for i := range got {
					if !matched[i] && findingMatches(t, &got[i], &w) {
						matched[i], ok = true, true
						break
					}
				}
				if ok {
					found++
				} else {
					t.Errorf("expected finding not raised: %+v", w)
				}
			}
			for i := range got {
				if !matched[i] {
					if !want.Positive {
						falseFindings++
					}
					g := got[i]
					t.Errorf("unexpected finding: %s[%d] %s %v %s reasons %v", g.Process.Name, g.Process.PID, g.Network.Protocol, g.File, g.Exfilwatch.Severity, g.Exfilwatch.Reasons)
				}
			}
			for _, g := range got {
				if g.Event.Kind != "alert" || g.Rule.Ruleset != "DET0149" || (g.Rule.ID != "AN0424" && g.Rule.ID != "AN0425") || len(g.Exfilwatch.Flow.IDs) == 0 {
					t.Errorf("finding envelope: %+v", g)
				}
			}
		})
	}
	t.Logf("scenario figure: %d/%d positives found, %d false findings on %d negatives", found, positives, falseFindings, negatives)
}

func findingMatches(t *testing.T, g *gotFinding, w *expectedFinding) bool {
	if g.Process.Name != w.ProcessName || g.Network.Protocol != w.Protocol {
		return false
	}
	var paths []string
	for _, f := range g.File {
		paths = append(paths, f.Path)
	}
	sort.Strings(paths)
	wantPaths := append([]string(nil), w.Files...)
	sort.Strings(wantPaths)
	if strings.Join(paths, "\n") != strings.Join(wantPaths, "\n") {
		t.Logf("%s %s: files %v, want %v", w.ProcessName, w.Protocol, paths, wantPaths)
		return false
	}
	if w.ContentMatch != (g.Exfilwatch.ContentMatch != nil) {
		t.Logf("%s %s: content match %v, want %v", w.ProcessName, w.Protocol, g.Exfilwatch.ContentMatch != nil, w.ContentMatch)
		return false
	}
	codes := map[string]bool{}
	for _, r := range g.Exfilwatch.Reasons {
		codes[r.Code] = true
	}
	for _, c := range w.ReasonsInclude {
		if !codes[c] {
			t.Logf("%s %s: reason %s missing (have %v)", w.ProcessName, w.Protocol, c, codes)
			return false
		}
	}
	if severityRank[g.Exfilwatch.Severity] < severityRank[w.MinSeverity] {
		t.Logf("%s %s: severity %s below %s", w.ProcessName, w.Protocol, g.Exfilwatch.Severity, w.MinSeverity)
		return false
	}
	return true
}
