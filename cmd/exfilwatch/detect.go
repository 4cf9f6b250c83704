package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/attribution"
	"exfilwatch/config"
	"exfilwatch/sensor/detect"
)

// detectFlags configure the AN0425/AN0424 rule and its findings; shared by
// replay and run.
func detectFlags(findingsDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read the rule's configuration (sensitive path classes, window, upload size, allowlist, browsers) from `FILE` (exfilwatch.yaml, see docs/config.md); defaults without it"},
		&cli.StringFlag{Name: "findings", Aliases: []string{"f"}, Value: findingsDefault, Usage: "write findings to `FILE` (\"-\" for stdout, \"\" for none); appended to, one per line (docs/findings.md)"},
		&cli.StringFlag{Name: "findings-format", Value: "json", Usage: "finding format: json (JSON Lines, ECS alert shape) or text (one human-readable line each)"},
	}
}

// credentialClasses are the built-in classes whose reads weigh more.
var credentialClasses = map[string]bool{
	"keychains": true, "browser_stores": true, "password_stores": true, "ssh": true, "gpg": true,
	"cloud_credentials": true, "dev_tokens": true,
}

// loadRuleConfig reads --config (defaults when not given).
func loadRuleConfig(c *cli.Context) (*config.Config, error) {
	p := c.String("config")
	if p == "" {
		return config.Default(), nil
	}
	return config.Load(p)
}

// detectorSetup builds the detector's options from the configuration for
// the platform the host data comes from.
func detectorOptions(cfg *config.Config, goos string) (detect.Options, error) {
	opt := detect.Options{GOOS: goos, CredentialClasses: credentialClasses, Log: logger}
	m, err := config.NewPathMatcherFor(cfg.SensitiveClasses(goos), goos)
	if err != nil {
		return opt, fmt.Errorf("sensitive classes: %w", err)
	}
	opt.Sensitive = m
	if cfg.Rule.Window > 0 {
		opt.Window = time.Duration(cfg.Rule.Window)
	}
	opt.MinUploadBytes = int64(cfg.Rule.MinUploadBytes)
	opt.BulkUploadBytes = int64(cfg.Rule.BulkUploadBytes)
	opt.Browsers = browserClassifier(cfg, goos)
	allow, err := detect.NewAllowlist(cfg.Allowlist, goos)
	if err != nil {
		return opt, fmt.Errorf("allowlist: %w", err)
	}
	if allow.Len() > 0 {
		opt.Allow = allow
	}
	return opt, nil
}

// browserClassifier uses attribution's table for the defaults (it carries
// the platform flags and path prefixes the config form does not) and adds
// the configured browsers.
func browserClassifier(cfg *config.Config, goos string) *attribution.BrowserClassifier {
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
				logger.Warn().Err(err).Msg("browser identity ignored")
			}
		}
		if id.Path != "" {
			if err := b.AddLinuxPath(id.Path); err != nil {
				logger.Warn().Err(err).Msg("browser path ignored")
			}
		}
	}
	return b
}

// addInstalledBrowsers adds, on a live Linux host, the executables of the
// browser packages installed here (dpkg -L): a browser's helpers and
// wrappers live at paths the built-in list cannot know. Only when the
// defaults are in use: a configuration that turns them off means it.
func addInstalledBrowsers(cfg *config.Config, opt detect.Options) {
	if runtime.GOOS != "linux" || !cfg.UseDefaultBrowsers() || opt.Browsers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paths, err := attribution.DpkgBrowserPaths(ctx, attribution.LinuxBrowserPackages())
	if err != nil && !errors.Is(err, exec.ErrNotFound) {
		logger.Warn().Err(err).Msg("listing the installed browsers' files (dpkg -L) failed: only the built-in paths are browsers")
	}
	for _, p := range paths {
		_ = opt.Browsers.AddLinuxPath(p)
	}
	if len(paths) > 0 {
		logger.Debug().Int("paths", len(paths)).Msg("installed browsers' executables added")
	}
}

// findingsOutput opens --findings.
func findingsOutput(c *cli.Context) (*detect.Writer, func() error, error) {
	p := c.String("findings")
	format := c.String("findings-format")
	if format != "json" && format != "text" {
		return nil, nil, fmt.Errorf("--findings-format %q: want json or text", format)
	}
	if p == "" {
		return nil, func() error { return nil }, nil
	}
	if p == "-" {
		return detect.NewWriter(os.Stdout, format), func() error { return nil }, nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--findings: %w", unwrapPath(err))
	}
	return detect.NewWriter(f, format), f.Close, nil
}

