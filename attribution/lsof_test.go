package attribution

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// lsofWantF is what testdata/darwin/lsof_F_pcRuftPnT.txt holds.
var lsofWantF = []LsofFile{
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("10.184.10.188:64647"), Remote: sockinfoAP("76.76.21.61:443"), State: "ESTABLISHED", UID: 501, PID: 37224, FD: 24}, Command: "Hyper Helper", PPID: 678, Type: "IPv4"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("[2001:db8::5]:50123"), Remote: sockinfoAP("[2606:4700::6810:84e5]:443"), State: "SYN_SENT", UID: 501, PID: 37224, FD: 25}, Command: "Hyper Helper", PPID: 678, Type: "IPv6"},
	{Socket: Socket{Proto: UDP, Local: sockinfoAP("0.0.0.0:5353"), UID: 65, PID: 412, FD: 6}, Command: "mDNSResponder", PPID: 1, Type: "IPv4"},
	{Socket: Socket{Proto: UDP, Local: sockinfoAP("[::]:5353"), UID: 65, PID: 412, FD: 7}, Command: "mDNSResponder", PPID: 1, Type: "IPv6"},
	{Socket: Socket{Proto: UDP, Local: sockinfoAP("[fe80::aede:48ff:fe00:1122%4]:5353"), Remote: sockinfoAP("[ff02::fb%4]:5353"), UID: 65, PID: 412, FD: 9}, Command: "mDNSResponder", PPID: 1, Type: "IPv6"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("[::1]:5432"), State: "LISTEN", UID: 501, PID: 676, FD: 7}, Command: "postgres", PPID: 1, Type: "IPv6"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("127.0.0.1:5432"), State: "LISTEN", UID: 501, PID: 676, FD: 8}, Command: "postgres", PPID: 1, Type: "IPv4"},
	{Socket: Socket{Proto: UDP, Local: sockinfoAP("[::1]:60051"), Remote: sockinfoAP("[::1]:60051"), UID: 501, PID: 676, FD: 10}, Command: "postgres", PPID: 1, Type: "IPv6"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("10.0.0.5:49822"), Remote: sockinfoAP("203.0.113.9:21"), State: "ESTABLISHED", UID: 501, PID: 8812, FD: 3}, Command: "python3.12", PPID: 8800, Type: "IPv6"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("10.0.0.5:49823"), Remote: sockinfoAP("203.0.113.9:40015"), State: "ESTABLISHED", UID: 501, PID: 8812, FD: 4}, Command: "python3.12", PPID: 8800, Type: "IPv6"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("[::]:22"), State: "LISTEN", UID: 0, PID: 1, FD: 12}, Command: "launchd", Type: "IPv6"},
	{Socket: Socket{Proto: UDP, Local: sockinfoAP("0.0.0.0:0"), UID: 0, PID: 1, FD: 13}, Command: "launchd", Type: "IPv4"},
	{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.0.2.1:1"), Remote: sockinfoAP("192.0.2.2:2"), PID: 9999, FD: 5}, Type: "IPv4"},
}

func lsofReadFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "darwin", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lsofCompare(t *testing.T, got, want []LsofFile) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d files, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("[%d]\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestParseLsofF(t *testing.T) {
	b := lsofReadFixture(t, "lsof_F_pcRuftPnT.txt")
	files, err := ParseLsofFFiles(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	lsofCompare(t, files, lsofWantF)

	socks, err := ParseLsofF(bytes.NewReader(b))
	if err != nil || len(socks) != len(lsofWantF) {
		t.Fatalf("ParseLsofF: %d sockets, %v", len(socks), err)
	}
	for i := range socks {
		if socks[i] != lsofWantF[i].Socket {
			t.Errorf("[%d] %+v", i, socks[i])
		}
	}

	// The same read one byte at a time, and with CRLF line ends.
	files, err = ParseLsofFFiles(iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	lsofCompare(t, files, lsofWantF)
	files, err = ParseLsofFFiles(strings.NewReader(strings.ReplaceAll(string(b), "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	lsofCompare(t, files, lsofWantF)
}

// lsofF0 turns NL-terminated -F output into -F0 output: every field ends
// with NUL, and each process or file set ends with NL (lsof.8).
func lsofF0(b []byte) []byte {
	var out []byte
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		out = append(append(out, l...), 0)
		if i+1 == len(lines) || lines[i+1] != "" && (lines[i+1][0] == 'p' || lines[i+1][0] == 'f') {
			out = append(out, '\n')
		}
	}
	return out
}

func TestParseLsofF0(t *testing.T) {
	b := lsofF0(lsofReadFixture(t, "lsof_F_pcRuftPnT.txt"))
	if bytes.Count(b, []byte{0}) < 100 {
		t.Fatal("fixture conversion failed")
	}
	files, err := ParseLsofFFiles(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	lsofCompare(t, files, lsofWantF)
}

func TestParseLsofFRobust(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"only garbage", "\x00\x00\n\n\xff\xfe\nzzz\n", 0},
		{"file before any process", "f3\ntIPv4\nPTCP\nn1.2.3.4:1->5.6.7.8:2\n", 0},
		{"bad pid drops its files", "pabc\nf3\ntIPv4\nPTCP\nn1.2.3.4:1->5.6.7.8:2\np7\nf4\ntIPv4\nPTCP\nn1.2.3.4:1->5.6.7.8:3\n", 1},
		{"no trailing newline", "p7\nf4\ntIPv4\nPUDP\nn*:53", 1},
		{"unknown fields ignored", "p7\nK12\nMtask\nf4\nG0x1;0x0\nZlabel\ntIPv4\nPUDP\nn*:53\n", 1},
		{"unclosed bracket", "p7\nf4\ntIPv6\nPTCP\nn[::1:80\n", 0},
		{"empty name", "p7\nf4\ntIPv6\nPTCP\nn\n", 0},
		{"arrow without remote", "p7\nf4\ntIPv4\nPTCP\nn1.2.3.4:5->\n", 0},
		{"service name", "p7\nf4\ntIPv4\nPTCP\nn1.2.3.4:5->5.6.7.8:https\n", 1},
		{"unknown service", "p7\nf4\ntIPv4\nPTCP\nn1.2.3.4:5->5.6.7.8:gopher-x\n", 0},
		{"raw socket", "p7\nf4\ntIPv4\nPICMP\nn*:*\n", 0},
		{"unix socket", "p7\nf4\ntunix\nn/var/run/mDNSResponder\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLsofF(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(got) != tt.want {
				t.Errorf("%d sockets %+v, want %d", len(got), got, tt.want)
			}
		})
	}
}

// TestParseLsofFLineTooLong: an overlong field is skipped and reported,
// and the rest is still parsed (the limit is a field of MaxLsofLine bytes:
// that one still passes).
func TestParseLsofFLineTooLong(t *testing.T) {
	long := "c" + strings.Repeat("x", MaxLsofLine)
	in := "p7\n" + long + "\nf4\ntIPv4\nPUDP\nn*:53\np8\nc" + strings.Repeat("y", MaxLsofLine-1) + "\nf5\ntIPv4\nPUDP\nn*:54\n"
	got, err := ParseLsofFFiles(strings.NewReader(in))
	if !errors.Is(err, ErrLsofLineTooLong) {
		t.Fatalf("err = %v, want ErrLsofLineTooLong", err)
	}
	if len(got) != 2 || got[0].Command != "" || got[1].Command != strings.Repeat("y", MaxLsofLine-1) {
		t.Fatalf("got %d files", len(got))
	}
	// A huge stream with no separator at all does not grow memory without bound.
	got, err = ParseLsofFFiles(strings.NewReader(strings.Repeat("z", 10<<20)))
	if !errors.Is(err, ErrLsofLineTooLong) || len(got) != 0 {
		t.Fatalf("err = %v, %d files", err, len(got))
	}
}

func TestParseLsofFReadError(t *testing.T) {
	boom := errors.New("boom")
	r := iotest.ErrReader(boom)
	if _, err := ParseLsofF(r); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseLsofF(f *testing.F) {
	f.Add([]byte("p37224\ncHyper Helper\nu501\nf24\ntIPv4\nPTCP\nn10.184.10.188:64647->76.76.21.61:443\nTST=ESTABLISHED\n"))
	f.Add([]byte("p412\x00R1\x00cmDNSResponder\x00\nf9\x00tIPv6\x00PUDP\x00n[fe80:4::1]:5353->[ff02:4::fb]:5353\x00\n"))
	f.Add([]byte("p1\nf12\ntIPv6\nPTCP\nn*:22\nTST=LISTEN\nf13\ntIPv4\nPUDP\nn*:*\n"))
	f.Add([]byte("p8\nf4\ntIPv6\nPTCP\nn[::ffff:10.0.0.5]:49823->[::ffff:203.0.113.9]:40015\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		files, _ := ParseLsofFFiles(bytes.NewReader(b))
		for _, f := range files {
			if f.Proto != TCP && f.Proto != UDP || !f.Local.IsValid() || f.Local.Addr().Is4In6() {
				t.Fatalf("bad file %+v", f)
			}
			if f.Remote.IsValid() && f.Remote.Addr().Is4In6() {
				t.Fatalf("mapped remote %+v", f)
			}
			if f.Type != "IPv4" && f.Type != "IPv6" {
				t.Fatalf("type %q", f.Type)
			}
		}
		if len(files) > len(b)/8+1 {
			t.Fatalf("%d files from %d bytes", len(files), len(b))
		}
	})
}

// lsofSamplesDir is shared/reference/macos-samples beside the checkout,
// where CI puts it.
func lsofSamplesDir(t *testing.T) string {
	dir := filepath.Join("..", "..", "shared", "reference", "macos-samples")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real samples not found: %v", err)
	}
	return dir
}

// TestParseLsofColumnsRealSamples parses the real macOS `lsof -i` lines
// saved in shared/reference/macos-samples (PROVENANCE.md: bandwhich and
// lsaddr test data).
func TestParseLsofColumnsRealSamples(t *testing.T) {
	dir := lsofSamplesDir(t)
	tests := []struct {
		file string
		want []LsofFile
	}{{
		file: "lsof_columnar_macos_bandwhich.txt",
		want: []LsofFile{
			{Socket: Socket{Proto: UDP, Local: sockinfoAP("[fe80::aede:48ff:fe00:1122%4]:1111"), Remote: sockinfoAP("[fe80::aede:48ff:fe33:4455%4]:2222"), PID: 29266, FD: 9}, Command: "ProcessName", User: "user", Type: "IPv6"},
			{Socket: Socket{Proto: UDP, Local: sockinfoAP("192.168.0.1:1111"), Remote: sockinfoAP("198.252.206.25:2222"), PID: 29266, FD: 39}, Command: "ProcessName", User: "user", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.1.37:60298"), Remote: sockinfoAP("31.13.83.36:443"), State: "ESTABLISHED", PID: 590, FD: 193}, Command: "com.apple", User: "etoledom", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.1.37:60299"), Remote: sockinfoAP("31.13.83.8:443"), State: "ESTABLISHED", PID: 590, FD: 198}, Command: "com.apple", User: "etoledom", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.1.37:60299"), Remote: sockinfoAP("31.13.83.8:443"), State: "ESTABLISHED", PID: 590, FD: 203}, Command: "com.apple", User: "etoledom", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.1.37:60374"), Remote: sockinfoAP("140.82.114.26:443"), PID: 590, FD: 204}, Command: "com.apple", User: "etoledom", Type: "IPv4"},
		},
	}, {
		file: "lsof_columnar_macos_lsaddr.txt",
		want: []LsofFile{
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.0.61:51291"), Remote: sockinfoAP("35.186.224.47:443"), State: "ESTABLISHED", PID: 11778, FD: 128}, Command: "Spotify", User: "danielmorandini", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.0.61:58122"), Remote: sockinfoAP("162.125.66.7:443"), State: "ESTABLISHED", PID: 614, FD: 236}, Command: "Dropbox", User: "danielmorandini", Type: "IPv4"},
			{Socket: Socket{Proto: TCP, Local: sockinfoAP("192.168.0.61:58282"), Remote: sockinfoAP("162.125.18.133:443"), State: "ESTABLISHED", PID: 614, FD: 247}, Command: "Dropbox", User: "danielmorandini", Type: "IPv4"},
			{Socket: Socket{Proto: UDP, Local: sockinfoAP("[::1]:60051"), Remote: sockinfoAP("[::1]:60051"), PID: 676, FD: 10}, Command: "postgres", User: "danielmorandini", Type: "IPv6"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseLsofColumns(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			lsofCompare(t, got, tt.want)
		})
	}
}

