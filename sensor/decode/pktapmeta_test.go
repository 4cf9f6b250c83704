package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"exfilwatch/sensor/capture"
)

// macOSSamples is the shared reference directory with the real macOS
// captures (see its PROVENANCE.md), relative to this package.
const macOSSamples = "../../../shared/reference/macos-samples"

func sampleDir(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(macOSSamples, "PROVENANCE.md")); err != nil {
		t.Skipf("macOS sample captures not found at %s (the shared reference directory is not checked out next to this repository): %v", macOSSamples, err)
	}
	return macOSSamples
}

const chromeSample = "gopacket_pktap_v1_chrome_helper_linktype258.pcap"

// readFrames decodes every frame of a capture with DecodeFrame.
func readFrames(t testing.TB, path string, fn func(fr *capture.Frame, p *Packet, r Reason)) int {
	t.Helper()
	f, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := NewDecoder(Options{VerifyChecksums: true})
	var fr capture.Frame
	var p Packet
	n := 0
	for ; ; n++ {
		if err := f.Next(&fr); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
		fn(&fr, &p, d.DecodeFrame(&fr, &p))
	}
}

// TestPKTAPChromeSample decodes the real PKTAP v1 record (current layout,
// byte 73 = 6) through the full decoder, as link type 258 (the file) and
// 149 (what Apple's libpcap writes).
func TestPKTAPChromeSample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(sampleDir(t), chromeSample))
	if err != nil {
		t.Fatal(err)
	}
	apple := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint32(apple[20:], LinkPKTAPUser)
	wantUUID, _ := hex.DecodeString("4c4c443655553144a1189540bad5b058")
	for lt, b := range map[uint32][]byte{LinkPKTAP: raw, LinkPKTAPUser: apple} {
		p := filepath.Join(t.TempDir(), "chrome.pcap")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		n := readFrames(t, p, func(fr *capture.Frame, pk *Packet, r Reason) {
			if fr.LinkType != lt || r != OK {
				t.Fatalf("link type %d: %v", fr.LinkType, r)
			}
			if pk.SrcAddr() != netip.MustParseAddr("123.117.132.38") || pk.SrcPort != 443 || pk.DstAddr() != netip.MustParseAddr("172.18.16.33") ||
				pk.DstPort != 54230 || pk.Flags != FlagSYN|FlagACK || pk.Proto != ProtoTCP {
				t.Errorf("link type %d: packet %+v", lt, pk)
			}
			m := pk.Meta
			if !m.Valid || m.Source != capture.MetaPKTAPv1 || !m.HasProc || m.PID != 2227 || m.Name != "Google Chrome He" ||
				!m.HasEProc || m.EPID != 2227 || m.EName != "Google Chrome He" || m.Delegated ||
				m.IfName != "en10" || m.PTHFlags != 0x21001 || m.Direction != capture.DirIn || m.FlowID != 0xbe0d3d08 ||
				!m.HasUUID || !bytes.Equal(m.UUID[:], wantUUID) || m.HasEUUID || !m.HasSvc || m.SvcClass != 0 ||
				m.Flags != capture.FlagSocket || m.CompGenCnt != 0 || m.TraceTag != 0 {
				t.Errorf("link type %d: meta %+v", lt, m)
			}
		})
		if n != 1 {
			t.Errorf("%d frames", n)
		}
	}
}

// TestPKTAPChromeSampleMatchesTshark compares the PKTAP fields that
// Wireshark decodes with ours (skipped without tshark).
func TestPKTAPChromeSampleMatchesTshark(t *testing.T) {
	path := filepath.Join(sampleDir(t), chromeSample)
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "pktap.pid", "-e", "pktap.cmdname", "-e", "pktap.epid", "-e", "pktap.ecmdname",
		"-e", "pktap.ifname", "-e", "pktap.flags", "-e", "pktap.svc_class", "-e", "pktap.dlt").Output()
	if err != nil {
		t.Skipf("tshark: %v", err)
	}
	var got string
	readFrames(t, path, func(fr *capture.Frame, p *Packet, r Reason) {
		m := p.Meta
		_, dlt, _ := UnwrapPKTAP(fr.Data)
		got = strings.Join([]string{itoa(m.PID), m.Name, itoa(m.EPID), m.EName, m.IfName, "0x" + hex8(m.PTHFlags), itoa(m.SvcClass), itoa(int32(dlt))}, "|")
	})
	if want := strings.TrimSpace(string(out)); got != want {
		t.Errorf("ours   %s\ntshark %s", got, want)
	}
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }

func hex8(v uint32) string { return hex.EncodeToString(binary.BigEndian.AppendUint32(nil, v)) }

