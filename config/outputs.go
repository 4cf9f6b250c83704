package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Outputs is the "outputs:" section: where the live sensor (`run`) writes
// findings and events, the syslog destinations, the spool in front of them,
// evidence capture and the stats period. Parse fills every default, so the
// values here are the ones to use.
type Outputs struct {
	// Interface is the capture interface ("en0", "pktap,all", "any");
	// "" = the --interface flag must give it.
	Interface string `yaml:"interface"`
	// Findings and Events are JSON Lines (or text) files; Path "" = none.
	Findings FileOutput `yaml:"findings"`
	Events   FileOutput `yaml:"events"`
	// Syslog destinations each receive every finding.
	Syslog []SyslogOutput `yaml:"syslog"`
	// Spool holds findings not yet delivered to every syslog destination.
	Spool SpoolConfig `yaml:"spool"`
	// Evidence keeps the packets and host records behind each finding.
	Evidence EvidenceConfig `yaml:"evidence"`
	// StatsInterval is the period of the stats log line.
	StatsInterval Duration `yaml:"stats_interval"`
}

// FileOutput is a findings or events file with size-based rotation.
type FileOutput struct {
	// Path is absolute, or "-" for standard output; "" = not written.
	Path string `yaml:"path"`
	// Format is "json" (JSON Lines) or "text".
	Format string `yaml:"format"`
	// MaxBytes rotates the file when it would grow past it; 0 = never
	// (rotate it from outside and send SIGHUP).
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Keep is how many rotated files are kept (path.1 … path.Keep).
	Keep int `yaml:"keep"`
}

// SyslogOutput is one syslog destination.
type SyslogOutput struct {
	// URL is udp://host:port, tcp://host:port, tls://host:port or
	// unix:///absolute/socket/path.
	URL string `yaml:"url"`
	// Format is "rfc5424" or "rfc3164".
	Format string `yaml:"format"`
	// Facility is a syslog facility name (SyslogFacilities).
	Facility string `yaml:"facility"`
	// CAFile verifies the server (tls; required there). CertFile and
	// KeyFile are the client certificate (tls; both or neither).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the server's certificate (tls);
	// default the URL's host.
	ServerName string `yaml:"server_name"`
	// MinTLSVersion is "1.2" or "1.3" (tls; default "1.2").
	MinTLSVersion string `yaml:"min_tls_version"`
	// MaxMessageBytes bounds one message; longer ones are truncated.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
}

// SpoolConfig is the on-disk queue in front of the syslog destinations.
type SpoolConfig struct {
	Dir      string   `yaml:"dir"`       // absolute; "" = no spool
	MaxBytes ByteSize `yaml:"max_bytes"` // the oldest entries go past it (counted)
}

// EvidenceConfig bounds the per-finding evidence directory.
type EvidenceConfig struct {
	Dir         string   `yaml:"dir"`          // absolute; "" = no evidence kept
	MaxBytes    ByteSize `yaml:"max_bytes"`    // total; the oldest findings' evidence goes first
	MaxFindings int      `yaml:"max_findings"` // findings whose evidence is kept
	Linger      Duration `yaml:"linger"`       // how long a finding's flows are still recorded after it
}

// Output defaults and bounds.
const (
	DefaultFileFormat      = "json"
	DefaultKeep            = 5
	MaxKeep                = 1000
	DefaultSyslogFormat    = "rfc5424"
	DefaultSyslogFacility  = "authpriv" // findings name users' files and command lines: keep them where only root/adm read
	DefaultMinTLSVersion   = "1.2"
	DefaultUDPMessageBytes = ByteSize(2048) // RFC 5426: receivers should take 2048
	DefaultMessageBytes    = ByteSize(8192) // tcp, tls, unix
	MinMessageBytes        = ByteSize(480)  // RFC 5426's minimum for IPv4
	MaxUDPMessageBytes     = ByteSize(65507)
	MaxMessageBytes        = ByteSize(1 << 20)
	MaxSyslogOutputs       = 16
	DefaultSpoolBytes      = ByteSize(256 << 20)
	DefaultEvidenceBytes   = ByteSize(1 << 30)
	DefaultEvidenceCount   = 1000
	MaxEvidenceCount       = 1_000_000
	DefaultLinger          = Duration(30 * time.Second)
	MaxLinger              = Duration(10 * time.Minute)
	DefaultStatsInterval   = Duration(time.Minute)
	// MinFileBytes is the smallest max_bytes for a rotated file or a
	// directory bound: below it a single record would not fit.
	MinFileBytes = ByteSize(64 << 10)
	maxPathLen   = 1024
)

