package decode

import (
	"encoding/binary"

	"exfilwatch/sensor/capture"
)

// PKTAP metadata: the per-packet process fields of Apple's PKTAP header
// (xnu bsd/net/pktap.h; shared reference macos-formats.md §1.2–1.5), decoded
// into the capture.ProcMeta that Apple's pcapng reader also fills, so that
// live PKTAP, pcap files of link type 149/258 and Apple pcapng give the
// pipeline the same facts.
//
// ProcMeta lives in package capture (the lower layer: decode already sits on
// top of capture in the source → decode chain, and capture imports nothing
// from decode), so no extra package is needed.

// pth_flags bits (xnu bsd/net/pktap.h).
const (
	pthDirIn         = 0x1
	pthDirOut        = 0x2
	pthProcDelegated = 0x4
	pthNewFlow       = 0x4000
	pthRexmit        = 0x8000
	pthKeepAlive     = 0x10000
	pthSocket        = 0x20000
	pthNexusChan     = 0x40000
	pthWakePkt       = 0x100000
)

// struct pktap_header (v1) offsets. Byte 73 and offset 112 changed meaning
// in xnu-11417; pth_ipproto is never read (take the protocol from the inner
// packet).
const (
	v1IfName   = 12 // char[24]
	v1Flags    = 36
	v1PID      = 52
	v1Comm     = 56 // char[17]
	v1Byte73   = 73 // pth_pad1 (old) / pth_ipproto u8 (new)
	v1TraceTag = 74
	v1Svc      = 76
	v1EPID     = 84
	v1EComm    = 88 // char[17]
	v1FlowID   = 108
	v1GenCnt   = 112 // pth_ipproto u32 (old) / pth_comp_gencnt (new)
	v1UUID     = 124
	v1EUUID    = 140
	v1MaxLen   = 4096
	ifNameLen  = 24
	commLen    = 17
)

// struct pktap_v2_hdr offsets.
const (
	v2UUIDOff   = 1
	v2EUUIDOff  = 2
	v2IfNameOff = 3
	v2CommOff   = 4
	v2ECommOff  = 5
	v2DLT       = 6
	v2Svc       = 20
	v2FlowID    = 24
	v2PID       = 28
	v2EPID      = 32
	v2Flags     = 36
)

var le = binary.LittleEndian

// ParsePKTAP decodes a PKTAP header (v1 in either layout, or v2): it returns
// the frame inside it and its macOS DLT, like UnwrapPKTAP, and fills m (when
// m is not nil) with the header's metadata. m is reset first. Every field is
// bounds-checked against the header length, which is itself checked against
// len(b): a short or hostile header gives ReasonTruncated or ReasonBadHeader
// and never a panic. Strings are allocated; Decoder.Decode uses an interning
// cache instead so that it allocates nothing per packet.
func ParsePKTAP(b []byte, m *capture.ProcMeta) (inner []byte, dlt uint32, r Reason) {
	return parsePKTAP(b, m, nil)
}

// unwrapPKTAP is the decoder's entry point: ParsePKTAP with interned names.
func (d *Decoder) unwrapPKTAP(b []byte, m *capture.ProcMeta) ([]byte, uint32, Reason) {
	return parsePKTAP(b, m, &d.pktapNames)
}

func parsePKTAP(b []byte, m *capture.ProcMeta, names *nameCache) (inner []byte, dlt uint32, r Reason) {
	if m != nil {
		*m = capture.ProcMeta{}
	}
	if len(b) >= pktapV2MinLen && le.Uint32(b[v1Flags:])&pktapFlagV2Hdr != 0 {
		hl := int(b[0])
		if hl < pktapV2MinLen {
			return nil, 0, ReasonBadHeader
		}
		if hl > len(b) {
			return nil, 0, ReasonTruncated
		}
		dlt = uint32(le.Uint16(b[v2DLT:]))
		if dlt == LinkPKTAP || dlt == LinkPKTAPUser {
			return nil, 0, ReasonBadHeader // a PKTAP inside a PKTAP is a crafted loop
		}
		if m != nil {
			pktapV2Meta(b[:hl], m, names)
		}
		return b[hl:], dlt, OK
	}
	if len(b) < pktapV1MinLen {
		return nil, 0, ReasonTruncated
	}
	hl := le.Uint32(b[0:4])
	if hl < pktapV1MinLen || hl > v1MaxLen {
		return nil, 0, ReasonBadHeader
	}
	if int(hl) > len(b) {
		return nil, 0, ReasonTruncated
	}
	dlt = le.Uint32(b[8:12])
	if dlt == LinkPKTAP || dlt == LinkPKTAPUser {
		return nil, 0, ReasonBadHeader
	}
	if m != nil {
		pktapV1Meta(b[:hl], m, names)
	}
	return b[hl:], dlt, OK
}

