package attribution

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const (
	webkitNetPath   = "/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking"
	webkitCryptex   = "/System/Volumes/Preboot/Cryptexes/OS/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking"
	chromeHelperExe = "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/120.0.6099.109/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"
)

func TestIdentityFromCodesigningFlags(t *testing.T) {
	for _, tc := range []struct {
		flags           uint32
		valid, platform bool
	}{
		{0, false, false},
		{0x1, true, false},
		{0x2, false, false},                     // CS_ADHOC alone
		{0x3, true, false},                      // valid ad-hoc
		{0x04000000, false, true},               // platform, not valid
		{0x1 | 0x04000000 | 0x2000, true, true}, // typical Apple daemon
		{0x22000005, true, false},               // hardened Developer ID app (no platform bit)
	} {
		v, p := IdentityFromCodesigningFlags(tc.flags)
		if v != tc.valid || p != tc.platform {
			t.Errorf("flags %#x: valid=%v platform=%v, want %v %v", tc.flags, v, p, tc.valid, tc.platform)
		}
	}
}

func TestIdentityFromEvent(t *testing.T) {
	ev := &ProcessEvent{
		SigningID: WebKitNetworking, CodesigningFlags: CSValid | CSPlatformBinary,
		Process: &Process{Executable: webkitNetPath},
	}
	resp := &ProcessEvent{SigningID: "com.apple.Safari", PlatformBinary: true, CodesigningFlags: CSValid}
	got := IdentityFromEvent(ev, resp)
	want := CodeIdentity{
		SigningID: WebKitNetworking, PlatformBinary: true, ValidSignature: true, Executable: webkitNetPath,
		ResponsibleSigningID: "com.apple.Safari", ResponsiblePlatformBinary: true,
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := IdentityFromEvent(nil, nil); got != (CodeIdentity{}) {
		t.Fatalf("nil event: %+v", got)
	}
	c := NewBrowserClassifier(DefaultMacBrowsers(), nil)
	if n, ok := c.IsBrowser(IdentityFromEvent(ev, resp)); !ok || n != "Safari" {
		t.Fatalf("Safari via events: %q %v", n, ok)
	}
}

func TestIsBrowser(t *testing.T) {
	c := NewBrowserClassifier(DefaultMacBrowsers(), DefaultLinuxBrowsers())
	dev := func(signing, team string) CodeIdentity {
		return CodeIdentity{SigningID: signing, TeamID: team, ValidSignature: true}
	}
	webkit := func(exe, respSigning, respTeam string, respPlatform bool) CodeIdentity {
		return CodeIdentity{
			SigningID: WebKitNetworking, PlatformBinary: true, ValidSignature: true, Executable: exe,
			ResponsibleSigningID: respSigning, ResponsibleTeamID: respTeam, ResponsiblePlatformBinary: respPlatform,
		}
	}
	chromeHelper := dev("com.google.Chrome.helper", "EQHXZ8M8AV")
	chromeHelper.Executable = chromeHelperExe
	invalidChrome := chromeHelper
	invalidChrome.ValidSignature = false
	// Apple-looking id picked by an ad-hoc signature (no team, not platform).
	fakeSafari := CodeIdentity{SigningID: "com.apple.Safari", ValidSignature: true, Executable: "/tmp/Safari"}
	fakeWebKit := CodeIdentity{SigningID: WebKitNetworking, ValidSignature: true, Executable: "/tmp/com.apple.WebKit.Networking",
		ResponsibleSigningID: "com.apple.Safari", ResponsiblePlatformBinary: true}
	// A platform binary copied out of the framework (path check).
	movedWebKit := webkit("/tmp/x/com.apple.WebKit.Networking", "com.apple.Safari", "", true)

	for _, tc := range []struct {
		name     string
		id       CodeIdentity
		wantName string
		wantOK   bool
	}{
		{"chrome helper", chromeHelper, "Google Chrome", true},
		{"chrome main", dev("com.google.Chrome", "EQHXZ8M8AV"), "Google Chrome", true},
		{"chrome helper invalid signature", invalidChrome, "", false},
		{"chrome helper wrong team", dev("com.google.Chrome.helper", "ABCDE12345"), "", false},
		{"chrome helper no team (ad-hoc)", dev("com.google.Chrome.helper", ""), "", false},
		{"chrome renderer not listed", dev("com.google.Chrome.helper.renderer", "EQHXZ8M8AV"), "", false},
		{"edge helper", dev("com.microsoft.edgemac.helper", "UBF8T346G9"), "Microsoft Edge", true},
		{"vscode helper same team as edge", dev("com.microsoft.VSCode.helper", "UBF8T346G9"), "", false},
		{"electron helper", dev("com.github.Electron.helper", "UBF8T346G9"), "", false},
		{"slack helper", dev("com.tinyspeck.slackmacgap.helper", "BQR82RBBHL"), "", false},
		{"jcef helper", dev("org.jcef.jcef.helper", "2ZEFAR8TH3"), "", false},
		{"brave helper", dev("com.brave.Browser.helper", "KL8N8XSYF4"), "Brave", true},
		{"arc helper lowercase", dev("company.thebrowser.browser.helper", "S6N382Y83G"), "Arc", true},
		{"arc helper wrong case", dev("company.thebrowser.Browser.helper", "S6N382Y83G"), "", false},
		{"arc main", dev("company.thebrowser.Browser", "S6N382Y83G"), "Arc", true},
		{"opera helper", dev("com.operasoftware.Opera.helper", "A2P9LX4JPN"), "Opera", true},
		{"vivaldi helper", dev("com.vivaldi.Vivaldi.helper", "4XF3XNRN6Y"), "Vivaldi", true},
		{"firefox", dev("org.mozilla.firefox", "43AQ936H96"), "Firefox", true},
		{"firefox developer edition", dev("org.mozilla.firefoxdeveloperedition", "43AQ936H96"), "Firefox", true},
		{"thunderbird is not a browser", dev("org.mozilla.thunderbird", "43AQ936H96"), "", false},
		{"webkit networking for safari", webkit(webkitNetPath, "com.apple.Safari", "", true), "Safari", true},
		{"webkit networking in cryptex for safari", webkit(webkitCryptex, "com.apple.Safari", "", true), "Safari", true},
		{"webkit networking for mail", webkit(webkitNetPath, "com.apple.mail", "", true), "com.apple.mail", false},
		{"webkit networking for third-party host", webkit(webkitNetPath, "com.example.app", "ABCDE12345", false), "com.example.app", false},
		{"webkit networking for ad-hoc 'Safari'", webkit(webkitNetPath, "com.apple.Safari", "", false), "com.apple.Safari", false},
		{"webkit networking host unknown", webkit(webkitNetPath, "", "", false), WebKitNetworking, false},
		{"webkit networking responsible itself", webkit(webkitNetPath, WebKitNetworking, "", true), WebKitNetworking, false},
		{"webkit networking not platform, no team", fakeWebKit, "", false},
		{"webkit networking outside framework", movedWebKit, "", false},
		{"orion webkit networking", CodeIdentity{SigningID: WebKitNetworking, TeamID: "TFVG979488", ValidSignature: true,
			Executable: "/Applications/Orion.app/Contents/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking"}, "Orion", true},
		{"safari app", CodeIdentity{SigningID: "com.apple.Safari", PlatformBinary: true, ValidSignature: true,
			Executable: "/System/Cryptexes/App/System/Applications/Safari.app/Contents/MacOS/Safari"}, "Safari", true},
		{"Safari in /tmp ad-hoc", fakeSafari, "", false},
		{"Safari in /tmp claiming platform path", CodeIdentity{SigningID: "com.apple.Safari", PlatformBinary: true, ValidSignature: true,
			Executable: "/tmp/Safari"}, "", false},
		{"curl (platform)", CodeIdentity{SigningID: "com.apple.curl", PlatformBinary: true, ValidSignature: true, Executable: "/usr/bin/curl"}, "", false},
		{"python (platform stub)", CodeIdentity{SigningID: "com.apple.python3", PlatformBinary: true, ValidSignature: true, Executable: "/usr/bin/python3"}, "", false},
		{"nsurlsessiond", CodeIdentity{SigningID: "com.apple.nsurlsessiond", PlatformBinary: true, ValidSignature: true, Executable: "/usr/libexec/nsurlsessiond"}, "", false},
		{"empty", CodeIdentity{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := c.IsBrowser(tc.id)
			if n != tc.wantName || ok != tc.wantOK {
				t.Errorf("IsBrowser(%+v) = %q, %v; want %q, %v", tc.id, n, ok, tc.wantName, tc.wantOK)
			}
		})
	}
}

func TestIsBrowserLinux(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("the Linux path list is not used on darwin")
	}
	c := NewBrowserClassifier(DefaultMacBrowsers(), DefaultLinuxBrowsers())
	for _, tc := range []struct {
		exe      string
		wantName string
		wantOK   bool
	}{
		{"/usr/lib/firefox-esr/firefox-esr", "firefox-esr", true},
		{"/usr/lib/firefox/firefox", "firefox", true},
		{"/usr/lib/firefox/firefox (deleted)", "firefox", true},
		{"/usr/lib/chromium/chromium", "chromium", true},
		{"/opt/google/chrome/chrome", "chrome", true},
		{"/opt/brave.com/brave/brave", "brave", true},
		{"/opt/microsoft/msedge/msedge", "msedge", true},
		{"/snap/firefox/4173/usr/lib/firefox/firefox", "firefox", true},
		{"/snap/firefox/4173/x/usr/lib/firefox/firefox", "", false},
		{"/usr/lib/firefox/../firefox/firefox", "firefox", true},
		{"/tmp/firefox", "", false},
		{"/tmp/usr/lib/firefox/firefox", "", false},
		{"/home/u/.local/bin/chrome", "", false},
		{"/usr/bin/curl", "", false},
		{"/usr/bin/python3.12", "", false},
		{"firefox", "", false},
		{"", "", false},
	} {
		n, ok := c.IsBrowser(CodeIdentity{Executable: tc.exe})
		if n != tc.wantName || ok != tc.wantOK {
			t.Errorf("%q: %q %v, want %q %v", tc.exe, n, ok, tc.wantName, tc.wantOK)
		}
	}
	// A signed identity is never judged by path.
	if _, ok := c.IsBrowser(CodeIdentity{SigningID: "x", ValidSignature: true, Executable: "/usr/lib/firefox/firefox"}); ok {
		t.Error("signed identity matched by Linux path")
	}
}

