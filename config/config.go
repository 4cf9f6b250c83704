// Package config loads and validates exfilwatch.yaml: the sensitive-path
// classes, the rule knobs, the process allowlist and the browser identities
// used by the AN0425 detector (non-browser process reads sensitive user files,
// then uploads over HTTP/FTP), and the live sensor's outputs (outputs.go).
//
// Every problem is reported as one line "file:line: key.path: message", and
// all problems in a file are reported together (errors.Join).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for the rule knobs.
const (
	DefaultWindow         = Duration(10 * time.Minute)
	DefaultMinUploadBytes = ByteSize(1024)
	// DefaultBulkUploadBytes is rule.bulk_upload_bytes's default.
	DefaultBulkUploadBytes = ByteSize(64 << 10)
	// MaxWindow is the largest accepted rule.window.
	MaxWindow = Duration(24 * time.Hour)
)

// Config is the decoded exfilwatch.yaml.
type Config struct {
	Sensitive SensitiveConfig `yaml:"sensitive"`
	Rule      RuleConfig      `yaml:"rule"`
	Allowlist []AllowEntry    `yaml:"allowlist"`
	Browsers  BrowserConfig   `yaml:"browsers"`
	// Outputs configure the live sensor's outputs (outputs.go).
	Outputs Outputs `yaml:"outputs"`
}

// SensitiveConfig lists the path classes whose reads arm the rule.
type SensitiveConfig struct {
	// UseDefaults keeps the built-in classes (DefaultSensitive); nil = true.
	UseDefaults *bool       `yaml:"use_defaults"`
	Classes     []PathClass `yaml:"classes"`
}

// PathClass is a named set of path globs. A path matches the class when it is
// a listed path or anything below it. "~" stands for every user's home.
type PathClass struct {
	Name  string   `yaml:"name"`
	Paths []string `yaml:"paths"`
}

// RuleConfig holds the correlation knobs.
type RuleConfig struct {
	// Window is how long after a sensitive read an upload is attributed to it.
	Window Duration `yaml:"window"`
	// MinUploadBytes is the smallest outbound body that counts as an upload.
	MinUploadBytes ByteSize `yaml:"min_upload_bytes"`
	// BulkUploadBytes is the smallest outbound payload of a flow no parser
	// understood (TLS, other protocols) that counts as an upload.
	BulkUploadBytes ByteSize `yaml:"bulk_upload_bytes"`
}

// AllowEntry exempts legitimate automation. All set matchers must match
// (AND); at least one of name, executable, signing_id, team_id or
// destination must be set (classes only narrows an entry).
type AllowEntry struct {
	Name       string `yaml:"name,omitempty"`       // process name glob (spoofable; combine with others)
	Executable string `yaml:"executable,omitempty"` // executable path glob
	SigningID  string `yaml:"signing_id,omitempty"` // macOS code-signing identifier (needs team_id or executable)
	TeamID     string `yaml:"team_id,omitempty"`    // macOS team identifier
	// Destinations are CIDRs, IPs or host globs; any one may match. The key
	// is "destination" and takes one string or a list.
	Destinations StringList `yaml:"destination,omitempty"`
	// Classes are sensitive class names; the entry matches only when every
	// class the upload's files belong to is listed. One string or a list.
	Classes StringList `yaml:"classes,omitempty"`
	Reason  string     `yaml:"reason,omitempty"` // free text, for reviewers
}

// StringList is a YAML value written as one string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a scalar or a list of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, it := range n.Content {
			it = resolve(it)
			if it == nil || it.Kind != yaml.ScalarNode || isNull(it) {
				return fmt.Errorf("line %d: expected a string", n.Line)
			}
			out = append(out, it.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: expected a string or a list of strings", n.Line)
}

// MarshalYAML writes one element as a plain string, so that a file written
// by baseline learn reads like a hand-written one.
func (l StringList) MarshalYAML() (any, error) {
	if len(l) == 1 {
		return l[0], nil
	}
	return []string(l), nil
}

