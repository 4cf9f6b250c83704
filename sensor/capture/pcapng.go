package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// This file is a pcapng block walker (draft-ietf-opsawg-pcapng) that also
// reads what Apple's tcpdump and libpcap add: Process Information Blocks
// (type 0x80000001) and the Darwin EPB options 0x8001–0x800A, which
// gopacket's pcapgo.NgReader discards. See shared reference
// macos-formats.md §1.7.
//
// Every length in the file is checked before it is used: a block's total
// length must be at least 12, a multiple of 4, at most maxNgBlock and equal
// to its trailer; a packet's captured length must fit its block; an option
// must fit the options area. Reading a packet allocates nothing: a block is
// read into one reused buffer and Frame.Data points into it.

// pcapng block types.
const (
	ngSHB    = 0x0a0d0d0a
	ngIDB    = 0x00000001
	ngPB     = 0x00000002 // obsolete Packet Block
	ngSPB    = 0x00000003
	ngNRB    = 0x00000004
	ngISB    = 0x00000005
	ngEPB    = 0x00000006
	ngDSB    = 0x0000000a
	ngPIB    = 0x80000001 // Apple Process Information Block (Wireshark: legacy DPIB)
	ngBOM    = 0x1a2b3c4d
	ngBodyPB = 20 // fixed part of an EPB or a PB body
)

// Option codes.
const (
	optEnd     = 0
	optComment = 1

	optIfName     = 2
	optIfTsresol  = 9
	optIfTsoffset = 14

	optEpbFlags      = 2
	optEpbPIB        = 0x8001
	optEpbSvc        = 0x8002
	optEpbEPIB       = 0x8003
	optEpbPMDFlags   = 0x8004
	optEpbFlowID     = 0x8005
	optEpbTraceTag   = 0x8006
	optEpbDropReason = 0x8007
	optEpbDropLine   = 0x8008
	optEpbCompGenCnt = 0x800a

	optPibName = 2
	optPibPath = 3
	optPibUUID = 4
)

// Limits. A block past maxNgBlock is an error (no capture Apple, Wireshark
// or tcpdump writes has one: a snaplen is at most 256 KiB); the PIB table is
// bounded so that a hostile file cannot grow it without limit.
const (
	maxNgBlock      = 16 << 20
	maxNgInterfaces = 1 << 16 // per section
	maxNgPIBs       = 1 << 16 // per section; later PIBs are counted and dropped
	maxNgPIBBytes   = 8 << 20 // names and paths kept per section
	maxNgPIBString  = 1024    // longer PIB names and paths are cut
)

// PcapNGStats counts what the pcapng reader saw besides packets.
type PcapNGStats struct {
	Sections      int64 // section header blocks
	Interfaces    int64 // interface description blocks
	ProcessBlocks int64 // Apple process information blocks (0x80000001)
	SkippedBlocks int64 // NRB, ISB, DSB, custom and unknown blocks
	// BadOptions counts options that run past their block or whose length
	// does not fit their type; they are ignored (the packet is kept).
	BadOptions int64
	// UnknownProcess counts EPB options 0x8001/0x8003 whose index names no
	// PIB of the section (the packet is kept without that process).
	UnknownProcess int64
	// ProcessBlocksDropped counts PIBs past maxNgPIBs in one section, and
	// PIBs whose strings did not fit maxNgPIBBytes (kept without them).
	ProcessBlocksDropped int64
}

type ngIface struct {
	linkType uint32
	snapLen  uint32
	name     string
	units    uint64 // timestamp units per second (if_tsresol)
	offset   int64  // if_tsoffset, seconds
}

type ngProc struct {
	pid     int32
	name    string
	path    string
	uuid    [16]byte
	hasUUID bool
}

// NgError is a damaged pcapng file: what is wrong and the byte offset (in
// the uncompressed stream) of the block where it was found. A truncated
// file unwraps to io.ErrUnexpectedEOF.
type NgError struct {
	Offset    int64
	Msg       string
	Truncated bool
}

func (e *NgError) Error() string {
	return fmt.Sprintf("%s (block at byte offset %d)", e.Msg, e.Offset)
}

