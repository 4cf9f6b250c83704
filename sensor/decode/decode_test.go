package decode

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	cliV4 = net.IP{198, 18, 0, 1}
	srvV4 = net.IP{198, 18, 0, 2}
	cliV6 = net.ParseIP("2001:2::1")
	srvV6 = net.ParseIP("2001:2::2")
	ts0   = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// tcpV4 returns IPv4+TCP bytes (no link layer) carrying payload.
func tcpV4(t testing.TB, payload string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: cliV4, DstIP: srvV4}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 502}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload(payload))
}

func tcpV6(t testing.TB, payload string) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: cliV6, DstIP: srvV6}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8443, Seq: 1000, Ack: 2000, ACK: true, Window: 502}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload(payload))
}

func eth(et uint16, inner []byte) []byte {
	b := make([]byte, 14, 14+len(inner))
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], et)
	return append(b, inner...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func udpWrap(t testing.TB, dport uint16, payload []byte) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 50000, DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

func greWrap(t testing.TB, greHdr []byte, inner []byte) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolGRE, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	return serialize(t, ip, gopacket.Payload(cat(greHdr, inner)))
}

func pktapV1(dlt uint32, inner []byte) []byte {
	h := make([]byte, 156)
	binary.LittleEndian.PutUint32(h[0:], 156)
	binary.LittleEndian.PutUint32(h[4:], 1)
	binary.LittleEndian.PutUint32(h[8:], dlt)
	copy(h[12:], "en0")
	binary.LittleEndian.PutUint32(h[36:], 0x20002)
	binary.LittleEndian.PutUint32(h[40:], 2)
	binary.LittleEndian.PutUint32(h[52:], 4242)
	copy(h[56:], "curl")
	return append(h, inner...)
}

