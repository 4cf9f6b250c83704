package decode

import (
	"encoding/binary"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

// Link types (LINKTYPE_* values of pcap and pcapng files).
const (
	LinkNull      = 0
	LinkEthernet  = 1
	LinkRawBSD    = 12 // DLT_RAW on most BSDs and on macOS (also pth_dlt inside PKTAP)
	LinkRawOpen   = 14 // DLT_RAW on OpenBSD
	LinkRaw       = 101
	LinkLoop      = 108
	LinkSLL       = 113
	LinkPKTAPUser = 149 // what Apple's libpcap writes (DLT_USER2)
	LinkIPv4      = 228
	LinkIPv6      = 229
	LinkPKTAP     = 258
	LinkSLL2      = 276
)

// Decoder decodes frames. It is not safe for concurrent use; one pipeline
// owns one Decoder.
type Decoder struct {
	opt Options
	C   Counters

	defrag       *ip4defrag.IPv4Defragmenter
	fragBytes    int
	nextFragScan time.Time
	// FragmentsDropped counts incomplete datagrams dropped by timeout or by
	// the MaxFragmentBytes bound.
	FragmentsDropped uint64

	tunnel string

	pktapNames nameCache // interned PKTAP process and interface names (pktapmeta.go)
}

// NewDecoder returns a decoder with the given options.
func NewDecoder(opt Options) *Decoder {
	return &Decoder{opt: opt, defrag: ip4defrag.NewIPv4Defragmenter()}
}

// Decode decodes one frame of the given link type into p. It returns OK when
// p holds a TCP or UDP packet, and otherwise the reason it does not; either
// way the outcome is counted. It never panics: a panic in a decoder is
// recovered, counted and reported as ReasonPanic.
func (d *Decoder) Decode(linkType uint32, frame []byte, ts time.Time, wireLen int, p *Packet) (r Reason) {
	d.C.Packets++
	*p = Packet{Timestamp: ts, WireLen: wireLen}
	d.tunnel = ""
	defer func() {
		if e := recover(); e != nil {
			r = ReasonPanic
		}
		d.C.ByReason[r]++
		if r == OK {
			d.C.Decoded++
			if p.BadChecksum {
				d.C.BadChecksums++
			}
			if p.Truncated {
				d.C.Truncated++
			}
			if p.Tunnel != "" {
				d.C.Tunnelled++
			}
		}
	}()
	if !d.nextFragScan.IsZero() && ts.After(d.nextFragScan) {
		d.expireFragments(ts)
	}
	r = d.link(linkType, frame, p, 0)
	p.Tunnel = d.tunnel
	return r
}

func (d *Decoder) setTunnel(name string) {
	if d.tunnel == "" {
		d.tunnel = name
	}
}

func (d *Decoder) link(lt uint32, b []byte, p *Packet, depth int) Reason {
	switch lt {
	case LinkEthernet:
		return d.ethernet(b, p, depth)
	case LinkNull:
		if len(b) < 4 {
			return ReasonTruncated
		}
		// The address family is in the capturing host's byte order: take
		// whichever reading gives a small number.
		af := binary.LittleEndian.Uint32(b)
		if af > 0xffff {
			af = be.Uint32(b)
		}
		return d.family(af, b[4:], p, depth)
	case LinkLoop:
		if len(b) < 4 {
			return ReasonTruncated
		}
		return d.family(be.Uint32(b), b[4:], p, depth)
	case LinkRaw, LinkRawBSD, LinkRawOpen:
		return d.ipByVersion(b, p, depth)
	case LinkIPv4:
		return d.ipv4(b, p, depth)
	case LinkIPv6:
		return d.ipv6(b, p, depth)
	case LinkSLL:
		if len(b) < 16 {
			return ReasonTruncated
		}
		return d.etherType(be.Uint16(b[14:16]), b[16:], p, depth)
	case LinkSLL2:
		if len(b) < 20 {
			return ReasonTruncated
		}
		return d.etherType(be.Uint16(b[0:2]), b[20:], p, depth)
	case LinkPKTAP, LinkPKTAPUser:
		inner, dlt, r := d.unwrapPKTAP(b, &p.Meta) // also fills p.Meta (pktapmeta.go)
		if r != OK {
			return r
		}
		return d.link(dlt, inner, p, depth+1)
	}
	return ReasonUnknownLink
}

// family dispatches on a BSD address family value (NULL and LOOP links).
// IPv6 is 24, 28 or 30 depending on the BSD (30 on macOS), 10 on Linux.
func (d *Decoder) family(af uint32, b []byte, p *Packet, depth int) Reason {
	switch af {
	case 2:
		return d.ipv4(b, p, depth)
	case 10, 24, 28, 30:
		return d.ipv6(b, p, depth)
	}
	return ReasonNotIP
}

func (d *Decoder) ipByVersion(b []byte, p *Packet, depth int) Reason {
	if len(b) < 1 {
		return ReasonTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p, depth)
	case 6:
		return d.ipv6(b, p, depth)
	}
	return ReasonNotIP
}