// pktapHeader builds a PKTAP v1 header from the documented offsets
// (reference §1.2). byte73 and off112 select the layout: old = 0 and
// pth_ipproto; new = pth_ipproto and pth_comp_gencnt.
type pktapHeader struct {
	hl                 uint32
	dlt                uint32
	ifname             string
	flags              uint32
	pid, epid          int32
	comm, ecomm        string
	byte73             byte
	traceTag           uint16
	svc                uint32
	flowid, off112     uint32
	uuid, euuid        [16]byte
	raw24Ifname, raw17 bool // fill ifname / comm to their full size without NUL
}

func (h pktapHeader) bytes(inner []byte) []byte {
	if h.hl == 0 {
		h.hl = 156
	}
	b := make([]byte, max(int(h.hl), 156))
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.hl)
	le.PutUint32(b[4:], 1)
	le.PutUint32(b[8:], h.dlt)
	copy(b[12:36], h.ifname)
	le.PutUint32(b[36:], h.flags)
	le.PutUint32(b[40:], 2)
	le.PutUint32(b[52:], uint32(h.pid))
	copy(b[56:73], h.comm)
	b[73] = h.byte73
	le.PutUint16(b[74:], h.traceTag)
	le.PutUint32(b[76:], h.svc)
	le.PutUint16(b[80:], 6)
	le.PutUint32(b[84:], uint32(h.epid))
	copy(b[88:105], h.ecomm)
	le.PutUint32(b[108:], h.flowid)
	le.PutUint32(b[112:], h.off112)
	copy(b[124:140], h.uuid[:])
	copy(b[140:156], h.euuid[:])
	return append(b[:h.hl], inner...)
}

func uuidOf(s string) (u [16]byte) {
	b, _ := hex.DecodeString(s)
	copy(u[:], b)
	return u
}

// TestPKTAPv1Layouts decodes hand-built v1 headers of both layouts and of
// the minimum length, through the decoder (raw IPv4 inside, DLT 12).
func TestPKTAPv1Layouts(t *testing.T) {
	v4 := tcpV4(t, "x")
	u1, u2 := uuidOf("00112233445566778899aabbccddeeff"), uuidOf("ffeeddccbbaa99887766554433221100")
	old := pktapHeader{dlt: 12, ifname: "utun3", flags: pthDirOut | pthProcDelegated | pthNewFlow | pthSocket | pthRexmit,
		pid: 501, comm: "nsurlsessiond", epid: 777, ecomm: "Backup Uploader!", byte73: 0, off112: 6, traceTag: 9,
		svc: 0xffffffff, flowid: 0x1234, uuid: u1, euuid: u2}
	newer := old
	newer.byte73, newer.off112, newer.svc, newer.flags = 17, 77, 700, pthDirIn|pthKeepAlive|pthWakePkt
	short := old
	short.hl = 108
	d := NewDecoder(Options{})
	var p Packet
	for _, c := range []struct {
		name string
		h    pktapHeader
		want capture.ProcMeta
	}{
		{"old layout", old, capture.ProcMeta{Valid: true, Source: capture.MetaPKTAPv1Old, HasProc: true, PID: 501, Name: "nsurlsessiond",
			UUID: u1, HasUUID: true, HasEProc: true, EPID: 777, EName: "Backup Uploader!", EUUID: u2, HasEUUID: true, Delegated: true,
			IfName: "utun3", Direction: capture.DirOut, FlowID: 0x1234, Flags: capture.FlagNewFlow | capture.FlagSocket | capture.FlagRexmit,
			PTHFlags: old.flags, TraceTag: 9}},
		{"new layout", newer, capture.ProcMeta{Valid: true, Source: capture.MetaPKTAPv1, HasProc: true, PID: 501, Name: "nsurlsessiond",
			UUID: u1, HasUUID: true, HasEProc: true, EPID: 777, EName: "Backup Uploader!", EUUID: u2, HasEUUID: true,
			IfName: "utun3", Direction: capture.DirIn, FlowID: 0x1234, Flags: capture.FlagKeepAlive | capture.FlagWakePkt,
			PTHFlags: newer.flags, TraceTag: 9, SvcClass: 700, HasSvc: true, CompGenCnt: 77}},
		{"108-byte header", short, capture.ProcMeta{Valid: true, Source: capture.MetaPKTAPv1Old, HasProc: true, PID: 501, Name: "nsurlsessiond",
			HasEProc: true, EPID: 777, EName: "Backup Uploader!", Delegated: true,
			IfName: "utun3", Direction: capture.DirOut, Flags: capture.FlagNewFlow | capture.FlagSocket | capture.FlagRexmit,
			PTHFlags: old.flags, TraceTag: 9}},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame := c.h.bytes(v4)
			for _, lt := range []uint32{LinkPKTAP, LinkPKTAPUser} {
				if r := d.Decode(lt, frame, ts0, len(frame), &p); r != OK || p.DstPort != 8080 {
					t.Fatalf("%d: %v %+v", lt, r, p)
				}
				if p.Meta != c.want {
					t.Errorf("%d:\n got  %+v\n want %+v", lt, p.Meta, c.want)
				}
			}
			var m capture.ProcMeta
			if inner, dlt, r := ParsePKTAP(frame, &m); r != OK || dlt != 12 || !bytes.Equal(inner, v4) || m != c.want {
				t.Errorf("ParsePKTAP: %v %d %+v", r, dlt, m)
			}
		})
	}
}

