package config

import (
	"strings"
	"testing"
)

func TestDefaultsPresent(t *testing.T) {
	for goos, want := range map[string][]string{
		"darwin": {"documents", "desktop", "downloads", "pictures", "mail", "messages", "keychains", "browser_stores", "password_stores", "ssh", "gpg", "cloud_credentials", "dev_tokens", "shell_history"},
		"linux":  {"documents", "desktop", "downloads", "pictures", "mail", "messages", "keychains", "browser_stores", "password_stores", "ssh", "gpg", "cloud_credentials", "dev_tokens", "shell_history"},
	} {
		cls := DefaultSensitive(goos)
		var names []string
		for _, c := range cls {
			names = append(names, c.Name)
			if len(c.Paths) == 0 {
				t.Errorf("%s/%s: no paths", goos, c.Name)
			}
			for _, p := range c.Paths {
				if msg := checkPathGlob(p); msg != "" {
					t.Errorf("%s/%s: %s", goos, c.Name, msg)
				}
			}
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("%s classes = %v", goos, names)
		}
		if _, err := NewPathMatcherFor(Default().SensitiveClasses(goos), goos); err != nil {
			t.Errorf("%s: %v", goos, err)
		}
	}
	// DefaultSensitive returns fresh slices.
	a := DefaultSensitive("linux")
	a[len(a)-1].Paths[0] = "/mutated"
	if DefaultSensitive("linux")[len(a)-1].Paths[0] == "/mutated" {
		t.Error("defaults share storage")
	}
}

type matchCase struct{ path, want string }

func runMatch(t *testing.T, goos string, cases []matchCase) {
	t.Helper()
	m, err := NewPathMatcherFor(Default().SensitiveClasses(goos), goos)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		got, ok := m.Match(c.path)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: Match(%q) = %q, %v; want %q", goos, c.path, got, ok, c.want)
		}
	}
}

func TestMatchDarwin(t *testing.T) {
	runMatch(t, "darwin", []matchCase{
		{"/Users/alice/Documents/q3.pdf", "documents"},
		{"/Users/alice/Documents", "documents"},
		{"/Users/alice/Documents/", "documents"},
		{"/Users/alice/Documents/a/b/c/d/e.txt", "documents"},
		{"/Users/alice/Documentsx/a", ""},
		{"/Users/alice/Document", ""},
		{"/Users/alice", ""},
		{"/Users", ""},
		{"/", ""},
		{"", ""},
		{"Users/alice/Documents/x", ""},
		{"/Users/alice/Desktop/shot.png", "desktop"},
		{"/Users/alice/Downloads/x.dmg", "downloads"},
		{"/Users/alice/Pictures/Photos Library.photoslibrary/database/Photos.sqlite", "pictures"},
		{"/Users/alice/Library/Mail/V10/MailData/Envelope Index", "mail"},
		{"/Users/alice/Library/Messages/chat.db", "messages"},
		{"/Users/alice/Library/Keychains/login.keychain-db", "keychains"},
		{"/Library/Keychains/System.keychain", "keychains"},
		{"/var/root/Library/Keychains/x", "keychains"},
		{"/var/root/.ssh/id_rsa", "ssh"},
		{"/Users/alice/Library/Application Support/Google/Chrome/Default/Cookies", "browser_stores"},
		{"/Users/alice/Library/Application Support/Google/Chrome/Profile 1/Network/Cookies", "browser_stores"},
		{"/Users/alice/Library/Application Support/Google/Chrome/Default/Login Data", "browser_stores"},
		{"/Users/alice/Library/Application Support/Google/Chrome/Default/History", ""},
		{"/Users/alice/Library/Application Support/Google/Chrome/Local State", "browser_stores"},
		{"/Users/alice/Library/Application Support/BraveSoftware/Brave-Browser/Default/Cookies", "browser_stores"},
		{"/Users/alice/Library/Application Support/Microsoft Edge/Default/Login Data", "browser_stores"},
		{"/Users/alice/Library/Application Support/Firefox/Profiles/abcd.default-release/cookies.sqlite", "browser_stores"},
		{"/Users/alice/Library/Application Support/Firefox/Profiles/abcd.default-release/logins.json", "browser_stores"},
		{"/Users/alice/Library/Application Support/Firefox/Profiles/abcd.default-release/key4.db", "browser_stores"},
		{"/Users/alice/Library/Application Support/Firefox/Profiles/abcd.default-release/places.sqlite", ""},
		{"/Users/alice/Library/Cookies/Cookies.binarycookies", "browser_stores"},
		{"/Users/alice/.ssh/id_ed25519", "ssh"},
		{"/Users/alice/.ssh", "ssh"},
		{"/Users/alice/.sshx", ""},
		{"/Users/alice/.aws/credentials", "cloud_credentials"},
		{"/Users/alice/.config/gcloud/credentials.db", "cloud_credentials"},
		{"/Users/alice/.kube/config", "cloud_credentials"},
		{"/Users/alice/.docker/config.json", "cloud_credentials"},
		{"/Users/alice/.docker/daemon.json", ""},
		{"/Users/alice/.zsh_history", "shell_history"},
		{"/Users/alice/.netrc", "dev_tokens"},
		{"/Users/alice/.gnupg/private-keys-v1.d/x.key", "gpg"},
		{"/Users/alice/secrets/vault.kdbx", "password_stores"},
		{"/Users/alice/a/b/c/vault.kdbx", "password_stores"},
		{"/Users/alice/vault.kdbx", "password_stores"},
		{"/Users/alice/vault.kdbx.txt", ""},
		// APFS is case-insensitive by default.
		{"/users/ALICE/documents/Q3.PDF", "documents"},
		{"/USERS/alice/.SSH/ID_RSA", "ssh"},
		{"/Users/alice/library/application support/google/chrome/default/COOKIES", "browser_stores"},
		// Cleaning: no escaping a class with dot-dot, no sneaking in.
		{"/Users/alice/Documents/../Music/x.mp3", ""},
		{"/Users/alice/Music/../Documents/x", "documents"},
		{"//Users//alice//Documents//x", "documents"},
		{"/tmp/x", ""},
		{"/home/bob/.ssh/id_ed25519", ""}, // Linux homes are not darwin homes
	})
}

