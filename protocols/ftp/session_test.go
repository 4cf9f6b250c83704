package ftp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// when returns the time of the script line equal to line (tabs trimmed).
func when(t *testing.T, script, line string) time.Time {
	t.Helper()
	for i, l := range splitLines(script) {
		if l == line {
			return at(i)
		}
	}
	t.Fatalf("line %q not in script", line)
	return time.Time{}
}

// vsftpd 3.0.3, passive mode: login, FEAT, STOR, RETR, LIST, failures.
const vsftpdPassive = `
	S 220 (vsFTPd 3.0.3)
	C USER alice
	S 331 Please specify the password.
	C PASS s3cret!
	S 230-Welcome to the build server.
	S 230-Unauthorized access is prohibited.
	S 230 Login successful.
	C SYST
	S 215 UNIX Type: L8
	C FEAT
	S 211-Features:
	S  EPRT
	S  EPSV
	S  MDTM
	S  PASV
	S  REST STREAM
	S  SIZE
	S  TVFS
	S  UTF8
	S 211 End
	C TYPE I
	S 200 Switching to Binary mode.
	C PASV
	S 227 Entering Passive Mode (198,18,0,2,156,64).
	C STOR secrets.tar.gz
	open 1
	S 150 Ok to send data.
	up 1 1048576
	close 1
	S 226 Transfer complete.
	C EPSV
	S 229 Entering Extended Passive Mode (|||40001|)
	C RETR report.pdf
	open 2
	S 150 Opening BINARY mode data connection for report.pdf (5000 bytes).
	down 2 5000
	S 226 Transfer complete.
	close 2
	C PASV
	S 227 Entering Passive Mode (198,18,0,2,156,66).
	C LIST -la
	open 3
	S 150 Here comes the directory listing.
	down 3 312
	close 3
	S 226 Directory send OK.
	C NLST
	S 425 Use PORT or PASV first.
	C PASV
	S 227 Entering Passive Mode (198,18,0,2,156,67).
	C RETR missing.txt
	S 550 Failed to open file.
	C QUIT
	S 221 Goodbye.
	end
`

