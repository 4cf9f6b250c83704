package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"exfilwatch/config"
	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/output"
	"exfilwatch/sensor/output/evidence"
	"exfilwatch/sensor/output/rotate"
	"exfilwatch/sensor/output/spool"
	"exfilwatch/sensor/output/syslog"
)

// outputFlags are run's outputs beyond --findings and --events. Each also
// has a key in the configuration file's outputs: section
// (docs/config.md); a flag given on the command line wins.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "syslog", Usage: "forward findings to `URL`: udp://host:port, tcp://host:port, tls://host:port or unix:///path (repeatable); through the on-disk spool, retried until delivered"},
		&cli.StringFlag{Name: "syslog-format", Usage: "rfc5424 (default) or rfc3164"},
		&cli.StringFlag{Name: "syslog-facility", Usage: "syslog facility name (default authpriv)"},
		&cli.StringFlag{Name: "syslog-ca", Usage: "tls://: PEM `FILE` of the CA that signed the collector's certificate (required for tls)"},
		&cli.StringFlag{Name: "syslog-cert", Usage: "tls://: client certificate PEM `FILE`"},
		&cli.StringFlag{Name: "syslog-key", Usage: "tls://: client key PEM `FILE`"},
		&cli.StringFlag{Name: "syslog-server-name", Usage: "tls://: name the collector's certificate must carry (default the URL's host)"},
		&cli.StringFlag{Name: "syslog-min-tls", Usage: "tls://: minimum TLS version, 1.2 (default) or 1.3"},
		&cli.StringFlag{Name: "spool-dir", Usage: "on-disk spool `DIR` in front of the syslog destinations (default " + defaultStateDir() + "/spool)"},
		&cli.StringFlag{Name: "evidence-dir", Usage: "keep, per finding, the packets of its flows, the host records and the finding in `DIR`/<finding id>/"},
		&cli.Int64Flag{Name: "findings-max-bytes", Usage: "rotate the --findings file past this size (0: never; rotate it from outside and send SIGHUP)"},
		&cli.Int64Flag{Name: "events-max-bytes", Usage: "rotate the --events file past this size"},
	}
}

// defaultStateDir is where the daemon keeps its spool and evidence.
func defaultStateDir() string {
	if runtime.GOOS == "darwin" {
		return "/var/db/exfilwatch"
	}
	return "/var/lib/exfilwatch"
}

// mergeOutputs applies the command-line flags over the configuration file's
// outputs. Syslog destinations given as flags replace the file's; they are
// validated by the configuration parser itself, so a bad URL or TLS option
// gets the same one-line error either way.
func mergeOutputs(c *cli.Context, o config.Outputs) (config.Outputs, error) {
	if c.IsSet("findings") {
		o.Findings.Path = c.String("findings")
	} else if o.Findings.Path == "" {
		o.Findings.Path = "-"
	}
	if c.IsSet("findings-format") || o.Findings.Format == "" {
		o.Findings.Format = c.String("findings-format")
	}
	if c.IsSet("events") {
		o.Events.Path = c.String("events")
	}
	if c.IsSet("format") || o.Events.Format == "" {
		o.Events.Format = c.String("format")
	}
	if c.IsSet("findings-max-bytes") {
		o.Findings.MaxBytes = config.ByteSize(c.Int64("findings-max-bytes"))
	}
	if c.IsSet("events-max-bytes") {
		o.Events.MaxBytes = config.ByteSize(c.Int64("events-max-bytes"))
	}
	if urls := c.StringSlice("syslog"); len(urls) > 0 {
		var b strings.Builder
		b.WriteString("outputs:\n  syslog:\n")
		tlsFlags := [][2]string{{"ca_file", "syslog-ca"}, {"cert_file", "syslog-cert"}, {"key_file", "syslog-key"},
			{"server_name", "syslog-server-name"}, {"min_tls_version", "syslog-min-tls"}}
		anyTLS := false
		for _, u := range urls {
			fmt.Fprintf(&b, "    - url: %s\n", strconv.Quote(u))
			keys := [][2]string{{"format", "syslog-format"}, {"facility", "syslog-facility"}}
			// The TLS flags are shared by every --syslog: they belong to
			// the tls:// ones only, so that udp, tcp and tls destinations
			// can be given together.
			if scheme, _, _ := strings.Cut(u, "://"); strings.EqualFold(scheme, "tls") {
				keys = append(keys, tlsFlags...)
				anyTLS = true
			}
			for _, kv := range keys {
				if v := c.String(kv[1]); v != "" {
					fmt.Fprintf(&b, "      %s: %s\n", kv[0], strconv.Quote(v))
				}
			}
		}
		if !anyTLS {
			for _, kv := range tlsFlags {
				if c.String(kv[1]) != "" {
					return o, fmt.Errorf("--%s: only for tls:// destinations, and no --syslog is one", kv[1])
				}
			}
		}
		fc, err := config.Parse([]byte(b.String()), syslogFlagsSource)
		if err != nil {
			return o, flagError(err, urls)
		}
		o.Syslog = fc.Outputs.Syslog
	} else {
		// Destinations from the configuration file carry their own
		// settings: a flag that would change nothing must not look as if
		// it did.
		for _, f := range []string{"syslog-format", "syslog-facility", "syslog-ca", "syslog-cert", "syslog-key", "syslog-server-name", "syslog-min-tls"} {
			if c.IsSet(f) {
				return o, fmt.Errorf("--%s applies to --syslog destinations, and none was given (set it on the configuration file's outputs.syslog entries instead)", f)
			}
		}
	}
	if c.IsSet("spool-dir") {
		o.Spool.Dir = c.String("spool-dir")
	}
	if len(o.Syslog) > 0 && o.Spool.Dir == "" {
		o.Spool.Dir = filepath.Join(defaultStateDir(), "spool")
	}
	if c.IsSet("evidence-dir") {
		o.Evidence.Dir = c.String("evidence-dir")
	}
	return o, nil
}

