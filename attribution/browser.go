package attribution

// Browser identity (AN0425 excludes browsers): a process is a browser by
// its code identity, never by its name. On macOS that is a (team id,
// signing id) pair with a valid signature, and for Apple code the platform
// flag and an expected path; on Linux it is the exact executable path of an
// installed browser. A binary called "Safari" in /tmp, or "firefox" in
// /tmp, is not a browser. See /work/shared/reference/macos-formats.md §5.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Code-signing flags of xnu osfmk/kern/cs_blobs.h, as carried by Endpoint
// Security's codesigning_flags (ProcessEvent.CodesigningFlags).
const (
	// CSValid is CS_VALID (0x00000001): the code signature is dynamically
	// valid. Ad-hoc signatures are valid too (CS_ADHOC, 0x2), so validity
	// alone proves nothing about who signed; a team id does.
	CSValid uint32 = 0x00000001
	// CSPlatformBinary is CS_PLATFORM_BINARY (0x04000000): Apple platform
	// code (in the trust cache / signed by Apple as part of the OS).
	CSPlatformBinary uint32 = 0x04000000
)

// IdentityFromCodesigningFlags reads the CS_* flags of xnu cs_blobs.h:
// valid is CS_VALID (0x1), platform is CS_PLATFORM_BINARY (0x4000000).
func IdentityFromCodesigningFlags(flags uint32) (valid, platform bool) {
	return flags&CSValid != 0, flags&CSPlatformBinary != 0
}

// CodeIdentity is what the browser classifier needs to know of a process.
//
// On macOS fill it from Endpoint Security (or csops): ValidSignature and
// PlatformBinary come from codesigning_flags, CS_VALID = 0x1 and
// CS_PLATFORM_BINARY = 0x4000000 (see IdentityFromCodesigningFlags; ES's
// is_platform_binary may be OR-ed in). The Responsible* fields describe the
// responsible process (ES responsible_audit_token, PKTAP epid): they matter
// for shared Apple services such as com.apple.WebKit.Networking, which serves
// every WKWebView host. ResponsiblePlatformBinary must be set for a platform
// responsible process (Safari) to count.
//
// On Linux only Executable is used: the resolved executable
// (/proc/<pid>/exe), not argv[0] or comm.
type CodeIdentity struct {
	SigningID      string
	TeamID         string
	PlatformBinary bool
	ValidSignature bool
	Executable     string

	ResponsibleSigningID      string
	ResponsibleTeamID         string
	ResponsiblePlatformBinary bool
}

// IdentityFromEvent builds a CodeIdentity from an Endpoint Security exec
// event, and from the event of its responsible process when known (nil
// otherwise; a process that is its own responsible process may pass itself).
func IdentityFromEvent(ev, responsible *ProcessEvent) CodeIdentity {
	var id CodeIdentity
	if ev == nil {
		return id
	}
	valid, platform := IdentityFromCodesigningFlags(ev.CodesigningFlags)
	id.SigningID = ev.SigningID
	id.TeamID = ev.TeamID
	id.ValidSignature = valid
	id.PlatformBinary = platform || ev.PlatformBinary
	if ev.Process != nil {
		id.Executable = ev.Process.Executable
	}
	if responsible != nil {
		_, rplat := IdentityFromCodesigningFlags(responsible.CodesigningFlags)
		id.ResponsibleSigningID = responsible.SigningID
		id.ResponsibleTeamID = responsible.TeamID
		id.ResponsiblePlatformBinary = rplat || responsible.PlatformBinary
	}
	return id
}

// BrowserRule is one macOS browser identity. SigningID and TeamID must
// match exactly (no suffix or prefix matching: Electron and CEF apps have
// "*.helper" processes too). A Platform rule is for Apple code (TeamID
// empty): it requires CS_PLATFORM_BINARY and, when PathPrefix is set, an
// executable under PathPrefix. A non-platform rule requires a TeamID (an
// ad-hoc signature has none and picks any signing id it likes); its
// PathPrefix, when set, is required as well.
type BrowserRule struct {
	Name       string
	TeamID     string
	SigningID  string
	Platform   bool
	PathPrefix string
}

// WebKitNetworking is the signing id of WebKit's network process. As a
// platform binary it serves every app that embeds a WKWebView (Safari, Mail,
// third-party apps), so the responsible process decides; Orion ships its own
// copy signed by its own team, which serves only Orion.
const WebKitNetworking = "com.apple.WebKit.Networking"