func TestVsftpdPassive(t *testing.T) {
	r, s := run(t, Limits{}, parseScript(t, vsftpdPassive), feedWhole)
	if s.Encrypted() {
		t.Error("Encrypted() = true")
	}
	want := []string{
		"USER alice=331", "PASS <redacted>=230", "SYST=215", "FEAT=211", "TYPE I=200",
		"PASV=227", "STOR secrets.tar.gz=226", "EPSV=229", "RETR report.pdf=226",
		"PASV=227", "LIST -la=226", "NLST=425", "PASV=227", "RETR missing.txt=550", "QUIT=221",
	}
	if got := cmdSummary(r.cmds); !equalStrings(got, want) {
		t.Fatalf("commands:\n got %q\nwant %q", got, want)
	}
	if len(r.unsol) != 1 || r.unsol[0].Code != 220 || r.unsol[0].Message != "(vsFTPd 3.0.3)" {
		t.Errorf("greeting = %+v", r.unsol)
	}
	if len(r.anoms) != 0 {
		t.Errorf("session anomalies: %+v", r.anoms)
	}
	for _, c := range r.cmds {
		if len(c.Anomalies) != 0 {
			t.Errorf("%s anomalies: %+v", c.Name, c.Anomalies)
		}
	}
	if got, want := r.cmds[1].Reply.Message, "Welcome to the build server.\nUnauthorized access is prohibited.\nLogin successful."; got != want {
		t.Errorf("230 message = %q, want %q", got, want)
	}
	if got, want := r.cmds[3].Reply.Message, "Features:\n EPRT\n EPSV\n MDTM\n PASV\n REST STREAM\n SIZE\n TVFS\n UTF8\nEnd"; got != want {
		t.Errorf("FEAT message = %q, want %q", got, want)
	}
	if got, want := r.cmds[3].Reply.Time, when(t, vsftpdPassive, "S 211 End"); !got.Equal(want) {
		t.Errorf("FEAT reply time %v, want %v", got, want)
	}
	stor := r.cmds[6]
	if !stor.Start.Equal(when(t, vsftpdPassive, "C STOR secrets.tar.gz")) || len(stor.Interim) != 1 || stor.Interim[0].Code != 150 {
		t.Errorf("STOR = %+v", stor)
	}

	wantExp := []Expectation{
		{ID: 1, Mode: Passive, Responder: netip.MustParseAddrPort("198.18.0.2:40000"),
			Time: when(t, vsftpdPassive, "S 227 Entering Passive Mode (198,18,0,2,156,64).")},
		{ID: 2, Mode: Passive, Responder: netip.AddrPortFrom(netip.Addr{}, 40001),
			Time: when(t, vsftpdPassive, "S 229 Entering Extended Passive Mode (|||40001|)")},
		{ID: 3, Mode: Passive, Responder: netip.MustParseAddrPort("198.18.0.2:40002"),
			Time: when(t, vsftpdPassive, "S 227 Entering Passive Mode (198,18,0,2,156,66).")},
		{ID: 4, Mode: Passive, Responder: netip.MustParseAddrPort("198.18.0.2:40003"),
			Time: when(t, vsftpdPassive, "S 227 Entering Passive Mode (198,18,0,2,156,67).")},
	}
	if len(r.exps) != len(wantExp) {
		t.Fatalf("expectations = %+v", r.exps)
	}
	for i := range wantExp {
		if r.exps[i] != wantExp[i] {
			t.Errorf("expectation %d = %+v, want %+v", i, r.exps[i], wantExp[i])
		}
	}
	if r.exps[1].Responder.Addr().IsValid() || r.exps[1].Responder.Port() != 40001 {
		t.Errorf("EPSV responder %v", r.exps[1].Responder)
	}

	w := func(l string) time.Time { return when(t, vsftpdPassive, l) }
	wantX := []Transfer{
		{ExpectationID: 1, Mode: Passive, Responder: wantExp[0].Responder, Command: "STOR", Filename: "secrets.tar.gz",
			Upload: true, HashToServer: true, BytesToServer: 1048576, Start: w("C STOR secrets.tar.gz"), End: w("S 226 Transfer complete."),
			CommandStart: w("C STOR secrets.tar.gz")},
		{ExpectationID: 2, Mode: Passive, Responder: wantExp[1].Responder, Command: "RETR", Filename: "report.pdf",
			BytesToClient: 5000, Start: w("C RETR report.pdf"), End: w("close 2"), CommandStart: w("C RETR report.pdf")},
		{ExpectationID: 3, Mode: Passive, Responder: wantExp[2].Responder, Command: "LIST", Filename: "-la",
			BytesToClient: 312, Start: w("C LIST -la"), End: w("S 226 Directory send OK."), CommandStart: w("C LIST -la")},
	}
	if len(r.xfers) != len(wantX) {
		t.Fatalf("transfers = %d, want %d: %v", len(r.xfers), len(wantX), r.log)
	}
	wantCodes := []int{226, 226, 226}
	for i, want := range wantX {
		got := *r.xfers[i]
		if got.Reply == nil || got.Reply.Code != wantCodes[i] {
			t.Errorf("transfer %d reply = %v", i, fmtReply(got.Reply))
		}
		got.Reply = nil
		if got != want {
			t.Errorf("transfer %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// pure-ftpd, active mode over IPv4 and IPv6, APPE, MLSD, an aborted RETR.
const pureftpdActive = `
	S 220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------
	S 220-You are user number 1 of 50 allowed.
	S 220-Local time is now 10:00. Server port: 21.
	S 220-This is a private system - No anonymous login
	S 220 You will be disconnected after 15 minutes of inactivity.
	C USER bob
	S 331 User bob OK. Password required
	C PASS hunter2
	S 230 OK. Current directory is /
	C TYPE I
	S 200 TYPE is now 8-bit binary
	C PORT 192,168,1,10,195,80
	open 1
	S 200 PORT command successful
	C APPE log.txt
	S 150 Connecting to port 50000
	up 1 4096
	dgap 1 up 1000
	close 1
	S 226-File successfully transferred
	S 226 0.002 seconds (measured here), 2.31 Mbytes per second
	C EPRT |2|2001:db8::10|50001|
	S 200 PORT command successful
	C MLSD /pub
	open 2
	S 150 Accepted data connection
	down 2 2048
	close 2
	S 226-Options: -a -l
	S 226 12 matches total
	C EPRT |1|192.168.1.10|50002|
	S 200 PORT command successful
	C RETR big.iso
	open 3
	S 150-Accepted data connection
	S 150 2048000.0 kbytes to download
	down 3 65536
	c "\xff\xf4\xff\xf2ABOR\r\n"
	S 426 Transfer aborted. Data connection closed.
	close 3
	S 226 ABOR command successful
	C QUIT
	S 221-Goodbye. You uploaded 5 and downloaded 64 kbytes.
	S 221 Logout.
	end
`

func TestPureftpdActive(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, pureftpdActive), feedWhole)
	want := []string{
		"USER bob=331", "PASS <redacted>=230", "TYPE I=200",
		"PORT 192,168,1,10,195,80=200", "APPE log.txt=226",
		"EPRT |2|2001:db8::10|50001|=200", "MLSD /pub=226",
		"EPRT |1|192.168.1.10|50002|=200", "RETR big.iso=426", "ABOR=226", "QUIT=221",
	}
	if got := cmdSummary(r.cmds); !equalStrings(got, want) {
		t.Fatalf("commands:\n got %q\nwant %q", got, want)
	}
	if len(r.unsol) != 1 || r.unsol[0].Code != 220 || !strings.HasPrefix(r.unsol[0].Message, "--------- Welcome to Pure-FTPd") ||
		strings.Count(r.unsol[0].Message, "\n") != 4 {
		t.Errorf("greeting = %q", r.unsol[0].Message)
	}
	if len(r.anoms) != 0 {
		t.Errorf("anomalies: %+v", r.anoms)
	}
	w := func(l string) time.Time { return when(t, pureftpdActive, l) }
	wantExp := []Expectation{
		{ID: 1, Mode: Active, Responder: netip.MustParseAddrPort("192.168.1.10:50000"), Time: w("C PORT 192,168,1,10,195,80")},
		{ID: 2, Mode: Active, Responder: netip.MustParseAddrPort("[2001:db8::10]:50001"), Time: w("C EPRT |2|2001:db8::10|50001|")},
		{ID: 3, Mode: Active, Responder: netip.MustParseAddrPort("192.168.1.10:50002"), Time: w("C EPRT |1|192.168.1.10|50002|")},
	}
	if len(r.exps) != 3 {
		t.Fatalf("expectations = %+v", r.exps)
	}
	for i := range wantExp {
		if r.exps[i] != wantExp[i] {
			t.Errorf("expectation %d = %+v, want %+v", i, r.exps[i], wantExp[i])
		}
	}
	wantX := []Transfer{
		{ExpectationID: 1, Mode: Active, Responder: wantExp[0].Responder, Command: "APPE", Filename: "log.txt", Upload: true, HashToServer: true,
			BytesToServer: 5096, Gap: true, Start: w("open 1"), End: w("S 226 0.002 seconds (measured here), 2.31 Mbytes per second"),
			CommandStart: w("C APPE log.txt")},
		{ExpectationID: 2, Mode: Active, Responder: wantExp[1].Responder, Command: "MLSD", Filename: "/pub",
			BytesToClient: 2048, Start: w("C MLSD /pub"), End: w("S 226 12 matches total"), CommandStart: w("C MLSD /pub")},
		{ExpectationID: 3, Mode: Active, Responder: wantExp[2].Responder, Command: "RETR", Filename: "big.iso",
			BytesToClient: 65536, Start: w("C RETR big.iso"), End: w("close 3"), CommandStart: w("C RETR big.iso")},
	}
	wantCodes := []int{226, 226, 426}
	if len(r.xfers) != len(wantX) {
		t.Fatalf("transfers = %v", r.log)
	}
	for i, want := range wantX {
		got := *r.xfers[i]
		if got.Reply == nil || got.Reply.Code != wantCodes[i] {
			t.Errorf("transfer %d reply = %v", i, fmtReply(got.Reply))
		}
		got.Reply = nil
		if got != want {
			t.Errorf("transfer %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if got := r.xfers[0].Reply.Message; got != "File successfully transferred\n0.002 seconds (measured here), 2.31 Mbytes per second" {
		t.Errorf("APPE reply message %q", got)
	}
	if retr := r.cmds[8]; len(retr.Interim) != 1 || retr.Interim[0].Message != "Accepted data connection\n2048000.0 kbytes to download" {
		t.Errorf("RETR interim = %+v", retr.Interim)
	}
}

// vsftpd STOU: the server picks the name and says it in the 150 reply.
const vsftpdStou = `
	S 220 (vsFTPd 3.0.3)
	C USER alice
	S 230 Login successful.
	C PASV
	S 227 Entering Passive Mode (198,18,0,2,156,70)
	C STOU
	open 1
	S 150 FILE: STOU.1a2b3c
	up 1 777
	close 1
	S 226 Transfer complete.
	end
`

func TestVsftpdStou(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, vsftpdStou), feedWhole)
	if len(r.xfers) != 1 {
		t.Fatalf("transfers: %v", r.log)
	}
	x := r.xfers[0]
	if x.Command != "STOU" || x.Filename != "STOU.1a2b3c" || x.StoredAs != "STOU.1a2b3c" || !x.Upload || x.BytesToServer != 777 || x.Reply.Code != 226 ||
		x.Responder != netip.MustParseAddrPort("198.18.0.2:40006") {
		t.Errorf("transfer = %+v", *x)
	}
}

// A STOU with a suggested name keeps it as Filename; the server's choice is StoredAs.
func TestStouWithArgumentKeepsIt(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C PASV
		S 227 =198,18,0,2,4,0
		C STOU draft.txt
		open 1
		S 150 FILE: draft.txt.rp7eaz59
		up 1 44
		close 1
		S 226 Transfer complete.
		end
	`), feedWhole)
	if len(r.xfers) != 1 || r.xfers[0].Filename != "draft.txt" || r.xfers[0].StoredAs != "draft.txt.rp7eaz59" || r.xfers[0].BytesToServer != 44 {
		t.Fatalf("%v", r.log)
	}
}

func TestStouNameInFinalReply(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C PASV
		S 227 =198,18,0,2,4,0
		C STOU
		open 1
		close 1
		S 150 Opening data connection
		S 250 Transfer started; FILE: upload.000
		end
	`), feedWhole)
	if len(r.xfers) != 1 || r.xfers[0].Filename != "upload.000" || r.xfers[0].Reply.Code != 250 {
		t.Fatalf("%v", r.log)
	}
	if r.exps[0].Responder != netip.MustParseAddrPort("198.18.0.2:1024") {
		t.Errorf("PASV without parentheses: %v", r.exps[0].Responder)
	}
}

