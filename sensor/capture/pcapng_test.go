package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// macOSSamples is the shared reference directory with Apple's tcpdump test
// captures (see its PROVENANCE.md), relative to this package.
const macOSSamples = "../../../shared/reference/macos-samples"

func sampleDir(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(macOSSamples, "PROVENANCE.md")); err != nil {
		t.Skipf("macOS sample captures not found at %s (the shared reference directory is not checked out next to this repository): %v", macOSSamples, err)
	}
	return macOSSamples
}

// ngBuilder writes pcapng blocks in one byte order.
type ngBuilder struct {
	bytes.Buffer
	order binary.ByteOrder
}

func newNg(order binary.ByteOrder) *ngBuilder {
	b := &ngBuilder{order: order}
	b.shb()
	return b
}

type ngOpt struct {
	code uint16
	val  []byte
}

func (b *ngBuilder) u16(v uint16) []byte { x := make([]byte, 2); b.order.PutUint16(x, v); return x }
func (b *ngBuilder) u32(v uint32) []byte { x := make([]byte, 4); b.order.PutUint32(x, v); return x }
func (b *ngBuilder) u64(v uint64) []byte { x := make([]byte, 8); b.order.PutUint64(x, v); return x }

func pad4(p []byte) []byte {
	for len(p)%4 != 0 {
		p = append(p, 0)
	}
	return p
}

func (b *ngBuilder) opts(opts []ngOpt) []byte {
	if len(opts) == 0 {
		return nil
	}
	var o []byte
	for _, op := range opts {
		o = append(o, b.u16(op.code)...)
		o = append(o, b.u16(uint16(len(op.val)))...)
		o = append(o, pad4(append([]byte(nil), op.val...))...)
	}
	return append(o, 0, 0, 0, 0)
}

func (b *ngBuilder) block(typ uint32, body []byte) *ngBuilder {
	body = pad4(body)
	n := uint32(12 + len(body))
	b.Write(b.u32(typ))
	b.Write(b.u32(n))
	b.Write(body)
	b.Write(b.u32(n))
	return b
}

func (b *ngBuilder) shb(opts ...ngOpt) *ngBuilder {
	body := append(b.u32(ngBOM), b.u16(1)...)
	body = append(body, b.u16(0)...)
	body = append(body, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return b.block(ngSHB, append(body, b.opts(opts)...))
}

func (b *ngBuilder) idb(linkType uint16, opts ...ngOpt) *ngBuilder {
	body := append(b.u16(linkType), 0, 0)
	body = append(body, b.u32(65535)...)
	return b.block(ngIDB, append(body, b.opts(opts)...))
}

func (b *ngBuilder) pib(pid int32, opts ...ngOpt) *ngBuilder {
	return b.block(ngPIB, append(b.u32(uint32(pid)), b.opts(opts)...))
}

func (b *ngBuilder) epb(ifid uint32, ts uint64, data []byte, opts ...ngOpt) *ngBuilder {
	body := b.u32(ifid)
	body = append(body, b.u32(uint32(ts>>32))...)
	body = append(body, b.u32(uint32(ts))...)
	body = append(body, b.u32(uint32(len(data)))...)
	body = append(body, b.u32(uint32(len(data)))...)
	body = append(body, pad4(append([]byte(nil), data...))...)
	return b.block(ngEPB, append(body, b.opts(opts)...))
}

func u32opt(b *ngBuilder, code uint16, v uint32) ngOpt { return ngOpt{code, b.u32(v)} }
func stropt(code uint16, s string) ngOpt               { return ngOpt{code, []byte(s)} }

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// goldenLines replays a pcapng file and prints it in the format of
// testdata/apple/apple_golden.py (which prints what tshark dissected).
func goldenLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	ng := f.ngr
	sections, nIf, nPIB := int64(0), 0, 0
	uuid := func(ok bool, u [16]byte) string {
		if !ok {
			return "-"
		}
		return hex.EncodeToString(u[:])
	}
	emitNew := func() {
		if ng.stats.Sections != sections {
			sections, nIf, nPIB = ng.stats.Sections, 0, 0
			out = append(out, fmt.Sprintf("section le=%s", map[bool]string{true: "False", false: "True"}[ng.bigEnd]))
		}
		for ; nIf < len(ng.ifaces); nIf++ {
			out = append(out, fmt.Sprintf("idb %d linktype=%d name=%s", nIf, ng.ifaces[nIf].linkType, ng.ifaces[nIf].name))
		}
		for ; nPIB < len(ng.procs); nPIB++ {
			p := ng.procs[nPIB]
			out = append(out, fmt.Sprintf("pib %d %d:%s:%s", nPIB, p.pid, p.name, uuid(p.hasUUID, p.uuid)))
		}
	}
	emitNew()
	var fr Frame
	for n := 1; ; n++ {
		err := f.Next(&fr)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		emitNew()
		m := fr.Meta
		dash := func(ok bool, s string) string {
			if !ok {
				return "-"
			}
			return s
		}
		proc := dash(m.HasProc, fmt.Sprintf("%d:%s:%s", m.PID, m.Name, uuid(m.HasUUID, m.UUID)))
		eproc := dash(m.HasEProc, fmt.Sprintf("%d:%s:%s", m.EPID, m.EName, uuid(m.HasEUUID, m.EUUID)))
		us := fr.Timestamp.UnixMicro()
		out = append(out, fmt.Sprintf("epb %d if=%d linktype=%d ifname=%s ts=%d.%06d caplen=%d len=%d dir=%s svc=%s pmd=%s flow=%s proc=%s eproc=%s",
			n, fr.Interface, fr.LinkType, m.IfName, us/1e6, us%1e6, len(fr.Data), fr.WireLen,
			dash(m.Direction != DirUnknown, fmt.Sprint(uint8(m.Direction))),
			dash(m.HasSvc, fmt.Sprint(m.SvcClass)),
			dash(m.Flags != 0, fmt.Sprintf("0x%x", m.Flags)),
			dash(m.FlowID != 0, fmt.Sprintf("0x%08x", m.FlowID)),
			proc, eproc))
	}
	return out
}

