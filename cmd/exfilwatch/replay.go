package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/replay"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "decode saved captures (pcap, pcapng, optionally gzip-compressed) into events",
		ArgsUsage: "CAPTURE|DIR [CAPTURE|DIR…]",
		Description: "Each capture is decoded on its own, in the order given. A DIR written by `run --record` is\n" +
			"replayed with its host journal, so its events carry the processes the live run attributed.\n" +
			"A damaged or unreadable file is\n" +
			"reported in one line and the others are still processed. Exit status: 0 when every file was\n" +
			"read to its end, 1 when at least one was not (its events up to the damage are kept), 2 on a\n" +
			"usage error. A summary of the run is written to stderr.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{
				Name:    "events",
				Aliases: []string{"e"},
				Usage:   "also write every event (HTTP transaction, FTP command and transfer, connection) to `FILE` (\"-\" for stdout); the file is created or truncated",
			},
			&cli.StringFlag{
				Name:  "eslogger",
				Usage: "read file accesses and process events from eslogger JSON Lines in `FILE` (macOS Endpoint Security, e.g. `eslogger exec fork exit open close rename > es.jsonl`); implies --platform darwin",
			},
			&cli.BoolFlag{
				Name:  "explain",
				Usage: "write one line per upload judged to stderr: what was decided and why (a finding, a browser, no sensitive read, allowlisted…)",
			},
			&cli.StringFlag{
				Name:  "platform",
				Usage: "the host the data comes from: darwin (rule AN0425) or linux (AN0424); default: from the recording's journal, darwin with --eslogger, else linux",
			},
			&cli.StringFlag{
				Name:  "format",
				Value: "json",
				Usage: "event format: json (JSON Lines, ECS field names, see docs/events.md) or text (one human-readable line per event)",
			},
			&cli.StringFlag{
				Name:  "cpuprofile",
				Usage: "write a Go CPU profile of the run to `FILE` (read it with go tool pprof)",
			},
			&cli.BoolFlag{
				Name:  "no-summary",
				Usage: "do not write the end-of-run summary to stderr",
			},
		}, append(detectFlags("-"), limitFlags()...)...),
		Action: replayAction,
	}
}

// limitFlags are the pipeline's memory bounds and timeouts, shared by every
// command that runs the pipeline.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-flows", Value: 100000, Usage: "concurrent connections tracked; past it the least recently active is closed and counted as evicted"},
		&cli.IntFlag{Name: "max-buffer-per-flow", Value: 4 << 20, Usage: "out-of-order bytes buffered per connection direction; past it the hole is skipped as a gap"},
		&cli.IntFlag{Name: "max-buffer-total", Value: 64 << 20, Usage: "out-of-order bytes buffered over all connections; past it the oldest connections' holes are skipped"},
		&cli.DurationFlag{Name: "tcp-idle-timeout", Value: 5 * time.Minute, Usage: "close a TCP connection after this long without packets (packet time)"},
		&cli.DurationFlag{Name: "udp-idle-timeout", Value: time.Minute, Usage: "close a UDP flow after this long without packets (packet time)"},
		&cli.BoolFlag{Name: "verify-checksums", Value: true, Usage: "compute TCP/UDP checksums to count bad ones (packets are decoded either way)"},
		&cli.IntFlag{Name: "max-expected-ftp-data", Value: 4096, Usage: "FTP data connections waited for at once, over all sessions"},
		&cli.StringSliceFlag{Name: "local-net", Usage: "a `CIDR` of the monitored host's own networks (repeatable); sets network.direction (outbound, inbound, internal, external). run adds the host's interface addresses itself"},
	}
}