func TestAuthTLS(t *testing.T) {
	script := `
		S 220 (vsFTPd 3.0.3)
		C AUTH TLS
		S 234 Proceed with negotiation.
		c "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03USER x\r\nPASV\r\n"
		s "\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03227 (1,2,3,4,5,6)\r\n"
		end
	`
	r, s := run(t, Limits{}, parseScript(t, script), feedWhole)
	if !s.Encrypted() {
		t.Fatal("Encrypted() = false after 234")
	}
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"AUTH TLS=234"}) {
		t.Errorf("commands = %q", got)
	}
	if len(r.exps) != 0 || len(r.anoms) != 0 {
		t.Errorf("decoded TLS bytes: %v", r.log)
	}
}

func TestAuthRejected(t *testing.T) {
	for _, code := range []string{"500 AUTH not understood.", "502 Command not implemented.", "530 Please login with USER and PASS."} {
		r, s := run(t, Limits{}, parseScript(t, `
			S 220 (vsFTPd 3.0.3)
			C AUTH SSL
			S `+code+`
			C USER alice
			S 331 Please specify the password.
			end
		`), feedWhole)
		if s.Encrypted() {
			t.Errorf("%s: Encrypted() = true", code)
		}
		if len(r.cmds) != 2 || r.cmds[1].Name != "USER" || r.cmds[1].Reply.Code != 331 {
			t.Errorf("%s: %v", code, r.log)
		}
	}
}