// syslogFlagsSource names the YAML mergeOutputs makes of the --syslog flags.
const syslogFlagsSource = "--syslog flags"

var syslogFlagProblem = regexp.MustCompile(regexp.QuoteMeta(syslogFlagsSource) + `:\d+: outputs\.syslog\[(\d+)\]\.([a-z_]+): `)

// flagError words the configuration parser's problems with the YAML made
// of the --syslog flags in terms of the flags: "--syslog-ca (for
// tls://h:6514): …" rather than a line of a file the user never wrote.
func flagError(err error, urls []string) error {
	flags := map[string]string{"url": "syslog", "format": "syslog-format", "facility": "syslog-facility", "ca_file": "syslog-ca",
		"cert_file": "syslog-cert", "key_file": "syslog-key", "server_name": "syslog-server-name", "min_tls_version": "syslog-min-tls"}
	msg := syslogFlagProblem.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := syslogFlagProblem.FindStringSubmatch(m)
		i, _ := strconv.Atoi(sub[1])
		flag, ok := flags[sub[2]]
		if !ok || i >= len(urls) {
			return m
		}
		if flag == "syslog" {
			return "--syslog: "
		}
		return fmt.Sprintf("--%s (for %s): ", flag, urls[i])
	})
	return errors.New(msg)
}

// liveOutputs are the places findings and events go in `run`.
type liveOutputs struct {
	cfg          config.Outputs
	findingsFile *rotate.Writer // nil for stdout or none
	findings     *detect.Writer
	eventsFile   *rotate.Writer
	eventsOut    io.Writer
	forwarders   []*output.Forwarder
	formatters   []*syslog.Formatter
	evidence     *evidence.Store
}

// openOutputs opens every output. A problem that can be seen now (a file
// that cannot be created, an unreadable CA, a spool that cannot be opened)
// is an error; a collector that is down is not: its findings wait in the
// spool and the forwarder retries, logging it.
func openOutputs(o config.Outputs) (*liveOutputs, error) {
	lo := &liveOutputs{cfg: o}
	ok := false
	defer func() {
		if !ok {
			lo.close()
		}
	}()
	var err error
	switch o.Findings.Path {
	case "":
	case "-":
		lo.findings = detect.NewWriter(os.Stdout, o.Findings.Format)
	default:
		if lo.findingsFile, err = rotate.Open(o.Findings.Path, rotateOptions(o.Findings)); err != nil {
			return nil, fmt.Errorf("findings: %w", err)
		}
		lo.findings = detect.NewWriter(lo.findingsFile, o.Findings.Format)
	}
	switch o.Events.Path {
	case "":
	case "-":
		lo.eventsOut = os.Stdout
	default:
		if lo.eventsFile, err = rotate.Open(o.Events.Path, rotateOptions(o.Events)); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		lo.eventsOut = lo.eventsFile
	}
	for i, s := range o.Syslog {
		fw, fm, err := openForwarder(s, o.Spool, len(o.Syslog))
		if err != nil {
			return nil, fmt.Errorf("syslog[%d] %s: %w", i, s.URL, err)
		}
		lo.forwarders = append(lo.forwarders, fw)
		lo.formatters = append(lo.formatters, fm)
	}
	if o.Evidence.Dir != "" {
		lo.evidence, err = evidence.New(evidence.Options{Dir: o.Evidence.Dir, MaxDirBytes: int64(o.Evidence.MaxBytes),
			MaxFindings: o.Evidence.MaxFindings, Linger: time.Duration(o.Evidence.Linger), Application: "exfilwatch " + version, Log: logger})
		if err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
	}
	ok = true
	return lo, nil
}

