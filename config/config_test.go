package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadExample(t *testing.T) {
	cfg, err := Load("testdata/exfilwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.UseDefaultSensitive() || !cfg.UseDefaultBrowsers() {
		t.Error("use_defaults should be true")
	}
	if got := len(cfg.Sensitive.Classes); got != 3 {
		t.Fatalf("classes = %d", got)
	}
	if c := cfg.Sensitive.Classes[0]; c.Name != "finance" || len(c.Paths) != 2 || c.Paths[1] != "/srv/reports/*/q?.xlsx" {
		t.Errorf("class 0 = %+v", c)
	}
	if cfg.Rule.Window != Duration(15*time.Minute) {
		t.Errorf("window = %v", cfg.Rule.Window)
	}
	if cfg.Rule.MinUploadBytes != 4096 {
		t.Errorf("min_upload_bytes = %d", cfg.Rule.MinUploadBytes)
	}
	if len(cfg.Allowlist) != 3 {
		t.Fatalf("allowlist = %d", len(cfg.Allowlist))
	}
	want := AllowEntry{Name: "backupd", Executable: "/usr/local/bin/backupd", Destinations: StringList{"10.20.0.0/16"}, Reason: "nightly backup to the NAS"}
	if !reflect.DeepEqual(cfg.Allowlist[0], want) {
		t.Errorf("allow 0 = %+v", cfg.Allowlist[0])
	}
	if cfg.Allowlist[1].TeamID != "G7HH3F8CAK" || !reflect.DeepEqual(cfg.Allowlist[2].Destinations, StringList{"*.backup.example.com", "backup.example.com"}) {
		t.Errorf("allowlist = %+v", cfg.Allowlist)
	}
	if got := cfg.Allowlist[2].Classes; !reflect.DeepEqual(got, StringList{"documents", "source_code"}) {
		t.Errorf("allow 2 classes = %q", got)
	}
	if len(cfg.Browsers.Add) != 2 || cfg.Browsers.Add[0] != (BrowserIdentity{Name: "Arc", TeamID: "S6N382Y83G", SigningID: "company.thebrowser.Browser"}) || cfg.Browsers.Add[1].Path != "/usr/lib/librewolf/librewolf" {
		t.Errorf("browsers = %+v", cfg.Browsers)
	}

	cls := cfg.SensitiveClasses("linux")
	m, err := NewPathMatcher(cls)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/home/ann/Finance/2025/tax.pdf":   "finance",
		"/root/Finance":                    "finance",
		"/srv/reports/2025/q3.xlsx":        "finance",
		"/etc/ssh/ssh_host_ed25519_key":    "ssh",
		"/home/ann/.ssh/id_rsa":            "ssh",
		"/home/ann/src/a/b/c/.env":         "source_code",
		"/home/ann/src/.env":               "source_code",
		"/home/ann/Documents/x":            "documents",
		"/srv/reports/2025/q10.xlsx":       "",
		"/home/ann/src/a/b/c/.env.example": "",
	} {
		got, _ := m.Match(p)
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n", "~\n", "null", "---\n---\n"} {
		cfg, err := Parse([]byte(in), "e.yaml")
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if cfg.Rule.Window != DefaultWindow || cfg.Rule.MinUploadBytes != 1024 || !cfg.UseDefaultSensitive() || !cfg.UseDefaultBrowsers() {
			t.Errorf("%q: %+v", in, cfg)
		}
	}
	cfg, _ := Parse([]byte("rule:\n  window: 1h\n"), "e.yaml")
	if cfg.Rule.Window != Duration(time.Hour) || cfg.Rule.MinUploadBytes != DefaultMinUploadBytes {
		t.Errorf("partial rule: %+v", cfg.Rule)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"unknown top", "rules:\n  window: 1m\n",
			`x.yaml:1: rules: unknown key (known: sensitive, rule, allowlist, browsers, outputs)`},
		{"unknown nested", "rule:\n  window: 1m\n  windw: 2m\n",
			`x.yaml:3: rule.windw: unknown key (known: window, min_upload_bytes, bulk_upload_bytes)`},
		{"bad duration", "rule:\n  window: 10 minutes\n",
			`x.yaml:2: rule.window: bad duration "10 minutes" (use e.g. 10m, 1h)`},
		{"bare number duration", "rule:\n  window: 600\n",
			`x.yaml:2: rule.window: bad duration "600" (use e.g. 10m, 1h)`},
		{"zero duration", "rule:\n  window: 0s\n",
			`x.yaml:2: rule.window: duration "0s" must be positive`},
		{"negative duration", "rule:\n  window: -5m\n",
			`x.yaml:2: rule.window: duration "-5m" must be positive`},
		{"long duration", "rule:\n  window: 25h\n",
			`x.yaml:2: rule.window: duration "25h" exceeds the maximum of 24h`},
		{"duration list", "rule:\n  window: [1m]\n",
			`x.yaml:2: rule.window: expected a duration such as 10m, got a list`},
		{"bad size", "rule:\n  min_upload_bytes: 10 XB\n",
			`x.yaml:2: rule.min_upload_bytes: bad byte size "10 XB" (use e.g. 1024, 1KiB, 10MB)`},
		{"fraction size", "rule:\n  min_upload_bytes: 1.5KiB\n",
			`x.yaml:2: rule.min_upload_bytes: bad byte size "1.5KiB" (use e.g. 1024, 1KiB, 10MB)`},
		{"negative size", "rule:\n  min_upload_bytes: -1\n",
			`x.yaml:2: rule.min_upload_bytes: byte size "-1" must not be negative`},
		{"huge size", "rule:\n  min_upload_bytes: 99999999999 GiB\n",
			`x.yaml:2: rule.min_upload_bytes: byte size "99999999999 GiB" out of range`},
		{"bad glob", "sensitive:\n  classes:\n    - name: a\n      paths: [\"~/Doc[uments\"]\n",
			`x.yaml:4: sensitive.classes[0].paths[0]: bad glob "~/Doc[uments": syntax error in pattern`},
		{"relative path", "sensitive:\n  classes:\n    - name: a\n      paths:\n        - Documents\n",
			`x.yaml:5: sensitive.classes[0].paths[0]: path "Documents" must be absolute or start with "~/"`},
		{"other user home", "sensitive:\n  classes:\n    - name: a\n      paths:\n        - ~bob/x\n",
			`x.yaml:5: sensitive.classes[0].paths[0]: path "~bob/x" must be absolute or start with "~/"`},
		{"partial doublestar", "sensitive:\n  classes:\n    - name: a\n      paths:\n        - /a/b**/c\n",
			`x.yaml:5: sensitive.classes[0].paths[0]: bad glob "/a/b**/c": "**" must be a whole path segment`},
		{"too many doublestars", "sensitive:\n  classes:\n    - name: a\n      paths:\n        - /**/a/**/b/**\n",
			`x.yaml:5: sensitive.classes[0].paths[0]: bad glob "/**/a/**/b/**": at most 2 "**" per path`},
		{"duplicate class", "sensitive:\n  classes:\n    - name: a\n      paths: [/a]\n    - name: a\n      paths: [/b]\n",
			`x.yaml:5: sensitive.classes[1].name: duplicate class name "a" (first at line 3)`},
		{"missing name", "sensitive:\n  classes:\n    - paths: [/a]\n",
			`x.yaml:3: sensitive.classes[0]: missing required key "name"`},
		{"missing paths", "sensitive:\n  classes:\n    - name: a\n",
			`x.yaml:3: sensitive.classes[0]: missing required key "paths"`},
		{"empty paths", "sensitive:\n  classes:\n    - name: a\n      paths: []\n",
			`x.yaml:4: sensitive.classes[0].paths: at least one path is required`},
		{"bad class name", "sensitive:\n  classes:\n    - name: My Class\n      paths: [/a]\n",
			`x.yaml:3: sensitive.classes[0].name: bad class name "My Class" (use lower-case letters, digits, _ and -)`},
		{"bad bool", "sensitive:\n  use_defaults: yes\n",
			`x.yaml:2: sensitive.use_defaults: expected true or false, got "yes"`},
		{"classes not list", "sensitive:\n  classes: ssh\n",
			`x.yaml:2: sensitive.classes: expected a list, got "ssh"`},
		{"top not mapping", "- a\n- b\n",
			`x.yaml:1: top level: expected a mapping, got a list`},
		{"duplicate key", "rule:\n  window: 1m\n  window: 2m\n",
			`x.yaml:3: rule.window: duplicate key (first at line 2)`},
		{"no matcher", "allowlist:\n  - reason: because\n",
			`x.yaml:2: allowlist[0]: needs at least one matcher (name, executable, signing_id, team_id or destination)`},
		{"bad cidr", "allowlist:\n  - destination: 10.0.0.0/33\n",
			`x.yaml:2: allowlist[0].destination: bad CIDR "10.0.0.0/33"`},
		{"bad host", "allowlist:\n  - destination: \"exa mple.com\"\n",
			`x.yaml:2: allowlist[0].destination: bad destination "exa mple.com" (use a CIDR, an IP or a host glob such as *.example.com)`},
		{"bad host glob", "allowlist:\n  - destination: \"[a.example.com\"\n",
			`x.yaml:2: allowlist[0].destination: bad host glob "[a.example.com": syntax error in pattern`},
		{"relative executable", "allowlist:\n  - executable: rsync\n",
			`x.yaml:2: allowlist[0].executable: executable "rsync" must be an absolute path`},
		{"bad executable glob", "allowlist:\n  - executable: /usr/bin/[\n",
			`x.yaml:2: allowlist[0].executable: bad glob "/usr/bin/[": syntax error in pattern`},
		{"allow unknown", "allowlist:\n  - exe: /usr/bin/rsync\n",
			"x.yaml:2: allowlist[0].exe: unknown key (known: name, executable, signing_id, team_id, destination, classes, reason)\n" +
				"x.yaml:2: allowlist[0]: needs at least one matcher (name, executable, signing_id, team_id or destination)"},
		{"allow not string", "allowlist:\n  - team_id: [a]\n",
			`x.yaml:2: allowlist[0].team_id: expected a string, got a list`},
		{"signing id alone", "allowlist:\n  - signing_id: com.getdropbox.dropbox\n",
			`x.yaml:2: allowlist[0].signing_id: needs team_id (or executable, for Apple code): any signed binary can claim a signing id`},
		{"signing id with name only", "allowlist:\n  - name: Dropbox\n    signing_id: com.getdropbox.dropbox\n",
			`x.yaml:3: allowlist[0].signing_id: needs team_id (or executable, for Apple code): any signed binary can claim a signing id`},
		{"empty team id", "allowlist:\n  - team_id: \"\"\n",
			`x.yaml:2: allowlist[0].team_id: team_id must not be empty`},
		{"empty name", "allowlist:\n  - name: \"\"\n    executable: /x\n",
			`x.yaml:2: allowlist[0].name: bad process name glob ""`},
		{"bad destination in list", "allowlist:\n  - executable: /x\n    destination:\n      - 10.0.0.0/8\n      - 10.0.0.0/33\n",
			`x.yaml:5: allowlist[0].destination[1]: bad CIDR "10.0.0.0/33"`},
		{"empty destination list", "allowlist:\n  - executable: /x\n    destination: []\n",
			`x.yaml:3: allowlist[0].destination: at least one destination is required`},
		{"destination mapping", "allowlist:\n  - executable: /x\n    destination: {a: b}\n",
			`x.yaml:3: allowlist[0].destination: expected a destination or a list of them, got a mapping`},
		{"destination null item", "allowlist:\n  - executable: /x\n    destination: [a.example.com, ~]\n",
			`x.yaml:3: allowlist[0].destination[1]: expected a destination, got nothing`},
		{"destination nested list", "allowlist:\n  - executable: /x\n    destination: [[a.example.com]]\n",
			`x.yaml:3: allowlist[0].destination[0]: expected a string, got a list`},
		{"empty host label", "allowlist:\n  - executable: /x\n    destination: a..example.com\n",
			`x.yaml:3: allowlist[0].destination: bad host glob "a..example.com": empty label`},
		{"class set spans a dot", "allowlist:\n  - executable: /x\n    destination: \"a[.]b.com\"\n",
			`x.yaml:3: allowlist[0].destination: bad host glob "a[.]b.com": a [...] class must not span a dot`},
		{"unknown class", "allowlist:\n  - executable: /usr/bin/rsync\n    classes: [documents, sshh]\n",
			`x.yaml:3: allowlist[0].classes[1]: unknown class "sshh" (known: documents, desktop, downloads, pictures, mail, messages, keychains, browser_stores, password_stores, ssh, gpg, cloud_credentials, dev_tokens, shell_history)`},
		{"class defined later in the file", "allowlist:\n  - executable: /usr/bin/rsync\n    classes: finance\nsensitive:\n  use_defaults: false\n  classes:\n    - name: payroll\n      paths: [/srv/payroll]\n",
			`x.yaml:3: allowlist[0].classes: unknown class "finance" (known: payroll; sensitive.use_defaults is false)`},
		{"built-in class without defaults", "sensitive:\n  use_defaults: false\nallowlist:\n  - executable: /usr/bin/rsync\n    classes: [ssh]\n",
			`x.yaml:5: allowlist[0].classes[0]: unknown class "ssh" (known: ; sensitive.use_defaults is false)`},
		{"bad class name", "allowlist:\n  - executable: /usr/bin/rsync\n    classes: [\"My Docs\"]\n",
			`x.yaml:3: allowlist[0].classes[0]: bad class name "My Docs" (use lower-case letters, digits, _ and -)`},
		{"classes only", "allowlist:\n  - classes: [documents]\n",
			`x.yaml:2: allowlist[0]: needs at least one matcher (name, executable, signing_id, team_id or destination)`},
		{"empty classes", "allowlist:\n  - executable: /x\n    classes: []\n",
			`x.yaml:3: allowlist[0].classes: at least one class is required`},
		{"browser no identity", "browsers:\n  add:\n    - name: Arc\n",
			`x.yaml:3: browsers.add[0]: needs at least one of team_id, signing_id or path`},
		{"browser bad path", "browsers:\n  add:\n    - name: Arc\n      path: Arc.app\n",
			`x.yaml:4: browsers.add[0].path: executable "Arc.app" must be an absolute path`},
		{"browser unknown", "browsers:\n  ad: []\n",
			`x.yaml:2: browsers.ad: unknown key (known: use_defaults, add)`},
		{"syntax", "rule:\n  window: 1m\n bad: [\n",
			`x.yaml:2: yaml syntax: did not find expected key`},
		{"two documents", "rule: {window: 1m}\n---\nfoo: 1\n",
			`x.yaml:2: only one YAML document is allowed`},
		{"tab", "rule:\n\twindow: 1m\n",
			`x.yaml:2: yaml syntax: found character that cannot start any token`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.in), "x.yaml")
			if err == nil {
				t.Fatalf("no error; cfg = %+v", cfg)
			}
			if cfg != nil {
				t.Error("cfg should be nil on error")
			}
			if err.Error() != c.want {
				t.Errorf("got  %s\nwant %s", err, c.want)
			}
		})
	}
}