func TestBrowserClassifierConfig(t *testing.T) {
	c := NewBrowserClassifier(nil, nil)
	if _, ok := c.IsBrowser(CodeIdentity{SigningID: "org.mozilla.firefox", TeamID: "43AQ936H96", ValidSignature: true}); ok {
		t.Fatal("empty classifier matched")
	}
	for _, bad := range []BrowserRule{
		{Name: "X", SigningID: "com.example.x"},                             // no team, not platform
		{Name: "X", TeamID: "ABCDE12345"},                                   // no signing id
		{SigningID: "com.example.x", TeamID: "ABCDE12345"},                  // no name
		{Name: "X", TeamID: "ABCDE12345", SigningID: "x.y", Platform: true}, // platform with team
	} {
		if err := c.AddRule(bad); err == nil {
			t.Errorf("AddRule(%+v) accepted", bad)
		}
	}
	if err := c.AddRule(BrowserRule{Name: "Zen", TeamID: "ABCDE12345", SigningID: "app.zen-browser.zen"}); err != nil {
		t.Fatal(err)
	}
	if n, ok := c.IsBrowser(CodeIdentity{SigningID: "app.zen-browser.zen", TeamID: "ABCDE12345", ValidSignature: true}); !ok || n != "Zen" {
		t.Fatalf("added rule: %q %v", n, ok)
	}
	// Path-restricted non-platform rule.
	if err := c.AddRule(BrowserRule{Name: "Y", TeamID: "ABCDE12345", SigningID: "com.example.y", PathPrefix: "/Applications/Y.app/"}); err != nil {
		t.Fatal(err)
	}
	y := CodeIdentity{SigningID: "com.example.y", TeamID: "ABCDE12345", ValidSignature: true, Executable: "/Users/u/Y.app/Contents/MacOS/Y"}
	if _, ok := c.IsBrowser(y); ok {
		t.Error("path prefix ignored")
	}
	y.Executable = "/Applications/Y.app/Contents/MacOS/Y"
	if _, ok := c.IsBrowser(y); !ok {
		t.Error("path prefix match failed")
	}
	if err := c.AddLinuxPath("relative/firefox"); err == nil {
		t.Error("relative path accepted")
	}
	if err := c.AddLinuxPath("/snap/x/[/y"); err == nil {
		t.Error("bad glob accepted")
	}
	if runtime.GOOS != "darwin" {
		if err := c.AddLinuxPath("/opt/zen/zen"); err != nil {
			t.Fatal(err)
		}
		if n, ok := c.IsBrowser(CodeIdentity{Executable: "/opt/zen/zen"}); !ok || n != "zen" {
			t.Errorf("added path: %q %v", n, ok)
		}
	}
}

