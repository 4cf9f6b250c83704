package config

import (
	"exfilwatch/attribution"

	"fmt"
	"path"
	"strings"
)

// HomeGlobs returns the globs that "~" stands for on goos: every user's home.
func HomeGlobs(goos string) []string {
	if goos == "darwin" {
		return []string{"/Users/*", "/var/root"}
	}
	return []string{"/home/*", "/root"}
}

func chromium(base string) []string {
	var out []string
	for _, f := range []string{"Cookies", "Network/Cookies", "Login Data", "Login Data For Account", "Web Data"} {
		out = append(out, base+"/*/"+f)
	}
	return append(out, base+"/Local State")
}

func firefox(profiles string) []string {
	var out []string
	for _, f := range []string{"cookies.sqlite", "logins.json", "key4.db", "key3.db", "signons.sqlite"} {
		out = append(out, profiles+"/*/"+f)
	}
	return out
}

var commonClasses = []PathClass{
	{Name: "ssh", Paths: []string{"~/.ssh"}},
	{Name: "gpg", Paths: []string{"~/.gnupg"}},
	{Name: "cloud_credentials", Paths: []string{"~/.aws", "~/.config/gcloud", "~/.azure", "~/.kube", "~/.docker/config.json", "~/.oci", "~/.config/doctl"}},
	{Name: "dev_tokens", Paths: []string{"~/.netrc", "~/.git-credentials", "~/.npmrc", "~/.pypirc", "~/.config/gh/hosts.yml", "~/.terraform.d/credentials.tfrc.json", "~/.vault-token"}},
	{Name: "shell_history", Paths: []string{"~/.bash_history", "~/.zsh_history", "~/.zsh_sessions", "~/.python_history", "~/.psql_history", "~/.mysql_history", "~/.local/share/fish/fish_history"}},
}

// DefaultSensitive returns the built-in classes for goos ("darwin"; anything
// else gets the Linux set). Paths use "~" for every user's home.
func DefaultSensitive(goos string) []PathClass {
	var cls []PathClass
	if goos == "darwin" {
		var browsers []string
		browsers = append(browsers, chromium("~/Library/Application Support/Google/Chrome")...)
		browsers = append(browsers, chromium("~/Library/Application Support/Chromium")...)
		browsers = append(browsers, chromium("~/Library/Application Support/BraveSoftware/Brave-Browser")...)
		browsers = append(browsers, chromium("~/Library/Application Support/Microsoft Edge")...)
		browsers = append(browsers, chromium("~/Library/Application Support/Vivaldi")...)
		browsers = append(browsers, firefox("~/Library/Application Support/Firefox/Profiles")...)
		browsers = append(browsers,
			"~/Library/Cookies/Cookies.binarycookies",
			"~/Library/Containers/com.apple.Safari/Data/Library/Cookies/Cookies.binarycookies",
			"~/Library/Safari")
		cls = []PathClass{
			{Name: "documents", Paths: []string{"~/Documents", "~/Library/Mobile Documents"}},
			{Name: "desktop", Paths: []string{"~/Desktop"}},
			{Name: "downloads", Paths: []string{"~/Downloads"}},
			{Name: "pictures", Paths: []string{"~/Pictures"}},
			{Name: "mail", Paths: []string{"~/Library/Mail", "~/Library/Containers/com.apple.mail"}},
			{Name: "messages", Paths: []string{"~/Library/Messages"}},
			{Name: "keychains", Paths: []string{"~/Library/Keychains", "/Library/Keychains"}},
			{Name: "browser_stores", Paths: browsers},
			{Name: "password_stores", Paths: []string{"~/.password-store", "~/Library/Group Containers/2BUA8C4S2C.com.1password", "~/Library/Application Support/Bitwarden", "~/**/*.kdbx"}},
		}
	} else {
		var browsers []string
		browsers = append(browsers, chromium("~/.config/google-chrome")...)
		browsers = append(browsers, chromium("~/.config/chromium")...)
		browsers = append(browsers, chromium("~/.config/BraveSoftware/Brave-Browser")...)
		browsers = append(browsers, chromium("~/.config/microsoft-edge")...)
		browsers = append(browsers, chromium("~/.config/vivaldi")...)
		browsers = append(browsers, chromium("~/snap/chromium/common/chromium")...)
		browsers = append(browsers, firefox("~/.mozilla/firefox")...)
		browsers = append(browsers, firefox("~/snap/firefox/common/.mozilla/firefox")...)
		browsers = append(browsers, firefox("~/.var/app/org.mozilla.firefox/.mozilla/firefox")...)
		cls = []PathClass{
			{Name: "documents", Paths: []string{"~/Documents"}},
			{Name: "desktop", Paths: []string{"~/Desktop"}},
			{Name: "downloads", Paths: []string{"~/Downloads"}},
			{Name: "pictures", Paths: []string{"~/Pictures"}},
			{Name: "mail", Paths: []string{"~/.thunderbird", "~/Mail", "~/.local/share/evolution/mail", "/var/mail", "/var/spool/mail"}},
			{Name: "messages", Paths: []string{"~/.config/Signal", "~/.local/share/TelegramDesktop", "~/.config/Slack"}},
			{Name: "keychains", Paths: []string{"~/.local/share/keyrings", "~/.pki/nssdb"}},
			{Name: "browser_stores", Paths: browsers},
			{Name: "password_stores", Paths: []string{"~/.password-store", "~/.config/1Password", "~/.config/Bitwarden", "~/**/*.kdbx"}},
		}
	}
	for _, c := range commonClasses {
		cls = append(cls, PathClass{Name: c.Name, Paths: append([]string(nil), c.Paths...)})
	}
	return cls
}