func (e *NgError) Unwrap() error {
	if e.Truncated {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// ngReader walks the blocks of a pcapng stream.
type ngReader struct {
	r        *bufio.Reader
	off      int64 // byte offset of the next block
	blockOff int64 // byte offset of the current block
	bigEnd   bool
	hdr      [8]byte // block header scratch (a local array would escape)
	buf      []byte

	ifaces    []ngIface
	procs     []ngProc
	procBytes int
	comment   []byte // opt_comment of the last packet, aliases buf
	stats     PcapNGStats
}

func newNgReader(r *bufio.Reader) (*ngReader, error) {
	ng := &ngReader{r: r, buf: make([]byte, 0, 64<<10)}
	typ, body, err := ng.readBlock()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("truncated header")
		}
		var ne *NgError
		if errors.As(err, &ne) && ne.Truncated {
			return nil, errors.New("truncated header")
		}
		return nil, err
	}
	if typ != ngSHB {
		return nil, fmt.Errorf("first block is 0x%08x, not a section header", typ)
	}
	if err := ng.section(body); err != nil {
		return nil, err
	}
	return ng, nil
}

func (r *ngReader) u16(b []byte) uint16 {
	if r.bigEnd {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *ngReader) u32(b []byte) uint32 {
	if r.bigEnd {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *ngReader) u64(b []byte) uint64 {
	if r.bigEnd {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *ngReader) errorf(format string, args ...any) error {
	return &NgError{Offset: r.blockOff, Msg: fmt.Sprintf(format, args...)}
}

func (r *ngReader) truncated() error {
	return &NgError{Offset: r.blockOff, Msg: "truncated: the last record is incomplete", Truncated: true}
}

// readBlock reads the next whole block into r.buf and returns its type and
// body (between the length field and the trailer). At a clean end of file
// it returns io.EOF.
func (r *ngReader) readBlock() (typ uint32, body []byte, err error) {
	r.blockOff = r.off
	hdr := r.hdr[:]
	n, err := io.ReadFull(r.r, hdr)
	if err != nil {
		if n == 0 && err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, r.truncated()
		}
		return 0, nil, err
	}
	typ = binary.LittleEndian.Uint32(hdr[0:4]) // SHB type reads the same both ways
	if typ == ngSHB {
		// The byte order of a section is given by its own magic, which
		// follows the length field.
		bom, err := r.r.Peek(4)
		if len(bom) < 4 {
			if err == nil || err == io.EOF {
				return 0, nil, r.truncated()
			}
			return 0, nil, err
		}
		switch {
		case binary.LittleEndian.Uint32(bom) == ngBOM:
			r.bigEnd = false
		case binary.BigEndian.Uint32(bom) == ngBOM:
			r.bigEnd = true
		default:
			return 0, nil, r.errorf("section header with a bad byte-order magic 0x%08x", binary.BigEndian.Uint32(bom))
		}
	} else if r.bigEnd {
		typ = binary.BigEndian.Uint32(hdr[0:4])
	}
	length := r.u32(hdr[4:8])
	switch {
	case length < 12:
		return 0, nil, r.errorf("block 0x%08x has total length %d (less than 12)", typ, length)
	case length%4 != 0:
		return 0, nil, r.errorf("block 0x%08x has total length %d (not a multiple of 4)", typ, length)
	case length > maxNgBlock:
		return 0, nil, r.errorf("block 0x%08x has total length %d (more than the %d bytes allowed)", typ, length, maxNgBlock)
	}
	b, err := r.readBody(int(length))
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return 0, nil, r.truncated()
		}
		return 0, nil, err
	}
	if t := r.u32(b[length-4:]); t != length {
		return 0, nil, r.errorf("block 0x%08x has total length %d but its trailer says %d", typ, length, t)
	}
	r.off += int64(length)
	return typ, b[8 : length-4], nil
}