// BrowserConfig identifies browsers (their reads and uploads are expected).
type BrowserConfig struct {
	// UseDefaults keeps the built-in browser identities; nil = true.
	UseDefaults *bool             `yaml:"use_defaults"`
	Add         []BrowserIdentity `yaml:"add"`
}

// BrowserIdentity names one browser; at least one of TeamID, SigningID, Path.
type BrowserIdentity struct {
	Name      string `yaml:"name"`
	TeamID    string `yaml:"team_id"`
	SigningID string `yaml:"signing_id"`
	Path      string `yaml:"path"` // executable path glob
}

// UseDefaultSensitive reports whether the built-in classes are kept.
func (c *Config) UseDefaultSensitive() bool {
	return c.Sensitive.UseDefaults == nil || *c.Sensitive.UseDefaults
}

// UseDefaultBrowsers reports whether the built-in browser identities are kept.
func (c *Config) UseDefaultBrowsers() bool {
	return c.Browsers.UseDefaults == nil || *c.Browsers.UseDefaults
}

// Default returns the configuration of an empty file.
func Default() *Config {
	c := &Config{Rule: RuleConfig{Window: DefaultWindow, MinUploadBytes: DefaultMinUploadBytes, BulkUploadBytes: DefaultBulkUploadBytes}}
	c.Outputs.fillDefaults()
	return c
}

// Duration is a time.Duration written as "10m", "1h30m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts the same values as rule.window.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, msg := ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || msg != "" {
		return fmt.Errorf("line %d: %s", n.Line, msg)
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as "10m0s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ByteSize is a byte count written as 1024, "1KiB" or "10 MB".
type ByteSize int64

// UnmarshalYAML accepts the same values as rule.min_upload_bytes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a byte size", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// Load reads and parses the file at p; errors name p.
func Load(p string) (*Config, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return Parse(b, p)
}

// Parse decodes and validates a configuration; name is used in errors.
// An empty document gives Default(). On error the Config is nil and the error
// joins one line per problem.
func Parse(b []byte, name string) (*Config, error) {
	var doc yaml.Node
	nodes := yaml.NewDecoder(bytes.NewReader(b))
	if err := nodes.Decode(&doc); err != nil && err != io.EOF {
		return nil, syntaxError(name, err)
	}
	for {
		var more yaml.Node
		err := nodes.Decode(&more)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, syntaxError(name, err)
		}
		if len(more.Content) > 0 && !isNull(more.Content[0]) {
			return nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, more.Line)
		}
	}
	p := &parser{name: name}
	cfg := Default()
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	switch {
	case root.Kind == 0 || root.Kind == yaml.DocumentNode || isNull(root):
		// empty file or only comments: defaults
	default:
		p.top(root, cfg)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	// Second gate: the strict struct decode must agree with the walk above
	// (which exists to give every problem a key path and to report them all).
	strict := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(strict); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %s", name, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	cfg.Outputs.fillDefaults()
	return cfg, nil
}

// syntaxError turns "yaml: line 3: msg" into "name:3: yaml: msg".
func syntaxError(name string, err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return fmt.Errorf("%s:%s: yaml syntax: %s", name, rest[:i], rest[i+2:])
			}
		}
	}
	return fmt.Errorf("%s: yaml syntax: %s", name, msg)
}

type parser struct {
	name string
	errs []error
	// classRefs are allowlist classes, checked once the whole file (and so
	// every sensitive class it defines) has been read.
	classRefs []classRef
}

type classRef struct {
	n     *yaml.Node
	kpath string
	name  string
}

// maxErrors bounds the report for hostile or badly broken files.
const maxErrors = 50