func TestMatchLinux(t *testing.T) {
	runMatch(t, "linux", []matchCase{
		{"/home/bob/.ssh/id_ed25519", "ssh"},
		{"/home/bob/.ssh/", "ssh"},
		{"/home/bob/.ssh", "ssh"},
		{"/home/bob/.ssh_old/id", ""},
		{"/root/.aws/credentials", "cloud_credentials"},
		{"/root/.aws", "cloud_credentials"},
		{"/root/.azure/accessTokens.json", "cloud_credentials"},
		{"/home/bob/.kube/config", "cloud_credentials"},
		{"/home/bob/.config/gcloud/application_default_credentials.json", "cloud_credentials"},
		{"/home/bob/.config/gcloudx", ""},
		{"/home/bob/.config", ""},
		{"/tmp/x", ""},
		{"/home", ""},
		{"/home/bob", ""},
		{"/home/bob/Documents/report.odt", "documents"},
		{"/home/bob/documents/report.odt", ""}, // case-sensitive
		{"/HOME/bob/.ssh/id_rsa", ""},
		{"/home/bob/.SSH/id_rsa", ""},
		{"/home/bob/Desktop/a", "desktop"},
		{"/home/bob/Downloads/a", "downloads"},
		{"/home/bob/Pictures/a.jpg", "pictures"},
		{"/home/bob/.config/google-chrome/Default/Cookies", "browser_stores"},
		{"/home/bob/.config/google-chrome/Profile 2/Network/Cookies", "browser_stores"},
		{"/home/bob/.config/google-chrome/Default/Login Data", "browser_stores"},
		{"/home/bob/.config/google-chrome/Default/Preferences", ""},
		{"/home/bob/.config/chromium/Default/Cookies", "browser_stores"},
		{"/home/bob/.mozilla/firefox/x1y2.default/cookies.sqlite", "browser_stores"},
		{"/home/bob/.mozilla/firefox/x1y2.default/logins.json", "browser_stores"},
		{"/home/bob/.mozilla/firefox/x1y2.default/key4.db", "browser_stores"},
		{"/home/bob/snap/firefox/common/.mozilla/firefox/p.default/cookies.sqlite", "browser_stores"},
		{"/home/bob/.mozilla/firefox/profiles.ini", ""},
		{"/home/bob/.local/share/keyrings/login.keyring", "keychains"},
		{"/home/bob/.thunderbird/p/Mail/x", "mail"},
		{"/var/mail/bob", "mail"},
		{"/home/bob/.bash_history", "shell_history"},
		{"/root/.bash_history", "shell_history"},
		{"/home/bob/.bash_historyx", ""},
		{"/home/bob/.git-credentials", "dev_tokens"},
		{"/home/bob/.gnupg/pubring.kbx", "gpg"},
		{"/home/bob/.password-store/email.gpg", "password_stores"},
		{"/home/bob/x/y.kdbx", "password_stores"},
		{"/home/bob/.docker/config.json", "cloud_credentials"},
		{"/root/../home/bob/.ssh/a", "ssh"},
		{"/Users/alice/Documents/q3.pdf", ""}, // darwin homes are not Linux homes
		{"/var/root/.ssh/id_rsa", ""},
	})
}

