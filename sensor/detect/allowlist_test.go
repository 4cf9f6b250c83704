package detect

import (
	"net/netip"
	"strings"
	"testing"

	"exfilwatch/config"
)

const (
	dropboxTeam    = "G7HH3F8CAK"
	dropboxSigning = "com.getdropbox.dropbox"
)

func mustAllowlist(t *testing.T, goos string, entries ...config.AllowEntry) *Allowlist {
	t.Helper()
	a, err := NewAllowlist(entries, goos)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != len(entries) {
		t.Fatalf("Len = %d, want %d", a.Len(), len(entries))
	}
	return a
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAllowlistMatchers(t *testing.T) {
	type tc struct {
		name  string
		entry config.AllowEntry
		goos  string
		subj  Subject
		want  bool
	}
	rsync := Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestIP: ip("192.0.2.7")}
	dropbox := Subject{Name: "Dropbox", Executable: "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
		SigningID: dropboxSigning, TeamID: dropboxTeam, SignatureValid: true, DestIP: ip("162.125.1.1")}
	with := func(s Subject, f func(*Subject)) Subject { f(&s); return s }
	cases := []tc{
		// name
		{"name exact", config.AllowEntry{Name: "rsync"}, "linux", rsync, true},
		{"name glob", config.AllowEntry{Name: "rsyn?"}, "linux", rsync, true},
		{"name other", config.AllowEntry{Name: "backupd"}, "linux", rsync, false},
		{"name case linux", config.AllowEntry{Name: "RSYNC"}, "linux", rsync, false},
		{"name case darwin", config.AllowEntry{Name: "RSYNC"}, "darwin", rsync, true},
		{"name unknown", config.AllowEntry{Name: "*"}, "linux", with(rsync, func(s *Subject) { s.Name = "" }), false},

		// executable
		{"exec exact", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux", rsync, true},
		{"exec /tmp/rsync is not /usr/bin/rsync", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/tmp/rsync" }), false},
		{"exec dot-dot cleaned", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/usr/bin/../../tmp/rsync" }), false},
		{"exec dot-dot to the real one", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/usr/lib/../bin/rsync" }), true},
		{"exec star stays in segment", config.AllowEntry{Executable: "/usr/bin/*"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/usr/bin/x/rsync" }), false},
		{"exec star", config.AllowEntry{Executable: "/usr/bin/*"}, "linux", rsync, true},
		{"exec doublestar", config.AllowEntry{Executable: "/opt/**/bin/backupd"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/opt/vendor/1.2/bin/backupd" }), true},
		{"exec doublestar none", config.AllowEntry{Executable: "/opt/**/bin/backupd"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/opt/bin/backupd" }), true},
		{"exec doublestar wrong tail", config.AllowEntry{Executable: "/opt/**/bin/backupd"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/opt/bin/backupd/x" }), false},
		{"exec prefix is not a match", config.AllowEntry{Executable: "/usr/bin"}, "linux", rsync, false},
		{"exec deleted after upgrade", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/usr/bin/rsync (deleted)" }), true},
		{"exec unknown", config.AllowEntry{Executable: "/**"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "" }), false},
		{"exec relative never", config.AllowEntry{Executable: "/**"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "rsync" }), false},
		{"exec case linux", config.AllowEntry{Executable: "/usr/bin/rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/USR/BIN/RSYNC" }), false},
		{"exec case darwin", config.AllowEntry{Executable: "/usr/bin/rsync"}, "darwin",
			with(rsync, func(s *Subject) { s.Executable = "/USR/BIN/RSYNC" }), true},

		// code signature
		{"team and signing", config.AllowEntry{SigningID: dropboxSigning, TeamID: dropboxTeam}, "darwin", dropbox, true},
		{"team only", config.AllowEntry{TeamID: dropboxTeam}, "darwin", dropbox, true},
		{"ad-hoc binary claims Dropbox's signing id", config.AllowEntry{SigningID: dropboxSigning, TeamID: dropboxTeam}, "darwin",
			with(dropbox, func(s *Subject) { s.SignatureValid = false }), false},
		{"ad-hoc binary claims Dropbox's team", config.AllowEntry{TeamID: dropboxTeam}, "darwin",
			with(dropbox, func(s *Subject) { s.SignatureValid = false; s.SigningID = "a.out" }), false},
		{"other team, same signing id", config.AllowEntry{SigningID: dropboxSigning, TeamID: dropboxTeam}, "darwin",
			with(dropbox, func(s *Subject) { s.TeamID = "ATTACKER01" }), false},
		{"signing id case", config.AllowEntry{SigningID: dropboxSigning, TeamID: dropboxTeam}, "darwin",
			with(dropbox, func(s *Subject) { s.SigningID = "com.getdropbox.Dropbox" }), false},
		{"apple code: signing id and path", config.AllowEntry{SigningID: "com.apple.curl", Executable: "/usr/bin/curl"}, "darwin",
			Subject{Name: "curl", Executable: "/usr/bin/curl", SigningID: "com.apple.curl", SignatureValid: true}, true},
		{"apple signing id elsewhere", config.AllowEntry{SigningID: "com.apple.curl", Executable: "/usr/bin/curl"}, "darwin",
			Subject{Name: "curl", Executable: "/tmp/curl", SigningID: "com.apple.curl", SignatureValid: true}, false},

		// destination
		{"cidr", config.AllowEntry{Destinations: config.StringList{"192.0.2.0/24"}}, "linux", rsync, true},
		{"cidr other", config.AllowEntry{Destinations: config.StringList{"198.51.100.0/24"}}, "linux", rsync, false},
		{"ip", config.AllowEntry{Destinations: config.StringList{"192.0.2.7"}}, "linux", rsync, true},
		{"ip other", config.AllowEntry{Destinations: config.StringList{"192.0.2.8"}}, "linux", rsync, false},
		{"v4-mapped destination", config.AllowEntry{Destinations: config.StringList{"192.0.2.0/24"}}, "linux",
			with(rsync, func(s *Subject) { s.DestIP = ip("::ffff:192.0.2.7") }), true},
		{"v4-mapped cidr", config.AllowEntry{Destinations: config.StringList{"::ffff:192.0.2.0/120"}}, "linux", rsync, true},
		{"v6 cidr", config.AllowEntry{Destinations: config.StringList{"2001:db8::/32"}}, "linux",
			with(rsync, func(s *Subject) { s.DestIP = ip("2001:db8::5") }), true},
		{"v6 zoned", config.AllowEntry{Destinations: config.StringList{"fe80::/10"}}, "linux",
			with(rsync, func(s *Subject) { s.DestIP = ip("fe80::1%eth0") }), true},
		{"no dest ip", config.AllowEntry{Destinations: config.StringList{"0.0.0.0/0"}}, "linux",
			with(rsync, func(s *Subject) { s.DestIP = netip.Addr{} }), false},
		{"list: any one", config.AllowEntry{Destinations: config.StringList{"10.0.0.0/8", "*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"nas.backup.example.com"} }), true},
		{"host star one label", config.AllowEntry{Destinations: config.StringList{"*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"a.backup.example.com"} }), true},
		{"host star several labels", config.AllowEntry{Destinations: config.StringList{"*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"evil.com.backup.example.com"} }), true},
		{"host star needs a label", config.AllowEntry{Destinations: config.StringList{"*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"backup.example.com"} }), false},
		{"host suffix spoof", config.AllowEntry{Destinations: config.StringList{"*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"evil.com.backup.example.com.attacker.net"} }), false},
		{"host not a label boundary", config.AllowEntry{Destinations: config.StringList{"*.backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"evilbackup.example.com"} }), false},
		{"host case and trailing dot", config.AllowEntry{Destinations: config.StringList{"*.Backup.Example.com."}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"NAS.backup.EXAMPLE.com."} }), true},
		{"host exact", config.AllowEntry{Destinations: config.StringList{"backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"x.backup.example.com"} }), false},
		{"host any of DestHosts", config.AllowEntry{Destinations: config.StringList{"backup.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"cdn.other.net", "backup.example.com"} }), true},
		{"inner star is one label", config.AllowEntry{Destinations: config.StringList{"s3-*.amazonaws.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"s3-eu-west-1.amazonaws.com"} }), true},
		{"inner star does not cross a dot", config.AllowEntry{Destinations: config.StringList{"s3-*.amazonaws.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"s3-x.attacker.net.amazonaws.com"} }), false},
		{"non-leading star is one label", config.AllowEntry{Destinations: config.StringList{"backup.*.example.com"}}, "linux",
			with(rsync, func(s *Subject) { s.DestHosts = []string{"backup.a.b.example.com"} }), false},
		{"host glob never matches the ip", config.AllowEntry{Destinations: config.StringList{"*.0.2.7"}}, "linux", rsync, false},
		{"no hosts", config.AllowEntry{Destinations: config.StringList{"*.example.com"}}, "linux", rsync, false},

		// classes
		{"classes subset", config.AllowEntry{Name: "rsync", Classes: config.StringList{"documents", "pictures"}}, "linux",
			with(rsync, func(s *Subject) { s.Classes = []string{"documents"} }), true},
		{"classes all listed", config.AllowEntry{Name: "rsync", Classes: config.StringList{"documents", "pictures"}}, "linux",
			with(rsync, func(s *Subject) { s.Classes = []string{"pictures", "documents"} }), true},
		{"backup tool that also read ~/.ssh", config.AllowEntry{Name: "rsync", Classes: config.StringList{"documents", "pictures"}}, "linux",
			with(rsync, func(s *Subject) { s.Classes = []string{"documents", "ssh"} }), false},
		{"no classes given", config.AllowEntry{Name: "rsync", Classes: config.StringList{"documents"}}, "linux", rsync, true},
		{"classes not set: any class", config.AllowEntry{Name: "rsync"}, "linux",
			with(rsync, func(s *Subject) { s.Classes = []string{"ssh", "keychains"} }), true},

		// AND of matchers
		{"and: all match", config.AllowEntry{Name: "rsync", Executable: "/usr/bin/rsync", Destinations: config.StringList{"192.0.2.0/24"}}, "linux", rsync, true},
		{"and: /tmp/rsync to the right place", config.AllowEntry{Name: "rsync", Executable: "/usr/bin/rsync", Destinations: config.StringList{"192.0.2.0/24"}}, "linux",
			with(rsync, func(s *Subject) { s.Executable = "/tmp/rsync" }), false},
		{"and: right binary, wrong place", config.AllowEntry{Name: "rsync", Executable: "/usr/bin/rsync", Destinations: config.StringList{"10.0.0.0/8"}}, "linux", rsync, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := mustAllowlist(t, c.goos, c.entry)
			s := c.subj
			r, ok := a.Match(&s)
			if ok != c.want {
				t.Fatalf("Match = %v, want %v (entry %+v, subject %+v)", ok, c.want, c.entry, c.subj)
			}
			if ok && (r.Index != 0 || !strings.HasPrefix(r.Desc, "allowlist[0] ")) {
				t.Errorf("rule = %+v", r)
			}
		})
	}
}

func TestAllowlistOrderAndDesc(t *testing.T) {
	entries := []config.AllowEntry{
		{Executable: "/usr/bin/rsync", Destinations: config.StringList{"*.backup.example.com"}, Classes: config.StringList{"documents"}, Reason: "rsync of documents"},
		{SigningID: dropboxSigning, TeamID: dropboxTeam, Reason: "Dropbox"},
		{Name: "rsync", Executable: "/usr/bin/rsync", Reason: "any rsync"},
		{Destinations: config.StringList{"10.0.0.0/8", "nas.local"}, Reason: "the NAS"},
	}
	a := mustAllowlist(t, "linux", entries...)
	wantDesc := []string{
		"allowlist[0] executable=/usr/bin/rsync destination=*.backup.example.com classes=documents",
		"allowlist[1] signing_id=com.getdropbox.dropbox team_id=G7HH3F8CAK",
		"allowlist[2] name=rsync executable=/usr/bin/rsync",
		"allowlist[3] destination=10.0.0.0/8,nas.local",
	}
	for i, e := range a.entries {
		if e.rule.Desc != wantDesc[i] || e.rule.Index != i || e.rule.Reason != entries[i].Reason {
			t.Errorf("entry %d rule = %+v", i, e.rule)
		}
	}
	cases := []struct {
		subj Subject
		want int // -1: no match
	}{
		// Both 0 and 2 match: the first wins.
		{Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestHosts: []string{"a.backup.example.com"}, Classes: []string{"documents"}}, 0},
		// Entry 0 fails on classes; entry 2 still matches.
		{Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestHosts: []string{"a.backup.example.com"}, Classes: []string{"ssh"}}, 2},
		// Rsync to the NAS, entry 2 first.
		{Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestIP: ip("10.1.2.3")}, 2},
		// /tmp/rsync: only the destination entry.
		{Subject{Name: "rsync", Executable: "/tmp/rsync", DestIP: ip("10.1.2.3")}, 3},
		{Subject{Name: "rsync", Executable: "/tmp/rsync", DestIP: ip("192.0.2.1"), DestHosts: []string{"a.backup.example.com"}}, -1},
		{Subject{Name: "x", SigningID: dropboxSigning, TeamID: dropboxTeam, SignatureValid: true}, 1},
		{Subject{Name: "x", SigningID: dropboxSigning, TeamID: dropboxTeam}, -1},
	}
	for i, c := range cases {
		r, ok := a.Match(&c.subj)
		got := -1
		if ok {
			got = r.Index
		}
		if got != c.want {
			t.Errorf("case %d: matched %d, want %d (%+v)", i, got, c.want, r)
		}
		if ok && r.Desc != wantDesc[got] {
			t.Errorf("case %d: desc %q", i, r.Desc)
		}
	}
}

func TestAllowlistEmptyAndNil(t *testing.T) {
	var nilList *Allowlist
	if _, ok := nilList.Match(&Subject{Name: "x"}); ok || nilList.Len() != 0 {
		t.Error("nil allowlist matched")
	}
	a := mustAllowlist(t, "linux")
	if _, ok := a.Match(&Subject{Name: "x"}); ok {
		t.Error("empty allowlist matched")
	}
	a = mustAllowlist(t, "linux", config.AllowEntry{Name: "*"})
	if _, ok := a.Match(nil); ok {
		t.Error("nil subject matched")
	}
}

func TestNewAllowlistRejects(t *testing.T) {
	for _, c := range []struct {
		e    config.AllowEntry
		want string
	}{
		{config.AllowEntry{Reason: "nothing"}, "allowlist[0]: needs at least one matcher"},
		{config.AllowEntry{Classes: config.StringList{"documents"}}, "allowlist[0]: needs at least one matcher"},
		{config.AllowEntry{Executable: "rsync"}, `allowlist[0]: executable "rsync" must be an absolute path`},
		{config.AllowEntry{Executable: "/usr/[bin"}, `allowlist[0]: bad glob "/usr/[bin"`},
		{config.AllowEntry{Executable: "/usr/b**/x"}, `"**" must be a whole path segment`},
		{config.AllowEntry{Name: "a/b"}, `allowlist[0]: bad process name glob "a/b"`},
		{config.AllowEntry{Destinations: config.StringList{"a..example.com"}}, "empty label"},
		{config.AllowEntry{Destinations: config.StringList{"[a.example.com"}}, "bad host glob"},
	} {
		_, err := NewAllowlist([]config.AllowEntry{c.e}, "linux")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.e, err, c.want)
		}
	}
}

// The example file of docs/config.md compiles, and its entries mean what its
// comments say.
func TestAllowlistFromExampleConfig(t *testing.T) {
	cfg, err := config.Load("../../config/testdata/exfilwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAllowlist(cfg.Allowlist, "darwin")
	if err != nil {
		t.Fatal(err)
	}
	r, ok := a.Match(&Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestHosts: []string{"backup.example.com"}, Classes: []string{"source_code"}})
	if !ok || r.Index != 2 || r.Reason != "rsync to the backup hosts" {
		t.Errorf("rsync: %+v %v", r, ok)
	}
	if r, ok := a.Match(&Subject{Name: "rsync", Executable: "/usr/bin/rsync", DestHosts: []string{"backup.example.com"}, Classes: []string{"ssh"}}); ok {
		t.Errorf("rsync that read ~/.ssh allowed by %+v", r)
	}
}

func FuzzAllowlistMatch(f *testing.F) {
	f.Add("/opt/**/bin/*", "*.backup.example.com", "/opt/a/b/bin/x", "a.backup.example.com", "10.0.0.1")
	f.Add("/**/**", "*", "/", ".", "::ffff:1.2.3.4")
	f.Fuzz(func(t *testing.T, execGlob, hostGlob, exe, host, addr string) {
		e := config.AllowEntry{Executable: execGlob, Destinations: config.StringList{hostGlob, "10.0.0.0/8"}}
		a, err := NewAllowlist([]config.AllowEntry{e}, "darwin")
		if err != nil {
			return
		}
		dst, _ := netip.ParseAddr(addr)
		a.Match(&Subject{Executable: exe, DestHosts: []string{host, host + "."}, DestIP: dst})
	})
}
