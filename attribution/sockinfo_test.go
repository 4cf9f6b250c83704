package attribution

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// sockinfoFixture describes one struct socket_fdinfo. bytes() lays it out
// field by field at the offsets of macos-formats.md §3.2 (written here as
// literals, independently of the decoder's constants), with plausible
// values in the fields the decoder must ignore.
type sockinfoFixture struct {
	family, sotype, protocol, kind int32
	vflag                          uint8
	lport, fport                   uint16
	laddr, faddr                   [16]byte
	state                          int32
}

func (f sockinfoFixture) bytes() []byte {
	b := make([]byte, 792)
	le := binary.LittleEndian
	// proc_fileinfo pfi @0: fi_openflags FREAD|FWRITE, fi_status, fi_offset, fi_type DTYPE_SOCKET.
	le.PutUint32(b[0:], 0x3)
	le.PutUint32(b[4:], 0)
	le.PutUint64(b[8:], 0)
	le.PutUint32(b[16:], 2)
	// socket_info psi @24: soi_stat (vinfo_stat, 136 bytes) is zeroed by the kernel.
	le.PutUint64(b[160:], 0x6949610a99d53797) // soi_so, an obfuscated kernel pointer
	le.PutUint64(b[168:], 0x6949610a99d53a17) // soi_pcb
	le.PutUint32(b[176:], uint32(f.sotype))   // soi_type
	le.PutUint32(b[180:], uint32(f.protocol)) // soi_protocol
	le.PutUint32(b[184:], uint32(f.family))   // soi_family
	le.PutUint16(b[188:], 0x0004)             // soi_options (SO_KEEPALIVE…)
	le.PutUint16(b[192:], 0x0002)             // soi_state SOI_S_ISCONNECTED
	le.PutUint32(b[208:], 17)                 // soi_rcv.sbi_cc
	le.PutUint32(b[212:], 131072)             // soi_rcv.sbi_hiwat
	le.PutUint32(b[232:], 4096)               // soi_snd.sbi_cc (lsof QS=)
	le.PutUint32(b[256:], uint32(f.kind))     // soi_kind
	// soi_proto @264: in_sockinfo (also tcp_sockinfo.tcpsi_ini).
	binary.BigEndian.PutUint16(b[264:], f.fport) // insi_fport: network-order u_short in an int
	binary.BigEndian.PutUint16(b[268:], f.lport) // insi_lport
	le.PutUint64(b[272:], 123456)                // insi_gencnt
	le.PutUint32(b[280:], 0x800)                 // insi_flags
	b[288] = f.vflag                             // insi_vflag
	b[289] = 64                                  // insi_ip_ttl
	copy(b[296:312], f.faddr[:])                 // insi_faddr
	copy(b[312:328], f.laddr[:])                 // insi_laddr
	if f.kind == 2 {
		le.PutUint32(b[344:], uint32(f.state)) // tcpsi_state
		le.PutUint32(b[364:], 1448)            // tcpsi_mss
		le.PutUint64(b[376:], 0x6949610a99d5aa17)
	}
	return b
}

// sockinfoIn4in6 is an in4in6_addr: three zero pad words, then the IPv4 address.
func sockinfoIn4in6(s string) [16]byte {
	var a [16]byte
	v4 := netip.MustParseAddr(s).As4()
	copy(a[12:], v4[:])
	return a
}

