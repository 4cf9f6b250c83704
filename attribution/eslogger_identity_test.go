package attribution

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestEsloggerProcessIdentity checks the process group, pidversion and code
// signature taken from the real sample lines. Expected values were read by
// hand from the file (group_id, session_id, signing_id, team_id,
// codesigning_flags, is_platform_binary of the described process: the
// exit's process, the exec's target, the fork's child).
func TestEsloggerProcessIdentity(t *testing.T) {
	if _, err := os.Stat(filepath.Dir(esloggerSample)); os.IsNotExist(err) {
		t.Skipf("real samples not present: %s missing", filepath.Dir(esloggerSample))
	}
	lines := readLines(t, esloggerSample)
	wants := []struct {
		pgid, sid, pv int32
		code          CodeSignature
	}{
		// v9 exit of /usr/sbin/ipconfig: 0x26015b11 = valid, platform, not ad hoc.
		{532, 532, 170692, CodeSignature{SigningID: "com.apple.ipconfig", Flags: 0x26015b11, Valid: true, Platform: true}},
		// v9 exec of connection-checker: 0x22020203 has CS_ADHOC, no team.
		{97391, 58916, 149092, CodeSignature{SigningID: "connection_checker-04fde7bdb8bceee3", Flags: 0x22020203, Valid: true, AdHoc: true}},
		// v10 fork child of Mullvad VPN: team signed, 0x22010301.
		{19745, 1, 38282, CodeSignature{SigningID: "net.mullvad.vpn", TeamID: "CKG9MXH72F", Flags: 0x22010301, Valid: true}},
		// v11 exec of localizationswitcherd: its own group, platform.
		{11085, 1, 25189, CodeSignature{SigningID: "com.apple.localizationswitcherd", Flags: 0x26017b01, Valid: true, Platform: true}},
	}
	if len(lines) != len(wants) {
		t.Fatalf("%d lines, want %d", len(lines), len(wants))
	}
	var p EsloggerParser
	for i, line := range lines {
		rec, err := p.ParseLine(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		ev := rec.(*ProcessEvent)
		pr, w := ev.Process, wants[i]
		if pr.PGID != w.pgid || pr.SessionLeader != w.sid || pr.PIDVersion != w.pv {
			t.Errorf("line %d: pgid %d session %d pidversion %d, want %d %d %d", i+1, pr.PGID, pr.SessionLeader, pr.PIDVersion, w.pgid, w.sid, w.pv)
		}
		if pr.Code == nil || *pr.Code != w.code {
			t.Errorf("line %d: code %+v, want %+v", i+1, pr.Code, w.code)
			continue
		}
		// The event's own signing fields stay as they were.
		if ev.SigningID != w.code.SigningID || ev.TeamID != w.code.TeamID || ev.CodesigningFlags != w.code.Flags {
			t.Errorf("line %d: event signing %q %q %#x", i+1, ev.SigningID, ev.TeamID, ev.CodesigningFlags)
		}
		id := pr.CodeIdentity()
		if id.SigningID != w.code.SigningID || id.TeamID != w.code.TeamID || !id.ValidSignature ||
			id.PlatformBinary != w.code.Platform || id.Executable != pr.Executable || id.ResponsibleSigningID != "" {
			t.Errorf("line %d: CodeIdentity %+v", i+1, id)
		}
		if got := IdentityFromEvent(ev, nil); got != id {
			t.Errorf("line %d: CodeIdentity %+v differs from IdentityFromEvent %+v", i+1, id, got)
		}
	}
}

// TestProcessCodeIdentityClassifier: the classifier, called through
// Process.CodeIdentity, accepts the team-signed app only with its team and
// refuses an ad-hoc process that claims a browser's signing id.
func TestProcessCodeIdentityClassifier(t *testing.T) {
	c := NewBrowserClassifier(DefaultMacBrowsers(), nil)
	chrome := &Process{Executable: "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
		Code: NewCodeSignature("com.google.Chrome", "EQHXZ8M8AV", CSValid, false)}
	if _, ok := c.IsBrowser(chrome.CodeIdentity()); !ok {
		t.Errorf("team-signed Chrome not a browser")
	}
	fake := &Process{Executable: "/tmp/Google Chrome",
		Code: NewCodeSignature("com.google.Chrome", "", CSValid|CSAdHoc, false)}
	if name, ok := c.IsBrowser(fake.CodeIdentity()); ok {
		t.Errorf("ad-hoc fake classified as %q", name)
	}
	if !fake.Code.AdHoc || fake.Code.Platform {
		t.Errorf("fake code %+v", *fake.Code)
	}
	var none *Process
	if id := none.CodeIdentity(); id != (CodeIdentity{}) {
		t.Errorf("nil process: %+v", id)
	}
	b, err := json.Marshal(fake)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"pid":0,"executable":"/tmp/Google Chrome","uid":0,"code_signature":{"signing_id":"com.google.Chrome","flags":3,"valid":true,"adhoc":true}}`
	if string(b) != want {
		t.Errorf("json %s\nwant %s", b, want)
	}
}

// A line without signing fields leaves Code nil (unknown), not invalid.
func TestEsloggerNoSigningFields(t *testing.T) {
	var p EsloggerParser
	rec, err := p.ParseLine([]byte(`{"process":{"audit_token":[0,0,0,0,0,9,0,3],"executable":{"path":"/bin/ls"},"group_id":9},"event":{"exit":{"stat":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	pr := rec.(*ProcessEvent).Process
	if pr.Code != nil || pr.PGID != 9 || pr.PIDVersion != 3 {
		t.Errorf("got %+v", *pr)
	}
}