// webkitPrefixes are the places of the system WebKit framework: the sealed
// system volume and the Safari/WebKit cryptex (reference §5.1).
var webkitPrefixes = []string{
	"/System/Library/Frameworks/WebKit.framework/",
	"/System/Volumes/Preboot/Cryptexes/OS/System/Library/Frameworks/WebKit.framework/",
	"/System/Volumes/Preboot/Cryptexes/Incoming/OS/System/Library/Frameworks/WebKit.framework/",
	"/System/Cryptexes/OS/System/Library/Frameworks/WebKit.framework/",
}

var safariPrefixes = []string{
	"/System/Cryptexes/App/System/Applications/Safari.app/",
	"/System/Volumes/Preboot/Cryptexes/App/System/Applications/Safari.app/",
	"/Applications/Safari.app/", // before the Safari cryptex (macOS 12 and older)
}

// DefaultMacBrowsers returns the browser identities of the reference table
// (macos-formats.md §5.1). The caller may extend or replace the list.
func DefaultMacBrowsers() []BrowserRule {
	var rs []BrowserRule
	for _, p := range webkitPrefixes {
		rs = append(rs, BrowserRule{Name: "Safari", SigningID: WebKitNetworking, Platform: true, PathPrefix: p})
	}
	for _, p := range safariPrefixes {
		rs = append(rs, BrowserRule{Name: "Safari", SigningID: "com.apple.Safari", Platform: true, PathPrefix: p})
	}
	dev := func(name, team string, ids ...string) {
		for _, s := range ids {
			rs = append(rs, BrowserRule{Name: name, TeamID: team, SigningID: s})
		}
	}
	dev("Google Chrome", "EQHXZ8M8AV", "com.google.Chrome", "com.google.Chrome.helper")
	dev("Microsoft Edge", "UBF8T346G9", "com.microsoft.edgemac", "com.microsoft.edgemac.helper")
	dev("Brave", "KL8N8XSYF4", "com.brave.Browser", "com.brave.Browser.helper", "com.brave.Browser.nightly.helper")
	// Arc: lowercase "browser" in the helper's id.
	dev("Arc", "S6N382Y83G", "company.thebrowser.Browser", "company.thebrowser.browser.helper")
	dev("Opera", "A2P9LX4JPN", "com.operasoftware.Opera", "com.operasoftware.Opera.helper")
	dev("Vivaldi", "4XF3XNRN6Y", "com.vivaldi.Vivaldi", "com.vivaldi.Vivaldi.helper")
	dev("Wavebox", "4259LE8SU5", "com.bookry.wavebox.helper")
	// Firefox's main process does the networking.
	dev("Firefox", "43AQ936H96", "org.mozilla.firefox", "org.mozilla.firefoxdeveloperedition")
	// Orion's own WebKit.Networking (not a platform binary).
	dev("Orion", "TFVG979488", WebKitNetworking)
	return rs
}

// DefaultLinuxBrowsers returns the executable paths of browsers as their
// distribution packages install them: the real binaries, which is what
// /proc/<pid>/exe resolves to (not the /usr/bin wrapper scripts, though
// those that are real binaries on some distributions are listed too).
// An entry containing a glob metacharacter (*?[) is matched with
// path.Match, where '*' does not cross '/': it serves snap revisions.
func DefaultLinuxBrowsers() []string {
	return []string{
		// Firefox
		"/usr/lib/firefox/firefox",
		"/usr/lib64/firefox/firefox",
		"/usr/lib/firefox-esr/firefox-esr",
		"/usr/lib64/firefox-esr/firefox-esr",
		"/opt/firefox/firefox",
		"/snap/firefox/*/usr/lib/firefox/firefox",
		// Chromium
		"/usr/lib/chromium/chromium",
		"/usr/bin/chromium",
		"/usr/lib/chromium-browser/chromium-browser",
		"/usr/lib64/chromium-browser/chromium-browser",
		"/snap/chromium/*/usr/lib/chromium-browser/chrome",
		// Google Chrome
		"/opt/google/chrome/chrome",
		"/opt/google/chrome-beta/chrome",
		"/opt/google/chrome-unstable/chrome",
		// Brave
		"/opt/brave.com/brave/brave",
		"/opt/brave.com/brave-beta/brave",
		"/opt/brave.com/brave-nightly/brave",
		// Microsoft Edge
		"/opt/microsoft/msedge/msedge",
		"/opt/microsoft/msedge-beta/msedge",
		"/opt/microsoft/msedge-dev/msedge",
		// Vivaldi
		"/opt/vivaldi/vivaldi-bin",
		"/usr/lib/vivaldi/vivaldi-bin",
		// Opera
		"/usr/lib/x86_64-linux-gnu/opera/opera",
		"/usr/lib/opera/opera",
	}
}