// hostRecord is one host-side record to replay at its time.
type hostRecord struct {
	t  time.Time
	fa *attribution.FileAccess
	p  *attribution.Process
	ev *attribution.ProcessEvent
}

// hostFeed hands host records to the detector in time order, as the
// packets' clock passes them.
type hostFeed struct {
	recs []hostRecord
	next int
	d    *detect.Detector
}

func (h *hostFeed) sort() {
	sort.SliceStable(h.recs, func(i, j int) bool { return h.recs[i].t.Before(h.recs[j].t) })
}

// advance delivers every record up to t.
func (h *hostFeed) advance(t time.Time) {
	for h.next < len(h.recs) && !h.recs[h.next].t.After(t) {
		h.deliver(&h.recs[h.next])
		h.next++
	}
}

// rest delivers what is left (records after the last packet).
func (h *hostFeed) rest() {
	for ; h.next < len(h.recs); h.next++ {
		h.deliver(&h.recs[h.next])
	}
}

func (h *hostFeed) deliver(r *hostRecord) {
	switch {
	case r.fa != nil:
		h.d.FileAccess(*r.fa, r.p)
	case r.ev != nil:
		h.d.ProcessEvent(*r.ev)
	}
	h.d.Tick(r.t)
}

// readEsloggerFile reads eslogger JSON Lines: bad lines are counted and
// skipped (eslogger's format is not a stable API), a file that cannot be
// read is an error.
func readEsloggerFile(path string) ([]hostRecord, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--eslogger: %w", unwrapPath(err))
	}
	defer f.Close()
	var p attribution.EsloggerParser
	var out []hostRecord
	bad := 0
	r := bufio.NewReaderSize(f, 64<<10)
	line := 0
	for {
		b, err := readLine(r, attribution.MaxEsloggerLine)
		if len(b) > 0 || err == nil {
			line++
			rec, perr := p.ParseLine(b)
			switch {
			case perr != nil:
				bad++
				if bad <= 5 {
					logger.Warn().Str("file", path).Int("line", line).Msg(perr.Error())
				}
			case rec != nil:
				out = append(out, esloggerRecord(rec)...)
			}
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, errLineTooLong) {
			bad++
			continue
		}
		if err != nil {
			return nil, bad, fmt.Errorf("--eslogger %s: %w", path, err)
		}
	}
	ev, gl := p.Gaps()
	if ev > 0 || gl > 0 {
		logger.Warn().Str("file", path).Uint64("events_dropped", ev).Uint64("global_dropped", gl).
			Msg("eslogger reported dropped events (sequence gaps): some file accesses are missing")
	}
	return out, bad, nil
}

func esloggerRecord(rec any) []hostRecord {
	switch r := rec.(type) {
	case *attribution.FileAccess:
		return []hostRecord{{t: r.Time, fa: r, p: r.Process}}
	case *attribution.ProcessEvent:
		return []hostRecord{{t: r.Time, ev: r}}
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line of at most max bytes; a longer line is consumed
// and reported as errLineTooLong.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return buf, err
	}
}

// journalRecords turns a recording's host journal into host records.
func journalRecords(j *attribution.Journal) []hostRecord {
	var out []hostRecord
	for i := range j.Files {
		rec := &j.Files[i]
		fa, err := rec.File.FileAccess(rec.Time)
		if err != nil {
			continue
		}
		out = append(out, hostRecord{t: rec.Time, fa: &fa, p: rec.File.Process})
	}
	for i := range j.Processes {
		ev := j.Processes[i]
		out = append(out, hostRecord{t: ev.Time, ev: &ev})
	}
	return out
}

// explainVerdict writes one line per judged upload (replay --explain).
func explainVerdict(w io.Writer) func(detect.Verdict) {
	return func(v detect.Verdict) {
		who := fmt.Sprintf("%s[%d]", v.Process, v.PID)
		if v.Executable != "" {
			who += " " + v.Executable
		}
		what := "left alone"
		if v.Outcome == detect.OutcomeFinding {
			what = "FINDING"
		}
		fmt.Fprintf(w, "%s %-10s %-17s %s: %s, %d bytes to %s (flows %v): %s\n",
			v.Time.UTC().Format("15:04:05.000"), what, v.Outcome, who, v.What, v.Bytes, v.Destination, v.FlowIDs, v.Detail)
	}
}