// SyslogFacilities maps the accepted facility names to their codes.
var SyslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// FacilityCode returns the numeric facility (Facility is validated by Parse).
func (s SyslogOutput) FacilityCode() int { return SyslogFacilities[s.Facility] }

// Scheme returns the URL's scheme: udp, tcp, tls or unix.
func (s SyslogOutput) Scheme() string {
	scheme, _, _ := strings.Cut(s.URL, "://")
	return strings.ToLower(scheme)
}

// Address returns host:port, or the socket path for unix.
func (s SyslogOutput) Address() string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return ""
	}
	if strings.EqualFold(u.Scheme, "unix") {
		return u.Path
	}
	return u.Host
}

// TLSServerName returns ServerName, or the URL's host without the port.
func (s SyslogOutput) TLSServerName() string {
	if s.ServerName != "" {
		return s.ServerName
	}
	host, _, err := net.SplitHostPort(s.Address())
	if err != nil {
		return ""
	}
	return host
}

// fillDefaults sets every output default not given in the file. It runs
// after validation, on the walk's and the strict decoder's results alike.
func (o *Outputs) fillDefaults() {
	for _, f := range []*FileOutput{&o.Findings, &o.Events} {
		if f.Format == "" {
			f.Format = DefaultFileFormat
		}
		if f.Keep == 0 {
			f.Keep = DefaultKeep
		}
	}
	for i := range o.Syslog {
		s := &o.Syslog[i]
		if s.Format == "" {
			s.Format = DefaultSyslogFormat
		}
		if s.Facility == "" {
			s.Facility = DefaultSyslogFacility
		}
		if s.Scheme() == "tls" && s.MinTLSVersion == "" {
			s.MinTLSVersion = DefaultMinTLSVersion
		}
		if s.MaxMessageBytes == 0 {
			s.MaxMessageBytes = DefaultMessageBytes
			if s.Scheme() == "udp" {
				s.MaxMessageBytes = DefaultUDPMessageBytes
			}
		}
	}
	if o.Spool.MaxBytes == 0 {
		o.Spool.MaxBytes = DefaultSpoolBytes
	}
	if o.Evidence.MaxBytes == 0 {
		o.Evidence.MaxBytes = DefaultEvidenceBytes
	}
	if o.Evidence.MaxFindings == 0 {
		o.Evidence.MaxFindings = DefaultEvidenceCount
	}
	if o.Evidence.Linger == 0 {
		o.Evidence.Linger = DefaultLinger
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = DefaultStatsInterval
	}
}

func (p *parser) outputs(n *yaml.Node, prefix string, o *Outputs) {
	dirs := map[string]string{} // cleaned dir → key path, to catch two outputs sharing one
	p.fields(n, prefix, []string{"interface", "findings", "events", "syslog", "spool", "evidence", "stats_interval"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "interface":
			if s, ok := p.str(v, kp); ok {
				if msg := checkInterface(s); msg != "" {
					p.errf(v, kp, "%s", msg)
					return
				}
				o.Interface = s
			}
		case "findings":
			p.fileOutput(v, kp, &o.Findings)
		case "events":
			p.fileOutput(v, kp, &o.Events)
		case "syslog":
			// The same URL may appear twice (another server_name or
			// format), the same destination twice is a mistake.
			seen := map[SyslogOutput]int{}
			p.seq(v, kp, func(i int, it *yaml.Node, ip string) {
				if i == MaxSyslogOutputs {
					p.errf(it, kp, "at most %d destinations", MaxSyslogOutputs)
				}
				if i >= MaxSyslogOutputs {
					return
				}
				var s SyslogOutput
				if p.syslogOutput(it, ip, &s) {
					if line, dup := seen[s]; dup {
						p.errf(it, ip, "duplicate destination %q (first at line %d)", s.URL, line)
						return
					}
					seen[s] = it.Line
					o.Syslog = append(o.Syslog, s)
				}
			})
		case "spool":
			p.fields(v, kp, []string{"dir", "max_bytes"}, func(k string, v *yaml.Node, kp string) {
				switch k {
				case "dir":
					o.Spool.Dir = p.dirPath(v, kp, dirs)
				case "max_bytes":
					o.Spool.MaxBytes = p.boundedSize(v, kp, MinFileBytes, 1<<50)
				}
			})
		case "evidence":
			p.fields(v, kp, []string{"dir", "max_bytes", "max_findings", "linger"}, func(k string, v *yaml.Node, kp string) {
				switch k {
				case "dir":
					o.Evidence.Dir = p.dirPath(v, kp, dirs)
				case "max_bytes":
					o.Evidence.MaxBytes = p.boundedSize(v, kp, MinFileBytes, 1<<50)
				case "max_findings":
					o.Evidence.MaxFindings = p.boundedInt(v, kp, 1, MaxEvidenceCount)
				case "linger":
					if d, ok := p.duration(v, kp); ok {
						if d > MaxLinger {
							p.errf(v, kp, "duration %q exceeds the maximum of %s", v.Value, time.Duration(MaxLinger))
							return
						}
						o.Evidence.Linger = d
					}
				}
			})
		case "stats_interval":
			if d, ok := p.duration(v, kp); ok {
				o.StatsInterval = d
			}
		}
	})
	for _, f := range []struct {
		out *FileOutput
		key string
	}{{&o.Findings, "findings"}, {&o.Events, "events"}} {
		if f.out.Path != "" && f.out.Path != "-" {
			if other, dup := dirs["file:"+f.out.Path]; dup {
				p.errf(n, join(prefix, f.key+".path"), "same file as %s", other)
			}
			dirs["file:"+f.out.Path] = join(prefix, f.key+".path")
		}
	}
}