func TestMultipleErrorsJoined(t *testing.T) {
	in := `sensitive:
  classes:
    - name: a
      paths: ["~/x["]
    - name: a
      paths: [/b]
rule:
  window: 10 minutes
  min_upload_bytes: lots
  colour: blue
allowlist:
  - reason: none
`
	_, err := Parse([]byte(in), "exfilwatch.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`exfilwatch.yaml:4: sensitive.classes[0].paths[0]: bad glob "~/x[": syntax error in pattern`,
		`exfilwatch.yaml:5: sensitive.classes[1].name: duplicate class name "a" (first at line 3)`,
		`exfilwatch.yaml:8: rule.window: bad duration "10 minutes" (use e.g. 10m, 1h)`,
		`exfilwatch.yaml:9: rule.min_upload_bytes: bad byte size "lots" (use e.g. 1024, 1KiB, 10MB)`,
		`exfilwatch.yaml:10: rule.colour: unknown key (known: window, min_upload_bytes, bulk_upload_bytes)`,
		`exfilwatch.yaml:12: allowlist[0]: needs at least one matcher (name, executable, signing_id, team_id or destination)`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != len(want) {
		t.Errorf("not a joined error of %d", len(want))
	}
}

func TestByteSizes(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "1KiB": 1024, "1 KiB": 1024, "1kib": 1024, "1KB": 1000, "10 MB": 10_000_000,
		"2MiB": 2 << 20, "1GB": 1_000_000_000, "3GiB": 3 << 30, "512B": 512, "512 b": 512, " 7 ": 7, "+5": 5,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "1 TB", "1e3", "0x10", "1,024", "1.0", "- 1", "1 KiB B", "9223372036854775807"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	cfg, err := Parse([]byte("rule:\n  min_upload_bytes: 0\n"), "x")
	if err != nil || cfg.Rule.MinUploadBytes != 0 {
		t.Errorf("0 bytes: %v %v", cfg, err)
	}
}

func TestUseDefaultsFalse(t *testing.T) {
	cfg, err := Parse([]byte("sensitive:\n  use_defaults: false\n  classes:\n    - name: only\n      paths: [~/only]\nbrowsers:\n  use_defaults: false\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UseDefaultBrowsers() {
		t.Error("browsers.use_defaults ignored")
	}
	cls := cfg.SensitiveClasses("darwin")
	if len(cls) != 1 || cls[0].Name != "only" || strings.Join(cls[0].Paths, ",") != "/Users/*/only,/var/root/only" {
		t.Errorf("classes = %+v", cls)
	}
}

func TestAliasesAndNulls(t *testing.T) {
	in := "sensitive:\n  classes:\n    - &c\n      name: a\n      paths: [/a]\nallowlist:\n  - executable: /x\n    reason: ~\nrule:\n  window:\n"
	cfg, err := Parse([]byte(in), "x")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rule.Window != DefaultWindow || len(cfg.Allowlist) != 1 {
		t.Errorf("%+v", cfg)
	}
}

// The example in docs/config.md is the test file, verbatim.
func TestDocsExampleInSync(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Skip("docs not present:", err)
	}
	ex, err := os.ReadFile("testdata/exfilwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || block != string(ex) {
		t.Error("docs/config.md example differs from config/testdata/exfilwatch.yaml")
	}
}

func TestAllowlistClassesAndDestinations(t *testing.T) {
	in := `sensitive:
  classes:
    - name: finance
      paths: [~/Finance]
allowlist:
  - executable: /usr/bin/rsync
    destination: [10.0.0.0/8, "*.backup.example.com", 2001:db8::1]
    classes: [finance, documents]
  - signing_id: com.apple.curl
    executable: /usr/bin/curl
    destination: 192.0.2.7
    classes: ssh
`
	cfg, err := Parse([]byte(in), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []AllowEntry{
		{Executable: "/usr/bin/rsync", Destinations: StringList{"10.0.0.0/8", "*.backup.example.com", "2001:db8::1"}, Classes: StringList{"finance", "documents"}},
		{SigningID: "com.apple.curl", Executable: "/usr/bin/curl", Destinations: StringList{"192.0.2.7"}, Classes: StringList{"ssh"}},
	}
	if !reflect.DeepEqual(cfg.Allowlist, want) {
		t.Errorf("allowlist = %+v", cfg.Allowlist)
	}
}

// A StringList is written back as a plain string when it has one element,
// so files written by programs (baseline learn) read like hand-written ones
// and load again.
func TestStringListMarshalRoundTrip(t *testing.T) {
	cfg := Config{Allowlist: []AllowEntry{
		{Executable: "/usr/bin/rsync", Destinations: StringList{"a.example.com"}, Reason: "one"},
		{TeamID: "G7HH3F8CAK", Destinations: StringList{"10.0.0.0/8", "b.example.com"}, Classes: StringList{"documents"}},
	}}
	b, err := yaml.Marshal(struct {
		Allowlist []AllowEntry `yaml:"allowlist"`
	}{cfg.Allowlist})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "destination: a.example.com\n") || !strings.Contains(string(b), "classes: documents\n") {
		t.Errorf("single elements not written as strings:\n%s", b)
	}
	back, err := Parse(b, "m.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(back.Allowlist, cfg.Allowlist) {
		t.Errorf("round trip: %+v", back.Allowlist)
	}
}

func TestBulkUploadBytes(t *testing.T) {
	cfg, err := Parse([]byte("rule:\n  bulk_upload_bytes: 1MiB\n"), "x.yaml")
	if err != nil || cfg.Rule.BulkUploadBytes != 1<<20 {
		t.Fatalf("%v %d", err, cfg.Rule.BulkUploadBytes)
	}
	if Default().Rule.BulkUploadBytes != 64<<10 {
		t.Fatalf("default %d", Default().Rule.BulkUploadBytes)
	}
	for _, bad := range []string{"0", "-1", "lots", "[1]"} {
		if _, err := Parse([]byte("rule:\n  bulk_upload_bytes: "+bad+"\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "x.yaml:2: rule.bulk_upload_bytes:") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