// Zeek's ftp-missing-reply-code and ftp-invalid-reply-code captures: one
// bad reply must cost one command, not the rest of the session.
func TestInvalidReplyCode(t *testing.T) {
	for _, bad := range []string{"UNIX Type: L8", "xyz", "99 text", "099 too low", "999 too high", ""} {
		r, _ := run(t, Limits{}, parseScript(t, `
			S 220 ok
			C USER zeek
			S 230 USER OK
			C PASS zeek
			S 230 PASS OK
			C SYST
			S `+bad+`
			C QUIT
			S 221 Bye
			end
		`), feedWhole)
		want := []string{"USER zeek=230", "PASS <redacted>=230", "SYST=0", "QUIT=221"}
		if got := cmdSummary(r.cmds); !equalStrings(got, want) {
			t.Errorf("%q: commands %q", bad, got)
			continue
		}
		syst := r.cmds[2]
		if syst.Reply.Message != bad || !equalStrings(anomalyNames(syst.Anomalies), []string{AnomalyInvalidReplyCode}) {
			t.Errorf("%q: SYST = %+v %+v", bad, syst.Reply, syst.Anomalies)
		}
	}
}

func TestMalformedReply(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C SYST
		S 215UNIX Type: L8
		C NOOP
		S 200
	`), feedWhole)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"SYST=215", "NOOP=200"}) {
		t.Fatalf("%q", got)
	}
	if r.cmds[0].Reply.Message != "UNIX Type: L8" || anomalyNames(r.cmds[0].Anomalies)[0] != AnomalyMalformedReply {
		t.Errorf("%+v", r.cmds[0])
	}
	if r.cmds[1].Reply.Message != "" {
		t.Errorf("bare code message %q", r.cmds[1].Reply.Message)
	}
}

func TestPipelinedCommands(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		S 220 ready
		c "USER a\r\nPASS b\r\nTYPE I\r\nCWD /tmp\r\nPWD\r\n"
		s "331 pw\r\n230 in\r\n200 binary\r\n250 ok\r\n257 \"/tmp\" is the current directory\r\n"
	`), feedWhole)
	want := []string{"USER a=331", "PASS <redacted>=230", "TYPE I=200", "CWD /tmp=250", "PWD=257"}
	if got := cmdSummary(r.cmds); !equalStrings(got, want) {
		t.Fatalf("%q", got)
	}
}