func (p *parser) fileOutput(n *yaml.Node, prefix string, f *FileOutput) {
	var maxNode *yaml.Node
	p.fields(n, prefix, []string{"path", "format", "max_bytes", "keep"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "path":
			s, ok := p.str(v, kp)
			if !ok {
				return
			}
			if s == "-" {
				f.Path = s
				return
			}
			if msg := checkAbsPath(s); msg != "" {
				p.errf(v, kp, "%s", msg)
				return
			}
			if strings.HasSuffix(s, "/") {
				p.errf(v, kp, "path %q names a directory; give a file name", s)
				return
			}
			f.Path = s
		case "format":
			if s, ok := p.str(v, kp); ok {
				if s != "json" && s != "text" {
					p.errf(v, kp, "format %q: want json or text", s)
					return
				}
				f.Format = s
			}
		case "max_bytes":
			maxNode = v
			if v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == "0" {
				return // 0 = never rotate
			}
			f.MaxBytes = p.boundedSize(v, kp, MinFileBytes, 1<<50)
		case "keep":
			f.Keep = p.boundedInt(v, kp, 1, MaxKeep)
		}
	})
	if maxNode != nil && f.Path == "-" && f.MaxBytes > 0 {
		p.errf(maxNode, join(prefix, "max_bytes"), "standard output (path \"-\") cannot be rotated")
	}
}

// syslogOutput reads one destination; false when it has a problem.
func (p *parser) syslogOutput(n *yaml.Node, prefix string, s *SyslogOutput) bool {
	before := len(p.errs)
	nodes := map[string]*yaml.Node{}
	p.fields(n, prefix, []string{"url", "format", "facility", "ca_file", "cert_file", "key_file", "server_name", "min_tls_version", "max_message_bytes"}, func(k string, v *yaml.Node, kp string) {
		nodes[k] = v
		if k == "max_message_bytes" {
			s.MaxMessageBytes = p.boundedSize(v, kp, MinMessageBytes, MaxMessageBytes)
			return
		}
		str, ok := p.str(v, kp)
		if !ok {
			return
		}
		switch k {
		case "url":
			if msg := checkSyslogURL(str); msg != "" {
				p.errf(v, kp, "%s", msg)
				return
			}
			s.URL = str
		case "format":
			if str != "rfc5424" && str != "rfc3164" {
				p.errf(v, kp, "format %q: want rfc5424 or rfc3164", str)
				return
			}
			s.Format = str
		case "facility":
			if _, ok := SyslogFacilities[str]; !ok {
				p.errf(v, kp, "unknown facility %q (use e.g. local0…local7, auth, daemon, security)", str)
				return
			}
			s.Facility = str
		case "ca_file", "cert_file", "key_file":
			if msg := checkAbsPath(str); msg != "" {
				p.errf(v, kp, "%s", msg)
				return
			}
			switch k {
			case "ca_file":
				s.CAFile = str
			case "cert_file":
				s.CertFile = str
			case "key_file":
				s.KeyFile = str
			}
		case "server_name":
			if str == "" || len(str) > 253 || strings.ContainsAny(str, " /:\t") {
				p.errf(v, kp, "bad server name %q", str)
				return
			}
			s.ServerName = str
		case "min_tls_version":
			if str != "1.2" && str != "1.3" {
				p.errf(v, kp, "min_tls_version %q: want 1.2 or 1.3", str)
				return
			}
			s.MinTLSVersion = str
		}
	})
	if n.Kind != yaml.MappingNode {
		return false
	}
	if nodes["url"] == nil {
		p.errf(n, prefix, `missing required key "url"`)
		return false
	}
	if len(p.errs) > before {
		return false
	}
	scheme := s.Scheme()
	if scheme != "tls" {
		for _, k := range []string{"ca_file", "cert_file", "key_file", "server_name", "min_tls_version"} {
			if v := nodes[k]; v != nil {
				p.errf(v, join(prefix, k), "only for tls:// destinations (this one is %s://)", scheme)
			}
		}
	} else {
		if s.CAFile == "" {
			p.errf(nodes["url"], join(prefix, "ca_file"), "a tls:// destination needs ca_file (the CA that signed the collector's certificate)")
		}
		if (s.CertFile == "") != (s.KeyFile == "") {
			p.errf(n, prefix, "cert_file and key_file go together (the client certificate and its key)")
		}
	}
	if v := nodes["max_message_bytes"]; v != nil && scheme == "udp" && s.MaxMessageBytes > MaxUDPMessageBytes {
		p.errf(v, join(prefix, "max_message_bytes"), "at most %d for udp (one datagram)", MaxUDPMessageBytes)
	}
	return len(p.errs) == before
}