var appleSamples = []string{
	"apple_tcpdump_radar-88502733",
	"apple_tcpdump_radar-101007576-iperf",
	"apple_tcpdump_radar-74957353",
	"apple_tcpdump_radar-79792659",
}

// TestAppleSamplesMatchTshark reads each Apple pcapng sample and compares
// every section, interface, PIB and packet (interface, link type, name,
// timestamp, lengths, direction, svc, PMD flags, flow id, process and
// effective process resolved through the PIB table) with what tshark 4.0
// dissected from the same file (testdata/apple/*.tshark.txt).
func TestAppleSamplesMatchTshark(t *testing.T) {
	dir := sampleDir(t)
	for _, name := range appleSamples {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "apple", name+".tshark.txt"))
			if err != nil {
				t.Fatal(err)
			}
			got := goldenLines(t, filepath.Join(dir, name+".pcapng"))
			wl := strings.Split(strings.TrimRight(string(want), "\n"), "\n")
			if len(got) != len(wl) {
				t.Errorf("%d lines, tshark has %d", len(got), len(wl))
			}
			for i := range min(len(got), len(wl)) {
				if got[i] != wl[i] {
					t.Fatalf("line %d:\n got  %s\n want %s", i+1, got[i], wl[i])
				}
			}
		})
	}
}

// expectedLines reads Apple's expected tcpdump output next to a sample:
// lines "   N  HH:MM:SS.uuuuuu ..." (or without a time, tcpdump -t).
func expectedLines(t *testing.T, dir, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("bad expected line %q", l)
		}
		out = append(out, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), f[0])))
	}
	return out
}

