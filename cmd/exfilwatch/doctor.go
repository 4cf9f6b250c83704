package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"exfilwatch/attribution"
	"exfilwatch/config"
)

type checkStatus string

const (
	statusOK   checkStatus = "ok"
	statusWarn checkStatus = "warn"
	statusFail checkStatus = "fail"
)

// checkResult is one line of doctor's report: what was checked, what was
// found and, unless it is fine, how to fix it.
type checkResult struct {
	status checkStatus
	name   string
	detail string
	fix    string
}

func okResult(name, detail string) checkResult { return checkResult{statusOK, name, detail, ""} }
func warned(name, detail, fix string) checkResult {
	return checkResult{statusWarn, name, detail, fix}
}
func failed(name, detail, fix string) checkResult {
	return checkResult{statusFail, name, detail, fix}
}

func (r checkResult) String() string {
	s := fmt.Sprintf("%-4s  %-28s %s", r.status, r.name, oneLine(r.detail))
	if r.status != statusOK && r.fix != "" {
		s += " — fix: " + oneLine(r.fix)
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// doctorOptions are doctor's inputs; tests set them directly.
type doctorOptions struct {
	configPath     string
	configExplicit bool // --config given: a missing file fails
	goos           string
	euid           int
	esloggerPath   string
	timeout        time.Duration // per network dial or eslogger probe
	// diskMargin is added to a directory's max_bytes before comparing with
	// the free space: the rest of the system needs room too.
	diskMargin uint64
}

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check that this host can run the sensor, and say how to fix what is missing",
		Description: "Checks, one line each with ok, warn or fail and the fix: running as root; packet\n" +
			"capture (Linux AF_PACKET, macOS /dev/bpf); file-access events (Linux fanotify, macOS\n" +
			"eslogger and its Full Disk Access); the configuration (as check-config); that each syslog\n" +
			"destination answers (TCP connect, TLS handshake verified with the configured CA; UDP is\n" +
			"only resolved; a unix socket must exist), without sending a message; and the free disk\n" +
			"space for the spool and evidence directories. Exits 1 if any check fails.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "the configuration `FILE` (default " + defaultConfigPath("darwin") + " on macOS, " + defaultConfigPath("linux") + " elsewhere)"},
			&cli.StringFlag{Name: "eslogger-path", Value: attribution.DefaultEsloggerPath, Usage: "macOS: the eslogger binary the sensor runs"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "how long each network check or eslogger probe may take"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("doctor: unexpected argument %q (the configuration is --config FILE)", c.Args().First())
			}
			opt := doctorOptions{
				configPath:     c.String("config"),
				configExplicit: c.IsSet("config"),
				goos:           runtime.GOOS,
				euid:           os.Geteuid(),
				esloggerPath:   c.String("eslogger-path"),
				timeout:        c.Duration("timeout"),
			}
			if opt.configPath == "" {
				opt.configPath = defaultConfigPath(runtime.GOOS)
			}
			if !writeDoctorReport(c.App.Writer, runDoctor(opt)) {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

// writeDoctorReport prints the results and reports whether none failed.
func writeDoctorReport(w io.Writer, results []checkResult) bool {
	ok := true
	for _, r := range results {
		fmt.Fprintln(w, r)
		ok = ok && r.status != statusFail
	}
	return ok
}

func runDoctor(opt doctorOptions) []checkResult {
	if opt.timeout <= 0 {
		opt.timeout = 5 * time.Second
	}
	if opt.diskMargin == 0 {
		opt.diskMargin = 512 << 20
	}
	var out []checkResult
	if opt.euid == 0 {
		out = append(out, okResult("root", "running as root"))
	} else {
		out = append(out, failed("root", fmt.Sprintf("running as uid %d: capture and file-access events need root", opt.euid),
			"run `sudo exfilwatch doctor`; the daemon runs as root (LaunchDaemon or systemd unit)"))
	}
	out = append(out, captureCheck())
	out = append(out, fileAccessCheck(opt))

	cfg, results := doctorConfig(opt)
	out = append(out, results...)
	if cfg == nil {
		return out
	}
	if iface := cfg.Outputs.Interface; iface != "" {
		out = append(out, interfaceCheck(iface, opt.goos))
	}
	for i, s := range cfg.Outputs.Syslog {
		out = append(out, syslogCheck(fmt.Sprintf("syslog[%d] %s", i, s.URL), s, opt.timeout))
	}
	for _, d := range []struct {
		name string
		dir  string
		max  config.ByteSize
	}{{"disk outputs.spool.dir", cfg.Outputs.Spool.Dir, cfg.Outputs.Spool.MaxBytes}, {"disk outputs.evidence.dir", cfg.Outputs.Evidence.Dir, cfg.Outputs.Evidence.MaxBytes}} {
		if d.dir != "" {
			out = append(out, diskCheck(d.name, d.dir, uint64(d.max), opt.diskMargin))
		}
	}
	return out
}

// doctorConfig loads the configuration: a missing default file is only a
// warning (the sensor then runs with defaults and its flags).
func doctorConfig(opt doctorOptions) (*config.Config, []checkResult) {
	if _, err := os.Stat(opt.configPath); errors.Is(err, fs.ErrNotExist) && !opt.configExplicit {
		return nil, []checkResult{warned("config", opt.configPath+" does not exist: the sensor runs with the built-in defaults",
			"install one (`make install` copies packaging/*/exfilwatch.yaml) or pass --config FILE")}
	}
	cfg, err := config.Load(opt.configPath)
	if err != nil {
		var out []checkResult
		for _, line := range strings.Split(err.Error(), "\n") {
			out = append(out, failed("config", line, "correct the file (docs/config.md); `exfilwatch check-config FILE` lists every problem"))
		}
		return nil, out
	}
	out := []checkResult{okResult("config", opt.configPath+" is valid")}
	for _, r := range offlineChecks(cfg) {
		r.name = "config " + r.name
		out = append(out, r)
	}
	return cfg, out
}

func interfaceCheck(iface, goos string) checkResult {
	if iface == "any" || strings.HasPrefix(iface, "pktap") {
		return okResult("interface", iface+" (no single interface to look up)")
	}
	if _, err := net.InterfaceByName(iface); err != nil {
		return failed("interface", fmt.Sprintf("outputs.interface %s: %v", iface, err),
			"set outputs.interface to one of `"+listInterfacesHint(goos)+"`")
	}
	return okResult("interface", iface+" exists")
}

func listInterfacesHint(goos string) string {
	if goos == "darwin" {
		return "ifconfig -l"
	}
	return "ip -br link"
}

// syslogCheck tells whether a destination would accept a connection,
// without sending it anything.
func syslogCheck(name string, s config.SyslogOutput, timeout time.Duration) checkResult {
	addr := s.Address()
	switch s.Scheme() {
	case "udp":
		if _, err := net.ResolveUDPAddr("udp", addr); err != nil {
			return failed(name, fmt.Sprintf("cannot resolve %s: %v", addr, err), "check the host name and the DNS resolver")
		}
		return warned(name, addr+" resolves; UDP cannot be checked further without sending a message",
			"make sure the collector listens on that UDP port; prefer tls:// for findings")
	case "unix":
		st, err := os.Stat(addr)
		if err != nil {
			return failed(name, fmt.Sprintf("socket %s: %v", addr, err), "start the local syslog daemon or correct the path")
		}
		if st.Mode()&fs.ModeSocket == 0 {
			return failed(name, addr+" exists but is not a socket", "point the url at the syslog daemon's socket")
		}
		return okResult(name, addr+" is a socket")
	case "tcp":
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return failed(name, fmt.Sprintf("cannot connect to %s: %v", addr, err),
				"check that the collector listens on that TCP port and that no firewall blocks it")
		}
		conn.Close()
		return okResult(name, "connected to "+addr)
	case "tls":
		conf, err := syslogTLSConfig(s)
		if err != nil {
			return failed(name, err.Error(), "correct ca_file, cert_file and key_file (`exfilwatch check-config`)")
		}
		d := &net.Dialer{Timeout: timeout}
		conn, err := tls.DialWithDialer(d, "tcp", addr, conf)
		if err != nil {
			var verr *tls.CertificateVerificationError
			var herr x509.HostnameError
			var aerr x509.UnknownAuthorityError
			switch {
			case errors.As(err, &verr), errors.As(err, &herr), errors.As(err, &aerr):
				return failed(name, fmt.Sprintf("TLS handshake with %s: %v", addr, err),
					"ca_file must hold the CA that signed the collector's certificate, and server_name a name in it")
			case isDialError(err):
				return failed(name, fmt.Sprintf("cannot connect to %s: %v", addr, err),
					"check that the collector listens on that TCP port and that no firewall blocks it")
			}
			return failed(name, fmt.Sprintf("TLS handshake with %s: %v", addr, err),
				"check the collector's TLS settings (version ≥ "+s.MinTLSVersion+", client certificate if it asks for one)")
		}
		st := conn.ConnectionState()
		conn.Close()
		return okResult(name, fmt.Sprintf("TLS %s handshake with %s verified (%s)", tlsVersionName(st.Version), addr, conf.ServerName))
	}
	return failed(name, "unknown scheme "+s.Scheme(), "use udp, tcp, tls or unix")
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func syslogTLSConfig(s config.SyslogOutput) (*tls.Config, error) {
	pool, err := loadCAFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{RootCAs: pool, ServerName: s.TLSServerName(), MinVersion: tls.VersionTLS12}
	if s.MinTLSVersion == "1.3" {
		conf.MinVersion = tls.VersionTLS13
	}
	if s.CertFile != "" {
		pair, err := loadKeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// diskCheck compares the free space of the filesystem that holds (or will
// hold) dir with the bound the sensor may fill there.
func diskCheck(name, dir string, max, margin uint64) checkResult {
	at := dir
	if _, err := os.Stat(dir); err != nil {
		p, err := existingParent(dir)
		if err != nil {
			return failed(name, err.Error(), "create the directory")
		}
		at = p
	}
	free, err := diskFree(at)
	if err != nil {
		return warned(name, fmt.Sprintf("cannot read the free space of %s: %v", at, err), "check the filesystem by hand (df)")
	}
	need := max + margin
	detail := fmt.Sprintf("%s: %s free, up to %s used by exfilwatch", dir, humanBytes(free), humanBytes(max))
	if free < need {
		return warned(name, detail+fmt.Sprintf(" (+ %s margin)", humanBytes(margin)),
			"free space on that filesystem, lower max_bytes, or move the directory to a larger filesystem")
	}
	return okResult(name, detail)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// esloggerCheck runs `eslogger --list-events` (is it there and does it
// run) and then a short `eslogger exit` under the same supervisor as the
// sensor, whose classification (ErrEsloggerMissing, ErrEsloggerNotPermitted,
// ErrEsloggerNotRoot) names the fix. An eslogger still running after wait
// was allowed to start its Endpoint Security client.
func esloggerCheck(path string, wait time.Duration) checkResult {
	const name = "file access (eslogger)"
	if _, err := os.Stat(path); err != nil {
		return failed(name, fmt.Sprintf("%v (%s)", attribution.ErrEsloggerMissing, path), "upgrade to macOS 13 or later, or pass --eslogger-path")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	cmd := exec.CommandContext(ctx, path, "--list-events")
	var stderr strings.Builder
	cmd.Stdout = io.Discard
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	err := cmd.Run()
	cancel()
	if err != nil {
		return failed(name, fmt.Sprintf("%s --list-events: %v %s", path, err, firstLineOf(stderr.String())), "check that "+path+" is Apple's eslogger and runs")
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, err := attribution.RunEslogger(ctx, attribution.EsloggerOptions{
		Path: path, Events: []string{"exit"}, SlowRetry: time.Hour, RestartMin: time.Hour, RestartMax: time.Hour,
		Buffer: 16, Logger: zerolog.Nop(),
	})
	if err != nil {
		return failed(name, err.Error(), "report this: the probe's arguments were refused")
	}
	defer r.Close()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if err := r.Err(); err != nil {
			switch {
			case errors.Is(err, attribution.ErrEsloggerNotPermitted):
				return failed(name, err.Error(), "grant Full Disk Access to /usr/local/bin/exfilwatch with the PPPC profile (packaging/macos/exfilwatch-pppc.mobileconfig, through MDM) or in System Settings; run by hand, the terminal app needs it (docs/operations.md)")
			case errors.Is(err, attribution.ErrEsloggerNotRoot):
				return failed(name, err.Error(), "run as root (sudo)")
			case errors.Is(err, attribution.ErrEsloggerMissing):
				return failed(name, err.Error(), "upgrade to macOS 13 or later, or pass --eslogger-path")
			}
			return failed(name, err.Error(), "run `sudo eslogger exit` by hand to see why it stops")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !r.Stats().Running {
		return warned(name, "eslogger did not start within "+wait.String(), "run `sudo eslogger exit` by hand to see why")
	}
	return okResult(name, path+" runs and Endpoint Security accepted it")
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
