package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/attribution"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/detect"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "capture live traffic on an interface and decode it into events",
		Description: "Captures with AF_PACKET on Linux (--interface any for every interface) and /dev/bpf on\n" +
			"macOS (--interface pktap,all for Apple's per-packet process metadata), with no libpcap. The\n" +
			"decode pipeline and the events are the same as replay's. SIGINT or SIGTERM ends every open\n" +
			"connection, writes its events and exits 0. Kernel received/dropped counters are logged every\n" +
			"--stats-interval and at exit. --backend pcap captures through libpcap instead, in a build with\n" +
			"-tags pcap (cgo and libpcap-dev); its filter is compiled by libpcap.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "interface to capture on: a name (eth0, en0), \"any\" (Linux), or \"pktap,all\" / \"pktap,en0,utun3\" (macOS)"},
			&cli.StringFlag{Name: "backend", Value: capture.BackendNative, Usage: "capture `BACKEND`: native (AF_PACKET on Linux, /dev/bpf on macOS) or pcap (libpcap; only in a build with -tags pcap)"},
			&cli.StringFlag{Name: "bpf", Usage: "capture only packets matching this tcpdump-syntax `FILTER` (compiled by the system's tcpdump, or by libpcap with --backend pcap; applied after capture on PKTAP)"},
			&cli.StringFlag{Name: "events", Aliases: []string{"e"}, Usage: "also write every event (HTTP transaction, FTP command and transfer, connection, DNS answer) to `FILE` (\"-\" for stdout)"},
			&cli.StringFlag{Name: "format", Value: "json", Usage: "event format: json or text"},
			&cli.DurationFlag{Name: "stats-interval", Value: time.Minute, Usage: "log capture and pipeline counters this often (0 disables; they are always logged at exit)"},
			&cli.IntFlag{Name: "buffer-size", Value: 0, Usage: "kernel capture buffer in bytes (default 32 MiB on Linux, 4 MiB on macOS)"},
			&cli.BoolFlag{Name: "promiscuous", Usage: "put the interface in promiscuous mode (off by default: the sensor watches its own host)"},
			&cli.StringFlag{Name: "record", Usage: "also write every captured frame (capture.pcapng) and the host journal (journal.jsonl) to `DIR`, mode 0600, for `exfilwatch replay DIR`"},
			&cli.BoolFlag{Name: "no-attribution", Usage: "do not look up the local process of each connection"},
			&cli.StringSliceFlag{Name: "watch-path", Usage: "watch file opens, writes and executions on the filesystem holding `PATH` (repeatable; Linux fanotify); default /home and /root. The rule needs them; --record also journals them"},
			&cli.BoolFlag{Name: "no-file-access", Usage: "do not watch file accesses (no fanotify on Linux, no eslogger on macOS): no finding can be raised, events are still decoded"},
			&cli.StringFlag{Name: "eslogger-path", Value: attribution.DefaultEsloggerPath, Usage: "macOS: the eslogger binary run (as a supervised child) for file accesses and process events"},
			&cli.DurationFlag{Name: "attribution-wait", Value: 250 * time.Millisecond, Usage: "how long writing an event may wait for its connection's process lookup (started at the first packet)"},
		}, append(append(detectFlags("-"), outputFlags()...), limitFlags()...)...),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	cfg, err := configFrom(c)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	format := c.String("format")
	if format != "json" && format != "text" {
		return fmt.Errorf("run: --format %q: want json or text", format)
	}
	// The host's own addresses make network.direction; extra --local-net
	// networks add to them.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					cfg.LocalNets = append(cfg.LocalNets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				}
			}
		}
	} else {
		logger.Warn().Err(err).Msg("cannot list the host's addresses: network.direction will be missing")
	}
	// The configuration comes first: a bad file is an error before any
	// capture starts.
	ruleCfg, err := loadRuleConfig(c)
	if err != nil {
		return fmt.Errorf("run: --config: %w", err)
	}
	dopt, err := detectorOptions(ruleCfg, runtime.GOOS)
	if err != nil {
		return fmt.Errorf("run: --config: %w", err)
	}
	addInstalledBrowsers(ruleCfg, dopt)
	outCfg, err := mergeOutputs(c, ruleCfg.Outputs)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	iface := c.String("interface")
	if iface == "" {
		iface = outCfg.Interface
	}
	if iface == "" {
		return errors.New("run: no interface: give --interface or outputs.interface in the configuration file")
	}
	outs, err := openOutputs(outCfg)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	src, err := capture.OpenLiveBackend(c.String("backend"), iface, capture.LiveOptions{
		BufferSize:  c.Int("buffer-size"),
		Filter:      c.String("bpf"),
		Promiscuous: c.Bool("promiscuous"),
	})
	if err != nil {
		outs.close()
		return fmt.Errorf("run: %w", err)
	}
	closeOuts := sync.OnceValue(outs.close)
	defer closeOuts()
	var w eventWriter = &countingEvents{}
	if outs.eventsOut != nil {
		w = newEventWriter(outCfg.Events.Format, outs.eventsOut)
	}
	w.setSource("")
	det := detect.New(dopt, w, outs.sink())
	cfg.AttributionWait = c.Duration("attribution-wait")

	var rec *recorder
	if dir := c.String("record"); dir != "" {
		var nets []string
		for _, n := range cfg.LocalNets {
			nets = append(nets, n.String())
		}
		host, _ := os.Hostname()
		rec, err = newRecorder(dir, iface, attribution.JournalRecord{Time: time.Now().UTC(), Host: host, Interface: iface, LocalNets: nets})
		if err != nil {
			src.Close()
			return fmt.Errorf("run: %w", err)
		}
	}
	deps := sensor.Deps{Sink: det}
	if outs.evidence != nil {
		deps.PacketTap = outs.evidence
	}
	var resolver *attribution.Resolver
	if !c.Bool("no-attribution") {
		table, procs, err := attribution.NewSystem()
		if err != nil {
			// Say it once and go on: events are still decoded, and carry
			// the reason they are unattributed.
			logger.Warn().Err(err).Msg("process attribution unavailable: flows will be unattributed")
		}
		local := localChecker(cfg.LocalNets)
		opt := attribution.ResolverOptions{Local: local}
		if rec != nil {
			opt.Observe = func(q attribution.Request, r attribution.Result) { rec.journal.Attribution(q, r, time.Now()) }
		}
		resolver = attribution.NewResolver(table, procs, opt)
		defer resolver.Close()
		if table != nil {
			defer table.Close()
		}
		deps.Attributor = resolver
	}
	s := sensor.NewWithDeps(cfg, deps)

	host := hostSink{
		fileAccess: func(fa attribution.FileAccess, p *attribution.Process) {
			det.FileAccess(fa, p)
			if rec != nil {
				rec.journal.FileAccess(fa, p)
			}
		},
		process: func(ev attribution.ProcessEvent) {
			det.ProcessEvent(ev)
			if rec != nil {
				rec.journal.ProcessEvent(ev)
			}
		},
		// The detector needs the process of a sensitive read (lineage) and
		// of an exec (so that a later reader's parent is known); a
		// recording keeps every access with its process.
		describe: func(fa attribution.FileAccess) bool {
			return rec != nil || fa.Access == attribution.AccessExec || det.IsSensitive(fa.Path)
		},
	}
	var files *fileWatch
	var es *esWatch
	if !c.Bool("no-file-access") {
		// Hash what the rule may compare with an upload: sensitive files.
		sensitive := det.IsSensitive // follows a SIGHUP reload of the classes
		if runtime.GOOS == "darwin" {
			es, err = startEsWatch(c.String("eslogger-path"), host, sensitive)
			if err != nil {
				src.Close()
				return fmt.Errorf("run: eslogger: %w", err)
			}
			defer es.stop()
		} else {
			paths := c.StringSlice("watch-path")
			if len(paths) == 0 {
				paths = defaultWatchPaths()
			}
			files, err = startFileWatch(paths, host, sensitive, 0)
			if err != nil {
				src.Close()
				return fmt.Errorf("run: watching file accesses (--watch-path, or --no-file-access to go without): %w", err)
			}
			defer files.stop()
		}
	}

	// The loop notices a signal within one poll interval. Closing the source
	// from another goroutine instead would unmap the AF_PACKET ring under a
	// blocked read.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer src.Close()
	logger.Info().Str("interface", iface).Str("backend", src.Backend()).Str("filter", c.String("bpf")).Msg("capturing")

	// SIGHUP reopens the output files (after an outside rotation) and
	// reloads the rule's configuration — classes, window, sizes, browsers,
	// allowlist — without touching flows or the detector's memory.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	st := &liveStats{src: src, s: s, started: time.Now(), resolver: resolver, det: det, files: files, es: es, outs: outs}
	interval := c.Duration("stats-interval")
	if !c.IsSet("stats-interval") && ruleCfg.Outputs.StatsInterval > 0 && c.String("config") != "" {
		interval = time.Duration(ruleCfg.Outputs.StatsInterval)
	}
	nextStats := time.Now().Add(interval)
	var fr capture.Frame
	var loopErr error
	lastFlush := time.Now()
	lastTick := time.Now()
	for ctx.Err() == nil {
		err := src.Next(&fr)
		now := time.Now()
		// The detector judges an upload once it settled: its clock is the
		// wall clock, which the packets' timestamps follow.
		if now.Sub(lastTick) >= 20*time.Millisecond {
			det.Tick(now)
			lastTick = now
		}
		switch {
		case err == nil:
			if rec != nil {
				if err := rec.frame(&fr); err != nil {
					loopErr = err
				}
			}
			s.Frame(&fr)
		case errors.Is(err, capture.ErrTimeout):
			s.Tick(now)
		case errors.Is(err, capture.ErrClosed):
		default:
			loopErr = err
		}
		if err != nil && !errors.Is(err, capture.ErrTimeout) || loopErr != nil {
			break
		}
		// Live events must reach their reader promptly, not when a buffer fills.
		if now.Sub(lastFlush) > 200*time.Millisecond {
			if err := w.Flush(); err != nil {
				loopErr = fmt.Errorf("write events: %w", err)
				break
			}
			lastFlush = now
		}
		if interval > 0 && now.After(nextStats) {
			st.log("stats")
			nextStats = now.Add(interval)
		}
		select {
		case <-hup:
			reloadOnHUP(c, det, outs)
		default:
		}
	}
	s.Flush()
	if files != nil {
		files.stop() // the last accesses reach the detector before its last judgement
	}
	if es != nil {
		es.stop()
	}
	det.Flush()
	if err := w.Flush(); err != nil && loopErr == nil {
		loopErr = fmt.Errorf("write events: %w", err)
	}
	if err := closeOuts(); err != nil && loopErr == nil {
		loopErr = fmt.Errorf("outputs: %w", err)
	}
	if resolver != nil {
		resolver.Close() // the journal gets every answer before it is closed
	}
	if rec != nil {
		if err := rec.close(); err != nil && loopErr == nil {
			loopErr = err
		}
	}
	st.resolver = resolver
	st.log("stopped")
	if loopErr != nil {
		logger.Error().Err(loopErr).Str("interface", iface).Msg("capture failed")
		return exitError{code: 1}
	}
	return nil
}