// TestAppleSamplesMatchTcpdump checks each sample against Apple's expected
// tcpdump output: packet count, per-packet time, and for radar-79792659
// (tcpdump -k) the interface name and the metadata text that file carries
// in opt_comment instead of Darwin options.
func TestAppleSamplesMatchTcpdump(t *testing.T) {
	dir := sampleDir(t)
	for _, name := range appleSamples {
		t.Run(name, func(t *testing.T) {
			exp := expectedLines(t, dir, name)
			f, err := Open(filepath.Join(dir, name+".pcapng"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var fr Frame
			n := 0
			for ; ; n++ {
				err := f.Next(&fr)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n >= len(exp) {
					continue
				}
				line := exp[n]
				if !strings.Contains(name, "iperf") { // iperf was printed with -t (no time)
					if ts := fr.Timestamp.UTC().Format("15:04:05.000000"); !strings.HasPrefix(line, ts+" ") {
						t.Errorf("packet %d: time %s, tcpdump printed %q", n+1, ts, line)
					}
				}
				if strings.Contains(name, "79792659") {
					if fr.Meta.Valid {
						t.Errorf("packet %d: unexpected Darwin metadata %+v", n+1, fr.Meta)
					}
					k := fmt.Sprintf("(%s, %s)", fr.Meta.IfName, f.PacketComment())
					if !strings.Contains(line, k) {
						t.Errorf("packet %d: %q not in tcpdump -k line %q", n+1, k, line)
					}
				}
			}
			if n != len(exp) {
				t.Errorf("%d packets, tcpdump printed %d", n, len(exp))
			}
		})
	}
}

// TestAppleSampleFacts spells out the facts of the reference (§1.7) that
// matter downstream, independently of the tshark golden files.
func TestAppleSampleFacts(t *testing.T) {
	dir := sampleDir(t)
	read := func(name string) ([]Frame, *File) {
		f, err := Open(filepath.Join(dir, name+".pcapng"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		var frames []Frame
		for {
			var fr Frame
			if err := f.Next(&fr); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			fr.Data = append([]byte(nil), fr.Data...)
			frames = append(frames, fr)
		}
		return frames, f
	}

	fr, f := read("apple_tcpdump_radar-88502733")
	m := fr[0].Meta
	if len(fr) != 4 || !m.Valid || m.Source != MetaPcapNG || !m.HasProc || m.PID != 554 || m.Name != "packetdrill" || m.HasUUID ||
		m.IfName != "utun3" || fr[0].LinkType != 0 || m.Direction != DirOut || !m.HasSvc || m.SvcClass != 900 || SvcName(m.SvcClass) != "CTL" ||
		m.Flags != FlagNexusChannel || m.FlowID != 0 || m.HasEProc {
		t.Errorf("88502733 packet 1: %d frames, %+v", len(fr), m)
	}
	if m := fr[1].Meta; m.FlowID != 0x420505e8 || m.Direction != DirIn || m.SvcClass != 0 || !m.HasSvc {
		t.Errorf("88502733 packet 2: %+v", m)
	}
	if m := fr[3].Meta; m.HasProc || m.Flags != FlagSocket || !m.Valid {
		t.Errorf("88502733 packet 4 (no PIB index): %+v", m)
	}
	if s := f.PcapNGStats(); s.Sections != 1 || s.Interfaces != 1 || s.ProcessBlocks != 1 || s.BadOptions != 0 || s.UnknownProcess != 0 {
		t.Errorf("88502733 stats %+v", s)
	}

	// iperf over lo0: every datagram is captured twice, out (attributed to
	// the sender, with a flow id) then in (attributed to the receiver).
	// Client 53245 sends packets 1-22; the server 53147 sends 23 (in: 24).
	// PIB 2 (53245 without UUID) serves packets 19 and 21.
	fr, _ = read("apple_tcpdump_radar-101007576-iperf")
	wantUUID, _ := hex.DecodeString("fb1bb7b17daf3973b5da9383b19a8994")
	if len(fr) != 24 {
		t.Fatalf("iperf: %d packets", len(fr))
	}
	for i, x := range fr {
		m := x.Meta
		out := i%2 == 0
		client := (i < 22) == out
		wantPID := map[bool]int32{true: 53245, false: 53147}[client]
		wantHasUUID := i != 18 && i != 20
		if m.IfName != "lo0" || x.LinkType != 0 || !m.HasProc || m.PID != wantPID || m.Name != "iperf" || m.HasUUID != wantHasUUID ||
			wantHasUUID && !bytes.Equal(m.UUID[:], wantUUID) || (m.Direction == DirOut) != out || (m.FlowID != 0) != out || m.Flags != FlagSocket {
			t.Errorf("iperf packet %d: %+v", i+1, m)
		}
	}

	fr, f = read("apple_tcpdump_radar-74957353")
	links := map[string]uint32{}
	delegated, eproc := 0, 0
	for _, x := range fr {
		links[x.Meta.IfName] = x.LinkType
		if x.Meta.HasEProc {
			eproc++
			if x.Meta.Direction != DirIn {
				t.Errorf("effective process on an outbound packet: %+v", x.Meta)
			}
		}
		if x.Meta.Delegated {
			delegated++
			if x.Meta.PID != 0 || x.Meta.Name != "kernel_task" || x.Meta.EPID != 1505 || x.Meta.EName != "network_test" {
				t.Errorf("delegated: %+v", x.Meta)
			}
		}
		if x.Meta.HasProc && strings.ContainsRune(x.Meta.Name, 0) {
			t.Errorf("NUL left in name %q", x.Meta.Name)
		}
	}
	if len(fr) != 197 || links["en0"] != 1 || links["pdp_ip0"] != 0 || len(links) != 2 || eproc != 80 || delegated != 9 {
		t.Errorf("74957353: %d frames, link types %v, %d with effective process, %d delegated", len(fr), links, eproc, delegated)
	}
	if s := f.PcapNGStats(); s.ProcessBlocks != 9 || s.Interfaces != 2 {
		t.Errorf("74957353 stats %+v", s)
	}
}

// TestPcapNGSameAsGopacket reads every pcapng capture at hand with this
// reader and with gopacket's pcapgo.NgReader (WantMixedLinkType, as file.go
// used before) and requires the same packets: data, time, lengths, link
// type and interface.
func TestPcapNGSameAsGopacket(t *testing.T) {
	paths, _ := filepath.Glob("../../captures/*.pcapng")
	demo, _ := filepath.Glob("../../captures/demo/*.pcapng")
	paths = append(paths, demo...)
	if _, err := os.Stat(filepath.Join(macOSSamples, "PROVENANCE.md")); err == nil {
		for _, n := range appleSamples {
			paths = append(paths, filepath.Join(macOSSamples, n+".pcapng"))
		}
	}
	if len(paths) == 0 {
		t.Skip("no pcapng captures found")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.NgReaderOptions{WantMixedLinkType: true})
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var fr Frame
			n := 0
			for ; ; n++ {
				data, ci, rerr := ref.ReadPacketData()
				err := f.Next(&fr)
				if rerr == io.EOF || err == io.EOF {
					if rerr != err {
						t.Fatalf("packet %d: gopacket %v, ours %v", n+1, rerr, err)
					}
					break
				}
				if rerr != nil || err != nil {
					t.Fatalf("packet %d: gopacket %v, ours %v", n+1, rerr, err)
				}
				if !bytes.Equal(data, fr.Data) || !ci.Timestamp.Equal(fr.Timestamp) || ci.Length != fr.WireLen ||
					ci.InterfaceIndex != fr.Interface || uint32(ci.AncillaryData[0].(layers.LinkType)) != fr.LinkType {
					t.Fatalf("packet %d differs: gopacket %v %d if%d lt%v, ours %v %d if%d lt%d",
						n+1, ci.Timestamp, ci.Length, ci.InterfaceIndex, ci.AncillaryData[0], fr.Timestamp, fr.WireLen, fr.Interface, fr.LinkType)
				}
			}
			if n == 0 {
				t.Error("no packets")
			}
		})
	}
}

func readNg(b []byte) (frames []Frame, stats PcapNGStats, err error) {
	ng, err := newNgReader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return nil, PcapNGStats{}, err
	}
	for {
		var fr Frame
		if err := ng.next(&fr); err != nil {
			if err == io.EOF {
				err = nil
			}
			return frames, ng.stats, err
		}
		fr.Data = append([]byte(nil), fr.Data...)
		frames = append(frames, fr)
	}
}