func TestDefaultMacBrowsersValid(t *testing.T) {
	c := NewBrowserClassifier(nil, nil)
	for _, r := range DefaultMacBrowsers() {
		if err := c.AddRule(r); err != nil {
			t.Error(err)
		}
		if strings.HasSuffix(r.SigningID, ".helper") && r.TeamID == "" {
			t.Errorf("helper rule without team: %+v", r)
		}
		if r.Platform && !strings.HasSuffix(r.PathPrefix, "/") {
			t.Errorf("platform prefix should end in /: %+v", r)
		}
	}
}

// dpkg -L output of a Debian firefox-esr package (trimmed), with a
// diversion line and directories.
const dpkgFirefoxESR = `/.
/etc
/etc/firefox-esr
/etc/firefox-esr/firefox-esr.js
/usr
/usr/bin
/usr/lib
/usr/lib/firefox-esr
/usr/lib/firefox-esr/application.ini
/usr/lib/firefox-esr/browser
/usr/lib/firefox-esr/browser/omni.ja
/usr/lib/firefox-esr/defaults
/usr/lib/firefox-esr/defaults/pref
/usr/lib/firefox-esr/defaults/pref/channel-prefs.js
/usr/lib/firefox-esr/dependentlibs.list
/usr/lib/firefox-esr/distribution
/usr/lib/firefox-esr/distribution/distribution.ini
/usr/lib/firefox-esr/firefox-esr
/usr/lib/firefox-esr/glxtest
/usr/lib/firefox-esr/libxul.so
/usr/lib/firefox-esr/libmozsqlite3.so
/usr/lib/firefox-esr/omni.ja
/usr/lib/firefox-esr/pingsender
/usr/lib/firefox-esr/platform.ini
/usr/lib/firefox-esr/vaapitest
/usr/lib/firefox-esr/libfoo.so.1
/usr/share
/usr/share/applications
/usr/share/applications/firefox-esr.desktop
/usr/share/doc
/usr/share/doc/firefox-esr
/usr/share/doc/firefox-esr/changelog.Debian.gz
/usr/share/icons/hicolor/128x128/apps/firefox-esr.png
/usr/share/man/man1/firefox-esr.1.gz
/usr/bin/firefox-esr
/usr/lib/firefox-esr/firefox-bin
diverted by local to: /usr/bin/firefox-esr.distrib
`

func TestParseDpkgList(t *testing.T) {
	got := ParseDpkgList(strings.NewReader(dpkgFirefoxESR))
	want := []string{
		"/usr/bin/firefox-esr",
		"/usr/bin/firefox-esr.distrib",
		"/usr/lib/firefox-esr/firefox-bin",
		"/usr/lib/firefox-esr/firefox-esr",
		"/usr/lib/firefox-esr/glxtest",
		"/usr/lib/firefox-esr/pingsender",
		"/usr/lib/firefox-esr/vaapitest",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := ParseDpkgList(strings.NewReader("")); got != nil {
		t.Fatalf("empty: %v", got)
	}
	if got := ParseDpkgList(strings.NewReader("dpkg-query: package 'x' is not installed\n")); got != nil {
		t.Fatalf("not installed: %v", got)
	}
}