func rotateOptions(f config.FileOutput) rotate.Options {
	max := int64(f.MaxBytes)
	if max == 0 {
		max = -1 // never: rotated from outside, reopened on SIGHUP
	}
	return rotate.Options{MaxBytes: max, Keep: f.Keep}
}

// openForwarder sets up one syslog destination: its formatter, its own
// spool directory, and a dialer. The TLS files are loaded now so that an
// unreadable CA is an error at start, not a retry forever.
func openForwarder(s config.SyslogOutput, sp config.SpoolConfig, n int) (*output.Forwarder, *syslog.Formatter, error) {
	format, err := syslog.ParseFormat(s.Format)
	if err != nil {
		return nil, nil, err
	}
	fac := s.FacilityCode()
	fm := &syslog.Formatter{Format: format, Options: syslog.MessageOptions{Facility: &fac, MaxSize: int(s.MaxMessageBytes)}}
	topts := syslog.TransportOptions{MaxMessage: int(s.MaxMessageBytes), CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile,
		ServerName: s.ServerName, MinTLSVersion: tls.VersionTLS12}
	if s.MinTLSVersion == "1.3" {
		topts.MinTLSVersion = tls.VersionTLS13
	}
	if s.Scheme() == "tls" {
		if _, err := loadCAFile(s.CAFile); err != nil {
			return nil, nil, fmt.Errorf("ca_file: %w", err)
		}
		if s.CertFile != "" {
			if _, err := loadKeyPair(s.CertFile, s.KeyFile); err != nil {
				return nil, nil, fmt.Errorf("cert_file/key_file: %w", err)
			}
		}
	}
	url := s.URL
	per := int64(sp.MaxBytes) / int64(n) // the spool bound is shared by the destinations
	fw, err := output.NewForwarder(output.ForwarderOptions{
		Name: url, Dir: output.SpoolDir(sp.Dir, url),
		Dial:   func(ctx context.Context) (output.Sender, error) { return syslog.Dial(ctx, url, topts) },
		Format: fm.Message,
		Spool:  spool.Options{MaxBytes: per, Log: logger},
		Log:    logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return fw, fm, nil
}

// sink is where the detector's findings go.
func (lo *liveOutputs) sink() detect.FindingSink {
	var t detect.Tee
	if lo.findings != nil {
		t = append(t, lo.findings)
	}
	for _, f := range lo.forwarders {
		t = append(t, f)
	}
	if lo.evidence != nil {
		t = append(t, lo.evidence)
	}
	return t
}

// reopen reopens the findings and events files (SIGHUP after an outside
// rotation).
func (lo *liveOutputs) reopen() {
	for _, w := range []*rotate.Writer{lo.findingsFile, lo.eventsFile} {
		if w != nil {
			if err := w.Reopen(); err != nil {
				logger.Error().Err(err).Msg("reopening an output file failed")
			}
		}
	}
}

// close flushes and closes every output: the forwarders send what they
// can within their deadline and leave the rest in the spool.
func (lo *liveOutputs) close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if lo.evidence != nil {
		keep(lo.evidence.Close())
	}
	for _, f := range lo.forwarders {
		keep(f.Close())
	}
	if lo.findings != nil {
		keep(lo.findings.Err())
	}
	if lo.findingsFile != nil {
		keep(lo.findingsFile.Close())
	}
	if lo.eventsFile != nil {
		keep(lo.eventsFile.Close())
	}
	return first
}

// stats adds the outputs' counters to a stats line.
func (lo *liveOutputs) stats(ev *zerolog.Event) *zerolog.Event {
	if lo == nil {
		return ev
	}
	if lo.findings != nil {
		ev = ev.Uint64("findings_written", lo.findings.Written())
	}
	var sent, retried, spooled, dropped, depth, spoolErrors, truncated uint64
	for i, f := range lo.forwarders {
		s := f.Stats()
		sent += s.Sent
		retried += s.Retried
		spooled += s.Spooled
		dropped += s.Dropped
		depth += s.Depth
		spoolErrors += s.SpoolErrors
		truncated += lo.formatters[i].Truncated()
	}
	if len(lo.forwarders) > 0 {
		ev = ev.Uint64("syslog_sent", sent).Uint64("syslog_retried", retried).Uint64("syslog_spooled", spooled).
			Uint64("syslog_dropped", dropped).Uint64("spool_depth", depth).Uint64("spool_errors", spoolErrors).
			Uint64("syslog_truncated", truncated)
	}
	if lo.evidence != nil {
		ev = ev.Interface("evidence", lo.evidence.Stats())
	}
	return ev
}