// pktapV1Meta reads struct pktap_header; h is exactly the header (len(h) is
// pth_length, at least pktapV1MinLen = 108). Fields past len(h) are absent.
func pktapV1Meta(h []byte, m *capture.ProcMeta, names *nameCache) {
	m.Valid = true
	// Layout heuristic (reference §1.2): in the old layout byte 73 is
	// zero-filled padding; in the new one it is pth_ipproto, which is
	// non-zero for every protocol the kernel tags (TCP 6, UDP 17, ICMP 1,
	// ICMPv6 58, 255). Byte 73 == 0 reads as the old layout; the two differ
	// only in CompGenCnt here.
	m.Source = capture.MetaPKTAPv1Old
	if h[v1Byte73] != 0 {
		m.Source = capture.MetaPKTAPv1
	}
	m.IfName = names.get(capture.TrimNUL(h[v1IfName : v1IfName+ifNameLen]))
	flags := le.Uint32(h[v1Flags:])
	pid := int32(le.Uint32(h[v1PID:]))
	comm := capture.TrimNUL(h[v1Comm : v1Comm+commLen])
	m.TraceTag = le.Uint16(h[v1TraceTag:])
	svc := le.Uint32(h[v1Svc:])
	epid := int32(le.Uint32(h[v1EPID:]))
	ecomm := capture.TrimNUL(h[v1EComm : v1EComm+commLen])
	if len(h) >= v1FlowID+4 {
		m.FlowID = le.Uint32(h[v1FlowID:])
	}
	if m.Source == capture.MetaPKTAPv1 && len(h) >= v1GenCnt+4 {
		m.CompGenCnt = le.Uint32(h[v1GenCnt:])
	}
	var uuid, euuid []byte
	if len(h) >= v1UUID+16 {
		uuid = h[v1UUID : v1UUID+16]
	}
	if len(h) >= v1EUUID+16 {
		euuid = h[v1EUUID : v1EUUID+16]
	}
	pktapCommon(m, flags, svc, pid, comm, uuid, epid, ecomm, euuid, names)
}

// pktapV2Meta reads struct pktap_v2_hdr; h is exactly the header (at least
// 40 bytes). The variable fields are located by one-byte offsets from the
// start of the header; 0 means absent, and an offset into the fixed part or
// a field that would run past the header is ignored.
func pktapV2Meta(h []byte, m *capture.ProcMeta, names *nameCache) {
	m.Valid = true
	m.Source = capture.MetaPKTAPv2
	m.IfName = names.get(v2Field(h, h[v2IfNameOff], ifNameLen, false))
	m.FlowID = le.Uint32(h[v2FlowID:])
	pktapCommon(m, le.Uint32(h[v2Flags:]), le.Uint32(h[v2Svc:]),
		int32(le.Uint32(h[v2PID:])), v2Field(h, h[v2CommOff], commLen, false), v2Field(h, h[v2UUIDOff], 16, true),
		int32(le.Uint32(h[v2EPID:])), v2Field(h, h[v2ECommOff], commLen, false), v2Field(h, h[v2EUUIDOff], 16, true),
		names)
}

