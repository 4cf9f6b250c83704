package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os/exec"
	"testing"
	"time"
	"unsafe"
)

// bpfRec is one record for bpfBuf.
type bpfRec struct {
	sec, usec uint32
	hdrlen    uint16
	datalen   uint32 // 0: len(data)
	data      []byte
}

// bpfBuf lays records out as the darwin kernel does (xnu bpf.c catchpacket):
// each at BPF_WORDALIGN of the previous end, the last one unpadded. Padding
// is filled with 0xee so that a walker reading it would notice.
func bpfBuf(recs ...bpfRec) []byte {
	var b []byte
	for i, r := range recs {
		if i > 0 {
			for len(b)%4 != 0 {
				b = append(b, 0xee)
			}
		}
		h := make([]byte, r.hdrlen)
		for j := range h {
			h[j] = 0xee
		}
		binary.LittleEndian.PutUint32(h[0:], r.sec)
		binary.LittleEndian.PutUint32(h[4:], r.usec)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(r.data)))
		dl := r.datalen
		if dl == 0 {
			dl = uint32(len(r.data))
		}
		binary.LittleEndian.PutUint32(h[12:], dl)
		binary.LittleEndian.PutUint16(h[16:], r.hdrlen)
		b = append(b, h...)
		b = append(b, r.data...)
	}
	return b
}

func bpfTestSeq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func walkBPF(t *testing.T, buf []byte) (hdrs []BPFHeader, datas [][]byte, err error) {
	t.Helper()
	var r BPFRecords
	r.Reset(buf)
	for i := 0; ; i++ {
		if i > len(buf) {
			t.Fatal("walker does not terminate")
		}
		h, d, ok, e := r.Next()
		if e != nil {
			if ok {
				t.Fatal("ok with an error")
			}
			// The rest of the buffer is skipped after an error.
			if _, _, ok2, e2 := r.Next(); ok2 || e2 != nil {
				t.Fatalf("after an error: ok=%v err=%v", ok2, e2)
			}
			return hdrs, datas, e
		}
		if !ok {
			return hdrs, datas, nil
		}
		hdrs = append(hdrs, h)
		datas = append(datas, d)
	}
}