// TestPKTAPUnknownProcess: pid -1 (no socket found) and no names means no
// process; pid 0 with a name is the kernel.
func TestPKTAPUnknownProcess(t *testing.T) {
	var m capture.ProcMeta
	ParsePKTAP(pktapHeader{dlt: 12, pid: -1, epid: -1, ifname: "en0", flags: pthDirIn}.bytes(nil), &m)
	if !m.Valid || m.HasProc || m.HasEProc || m.PID != -1 || m.IfName != "en0" || m.Direction != capture.DirIn || !m.HasSvc {
		t.Errorf("%+v", m)
	}
	ParsePKTAP(pktapHeader{dlt: 12, pid: 0, comm: "kernel_task", epid: 0}.bytes(nil), &m)
	if !m.HasProc || m.PID != 0 || m.Name != "kernel_task" || m.HasEProc {
		t.Errorf("%+v", m)
	}
	// Names that fill their field without a NUL are cut at the field.
	b := pktapHeader{dlt: 12}.bytes(nil)
	copy(b[12:36], strings.Repeat("i", 24))
	copy(b[56:73], strings.Repeat("c", 17))
	copy(b[88:105], strings.Repeat("e", 17))
	ParsePKTAP(b, &m)
	if m.IfName != strings.Repeat("i", 24) || m.Name != strings.Repeat("c", 17) || m.EName != strings.Repeat("e", 17) {
		t.Errorf("%+v", m)
	}
}

// pktapV2Header builds a pktap_v2_hdr (reference §1.5) followed by its
// variable fields at the given offsets.
type pktapV2Header struct {
	hl                                   byte
	uuidOff, euuidOff, ifOff, cOff, eOff byte
	dlt                                  uint16
	svc, flowid, flags                   uint32
	pid, epid                            int32
	tail                                 []byte // variable part, from offset 40
}

func (h pktapV2Header) bytes(inner []byte) []byte {
	b := make([]byte, 40, 40+len(h.tail))
	le := binary.LittleEndian
	b[0], b[1], b[2], b[3], b[4], b[5] = h.hl, h.uuidOff, h.euuidOff, h.ifOff, h.cOff, h.eOff
	le.PutUint16(b[6:], h.dlt)
	le.PutUint16(b[8:], 0)
	le.PutUint16(b[12:], 6)
	le.PutUint16(b[14:], 17)
	le.PutUint32(b[16:], 2)
	le.PutUint32(b[20:], h.svc)
	le.PutUint32(b[24:], h.flowid)
	le.PutUint32(b[28:], uint32(h.pid))
	le.PutUint32(b[32:], uint32(h.epid))
	le.PutUint32(b[36:], h.flags|pktapFlagV2Hdr)
	b = append(b, h.tail...)
	return append(b, inner...)
}