func TestParseLsofColumnsHeaderAndSpaces(t *testing.T) {
	in := "COMMAND     PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME\n" +
		"Google Chrome Helper 2227 alice 23u IPv4 0x1 0t0 TCP 10.0.0.2:50000->142.250.1.1:443 (ESTABLISHED)\n" +
		"launchd       1 0   12u  IPv6 0x2      0t0  TCP *:22 (LISTEN)\n" +
		"mDNSRespo   412 _mdnsresponder    6u  IPv4 0x3      0t0  UDP *:*\n" +
		"Finder      700 alice  txt    REG  1,4  100 12 /System/Library/CoreServices/Finder.app\n" +
		"short line\n"
	got, err := ParseLsofColumns(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []LsofFile{
		{Socket: Socket{Proto: TCP, Local: sockinfoAP("10.0.0.2:50000"), Remote: sockinfoAP("142.250.1.1:443"), State: "ESTABLISHED", PID: 2227, FD: 23}, Command: "Google Chrome Helper", User: "alice", Type: "IPv4"},
		{Socket: Socket{Proto: TCP, Local: sockinfoAP("[::]:22"), State: "LISTEN", PID: 1, FD: 12}, Command: "launchd", User: "0", Type: "IPv6"},
		{Socket: Socket{Proto: UDP, Local: sockinfoAP("0.0.0.0:0"), PID: 412, FD: 6}, Command: "mDNSRespo", User: "_mdnsresponder", Type: "IPv4"},
	}
	lsofCompare(t, got, want)
}

func FuzzParseLsofColumns(f *testing.F) {
	f.Add([]byte("com.apple   590 etoledom  193u  IPv4 0x28ffb9c041115627      0t0  TCP 192.168.1.37:60298->31.13.83.36:443 (ESTABLISHED)\n"))
	f.Add([]byte("ProcessName     29266 user    9u  IPv6 0x5d53dfe5445cee01      0t0  UDP [fe80:4::aede:48ff:fe00:1122]:1111->[fe80:4::aede:48ff:fe33:4455]:2222\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		files, _ := ParseLsofColumns(bytes.NewReader(b))
		for _, f := range files {
			if !f.Local.IsValid() || f.Local.Addr().Is4In6() {
				t.Fatalf("bad file %+v", f)
			}
		}
	})
}