// liveStats logs the kernel's and the pipeline's counters.
type liveStats struct {
	src      capture.Live
	s        *sensor.Sensor
	started  time.Time
	resolver *attribution.Resolver
	files    *fileWatch
	es       *esWatch
	det      *detect.Detector
	outs     *liveOutputs
}

func (l *liveStats) log(msg string) {
	st := l.s.Stats()
	ev := logger.Info()
	if ks, err := l.src.Stats(); err == nil {
		ev = ev.Uint64("kernel_received", ks.Received).Uint64("kernel_dropped", ks.Dropped)
	}
	if l.resolver != nil {
		rs := l.resolver.Stats()
		if rs.Requests > 0 {
			ev = ev.Float64("flows_attributed_share", float64(rs.Attributed)/float64(rs.Requests)).Interface("attributed_by_method", rs.ByMethod)
		}
		ev = ev.Uint64("attribution_requests", rs.Requests).Uint64("attributed", rs.Attributed).
			Uint64("unattributed", rs.Unattributed).Interface("unattributed_by_reason", rs.ByReason)
	}
	if l.files != nil {
		fs := l.files.fan.Stats()
		ev = ev.Uint64("file_events", fs.Events).Uint64("file_events_dropped", fs.Dropped).Uint64("file_queue_overflows", fs.Overflows).
			Uint64("files_hashed", fs.Hashed).Uint64("files_too_large_to_hash", fs.HashTooLarge).Uint64("hash_queue_full", fs.HashBusy)
	}
	if l.es != nil {
		es := l.es.r.Stats()
		ev = ev.Bool("eslogger_running", es.Running).Uint64("eslogger_restarts", es.Restarts).Uint64("eslogger_records", es.Records).
			Uint64("eslogger_bad_lines", es.BadLines).Uint64("eslogger_dropped", es.Dropped).
			Uint64("eslogger_kernel_dropped", es.GapEvents)
		if es.LastError != "" {
			ev = ev.Str("eslogger_error", es.LastError)
		}
		if l.es.h != nil {
			hs := l.es.h.Stats()
			ev = ev.Uint64("files_hashed", hs.Hashed).Uint64("files_too_large_to_hash", hs.TooLarge).
				Uint64("hash_queue_full", hs.QueueFull).Uint64("hash_late", hs.Late).Uint64("hash_file_changed", hs.Changed)
		}
	}
	if l.det != nil {
		ds := l.det.Stats()
		ev = ev.Uint64("file_accesses", ds.FileAccesses).Uint64("sensitive_reads", ds.SensitiveReads).
			Uint64("uploads", ds.Uploads).Uint64("uploads_unattributed", ds.Unattributed).Uint64("uploads_by_browsers", ds.Browser).
			Uint64("allowlisted", ds.Allowlisted).Uint64("findings", ds.Findings).Interface("findings_by_severity", ds.BySeverity).
			Uint64("detector_processes_evicted", ds.ProcessesEvicted).Uint64("detector_reads_dropped", ds.ReadsDropped)
		if ds.Uploads > 0 {
			ev = ev.Float64("uploads_attributed_share", float64(ds.Uploads-ds.Unattributed)/float64(ds.Uploads))
		}
	}
	ev = l.outs.stats(ev)
	ev.Uint64("packets", st.Decode.Packets).
		Uint64("bytes", st.Sensor.Bytes).
		Uint64("flows", st.Flows.Flows).
		Int("flows_open", st.Flows.Active).
		Uint64("flows_evicted", st.Flows.Evicted).
		Uint64("http_flows", st.Sensor.HTTPFlows).
		Uint64("ftp_sessions", st.Sensor.FTPFlows).
		Uint64("ftp_transfers", st.Sensor.FTPTransfers).
		Uint64("gaps", st.Sensor.Gaps).
		Uint64("internal_errors", st.Sensor.Panics).
		Dur("uptime", time.Since(l.started).Round(time.Second)).
		Msg(msg)
}

// reloadOnHUP reopens the output files and reloads the rule's
// configuration. A configuration that no longer loads is logged and the
// running one kept: a typo must not stop the sensor.
func reloadOnHUP(c *cli.Context, det *detect.Detector, outs *liveOutputs) {
	outs.reopen()
	if c.String("config") == "" {
		logger.Info().Msg("SIGHUP: output files reopened (no --config to reload)")
		return
	}
	cfg, err := loadRuleConfig(c)
	if err == nil {
		var opt detect.Options
		if opt, err = detectorOptions(cfg, runtime.GOOS); err == nil {
			addInstalledBrowsers(cfg, opt)
			det.Reload(opt)
			logger.Info().Str("config", c.String("config")).Int("allowlist", len(cfg.Allowlist)).
				Msg("SIGHUP: output files reopened, configuration reloaded")
			return
		}
	}
	logger.Error().Err(err).Str("config", c.String("config")).Msg("SIGHUP: configuration not reloaded, the running one is kept")
}

// defaultWatchPaths are the filesystems holding users' homes.
func defaultWatchPaths() []string {
	var out []string
	for _, p := range []string{"/home", "/root"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// localChecker reports whether an address is one of the host's.
func localChecker(nets []netip.Prefix) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}