// sockinfoRaw16 is an address as the kernel stores it, embedded scope included.
func sockinfoRaw16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func sockinfoAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestDecodeSocketFDInfo(t *testing.T) {
	tests := []struct {
		name string
		in   sockinfoFixture
		want Socket
	}{{
		name: "tcp4 established",
		in: sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 2, vflag: 0x1,
			lport: 51291, fport: 443, laddr: sockinfoIn4in6("192.168.0.61"), faddr: sockinfoIn4in6("35.186.224.47"), state: 4},
		want: Socket{Proto: TCP, Local: sockinfoAP("192.168.0.61:51291"), Remote: sockinfoAP("35.186.224.47:443"), State: "ESTABLISHED", FD: -1},
	}, {
		name: "tcp6 link-local with embedded scope",
		in: sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 0x2,
			lport: 1111, fport: 2222, laddr: sockinfoRaw16("fe80:4::aede:48ff:fe00:1122"), faddr: sockinfoRaw16("fe80:4::aede:48ff:fe33:4455"), state: 4},
		want: Socket{Proto: TCP, Local: sockinfoAP("[fe80::aede:48ff:fe00:1122%4]:1111"), Remote: sockinfoAP("[fe80::aede:48ff:fe33:4455%4]:2222"), State: "ESTABLISHED", FD: -1},
	}, {
		name: "tcp6 global",
		in: sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 0x2,
			lport: 50000, fport: 443, laddr: sockinfoRaw16("2001:db8::10"), faddr: sockinfoRaw16("2606:4700::1111"), state: 2},
		want: Socket{Proto: TCP, Local: sockinfoAP("[2001:db8::10]:50000"), Remote: sockinfoAP("[2606:4700::1111]:443"), State: "SYN_SENT", FD: -1},
	}, {
		name: "udp v4-mapped dual-stack socket (INI_IPV4 on AF_INET6)",
		in: sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 0x1,
			lport: 61000, fport: 53, laddr: sockinfoIn4in6("10.0.0.5"), faddr: sockinfoIn4in6("10.0.0.1")},
		want: Socket{Proto: UDP, Local: sockinfoAP("10.0.0.5:61000"), Remote: sockinfoAP("10.0.0.1:53"), FD: -1},
	}, {
		name: "udp IPv4-mapped address in an IPv6 socket",
		in: sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 0x2,
			lport: 61001, fport: 443, laddr: sockinfoRaw16("::ffff:10.0.0.5"), faddr: sockinfoRaw16("::ffff:142.250.1.1")},
		want: Socket{Proto: UDP, Local: sockinfoAP("10.0.0.5:61001"), Remote: sockinfoAP("142.250.1.1:443"), FD: -1},
	}, {
		name: "udp unconnected wildcard",
		in: sockinfoFixture{family: 2, sotype: 2, protocol: 17, kind: 1, vflag: 0x1,
			lport: 5353},
		want: Socket{Proto: UDP, Local: sockinfoAP("0.0.0.0:5353"), FD: -1},
	}, {
		name: "udp6 link-local multicast member",
		in: sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 0x2,
			lport: 5353, fport: 5353, laddr: sockinfoRaw16("fe80:c::1"), faddr: sockinfoRaw16("ff02:c::fb")},
		want: Socket{Proto: UDP, Local: sockinfoAP("[fe80::1%12]:5353"), Remote: sockinfoAP("[ff02::fb%12]:5353"), FD: -1},
	}, {
		name: "tcp4 listening on loopback",
		in: sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 2, vflag: 0x1,
			lport: 5432, laddr: sockinfoIn4in6("127.0.0.1"), state: 1},
		want: Socket{Proto: TCP, Local: sockinfoAP("127.0.0.1:5432"), State: "LISTEN", FD: -1},
	}, {
		name: "tcp6 dual-stack listener on ::",
		in: sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 0x3,
			lport: 8080, state: 1},
		want: Socket{Proto: TCP, Local: sockinfoAP("0.0.0.0:8080"), State: "LISTEN", FD: -1},
	}, {
		name: "tcp6 v6-only listener on ::1",
		in: sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 0x2,
			lport: 9229, laddr: sockinfoRaw16("::1"), state: 1},
		want: Socket{Proto: TCP, Local: sockinfoAP("[::1]:9229"), State: "LISTEN", FD: -1},
	}, {
		name: "both flags with a real IPv6 address stays IPv6",
		in: sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 0x3,
			lport: 443, laddr: sockinfoRaw16("2001:db8::1"), state: 1},
		want: Socket{Proto: TCP, Local: sockinfoAP("[2001:db8::1]:443"), State: "LISTEN", FD: -1},
	}, {
		name: "link-local with no embedded scope has no zone",
		in: sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 0x2,
			lport: 546, laddr: sockinfoRaw16("fe80::1")},
		want: Socket{Proto: UDP, Local: sockinfoAP("[fe80::1]:546"), FD: -1},
	}, {
		name: "tcp without tcpcb (SOCKINFO_IN) has no state",
		in: sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 1, vflag: 0x1,
			lport: 50001, fport: 80, laddr: sockinfoIn4in6("10.1.1.1"), faddr: sockinfoIn4in6("10.1.1.2")},
		want: Socket{Proto: TCP, Local: sockinfoAP("10.1.1.1:50001"), Remote: sockinfoAP("10.1.1.2:80"), FD: -1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSocketFDInfo(tt.in.bytes())
			if err != nil {
				t.Fatalf("DecodeSocketFDInfo: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeSocketFDInfoErrors(t *testing.T) {
	tcp := sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 2, vflag: 1, lport: 1, fport: 2,
		laddr: sockinfoIn4in6("10.0.0.1"), faddr: sockinfoIn4in6("10.0.0.2"), state: 4}
	mod := func(f func(b []byte)) []byte {
		b := tcp.bytes()
		f(b)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantSub string
	}{
		{"empty", nil, io.ErrUnexpectedEOF, "0 bytes"},
		{"one short", tcp.bytes()[:791], io.ErrUnexpectedEOF, "791 bytes"},
		{"one long", append(tcp.bytes(), 0), ErrBadSocketInfo, "793 bytes"},
		{"unix socket", (sockinfoFixture{family: 1, sotype: 1, kind: 3}).bytes(), ErrNotInetSocket, "family 1"},
		{"generic kind", (sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 0}).bytes(), ErrNotInetSocket, "soi_kind 0"},
		{"icmp", (sockinfoFixture{family: 2, sotype: 3, protocol: 1, kind: 1}).bytes(), ErrNotInetSocket, "protocol 1"},
		{"system socket", (sockinfoFixture{family: 32, sotype: 2, protocol: 2, kind: 6}).bytes(), ErrNotInetSocket, "family 32"},
		{"tcp kind with udp protocol", mod(func(b []byte) { binary.LittleEndian.PutUint32(b[180:], 17) }), ErrBadSocketInfo, "protocol 17"},
		{"tcp state out of range", mod(func(b []byte) { binary.LittleEndian.PutUint32(b[344:], 42) }), ErrBadSocketInfo, "tcpsi_state 42"},
		{"negative tcp state", mod(func(b []byte) { binary.LittleEndian.PutUint32(b[344:], 0xffffffff) }), ErrBadSocketInfo, "tcpsi_state -1"},
		{"lport upper bytes", mod(func(b []byte) { b[270] = 1 }), ErrBadSocketInfo, "port field at 268"},
		{"fport upper bytes", mod(func(b []byte) { b[267] = 0x80 }), ErrBadSocketInfo, "port field at 264"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSocketFDInfo(tt.in)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want one wrapping %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantSub)
			}
		})
	}
}