func (d *Decoder) ethernet(b []byte, p *Packet, depth int) Reason {
	if len(b) < 14 {
		return ReasonTruncated
	}
	et := be.Uint16(b[12:14])
	b = b[14:]
	if et < 0x0600 {
		// 802.3 length field: only LLC/SNAP can carry IP.
		if len(b) < 8 || b[0] != 0xaa || b[1] != 0xaa || b[2] != 0x03 {
			return ReasonNotIP
		}
		et = be.Uint16(b[6:8])
		b = b[8:]
	}
	return d.etherType(et, b, p, depth)
}

func (d *Decoder) etherType(et uint16, b []byte, p *Packet, depth int) Reason {
	if depth > maxEncapDepth {
		return ReasonTooDeep
	}
	for range 8 { // VLAN tags, 802.1Q and QinQ
		switch et {
		case 0x8100, 0x88a8, 0x9100, 0x9200:
			if len(b) < 4 {
				return ReasonTruncated
			}
			et = be.Uint16(b[2:4])
			b = b[4:]
			continue
		}
		break
	}
	switch et {
	case 0x0800:
		return d.ipv4(b, p, depth)
	case 0x86dd:
		return d.ipv6(b, p, depth)
	case 0x6558: // transparent Ethernet bridging (GRE, Geneve)
		return d.ethernet(b, p, depth+1)
	case 0x8864: // PPPoE session
		if len(b) < 8 {
			return ReasonTruncated
		}
		d.setTunnel("pppoe")
		return d.ppp(be.Uint16(b[6:8]), b[8:], p, depth+1)
	case 0x8847, 0x8848:
		return d.mpls(b, p, depth+1)
	case 0x8100, 0x88a8, 0x9100, 0x9200:
		return ReasonTooDeep
	}
	return ReasonNotIP
}

func (d *Decoder) ppp(proto uint16, b []byte, p *Packet, depth int) Reason {
	switch proto {
	case 0x0021:
		return d.ipv4(b, p, depth)
	case 0x0057:
		return d.ipv6(b, p, depth)
	}
	return ReasonNotIP
}

func (d *Decoder) mpls(b []byte, p *Packet, depth int) Reason {
	d.setTunnel("mpls")
	for range 16 {
		if len(b) < 4 {
			return ReasonTruncated
		}
		bottom := b[2]&1 == 1
		b = b[4:]
		if bottom {
			if len(b) < 1 {
				return ReasonTruncated
			}
			switch b[0] >> 4 {
			case 4:
				return d.ipv4(b, p, depth)
			case 6:
				return d.ipv6(b, p, depth)
			case 0: // pseudowire control word, then Ethernet
				if len(b) < 4 {
					return ReasonTruncated
				}
				return d.ethernet(b[4:], p, depth+1)
			}
			return ReasonNotIP
		}
	}
	return ReasonTooDeep
}

func (d *Decoder) ipv4(b []byte, p *Packet, depth int) Reason {
	if depth > maxEncapDepth {
		return ReasonTooDeep
	}
	if len(b) < 20 {
		return ReasonTruncated
	}
	if b[0]>>4 != 4 {
		return ReasonBadHeader
	}
	hl := int(b[0]&0x0f) * 4
	if hl < 20 {
		return ReasonBadHeader
	}
	if hl > len(b) {
		return ReasonTruncated
	}
	total := int(be.Uint16(b[2:4]))
	if total < hl {
		// TSO on the capturing host can leave a zero total length.
		if total != 0 {
			return ReasonBadHeader
		}
		total = len(b)
	}
	truncated := false
	if total > len(b) {
		truncated = true
		total = len(b)
	}
	b = b[:total] // drop Ethernet padding
	p.IPv6 = false
	p.Src = mapped4(b[12:16])
	p.Dst = mapped4(b[16:20])
	p.Truncated = p.Truncated || truncated
	if checksum(b[:hl], 0) != 0xffff {
		p.BadChecksum = true
	}
	flagsFrag := be.Uint16(b[6:8])
	if flagsFrag&0x3fff != 0 { // MF set or offset non-zero
		return d.fragment(b, p, depth)
	}
	return d.transport(b[9], b[hl:], p, depth)
}

func mapped4(a []byte) [16]byte {
	var m [16]byte
	m[10], m[11] = 0xff, 0xff
	copy(m[12:], a[:4])
	return m
}

