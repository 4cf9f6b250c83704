package ftp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseAddresses(t *testing.T) {
	noAddr := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.Addr{}, port) }
	mp := netip.MustParseAddrPort
	tests := []struct {
		name    string
		parse   func([]byte) (netip.AddrPort, error)
		in      string
		want    netip.AddrPort
		wantErr error
	}{
		{"PORT", parsePORT, "192,168,1,10,195,80", mp("192.168.1.10:50000"), nil},
		{"PORT spaces", parsePORT, " 10, 0, 0, 1 ,4,1 ", mp("10.0.0.1:1025"), nil},
		{"PORT unspecified", parsePORT, "0,0,0,0,4,1", noAddr(1025), nil},
		{"PORT short", parsePORT, "1,2,3,4,5", netip.AddrPort{}, errMalformedAddress},
		{"PORT byte > 255", parsePORT, "1,2,3,256,5,6", netip.AddrPort{}, errMalformedAddress},
		{"PORT 4 digits", parsePORT, "1,2,3,0004,5,6", netip.AddrPort{}, errMalformedAddress},
		{"PORT port 0", parsePORT, "1,2,3,4,0,0", netip.AddrPort{}, errZeroPort},
		{"PORT empty", parsePORT, "", netip.AddrPort{}, errMalformedAddress},
		{"PORT negative", parsePORT, "-1,2,3,4,5,6", netip.AddrPort{}, errMalformedAddress},

		{"PASV vsftpd", parsePASV, "Entering Passive Mode (198,18,0,2,156,64).", mp("198.18.0.2:40000"), nil},
		{"PASV bare", parsePASV, "Entering Passive Mode 198,18,0,2,156,64", mp("198.18.0.2:40000"), nil},
		{"PASV number before", parsePASV, "Mode 1 is =10,0,0,1,0,21", mp("10.0.0.1:21"), nil},
		{"PASV 0.0.0.0", parsePASV, "Entering Passive Mode (0,0,0,0,156,64)", noAddr(40000), nil},
		{"PASV none", parsePASV, "Entering Passive Mode.", netip.AddrPort{}, errMalformedAddress},
		{"PASV five", parsePASV, "(1,2,3,4,5)", netip.AddrPort{}, errMalformedAddress},

		{"EPRT v4", parseEPRT, "|1|132.235.1.2|6275|", mp("132.235.1.2:6275"), nil},
		{"EPRT v6", parseEPRT, "|2|1080::8:800:200C:417A|5282|", mp("[1080::8:800:200c:417a]:5282"), nil},
		{"EPRT other delimiter", parseEPRT, "!1!10.0.0.1!21!", mp("10.0.0.1:21"), nil},
		{"EPRT mapped", parseEPRT, "|2|::ffff:10.0.0.1|21|", mp("10.0.0.1:21"), nil},
		{"EPRT zone dropped", parseEPRT, "|2|fe80::1%eth0|21|", mp("[fe80::1]:21"), nil},
		{"EPRT family mismatch", parseEPRT, "|1|::1|21|", netip.AddrPort{}, errAddressFamily},
		{"EPRT family 3", parseEPRT, "|3|10.0.0.1|21|", netip.AddrPort{}, errAddressFamily},
		{"EPRT bad addr", parseEPRT, "|1|10.0.0|21|", netip.AddrPort{}, errMalformedAddress},
		{"EPRT port too big", parseEPRT, "|1|10.0.0.1|65536|", netip.AddrPort{}, errMalformedAddress},
		{"EPRT port 0", parseEPRT, "|1|10.0.0.1|0|", netip.AddrPort{}, errZeroPort},
		{"EPRT missing delimiter", parseEPRT, "|1|10.0.0.1|21", netip.AddrPort{}, errMalformedAddress},
		{"EPRT digit delimiter", parseEPRT, "1112111", netip.AddrPort{}, errMalformedAddress},
		{"EPRT space delimiter", parseEPRT, "\x7f1\x7f10.0.0.1\x7f21\x7f", netip.AddrPort{}, errMalformedAddress},

		{"EPSV vsftpd", parseEPSV, "Entering Extended Passive Mode (|||40001|)", noAddr(40001), nil},
		{"EPSV other delimiter", parseEPSV, "Entering Extended Passive Mode (!!!40001!)", noAddr(40001), nil},
		{"EPSV no parens", parseEPSV, "Entering Extended Passive Mode |||40001|", noAddr(40001), nil},
		{"EPSV with address", parseEPSV, "Extended (|2|2001:db8::2|40001|)", mp("[2001:db8::2]:40001"), nil},
		{"EPSV broken", parseEPSV, "Entering Extended Passive Mode (|||x|)", netip.AddrPort{}, errMalformedAddress},
		{"EPSV empty", parseEPSV, "", netip.AddrPort{}, errMalformedAddress},

		{"LPRT v4", parseLPRT, "4,4,10,0,0,1,2,4,1", mp("10.0.0.1:1025"), nil},
		{"LPRT v6", parseLPRT, "6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,16,2,195,81", mp("[2001:db8::10]:50001"), nil},
		{"LPRT bad hal", parseLPRT, "4,16,10,0,0,1,2,4,1", netip.AddrPort{}, errMalformedAddress},
		{"LPRT bad pal", parseLPRT, "4,4,10,0,0,1,3,4,1,1", netip.AddrPort{}, errMalformedAddress},
		{"LPSV", parseLPSV, "Entering Long Passive Mode (4,4,192,168,0,1,2,4,1)", mp("192.168.0.1:1025"), nil},
		{"LPSV none", parseLPSV, "Entering Long Passive Mode", netip.AddrPort{}, errMalformedAddress},
	}
	for _, tt := range tests {
		got, err := tt.parse([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("%s: %q → %v, %v; want %v, %v", tt.name, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestStouName(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"FILE: STOU.1", "STOU.1", true},
		{"Transfer started; file: a b", "a b", true},
		{"226-FILE: x\nok", "x", true},
		{"FILE:", "", false},
		{"Ok to send data.", "", false},
	} {
		got, ok := stouName(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("stouName(%q) = %q, %v", c.in, got, ok)
		}
	}
}