func configFrom(c *cli.Context) (sensor.Config, error) {
	var cfg sensor.Config
	for _, name := range []string{"max-flows", "max-buffer-per-flow", "max-buffer-total", "max-expected-ftp-data"} {
		if c.Int(name) <= 0 {
			return cfg, fmt.Errorf("--%s must be positive, got %d", name, c.Int(name))
		}
	}
	for _, name := range []string{"tcp-idle-timeout", "udp-idle-timeout"} {
		if c.Duration(name) <= 0 {
			return cfg, fmt.Errorf("--%s must be positive, got %s", name, c.Duration(name))
		}
	}
	cfg.Flows.MaxFlows = c.Int("max-flows")
	cfg.Flows.MaxBufferedPerFlow = c.Int("max-buffer-per-flow")
	cfg.Flows.MaxBufferedTotal = c.Int("max-buffer-total")
	cfg.Flows.TCPIdleTimeout = c.Duration("tcp-idle-timeout")
	cfg.Flows.UDPIdleTimeout = c.Duration("udp-idle-timeout")
	cfg.Decode.VerifyChecksums = c.Bool("verify-checksums")
	cfg.MaxExpectedChannels = c.Int("max-expected-ftp-data")
	for _, n := range c.StringSlice("local-net") {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(n))
			if aerr != nil {
				return cfg, fmt.Errorf("--local-net %q: want a CIDR such as 192.168.1.0/24 or an address", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.LocalNets = append(cfg.LocalNets, p.Masked())
	}
	return cfg, nil
}

func replayAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("replay: no capture file given (usage: exfilwatch replay [--findings FILE] [--events FILE] CAPTURE|DIR…)")
	}
	cfg, err := configFrom(c)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	format := c.String("format")
	if format != "json" && format != "text" {
		return fmt.Errorf("replay: --format %q: want json or text", format)
	}
	platform := c.String("platform")
	if platform != "" && platform != "darwin" && platform != "linux" {
		return fmt.Errorf("replay: --platform %q: want darwin or linux", platform)
	}
	ruleCfg, err := loadRuleConfig(c)
	if err != nil {
		return fmt.Errorf("replay: --config: %w", err)
	}
	var esRecs []replay.HostRecord
	if p := c.String("eslogger"); p != "" {
		recs, err := readEsloggerFile(p)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		esRecs = recs
		if platform == "" {
			platform = "darwin"
		}
	}
	fw, closeFindings, err := findingsOutput(c)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	var w eventWriter = &countingEvents{}
	closeOut := func() error { return nil }
	if p := c.String("events"); p != "" {
		out, cl, err := openOutput(p)
		if err != nil {
			return fmt.Errorf("replay: --events: %w", err)
		}
		w, closeOut = newEventWriter(format, out), cl
	}
	if p := c.String("cpuprofile"); p != "" {
		stop, err := startCPUProfile(p)
		if err != nil {
			return fmt.Errorf("replay: --cpuprofile: %w", err)
		}
		defer stop()
	}
	sum := newSummary()
	failed := 0
	for _, path := range c.Args().Slice() {
		in, err := replayInputs(path, cfg, w)
		if err != nil {
			failed++
			sum.filesFailed++
			logger.Error().Str("file", path).Msg(err.Error())
			continue
		}
		goos := platform
		if goos == "" {
			goos = in.goos
		}
		opt, err := detectorOptions(ruleCfg, goos)
		if err != nil {
			return fmt.Errorf("replay: --config: %w", err)
		}
		if c.Bool("explain") {
			opt.OnVerdict = explainVerdict(os.Stderr)
		}
		var out detect.FindingSink
		if fw != nil {
			out = fw
		}
		d := detect.New(opt, w, out)
		d.SetSource(in.capPath)
		in.deps.Sink = d
		feed := replay.NewFeed(d, in.host, esRecs)
		if err := replayFile(in.capPath, in.cfg, in.deps, w, sum, feed); err != nil {
			failed++
			logger.Error().Str("file", path).Msg(err.Error())
		}
		sum.addDetect(d.Stats())
	}
	if err := w.Flush(); err != nil {
		logger.Error().Err(err).Str("events", c.String("events")).Msg("writing events failed")
		failed++
	}
	if err := closeOut(); err != nil {
		logger.Error().Err(err).Str("events", c.String("events")).Msg("closing events file failed")
		failed++
	}
	if fw != nil {
		if err := fw.Err(); err != nil {
			logger.Error().Err(err).Str("findings", c.String("findings")).Msg("writing findings failed")
			failed++
		}
	}
	if err := closeFindings(); err != nil {
		logger.Error().Err(err).Str("findings", c.String("findings")).Msg("closing findings file failed")
		failed++
	}
	sum.counts = w.counts()
	sum.elapsed = time.Since(sum.started)
	if !c.Bool("no-summary") {
		sum.write(os.Stderr, logFormat)
	}
	if failed > 0 {
		return exitError{code: 1}
	}
	return nil
}