func (p *parser) errf(n *yaml.Node, key, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, fmt.Errorf("%s:%d: too many errors", p.name, n.Line))
	}
	if len(p.errs) > maxErrors {
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.name, n.Line, key, fmt.Sprintf(format, args...)))
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// fields walks a mapping, rejecting unknown and duplicate keys, and calls
// set for every known key with a non-null value.
func (p *parser) fields(n *yaml.Node, prefix string, known []string, set func(key string, v *yaml.Node, kpath string)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		what := prefix
		if what == "" {
			what = "top level"
		}
		p.errf(n, what, "expected a mapping, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errf(k, join(prefix, "?"), "keys must be plain strings")
			continue
		}
		kp := join(prefix, k.Value)
		if k.Tag == "!!merge" {
			p.errf(k, kp, "merge keys (<<) are not supported")
			continue
		}
		if !contains(known, k.Value) {
			p.errf(k, kp, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.errf(k, kp, "duplicate key (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if v == nil || isNull(v) {
			continue
		}
		set(k.Value, v, kp)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(v *yaml.Node, kp string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!binary" {
		p.errf(v, kp, "expected a string, got %s", describe(v))
		return "", false
	}
	return v.Value, true
}

func (p *parser) boolean(v *yaml.Node, kp string) *bool {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(v.Value))
		if err == nil {
			return &b
		}
	}
	p.errf(v, kp, "expected true or false, got %s", describe(v))
	return nil
}

func (p *parser) seq(v *yaml.Node, kp string, each func(i int, item *yaml.Node, ip string)) {
	if v.Kind != yaml.SequenceNode {
		p.errf(v, kp, "expected a list, got %s", describe(v))
		return
	}
	for i, it := range v.Content {
		it = resolve(it)
		if it == nil {
			continue
		}
		each(i, it, fmt.Sprintf("%s[%d]", kp, i))
	}
}

func (p *parser) top(n *yaml.Node, cfg *Config) {
	p.fields(n, "", []string{"sensitive", "rule", "allowlist", "browsers", "outputs"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "sensitive":
			p.sensitive(v, kp, &cfg.Sensitive)
		case "rule":
			p.rule(v, kp, &cfg.Rule)
		case "allowlist":
			p.allowlist(v, kp, cfg)
		case "browsers":
			p.browsers(v, kp, &cfg.Browsers)
		case "outputs":
			p.outputs(v, kp, &cfg.Outputs)
		}
	})
	p.checkClassRefs(cfg)
}

// checkClassRefs reports allowlist classes that name no class: not a
// built-in one (while sensitive.use_defaults holds; the built-in names are
// the same on macOS and Linux, both sets are accepted) and not one the file
// defines.
func (p *parser) checkClassRefs(cfg *Config) {
	if len(p.classRefs) == 0 {
		return
	}
	var known []string
	if cfg.UseDefaultSensitive() {
		for _, goos := range []string{"darwin", "linux"} {
			for _, c := range DefaultSensitive(goos) {
				if !contains(known, c.Name) {
					known = append(known, c.Name)
				}
			}
		}
	}
	for _, c := range cfg.Sensitive.Classes {
		if c.Name != "" && !contains(known, c.Name) {
			known = append(known, c.Name)
		}
	}
	for _, r := range p.classRefs {
		if contains(known, r.name) {
			continue
		}
		hint := ""
		if !cfg.UseDefaultSensitive() {
			hint = "; sensitive.use_defaults is false"
		}
		p.errf(r.n, r.kpath, "unknown class %q (known: %s%s)", r.name, strings.Join(known, ", "), hint)
	}
}