// A client that sends USER before the greeting arrives must not get the
// greeting as its reply.
func TestCommandBeforeGreeting(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C USER a
		S 220 hello
		S 331 pw
	`), feedWhole)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"USER a=331"}) || len(r.unsol) != 1 {
		t.Fatalf("%v", r.log)
	}
}

func TestCommandParsing(t *testing.T) {
	type want struct {
		name, arg string
		anoms     []string
	}
	wants := []want{
		{"USER", "Alice", nil},
		{"PASS", "", nil},
		{"ACCT", redacted, nil},
		{"P@SW", "", []string{AnomalyInvalidCommand}},
		{"", "", []string{AnomalyInvalidCommand}},
		{"", "NOOP", []string{AnomalyInvalidCommand}},
		{"SITE", "CHMOD 755 a b", nil},
		{"STOR", "a\xffb", nil},
		{"XMKD", "dir", nil},
	}
	// Commands are only emitted with a reply or at End: end the session.
	r2, _ := run(t, Limits{}, append(parseScript(t, `
		c "user Alice\r\n"
		c "pass \r\n"
		c "ACCT  secret words\r\n"
		c "P@SW\r\n"
		c "\r\n"
		c " NOOP\r\n"
		c "SITE CHMOD 755 a b\n"
		c "\xff\xfb\x01STOR a\xff\xffb\r\n"
		c "XMKD dir"
		c "\r\n"
	`), step{kind: 'E'}), feedWhole)
	if len(r2.cmds) != len(wants) {
		t.Fatalf("%d commands: %v", len(r2.cmds), r2.log)
	}
	for i, w := range wants {
		c := r2.cmds[i]
		if c.Name != w.name || c.Arg != w.arg || !equalStrings(anomalyNames(c.Anomalies), w.anoms) || c.Reply != nil {
			t.Errorf("command %d = %q %q %v, want %q %q %v", i, c.Name, c.Arg, anomalyNames(c.Anomalies), w.name, w.arg, w.anoms)
		}
	}
	for _, a := range r2.anoms {
		if strings.Contains(a.Detail, "secret") {
			t.Errorf("credential leaked in %+v", a)
		}
	}
}

func TestPassNeverLeaks(t *testing.T) {
	long := strings.Repeat("x", 5000)
	r, _ := run(t, Limits{}, parseScript(t, `
		C PASS topsecret`+long+`
		c "PASS topsecret-partial"
		end
	`), feedWhole)
	for _, l := range r.log {
		if strings.Contains(l, "topsecret") {
			t.Fatalf("password in %q", l[:min(len(l), 200)])
		}
	}
	if len(r.cmds) != 1 || r.cmds[0].Arg != redacted || anomalyNames(r.cmds[0].Anomalies)[0] != AnomalyLineTooLong {
		t.Errorf("%v", r.log)
	}
	if len(r.anoms) != 1 || r.anoms[0].Name != AnomalyPartialLine {
		t.Errorf("%+v", r.anoms)
	}
}

func TestQuitAndRein(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		S 220 hi
		C PASV
		S 227 Entering Passive Mode (10,0,0,1,4,1)
		C REIN
		S 120 wait
		S 220 Service ready for new user.
		open 1
		C STOR after-rein
		S 425 Use PORT or PASV first.
		C QUIT
		S 221 Goodbye.
		C NOOP
		end
	`), feedWhole)
	want := []string{"PASV=227", "REIN=220", "STOR after-rein=425", "QUIT=221", "NOOP=-"}
	if got := cmdSummary(r.cmds); !equalStrings(got, want) {
		t.Fatalf("%q", got)
	}
	if len(r.cmds[1].Interim) != 1 || r.cmds[1].Interim[0].Code != 120 {
		t.Errorf("REIN interim %+v", r.cmds[1].Interim)
	}
	if got := anomalyNames(r.cmds[4].Anomalies); !equalStrings(got, []string{AnomalyCommandAfterQuit}) {
		t.Errorf("NOOP after QUIT anomalies %q", got)
	}
	// REIN forgot the PASV: the late DataOpen matches nothing, no transfer.
	if len(r.xfers) != 0 {
		t.Errorf("transfers after REIN: %v", r.log)
	}
}

