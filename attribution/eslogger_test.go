package attribution

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const esloggerSample = "/work/shared/reference/macos-samples/eslogger_mullvad_v9_v10_v11.jsonl"

func readLines(t testing.TB, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxEsloggerLine+1)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEsloggerRealSample parses the four real lines (mullvad test data:
// v9 exit and exec from macOS 15, v10 fork with array audit tokens from
// macOS 26, v11 exec from macOS 27 beta).
func TestEsloggerRealSample(t *testing.T) {
	if _, err := os.Stat(filepath.Dir(esloggerSample)); os.IsNotExist(err) {
		t.Skipf("real samples not present: %s missing", filepath.Dir(esloggerSample))
	}
	lines := readLines(t, esloggerSample)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	type want struct {
		kind                   string
		time                   string
		pid, ppid, pv, prevPV  int32
		exe, signingID, teamID string
		platform               bool
		flags                  uint32
		respPID, respPV        int32
		childPID, childPV      int32
		exitStatus             int
		uid                    uint32
		args                   []string
		cwd                    string
		startTime              string
	}
	wants := []want{
		{kind: ProcExit, time: "2025-08-07T15:13:09.811587464Z", pid: 11221, ppid: 532, pv: 170692,
			exe: "/usr/sbin/ipconfig", signingID: "com.apple.ipconfig", platform: true, flags: 0x26015b11,
			respPID: 532, respPV: 1294, uid: 0, startTime: "2025-08-07T15:13:09.798115Z"},
		{kind: ProcExec, time: "2025-08-07T13:21:35.880814738Z", pid: 97391, ppid: 58916, pv: 149092, prevPV: 149091,
			exe: "/bin/connection-checker", signingID: "connection_checker-04fde7bdb8bceee3", flags: 0x22020203,
			respPID: 938, respPV: 2424, uid: 501, args: []string{"/bin/connection-checker"}, cwd: "/bin/mullvadvpn-app",
			startTime: "2025-08-07T13:21:35.877422Z"},
		// v10: audit tokens are arrays [auid, euid, egid, ruid, rgid, pid, asid, pidversion].
		{kind: ProcFork, time: "2025-07-22T15:09:01.084030274Z", pid: 19745, ppid: 1, pv: 35165,
			exe: "/Applications/Mullvad VPN.app/Contents/MacOS/Mullvad VPN", signingID: "net.mullvad.vpn",
			teamID: "CKG9MXH72F", flags: 570491649, respPID: 19745, respPV: 35165, childPID: 21497, childPV: 38282,
			uid: 501, startTime: "2025-07-22T15:09:01.083979Z"},
		{kind: ProcExec, time: "2026-08-04T11:38:25.825904694Z", pid: 11085, ppid: 1, pv: 25189, prevPV: 25188,
			exe:       "/System/Library/PrivateFrameworks/IntlPreferences.framework/Support/localizationswitcherd",
			signingID: "com.apple.localizationswitcherd", platform: true, flags: 637631233,
			respPID: 11085, respPV: 25189, uid: 501, cwd: "/",
			args:      []string{"/System/Library/PrivateFrameworks/IntlPreferences.framework/Support/localizationswitcherd"},
			startTime: "2026-08-04T11:38:25.815739Z"},
	}
	var p EsloggerParser
	for i, line := range lines {
		rec, err := p.ParseLine(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		ev, ok := rec.(*ProcessEvent)
		if !ok {
			t.Fatalf("line %d: got %T, want *ProcessEvent", i+1, rec)
		}
		w := wants[i]
		if ev.Kind != w.kind || !ev.Time.Equal(mustTime(t, w.time)) || ev.PID != w.pid || ev.PPID != w.ppid ||
			ev.PIDVersion != w.pv || ev.PrevPIDVersion != w.prevPV || ev.SigningID != w.signingID ||
			ev.TeamID != w.teamID || ev.PlatformBinary != w.platform || ev.CodesigningFlags != w.flags ||
			ev.ResponsiblePID != w.respPID || ev.ResponsiblePIDVersion != w.respPV ||
			ev.ChildPID != w.childPID || ev.ChildPIDVersion != w.childPV || ev.ExitStatus != w.exitStatus ||
			ev.Script != "" || ev.Source != SourceEslogger {
			t.Errorf("line %d: got %+v\nwant %+v", i+1, *ev, w)
		}
		pr := ev.Process
		if pr == nil {
			t.Fatalf("line %d: nil Process", i+1)
		}
		if pr.Executable != w.exe || pr.Name != filepath.Base(w.exe) || pr.UID != w.uid || pr.CWD != w.cwd ||
			strings.Join(pr.Args, "\x00") != strings.Join(w.args, "\x00") || !pr.StartTime.Equal(mustTime(t, w.startTime)) {
			t.Errorf("line %d: process %+v, want exe %q uid %d cwd %q args %q", i+1, *pr, w.exe, w.uid, w.cwd, w.args)
		}
		if w.kind == ProcFork {
			if pr.PID != w.childPID || pr.PPID != 19745 {
				t.Errorf("line %d: fork Process pid %d ppid %d, want child %d of 19745", i+1, pr.PID, pr.PPID, w.childPID)
			}
		} else if pr.PID != w.pid {
			t.Errorf("line %d: Process.PID %d, want %d", i+1, pr.PID, w.pid)
		}
	}
}

// TestEsloggerAuditTokenForms checks that the v10 array form decodes to
// the same fields as the object form.
func TestEsloggerAuditTokenForms(t *testing.T) {
	var a, o esAuditToken
	if err := a.UnmarshalJSON([]byte(`[4294967295,0,0,0,0,1,100012,1029]`)); err != nil {
		t.Fatal(err)
	}
	if err := o.UnmarshalJSON([]byte(`{"auid":4294967295,"euid":0,"egid":0,"ruid":0,"rgid":0,"pid":1,"asid":100012,"pidversion":1029,"extra":true}`)); err != nil {
		t.Fatal(err)
	}
	want := esAuditToken{AUID: 4294967295, PID: 1, ASID: 100012, PIDVersion: 1029}
	if a != want || o != want {
		t.Errorf("array %+v, object %+v, want %+v", a, o, want)
	}
	if err := a.UnmarshalJSON([]byte(`[501,501,20,501,20,21497,100013,38282]`)); err != nil {
		t.Fatal(err)
	}
	if want := (esAuditToken{AUID: 501, EUID: 501, EGID: 20, RUID: 501, RGID: 20, PID: 21497, ASID: 100013, PIDVersion: 38282}); a != want {
		t.Errorf("got %+v, want %+v", a, want)
	}
	for _, bad := range []string{`[1,2,3]`, `[1,2,3,4,5,6,7,8,9]`, `[-1,0,0,0,0,1,1,1]`, `[0,0,0,0,0,4294967295,0,1]`,
		`{"pid":1}`, `{"pidversion":1}`, `"x"`, `{"pid":"1","pidversion":2}`, `[1.5,0,0,0,0,1,1,1]`} {
		var tk esAuditToken
		if err := tk.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func parseFixture(t *testing.T, p *EsloggerParser, name string) any {
	t.Helper()
	lines := readLines(t, filepath.Join("testdata", "eslogger", name+".jsonl"))
	if len(lines) != 1 {
		t.Fatalf("%s: %d lines", name, len(lines))
	}
	rec, err := p.ParseLine(lines[0])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rec
}

// TestEsloggerFixtures uses the HAND-BUILT lines in testdata/eslogger
// (built from the documented format, not captured on a Mac; see the
// README there).
func TestEsloggerFixtures(t *testing.T) {
	var p EsloggerParser
	base := mustTime(t, "2025-08-07T13:21:36Z")
	files := []struct {
		name string
		want FileAccess
	}{
		{"open_read", FileAccess{Path: "/Users/alice/.ssh/id_ed25519", Access: AccessRead, Size: 42, Time: base.Add(1)}},
		{"open_write", FileAccess{Path: "/tmp/out.bin", Access: AccessWrite, Size: 42, Time: base.Add(2)}},
		{"close", FileAccess{Path: "/tmp/out.bin", Access: AccessClose, Modified: true, Time: base.Add(3)}},
		{"rename_existing", FileAccess{Path: "/tmp/out.bin", DestPath: "/Users/alice/Desktop/out.bin", Access: AccessRenameSource, Time: base.Add(4)}},
		{"rename_new", FileAccess{Path: "/tmp/out.bin", DestPath: "/Users/alice/Desktop/new.bin", Access: AccessRenameSource, Time: base.Add(5)}},
	}
	for _, f := range files {
		rec := parseFixture(t, &p, f.name)
		fa, ok := rec.(*FileAccess)
		if !ok {
			t.Fatalf("%s: got %T", f.name, rec)
		}
		w := f.want
		w.PID, w.PIDVersion, w.Source = 4242, 9001, SourceEslogger
		if !fa.Time.Equal(w.Time) {
			t.Errorf("%s: time %v, want %v", f.name, fa.Time, w.Time)
		}
		fa.Time = w.Time
		// The envelope's process travels with the access: check it, then
		// compare the rest.
		if fa.Process == nil || fa.Process.PID != 4242 || fa.Process.PIDVersion != 9001 || fa.Process.Executable == "" {
			t.Errorf("%s: process %+v", f.name, fa.Process)
		}
		fa.Process = nil
		if *fa != w {
			t.Errorf("%s: got %+v, want %+v", f.name, *fa, w)
		}
	}

	// exec of a script: python3 running /tmp/x.py.
	ev := parseFixture(t, &p, "exec_script").(*ProcessEvent)
	py := "/Library/Developer/CommandLineTools/usr/bin/python3"
	if ev.Kind != ProcExec || ev.PID != 5000 || ev.PIDVersion != 7001 || ev.PrevPIDVersion != 7000 ||
		ev.Script != "/tmp/x.py" || ev.Process.Executable != py || ev.Process.Name != "python3" ||
		ev.Process.CWD != "/Users/alice" || strings.Join(ev.Process.Args, " ") != py+" /tmp/x.py" ||
		ev.SigningID != "com.apple.python3" || ev.TeamID != "" || !ev.PlatformBinary ||
		ev.ResponsiblePID != 938 || ev.ResponsiblePIDVersion != 2424 {
		t.Errorf("exec: %+v %+v", *ev, *ev.Process)
	}

	ev = parseFixture(t, &p, "fork").(*ProcessEvent)
	if ev.Kind != ProcFork || ev.PID != 5000 || ev.PIDVersion != 7000 || ev.ChildPID != 5001 ||
		ev.ChildPIDVersion != 7100 || ev.Process.PID != 5001 || ev.Process.PPID != 5000 || ev.Process.Executable != "/bin/zsh" {
		t.Errorf("fork: %+v %+v", *ev, *ev.Process)
	}

	ev = parseFixture(t, &p, "exit").(*ProcessEvent)
	if ev.Kind != ProcExit || ev.PID != 5001 || ev.PIDVersion != 7100 || ev.ExitStatus != 256 || ev.PPID != 5000 {
		t.Errorf("exit: %+v", *ev)
	}

	// The fixtures' sequence numbers: global 100..107 without gaps;
	// per type open 10,11, close 3, rename 1,2, exec 5, fork 6, exit 7.
	if e, g := p.Gaps(); e != 0 || g != 0 {
		t.Errorf("gaps %d %d, want 0 0", e, g)
	}
}

func TestEsloggerOpenFlags(t *testing.T) {
	for _, c := range []struct {
		fflag string
		want  AccessKind
	}{{"1", AccessRead}, {"2", AccessWrite}, {"3", AccessReadWrite}, {"1539", AccessReadWrite}, {"32768", AccessUnknown}, {"16777217", AccessRead}} {
		var p EsloggerParser
		line := `{"time":"2025-01-01T00:00:00Z","process":{"audit_token":{"pid":9,"pidversion":3}},"event":{"open":{"fflag":` + c.fflag + `,"file":{"path":"\/etc\/hosts"}}}}`
		rec, err := p.ParseLine([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if fa := rec.(*FileAccess); fa.Access != c.want || fa.Path != "/etc/hosts" || fa.PID != 9 || fa.PIDVersion != 3 {
			t.Errorf("fflag %s: %+v, want %v", c.fflag, *fa, c.want)
		}
	}
}

func TestEsloggerTimeFallback(t *testing.T) {
	line := []byte(`{"mach_time":1000,"process":{"audit_token":{"pid":9,"pidversion":3}},"event":{"exit":{"stat":0},"x":1}}`)
	var p EsloggerParser
	if _, err := p.ParseLine(line); err == nil {
		t.Error("two event keys: no error")
	}
	line = []byte(`{"mach_time":1000,"process":{"audit_token":{"pid":9,"pidversion":3},"executable":{"path":"/bin/ls"}},"event":{"exit":{"stat":0}}}`)
	rec, err := p.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.(*ProcessEvent).Time.IsZero() {
		t.Error("no time and no MachTimeToWall: want zero time")
	}
	ref := time.Unix(1700000000, 0)
	p.MachTimeToWall = func(m uint64) time.Time { return ref.Add(time.Duration(m)) }
	rec, err = p.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.(*ProcessEvent).Time; !got.Equal(ref.Add(1000)) {
		t.Errorf("time %v, want %v", got, ref.Add(1000))
	}
}

func TestEsloggerBadInput(t *testing.T) {
	okProc := `"process":{"audit_token":{"pid":9,"pidversion":3},"executable":{"path":"/bin/ls"}}`
	huge := `{"time":"2025-01-01T00:00:00Z",` + okProc + `,"event":{"exit":{"stat":0}},"pad":"` + strings.Repeat("a", MaxEsloggerLine) + `"}`
	cases := map[string]string{
		"not json":          `hello world`,
		"truncated":         `{"time":"2025-01-01T00:00:00Z",` + okProc + `,"event":{"exit":{"st`,
		"array":             `[1,2,3]`,
		"huge":              huge,
		"no event":          `{` + okProc + `}`,
		"empty event":       `{` + okProc + `,"event":{}}`,
		"event not object":  `{` + okProc + `,"event":"exit"}`,
		"no process":        `{"event":{"exit":{"stat":0}}}`,
		"no audit token":    `{"process":{"executable":{"path":"/bin/ls"}},"event":{"exit":{"stat":0}}}`,
		"token short":       `{"process":{"audit_token":[1,2]},"event":{"exit":{"stat":0}}}`,
		"pid string":        `{"process":{"audit_token":{"pid":"9","pidversion":3}},"event":{"exit":{"stat":0}}}`,
		"bad time":          `{"time":"yesterday",` + okProc + `,"event":{"exit":{"stat":0}}}`,
		"time number":       `{"time":12,` + okProc + `,"event":{"exit":{"stat":0}}}`,
		"seq string":        `{"seq_num":"1",` + okProc + `,"event":{"exit":{"stat":0}}}`,
		"seq negative":      `{"global_seq_num":-1,` + okProc + `,"event":{"exit":{"stat":0}}}`,
		"exit no stat":      `{` + okProc + `,"event":{"exit":{}}}`,
		"exit stat string":  `{` + okProc + `,"event":{"exit":{"stat":"0"}}}`,
		"exit no exe":       `{"process":{"audit_token":{"pid":9,"pidversion":3}},"event":{"exit":{"stat":0}}}`,
		"open no fflag":     `{` + okProc + `,"event":{"open":{"file":{"path":"/x"}}}}`,
		"open no file":      `{` + okProc + `,"event":{"open":{"fflag":1}}}`,
		"open null":         `{` + okProc + `,"event":{"open":null}}`,
		"open path number":  `{` + okProc + `,"event":{"open":{"fflag":1,"file":{"path":5}}}}`,
		"open fflag float":  `{` + okProc + `,"event":{"open":{"fflag":1.5,"file":{"path":"/x"}}}}`,
		"close no target":   `{` + okProc + `,"event":{"close":{"modified":true}}}`,
		"rename no dest":    `{` + okProc + `,"event":{"rename":{"source":{"path":"/a"}}}}`,
		"rename no source":  `{` + okProc + `,"event":{"rename":{"destination_type":0,"destination":{"existing_file":{"path":"/b"}}}}}`,
		"rename bad type":   `{` + okProc + `,"event":{"rename":{"source":{"path":"/a"},"destination_type":7,"destination":{"existing_file":{"path":"/b"}}}}}`,
		"rename type mism":  `{` + okProc + `,"event":{"rename":{"source":{"path":"/a"},"destination_type":1,"destination":{"existing_file":{"path":"/b"}}}}}`,
		"rename no fname":   `{` + okProc + `,"event":{"rename":{"source":{"path":"/a"},"destination_type":1,"destination":{"new_path":{"dir":{"path":"/d"}}}}}}`,
		"exec no target":    `{` + okProc + `,"event":{"exec":{"args":["x"]}}}`,
		"exec target token": `{` + okProc + `,"event":{"exec":{"target":{"executable":{"path":"/x"}}}}}`,
		"exec args wrong":   `{` + okProc + `,"event":{"exec":{"target":{"audit_token":{"pid":9,"pidversion":4},"executable":{"path":"/x"}},"args":"x"}}}`,
		"exec bad start":    `{` + okProc + `,"event":{"exec":{"target":{"audit_token":{"pid":9,"pidversion":4},"executable":{"path":"/x"},"start_time":"soon"}}}}`,
		"fork no child":     `{` + okProc + `,"event":{"fork":{}}}`,
		"team id number":    `{` + okProc + `,"event":{"fork":{"child":{"audit_token":{"pid":9,"pidversion":4},"executable":{"path":"/x"},"team_id":5}}}}`,
		"flags negative":    `{` + okProc + `,"event":{"fork":{"child":{"audit_token":{"pid":9,"pidversion":4},"executable":{"path":"/x"},"codesigning_flags":-1}}}}`,
	}
	for name, line := range cases {
		var p EsloggerParser
		rec, err := p.ParseLine([]byte(line))
		if err == nil {
			t.Errorf("%s: no error, got %#v", name, rec)
		}
		if e, g := p.Gaps(); e != 0 || g != 0 {
			t.Errorf("%s: bad line changed gaps", name)
		}
	}
	// Blank lines and events not needed are not errors.
	var p EsloggerParser
	for _, line := range []string{"", "  \r\n", `{` + okProc + `,"event":{"unlink":{"target":{"path":"/x"}}},"new_field":[1]}`} {
		if rec, err := p.ParseLine([]byte(line)); rec != nil || err != nil {
			t.Errorf("%q: got %v, %v; want nil, nil", line, rec, err)
		}
	}
}

func TestEsloggerGaps(t *testing.T) {
	mk := func(ev string, seq, global int) []byte {
		body := `{"stat":0}`
		if ev == "open" {
			body = `{"fflag":1,"file":{"path":"/x"}}`
		}
		return []byte(`{"seq_num":` + strconv.Itoa(seq) + `,"global_seq_num":` + strconv.Itoa(global) +
			`,"process":{"audit_token":[0,0,0,0,0,9,0,3],"executable":{"path":"/bin/ls"}},"event":{"` + ev + `":` + body + `}}`)
	}
	var p EsloggerParser
	for _, l := range [][]byte{
		mk("open", 0, 0), mk("exit", 0, 1), mk("open", 1, 2), // no gap
		mk("open", 4, 5),  // open lost 2 and 3; global lost 3 and 4
		mk("exit", 1, 9),  // exit: none lost; global lost 6, 7, 8
		mk("exit", 5, 10), // exit lost 2, 3, 4 (their global numbers were dropped too, in principle)
		mk("open", 0, 0),  // restart: no gap, counts restart
		mk("open", 2, 1),  // open lost 1
	} {
		if _, err := p.ParseLine(l); err != nil {
			t.Fatal(err)
		}
	}
	if e, g := p.Gaps(); e != 2+3+1 || g != 2+3 {
		t.Errorf("gaps events %d global %d, want 6 5", e, g)
	}
	// A line without sequence numbers (message version <= 2) counts nothing.
	if _, err := p.ParseLine([]byte(`{"process":{"audit_token":[0,0,0,0,0,9,0,3],"executable":{"path":"/x"}},"event":{"exit":{"stat":0}}}`)); err != nil {
		t.Fatal(err)
	}
	if e, g := p.Gaps(); e != 6 || g != 5 {
		t.Errorf("after line without seq: %d %d", e, g)
	}
}

func FuzzEsloggerLine(f *testing.F) {
	if lines, err := os.ReadFile(esloggerSample); err == nil {
		for _, l := range bytes.Split(lines, []byte("\n")) {
			f.Add(l)
		}
	}
	if ents, err := os.ReadDir(filepath.Join("testdata", "eslogger")); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join("testdata", "eslogger", e.Name())); err == nil && strings.HasSuffix(e.Name(), ".jsonl") {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"process":{"audit_token":[0,0,0,0,0,9,0,3]},"event":{"rename":{"source":{"path":"/a"},"destination":{"new_path":{"dir":{"path":"/d"},"filename":"f"}}}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var p EsloggerParser
		rec, err := p.ParseLine(line)
		if err != nil && rec != nil {
			t.Fatalf("record %v with error %v", rec, err)
		}
		switch r := rec.(type) {
		case nil:
		case *FileAccess:
			if r.Source != SourceEslogger {
				t.Fatal("source")
			}
		case *ProcessEvent:
			if r.Process == nil {
				t.Fatal("nil Process")
			}
		default:
			t.Fatalf("unexpected %T", rec)
		}
	})
}
