package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/attribution"
	"exfilwatch/config"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/replay"
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

// loadRuleConfig reads --config (defaults when not given).
func loadRuleConfig(c *cli.Context) (*config.Config, error) {
	p := c.String("config")
	if p == "" {
		return config.Default(), nil
	}
	return config.Load(p)
}

// detectorOptions builds the rule's options from the configuration for the
// platform the host data comes from.
func detectorOptions(cfg *config.Config, goos string) (detect.Options, error) {
	return detect.OptionsFromConfig(cfg, goos, logger)
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

// readEsloggerFile reads saved eslogger JSON Lines (replay --eslogger).
// Bad lines are counted, the first ones logged, and skipped: eslogger's
// format is not a stable API. A file that cannot be read is an error.
func readEsloggerFile(path string) ([]replay.HostRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--eslogger: %w", unwrapPath(err))
	}
	defer f.Close()
	recs, st, err := replay.ReadEslogger(f)
	if err != nil {
		return nil, fmt.Errorf("--eslogger %s: %w", path, err)
	}
	for _, e := range st.Errors {
		logger.Warn().Str("file", path).Msg(e)
	}
	if st.BadLines > 0 {
		logger.Warn().Str("file", path).Int("bad_lines", st.BadLines).Msg("eslogger lines skipped")
	}
	if st.GapEvents > 0 || st.GapGlobal > 0 {
		logger.Warn().Str("file", path).Uint64("events_dropped", st.GapEvents).Uint64("global_dropped", st.GapGlobal).
			Msg("eslogger reported dropped events (sequence gaps): some file accesses are missing")
	}
	return recs, nil
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