// v2Field returns the variable field at off: exactly n bytes for a UUID
// (nil if they do not fit), else a NUL-terminated string of at most n bytes
// cut at the end of the header.
func v2Field(h []byte, off byte, n int, fixed bool) []byte {
	o := int(off)
	if o < pktapV2MinLen || o >= len(h) {
		return nil
	}
	end := o + n
	if end > len(h) {
		if fixed {
			return nil
		}
		end = len(h)
	}
	if fixed {
		return h[o:end]
	}
	return capture.TrimNUL(h[o:end])
}

// pktapCommon fills the fields v1 and v2 share. A process is present under
// the rule Apple's libpcap applies before writing a PIB: pid ∉ {0, -1}, or a
// name, or a non-null UUID.
func pktapCommon(m *capture.ProcMeta, flags, svc uint32, pid int32, comm, uuid []byte,
	epid int32, ecomm, euuid []byte, names *nameCache) {
	m.PTHFlags = flags
	switch {
	case flags&pthDirIn != 0: // libpcap tests DIR_IN first
		m.Direction = capture.DirIn
	case flags&pthDirOut != 0:
		m.Direction = capture.DirOut
	}
	m.Delegated = flags&pthProcDelegated != 0
	if svc != 0xffffffff {
		m.SvcClass, m.HasSvc = int32(svc), true
	}
	m.Flags = pmdFlags(flags)

	m.PID = pid
	m.Name = names.get(comm)
	m.HasUUID = copyUUID(&m.UUID, uuid)
	m.HasProc = (pid != 0 && pid != -1) || len(comm) > 0 || m.HasUUID

	m.EPID = epid
	m.EName = names.get(ecomm)
	m.HasEUUID = copyUUID(&m.EUUID, euuid)
	m.HasEProc = (epid != 0 && epid != -1) || len(ecomm) > 0 || m.HasEUUID
}

func copyUUID(dst *[16]byte, src []byte) bool {
	if len(src) != 16 {
		return false
	}
	copy(dst[:], src)
	return *dst != [16]byte{}
}

// pmdFlags translates pth_flags to the pcapng PMD flag bits, as Apple's
// libpcap does when it writes option 0x8004 (pcap-darwin.c), plus WAKE_PKT.
func pmdFlags(f uint32) uint32 {
	var p uint32
	if f&pthNewFlow != 0 {
		p |= capture.FlagNewFlow
	}
	if f&pthRexmit != 0 {
		p |= capture.FlagRexmit
	}
	if f&pthKeepAlive != 0 {
		p |= capture.FlagKeepAlive
	}
	if f&pthSocket != 0 {
		p |= capture.FlagSocket
	}
	if f&pthNexusChan != 0 {
		p |= capture.FlagNexusChannel
	}
	if f&pthWakePkt != 0 {
		p |= capture.FlagWakePkt
	}
	return p
}

// nameCache interns the short strings of PKTAP headers (process and
// interface names), so that decoding a packet allocates nothing once a name
// has been seen. It is bounded: past maxNames entries it starts over. A nil
// *nameCache allocates every string.
type nameCache struct {
	m map[nameKey]string
}

type nameKey struct {
	n uint8
	b [ifNameLen]byte
}

const maxNames = 4096

func (c *nameCache) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if c == nil || len(b) > ifNameLen {
		return string(b)
	}
	k := nameKey{n: uint8(len(b))}
	copy(k.b[:], b)
	if s, ok := c.m[k]; ok {
		return s
	}
	if c.m == nil {
		c.m = make(map[nameKey]string)
	} else if len(c.m) >= maxNames {
		clear(c.m)
	}
	s := string(b)
	c.m[k] = s
	return s
}

// DecodeFrame decodes a frame read by package capture, like Decode, and
// sets p.Meta: from the PKTAP header for link types 149 and 258, otherwise
// from the frame's own metadata (Apple pcapng options and PIBs). p.Meta is
// zero when neither has any.
func (d *Decoder) DecodeFrame(fr *capture.Frame, p *Packet) Reason {
	r := d.Decode(fr.LinkType, fr.Data, fr.Timestamp, fr.WireLen, p)
	if !p.Meta.Valid {
		p.Meta = fr.Meta
	}
	return r
}