func (d *Decoder) ipv6(b []byte, p *Packet, depth int) Reason {
	if depth > maxEncapDepth {
		return ReasonTooDeep
	}
	if len(b) < 40 {
		return ReasonTruncated
	}
	if b[0]>>4 != 6 {
		return ReasonBadHeader
	}
	plen := int(be.Uint16(b[4:6]))
	if plen != 0 { // 0: jumbogram or TSO, take what was captured
		if 40+plen > len(b) {
			p.Truncated = true
		} else {
			b = b[:40+plen]
		}
	}
	p.IPv6 = true
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	nh := b[6]
	b = b[40:]
	for range 16 { // extension header chain
		switch nh {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if len(b) < 8 {
				return ReasonTruncated
			}
			n := (int(b[1]) + 1) * 8
			if n > len(b) {
				return ReasonTruncated
			}
			nh, b = b[0], b[n:]
		case 44: // fragment
			if len(b) < 8 {
				return ReasonTruncated
			}
			offMF := be.Uint16(b[2:4])
			if offMF&0xfff9 != 0 { // offset != 0 or M set: a real fragment
				return ReasonIPv6Fragment
			}
			nh, b = b[0], b[8:] // atomic fragment (RFC 6946)
		case 51: // authentication header
			if len(b) < 8 {
				return ReasonTruncated
			}
			n := (int(b[1]) + 2) * 4
			if n > len(b) {
				return ReasonTruncated
			}
			nh, b = b[0], b[n:]
		default:
			return d.transport(nh, b, p, depth)
		}
	}
	return ReasonBadHeader
}

func (d *Decoder) transport(proto uint8, b []byte, p *Packet, depth int) Reason {
	switch proto {
	case ProtoTCP:
		return d.tcp(b, p)
	case ProtoUDP:
		return d.udp(b, p, depth)
	case ProtoGRE:
		return d.gre(b, p, depth+1)
	case ProtoIPIP:
		d.setTunnel("ipip")
		return d.ipv4(b, p, depth+1)
	case ProtoIPv6:
		d.setTunnel("ipip")
		return d.ipv6(b, p, depth+1)
	}
	return ReasonOtherProto
}

func (d *Decoder) tcp(b []byte, p *Packet) Reason {
	if len(b) < 20 {
		return ReasonTruncated
	}
	off := int(b[12]>>4) * 4
	if off < 20 {
		return ReasonBadHeader
	}
	if off > len(b) {
		return ReasonTruncated
	}
	p.Proto = ProtoTCP
	p.SrcPort = be.Uint16(b[0:2])
	p.DstPort = be.Uint16(b[2:4])
	p.Seq = be.Uint32(b[4:8])
	p.Ack = be.Uint32(b[8:12])
	p.Flags = b[13]
	p.Window = be.Uint16(b[14:16])
	p.Payload = b[off:]
	if d.opt.VerifyChecksums && !p.Truncated && !p.BadChecksum {
		if pseudoSum(p, ProtoTCP, b) != 0xffff {
			p.BadChecksum = true
		}
	}
	return OK
}

func (d *Decoder) udp(b []byte, p *Packet, depth int) Reason {
	if len(b) < 8 {
		return ReasonTruncated
	}
	p.Proto = ProtoUDP
	p.SrcPort = be.Uint16(b[0:2])
	p.DstPort = be.Uint16(b[2:4])
	ulen := int(be.Uint16(b[4:6]))
	if ulen >= 8 && ulen <= len(b) {
		b = b[:ulen]
	} else if ulen > len(b) {
		p.Truncated = true
	}
	p.Payload = b[8:]
	if d.opt.VerifyChecksums && !p.Truncated && !p.BadChecksum && be.Uint16(b[6:8]) != 0 {
		if pseudoSum(p, ProtoUDP, b) != 0xffff {
			p.BadChecksum = true
		}
	}
	return d.udpTunnel(p, depth)
}

// udpTunnel descends into VXLAN, Geneve and Teredo when the payload looks
// like one; otherwise the packet stays a plain UDP packet.
func (d *Decoder) udpTunnel(p *Packet, depth int) Reason {
	b := p.Payload
	switch {
	case p.DstPort == 4789 || p.SrcPort == 4789: // VXLAN
		if len(b) >= 8+14 && b[0]&0x08 != 0 {
			d.setTunnel("vxlan")
			return d.ethernet(b[8:], p, depth+1)
		}
	case p.DstPort == 6081 || p.SrcPort == 6081: // Geneve
		if len(b) >= 8 && b[0]>>6 == 0 {
			n := 8 + int(b[0]&0x3f)*4
			if n <= len(b) {
				d.setTunnel("geneve")
				return d.etherType(be.Uint16(b[2:4]), b[n:], p, depth+1)
			}
		}
	case p.DstPort == 3544 || p.SrcPort == 3544: // Teredo
		if inner, ok := teredoInner(b); ok {
			d.setTunnel("teredo")
			return d.ipv6(inner, p, depth+1)
		}
	}
	return OK
}