// LinuxBrowserPackages are the Debian/Ubuntu packages whose files
// (dpkg -L) may extend the Linux list: see DpkgBrowserPaths.
func LinuxBrowserPackages() []string {
	return []string{
		"firefox", "firefox-esr", "chromium", "chromium-browser",
		"google-chrome-stable", "google-chrome-beta", "google-chrome-unstable",
		"brave-browser", "microsoft-edge-stable", "microsoft-edge-beta",
		"microsoft-edge-dev", "vivaldi-stable", "opera-stable",
	}
}

// nonExecExt are extensions of package files that are not programs.
var nonExecExt = map[string]bool{
	".so": true, ".png": true, ".svg": true, ".xpm": true, ".ico": true,
	".desktop": true, ".xml": true, ".json": true, ".pak": true, ".dat": true,
	".txt": true, ".gz": true, ".mo": true, ".ini": true, ".js": true,
	".css": true, ".html": true, ".manifest": true, ".conf": true, ".cfg": true,
	".list": true, ".bin": true, ".ja": true, ".xpi": true, ".md": true,
	".sig": true, ".pem": true, ".policy": true, ".menu": true, ".appdata": true,
}

// ParseDpkgList reads `dpkg -L <package>` output and keeps the paths that
// may be the package's programs: regular entries (a path that is the parent
// of another listed path is a directory and is dropped), outside
// /usr/share, /etc, /var and documentation, without a data-file extension
// (.so, .png, .pak, …; a versioned library "libfoo.so.1" is dropped too).
// Diversion lines ("diverted by X to: /p", "package diverts others to: /p")
// contribute the path after "to: ". It is a pure parser: the result still
// has to be checked for the execute bit (DpkgBrowserPaths does). The result
// is sorted.
func ParseDpkgList(r io.Reader) []string {
	var paths []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.LastIndex(line, " to: "); i >= 0 {
			line = strings.TrimSpace(line[i+len(" to: "):])
		}
		if !strings.HasPrefix(line, "/") {
			continue
		}
		p := path.Clean(line)
		if p == "/" || seen[p] {
			continue
		}
		seen[p] = true
		paths = append(paths, p)
	}
	dirs := map[string]bool{}
	for _, p := range paths {
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var out []string
	for _, p := range paths {
		if dirs[p] || !maybeProgram(p) {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func maybeProgram(p string) bool {
	for _, skip := range []string{"/usr/share/", "/etc/", "/var/", "/usr/include/", "/usr/lib/debug/"} {
		if strings.HasPrefix(p, skip) {
			return false
		}
	}
	base := path.Base(p)
	if strings.Contains(base, ".so.") {
		return false
	}
	return !nonExecExt[strings.ToLower(path.Ext(base))]
}

// DpkgBrowserPaths runs `dpkg -L` for each package (missing packages are
// skipped) and returns the parsed paths that are regular files with an
// execute bit. Linux/Debian only; the list feeds AddLinuxPath.
func DpkgBrowserPaths(ctx context.Context, packages []string) ([]string, error) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pkg := range packages {
		b, err := exec.CommandContext(ctx, dpkg, "-L", pkg).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				continue // not installed
			}
			return out, err
		}
		for _, p := range ParseDpkgList(strings.NewReader(string(b))) {
			fi, err := os.Stat(p)
			if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

type teamSigning struct{ team, signing string }

// BrowserClassifier tells browsers from other processes. It is safe for
// concurrent use; AddRule and AddLinuxPath make the lists configurable.
type BrowserClassifier struct {
	mu       sync.RWMutex
	mac      map[teamSigning][]BrowserRule
	linux    map[string]string // exact path -> name
	globs    []string          // linux entries with glob metacharacters
	services map[string]bool   // platform signing ids serving many hosts
}

// NewBrowserClassifier returns a classifier of these macOS rules and Linux
// executable paths (typically DefaultMacBrowsers() and
// DefaultLinuxBrowsers()). Invalid rules (see AddRule) are skipped.
func NewBrowserClassifier(mac []BrowserRule, linuxPaths []string) *BrowserClassifier {
	c := &BrowserClassifier{
		mac:      map[teamSigning][]BrowserRule{},
		linux:    map[string]string{},
		services: map[string]bool{WebKitNetworking: true},
	}
	for _, r := range mac {
		_ = c.AddRule(r)
	}
	for _, p := range linuxPaths {
		_ = c.AddLinuxPath(p)
	}
	return c
}

// AddRule adds a macOS browser identity. A rule needs a SigningID and a
// Name; a non-platform rule needs a TeamID (an empty team id would let any
// ad-hoc signed binary claim the signing id); a platform rule must have an
// empty TeamID (Apple platform code has none).
func (c *BrowserClassifier) AddRule(r BrowserRule) error {
	switch {
	case r.SigningID == "" || r.Name == "":
		return fmt.Errorf("browser rule %+v: name and signing id are required", r)
	case !r.Platform && r.TeamID == "":
		return fmt.Errorf("browser rule %q (%s): a non-platform rule needs a team id", r.Name, r.SigningID)
	case r.Platform && r.TeamID != "":
		return fmt.Errorf("browser rule %q (%s): platform code has no team id", r.Name, r.SigningID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := teamSigning{r.TeamID, r.SigningID}
	c.mac[k] = append(c.mac[k], r)
	return nil
}

// AddLinuxPath adds the executable path of a Linux browser. It must be
// absolute; it is matched exactly (after cleaning), or with path.Match when
// it contains *, ? or [.
func (c *BrowserClassifier) AddLinuxPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("browser path %q is not absolute", p)
	}
	p = path.Clean(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.ContainsAny(p, "*?[") {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("browser path %q: %w", p, err)
		}
		c.globs = append(c.globs, p)
		return nil
	}
	c.linux[p] = path.Base(p)
	return nil
}

// IsBrowser reports whether the identity is a browser's, and its name.
//
// An identity with code-signing information (a signing id, team id, or
// either flag) is judged by the macOS rules only: a valid signature, an
// exact (team id, signing id) match, and for platform rules the platform
// flag and the path prefix. com.apple.WebKit.Networking as a platform binary
// is a browser only when its responsible process is one (Safari); when the
// responsible process is another app (Mail, a WKWebView host) ok is false
// and name is that host's signing id, for reporting.
//
// Otherwise (Linux; never on darwin, where unsigned code is no browser) the
// executable must be one of the listed paths; a
// " (deleted)" suffix (/proc/<pid>/exe after a package upgrade) is ignored.
func (c *BrowserClassifier) IsBrowser(id CodeIdentity) (name string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if runtime.GOOS == "darwin" || id.SigningID != "" || id.TeamID != "" || id.PlatformBinary || id.ValidSignature {
		return c.macBrowser(id)
	}
	return c.linuxBrowser(id.Executable)
}

func (c *BrowserClassifier) macBrowser(id CodeIdentity) (string, bool) {
	if !id.ValidSignature || id.SigningID == "" {
		return "", false
	}
	for _, r := range c.mac[teamSigning{id.TeamID, id.SigningID}] {
		if r.Platform {
			if !id.PlatformBinary || (r.PathPrefix != "" && !strings.HasPrefix(id.Executable, r.PathPrefix)) {
				continue
			}
			if c.services[r.SigningID] {
				return c.responsibleBrowser(id)
			}
		} else if r.PathPrefix != "" && !strings.HasPrefix(id.Executable, r.PathPrefix) {
			continue
		}
		return r.Name, true
	}
	return "", false
}

// responsibleBrowser judges a shared platform service by its responsible
// process. The responsible process's path is not known, so a platform rule
// is matched on the platform flag alone.
func (c *BrowserClassifier) responsibleBrowser(id CodeIdentity) (string, bool) {
	rs, rt := id.ResponsibleSigningID, id.ResponsibleTeamID
	if rs == "" || c.services[rs] && rt == "" {
		return id.SigningID, false // host unknown
	}
	for _, r := range c.mac[teamSigning{rt, rs}] {
		if r.Platform && !id.ResponsiblePlatformBinary {
			continue
		}
		return r.Name, true
	}
	return rs, false
}

func (c *BrowserClassifier) linuxBrowser(exe string) (string, bool) {
	exe = strings.TrimSuffix(exe, " (deleted)")
	if exe == "" || !strings.HasPrefix(exe, "/") {
		return "", false
	}
	exe = path.Clean(exe)
	if n, ok := c.linux[exe]; ok {
		return n, true
	}
	for _, g := range c.globs {
		if m, _ := path.Match(g, exe); m {
			return path.Base(exe), true
		}
	}
	return "", false
}