// TestPKTAPv2 decodes hand-built compact headers: all fields, absent
// fields, and offsets that point outside the header.
func TestPKTAPv2(t *testing.T) {
	v4 := tcpV4(t, "y")
	u1, u2 := uuidOf("0102030405060708090a0b0c0d0e0f10"), uuidOf("1112131415161718191a1b1c1d1e1f20")
	var tail []byte
	tail = append(tail, u1[:]...)                      // 40
	tail = append(tail, u2[:]...)                      // 56
	tail = append(tail, "utun4\x00\x00\x00"...)        // 72
	tail = append(tail, "curl\x00"...)                 // 80
	tail = append(tail, "Terminal\x00\x00\x00\x00"...) // 85
	full := pktapV2Header{hl: byte(40 + len(tail)), uuidOff: 40, euuidOff: 56, ifOff: 72, cOff: 80, eOff: 85, dlt: 12,
		svc: 200, flowid: 0xfeed, flags: pthDirOut | pthProcDelegated | pthSocket, pid: 4321, epid: 99, tail: tail}
	d := NewDecoder(Options{})
	var p Packet
	frame := full.bytes(v4)
	if r := d.Decode(LinkPKTAPUser, frame, ts0, len(frame), &p); r != OK || p.DstPort != 8080 {
		t.Fatalf("%v %+v", r, p)
	}
	want := capture.ProcMeta{Valid: true, Source: capture.MetaPKTAPv2, HasProc: true, PID: 4321, Name: "curl", UUID: u1, HasUUID: true,
		HasEProc: true, EPID: 99, EName: "Terminal", EUUID: u2, HasEUUID: true, Delegated: true, IfName: "utun4",
		Direction: capture.DirOut, SvcClass: 200, HasSvc: true, FlowID: 0xfeed, Flags: capture.FlagSocket, PTHFlags: full.flags | pktapFlagV2Hdr}
	if p.Meta != want {
		t.Errorf("\n got  %+v\n want %+v", p.Meta, want)
	}

	// No variable fields at all.
	bare := pktapV2Header{hl: 40, dlt: 12, svc: 0xffffffff, pid: -1, epid: -1}
	var m capture.ProcMeta
	if inner, dlt, r := ParsePKTAP(bare.bytes(v4), &m); r != OK || dlt != 12 || !bytes.Equal(inner, v4) ||
		m.HasProc || m.HasEProc || m.HasSvc || m.IfName != "" || m.Source != capture.MetaPKTAPv2 {
		t.Errorf("bare: %v %+v", r, m)
	}

	// Offsets into the fixed part, past the header, and a UUID that would
	// cross the header's end are ignored; a string is cut at the header's
	// end (here the header ends 4 bytes into "Terminal").
	bad := full
	bad.hl, bad.uuidOff, bad.euuidOff, bad.ifOff, bad.cOff, bad.eOff = 89, 10, 80, 39, 85, 255
	if _, _, r := ParsePKTAP(bad.bytes(v4), &m); r != OK || m.HasUUID || m.HasEUUID || m.IfName != "" || m.Name != "Term" || m.EName != "" ||
		!m.HasProc || m.PID != 4321 {
		t.Errorf("bad offsets: %v %+v", r, m)
	}
}

// TestPKTAPHostile: lengths past the end, zero, huge and negative-looking;
// nested PKTAP in both versions. Never a panic, always a reason.
func TestPKTAPHostile(t *testing.T) {
	v1 := pktapHeader{dlt: 1, pid: 1, comm: "x"}.bytes(make([]byte, 20))
	set := func(b []byte, off int, v uint32) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	v2 := pktapV2Header{hl: 40, dlt: 1}.bytes(make([]byte, 20))
	cases := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"nil", nil, ReasonTruncated},
		{"10 bytes", v1[:10], ReasonTruncated},
		{"107 bytes", v1[:107], ReasonTruncated},
		{"hl 0", set(v1, 0, 0), ReasonBadHeader},
		{"hl 107", set(v1, 0, 107), ReasonBadHeader},
		{"hl 4097", set(v1, 0, 4097), ReasonBadHeader},
		{"hl 0xffffffff", set(v1, 0, 0xffffffff), ReasonBadHeader},
		{"hl 0x80000000", set(v1, 0, 0x80000000), ReasonBadHeader},
		{"hl past the end", set(v1, 0, 4000), ReasonTruncated},
		{"hl = len", set(v1, 0, uint32(len(v1))), OK},
		{"v1 in v1 (258)", set(v1, 8, LinkPKTAP), ReasonBadHeader},
		{"v1 in v1 (149)", set(v1, 8, LinkPKTAPUser), ReasonBadHeader},
		{"v2 hl 0", func() []byte { b := append([]byte(nil), v2...); b[0] = 0; return b }(), ReasonBadHeader},
		{"v2 hl 39", func() []byte { b := append([]byte(nil), v2...); b[0] = 39; return b }(), ReasonBadHeader},
		{"v2 hl past the end", func() []byte { b := append([]byte(nil), v2[:50]...); b[0] = 255; return b }(), ReasonTruncated},
		{"v2 in v2", func() []byte { b := append([]byte(nil), v2...); b[6] = LinkPKTAPUser; return b }(), ReasonBadHeader},
		{"v2 in v2 (258)", func() []byte {
			b := append([]byte(nil), v2...)
			binary.LittleEndian.PutUint16(b[6:], LinkPKTAP)
			return b
		}(), ReasonBadHeader},
		{"v2 40 bytes only", v2[:40], OK},
	}
	d := NewDecoder(Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m capture.ProcMeta
			m.Name = "stale"
			_, _, r := ParsePKTAP(c.b, &m)
			if r != c.want {
				t.Errorf("ParsePKTAP: %v, want %v", r, c.want)
			}
			if r != OK && m != (capture.ProcMeta{}) {
				t.Errorf("metadata left on error: %+v", m)
			}
			if _, _, r2 := UnwrapPKTAP(c.b); r2 != r {
				t.Errorf("UnwrapPKTAP %v, ParsePKTAP %v", r2, r)
			}
			var p Packet
			if r := d.Decode(LinkPKTAP, c.b, ts0, len(c.b), &p); r == ReasonPanic {
				t.Errorf("decoder panicked")
			}
		})
	}
}