// teredoInner strips the optional Teredo authentication and origin
// indication headers (RFC 4380 5.1.1) and returns the IPv6 packet, if any.
func teredoInner(b []byte) ([]byte, bool) {
	if len(b) >= 2 && b[0] == 0 && b[1] == 1 { // authentication
		if len(b) < 4 {
			return nil, false
		}
		n := 4 + int(b[2]) + int(b[3]) + 8 + 1
		if n > len(b) {
			return nil, false
		}
		b = b[n:]
	}
	if len(b) >= 2 && b[0] == 0 && b[1] == 0 { // origin indication
		if len(b) < 8 {
			return nil, false
		}
		b = b[8:]
	}
	if len(b) < 40 || b[0]>>4 != 6 || int(be.Uint16(b[4:6]))+40 > len(b) {
		return nil, false
	}
	return b, true
}

func (d *Decoder) gre(b []byte, p *Packet, depth int) Reason {
	if len(b) < 4 {
		return ReasonTruncated
	}
	flags := be.Uint16(b[0:2])
	proto := be.Uint16(b[2:4])
	n := 4
	if flags&0x8000 != 0 { // checksum present
		n += 4
	}
	if flags&0x2000 != 0 { // key present
		n += 4
	}
	if flags&0x1000 != 0 { // sequence number present
		n += 4
	}
	if flags&0x0007 == 1 && flags&0x0080 != 0 { // PPTP enhanced GRE: acknowledgement
		n += 4
	}
	if n > len(b) {
		return ReasonTruncated
	}
	b = b[n:]
	switch proto {
	case 0x88be: // ERSPAN type II (with sequence number) or type I (without)
		d.setTunnel("erspan")
		if flags&0x1000 != 0 {
			if len(b) < 8 {
				return ReasonTruncated
			}
			b = b[8:]
		}
		return d.ethernet(b, p, depth+1)
	case 0x22eb: // ERSPAN type III
		d.setTunnel("erspan")
		if len(b) < 12 {
			return ReasonTruncated
		}
		hl := 12
		if b[11]&0x01 != 0 { // platform-specific sub-header
			hl += 8
		}
		if hl > len(b) {
			return ReasonTruncated
		}
		return d.ethernet(b[hl:], p, depth+1)
	case 0x880b: // PPP (PPTP)
		d.setTunnel("gre")
		if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
			b = b[2:]
		}
		if len(b) < 2 {
			return ReasonTruncated
		}
		if b[0]&1 == 1 { // compressed one-byte protocol field
			return d.ppp(uint16(b[0]), b[1:], p, depth+1)
		}
		return d.ppp(be.Uint16(b[0:2]), b[2:], p, depth+1)
	}
	d.setTunnel("gre")
	return d.etherType(proto, b, p, depth+1)
}

// fragment hands an IPv4 fragment to the reassembler. The frame buffer is
// reused by the reader, so the fragment is copied first; fragments are rare
// and off the hot path.
func (d *Decoder) fragment(b []byte, p *Packet, depth int) Reason {
	own := make([]byte, len(b))
	copy(own, b)
	ip := &layers.IPv4{}
	if err := ip.DecodeFromBytes(own, gopacket.NilDecodeFeedback); err != nil {
		return ReasonBadHeader
	}
	if d.nextFragScan.IsZero() {
		d.nextFragScan = p.Timestamp.Add(time.Second)
	}
	out, err := d.defrag.DefragIPv4WithTimestamp(ip, p.Timestamp)
	if err != nil {
		return ReasonFragmentDropped
	}
	if out == nil {
		d.fragBytes += len(ip.Payload)
		if d.fragBytes > d.opt.maxFragmentBytes() {
			d.FragmentsDropped += uint64(d.defrag.DiscardOlderThan(p.Timestamp.Add(time.Hour)))
			d.fragBytes = 0
		}
		return ReasonFragment
	}
	d.fragBytes -= len(out.Payload)
	if d.fragBytes < 0 {
		d.fragBytes = 0
	}
	d.C.Reassembled++
	return d.transport(uint8(out.Protocol), out.Payload, p, depth)
}

func (d *Decoder) expireFragments(now time.Time) {
	n := d.defrag.DiscardOlderThan(now.Add(-d.opt.fragmentTimeout()))
	d.FragmentsDropped += uint64(n)
	d.nextFragScan = now.Add(time.Second)
}