func TestUnsolicitedReply(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		S 220 hi
		S 200 stray
		S 421 Timeout.
	`), feedWhole)
	if len(r.unsol) != 3 || !equalStrings(anomalyNames(r.anoms), []string{AnomalyUnsolicitedReply}) {
		t.Errorf("%v", r.log)
	}
}

func TestControlGap(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C USER a
		c "STOR lo"
		gap C 10
		c "st-part\r\nNOOP\r\n"
		S 331 pw
		S 200 noop
	`), feedWhole)
	// The cut STOR line is gone; USER stays pending across the gap.
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"USER a=331", "NOOP=200"}) {
		t.Fatalf("%q", got)
	}
}

func TestServerGapInMultilineReply(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C FEAT
		C PWD
		S 211-Features:
		S  EPSV
		gap S 30
		s "SV\r\n"
		S 257 "/" is the current directory
	`), feedWhole)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"FEAT=211", "PWD=257"}) {
		t.Fatalf("%q", got)
	}
	if got := anomalyNames(r.cmds[0].Anomalies); !equalStrings(got, []string{AnomalyReplyCutByGap}) {
		t.Errorf("FEAT anomalies %q", got)
	}
}

func TestEndMidMultilineReply(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C FEAT
		S 211-Features:
		S  EPSV
		end
	`), feedWhole)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"FEAT=-"}) {
		t.Fatalf("%q", got)
	}
	if got := anomalyNames(r.anoms); !equalStrings(got, []string{AnomalyPartialLine}) {
		t.Errorf("%q", got)
	}
}

