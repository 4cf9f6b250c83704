package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/attribution"
	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
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
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Required: true, Usage: "interface to capture on: a name (eth0, en0), \"any\" (Linux), or \"pktap,all\" / \"pktap,en0,utun3\" (macOS)"},
			&cli.StringFlag{Name: "backend", Value: capture.BackendNative, Usage: "capture `BACKEND`: native (AF_PACKET on Linux, /dev/bpf on macOS) or pcap (libpcap; only in a build with -tags pcap)"},
			&cli.StringFlag{Name: "bpf", Usage: "capture only packets matching this tcpdump-syntax `FILTER` (compiled by the system's tcpdump, or by libpcap with --backend pcap; applied after capture on PKTAP)"},
			&cli.StringFlag{Name: "events", Aliases: []string{"e"}, Value: "-", Usage: "write events as JSON Lines to `FILE` (\"-\" for stdout)"},
			&cli.StringFlag{Name: "format", Value: "json", Usage: "event format: json or text"},
			&cli.DurationFlag{Name: "stats-interval", Value: time.Minute, Usage: "log capture and pipeline counters this often (0 disables; they are always logged at exit)"},
			&cli.IntFlag{Name: "buffer-size", Value: 0, Usage: "kernel capture buffer in bytes (default 32 MiB on Linux, 4 MiB on macOS)"},
			&cli.BoolFlag{Name: "promiscuous", Usage: "put the interface in promiscuous mode (off by default: the sensor watches its own host)"},
			&cli.StringFlag{Name: "record", Usage: "also write every captured frame (capture.pcapng) and the host journal (journal.jsonl) to `DIR`, mode 0600, for `exfilwatch replay DIR`"},
			&cli.BoolFlag{Name: "no-attribution", Usage: "do not look up the local process of each connection"},
			&cli.StringSliceFlag{Name: "watch-path", Usage: "watch file opens, writes and executions on the mount holding `PATH` (repeatable; Linux fanotify) and write them, with their process, to the --record journal"},
			&cli.DurationFlag{Name: "attribution-wait", Value: 250 * time.Millisecond, Usage: "how long writing an event may wait for its connection's process lookup (started at the first packet)"},
		}, limitFlags()...),
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
	iface := c.String("interface")
	src, err := capture.OpenLiveBackend(c.String("backend"), iface, capture.LiveOptions{
		BufferSize:  c.Int("buffer-size"),
		Filter:      c.String("bpf"),
		Promiscuous: c.Bool("promiscuous"),
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	out, closeOut, err := openOutput(c.String("events"))
	if err != nil {
		src.Close()
		return fmt.Errorf("run: --events: %w", err)
	}
	w := newEventWriter(format, out)
	w.setSource("")
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
	deps := sensor.Deps{Sink: w}
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

	var files *fileWatch
	if paths := c.StringSlice("watch-path"); len(paths) > 0 {
		if rec == nil {
			src.Close()
			return errors.New("run: --watch-path needs --record (file accesses go to the host journal)")
		}
		files, err = startFileWatch(paths, rec.journal, nil, 0)
		if err != nil {
			src.Close()
			return fmt.Errorf("run: --watch-path: %w", err)
		}
		defer files.stop()
	}

	// The loop notices a signal within one poll interval. Closing the source
	// from another goroutine instead would unmap the AF_PACKET ring under a
	// blocked read.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer src.Close()
	logger.Info().Str("interface", iface).Str("backend", src.Backend()).Str("filter", c.String("bpf")).Msg("capturing")

	st := &liveStats{src: src, s: s, started: time.Now(), resolver: resolver}
	interval := c.Duration("stats-interval")
	nextStats := time.Now().Add(interval)
	var fr capture.Frame
	var loopErr error
	lastFlush := time.Now()
	for ctx.Err() == nil {
		err := src.Next(&fr)
		now := time.Now()
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
	}
	s.Flush()
	if err := w.Flush(); err != nil && loopErr == nil {
		loopErr = fmt.Errorf("write events: %w", err)
	}
	closeOut()
	if resolver != nil {
		resolver.Close() // the journal gets every answer before it is closed
	}
	if files != nil {
		files.stop()
		st.files = files
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
}

func (l *liveStats) log(msg string) {
	st := l.s.Stats()
	ev := logger.Info()
	if ks, err := l.src.Stats(); err == nil {
		ev = ev.Uint64("kernel_received", ks.Received).Uint64("kernel_dropped", ks.Dropped)
	}
	if l.resolver != nil {
		rs := l.resolver.Stats()
		ev = ev.Uint64("attribution_requests", rs.Requests).Uint64("attributed", rs.Attributed).
			Uint64("unattributed", rs.Unattributed).Interface("unattributed_by_reason", rs.ByReason)
	}
	if l.files != nil {
		fs := l.files.fan.Stats()
		ev = ev.Uint64("file_events", fs.Events).Uint64("file_events_dropped", fs.Dropped).Uint64("file_queue_overflows", fs.Overflows)
	}
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