func TestBPFRecordsSeveral(t *testing.T) {
	recs := []bpfRec{
		{sec: 1700000000, usec: 123456, hdrlen: 18, data: bpfTestSeq(60, 0)},                  // Ethernet: 18+60 = 78, 2 bytes padding
		{sec: 1700000001, usec: 999999, hdrlen: 20, data: bpfTestSeq(41, 100), datalen: 1500}, // raw IP, truncated by snaplen, 3 bytes padding
		{sec: 1700000002, usec: 0, hdrlen: 20, data: nil},                                     // an empty record: 20 bytes
		{sec: 1700000003, usec: 7, hdrlen: 64, data: bpfTestSeq(5, 200)},                      // bpf_hdr_ext layout
		{sec: 1700000004, usec: 8, hdrlen: 18, data: bpfTestSeq(1, 9)},                        // the last record, unpadded
	}
	buf := bpfBuf(recs...)
	if len(buf)%4 == 0 {
		t.Fatal("test buffer should end unaligned")
	}
	hdrs, datas, err := walkBPF(t, buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(hdrs) != len(recs) {
		t.Fatalf("%d records, want %d", len(hdrs), len(recs))
	}
	for i, r := range recs {
		h := hdrs[i]
		if !bytes.Equal(datas[i], r.data) {
			t.Errorf("record %d: data %x, want %x", i, datas[i], r.data)
		}
		wantDL := r.datalen
		if wantDL == 0 {
			wantDL = uint32(len(r.data))
		}
		if h.Sec != r.sec || h.Usec != r.usec || h.HdrLen != r.hdrlen || h.CapLen != uint32(len(r.data)) || h.DataLen != wantDL {
			t.Errorf("record %d: header %+v, want %+v", i, h, r)
		}
		if got, want := h.Time(), time.Unix(int64(r.sec), int64(r.usec)*1000); !got.Equal(want) {
			t.Errorf("record %d: time %v, want %v", i, got, want)
		}
		if cap(datas[i]) != len(datas[i]) {
			t.Errorf("record %d: data can be appended into the next record", i)
		}
	}
	// Reset reuses the walker.
	var r BPFRecords
	r.Reset(buf)
	for range recs {
		r.Next()
	}
	r.Reset(buf[:len(bpfBuf(recs[0]))])
	if _, d, ok, err := r.Next(); !ok || err != nil || !bytes.Equal(d, recs[0].data) {
		t.Fatalf("after Reset: ok=%v err=%v", ok, err)
	}
}

func TestBPFRecordsEmpty(t *testing.T) {
	for _, buf := range [][]byte{nil, {}} {
		if _, _, ok, err := (&BPFRecords{}).Next(); ok || err != nil {
			t.Fatalf("zero walker: ok=%v err=%v", ok, err)
		}
		var r BPFRecords
		r.Reset(buf)
		if _, _, ok, err := r.Next(); ok || err != nil {
			t.Fatalf("empty buffer: ok=%v err=%v", ok, err)
		}
	}
}

func TestBPFTimestampAfter2038(t *testing.T) {
	buf := bpfBuf(bpfRec{sec: 0xfffffff0, hdrlen: 18, data: bpfTestSeq(4, 0)})
	hdrs, _, err := walkBPF(t, buf)
	if err != nil || len(hdrs) != 1 {
		t.Fatal(err)
	}
	if y := hdrs[0].Time().UTC().Year(); y != 2106 {
		t.Fatalf("year %d, want 2106 (tv_sec read unsigned)", y)
	}
}

func TestBPFRecordsTruncatedAndHostile(t *testing.T) {
	good := bpfBuf(bpfRec{sec: 1, hdrlen: 18, data: bpfTestSeq(30, 0)}, bpfRec{sec: 2, hdrlen: 20, data: bpfTestSeq(50, 0)})
	put16 := func(b []byte, off int, v uint16) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	put32 := func(b []byte, off int, v uint32) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	second := bpfWordAlign(18 + 30) // offset of the second record
	cases := []struct {
		name     string
		buf      []byte
		nRecords int // records returned before the error
	}{
		{"data cut", good[:len(good)-1], 1},
		{"header cut", good[:second+10], 1},
		{"hdrlen 0", put16(good, 16, 0), 0},
		{"hdrlen 17", put16(good, 16, 17), 0},
		{"hdrlen beyond buffer", put16(good, 16, 0xffff), 0},
		{"second hdrlen 0", put16(good, second+16, 0), 1},
		{"caplen beyond buffer", put32(good, 8, 0xffffffff), 0},
		{"caplen one too many", put32(good, second+8, 51), 1},
		{"caplen 2^31", put32(good, 8, 0x80000000), 0},
		{"zeros", make([]byte, 4096), 0},
		{"0xff", bytes.Repeat([]byte{0xff}, 4096), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdrs, _, err := walkBPF(t, c.buf)
			if err == nil {
				t.Fatalf("no error (%d records)", len(hdrs))
			}
			if !errors.Is(err, ErrBPFRecord) {
				t.Fatalf("error %v does not wrap ErrBPFRecord", err)
			}
			if len(hdrs) != c.nRecords {
				t.Fatalf("%d records before the error, want %d", len(hdrs), c.nRecords)
			}
		})
	}
	// A record of 18+4 = 22 bytes and one more byte: the next record would
	// start at the aligned offset 24, past the end, so the walk ends cleanly
	// (that byte can only be padding).
	if hdrs, _, err := walkBPF(t, append(bpfBuf(bpfRec{hdrlen: 18, data: bpfTestSeq(4, 0)}), 0)); err != nil || len(hdrs) != 1 {
		t.Fatalf("padding at the end: err=%v records=%d", err, len(hdrs))
	}
	// A stray 1..17 bytes at an aligned offset after a record is an error.
	b := append(bpfBuf(bpfRec{hdrlen: 20, data: bpfTestSeq(4, 0)}), 1, 2, 3, 4, 5)
	if _, _, err := walkBPF(t, b); !errors.Is(err, ErrBPFRecord) {
		t.Fatalf("trailing garbage: %v", err)
	}
}