func TestMatcherSemantics(t *testing.T) {
	m, err := NewPathMatcher([]PathClass{
		{Name: "first", Paths: []string{"/a/b"}},
		{Name: "glob", Paths: []string{"/g/*/x", "/g/q?/y", "/g/[0-9]/z"}},
		{Name: "deep", Paths: []string{"/d/**/k", "/e/**"}},
		{Name: "second", Paths: []string{"/a", "/a/b/c"}},
		{Name: "Upper", Paths: []string{"/Case/Dir"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []matchCase{
		{"/a/b/c/d", "first"}, // earlier class wins over later, even if more specific
		{"/a/b", "first"},
		{"/a/x", "second"},
		{"/a", "second"},
		{"/g/anything/x", "glob"},
		{"/g/.hidden/x/more", "glob"}, // "*" matches dotfiles
		{"/g/anything/y", ""},
		{"/g/qz/y", "glob"},
		{"/g/qzz/y", ""},
		{"/g/7/z", "glob"},
		{"/g/a/z", ""},
		{"/d/k", "deep"},
		{"/d/1/2/3/k", "deep"},
		{"/d/1/2/3/k/under", "deep"},
		{"/d/1/2/3/kk", ""},
		{"/e", "deep"},
		{"/e/f/g", "deep"},
		{"/Case/Dir/x", "Upper"},
		{"/case/dir/x", ""},
	} {
		if got, _ := m.Match(c.path); got != c.want {
			t.Errorf("Match(%q) = %q, want %q", c.path, got, c.want)
		}
	}
	if _, err := NewPathMatcher([]PathClass{{Name: "x", Paths: []string{"~/a"}}}); err == nil {
		t.Error("unexpanded ~ accepted")
	}
	if _, err := NewPathMatcher([]PathClass{{Name: "x", Paths: []string{"/a/["}}}); err == nil {
		t.Error("bad glob accepted")
	}
	var nilM *PathMatcher
	if _, ok := nilM.Match("/a"); ok {
		t.Error("nil matcher matched")
	}
}

func BenchmarkMatchDarwin(b *testing.B) {
	m, _ := NewPathMatcherFor(Default().SensitiveClasses("darwin"), "darwin")
	paths := []string{
		"/Users/alice/Library/Application Support/Google/Chrome/Default/Cookies",
		"/Users/alice/Documents/q3.pdf",
		"/usr/lib/libSystem.B.dylib",
		"/Users/alice/Library/Caches/com.apple.Safari/Cache.db",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Match(paths[i%len(paths)])
	}
}

func TestBrowserIdentities(t *testing.T) {
	for _, goos := range []string{"darwin", "linux"} {
		d := DefaultBrowsers(goos)
		if len(d) < 5 {
			t.Fatalf("%s: %d default browsers", goos, len(d))
		}
		for _, b := range d {
			if b.Name == "" || (b.TeamID == "" && b.SigningID == "" && b.Path == "") {
				t.Errorf("%s: incomplete %+v", goos, b)
			}
			if b.Path != "" && checkExecGlob(b.Path) != "" {
				t.Errorf("%s: bad path %+v", goos, b)
			}
		}
	}
	cfg, err := Load("testdata/exfilwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.BrowserIdentities("darwin")
	if len(got) != len(DefaultBrowsers("darwin"))+2 || got[len(got)-2].Name != "Arc" {
		t.Errorf("merged browsers = %+v", got)
	}
	off := false
	cfg.Browsers.UseDefaults = &off
	if got := cfg.BrowserIdentities("linux"); len(got) != 2 {
		t.Errorf("use_defaults false: %+v", got)
	}
}