// ExpandHome replaces a leading "~" with every home glob of goos.
func ExpandHome(p, goos string) []string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return []string{p}
	}
	var out []string
	for _, h := range HomeGlobs(goos) {
		out = append(out, h+p[1:])
	}
	return out
}

// SensitiveClasses merges the defaults (unless sensitive.use_defaults is
// false) with the configured classes, "~" expanded for goos. A configured
// class with a default's name adds paths to it; other classes follow the
// defaults in file order.
func (c *Config) SensitiveClasses(goos string) []PathClass {
	var out []PathClass
	idx := map[string]int{}
	add := func(pc PathClass) {
		i, ok := idx[pc.Name]
		if !ok {
			i = len(out)
			idx[pc.Name] = i
			out = append(out, PathClass{Name: pc.Name})
		}
		for _, p := range pc.Paths {
			out[i].Paths = append(out[i].Paths, ExpandHome(p, goos)...)
		}
	}
	if c == nil || c.UseDefaultSensitive() {
		for _, pc := range DefaultSensitive(goos) {
			add(pc)
		}
	}
	if c != nil {
		for _, pc := range c.Sensitive.Classes {
			add(pc)
		}
	}
	return out
}

// PathMatcher tells which sensitive class a path belongs to. A class path
// matches the path itself and everything below it. Segments are literal,
// path.Match globs ("*" stays within a segment and matches dotfiles), or
// "**" (any number of segments, including none). Patterns are compiled into
// a segment trie once; Match does no regexp and at most one allocation.
type PathMatcher struct {
	root     *node
	names    []string
	foldCase bool
}

type node struct {
	lit   map[string]*node
	globs []globChild
	any   *node // "**"
	isAny bool  // this node is a "**" node
	class int   // class index + 1 when a pattern ends here; 0 otherwise
}

type globChild struct {
	pat string
	n   *node
}

// NewPathMatcher compiles classes (absolute paths, "~" already expanded),
// case-sensitively. Earlier classes win when several match.
func NewPathMatcher(classes []PathClass) (*PathMatcher, error) {
	return newPathMatcher(classes, false)
}

// NewPathMatcherFor is NewPathMatcher with goos's case rule: darwin (APFS
// default) compares case-insensitively.
func NewPathMatcherFor(classes []PathClass, goos string) (*PathMatcher, error) {
	return newPathMatcher(classes, goos == "darwin")
}