func openOutput(path string) (io.Writer, func() error, error) {
	if path == "-" || path == "" {
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	return f, f.Close, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// replayInput is what one command-line argument expands to.
type replayInput struct {
	cfg     sensor.Config
	deps    sensor.Deps
	capPath string
	host    []replay.HostRecord // the journal's file accesses and process events
	goos    string              // the recording host's platform
}

// replayInputs sees whether path is a recording directory: its capture is
// then replayed with its journal's attributions, host records and local
// networks.
func replayInputs(path string, cfg sensor.Config, w eventWriter) (replayInput, error) {
	in := replayInput{cfg: cfg, deps: sensor.Deps{Sink: w}, capPath: path, goos: "linux"}
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return in, nil // capture.Open reports what is wrong
	}
	rec, err := replay.OpenRecording(path)
	if err != nil {
		return in, err
	}
	if len(in.cfg.LocalNets) == 0 {
		in.cfg.LocalNets = rec.LocalNets
	}
	in.goos = rec.GOOS
	in.deps.Attributor = rec.Journal.Attributor()
	in.capPath = rec.Capture
	in.host = rec.Host
	return in, nil
}

// replayFile decodes one capture, handing the host records to the detector
// as the packets' clock passes them. Events decoded before a damaged record
// are kept: the sensor is flushed whatever happens.
func replayFile(path string, cfg sensor.Config, deps sensor.Deps, w eventWriter, sum *summary, feed *replay.Feed) error {
	f, err := capture.Open(path)
	if err != nil {
		sum.filesFailed++
		return err
	}
	defer f.Close()
	w.setSource(path)
	s := sensor.NewWithDeps(cfg, deps)
	readErr := replay.Drive(f, s, feed)
	sum.add(path, f, s.Stats())
	if readErr != nil {
		sum.filesFailed++
		return readErr
	}
	sum.filesOK++
	return nil
}

// eventWriter is an events.Sink that buffers, and knows the file being read.
// Encoding runs on its own goroutine (events.Async): Flush waits for it.
type eventWriter interface {
	events.Sink
	Flush() error
	setSource(path string)
	counts() events.Counts
}

type jsonEvents struct {
	*events.Async
	j *events.JSONWriter
}

// setSource first drains events of the previous file: they name their file.
func (j jsonEvents) setSource(p string) {
	j.Flush()
	j.j.Source = p
}
func (j jsonEvents) counts() events.Counts { return j.j.Counts }

type textEvents struct {
	*events.Async
	t *events.TextWriter
}

func (textEvents) setSource(string)        {}
func (t textEvents) counts() events.Counts { return t.t.Counts }

// countingEvents counts events without writing them (no --events).
type countingEvents struct{ c events.Counts }

func (e *countingEvents) HTTP(*events.HTTP)             { e.c.HTTP++ }
func (e *countingEvents) FTPCommand(*events.FTPCommand) { e.c.FTPCommands++ }
func (e *countingEvents) FTPData(*events.FTPData)       { e.c.FTPData++ }
func (e *countingEvents) Flow(*events.Flow)             { e.c.Flows++ }
func (e *countingEvents) Flush() error                  { return nil }
func (e *countingEvents) setSource(string)              {}
func (e *countingEvents) counts() events.Counts         { return e.c }

func newEventWriter(format string, w io.Writer) eventWriter {
	if format == "text" {
		t := events.NewTextWriter(w)
		return textEvents{events.NewAsync(t, t.Flush), t}
	}
	j := events.NewJSONWriter(w)
	return jsonEvents{events.NewAsync(j, j.Flush), j}
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