func (p *parser) sensitive(n *yaml.Node, prefix string, s *SensitiveConfig) {
	p.fields(n, prefix, []string{"use_defaults", "classes"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "use_defaults":
			s.UseDefaults = p.boolean(v, kp)
		case "classes":
			firstLine := map[string]int{}
			p.seq(v, kp, func(_ int, it *yaml.Node, ip string) {
				var c PathClass
				var nameNode *yaml.Node
				hasPaths := false
				p.fields(it, ip, []string{"name", "paths"}, func(k string, v *yaml.Node, kp string) {
					switch k {
					case "name":
						if s, ok := p.str(v, kp); ok {
							if err := checkClassName(s); err != "" {
								p.errf(v, kp, "%s", err)
							} else {
								c.Name, nameNode = s, v
							}
						}
					case "paths":
						hasPaths = true
						p.seq(v, kp, func(_ int, pv *yaml.Node, pp string) {
							if s, ok := p.str(pv, pp); ok {
								if msg := checkPathGlob(s); msg != "" {
									p.errf(pv, pp, "%s", msg)
								} else {
									c.Paths = append(c.Paths, s)
								}
							}
						})
						if len(v.Content) == 0 && v.Kind == yaml.SequenceNode {
							p.errf(v, kp, "at least one path is required")
						}
					}
				})
				if it.Kind != yaml.MappingNode {
					return
				}
				if nameNode == nil && !hasKey(it, "name") {
					p.errf(it, ip, `missing required key "name"`)
				}
				if !hasPaths {
					p.errf(it, ip, `missing required key "paths"`)
				}
				if nameNode != nil {
					if line, dup := firstLine[c.Name]; dup {
						p.errf(nameNode, ip+".name", "duplicate class name %q (first at line %d)", c.Name, line)
						return
					}
					firstLine[c.Name] = nameNode.Line
				}
				s.Classes = append(s.Classes, c)
			})
		}
	})
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && !isNull(resolve(m.Content[i+1])) {
			return true
		}
	}
	return false
}

func checkClassName(s string) string {
	if s == "" {
		return "class name must not be empty"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Sprintf("bad class name %q (use lower-case letters, digits, _ and -)", s)
		}
	}
	return ""
}

// checkPathGlob validates a sensitive path pattern: absolute or "~"-relative,
// path.Match syntax per segment, "**" only as a whole segment.
func checkPathGlob(s string) string {
	if s != "~" && !strings.HasPrefix(s, "~/") && !strings.HasPrefix(s, "/") {
		return fmt.Sprintf("path %q must be absolute or start with \"~/\"", s)
	}
	if err := checkGlob(s); err != nil {
		return fmt.Sprintf("bad glob %q: %v", s, err)
	}
	return ""
}

// maxDoubleStar bounds "**" segments per pattern (each one multiplies the
// matching work by the path depth).
const maxDoubleStar = 2

// checkGlob validates path.Match syntax (filepath.ErrBadPattern).
func checkGlob(s string) error {
	if strings.Count(s, "**") > maxDoubleStar {
		return fmt.Errorf(`at most %d "**" per path`, maxDoubleStar)
	}
	for _, seg := range strings.Split(s, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return err
		}
		if strings.Contains(seg, "**") && seg != "**" {
			return errors.New(`"**" must be a whole path segment`)
		}
	}
	return nil
}

func (p *parser) rule(n *yaml.Node, prefix string, r *RuleConfig) {
	p.fields(n, prefix, []string{"window", "min_upload_bytes", "bulk_upload_bytes"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "window":
			if v.Kind != yaml.ScalarNode {
				p.errf(v, kp, "expected a duration such as 10m, got %s", describe(v))
				return
			}
			d, msg := ParseDuration(v.Value)
			if msg != "" {
				p.errf(v, kp, "%s", msg)
				return
			}
			r.Window = d
		case "min_upload_bytes":
			if v.Kind != yaml.ScalarNode {
				p.errf(v, kp, "expected a byte size such as 1KiB, got %s", describe(v))
				return
			}
			b, err := ParseByteSize(v.Value)
			if err != nil {
				p.errf(v, kp, "%v", err)
				return
			}
			r.MinUploadBytes = b
		case "bulk_upload_bytes":
			if v.Kind != yaml.ScalarNode {
				p.errf(v, kp, "expected a byte size such as 64KiB, got %s", describe(v))
				return
			}
			b, err := ParseByteSize(v.Value)
			if err != nil {
				p.errf(v, kp, "%v", err)
				return
			}
			if b <= 0 {
				p.errf(v, kp, "must be positive (every flow would be an upload)")
				return
			}
			r.BulkUploadBytes = b
		}
	})
}