func newPathMatcher(classes []PathClass, fold bool) (*PathMatcher, error) {
	m := &PathMatcher{root: &node{}, foldCase: fold}
	m.names = make([]string, len(classes))
	for ci, c := range classes {
		m.names[ci] = c.Name
		for _, p := range c.Paths {
			if !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("class %s: path %q is not absolute", c.Name, p)
			}
			if err := checkGlob(p); err != nil {
				return nil, fmt.Errorf("class %s: bad glob %q: %v", c.Name, p, err)
			}
			if fold {
				p = strings.ToLower(p)
			}
			n := m.root
			for _, seg := range strings.Split(p, "/") {
				if seg == "" || seg == "." {
					continue
				}
				n = n.child(seg)
			}
			if n.class == 0 || n.class > ci+1 {
				n.class = ci + 1
			}
		}
	}
	return m, nil
}

func (n *node) child(seg string) *node {
	switch {
	case seg == "**":
		if n.isAny {
			return n // "**/**" is "**"
		}
		if n.any == nil {
			n.any = &node{isAny: true}
		}
		return n.any
	case strings.ContainsAny(seg, `*?[\`):
		for _, g := range n.globs {
			if g.pat == seg {
				return g.n
			}
		}
		c := &node{}
		n.globs = append(n.globs, globChild{seg, c})
		return c
	default:
		if n.lit == nil {
			n.lit = map[string]*node{}
		}
		c := n.lit[seg]
		if c == nil {
			c = &node{}
			n.lit[seg] = c
		}
		return c
	}
}

// Match returns the class of an absolute path. The path is cleaned first
// (so "/home/a/../b/.ssh" is judged as "/home/b/.ssh").
func (m *PathMatcher) Match(p string) (class string, ok bool) {
	if m == nil || !strings.HasPrefix(p, "/") {
		return "", false
	}
	p = path.Clean(p)
	if m.foldCase {
		p = strings.ToLower(p)
	}
	var buf [32]string
	segs := buf[:0]
	for rest := p[1:]; rest != ""; {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			segs = append(segs, rest)
			break
		}
		segs = append(segs, rest[:i])
		rest = rest[i+1:]
	}
	best := m.root.match(segs, 0)
	if best == 0 {
		return "", false
	}
	return m.names[best-1], true
}

// match returns the smallest class index+1 reachable, 0 if none.
func (n *node) match(segs []string, depth int) int {
	best := n.class
	if depth > 64 {
		return best
	}
	if len(segs) == 0 {
		if n.any != nil {
			best = minClass(best, n.any.match(segs, depth+1))
		}
		return best
	}
	if best == 1 {
		return best
	}
	if c := n.lit[segs[0]]; c != nil {
		best = minClass(best, c.match(segs[1:], depth+1))
	}
	for _, g := range n.globs {
		if ok, _ := path.Match(g.pat, segs[0]); ok {
			best = minClass(best, g.n.match(segs[1:], depth+1))
		}
	}
	if n.any != nil {
		for i := 0; i <= len(segs); i++ {
			best = minClass(best, n.any.match(segs[i:], depth+1))
		}
	}
	return best
}

func minClass(a, b int) int {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// DefaultBrowsers returns the built-in browser identities for goos. On darwin
// they are code-signing identities (team ID plus signing-ID prefix; helper
// processes such as "Google Chrome Helper" share the team ID); Safari is an
// Apple platform binary, which has no team ID. Elsewhere they are executable
// path globs.
func DefaultBrowsers(goos string) []BrowserIdentity {
	// One table of browsers, with its sources: attribution's. Listing it
	// here again would let the two drift apart.
	var out []BrowserIdentity
	if goos == "darwin" {
		for _, r := range attribution.DefaultMacBrowsers() {
			out = append(out, BrowserIdentity{Name: r.Name, TeamID: r.TeamID, SigningID: r.SigningID, Path: r.PathPrefix})
		}
		return out
	}
	for _, p := range attribution.DefaultLinuxBrowsers() {
		out = append(out, BrowserIdentity{Name: path.Base(p), Path: p})
	}
	return out
}

// BrowserIdentities returns the defaults (unless browsers.use_defaults is
// false) followed by browsers.add.
func (c *Config) BrowserIdentities(goos string) []BrowserIdentity {
	var out []BrowserIdentity
	if c == nil || c.UseDefaultBrowsers() {
		out = append(out, DefaultBrowsers(goos)...)
	}
	if c != nil {
		out = append(out, c.Browsers.Add...)
	}
	return out
}
