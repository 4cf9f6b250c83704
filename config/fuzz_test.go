package config

import (
	"bytes"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/exfilwatch.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{"", "rule:\n  window: 10 minutes\n", "sensitive:\n  classes:\n    - name: a\n      paths: [\"~/[\"]\n",
		"a: &a [*a]\n", "allowlist:\n  - destination: ::1/129\n", "browsers: {add: [{name: x, path: /y}]}\n",
		"outputs:\n  syslog:\n    - url: tls://h:6514\n      ca_file: /ca.pem\n      min_tls_version: 1.3\n",
		"outputs:\n  findings: {path: /f, keep: 0x10, max_bytes: 1MiB}\n  evidence: {dir: /e, linger: 1m}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b, "f.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatal("config with error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") {
					t.Fatalf("error line without file name: %q", line)
				}
			}
			return
		}
		strict := Default()
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(strict); err != nil && err != io.EOF {
			t.Fatalf("strict decode failed after walk passed: %v", err)
		}
		strict.Outputs.fillDefaults()
		checkOutputs(t, &cfg.Outputs)
		if !reflect.DeepEqual(normalize(strict), normalize(cfg)) {
			t.Fatalf("walk and strict decode disagree:\n%+v\n%+v", cfg, strict)
		}
		if cfg.Rule.Window <= 0 || cfg.Rule.Window > MaxWindow || cfg.Rule.MinUploadBytes < 0 {
			t.Fatalf("invalid rule accepted: %+v", cfg.Rule)
		}
		for _, goos := range []string{"linux", "darwin"} {
			m, err := NewPathMatcherFor(cfg.SensitiveClasses(goos), goos)
			if err != nil {
				t.Fatalf("accepted config does not compile: %v", err)
			}
			m.Match("/home/a/.ssh/x")
		}
	})
}

// normalize maps empty slices to nil so the two decoders compare equal.
func normalize(c *Config) Config {
	n := *c
	if len(n.Allowlist) == 0 {
		n.Allowlist = nil
	}
	if len(n.Browsers.Add) == 0 {
		n.Browsers.Add = nil
	}
	if len(n.Sensitive.Classes) == 0 {
		n.Sensitive.Classes = nil
	}
	var cls []PathClass
	for _, pc := range n.Sensitive.Classes {
		if len(pc.Paths) == 0 {
			pc.Paths = nil
		}
		cls = append(cls, pc)
	}
	n.Sensitive.Classes = cls
	if len(n.Outputs.Syslog) == 0 {
		n.Outputs.Syslog = nil
	}
	return n
}