// ParseDuration parses a rule window: a Go duration, positive, at most 24h.
// The second result is an error message, empty on success.
func ParseDuration(s string) (Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Sprintf("bad duration %q (use e.g. 10m, 1h)", s)
	}
	if d <= 0 {
		return 0, fmt.Sprintf("duration %q must be positive", s)
	}
	if Duration(d) > MaxWindow {
		return 0, fmt.Sprintf("duration %q exceeds the maximum of 24h", s)
	}
	return Duration(d), ""
}

var units = []struct {
	name string
	mult int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"b", 1},
}

// ParseByteSize parses a non-negative whole number of bytes with an optional
// unit (B, KB, KiB, MB, MiB, GB, GiB; case-insensitive; KB = 1000, KiB = 1024).
func ParseByteSize(s string) (ByteSize, error) {
	bad := fmt.Errorf("bad byte size %q (use e.g. 1024, 1KiB, 10MB)", s)
	t := strings.TrimSpace(s)
	num, mult := t, int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.name) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.name)]), u.mult
			break
		}
	}
	if num == "" {
		return 0, bad
	}
	for i, r := range num {
		if !(r >= '0' && r <= '9' || i == 0 && (r == '-' || r == '+')) {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q out of range", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("byte size %q must not be negative", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("byte size %q out of range", s)
	}
	return ByteSize(n * mult), nil
}

func (p *parser) allowlist(n *yaml.Node, kp string, cfg *Config) {
	p.seq(n, kp, func(_ int, it *yaml.Node, ip string) {
		var e AllowEntry
		var signingNode *yaml.Node
		p.fields(it, ip, []string{"name", "executable", "signing_id", "team_id", "destination", "classes", "reason"}, func(k string, v *yaml.Node, kp string) {
			switch k {
			case "destination":
				e.Destinations = p.stringList(v, kp, "destination", func(s string, n *yaml.Node, ip string) bool {
					if msg := checkDestination(s); msg != "" {
						p.errf(n, ip, "%s", msg)
						return false
					}
					return true
				})
				return
			case "classes":
				e.Classes = p.stringList(v, kp, "class", func(s string, n *yaml.Node, ip string) bool {
					if msg := checkClassName(s); msg != "" {
						p.errf(n, ip, "%s", msg)
						return false
					}
					p.classRefs = append(p.classRefs, classRef{n, ip, s})
					return true
				})
				return
			}
			s, ok := p.str(v, kp)
			if !ok {
				return
			}
			switch k {
			case "name":
				if err := checkGlob(s); err != nil || strings.Contains(s, "/") || s == "" {
					p.errf(v, kp, "bad process name glob %q", s)
					return
				}
				e.Name = s
			case "executable":
				if msg := checkExecGlob(s); msg != "" {
					p.errf(v, kp, "%s", msg)
					return
				}
				e.Executable = s
			case "signing_id":
				if s == "" {
					p.errf(v, kp, "signing_id must not be empty")
					return
				}
				e.SigningID, signingNode = s, v
			case "team_id":
				if s == "" {
					p.errf(v, kp, "team_id must not be empty")
					return
				}
				e.TeamID = s
			case "reason":
				e.Reason = s
			}
		})
		if it.Kind != yaml.MappingNode {
			return
		}
		if !hasKey(it, "name") && !hasKey(it, "executable") && !hasKey(it, "signing_id") && !hasKey(it, "team_id") && !hasKey(it, "destination") {
			p.errf(it, ip, "needs at least one matcher (name, executable, signing_id, team_id or destination)")
			return
		}
		// Any developer can sign a binary with any identifier; only the team
		// id is Apple's to give. Apple's own code has no team id, so there
		// the executable path pins it.
		if signingNode != nil && !hasKey(it, "team_id") && !hasKey(it, "executable") {
			p.errf(signingNode, ip+".signing_id", "needs team_id (or executable, for Apple code): any signed binary can claim a signing id")
		}
		cfg.Allowlist = append(cfg.Allowlist, e)
	})
}