// TestPKTAPDecodeAllocatesNothing: names are interned, so decoding PKTAP
// frames allocates nothing once they have been seen.
func TestPKTAPDecodeAllocatesNothing(t *testing.T) {
	frame := pktapHeader{dlt: 12, ifname: "en0", pid: 7, comm: "curl", epid: 7, ecomm: "curl", flags: pthDirOut}.bytes(tcpV4(t, "z"))
	d := NewDecoder(Options{})
	var p Packet
	d.Decode(LinkPKTAP, frame, ts0, len(frame), &p)
	if n := testing.AllocsPerRun(200, func() { d.Decode(LinkPKTAP, frame, ts0, len(frame), &p) }); n != 0 {
		t.Errorf("%v allocations per PKTAP frame", n)
	}
	if p.Meta.Name != "curl" || p.Meta.IfName != "en0" {
		t.Errorf("%+v", p.Meta)
	}
	fr := capture.Frame{Data: frame, Timestamp: ts0, WireLen: len(frame), LinkType: LinkPKTAPUser}
	if n := testing.AllocsPerRun(200, func() { d.DecodeFrame(&fr, &p) }); n != 0 {
		t.Errorf("%v allocations per DecodeFrame", n)
	}
}

// TestNameCacheBounded: the interning cache starts over past maxNames.
func TestNameCacheBounded(t *testing.T) {
	var c nameCache
	for i := range 3 * maxNames {
		if s := c.get([]byte(strconv.Itoa(i))); s != strconv.Itoa(i) {
			t.Fatalf("%q", s)
		}
	}
	if len(c.m) > maxNames {
		t.Errorf("%d names kept", len(c.m))
	}
	if c.get(bytes.Repeat([]byte("a"), 30)) != strings.Repeat("a", 30) {
		t.Error("long name")
	}
}

// FuzzPKTAP parses arbitrary bytes as a PKTAP header: never a panic; an OK
// result leaves the inner frame inside the input and names within their
// field sizes; UnwrapPKTAP agrees; the decoder never reports a panic.
//
//	go test ./sensor/decode -run '^$' -fuzz FuzzPKTAP -fuzztime 30s
func FuzzPKTAP(f *testing.F) {
	v4 := tcpV4(f, "seed")
	f.Add(pktapHeader{dlt: 12, ifname: "en0", pid: 1, comm: "a", uuid: uuidOf("01")}.bytes(v4))
	f.Add(pktapHeader{dlt: 0, byte73: 6, off112: 3, hl: 108}.bytes(append([]byte{2, 0, 0, 0}, v4...)))
	f.Add(pktapV2Header{hl: 60, uuidOff: 40, ifOff: 56, dlt: 12, tail: append(make([]byte, 16), "lo0\x00"...)}.bytes(v4))
	if raw, err := os.ReadFile(filepath.Join(macOSSamples, chromeSample)); err == nil && len(raw) > 40 {
		f.Add(raw[40:])
	}
	d := NewDecoder(Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m capture.ProcMeta
		inner, dlt, r := ParsePKTAP(b, &m)
		i2, d2, r2 := UnwrapPKTAP(b)
		if r != r2 || dlt != d2 || !bytes.Equal(inner, i2) {
			t.Fatalf("UnwrapPKTAP disagrees")
		}
		if r == OK {
			if len(inner) > len(b) || !bytes.Equal(b[len(b)-len(inner):], inner) {
				t.Fatalf("inner frame not a suffix of the input")
			}
			if len(m.IfName) > 24 || len(m.Name) > 17 || len(m.EName) > 17 || !m.Valid {
				t.Fatalf("meta %+v", m)
			}
		}
		var p Packet
		for _, lt := range []uint32{LinkPKTAP, LinkPKTAPUser} {
			if d.Decode(lt, b, ts0, len(b), &p) == ReasonPanic {
				t.Fatalf("decoder panicked")
			}
		}
	})
}