// TestPcapNGSectionsAndByteOrders: two sections, big- then little-endian;
// interfaces and PIB indices restart at each section header.
func TestPcapNGSectionsAndByteOrders(t *testing.T) {
	pkt := []byte{2, 0, 0, 0, 0x45, 0, 0, 20}
	bb := newNg(binary.BigEndian)
	bb.idb(0, stropt(optIfName, "lo0\x00"))
	bb.pib(100, stropt(optPibName, "first\x00\x00"), ngOpt{optPibUUID, bytes.Repeat([]byte{0xab}, 16)})
	bb.pib(200, stropt(optPibName, "second"), stropt(optPibPath, "/usr/bin/second"))
	bb.epb(0, 1_000_000*1700000000+5, pkt, u32opt(bb, optEpbPIB, 1), u32opt(bb, optEpbEPIB, 0), u32opt(bb, optEpbFlags, 2))
	lb := newNg(binary.LittleEndian)
	lb.idb(1, stropt(optIfName, "en0"))
	lb.idb(101, stropt(optIfName, "utun3"))
	lb.pib(300, stropt(optPibName, "third"))
	lb.epb(1, 7, pkt, u32opt(lb, optEpbPIB, 0), u32opt(lb, optEpbFlags, 1), u32opt(lb, optEpbSvc, 700))
	lb.epb(0, 8, pkt, u32opt(lb, optEpbPIB, 1)) // no second PIB in this section
	frames, st, err := readNg(append(bb.Bytes(), lb.Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 {
		t.Fatalf("%d frames", len(frames))
	}
	m := frames[0].Meta
	if frames[0].LinkType != 0 || m.IfName != "lo0" || m.PID != 200 || m.Name != "second" || m.Path != "/usr/bin/second" ||
		!m.HasEProc || m.EPID != 100 || m.EName != "first" || !m.HasEUUID || m.EUUID[0] != 0xab || !m.Delegated || m.Direction != DirOut ||
		frames[0].Timestamp != time.Unix(1700000000, 5000).UTC() {
		t.Errorf("section 1: %+v %v", m, frames[0].Timestamp)
	}
	if m := frames[1].Meta; frames[1].LinkType != 101 || frames[1].Interface != 1 || m.IfName != "utun3" || m.PID != 300 || m.Name != "third" ||
		m.Direction != DirIn || m.SvcClass != 700 || m.Delegated {
		t.Errorf("section 2: %+v", m)
	}
	if m := frames[2].Meta; frames[2].LinkType != 1 || m.IfName != "en0" || m.HasProc || !m.Valid {
		t.Errorf("section 2 packet 2: %+v", m)
	}
	if st.Sections != 2 || st.Interfaces != 3 || st.ProcessBlocks != 3 || st.UnknownProcess != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestPcapNGTimestamps: if_tsresol in powers of 10 and of 2, and
// if_tsoffset.
func TestPcapNGTimestamps(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.idb(1, ngOpt{optIfTsresol, []byte{9}})
	b.idb(1, ngOpt{optIfTsresol, []byte{0x80 | 20}}, ngOpt{optIfTsoffset, b.u64(1000)})
	b.idb(1, ngOpt{optIfTsresol, []byte{0}})
	b.idb(1, ngOpt{optIfTsresol, []byte{0x80 | 63}})
	b.epb(0, 1700000000_123456789, []byte{1})
	b.epb(1, 5<<20|1<<19, []byte{1})   // 5.5 s after the offset
	b.epb(2, 42, []byte{1})            // whole seconds
	b.epb(3, 3<<63>>1|1<<62, []byte{}) // 2^-63 units: 1.5 s → 1 s + .5
	frames, _, err := readNg(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{
		time.Unix(1700000000, 123456789), time.Unix(1005, 5e8), time.Unix(42, 0), time.Unix(1, 5e8),
	}
	for i, w := range want {
		if !frames[i].Timestamp.Equal(w) {
			t.Errorf("frame %d: %v, want %v", i, frames[i].Timestamp, w.UTC())
		}
	}
}

// TestPcapNGOtherBlocks: SPB, the obsolete PB, and blocks that are skipped.
func TestPcapNGOtherBlocks(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.idb(1, stropt(optIfName, "eth0"))
	b.block(ngNRB, []byte{0, 0, 0, 0})
	b.block(ngISB, make([]byte, 12))
	b.block(ngDSB, make([]byte, 8))
	b.block(0x00000bad, []byte("custom"))
	b.block(0x80000002, make([]byte, 16)) // Apple OSEV
	b.block(0x12345678, nil)
	b.block(ngSPB, append(b.u32(5), 1, 2, 3, 4, 5)) // SPB: original length then data
	pb := append(b.u16(0), 0, 0)
	pb = append(pb, b.u32(0)...)
	pb = append(pb, b.u32(3_000_000)...)
	pb = append(pb, b.u32(2)...)
	pb = append(pb, b.u32(60)...)
	pb = append(pb, 9, 9, 0, 0)
	pb = append(pb, b.opts([]ngOpt{u32opt(b, optEpbFlags, 2)})...)
	b.block(ngPB, pb)
	frames, st, err := readNg(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || !bytes.Equal(frames[0].Data, []byte{1, 2, 3, 4, 5}) || frames[0].WireLen != 5 || frames[0].Meta.IfName != "eth0" ||
		!bytes.Equal(frames[1].Data, []byte{9, 9}) || frames[1].WireLen != 60 || !frames[1].Timestamp.Equal(time.Unix(3, 0)) ||
		frames[1].Meta.Direction != DirOut {
		t.Fatalf("frames %+v", frames)
	}
	if st.SkippedBlocks != 6 {
		t.Errorf("stats %+v", st)
	}
}

// TestPcapNGBadOptions: options that do not fit are counted and ignored;
// the packet is kept.
func TestPcapNGBadOptions(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.idb(0, ngOpt{optIfTsresol, nil}, ngOpt{optIfTsoffset, []byte{1, 2}})
	b.pib(7, ngOpt{optPibUUID, []byte{1, 2, 3}}, stropt(optPibName, "p"))
	b.epb(0, 1, []byte{1, 2, 3}, ngOpt{optEpbPIB, []byte{0, 0}}, u32opt(b, optEpbSvc, 0), ngOpt{optEpbFlowID, make([]byte, 8)})
	// An option whose length runs past the block.
	epb := b.u32(0)
	epb = append(epb, make([]byte, 8)...)
	epb = append(epb, b.u32(1)...)
	epb = append(epb, b.u32(1)...)
	epb = append(epb, 0xee, 0, 0, 0)
	epb = append(epb, 0x01, 0x80, 200, 0) // option 0x8001, length 200
	epb = append(epb, 0, 0, 0, 0)
	b.block(ngEPB, epb)
	frames, st, err := readNg(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || frames[0].Meta.HasProc || !frames[0].Meta.HasSvc || frames[0].Meta.FlowID != 0 || frames[1].Meta.HasProc {
		t.Fatalf("frames %+v", frames)
	}
	if st.BadOptions != 6 {
		t.Errorf("bad options %d, want 6 (tsresol, tsoffset, uuid, pib, flow id, overrun)", st.BadOptions)
	}
}

// TestPcapNGHostileLengths: every length that does not fit is an error
// naming the problem and the byte offset, never a panic or a huge
// allocation.
func TestPcapNGHostileLengths(t *testing.T) {
	good := newNg(binary.LittleEndian)
	shbLen := good.Len()
	good.idb(1)
	idbEnd := good.Len()
	good.epb(0, 0, []byte{1, 2, 3, 4})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good.Bytes()...)) }
	le := binary.LittleEndian
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"length 0", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+4:], 0); return b }), "total length 0 (less than 12)"},
		{"length 8", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+4:], 8); return b }), "total length 8 (less than 12)"},
		{"length odd", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+4:], 37); return b }), "not a multiple of 4"},
		{"length huge", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+4:], 0xfffffffc); return b }), "more than the 16777216 bytes allowed"},
		{"length past end", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+4:], 1<<20); return b }), "truncated: the last record is incomplete"},
		{"trailer", mut(func(b []byte) []byte { le.PutUint32(b[len(b)-4:], 40); return b }), "but its trailer says 40"},
		{"caplen", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+20:], 0x7fffffff); return b }), "captured length 2147483647 runs past the end of its block"},
		{"interface", mut(func(b []byte) []byte { le.PutUint32(b[idbEnd+8:], 5); return b }), "packet on interface 5, but the section has 1 interfaces"},
		{"short idb", mut(func(b []byte) []byte {
			return append(b[:shbLen], 1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0)
		}), "interface description block too short"},
		{"bad magic in second section", append(append([]byte(nil), good.Bytes()...), 0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4), "bad byte-order magic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "x.pcapng", c.b)
			_, err := readAll(t, p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "block at byte offset") {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
	// The header itself.
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"version", func() []byte { b := append([]byte(nil), good.Bytes()...); b[12] = 2; return b }(), "pcapng header: unsupported pcapng version 2.0"},
		{"bom", func() []byte { b := append([]byte(nil), good.Bytes()...); b[8] = 0; return b }(), "pcapng header: section header with a bad byte-order magic"},
		{"half", good.Bytes()[:10], "pcapng header: truncated header"},
		{"shb only 8", good.Bytes()[:8], "pcapng header: truncated header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(writeTemp(t, "x.pcapng", c.b))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// TestPcapNGLengthDoesNotAllocate: a block that claims 16 MiB in a small
// file is a truncation error that allocates about what the file holds.
func TestPcapNGLengthDoesNotAllocate(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.Write([]byte{6, 0, 0, 0})
	b.Write(b.u32(maxNgBlock))
	b.Write(make([]byte, 3000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := readNg(b.Bytes())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Errorf("allocated %d bytes for a %d-byte file", d, b.Len())
	}
}

// TestPcapNGTruncationSweep cuts a valid file at every byte: the reader
// returns the packets before the cut, then io.EOF if the cut falls between
// blocks, else a "truncated" error with the packet count and byte offset.
func TestPcapNGTruncationSweep(t *testing.T) {
	b := newNg(binary.LittleEndian)
	shbEnd := b.Len()
	bounds := map[int]bool{shbEnd: true}
	b.idb(0, stropt(optIfName, "lo0"))
	bounds[b.Len()] = true
	b.pib(1, stropt(optPibName, "a"))
	bounds[b.Len()] = true
	var ends []int
	for i := range 3 {
		b.epb(0, uint64(i), bytes.Repeat([]byte{byte(i)}, 10+i), u32opt(b, optEpbPIB, 0))
		ends = append(ends, b.Len())
		bounds[b.Len()] = true
	}
	full := b.Bytes()
	dir := t.TempDir()
	for cut := 0; cut < len(full); cut++ {
		p := filepath.Join(dir, "t.pcapng")
		if err := os.WriteFile(p, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := readAll(t, p)
		complete := 0
		for _, e := range ends {
			if cut >= e {
				complete++
			}
		}
		switch {
		case cut < shbEnd:
			if err == nil || !strings.Contains(err.Error(), "empty file") && !strings.Contains(err.Error(), "only") &&
				!strings.Contains(err.Error(), "pcapng header: truncated header") {
				t.Fatalf("cut %d: %v", cut, err)
			}
		case bounds[cut]:
			if err != nil || n != complete {
				t.Fatalf("cut %d at a block boundary: %d packets, %v", cut, n, err)
			}
		default:
			want := fmt.Sprintf("truncated: the last record is incomplete (after %d packets, block at byte offset ", complete)
			if n != complete || err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("cut %d: %d packets, %v", cut, n, err)
			}
		}
	}
}

// TestPcapNGNextAllocs: reading a packet allocates nothing.
func TestPcapNGNextAllocs(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.idb(0, stropt(optIfName, "lo0"))
	b.pib(1, stropt(optPibName, "a"))
	for i := range 200 {
		b.epb(0, uint64(i), make([]byte, 1400), u32opt(b, optEpbPIB, 0), u32opt(b, optEpbFlags, 2), u32opt(b, optEpbSvc, 0),
			u32opt(b, optEpbPMDFlags, 8), u32opt(b, optEpbFlowID, 9), stropt(optComment, "c"))
	}
	data := b.Bytes()
	br := bytes.NewReader(data)
	ng, err := newNgReader(bufio.NewReaderSize(br, readBufferSize))
	if err != nil {
		t.Fatal(err)
	}
	var fr Frame
	ng.next(&fr) // first packet grows the buffers
	allocs := testing.AllocsPerRun(150, func() {
		if err := ng.next(&fr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
	if fr.Meta.Name != "a" || fr.Meta.FlowID != 9 {
		t.Errorf("meta %+v", fr.Meta)
	}
}

// TestPcapNGLimits: PIBs past the per-section bound are dropped, keep
// positions, and are counted.
func TestPcapNGLimits(t *testing.T) {
	b := newNg(binary.LittleEndian)
	b.idb(0)
	for i := range maxNgPIBs + 2 {
		b.pib(int32(i))
	}
	b.epb(0, 0, nil, u32opt(b, optEpbPIB, maxNgPIBs-1))
	b.epb(0, 0, nil, u32opt(b, optEpbPIB, maxNgPIBs+1))
	frames, st, err := readNg(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if frames[0].Meta.PID != maxNgPIBs-1 || frames[1].Meta.HasProc || st.ProcessBlocksDropped != 2 || st.UnknownProcess != 1 {
		t.Errorf("%+v %+v %+v", frames[0].Meta, frames[1].Meta, st)
	}
}

// BenchmarkPcapNGNext measures the walker on Apple-style packets.
func BenchmarkPcapNGNext(b *testing.B) {
	nb := newNg(binary.LittleEndian)
	nb.idb(0, stropt(optIfName, "en0"))
	nb.pib(1, stropt(optPibName, "a"))
	for i := range 1000 {
		nb.epb(0, uint64(i), make([]byte, 1400), u32opt(nb, optEpbPIB, 0), u32opt(nb, optEpbFlags, 2), u32opt(nb, optEpbSvc, 0))
	}
	data := nb.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var fr Frame
	for b.Loop() {
		ng, _ := newNgReader(bufio.NewReaderSize(bytes.NewReader(data), readBufferSize))
		for ng.next(&fr) == nil {
		}
	}
}
