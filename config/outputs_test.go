package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkOutputs asserts what every accepted outputs section guarantees to
// the code that wires it (also run by FuzzParse).
func checkOutputs(t *testing.T, o *Outputs) {
	t.Helper()
	for _, f := range []FileOutput{o.Findings, o.Events} {
		if f.Path != "" && f.Path != "-" && !strings.HasPrefix(f.Path, "/") {
			t.Fatalf("relative file path accepted: %q", f.Path)
		}
		if f.Format != "json" && f.Format != "text" || f.Keep < 1 || f.Keep > MaxKeep || f.MaxBytes < 0 {
			t.Fatalf("bad file output accepted: %+v", f)
		}
	}
	for _, s := range o.Syslog {
		if msg := checkSyslogURL(s.URL); msg != "" {
			t.Fatalf("bad url accepted: %s", msg)
		}
		if _, ok := SyslogFacilities[s.Facility]; !ok || s.Format != "rfc5424" && s.Format != "rfc3164" {
			t.Fatalf("bad syslog output accepted: %+v", s)
		}
		if s.Scheme() == "tls" && (s.CAFile == "" || s.MinTLSVersion == "" || s.TLSServerName() == "") {
			t.Fatalf("tls without CA, version or name accepted: %+v", s)
		}
		if s.MaxMessageBytes < MinMessageBytes || s.MaxMessageBytes > MaxMessageBytes {
			t.Fatalf("message bound accepted: %+v", s)
		}
	}
	if o.Spool.MaxBytes < MinFileBytes || o.Evidence.MaxBytes < MinFileBytes || o.Evidence.MaxFindings < 1 ||
		o.Evidence.Linger <= 0 || o.Evidence.Linger > MaxLinger || o.StatsInterval <= 0 {
		t.Fatalf("bad bounds accepted: %+v", o)
	}
	for _, d := range []string{o.Spool.Dir, o.Evidence.Dir} {
		if d != "" && !strings.HasPrefix(d, "/") {
			t.Fatalf("relative dir accepted: %q", d)
		}
	}
}