func TestDecodeEncapsulations(t *testing.T) {
	v4 := tcpV4(t, "POST /upload HTTP/1.1\r\n")
	v6 := tcpV6(t, "PUT /x HTTP/1.1\r\n")
	innerEth := eth(0x0800, v4)
	cases := []struct {
		name   string
		link   uint32
		frame  []byte
		v6     bool
		tunnel string
	}{
		{"ethernet", LinkEthernet, innerEth, false, ""},
		{"ethernet ipv6", LinkEthernet, eth(0x86dd, v6), true, ""},
		{"802.1Q", LinkEthernet, eth(0x8100, cat(u16(100), u16(0x0800), v4)), false, ""},
		{"QinQ", LinkEthernet, eth(0x88a8, cat(u16(10), u16(0x8100), u16(20), u16(0x0800), v4)), false, ""},
		{"PPPoE", LinkEthernet, eth(0x8864, cat([]byte{0x11, 0, 0, 1}, u16(uint16(len(v4)+2)), u16(0x0021), v4)), false, "pppoe"},
		{"MPLS two labels", LinkEthernet, eth(0x8847, cat(u32(16<<12|64), u32(17<<12|1<<8|64), v4)), false, "mpls"},
		{"GRE", LinkEthernet, eth(0x0800, greWrap(t, cat(u16(0), u16(0x0800)), v4)), false, "gre"},
		{"GRE key+seq", LinkEthernet, eth(0x0800, greWrap(t, cat(u16(0x3000), u16(0x86dd), u32(7), u32(9)), v6)), true, "gre"},
		{"ERSPAN II", LinkEthernet, eth(0x0800, greWrap(t, cat(u16(0x1000), u16(0x88be), u32(1), make([]byte, 8)), innerEth)), false, "erspan"},
		{"ERSPAN III", LinkEthernet, eth(0x0800, greWrap(t, cat(u16(0x1000), u16(0x22eb), u32(1), make([]byte, 12)), innerEth)), false, "erspan"},
		{"VXLAN", LinkEthernet, eth(0x0800, udpWrap(t, 4789, cat([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}, innerEth))), false, "vxlan"},
		{"Geneve", LinkEthernet, eth(0x0800, udpWrap(t, 6081, cat([]byte{0x01, 0, 0x65, 0x58, 0, 0, 1, 0}, make([]byte, 4), innerEth))), false, "geneve"},
		{"Teredo", LinkEthernet, eth(0x0800, udpWrap(t, 3544, cat([]byte{0, 0, 0x12, 0x34, 1, 2, 3, 4}, v6))), true, "teredo"},
		{"IPv4 in IPv4", LinkEthernet, eth(0x0800, serialize(t, &layers.IPv4{Version: 4, TTL: 9, Protocol: layers.IPProtocolIPv4, SrcIP: net.IP{10, 1, 1, 1}, DstIP: net.IP{10, 1, 1, 2}}, gopacket.Payload(v4))), false, "ipip"},
		{"IPv6 in IPv4", LinkEthernet, eth(0x0800, serialize(t, &layers.IPv4{Version: 4, TTL: 9, Protocol: layers.IPProtocolIPv6, SrcIP: net.IP{10, 1, 1, 1}, DstIP: net.IP{10, 1, 1, 2}}, gopacket.Payload(v6))), true, "ipip"},
		{"SLL", LinkSLL, cat(u16(4), u16(1), u16(6), make([]byte, 8), u16(0x0800), v4), false, ""},
		{"SLL2", LinkSLL2, cat(u16(0x86dd), u16(0), u32(2), u16(1), []byte{4, 6}, make([]byte, 8), v6), true, ""},
		{"NULL little-endian IPv4", LinkNull, cat([]byte{2, 0, 0, 0}, v4), false, ""},
		{"NULL little-endian IPv6 (macOS 30)", LinkNull, cat([]byte{30, 0, 0, 0}, v6), true, ""},
		{"NULL big-endian IPv6 (24)", LinkNull, cat(u32(24), v6), true, ""},
		{"LOOP", LinkLoop, cat(u32(2), v4), false, ""},
		{"raw 101", LinkRaw, v4, false, ""},
		{"raw 12", LinkRawBSD, v6, true, ""},
		{"IPv4 228", LinkIPv4, v4, false, ""},
		{"IPv6 229", LinkIPv6, v6, true, ""},
		{"PKTAP 149 ethernet", LinkPKTAPUser, pktapV1(1, innerEth), false, ""},
		{"PKTAP 258 NULL", LinkPKTAP, pktapV1(0, cat([]byte{2, 0, 0, 0}, v4)), false, ""},
		{"PKTAP raw", LinkPKTAP, pktapV1(12, v6), true, ""},
		{"802.3 LLC/SNAP", LinkEthernet, cat(make([]byte, 12), u16(uint16(len(v4)+8)), []byte{0xaa, 0xaa, 3, 0, 0, 0}, u16(0x0800), v4), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(Options{VerifyChecksums: true})
			var p Packet
			if r := d.Decode(c.link, c.frame, ts0, len(c.frame), &p); r != OK {
				t.Fatalf("reason %v", r)
			}
			if p.Proto != ProtoTCP || p.IPv6 != c.v6 {
				t.Fatalf("proto %d ipv6 %v", p.Proto, p.IPv6)
			}
			want := "POST /upload HTTP/1.1\r\n"
			wantSrc := "198.18.0.1"
			if c.v6 {
				want = "PUT /x HTTP/1.1\r\n"
				wantSrc = "2001:2::1"
			}
			if string(p.Payload) != want {
				t.Fatalf("payload %q", p.Payload)
			}
			if p.SrcAddr().String() != wantSrc || p.SrcPort != 40000 || p.Seq != 1000 || p.Ack != 2000 {
				t.Fatalf("src %s:%d seq %d ack %d", p.SrcAddr(), p.SrcPort, p.Seq, p.Ack)
			}
			if p.BadChecksum {
				t.Fatal("good checksum reported bad")
			}
			if p.Tunnel != c.tunnel {
				t.Fatalf("tunnel %q, want %q", p.Tunnel, c.tunnel)
			}
		})
	}
}