// checkSyslogURL accepts udp://host:port, tcp://host:port, tls://host:port
// and unix:///path.
func checkSyslogURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || !strings.Contains(s, "://") {
		return fmt.Sprintf("bad url %q (use udp://host:514, tcp://host:601, tls://host:6514 or unix:///var/run/syslog)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Sprintf("url %q: no user, query or fragment allowed", s)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Sprintf("url %q: want unix:///absolute/path (three slashes)", s)
		}
		if len(u.Path) > 104 { // sun_path on macOS
			return fmt.Sprintf("url %q: socket path longer than 104 bytes", s)
		}
		return ""
	case "udp", "tcp", "tls":
	default:
		return fmt.Sprintf("url %q: scheme %q: want udp, tcp, tls or unix", s, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Sprintf("url %q: no path allowed after host:port", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return fmt.Sprintf("url %q: want %s://host:port (the port is required)", s, u.Scheme)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("url %q: bad port %q", s, port)
	}
	if len(host) > 253 {
		return fmt.Sprintf("url %q: host name too long", s)
	}
	return ""
}

func checkAbsPath(s string) string {
	switch {
	case s == "":
		return "path must not be empty"
	case len(s) > maxPathLen:
		return fmt.Sprintf("path longer than %d bytes", maxPathLen)
	case strings.ContainsRune(s, 0):
		return "path contains a NUL byte"
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("path %q must be absolute", s)
	}
	return ""
}

func checkInterface(s string) string {
	if s == "" || len(s) > 256 {
		return "interface must be 1 to 256 characters"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(",.-_:@", r)) {
			return fmt.Sprintf("bad interface %q (a name such as en0 or eth0, \"any\", or \"pktap,all\")", s)
		}
	}
	return ""
}

// dirPath reads an absolute directory path, rejecting one another output
// already uses.
func (p *parser) dirPath(v *yaml.Node, kp string, used map[string]string) string {
	s, ok := p.str(v, kp)
	if !ok {
		return ""
	}
	if msg := checkAbsPath(s); msg != "" {
		p.errf(v, kp, "%s", msg)
		return ""
	}
	c := filepath.Clean(s)
	if c == "/" {
		p.errf(v, kp, "the root directory cannot hold exfilwatch's state")
		return ""
	}
	if other, dup := used[c]; dup {
		p.errf(v, kp, "same directory as %s", other)
		return ""
	}
	used[c] = kp
	// Kept as written, so that the strict decoder's result is the same.
	return s
}

func (p *parser) duration(v *yaml.Node, kp string) (Duration, bool) {
	if v.Kind != yaml.ScalarNode {
		p.errf(v, kp, "expected a duration such as 30s, got %s", describe(v))
		return 0, false
	}
	d, msg := ParseDuration(v.Value)
	if msg != "" {
		p.errf(v, kp, "%s", msg)
		return 0, false
	}
	return d, true
}

func (p *parser) boundedSize(v *yaml.Node, kp string, lo, hi ByteSize) ByteSize {
	if v.Kind != yaml.ScalarNode {
		p.errf(v, kp, "expected a byte size such as 10MiB, got %s", describe(v))
		return 0
	}
	b, err := ParseByteSize(v.Value)
	if err != nil {
		p.errf(v, kp, "%v", err)
		return 0
	}
	if b < lo || b > hi {
		p.errf(v, kp, "%s out of range (%d to %d bytes)", strconv.Quote(v.Value), lo, hi)
		return 0
	}
	return b
}

func (p *parser) boundedInt(v *yaml.Node, kp string, lo, hi int) int {
	var n int
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil {
		p.errf(v, kp, "expected a whole number, got %s", describe(v))
		return 0
	}
	if n < lo || n > hi {
		p.errf(v, kp, "%d out of range (%d to %d)", n, lo, hi)
		return 0
	}
	return n
}