func TestBadDataAddress(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C PORT 1,2,3
		S 501 Illegal PORT command.
		C PASV
		S 227 Entering Passive Mode.
		C EPRT |3|x|1|
		S 522 Bad network protocol
		C PORT 10,0,0,1,0,0
		S 500 Illegal PORT command.
	`), feedWhole)
	for _, c := range r.cmds {
		if !equalStrings(anomalyNames(c.Anomalies), []string{AnomalyBadDataAddress}) {
			t.Errorf("%s: %q", c.Name, anomalyNames(c.Anomalies))
		}
	}
	if len(r.exps) != 0 {
		t.Errorf("expectations %+v", r.exps)
	}
}

func TestLongPassiveAndPort(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C LPSV
		S 228 Entering Long Passive Mode (4,4,192,168,0,1,2,4,1)
		C LPRT 6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,16,2,195,81
		S 200 LPRT ok
	`), feedWhole)
	if len(r.exps) != 2 || r.exps[0].Responder != netip.MustParseAddrPort("192.168.0.1:1025") || r.exps[0].Mode != Passive ||
		r.exps[1].Responder != netip.MustParseAddrPort("[2001:db8::10]:50001") || r.exps[1].Mode != Active {
		t.Errorf("%+v", r.exps)
	}
}

// Unknown commands are reported as any other.
func TestUnknownCommand(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		C FROB x y
		S 500 Unknown command.
		C HOST ftp.example.com
		S 220 Host accepted
	`), feedWhole)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"FROB x y=500", "HOST ftp.example.com=220"}) {
		t.Fatalf("%q", got)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Passive.String(), "passive"}, {Active.String(), "active"}, {Mode(9).String(), "invalid"},
		{No.String(), "no"}, {NeedMore.String(), "need_more"}, {Yes.String(), "yes"}, {Verdict(9).String(), "invalid"},
		{stateGreeting.String(), "greeting"}, {stateReady.String(), "ready"}, {stateQuit.String(), "quit"},
		{stateEncrypted.String(), "encrypted"}, {stateClosed.String(), "closed"}, {state(99).String(), "invalid"},
		{replyFirst.String(), "first_line"}, {replyMore.String(), "multi_line"}, {replyState(9).String(), "invalid"},
		{iacNone.String(), "none"}, {iacCmd.String(), "iac"}, {iacOpt.String(), "iac_option"}, {iacState(9).String(), "invalid"},
		{classTransfer.String(), "transfer"}, {cmdClass(99).String(), "invalid"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q, want %q", c.got, c.want)
		}
	}
}

// "IAC LF" must still end the line: servers do not interpret telnet, so a
// client could otherwise hide PASV and STOR from the parser.
func TestTelnetCannotHideLineEnd(t *testing.T) {
	r, _ := run(t, Limits{}, parseScript(t, `
		c "USER a\xff\nPASV\xff\xfb\nSTOR x\r\n"
		S 331 ok
		S 227 (10,0,0,1,4,1)
		S 150 ok
		end
	`), feedBytewise)
	if got := cmdSummary(r.cmds); !equalStrings(got, []string{"USER a=331", "PASV=227", "STOR x=-"}) {
		t.Fatalf("%q", got)
	}
}
