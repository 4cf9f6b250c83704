package detect

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"exfilwatch/config"
)

// Subject is one upload as the allowlist sees it.
type Subject struct {
	Name, Executable  string // process name and executable path of the uploader
	SigningID, TeamID string // macOS code signature ("" when unknown/unsigned)
	// SignatureValid is macOS CS_VALID and not ad-hoc: team and signing ids
	// are only trusted when true.
	SignatureValid bool
	DestIP         netip.Addr
	// DestHosts are the HTTP Host (no port) and the DNS names seen resolving
	// to DestIP. A Host header is whatever the client wrote: a host glob
	// alone is only as strong as the names put here.
	DestHosts []string
	Classes   []string // sensitive classes of the files that qualified
}

// AllowRule names the entry that suppressed a finding.
type AllowRule struct {
	Index  int    // position in the configured allowlist (allowlist[Index])
	Reason string // the entry's reason
	Desc   string // e.g. "allowlist[2] executable=/usr/bin/rsync destination=*.backup.example.com"
}

// Allowlist is the compiled configuration allowlist. It is read-only after
// NewAllowlist and safe for concurrent use.
type Allowlist struct {
	entries []allowEntry
	fold    bool // darwin: names and paths compared case-insensitively
}

type allowEntry struct {
	rule       AllowRule
	name       string // glob, folded on darwin
	hasName    bool
	exec       []string // executable glob split into segments, folded on darwin
	signingID  string
	teamID     string
	prefixes   []netip.Prefix // CIDRs and single IPs
	hosts      [][]string     // host globs split into labels, lower case
	hasDest    bool
	classes    map[string]bool
	hasClasses bool
}

// maxDestHosts bounds the per-upload work a hostile DestHosts can cause.
const maxDestHosts = 64

// NewAllowlist compiles entries (already validated by config, checked again
// here because entries may be built in code). goos decides case folding of
// names and paths: darwin compares case-insensitively (APFS default), where
// differently-cased paths name the same file.
func NewAllowlist(entries []config.AllowEntry, goos string) (*Allowlist, error) {
	fold := goos == "darwin"
	a := &Allowlist{fold: fold}
	for i, e := range entries {
		ce, err := compileEntry(i, e, fold)
		if err != nil {
			return nil, fmt.Errorf("allowlist[%d]: %w", i, err)
		}
		a.entries = append(a.entries, ce)
	}
	return a, nil
}

func compileEntry(i int, e config.AllowEntry, fold bool) (allowEntry, error) {
	ce := allowEntry{signingID: e.SigningID, teamID: e.TeamID}
	desc := []string{fmt.Sprintf("allowlist[%d]", i)}
	if e.Name != "" {
		if _, err := path.Match(e.Name, ""); err != nil || strings.Contains(e.Name, "/") {
			return ce, fmt.Errorf("bad process name glob %q", e.Name)
		}
		ce.name, ce.hasName = foldIf(e.Name, fold), true
		desc = append(desc, "name="+e.Name)
	}
	if e.Executable != "" {
		segs, err := splitExecGlob(e.Executable)
		if err != nil {
			return ce, err
		}
		for j := range segs {
			segs[j] = foldIf(segs[j], fold)
		}
		ce.exec = segs
		desc = append(desc, "executable="+e.Executable)
	}
	if e.SigningID != "" {
		desc = append(desc, "signing_id="+e.SigningID)
	}
	if e.TeamID != "" {
		desc = append(desc, "team_id="+e.TeamID)
	}
	for _, d := range e.Destinations {
		ce.hasDest = true
		if p, err := netip.ParsePrefix(d); err == nil {
			ce.prefixes = append(ce.prefixes, unmapPrefix(p))
			continue
		}
		if ip, err := netip.ParseAddr(d); err == nil {
			ip = ip.Unmap().WithZone("")
			ce.prefixes = append(ce.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		labels, err := splitHostGlob(d)
		if err != nil {
			return ce, err
		}
		ce.hosts = append(ce.hosts, labels)
	}
	if len(e.Destinations) > 0 {
		desc = append(desc, "destination="+strings.Join(e.Destinations, ","))
	}
	if len(e.Classes) > 0 {
		ce.hasClasses = true
		ce.classes = map[string]bool{}
		for _, c := range e.Classes {
			ce.classes[c] = true
		}
		desc = append(desc, "classes="+strings.Join(e.Classes, ","))
	}
	if !ce.hasName && ce.exec == nil && ce.signingID == "" && ce.teamID == "" && !ce.hasDest {
		return ce, fmt.Errorf("needs at least one matcher (name, executable, signing_id, team_id or destination)")
	}
	ce.rule = AllowRule{Index: i, Reason: e.Reason, Desc: strings.Join(desc, " ")}
	return ce, nil
}

func foldIf(s string, fold bool) string {
	if fold {
		return strings.ToLower(s)
	}
	return s
}

// unmapPrefix turns ::ffff:10.0.0.0/104 into 10.0.0.0/8, so that a prefix
// and an address compare in one family.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		return netip.PrefixFrom(a.Unmap(), bits).Masked()
	}
	return netip.PrefixFrom(a.WithZone(""), p.Bits()).Masked()
}