// TestDecodeSocketFDInfoTruncated feeds every prefix of a valid record: each
// must fail with io.ErrUnexpectedEOF, none may panic.
func TestDecodeSocketFDInfoTruncated(t *testing.T) {
	valid := (sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 2, lport: 1, fport: 2,
		laddr: sockinfoRaw16("fe80:4::1"), faddr: sockinfoRaw16("fe80:4::2"), state: 4}).bytes()
	for i := 0; i < len(valid); i++ {
		if _, err := DecodeSocketFDInfo(valid[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes: err = %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
}

func TestDecodeSocketFDInfoGarbage(t *testing.T) {
	b := make([]byte, 792)
	seed := uint32(2463534242)
	for round := 0; round < 2000; round++ {
		for i := range b {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			b[i] = byte(seed)
		}
		// Steer some rounds into the deep paths.
		if round%2 == 0 {
			binary.LittleEndian.PutUint32(b[184:], []uint32{2, 30}[round/2%2])
			binary.LittleEndian.PutUint32(b[256:], uint32(1+round/4%2))
			binary.LittleEndian.PutUint32(b[180:], []uint32{6, 17}[round/8%2])
			b[266], b[267], b[270], b[271] = 0, 0, 0, 0
			binary.LittleEndian.PutUint32(b[344:], uint32(round%11))
		}
		s, err := DecodeSocketFDInfo(b)
		if err == nil {
			sockinfoCheckInvariants(t, s)
		}
	}
}

func sockinfoCheckInvariants(t *testing.T, s Socket) {
	t.Helper()
	if s.Proto != TCP && s.Proto != UDP {
		t.Fatalf("proto %d", s.Proto)
	}
	if !s.Local.IsValid() || s.Local.Addr().Is4In6() {
		t.Fatalf("local %v", s.Local)
	}
	if s.Remote.IsValid() && s.Remote.Addr().Is4In6() {
		t.Fatalf("remote %v is v4-mapped", s.Remote)
	}
	if s.FD != -1 || s.PID != 0 {
		t.Fatalf("fd %d pid %d", s.FD, s.PID)
	}
	if s.Proto == UDP && s.State != "" {
		t.Fatalf("udp state %q", s.State)
	}
}

func FuzzDecodeSocketFDInfo(f *testing.F) {
	f.Add((sockinfoFixture{family: 2, sotype: 1, protocol: 6, kind: 2, vflag: 1, lport: 51291, fport: 443,
		laddr: sockinfoIn4in6("192.168.0.61"), faddr: sockinfoIn4in6("35.186.224.47"), state: 4}).bytes())
	f.Add((sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 2, lport: 1111, fport: 2222,
		laddr: sockinfoRaw16("fe80:4::aede:48ff:fe00:1122"), faddr: sockinfoRaw16("fe80:4::aede:48ff:fe33:4455"), state: 4}).bytes())
	f.Add((sockinfoFixture{family: 30, sotype: 2, protocol: 17, kind: 1, vflag: 1, lport: 61000, fport: 53,
		laddr: sockinfoIn4in6("10.0.0.5"), faddr: sockinfoIn4in6("10.0.0.1")}).bytes())
	f.Add((sockinfoFixture{family: 30, sotype: 1, protocol: 6, kind: 2, vflag: 3, lport: 8080, state: 1}).bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeSocketFDInfo(b); err == nil {
			sockinfoCheckInvariants(t, s)
		}
		// The fuzzer rarely hits exactly 792 bytes: also decode the input
		// cut or zero-padded to that size, to reach the field decoding.
		fixed := make([]byte, SocketFDInfoSize)
		copy(fixed, b)
		s, err := DecodeSocketFDInfo(fixed)
		if err == nil {
			sockinfoCheckInvariants(t, s)
			again, err2 := DecodeSocketFDInfo(fixed)
			if err2 != nil || again != s {
				t.Fatalf("not deterministic: %+v %v / %+v %v", s, err, again, err2)
			}
		}
	})
}

func TestDecodeFDList(t *testing.T) {
	var b []byte
	for _, r := range [][2]uint32{{0, 1}, {1, 1}, {5, 2}, {7, 6}, {12, 2}} {
		b = binary.LittleEndian.AppendUint32(b, r[0])
		b = binary.LittleEndian.AppendUint32(b, r[1])
	}
	b = append(b, 1, 2, 3, 4, 5) // partial record
	got := DecodeFDList(b)
	want := []FDInfo{{0, 1}, {1, 1}, {5, ProxFDTypeSocket}, {7, 6}, {12, ProxFDTypeSocket}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if n := len(DecodeFDList(nil)); n != 0 {
		t.Errorf("DecodeFDList(nil) has %d entries", n)
	}
	if n := len(DecodeFDList(make([]byte, 7))); n != 0 {
		t.Errorf("7 bytes gave %d entries", n)
	}
}

func TestDecodePIDList(t *testing.T) {
	var b []byte
	for _, pid := range []int32{1, 0, 590, -4, 29266, 0, 0} {
		b = binary.LittleEndian.AppendUint32(b, uint32(pid))
	}
	got := DecodePIDList(append(b, 9, 9))
	want := []int32{1, 590, 29266}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
}