func FuzzBPFRecords(f *testing.F) {
	f.Add(bpfBuf(bpfRec{sec: 1, hdrlen: 18, data: bpfTestSeq(60, 0)}, bpfRec{sec: 2, hdrlen: 20, data: bpfTestSeq(41, 0)}, bpfRec{hdrlen: 64, data: bpfTestSeq(3, 0)}))
	f.Add(bpfBuf(bpfRec{hdrlen: 18}))
	f.Add(bpfBuf(bpfRec{hdrlen: 20, data: bpfTestPKTAP(1, 14, 4, "en0", make([]byte, 58))}))
	f.Add(make([]byte, 64))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		var r BPFRecords
		r.Reset(buf)
		base := uintptr(0)
		if len(buf) > 0 {
			base = uintptr(unsafe.Pointer(&buf[0]))
		}
		for n := 0; ; n++ {
			if n > len(buf)/20+1 {
				t.Fatalf("%d records from %d bytes", n, len(buf))
			}
			h, d, ok, err := r.Next()
			if err != nil || !ok {
				if ok {
					t.Fatal("ok with an error")
				}
				break
			}
			if int(h.CapLen) != len(d) || h.HdrLen < bpfHdrMinLen {
				t.Fatalf("header %+v with %d data bytes", h, len(d))
			}
			// The PKTAP unwrapping the user-space filter runs on each record.
			if pkt, ok := pktapNetwork(d); ok && len(pkt) > len(d) {
				t.Fatalf("PKTAP payload of %d bytes from a %d-byte record", len(pkt), len(d))
			}
			if len(d) > 0 {
				p := uintptr(unsafe.Pointer(&d[0]))
				if p < base || p+uintptr(len(d)) > base+uintptr(len(buf)) {
					t.Fatal("data outside the buffer")
				}
			}
		}
		if _, _, ok, err := r.Next(); ok || err != nil {
			t.Fatalf("after the end: ok=%v err=%v", ok, err)
		}
	})
}

// bpfTestPKTAP builds a PKTAP v1 record (156-byte header, xnu pktap.h) around
// a link-layer frame.
func bpfTestPKTAP(dlt, pre, post uint32, ifname string, frame []byte) []byte {
	h := make([]byte, 156)
	binary.LittleEndian.PutUint32(h[0:], 156)
	binary.LittleEndian.PutUint32(h[4:], 1) // PTH_TYPE_PACKET
	binary.LittleEndian.PutUint32(h[8:], dlt)
	copy(h[12:36], ifname)
	binary.LittleEndian.PutUint32(h[36:], 0x20002) // SOCKET | DIR_OUT
	binary.LittleEndian.PutUint32(h[40:], 2)
	binary.LittleEndian.PutUint32(h[44:], pre)
	binary.LittleEndian.PutUint32(h[48:], post)
	binary.LittleEndian.PutUint32(h[52:], 4242)
	copy(h[56:73], "curl")
	return append(h, frame...)
}

// bpfTestIPv4TCP returns an IPv4+TCP packet (no payload) to dport.
func bpfTestIPv4TCP(dport uint16) []byte {
	p := make([]byte, 40)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], 40)
	p[8] = 64
	p[9] = 6
	copy(p[12:], []byte{10, 0, 0, 1})
	copy(p[16:], []byte{93, 184, 216, 34})
	binary.BigEndian.PutUint16(p[20:], 50000)
	binary.BigEndian.PutUint16(p[22:], dport)
	p[32] = 0x50
	return p
}

