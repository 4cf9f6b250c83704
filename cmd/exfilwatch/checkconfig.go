package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"exfilwatch/config"
)

// defaultConfigPath is where `make install` puts exfilwatch.yaml.
func defaultConfigPath(goos string) string {
	if goos == "darwin" {
		return "/usr/local/etc/exfilwatch/exfilwatch.yaml"
	}
	return "/etc/exfilwatch/exfilwatch.yaml"
}

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:      "check-config",
		Usage:     "validate exfilwatch.yaml and the files and directories it names",
		ArgsUsage: "[FILE]",
		Description: "Loads FILE (default " + defaultConfigPath("darwin") + " on macOS, " + defaultConfigPath("linux") + "\n" +
			"elsewhere) and checks what can be checked without the network: the syntax and every key\n" +
			"(docs/config.md), that the TLS CA, certificate and key files of the syslog destinations\n" +
			"read and parse, that the spool and evidence directories exist or can be created, and that\n" +
			"the findings and events files can be written. Prints every problem, one per line, and exits\n" +
			"1; or prints a short summary and exits 0. `exfilwatch doctor` also dials the destinations.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return fmt.Errorf("check-config: one FILE at most, got %d", c.NArg())
			}
			p := c.Args().First()
			if p == "" {
				p = defaultConfigPath(runtime.GOOS)
			}
			cfg, problems := checkConfigFile(p)
			if len(problems) > 0 {
				for _, pr := range problems {
					fmt.Fprintln(c.App.ErrWriter, pr)
				}
				return exitError{code: 1}
			}
			writeConfigSummary(c.App.Writer, p, cfg, runtime.GOOS)
			return nil
		},
	}
}

// checkConfigFile loads p and runs the offline checks; every problem is
// one line. cfg is nil when the file does not load.
func checkConfigFile(p string) (*config.Config, []string) {
	cfg, err := config.Load(p)
	if err != nil {
		return nil, strings.Split(err.Error(), "\n")
	}
	var out []string
	for _, r := range offlineChecks(cfg) {
		if r.status == statusFail {
			out = append(out, fmt.Sprintf("%s: %s: %s", p, r.name, r.detail))
		}
	}
	return cfg, out
}

// offlineChecks are the checks that need neither the network nor root:
// the TLS material parses, the directories and files can be written.
func offlineChecks(cfg *config.Config) []checkResult {
	var out []checkResult
	o := &cfg.Outputs
	for i, s := range o.Syslog {
		key := fmt.Sprintf("outputs.syslog[%d]", i)
		if s.Scheme() != "tls" {
			continue
		}
		if _, err := loadCAFile(s.CAFile); err != nil {
			out = append(out, failed(key+".ca_file", err.Error(), "give the PEM file of the CA that signed the collector's certificate"))
		} else {
			out = append(out, okResult(key+".ca_file", s.CAFile+" parses"))
		}
		if s.CertFile != "" {
			if err := checkKeyPair(s.CertFile, s.KeyFile, time.Now()); err != nil {
				out = append(out, failed(key+".cert_file", err.Error(), "give the client certificate and its private key, both PEM"))
			} else {
				out = append(out, okResult(key+".cert_file", s.CertFile+" and its key load"))
			}
		}
	}
	for _, d := range []struct{ key, dir string }{{"outputs.spool.dir", o.Spool.Dir}, {"outputs.evidence.dir", o.Evidence.Dir}} {
		if d.dir == "" {
			continue
		}
		if msg, err := dirReady(d.dir); err != nil {
			out = append(out, failed(d.key, err.Error(), "create it (mode 0700, owned by root) or point the key elsewhere"))
		} else {
			out = append(out, okResult(d.key, msg))
		}
	}
	for _, f := range []struct {
		key string
		out config.FileOutput
	}{{"outputs.findings.path", o.Findings}, {"outputs.events.path", o.Events}} {
		if f.out.Path == "" || f.out.Path == "-" {
			continue
		}
		if msg, err := fileWritable(f.out.Path); err != nil {
			out = append(out, failed(f.key, err.Error(), "create its directory or point the key elsewhere"))
		} else {
			out = append(out, okResult(f.key, msg))
		}
	}
	return out
}

// maxPEMFile bounds a CA bundle or certificate read into memory.
const maxPEMFile = 4 << 20

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxPEMFile)
	}
	return b, nil
}

// loadCAFile parses every certificate of a PEM bundle; a file with none,
// or with one that does not parse, is an error.
func loadCAFile(p string) (*x509.CertPool, error) {
	b, err := readBounded(p)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", p, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in the file", p)
	}
	return pool, nil
}