// splitExecGlob checks an absolute path glob (path.Match per segment, "**"
// only as a whole segment, as config accepts) and splits it.
func splitExecGlob(g string) ([]string, error) {
	if !strings.HasPrefix(g, "/") {
		return nil, fmt.Errorf("executable %q must be an absolute path", g)
	}
	// config accepts at most two; each one multiplies the work by the depth.
	if strings.Count(g, "**") > 2 {
		return nil, fmt.Errorf("bad glob %q: at most 2 \"**\" per path", g)
	}
	var segs []string
	for _, s := range strings.Split(g, "/") {
		if s == "" || s == "." {
			continue
		}
		if strings.Contains(s, "**") && s != "**" {
			return nil, fmt.Errorf("bad glob %q: \"**\" must be a whole path segment", g)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("bad glob %q: %v", g, err)
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// splitHostGlob splits a host glob into lower-case labels.
func splitHostGlob(g string) ([]string, error) {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(g, ".")), ".")
	for _, l := range labels {
		if l == "" {
			return nil, fmt.Errorf("bad host glob %q: empty label", g)
		}
		if _, err := path.Match(l, ""); err != nil {
			return nil, fmt.Errorf("bad host glob %q: %v", g, err)
		}
	}
	return labels, nil
}

// Len is the number of entries.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.entries)
}

// Match returns the first entry whose every set matcher matches s.
func (a *Allowlist) Match(s *Subject) (AllowRule, bool) {
	if a == nil || s == nil || len(a.entries) == 0 {
		return AllowRule{}, false
	}
	m := prepare(s, a)
	for i := range a.entries {
		if a.entries[i].match(&m) {
			return a.entries[i].rule, true
		}
	}
	return AllowRule{}, false
}

// prepared is a Subject normalised once for all entries.
type prepared struct {
	s        *Subject
	name     string
	execSegs []string // nil when the executable is unknown or not absolute
	ip       netip.Addr
	hosts    [][]string
}

func prepare(s *Subject, a *Allowlist) prepared {
	m := prepared{s: s, name: foldIf(s.Name, a.fold), ip: s.DestIP.Unmap().WithZone("")}
	if exe := strings.TrimSuffix(s.Executable, " (deleted)"); strings.HasPrefix(exe, "/") && path.Clean(exe) != "/" {
		exe = foldIf(path.Clean(exe), a.fold)
		m.execSegs = strings.Split(exe[1:], "/")
	}
	for i, h := range s.DestHosts {
		if i == maxDestHosts {
			break
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" {
			continue
		}
		m.hosts = append(m.hosts, strings.Split(h, "."))
	}
	return m
}

func (e *allowEntry) match(m *prepared) bool {
	s := m.s
	if e.hasName {
		if m.name == "" {
			return false
		}
		if ok, _ := path.Match(e.name, m.name); !ok {
			return false
		}
	}
	if e.exec != nil && (m.execSegs == nil || !matchSegs(e.exec, m.execSegs, 0)) {
		return false
	}
	// An ad-hoc or unsigned binary can carry any identifier it likes.
	if (e.signingID != "" || e.teamID != "") && !s.SignatureValid {
		return false
	}
	if e.signingID != "" && s.SigningID != e.signingID {
		return false
	}
	if e.teamID != "" && s.TeamID != e.teamID {
		return false
	}
	if e.hasDest && !e.matchDest(m) {
		return false
	}
	if e.hasClasses {
		for _, c := range s.Classes {
			if !e.classes[c] {
				return false
			}
		}
	}
	return true
}

func (e *allowEntry) matchDest(m *prepared) bool {
	if m.ip.IsValid() {
		for _, p := range e.prefixes {
			if p.Contains(m.ip) {
				return true
			}
		}
	}
	for _, g := range e.hosts {
		for _, h := range m.hosts {
			if matchHost(g, h) {
				return true
			}
		}
	}
	return false
}

// matchHost matches host labels against glob labels: a leftmost "*" label
// stands for one or more labels, every other label is a path.Match glob on
// exactly one label. Both are anchored at the right, so
// evil.com.backup.example.com.attacker.net is not below backup.example.com.
func matchHost(glob, host []string) bool {
	if len(glob) > 0 && glob[0] == "*" {
		rest := glob[1:]
		if len(host) <= len(rest) {
			return false
		}
		host = host[len(host)-len(rest):]
		glob = rest
	}
	if len(glob) != len(host) {
		return false
	}
	for i := range glob {
		if ok, _ := path.Match(glob[i], host[i]); !ok {
			return false
		}
	}
	return true
}

// maxStarDepth bounds the recursion of "**" (a glob has at most two).
const maxStarDepth = 2

// matchSegs matches path segments against glob segments, "**" spanning any
// number of segments (none included).
func matchSegs(glob, segs []string, depth int) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			if depth >= maxStarDepth {
				return false
			}
			for i := 0; i <= len(segs); i++ {
				if matchSegs(glob[1:], segs[i:], depth+1) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(glob[0], segs[0]); !ok {
			return false
		}
		glob, segs = glob[1:], segs[1:]
	}
	return len(segs) == 0
}