func TestOutputsExample(t *testing.T) {
	cfg, err := Load("testdata/exfilwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Outputs
	checkOutputs(t, &o)
	if o.Interface != "en0" {
		t.Errorf("interface = %q", o.Interface)
	}
	if want := (FileOutput{Path: "/var/log/exfilwatch/findings.jsonl", Format: "json", MaxBytes: 50 << 20, Keep: 10}); o.Findings != want {
		t.Errorf("findings = %+v", o.Findings)
	}
	if o.Events.Path != "/var/log/exfilwatch/events.jsonl" || o.Events.MaxBytes != 200<<20 || o.Events.Keep != 3 {
		t.Errorf("events = %+v", o.Events)
	}
	if len(o.Syslog) != 2 {
		t.Fatalf("syslog = %+v", o.Syslog)
	}
	want := SyslogOutput{URL: "tls://siem.example.com:6514", Format: "rfc5424", Facility: "local4",
		CAFile: "/usr/local/etc/exfilwatch/siem-ca.pem", CertFile: "/usr/local/etc/exfilwatch/client.pem",
		KeyFile: "/usr/local/etc/exfilwatch/client.key", ServerName: "siem.example.com", MinTLSVersion: "1.3", MaxMessageBytes: 16 << 10}
	if o.Syslog[0] != want {
		t.Errorf("syslog[0] = %+v", o.Syslog[0])
	}
	// Defaults fill what the second destination leaves out; udp's message
	// bound is one datagram's.
	if s := o.Syslog[1]; s.Format != "rfc3164" || s.Facility != "authpriv" || s.MaxMessageBytes != 2048 || s.MinTLSVersion != "" ||
		s.Scheme() != "udp" || s.Address() != "127.0.0.1:514" || s.FacilityCode() != 10 {
		t.Errorf("syslog[1] = %+v", s)
	}
	if o.Syslog[0].FacilityCode() != 20 || o.Syslog[0].Address() != "siem.example.com:6514" {
		t.Errorf("facility/address: %d %s", o.Syslog[0].FacilityCode(), o.Syslog[0].Address())
	}
	if o.Spool != (SpoolConfig{Dir: "/var/db/exfilwatch/spool", MaxBytes: 256 << 20}) {
		t.Errorf("spool = %+v", o.Spool)
	}
	if o.Evidence != (EvidenceConfig{Dir: "/var/db/exfilwatch/evidence", MaxBytes: 1 << 30, MaxFindings: 500, Linger: Duration(30 * time.Second)}) {
		t.Errorf("evidence = %+v", o.Evidence)
	}
	if o.StatsInterval != Duration(5*time.Minute) {
		t.Errorf("stats_interval = %v", o.StatsInterval)
	}
}

func TestOutputsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("outputs:\n  syslog:\n    - url: tls://[::1]:6514\n      ca_file: /ca.pem\n    - url: unix:///var/run/syslog\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Outputs
	checkOutputs(t, &o)
	if o.Findings.Path != "" || o.Findings.Format != "json" || o.Findings.Keep != DefaultKeep || o.Findings.MaxBytes != 0 {
		t.Errorf("findings = %+v", o.Findings)
	}
	if s := o.Syslog[0]; s.MinTLSVersion != "1.2" || s.MaxMessageBytes != 8192 || s.TLSServerName() != "::1" || s.Facility != "authpriv" {
		t.Errorf("tls = %+v (server name %q)", s, s.TLSServerName())
	}
	if s := o.Syslog[1]; s.Scheme() != "unix" || s.Address() != "/var/run/syslog" || s.MaxMessageBytes != 8192 {
		t.Errorf("unix = %+v", s)
	}
	if o.Spool.MaxBytes != DefaultSpoolBytes || o.Evidence.MaxFindings != DefaultEvidenceCount || o.StatsInterval != DefaultStatsInterval {
		t.Errorf("defaults = %+v", o)
	}
	def, err := Parse(nil, "x")
	if err != nil || !reflect.DeepEqual(def, Default()) || def.Outputs.Evidence.Linger != DefaultLinger {
		t.Errorf("empty = %+v, %v", def, err)
	}
	// "-" is standard output (under launchd: StandardOutPath).
	cfg, err = Parse([]byte("outputs:\n  findings:\n    path: \"-\"\n    format: text\n"), "x")
	if err != nil || cfg.Outputs.Findings.Path != "-" || cfg.Outputs.Findings.Format != "text" {
		t.Errorf("stdout: %+v %v", cfg, err)
	}
}

func TestOutputsErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"unknown key", "outputs:\n  syslogs: []\n",
			`x.yaml:2: outputs.syslogs: unknown key (known: interface, findings, events, syslog, spool, evidence, stats_interval)`},
		{"unknown nested", "outputs:\n  findings:\n    file: /x\n",
			`x.yaml:3: outputs.findings.file: unknown key (known: path, format, max_bytes, keep)`},
		{"relative path", "outputs:\n  findings:\n    path: findings.jsonl\n",
			`x.yaml:3: outputs.findings.path: path "findings.jsonl" must be absolute`},
		{"dir as file", "outputs:\n  events:\n    path: /var/log/\n",
			`x.yaml:3: outputs.events.path: path "/var/log/" names a directory; give a file name`},
		{"same file", "outputs:\n  findings:\n    path: /var/log/x.jsonl\n  events:\n    path: /var/log/x.jsonl\n",
			`x.yaml:2: outputs.events.path: same file as outputs.findings.path`},
		{"bad format", "outputs:\n  findings:\n    format: xml\n",
			`x.yaml:3: outputs.findings.format: format "xml": want json or text`},
		{"tiny rotation", "outputs:\n  findings:\n    path: /f\n    max_bytes: 1KiB\n",
			`x.yaml:4: outputs.findings.max_bytes: "1KiB" out of range (65536 to 1125899906842624 bytes)`},
		{"stdout rotation", "outputs:\n  findings:\n    path: \"-\"\n    max_bytes: 1MiB\n",
			`x.yaml:4: outputs.findings.max_bytes: standard output (path "-") cannot be rotated`},
		{"keep zero", "outputs:\n  events:\n    keep: 0\n",
			`x.yaml:3: outputs.events.keep: 0 out of range (1 to 1000)`},
		{"keep string", "outputs:\n  events:\n    keep: many\n",
			`x.yaml:3: outputs.events.keep: expected a whole number, got "many"`},
		{"syslog not list", "outputs:\n  syslog:\n    url: udp://h:514\n",
			`x.yaml:3: outputs.syslog: expected a list, got a mapping`},
		{"no url", "outputs:\n  syslog:\n    - format: rfc5424\n",
			`x.yaml:3: outputs.syslog[0]: missing required key "url"`},
		{"bad scheme", "outputs:\n  syslog:\n    - url: http://h:80\n",
			`x.yaml:3: outputs.syslog[0].url: url "http://h:80": scheme "http": want udp, tcp, tls or unix`},
		{"no port", "outputs:\n  syslog:\n    - url: tcp://collector\n",
			`x.yaml:3: outputs.syslog[0].url: url "tcp://collector": want tcp://host:port (the port is required)`},
		{"bad port", "outputs:\n  syslog:\n    - url: udp://h:70000\n",
			`x.yaml:3: outputs.syslog[0].url: url "udp://h:70000": bad port "70000"`},
		{"no scheme", "outputs:\n  syslog:\n    - url: collector:514\n",
			`x.yaml:3: outputs.syslog[0].url: bad url "collector:514" (use udp://host:514, tcp://host:601, tls://host:6514 or unix:///var/run/syslog)`},
		{"unix relative", "outputs:\n  syslog:\n    - url: unix://var/run/syslog\n",
			`x.yaml:3: outputs.syslog[0].url: url "unix://var/run/syslog": want unix:///absolute/path (three slashes)`},
		{"query", "outputs:\n  syslog:\n    - url: tcp://h:1?x=y\n",
			`x.yaml:3: outputs.syslog[0].url: url "tcp://h:1?x=y": no user, query or fragment allowed`},
		{"tls without ca", "outputs:\n  syslog:\n    - url: tls://h:6514\n",
			`x.yaml:3: outputs.syslog[0].ca_file: a tls:// destination needs ca_file (the CA that signed the collector's certificate)`},
		{"ca on tcp", "outputs:\n  syslog:\n    - url: tcp://h:601\n      ca_file: /ca.pem\n",
			`x.yaml:4: outputs.syslog[0].ca_file: only for tls:// destinations (this one is tcp://)`},
		{"cert without key", "outputs:\n  syslog:\n    - url: tls://h:6514\n      ca_file: /ca.pem\n      cert_file: /c.pem\n",
			`x.yaml:3: outputs.syslog[0]: cert_file and key_file go together (the client certificate and its key)`},
		{"tls 1.1", "outputs:\n  syslog:\n    - url: tls://h:6514\n      ca_file: /ca.pem\n      min_tls_version: 1.1\n",
			`x.yaml:5: outputs.syslog[0].min_tls_version: min_tls_version "1.1": want 1.2 or 1.3`},
		{"relative ca", "outputs:\n  syslog:\n    - url: tls://h:6514\n      ca_file: ca.pem\n",
			`x.yaml:4: outputs.syslog[0].ca_file: path "ca.pem" must be absolute`},
		{"bad facility", "outputs:\n  syslog:\n    - url: udp://h:514\n      facility: local9\n",
			`x.yaml:4: outputs.syslog[0].facility: unknown facility "local9" (use e.g. local0…local7, auth, daemon, security)`},
		{"bad syslog format", "outputs:\n  syslog:\n    - url: udp://h:514\n      format: json\n",
			`x.yaml:4: outputs.syslog[0].format: format "json": want rfc5424 or rfc3164`},
		{"udp too long", "outputs:\n  syslog:\n    - url: udp://h:514\n      max_message_bytes: 100KiB\n",
			`x.yaml:4: outputs.syslog[0].max_message_bytes: at most 65507 for udp (one datagram)`},
		{"message too short", "outputs:\n  syslog:\n    - url: tcp://h:514\n      max_message_bytes: 100\n",
			`x.yaml:4: outputs.syslog[0].max_message_bytes: "100" out of range (480 to 1048576 bytes)`},
		{"duplicate url", "outputs:\n  syslog:\n    - url: udp://h:514\n    - url: udp://h:514\n",
			`x.yaml:4: outputs.syslog[1]: duplicate destination "udp://h:514" (first at line 3)`},
		{"same dir", "outputs:\n  spool:\n    dir: /var/db/x\n  evidence:\n    dir: /var/db/x/\n",
			`x.yaml:5: outputs.evidence.dir: same directory as outputs.spool.dir`},
		{"root dir", "outputs:\n  spool:\n    dir: /\n",
			`x.yaml:3: outputs.spool.dir: the root directory cannot hold exfilwatch's state`},
		{"bad linger", "outputs:\n  evidence:\n    linger: 1h\n",
			`x.yaml:3: outputs.evidence.linger: duration "1h" exceeds the maximum of 10m0s`},
		{"bad stats", "outputs:\n  stats_interval: 0s\n",
			`x.yaml:2: outputs.stats_interval: duration "0s" must be positive`},
		{"bad interface", "outputs:\n  interface: \"en0; rm\"\n",
			`x.yaml:2: outputs.interface: bad interface "en0; rm" (a name such as en0 or eth0, "any", or "pktap,all")`},
		{"max findings", "outputs:\n  evidence:\n    max_findings: -1\n",
			`x.yaml:3: outputs.evidence.max_findings: -1 out of range (1 to 1000000)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.in), "x.yaml")
			if err == nil {
				t.Fatalf("accepted: %+v", cfg.Outputs)
			}
			if err.Error() != c.want {
				t.Errorf("got  %s\nwant %s", err, c.want)
			}
		})
	}
}

func TestTooManySyslogOutputs(t *testing.T) {
	var b strings.Builder
	b.WriteString("outputs:\n  syslog:\n")
	for i := 0; i < MaxSyslogOutputs+3; i++ {
		b.WriteString("    - url: udp://h:" + string(rune('1'+i%9)) + "\n")
	}
	_, err := Parse([]byte(b.String()), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "at most 16 destinations") {
		t.Fatalf("err = %v", err)
	}
}