// checkKeyPair loads a client certificate and key and rejects an expired
// or not yet valid certificate.
func checkKeyPair(certFile, keyFile string, now time.Time) error {
	pair, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%s: certificate expired on %s", certFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%s: certificate not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.DateTime))
	}
	return nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cb, err := readBounded(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := readBounded(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s with %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// dirReady reports whether dir exists and is writable, or can be created
// (its nearest existing parent is a writable directory).
func dirReady(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("%s exists and is not a directory", dir)
		}
		if err := writable(dir); err != nil {
			return "", fmt.Errorf("%s is not writable: %w", dir, err)
		}
		return dir + " exists and is writable", nil
	}
	if !notExist(err) {
		return "", err
	}
	parent, err := existingParent(dir)
	if err != nil {
		return "", err
	}
	if err := writable(parent); err != nil {
		return "", fmt.Errorf("%s does not exist and %s is not writable: %w", dir, parent, err)
	}
	return dir + " will be created (under " + parent + ")", nil
}

// notExist is true for a path that is missing, or below a file (ENOTDIR):
// existingParent then names the culprit.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// existingParent returns the nearest ancestor of p that exists; it must
// be a directory.
func existingParent(p string) (string, error) {
	for d := filepath.Dir(filepath.Clean(p)); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return "", fmt.Errorf("%s is not a directory", d)
			}
			return d, nil
		}
		if !notExist(err) {
			return "", err
		}
		if d == "/" || d == "." {
			return "", fmt.Errorf("no existing parent directory for %s", p)
		}
	}
}

// fileWritable reports whether the file can be appended to, or created in
// its directory (or in a directory that can be created).
func fileWritable(p string) (string, error) {
	st, err := os.Stat(p)
	if err == nil {
		if st.IsDir() {
			return "", fmt.Errorf("%s is a directory", p)
		}
		if err := writable(p); err != nil {
			return "", fmt.Errorf("%s is not writable: %w", p, err)
		}
		return p + " is writable", nil
	}
	if !notExist(err) {
		return "", err
	}
	if _, err := dirReady(filepath.Dir(p)); err != nil {
		return "", err
	}
	return p + " can be created", nil
}

func writeConfigSummary(w io.Writer, p string, cfg *config.Config, goos string) {
	fmt.Fprintf(w, "%s: ok\n", p)
	var names []string
	for _, c := range cfg.SensitiveClasses(goos) {
		names = append(names, c.Name)
	}
	fmt.Fprintf(w, "  sensitive classes (%s): %d: %s\n", goos, len(names), strings.Join(names, ", "))
	fmt.Fprintf(w, "  rule: window %s, min upload %d bytes, bulk upload %d bytes\n", cfg.Rule.Window, cfg.Rule.MinUploadBytes, cfg.Rule.BulkUploadBytes)
	fmt.Fprintf(w, "  allowlist: %d entries; browsers: defaults %v, %d added\n", len(cfg.Allowlist), cfg.UseDefaultBrowsers(), len(cfg.Browsers.Add))
	o := cfg.Outputs
	if o.Interface != "" {
		fmt.Fprintf(w, "  interface: %s\n", o.Interface)
	}
	for _, f := range []struct {
		name string
		out  config.FileOutput
	}{{"findings", o.Findings}, {"events", o.Events}} {
		switch {
		case f.out.Path == "":
			fmt.Fprintf(w, "  %s: not written by the config (run's --%s flag decides)\n", f.name, f.name)
		case f.out.MaxBytes > 0:
			fmt.Fprintf(w, "  %s: %s (%s, rotated at %d bytes, %d kept)\n", f.name, f.out.Path, f.out.Format, f.out.MaxBytes, f.out.Keep)
		default:
			fmt.Fprintf(w, "  %s: %s (%s, not rotated)\n", f.name, f.out.Path, f.out.Format)
		}
	}
	for _, s := range o.Syslog {
		extra := ""
		if s.Scheme() == "tls" {
			extra = fmt.Sprintf(", TLS ≥ %s, CA %s", s.MinTLSVersion, s.CAFile)
			if s.CertFile != "" {
				extra += ", client certificate"
			}
		}
		fmt.Fprintf(w, "  syslog: %s (%s, facility %s, messages ≤ %d bytes%s)\n", s.URL, s.Format, s.Facility, s.MaxMessageBytes, extra)
	}
	if o.Spool.Dir != "" {
		fmt.Fprintf(w, "  spool: %s (≤ %d bytes)\n", o.Spool.Dir, o.Spool.MaxBytes)
	}
	if o.Evidence.Dir != "" {
		fmt.Fprintf(w, "  evidence: %s (≤ %d bytes, ≤ %d findings, linger %s)\n", o.Evidence.Dir, o.Evidence.MaxBytes, o.Evidence.MaxFindings, o.Evidence.Linger)
	}
	fmt.Fprintf(w, "  stats every %s\n", o.StatsInterval)
}
