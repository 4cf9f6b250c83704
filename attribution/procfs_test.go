package attribution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// procFixture is a fake proc tree written by a little-endian kernel.
const procFixture = "testdata/linux/proc"

func skipIfBigEndian(t testing.TB) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the /proc/net fixtures are in a little-endian host's byte order")
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(procFixture, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ap(s string) netip.AddrPort {
	if s == "" {
		return netip.AddrPort{}
	}
	return netip.MustParseAddrPort(s)
}

func TestParseProcNetFixtures(t *testing.T) {
	skipIfBigEndian(t)
	sock := func(proto uint8, local, remote, state string, uid uint32, inode uint64) Socket {
		return Socket{Proto: proto, Local: ap(local), Remote: ap(remote), State: state, UID: uid, Inode: inode, FD: -1}
	}
	tests := []struct {
		file  string
		proto uint8
		ipv6  bool
		want  []Socket
	}{
		{"net/tcp", TCP, false, []Socket{
			sock(TCP, "0.0.0.0:22", "", "LISTEN", 0, 1001),
			sock(TCP, "10.0.0.5:51000", "93.184.216.34:443", "ESTABLISHED", 1000, 2001),
			sock(TCP, "10.0.0.5:51002", "93.184.216.34:443", "TIME_WAIT", 0, 0),
			sock(TCP, "10.0.0.5:51010", "203.0.113.9:80", "ESTABLISHED", 1000, 2002),
			sock(TCP, "127.0.0.1:631", "127.0.0.1:40404", "CLOSE_WAIT", 0, 2003),
		}},
		{"net/tcp6", TCP, true, []Socket{
			sock(TCP, "[::]:8080", "", "LISTEN", 33, 1002),
			// IPv4-mapped: returned unmapped, so it matches IPv4 flows.
			sock(TCP, "10.0.0.5:8080", "198.51.100.7:40000", "ESTABLISHED", 33, 3001),
			sock(TCP, "[2001:db8::5]:52000", "[2001:db8::99]:443", "ESTABLISHED", 1000, 3002),
			sock(TCP, "[::1]:631", "[::1]:50000", "LISTEN", 0, 1003),
		}},
		{"net/udp", UDP, false, []Socket{
			sock(UDP, "0.0.0.0:5353", "", "", 33, 4001),
			sock(UDP, "10.0.0.5:40001", "8.8.8.8:53", "", 1000, 4002),
		}},
		{"net/udp6", UDP, true, []Socket{
			sock(UDP, "[::]:9999", "", "", 33, 4003),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseProcNet(bytes.NewReader(readFixture(t, tt.file)), tt.proto, tt.ipv6)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestParseProcNetByteOrder checks the decoding of the kernel's words
// independently of the fixtures: each address word is the host-order u32 of
// the network-order bytes.
func TestParseProcNetByteOrder(t *testing.T) {
	word := func(b ...byte) string { return hex8(binary.NativeEndian.Uint32(b)) }
	v4 := word(192, 0, 2, 1)
	v6 := word(0x20, 0x01, 0x0d, 0xb8) + word(0, 0, 0, 0) + word(0, 0, 0, 0) + word(0, 0, 0, 0x2a)
	in := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: " + v4 + ":0050 " + v4 + ":D431 01 00000000:00000000 00:00000000 00000000  1000        0 77 1 0 20 4 30 10 -1\n"
	got, err := ParseProcNet(strings.NewReader(in), TCP, false)
	if err != nil || len(got) != 1 || got[0].Local != ap("192.0.2.1:80") || got[0].Remote != ap("192.0.2.1:54321") {
		t.Fatalf("v4: %+v, %v", got, err)
	}
	in6 := "   0: " + v6 + ":0050 " + v6 + ":0001 01 00000000:00000000 00:00000000 00000000     0        0 78 1 0 20 4 30 10 -1\n"
	got, err = ParseProcNet(strings.NewReader(in6), TCP, true)
	if err != nil || len(got) != 1 || got[0].Local != ap("[2001:db8::2a]:80") || got[0].Remote != ap("[2001:db8::2a]:1") {
		t.Fatalf("v6: %+v, %v", got, err)
	}
}

func hex8(v uint32) string {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

const goodTCPLine = "   1: 0500000A:C738 22D8B85D:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 2001 1 ffff8880aa3b1200 20 4 30 10 -1\n"

func TestParseProcNetBadLines(t *testing.T) {
	skipIfBigEndian(t)
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tests := []struct {
		name     string
		in       string
		ipv6     bool
		wantGood int
		wantBad  int
		wantErr  string // substring of the first bad line's reason
	}{
		{"good", header + goodTCPLine, false, 1, 0, ""},
		{"no header", goodTCPLine + goodTCPLine, false, 2, 0, ""},
		{"empty", "", false, 0, 0, ""},
		{"header only", header, false, 0, 0, ""},
		{"garbage", header + "hello world\n" + goodTCPLine, false, 1, 1, "fields"},
		{"binary", header + "\x00\xff\xfe\n" + goodTCPLine, false, 1, 1, "fields"},
		{"short address", header + strings.Replace(goodTCPLine, "0500000A:C738", "0500000:C738", 1), false, 0, 1, "bad address"},
		{"v6 line in v4 file", header + goodTCPLine, true, 0, 1, "bad address"},
		{"bad hex", header + strings.Replace(goodTCPLine, "0500000A", "0500000G", 1), false, 0, 1, "bad address"},
		{"bad port", header + strings.Replace(goodTCPLine, ":C738", ":C7X8", 1), false, 0, 1, "bad address"},
		{"state 0", header + strings.Replace(goodTCPLine, " 01 ", " 00 ", 1), false, 0, 1, "bad state"},
		{"state 0x20", header + strings.Replace(goodTCPLine, " 01 ", " 20 ", 1), false, 0, 1, "bad state"},
		{"uid overflow", header + strings.Replace(goodTCPLine, "  1000 ", " 4294967296 ", 1), false, 0, 1, "bad uid"},
		{"negative inode", header + strings.Replace(goodTCPLine, " 2001 ", " -2001 ", 1), false, 0, 1, "bad inode"},
		{"inode overflow", header + strings.Replace(goodTCPLine, " 2001 ", " 99999999999999999999 ", 1), false, 0, 1, "bad inode"},
		{"no slot colon", header + strings.Replace(goodTCPLine, "1:", "1", 1), false, 0, 1, "bad slot"},
		{"truncated last line", header + goodTCPLine + goodTCPLine[:40], false, 1, 1, "no newline"},
		{"last line complete but no newline", header + strings.TrimSuffix(goodTCPLine, "\n"), false, 0, 1, "unexpected EOF"},
		{"huge line", header + strings.Repeat("A", 10*MaxProcNetLine) + "\n" + goodTCPLine, false, 1, 1, "too long"},
		{"huge last line", header + goodTCPLine + strings.Repeat("A", 3*MaxProcNetLine), false, 1, 1, "too long"},
		{"two bad", header + "x\n" + goodTCPLine + "y\n", false, 1, 2, "fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcNet(strings.NewReader(tt.in), TCP, tt.ipv6)
			if len(got) != tt.wantGood {
				t.Errorf("got %d sockets, want %d", len(got), tt.wantGood)
			}
			if tt.wantBad == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var pe *ProcNetError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ProcNetError", err)
			}
			if pe.Bad != tt.wantBad || !strings.Contains(pe.Error(), tt.wantErr) {
				t.Errorf("got %v (bad %d), want %d bad, %q", pe, pe.Bad, tt.wantBad, tt.wantErr)
			}
			if len(pe.Error()) > 300 {
				t.Errorf("error quotes too much: %d bytes", len(pe.Error()))
			}
		})
	}
}

func TestParseProcNetLineTooLongIsErrProcLineTooLong(t *testing.T) {
	_, err := ParseProcNet(strings.NewReader(strings.Repeat("x", 5000)+"\n"), TCP, false)
	if !errors.Is(err, ErrProcLineTooLong) {
		t.Fatalf("got %v", err)
	}
}

// TestParseProcNetTruncationSweep cuts a real table at every offset: no
// panic, never a socket that is not in the full table, and only the last
// (cut) line can be lost.
func TestParseProcNetTruncationSweep(t *testing.T) {
	skipIfBigEndian(t)
	for _, f := range []struct {
		name  string
		proto uint8
		ipv6  bool
	}{{"net/tcp", TCP, false}, {"net/tcp6", TCP, true}, {"net/udp", UDP, false}} {
		full := readFixture(t, f.name)
		all, err := ParseProcNet(bytes.NewReader(full), f.proto, f.ipv6)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(full); i++ {
			got, err := ParseProcNet(bytes.NewReader(full[:i]), f.proto, f.ipv6)
			complete := bytes.Count(full[:i], []byte("\n")) - 1 // minus the header
			if complete < 0 {
				complete = 0
			}
			if len(got) != complete {
				t.Fatalf("%s cut at %d: %d sockets, want %d", f.name, i, len(got), complete)
			}
			if len(got) > 0 && !reflect.DeepEqual(got, all[:len(got)]) {
				t.Fatalf("%s cut at %d: sockets differ from the full table's", f.name, i)
			}
			cut := i > 0 && full[i-1] != '\n'
			if cut && complete >= 0 && !isHeaderCut(full, i) && err == nil {
				t.Fatalf("%s cut at %d: no error for the truncated line", f.name, i)
			}
		}
	}
}

// isHeaderCut says whether the cut falls inside the header line (a cut
// header is reported as a bad line too, but the sweep does not insist).
func isHeaderCut(b []byte, i int) bool { return bytes.IndexByte(b[:i], '\n') < 0 }

// TestParseProcNetReadError keeps the sockets read before an I/O error and
// wraps the error.
func TestParseProcNetReadError(t *testing.T) {
	skipIfBigEndian(t)
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(goodTCPLine), errReader{boom})
	got, err := ParseProcNet(r, TCP, false)
	if len(got) != 1 || !errors.Is(err, boom) {
		t.Fatalf("got %d sockets, %v", len(got), err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParseProcNetUnknownProto(t *testing.T) {
	if _, err := ParseProcNet(strings.NewReader(goodTCPLine), 1, false); err == nil {
		t.Fatal("no error for protocol 1")
	}
}

func TestParseFDLink(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[0]", 0, true},
		{"socket:[18446744073709551615]", 1<<64 - 1, true},
		{"socket:[18446744073709551616]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"socket:[-1]", 0, false},
		{"socket:[123", 0, false},
		{"socket:123]", 0, false},
		{"pipe:[12345]", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
		{"/home/alice/socket:[1]", 0, false},
		{"", 0, false},
		{"socket:[", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseFDLink(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseFDLink(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseProcNetAllocs(t *testing.T) {
	skipIfBigEndian(t)
	data := readFixture(t, "net/tcp")
	r := bytes.NewReader(data)
	br := newProcNetReader()
	n := testing.AllocsPerRun(100, func() {
		r.Reset(data)
		br.Reset(r)
		if err := scanProcNet(br, TCP, false, func(*Socket) bool { return true }); err != nil {
			t.Fatal(err)
		}
	})
	// One allocation per table (the Socket handed to fn); none per line.
	if n > 1 {
		t.Errorf("%v allocations per table", n)
	}
}

func FuzzParseProcNet(f *testing.F) {
	for _, name := range []string{"net/tcp", "net/tcp6", "net/udp", "net/udp6"} {
		b, err := os.ReadFile(filepath.Join(procFixture, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.HasPrefix(name, "net/udp"), strings.HasSuffix(name, "6"))
	}
	f.Add([]byte(goodTCPLine+"garbage\n"), false, false)
	f.Add([]byte(strings.Repeat("0", 2000)), false, true)
	f.Fuzz(func(t *testing.T, b []byte, udp, ipv6 bool) {
		proto := TCP
		if udp {
			proto = UDP
		}
		socks, err := ParseProcNet(bytes.NewReader(b), proto, ipv6)
		lines := bytes.Count(b, []byte("\n")) + 1
		if len(socks) > lines {
			t.Fatalf("%d sockets from %d lines", len(socks), lines)
		}
		for _, s := range socks {
			if s.Proto != proto || !s.Local.IsValid() || s.FD != -1 {
				t.Fatalf("bad socket %+v", s)
			}
			if s.Local.Addr().Is4In6() || s.Remote.Addr().Is4In6() {
				t.Fatalf("mapped address left: %+v", s)
			}
			if (proto == UDP) != (s.State == "") {
				t.Fatalf("state %q for proto %d", s.State, proto)
			}
		}
		var pe *ProcNetError
		if err != nil && errors.As(err, &pe) && (pe.Bad < 1 || pe.Bad > lines) {
			t.Fatalf("bad count %d of %d lines", pe.Bad, lines)
		}
	})
}