func TestDecodeIPv6ExtensionHeaders(t *testing.T) {
	tcp := tcpV6(t, "GET / HTTP/1.1\r\n")[40:]
	hdr := tcpV6(t, "")[:40]
	// hop-by-hop (8 bytes) → routing (8) → destination (16) → atomic fragment → TCP
	ext := cat(
		[]byte{43, 0, 1, 4, 0, 0, 0, 0},
		[]byte{60, 0, 0, 0, 0, 0, 0, 0},
		[]byte{44, 1}, make([]byte, 14),
		[]byte{6, 0, 0, 0, 0, 0, 0, 1},
	)
	pkt := cat(hdr, ext, tcp)
	pkt[6] = 0
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(ext)+len(tcp)))
	d := NewDecoder(Options{})
	var p Packet
	if r := d.Decode(LinkRaw, pkt, ts0, len(pkt), &p); r != OK {
		t.Fatalf("reason %v", r)
	}
	if string(p.Payload) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("payload %q", p.Payload)
	}
	// A real fragment (offset 0, M set) is counted, not decoded.
	pkt[len(hdr)+8+8+16+3] = 1
	if r := d.Decode(LinkRaw, pkt, ts0, len(pkt), &p); r != ReasonIPv6Fragment {
		t.Fatalf("reason %v, want ipv6 fragment", r)
	}
}

func TestDecodeIPv4Fragments(t *testing.T) {
	full := tcpV4(t, "POST /frag HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	hl := 20
	body := full[hl:]
	mk := func(off int, data []byte, more bool) []byte {
		h := append([]byte(nil), full[:hl]...)
		binary.BigEndian.PutUint16(h[2:], uint16(hl+len(data)))
		v := uint16(off / 8)
		if more {
			v |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], v)
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], ^checksum(h, 0))
		return eth(0x0800, append(h, data...))
	}
	f1, f2 := mk(0, body[:24], true), mk(24, body[24:], false)
	d := NewDecoder(Options{VerifyChecksums: true})
	var p Packet
	// Second fragment first: reassembly must not depend on order.
	if r := d.Decode(LinkEthernet, f2, ts0, len(f2), &p); r != ReasonFragment {
		t.Fatalf("first fragment: %v", r)
	}
	// The reader reuses its buffer: scribble over the held fragment's frame.
	for i := range f2 {
		f2[i] = 0xee
	}
	if r := d.Decode(LinkEthernet, f1, ts0, len(f1), &p); r != OK {
		t.Fatalf("second fragment: %v", r)
	}
	if string(p.Payload) != "POST /frag HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" {
		t.Fatalf("payload %q", p.Payload)
	}
	if d.C.Reassembled != 1 {
		t.Fatalf("reassembled %d", d.C.Reassembled)
	}
}

func TestDecodeBadChecksumIsDecodedAndCounted(t *testing.T) {
	pkt := eth(0x0800, tcpV4(t, "hello"))
	pkt[len(pkt)-1] ^= 0xff // payload changed, checksum not
	d := NewDecoder(Options{VerifyChecksums: true})
	var p Packet
	if r := d.Decode(LinkEthernet, pkt, ts0, len(pkt), &p); r != OK {
		t.Fatalf("reason %v", r)
	}
	if !p.BadChecksum || d.C.BadChecksums != 1 {
		t.Fatalf("bad checksum not counted: %v %d", p.BadChecksum, d.C.BadChecksums)
	}
}

func TestDecodeDropsEthernetPaddingAndMarksTruncation(t *testing.T) {
	v4 := tcpV4(t, "")
	padded := eth(0x0800, append(append([]byte(nil), v4...), 0, 0, 0, 0, 0, 0))
	d := NewDecoder(Options{VerifyChecksums: true})
	var p Packet
	if r := d.Decode(LinkEthernet, padded, ts0, len(padded), &p); r != OK || len(p.Payload) != 0 || p.BadChecksum {
		t.Fatalf("padding: reason %v payload %q bad %v", r, p.Payload, p.BadChecksum)
	}
	full := eth(0x0800, tcpV4(t, "0123456789"))
	cut := full[:len(full)-4]
	if r := d.Decode(LinkEthernet, cut, ts0, len(full), &p); r != OK || !p.Truncated || string(p.Payload) != "012345" {
		t.Fatalf("snaplen cut: reason %v truncated %v payload %q", r, p.Truncated, p.Payload)
	}
}