// stringList reads one string or a non-empty list of strings, checking each
// with check (which reports its own problem). what names an element in
// messages.
func (p *parser) stringList(v *yaml.Node, kp, what string, check func(s string, n *yaml.Node, ip string) bool) StringList {
	if v.Kind == yaml.ScalarNode {
		if s, ok := p.str(v, kp); ok && check(s, v, kp) {
			return StringList{s}
		}
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.errf(v, kp, "expected a %s or a list of them, got %s", what, describe(v))
		return nil
	}
	if len(v.Content) == 0 {
		p.errf(v, kp, "at least one %s is required", what)
		return nil
	}
	var out StringList
	for i, it := range v.Content {
		it = resolve(it)
		ip := fmt.Sprintf("%s[%d]", kp, i)
		if it == nil || isNull(it) {
			p.errf(v, ip, "expected a %s, got nothing", what)
			continue
		}
		if s, ok := p.str(it, ip); ok && check(s, it, ip) {
			out = append(out, s)
		}
	}
	return out
}

func checkExecGlob(s string) string {
	if !strings.HasPrefix(s, "/") {
		return fmt.Sprintf("executable %q must be an absolute path", s)
	}
	if err := checkGlob(s); err != nil {
		return fmt.Sprintf("bad glob %q: %v", s, err)
	}
	return ""
}

// checkDestination accepts a CIDR ("10.0.0.0/8"), an IP, or a host glob
// ("*.example.com").
func checkDestination(s string) string {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Sprintf("bad CIDR %q", s)
		}
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if s == "" {
		return "destination must not be empty"
	}
	if _, err := path.Match(s, ""); err != nil {
		return fmt.Sprintf("bad host glob %q: %v", s, err)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_*?[]!^", r)) {
			return fmt.Sprintf("bad destination %q (use a CIDR, an IP or a host glob such as *.example.com)", s)
		}
	}
	// Host globs are matched label by label (sensor/detect), so each label
	// must be a glob of its own.
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" {
			return fmt.Sprintf("bad host glob %q: empty label", s)
		}
		if _, err := path.Match(label, ""); err != nil {
			return fmt.Sprintf("bad host glob %q: a [...] class must not span a dot", s)
		}
	}
	return ""
}

func (p *parser) browsers(n *yaml.Node, prefix string, b *BrowserConfig) {
	p.fields(n, prefix, []string{"use_defaults", "add"}, func(k string, v *yaml.Node, kp string) {
		switch k {
		case "use_defaults":
			b.UseDefaults = p.boolean(v, kp)
		case "add":
			p.seq(v, kp, func(_ int, it *yaml.Node, ip string) {
				var id BrowserIdentity
				p.fields(it, ip, []string{"name", "team_id", "signing_id", "path"}, func(k string, v *yaml.Node, kp string) {
					s, ok := p.str(v, kp)
					if !ok {
						return
					}
					switch k {
					case "name":
						id.Name = s
					case "team_id":
						id.TeamID = s
					case "signing_id":
						id.SigningID = s
					case "path":
						if msg := checkExecGlob(s); msg != "" {
							p.errf(v, kp, "%s", msg)
							return
						}
						id.Path = s
					}
				})
				if it.Kind != yaml.MappingNode {
					return
				}
				if !hasKey(it, "name") {
					p.errf(it, ip, `missing required key "name"`)
				}
				if !hasKey(it, "team_id") && !hasKey(it, "signing_id") && !hasKey(it, "path") {
					p.errf(it, ip, "needs at least one of team_id, signing_id or path")
					return
				}
				b.Add = append(b.Add, id)
			})
		}
	})
}