func TestPKTAPNetwork(t *testing.T) {
	ip := bpfTestIPv4TCP(443)
	eth := append(append(make([]byte, 12), 0x08, 0x00), ip...)
	null := append([]byte{2, 0, 0, 0}, ip...)
	withFCS := append(append([]byte(nil), eth...), 0xde, 0xad, 0xbe, 0xef)
	for _, c := range []struct {
		name string
		rec  []byte
	}{
		{"ethernet", bpfTestPKTAP(1, 14, 0, "en0", eth)},
		{"loopback DLT_NULL", bpfTestPKTAP(0, 4, 0, "lo0", null)},
		{"utun raw", bpfTestPKTAP(12, 0, 0, "utun3", ip)},
		{"trailer", bpfTestPKTAP(1, 14, 4, "en0", withFCS)},
	} {
		got, ok := pktapNetwork(c.rec)
		if !ok || !bytes.Equal(got, ip) {
			t.Errorf("%s: ok=%v got %x", c.name, ok, got)
		}
	}

	// v2 header (PTH_FLAG_V2_HDR): u8 length, pre and post as u16 at 8 and 10.
	v2 := make([]byte, 40)
	v2[0] = 40
	binary.LittleEndian.PutUint16(v2[6:], 1)
	binary.LittleEndian.PutUint16(v2[8:], 14)
	binary.LittleEndian.PutUint32(v2[36:], pthFlagV2Hdr)
	if got, ok := pktapNetwork(append(v2, eth...)); !ok || !bytes.Equal(got, ip) {
		t.Errorf("v2: ok=%v got %x", ok, got)
	}

	rec := bpfTestPKTAP(1, 14, 0, "en0", eth)
	set := func(off int, v uint32) []byte {
		b := append([]byte(nil), rec...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	for name, b := range map[string][]byte{
		"short":             rec[:100],
		"pth_length 0":      set(0, 0),
		"pth_length 107":    set(0, 107),
		"pth_length > rec":  set(0, uint32(len(rec)+1)),
		"pth_length 2^32-1": set(0, 0xffffffff),
		"pre beyond":        set(44, uint32(len(rec))),
		"pre 2^32-1":        set(44, 0xffffffff),
		"v2 length 3":       append([]byte{3}, v2[1:]...),
	} {
		if _, ok := pktapNetwork(b); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// A trailer longer than what is left is not stripped.
	if got, ok := pktapNetwork(set(48, 0xffffffff)); !ok || !bytes.Equal(got, ip) {
		t.Errorf("huge post: ok=%v len=%d", ok, len(got))
	}
}

// The user-space PKTAP filter as live_darwin.go runs it: one program
// compiled for LINKTYPE_RAW, run on the packet inside each PKTAP record.
func TestPKTAPUserSpaceFilter(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (make test installs it)")
	}
	prog, err := CompileFilter("tcp dst port 443", linkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(prog)
	if err != nil {
		t.Fatal(err)
	}
	match := checkPKTAPFilter(t, f)
	eth := func(ip []byte) []byte { return append(append(make([]byte, 12), 0x08, 0x00), ip...) }
	// Link-layer primitives cannot apply to the unwrapped packet: OpenLive
	// reports them when it compiles the filter, before touching the kernel.
	for _, expr := range []string{"arp", "ether host 1:2:3:4:5:6", "vlan"} {
		if _, err := CompileFilter(expr, linkTypeRaw); err == nil {
			t.Errorf("%q compiled for raw IP", expr)
		}
	}
	// Walked out of a BPF buffer, as Next does.
	buf := bpfBuf(
		bpfRec{hdrlen: 20, data: bpfTestPKTAP(1, 14, 0, "en0", eth(bpfTestIPv4TCP(80)))},
		bpfRec{hdrlen: 20, data: bpfTestPKTAP(12, 0, 0, "utun3", bpfTestIPv4TCP(443))},
	)
	_, datas, err := walkBPF(t, buf)
	if err != nil || len(datas) != 2 || match(datas[0]) || !match(datas[1]) {
		t.Fatalf("err=%v records=%d", err, len(datas))
	}
}

func TestParsePKTAPName(t *testing.T) {
	typeAll := pktapFilter{Op: pktapFilterOpPass, Param: pktapFilterParamType}
	byName := func(n string) pktapFilter {
		f := pktapFilter{Op: pktapFilterOpPass, Param: pktapFilterParamName}
		copy(f.Name[:], n)
		return f
	}
	for _, c := range []struct {
		in      string
		isPKTAP bool
		ifname  string
		filters []pktapFilter // nil: kernel default
		err     bool
	}{
		{in: "en0"},
		{in: "utun3"},
		{in: "pktapfoo"},
		{in: "pktap", isPKTAP: true},
		{in: "all", isPKTAP: true, filters: []pktapFilter{typeAll}},
		{in: "any", isPKTAP: true, filters: []pktapFilter{typeAll}},
		{in: "pktap,all", isPKTAP: true, filters: []pktapFilter{typeAll}},
		{in: "pktap,any", isPKTAP: true, filters: []pktapFilter{typeAll}},
		{in: "pktap,en0,utun3", isPKTAP: true, filters: []pktapFilter{byName("en0"), byName("utun3")}},
		{in: "pktap,en0,,utun3,", isPKTAP: true, filters: []pktapFilter{byName("en0"), byName("utun3")}},
		{in: "pktap,en0,all", isPKTAP: true, filters: []pktapFilter{byName("en0"), typeAll}},
		{in: "pktap2", isPKTAP: true, ifname: "pktap2"},
		{in: "pktap2,all", isPKTAP: true, ifname: "pktap2", filters: []pktapFilter{typeAll}},
		{in: "pktap,", isPKTAP: true, err: true},
		{in: "pktap,a,b,c,d,e,f,g,h,i", isPKTAP: true, err: true},
		{in: "pktap,a,b,c,d,e,f,g,h", isPKTAP: true, filters: []pktapFilter{byName("a"), byName("b"), byName("c"), byName("d"), byName("e"), byName("f"), byName("g"), byName("h")}},
		{in: "pktap,abcdefghijklmnopqrstuvw", isPKTAP: true, filters: []pktapFilter{byName("abcdefghijklmnopqrstuvw")}},
		{in: "pktap,abcdefghijklmnopqrstuvwx", isPKTAP: true, err: true},
		{in: "pktap12345678901"}, // not a unit number: an ordinary (unknown) name
	} {
		spec, isPKTAP, err := parsePKTAPName(c.in)
		if isPKTAP != c.isPKTAP || (err != nil) != c.err {
			t.Errorf("%q: isPKTAP=%v err=%v", c.in, isPKTAP, err)
			continue
		}
		if err != nil || !isPKTAP {
			continue
		}
		if spec.ifname != c.ifname {
			t.Errorf("%q: ifname %q, want %q", c.in, spec.ifname, c.ifname)
		}
		if (spec.filters == nil) != (c.filters == nil) || len(spec.filters) != len(c.filters) {
			t.Errorf("%q: filters %+v, want %+v", c.in, spec.filters, c.filters)
			continue
		}
		for i := range c.filters {
			if spec.filters[i] != c.filters[i] {
				t.Errorf("%q: filter %d: %+v, want %+v", c.in, i, spec.filters[i], c.filters[i])
			}
		}
	}
}

// The PKTP_CMD_FILTER_SET argument, byte by byte: 8 entries of 32 bytes
// {u32 op, u32 param, 24-byte union}, unused ones zero (OP_NONE).
func TestPKTAPFilterArrayBytes(t *testing.T) {
	spec, _, err := parsePKTAPName("pktap,all,utun3")
	if err != nil {
		t.Fatal(err)
	}
	a := spec.filterArray()
	if unsafe.Sizeof(a) != 256 || pktapFilterArrayBytes != 256 {
		t.Fatalf("size %d, want 256 (PKTAP_MAX_FILTERS * sizeof(struct pktap_filter))", unsafe.Sizeof(a))
	}
	got := unsafe.Slice((*byte)(unsafe.Pointer(&a)), 256)
	want := make([]byte, 256)
	binary.LittleEndian.PutUint32(want[0:], 1)  // PASS
	binary.LittleEndian.PutUint32(want[4:], 1)  // PARAM_IF_TYPE
	binary.LittleEndian.PutUint32(want[8:], 0)  // if_type 0: any
	binary.LittleEndian.PutUint32(want[32:], 1) // PASS
	binary.LittleEndian.PutUint32(want[36:], 2) // PARAM_IF_NAME
	copy(want[40:], "utun3")
	if !bytes.Equal(got, want) {
		t.Fatalf("filter array\n got %x\nwant %x", got, want)
	}
}

// darwinIOC is the _IOC macro of xnu bsd/sys/ioccom.h.
func darwinIOC(dir uint32, group byte, num uint8, size uintptr) uint32 {
	const iocparmMask = 0x1fff
	return dir | (uint32(size)&iocparmMask)<<16 | uint32(group)<<8 | uint32(num)
}

const (
	iocVoid  = 0x20000000
	iocOut   = 0x40000000
	iocIn    = 0x80000000
	iocInOut = iocIn | iocOut
)

// Each ioctl number recomputed from its definition in the xnu headers, with
// the C argument sizes on LP64, so that a typo in a constant is caught.
func TestIoctlNumbers(t *testing.T) {
	const (
		sizeofUInt    = 4  // u_int, int
		sizeofIfreq   = 32 // struct ifreq: char[IFNAMSIZ=16] + 16-byte union
		sizeofBPFProg = 16 // struct bpf_program: u_int, pad, pointer
		sizeofTimeval = 16 // struct timeval: long, int, pad
		sizeofBPFStat = 8  // struct bpf_stat: two u_int
		sizeofIfdrv   = 40 // struct ifdrv: char[16], unsigned long, size_t, void*
	)
	for _, c := range []struct {
		name string
		got  uint32
		want uint32
	}{
		{"BIOCSBLEN _IOWR('B',102,u_int)", biocSBLEN, darwinIOC(iocInOut, 'B', 102, sizeofUInt)},
		{"BIOCSETF _IOW('B',103,struct bpf_program)", biocSETF, darwinIOC(iocIn, 'B', 103, sizeofBPFProg)},
		{"BIOCPROMISC _IO('B',105)", biocPROMISC, darwinIOC(iocVoid, 'B', 105, 0)},
		{"BIOCGDLT _IOR('B',106,u_int)", biocGDLT, darwinIOC(iocOut, 'B', 106, sizeofUInt)},
		{"BIOCSETIF _IOW('B',108,struct ifreq)", biocSETIF, darwinIOC(iocIn, 'B', 108, sizeofIfreq)},
		{"BIOCSRTIMEOUT _IOW('B',109,struct timeval)", biocSRTIMEOUT, darwinIOC(iocIn, 'B', 109, sizeofTimeval)},
		{"BIOCGSTATS _IOR('B',111,struct bpf_stat)", biocGSTATS, darwinIOC(iocOut, 'B', 111, sizeofBPFStat)},
		{"BIOCIMMEDIATE _IOW('B',112,u_int)", biocIMMEDIATE, darwinIOC(iocIn, 'B', 112, sizeofUInt)},
		{"BIOCSEXTHDR _IOW('B',124,u_int)", biocSEXTHDR, darwinIOC(iocIn, 'B', 124, sizeofUInt)},
		{"BIOCGWANTPKTAP _IOR('B',127,u_int)", biocGWANTPKTAP, darwinIOC(iocOut, 'B', 127, sizeofUInt)},
		{"BIOCSWANTPKTAP _IOWR('B',127,u_int)", biocSWANTPKTAP, darwinIOC(iocInOut, 'B', 127, sizeofUInt)},
		{"BIOCSPKTHDRV2 _IOW('B',132,int)", biocSPKTHDRV2, darwinIOC(iocIn, 'B', 132, sizeofUInt)},
		{"SIOCIFCREATE _IOWR('i',120,struct ifreq)", siocIFCREATE, darwinIOC(iocInOut, 'i', 120, sizeofIfreq)},
		{"SIOCIFDESTROY _IOW('i',121,struct ifreq)", siocIFDESTROY, darwinIOC(iocIn, 'i', 121, sizeofIfreq)},
		{"SIOCSDRVSPEC _IOW('i',123,struct ifdrv)", siocSDRVSPEC, darwinIOC(iocIn, 'i', 123, sizeofIfdrv)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, the formula gives %#x", c.name, c.got, c.want)
		}
	}

	// The values the shared reference (macos-formats.md §1.6) lists.
	for name, v := range map[string][2]uint32{
		"BIOCSETIF":      {biocSETIF, 0x8020426c},
		"BIOCIMMEDIATE":  {biocIMMEDIATE, 0x80044270},
		"BIOCSWANTPKTAP": {biocSWANTPKTAP, 0xc004427f},
		"BIOCGWANTPKTAP": {biocGWANTPKTAP, 0x4004427f},
		"BIOCSEXTHDR":    {biocSEXTHDR, 0x8004427c},
		"BIOCSPKTHDRV2":  {biocSPKTHDRV2, 0x80044284},
	} {
		if v[0] != v[1] {
			t.Errorf("%s = %#x, the reference says %#x", name, v[0], v[1])
		}
	}

	// The Go argument types have the C sizes and field offsets (darwin is
	// 64-bit only; on a 32-bit test host pointer-bearing types differ).
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("layout checks need a 64-bit host")
	}
	for name, v := range map[string][2]uintptr{
		"ifreq":               {unsafe.Sizeof(ifreq{}), sizeofIfreq},
		"bpfProgram":          {unsafe.Sizeof(bpfProgram{}), sizeofBPFProg},
		"bpfProgram.Insns":    {unsafe.Offsetof(bpfProgram{}.Insns), 8},
		"bpfTimeval":          {unsafe.Sizeof(bpfTimeval{}), sizeofTimeval},
		"bpfTimeval.Usec":     {unsafe.Offsetof(bpfTimeval{}.Usec), 8},
		"bpfStat":             {unsafe.Sizeof(bpfStat{}), sizeofBPFStat},
		"ifdrv":               {unsafe.Sizeof(ifdrv{}), sizeofIfdrv},
		"ifdrv.Cmd":           {unsafe.Offsetof(ifdrv{}.Cmd), 16},
		"ifdrv.Len":           {unsafe.Offsetof(ifdrv{}.Len), 24},
		"ifdrv.Data":          {unsafe.Offsetof(ifdrv{}.Data), 32},
		"pktapFilter":         {unsafe.Sizeof(pktapFilter{}), 32},
		"pktapFilter.Name":    {unsafe.Offsetof(pktapFilter{}.Name), 8},
		"size field of ifreq": {uintptr(biocSETIF>>16) & 0x1fff, unsafe.Sizeof(ifreq{})},
		"size field of ifdrv": {uintptr(siocSDRVSPEC>>16) & 0x1fff, unsafe.Sizeof(ifdrv{})},
		"size field of prog":  {uintptr(biocSETF>>16) & 0x1fff, unsafe.Sizeof(bpfProgram{})},
		"size field of tv":    {uintptr(biocSRTIMEOUT>>16) & 0x1fff, unsafe.Sizeof(bpfTimeval{})},
		"size field of stat":  {uintptr(biocGSTATS>>16) & 0x1fff, unsafe.Sizeof(bpfStat{})},
	} {
		if v[0] != v[1] {
			t.Errorf("%s: %d, want %d", name, v[0], v[1])
		}
	}
}

func TestIfreq(t *testing.T) {
	r, err := newIfreq("utun3")
	if err != nil || r.name() != "utun3" {
		t.Fatalf("%q %v", r.name(), err)
	}
	full, err := newIfreq("abcdefghijklmno") // 15 characters + NUL
	if err != nil || full.name() != "abcdefghijklmno" {
		t.Fatalf("%q %v", full.name(), err)
	}
	for _, bad := range []string{"", "abcdefghijklmnop", "en\x000"} {
		if _, err := newIfreq(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// The kernel writes the created name back without the caller's bytes.
	var back ifreq
	copy(back[:], "pktap12")
	if back.name() != "pktap12" {
		t.Fatal(back.name())
	}
}

func TestLinkTypeOfDLT(t *testing.T) {
	for dlt, want := range map[uint32]uint32{0: 0, 1: 1, 12: 101, 149: 149, 105: 105} {
		if got := linkTypeOfDLT(dlt); got != want {
			t.Errorf("DLT %d → %d, want %d", dlt, got, want)
		}
	}
}

// checkPKTAPFilter runs a "tcp dst port 443" filter, compiled for raw IP,
// on packets inside PKTAP records over Ethernet, NULL and raw links, as both
// capture backends do on PKTAP; it returns the matcher for further checks.
func checkPKTAPFilter(t *testing.T, f *Filter) func([]byte) bool {
	t.Helper()
	match := func(rec []byte) bool {
		pkt, ok := pktapNetwork(rec)
		return ok && f.Match(pkt)
	}
	eth := func(ip []byte) []byte { return append(append(make([]byte, 12), 0x08, 0x00), ip...) }
	null := func(ip []byte) []byte { return append([]byte{2, 0, 0, 0}, ip...) }
	if !match(bpfTestPKTAP(1, 14, 0, "en0", eth(bpfTestIPv4TCP(443)))) || match(bpfTestPKTAP(1, 14, 0, "en0", eth(bpfTestIPv4TCP(80)))) {
		t.Error("ethernet inside PKTAP filtered wrongly")
	}
	if !match(bpfTestPKTAP(0, 4, 0, "lo0", null(bpfTestIPv4TCP(443)))) || match(bpfTestPKTAP(0, 4, 0, "lo0", null(bpfTestIPv4TCP(22)))) {
		t.Error("loopback inside PKTAP filtered wrongly")
	}
	if !match(bpfTestPKTAP(12, 0, 0, "utun3", bpfTestIPv4TCP(443))) {
		t.Error("raw IP inside PKTAP filtered wrongly")
	}
	return match
}