func TestDecodeRejectsWithReason(t *testing.T) {
	v4 := tcpV4(t, "x")
	cases := []struct {
		name  string
		link  uint32
		frame []byte
		want  Reason
	}{
		{"empty", LinkEthernet, nil, ReasonTruncated},
		{"short ethernet", LinkEthernet, make([]byte, 10), ReasonTruncated},
		{"ARP", LinkEthernet, eth(0x0806, make([]byte, 28)), ReasonNotIP},
		{"unknown link", 9999, v4, ReasonUnknownLink},
		{"ICMP", LinkRaw, serialize(t, &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolICMPv4, SrcIP: cliV4, DstIP: srvV4}, gopacket.Payload(make([]byte, 8))), ReasonOtherProto},
		{"IHL too small", LinkRaw, append([]byte{0x44}, v4[1:]...), ReasonBadHeader},
		{"TCP offset beyond", LinkRaw, func() []byte { b := append([]byte(nil), v4...); b[20+12] = 0xf0; return b }(), ReasonTruncated},
		{"PKTAP length beyond frame", LinkPKTAP, func() []byte { b := pktapV1(1, nil); binary.LittleEndian.PutUint32(b, 70000); return b }(), ReasonBadHeader},
		{"PKTAP claims 1000 of 200", LinkPKTAP, func() []byte { b := pktapV1(1, make([]byte, 44)); binary.LittleEndian.PutUint32(b, 1000); return b }(), ReasonTruncated},
		{"PKTAP in PKTAP", LinkPKTAP, pktapV1(149, v4), ReasonBadHeader},
		{"VLAN loop", LinkEthernet, eth(0x8100, cat(u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100), u16(1), u16(0x8100))), ReasonTooDeep},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(Options{})
			var p Packet
			if r := d.Decode(c.link, c.frame, ts0, len(c.frame), &p); r != c.want {
				t.Fatalf("reason %v, want %v", r, c.want)
			}
			if d.C.ByReason[c.want] != 1 {
				t.Fatalf("not counted under %v", c.want)
			}
		})
	}
}

func TestDecodeAllocatesNothingOnTheHotPath(t *testing.T) {
	pkt := eth(0x0800, tcpV4(t, "some payload bytes"))
	d := NewDecoder(Options{VerifyChecksums: true})
	var p Packet
	if n := testing.AllocsPerRun(1000, func() { d.Decode(LinkEthernet, pkt, ts0, len(pkt), &p) }); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	ref := func(b []byte) uint16 {
		var s uint32
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return uint16(s)
	}
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(b); n++ {
		if got, want := checksum(b[:n], 0), ref(b[:n]); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("len %d: %#x want %#x", n, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	v4 := tcpV4(f, "GET / HTTP/1.1\r\n")
	f.Add(uint32(LinkEthernet), eth(0x0800, v4))
	f.Add(uint32(LinkEthernet), eth(0x8100, cat(u16(1), u16(0x0800), v4)))
	f.Add(uint32(LinkPKTAP), pktapV1(1, eth(0x0800, v4)))
	f.Add(uint32(LinkNull), cat([]byte{30, 0, 0, 0}, tcpV6(f, "x")))
	f.Add(uint32(LinkEthernet), eth(0x0800, udpWrap(f, 4789, cat([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}, eth(0x0800, v4)))))
	f.Add(uint32(LinkEthernet), eth(0x0800, greWrap(f, cat(u16(0x1000), u16(0x88be), u32(1), make([]byte, 8)), eth(0x0800, v4))))
	f.Add(uint32(LinkSLL2), cat(u16(0x0800), u16(0), u32(2), u16(1), []byte{4, 6}, make([]byte, 8), v4))
	d := NewDecoder(Options{VerifyChecksums: true})
	f.Fuzz(func(t *testing.T, link uint32, frame []byte) {
		var p Packet
		r := d.Decode(link%300, frame, ts0, len(frame), &p)
		if r == ReasonPanic {
			t.Fatalf("decoder panicked on %x", frame)
		}
		if r == OK && len(p.Payload) > len(frame) {
			t.Fatalf("payload longer than frame")
		}
	})
}