// readBody reads a whole block of n bytes (the 8 header bytes are in r.hdr)
// into r.buf. When the buffer must grow, it grows as the bytes arrive, in
// steps of at most growStep, so that a length field claiming more than the
// file holds costs no more memory than the file.
func (r *ngReader) readBody(n int) ([]byte, error) {
	const growStep = 1 << 20
	if cap(r.buf) >= n {
		b := r.buf[:n]
		copy(b, r.hdr[:])
		_, err := io.ReadFull(r.r, b[8:])
		return b, err
	}
	b := append(r.buf[:0], r.hdr[:]...)
	for len(b) < n {
		step := min(n-len(b), growStep)
		if cap(b)-len(b) < step {
			nb := make([]byte, len(b), min(n, max(2*cap(b), len(b)+step)))
			copy(nb, b)
			b = nb
			r.buf = nb
		}
		k, err := io.ReadFull(r.r, b[len(b):len(b)+step])
		b = b[:len(b)+k]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// next reads blocks until the next packet and fills fr with it. Frame.Data
// points into the reader's buffer and is valid until the next call.
func (r *ngReader) next(fr *Frame) error {
	for {
		typ, body, err := r.readBlock()
		if err != nil {
			return err
		}
		switch typ {
		case ngEPB, ngPB:
			return r.packet(typ, body, fr)
		case ngSPB:
			return r.simplePacket(body, fr)
		case ngSHB:
			err = r.section(body)
		case ngIDB:
			err = r.iface(body)
		case ngPIB:
			err = r.process(body)
		default: // NRB, ISB, DSB, OSEV (0x80000002), custom, unknown
			r.stats.SkippedBlocks++
		}
		if err != nil {
			return err
		}
	}
}

// section starts a new section: interfaces and PIB indices restart.
func (r *ngReader) section(body []byte) error {
	if len(body) < 16 {
		return r.errorf("section header block too short (%d bytes)", len(body))
	}
	major, minor := r.u16(body[4:6]), r.u16(body[6:8])
	if major != 1 || (minor != 0 && minor != 2) {
		return r.errorf("unsupported pcapng version %d.%d", major, minor)
	}
	r.stats.Sections++
	r.ifaces = r.ifaces[:0]
	clear(r.procs[:cap(r.procs)]) // drop the old strings
	r.procs = r.procs[:0]
	r.procBytes = 0
	return nil
}

func (r *ngReader) iface(body []byte) error {
	if len(body) < 8 {
		return r.errorf("interface description block too short (%d bytes)", len(body))
	}
	if len(r.ifaces) >= maxNgInterfaces {
		return r.errorf("more than %d interfaces in one section", maxNgInterfaces)
	}
	r.stats.Interfaces++
	ifc := ngIface{linkType: uint32(r.u16(body[0:2])), snapLen: r.u32(body[4:8]), units: 1e6}
	it := optIter{b: body[8:], r: r}
	for it.next() {
		switch it.code {
		case optIfName:
			ifc.name = string(TrimNUL(it.val))
		case optIfTsresol:
			if len(it.val) < 1 {
				r.stats.BadOptions++
				continue
			}
			v := it.val[0]
			if v&0x80 != 0 {
				if v&0x7f > 63 {
					return r.errorf("if_tsresol 2^-%d is not supported", v&0x7f)
				}
				ifc.units = 1 << (v & 0x7f)
			} else {
				if v > 19 {
					return r.errorf("if_tsresol 10^-%d is not supported", v)
				}
				ifc.units = 1
				for range v {
					ifc.units *= 10
				}
			}
		case optIfTsoffset:
			if len(it.val) < 8 {
				r.stats.BadOptions++
				continue
			}
			ifc.offset = int64(r.u64(it.val[:8]))
		}
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// process reads an Apple Process Information Block. Its index is its
// position in the section, counting every PIB (pcap-darwin.c
// proc_dump_index): the table keeps positions even when it drops strings.
func (r *ngReader) process(body []byte) error {
	if len(body) < 4 {
		return r.errorf("process information block too short (%d bytes)", len(body))
	}
	r.stats.ProcessBlocks++
	if len(r.procs) >= maxNgPIBs {
		r.stats.ProcessBlocksDropped++
		return nil
	}
	p := ngProc{pid: int32(r.u32(body[0:4]))}
	var name, path []byte
	it := optIter{b: body[4:], r: r}
	for it.next() {
		switch it.code {
		case optPibName:
			name = cut(TrimNUL(it.val), maxNgPIBString)
		case optPibPath:
			path = cut(TrimNUL(it.val), maxNgPIBString)
		case optPibUUID:
			if len(it.val) != 16 {
				r.stats.BadOptions++
				continue
			}
			copy(p.uuid[:], it.val)
			p.hasUUID = p.uuid != [16]byte{}
		}
	}
	if r.procBytes+len(name)+len(path) > maxNgPIBBytes {
		r.stats.ProcessBlocksDropped++
	} else {
		r.procBytes += len(name) + len(path)
		p.name, p.path = string(name), string(path)
	}
	r.procs = append(r.procs, p)
	return nil
}

func cut(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// packet reads an Enhanced Packet Block or an obsolete Packet Block.
func (r *ngReader) packet(typ uint32, body []byte, fr *Frame) error {
	if len(body) < ngBodyPB {
		return r.errorf("packet block too short (%d bytes)", len(body))
	}
	var ifid int
	if typ == ngEPB {
		ifid = int(r.u32(body[0:4]))
	} else {
		ifid = int(r.u16(body[0:2]))
	}
	if ifid >= len(r.ifaces) {
		return r.errorf("packet on interface %d, but the section has %d interfaces", ifid, len(r.ifaces))
	}
	ifc := &r.ifaces[ifid]
	caplen := r.u32(body[12:16])
	if uint64(caplen) > uint64(len(body)-ngBodyPB) {
		return r.errorf("captured length %d runs past the end of its block (%d bytes)", caplen, len(body)-ngBodyPB)
	}
	data := body[ngBodyPB : ngBodyPB+int(caplen)]
	fr.Data = data
	fr.WireLen = int(r.u32(body[16:20]))
	fr.LinkType = ifc.linkType
	fr.Interface = ifid
	fr.Timestamp = ifc.time(uint64(r.u32(body[4:8]))<<32 | uint64(r.u32(body[8:12])))
	fr.Meta = ProcMeta{IfName: ifc.name}
	r.comment = nil
	optStart := ngBodyPB + int(caplen+3)&^3
	if optStart < len(body) {
		r.packetOptions(body[optStart:], &fr.Meta)
	}
	return nil
}

// packetOptions fills m from the options of an EPB (or PB: pack_flags has
// the same code and layout as epb_flags; the Darwin codes do not occur).
func (r *ngReader) packetOptions(b []byte, m *ProcMeta) {
	it := optIter{b: b, r: r}
	for it.next() {
		if it.code == optComment {
			r.comment = TrimNUL(it.val)
			continue
		}
		want := 4
		switch it.code {
		case optEpbFlags, optEpbPIB, optEpbSvc, optEpbEPIB, optEpbPMDFlags, optEpbFlowID, optEpbDropReason, optEpbCompGenCnt:
		case optEpbTraceTag, optEpbDropLine:
			want = 2
		default:
			continue
		}
		if len(it.val) != want {
			r.stats.BadOptions++
			continue
		}
		m.Valid = true
		m.Source = MetaPcapNG
		switch it.code {
		case optEpbFlags:
			switch r.u32(it.val) & 3 {
			case 1:
				m.Direction = DirIn
			case 2:
				m.Direction = DirOut
			}
		case optEpbPIB:
			if p := r.proc(r.u32(it.val)); p != nil {
				m.HasProc, m.PID, m.Name, m.Path, m.UUID, m.HasUUID = true, p.pid, p.name, p.path, p.uuid, p.hasUUID
			}
		case optEpbEPIB:
			if p := r.proc(r.u32(it.val)); p != nil {
				m.HasEProc, m.EPID, m.EName, m.EPath, m.EUUID, m.HasEUUID = true, p.pid, p.name, p.path, p.uuid, p.hasUUID
			}
		case optEpbSvc:
			m.SvcClass, m.HasSvc = int32(r.u32(it.val)), true
		case optEpbPMDFlags:
			m.Flags = r.u32(it.val)
		case optEpbFlowID:
			m.FlowID = r.u32(it.val)
		case optEpbTraceTag:
			m.TraceTag = r.u16(it.val)
		case optEpbDropReason:
			m.DropReason = r.u32(it.val)
		case optEpbDropLine:
			m.DropLine = r.u16(it.val)
		case optEpbCompGenCnt:
			m.CompGenCnt = r.u32(it.val)
		}
	}
	m.Delegated = m.HasProc && m.HasEProc && m.PID != m.EPID
}

func (r *ngReader) proc(i uint32) *ngProc {
	if uint64(i) >= uint64(len(r.procs)) {
		r.stats.UnknownProcess++
		return nil
	}
	return &r.procs[i]
}

// simplePacket reads a Simple Packet Block: interface 0, no timestamp; the
// captured length is the smallest of the original length, the snap length
// and what the block holds.
func (r *ngReader) simplePacket(body []byte, fr *Frame) error {
	if len(body) < 4 {
		return r.errorf("simple packet block too short (%d bytes)", len(body))
	}
	if len(r.ifaces) == 0 {
		return r.errorf("simple packet block, but the section has no interface")
	}
	ifc := &r.ifaces[0]
	orig := r.u32(body[0:4])
	caplen := uint64(orig)
	if ifc.snapLen != 0 && caplen > uint64(ifc.snapLen) {
		caplen = uint64(ifc.snapLen)
	}
	if caplen > uint64(len(body)-4) {
		caplen = uint64(len(body) - 4)
	}
	fr.Data = body[4 : 4+int(caplen)]
	fr.WireLen = int(orig)
	fr.LinkType = ifc.linkType
	fr.Interface = 0
	fr.Timestamp = time.Time{}
	fr.Meta = ProcMeta{IfName: ifc.name}
	r.comment = nil
	return nil
}

// time converts a timestamp in the interface's units to a time.Time, without
// overflowing for any resolution.
func (ifc *ngIface) time(ts uint64) time.Time {
	sec, frac := ts/ifc.units, ts%ifc.units
	var nsec uint64
	switch ifc.units {
	case 1e6:
		nsec = frac * 1e3
	case 1e9:
		nsec = frac
	default:
		hi, lo := bits.Mul64(frac, 1e9)
		nsec, _ = bits.Div64(hi, lo, ifc.units) // hi < units: no panic
	}
	return time.Unix(int64(sec)+ifc.offset, int64(nsec)).UTC()
}

// optIter walks the options of a block body. An option whose value runs
// past the end is counted in BadOptions and ends the walk; a missing
// opt_endofopt is accepted.
type optIter struct {
	b    []byte
	r    *ngReader
	code uint16
	val  []byte
}

func (it *optIter) next() bool {
	if len(it.b) < 4 {
		return false
	}
	it.code = it.r.u16(it.b[0:2])
	n := int(it.r.u16(it.b[2:4]))
	if it.code == optEnd {
		it.b = nil
		return false
	}
	if 4+n > len(it.b) {
		it.r.stats.BadOptions++
		it.b = nil
		return false
	}
	it.val = it.b[4 : 4+n]
	adv := 4 + (n+3)&^3
	if adv > len(it.b) {
		adv = len(it.b) // the last option's padding may be missing
	}
	it.b = it.b[adv:]
	return true
}

// PcapNGStats returns what the pcapng reader counted so far (zero for a
// classic pcap file).
func (c *File) PcapNGStats() PcapNGStats {
	if c.ngr == nil {
		return PcapNGStats{}
	}
	return c.ngr.stats
}

// PacketComment returns the opt_comment of the last pcapng packet read (nil
// if none), with trailing NULs removed. It aliases the reader's buffer and is
// only valid until the next call to Next. Apple's tcpdump writes its -k
// metadata text there when it has no Darwin options (radar-79792659).
func (c *File) PacketComment() []byte {
	if c.ngr == nil {
		return nil
	}
	return c.ngr.comment
}

// Offset returns the byte offset, in the uncompressed stream, of the next
// record (classic pcap) or block (pcapng).
func (c *File) Offset() int64 {
	if c.ngr != nil {
		return c.ngr.off
	}
	return c.offset
}
