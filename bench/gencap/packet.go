package main

import (
	"encoding/binary"
	"time"

	"github.com/gopacket/gopacket"
)

// TCP flag bits.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagPSH = 0x08
	flagACK = 0x10
)

const (
	ethLen   = 14
	ipv4Len  = 20
	ipv6Len  = 40
	udpLen   = 8
	pcapHdr  = 16 // per-packet record header in classic pcap
	tcpOptTS = 12 // NOP NOP TS
	tcpOptSY = 20 // MSS SACK_PERM TS NOP WS
)

// gatewayMAC is the MAC of the router on the server side of the tap.
var gatewayMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0xfe, 0x01}

// flow is one TCP connection. Index 0 is the client (active opener), 1 the
// server.
type flow struct {
	v6        bool
	ip        [2][16]byte // IPv4 addresses use the first 4 bytes
	port      [2]uint16
	mac       [2][6]byte
	isn       [2]uint32
	seq       [2]uint32 // next sequence number each side will send
	ipid      [2]uint16
	tsoff     [2]uint32
	lastTS    [2]uint32
	win       [2]uint16
	unacked   [2]int // in-order data segments sent by a side and not yet ACKed
	mss       int    // payload bytes per full segment (MSS minus timestamp option)
	flowLabel uint32
}

// csumAdd adds b to a ones' complement accumulator. 32-bit big-endian words
// are summed into a 64-bit accumulator: folding it to 16 bits gives the same
// result as RFC 1071's 16-bit word sum because 2^16 ≡ 1 (mod 2^16-1).
func csumAdd(sum uint64, b []byte) uint64 {
	for len(b) >= 32 {
		sum += uint64(binary.BigEndian.Uint32(b[0:])) +
			uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) +
			uint64(binary.BigEndian.Uint32(b[12:])) +
			uint64(binary.BigEndian.Uint32(b[16:])) +
			uint64(binary.BigEndian.Uint32(b[20:])) +
			uint64(binary.BigEndian.Uint32(b[24:])) +
			uint64(binary.BigEndian.Uint32(b[28:]))
		b = b[32:]
	}
	for len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

// writeIP writes the Ethernet and IP headers for a packet from side dir of f
// carrying an L4 segment of l4len bytes with protocol proto, and returns the
// offset of the L4 header and the pseudo-header checksum accumulator.
func (g *gen) writeIP(f *flow, dir int, proto byte, l4len int) (int, uint64) {
	b := g.pkt
	r := 1 - dir
	copy(b[0:6], f.mac[r][:])
	copy(b[6:12], f.mac[dir][:])
	var sum uint64
	if f.v6 {
		b[12], b[13] = 0x86, 0xdd
		ip := b[ethLen : ethLen+ipv6Len]
		binary.BigEndian.PutUint32(ip[0:], 0x60000000|f.flowLabel)
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		ip[6] = proto
		ip[7] = 64
		copy(ip[8:24], f.ip[dir][:])
		copy(ip[24:40], f.ip[r][:])
		sum = csumAdd(0, ip[8:40])
		sum += uint64(proto) + uint64(l4len)
		return ethLen + ipv6Len, sum
	}
	b[12], b[13] = 0x08, 0x00
	ip := b[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4Len+l4len))
	binary.BigEndian.PutUint16(ip[4:], f.ipid[dir])
	f.ipid[dir]++
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = proto
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], f.ip[dir][:4])
	copy(ip[16:20], f.ip[r][:4])
	binary.BigEndian.PutUint16(ip[10:], csumFold(csumAdd(0, ip)))
	sum = csumAdd(0, ip[12:20])
	sum += uint64(proto) + uint64(l4len)
	return ethLen + ipv4Len, sum
}

// tcp writes one TCP segment sent by side dir of f.
func (g *gen) tcp(f *flow, dir int, flags byte, seq, ack uint32, payload []byte) {
	r := 1 - dir
	optLen := tcpOptTS
	if flags&flagSYN != 0 {
		optLen = tcpOptSY
	}
	hl := 20 + optLen
	tl := hl + len(payload)
	off, sum := g.writeIP(f, dir, 6, tl)
	t := g.pkt[off : off+tl]
	binary.BigEndian.PutUint16(t[0:], f.port[dir])
	binary.BigEndian.PutUint16(t[2:], f.port[r])
	binary.BigEndian.PutUint32(t[4:], seq)
	if flags&flagACK == 0 {
		ack = 0
	}
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(hl/4) << 4
	t[13] = flags
	win := f.win[dir]
	if flags&flagSYN != 0 {
		win = [2]uint16{64240, 65160}[dir] // unscaled in SYNs (Linux defaults)
	}
	binary.BigEndian.PutUint16(t[14:], win)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0

	tsval := uint32(g.now/int64(time.Millisecond)) + f.tsoff[dir]
	tsecr := f.lastTS[r]
	f.lastTS[dir] = tsval
	o := t[20:hl]
	if flags&flagSYN != 0 {
		o[0], o[1] = 2, 4 // MSS
		binary.BigEndian.PutUint16(o[2:], uint16(f.mss+tcpOptTS))
		o[4], o[5] = 4, 2 // SACK permitted
		o[6], o[7] = 8, 10
		binary.BigEndian.PutUint32(o[8:], tsval)
		binary.BigEndian.PutUint32(o[12:], tsecr)
		o[16] = 1
		o[17], o[18], o[19] = 3, 3, 7 // window scale 7
	} else {
		o[0], o[1] = 1, 1
		o[2], o[3] = 8, 10
		binary.BigEndian.PutUint32(o[4:], tsval)
		binary.BigEndian.PutUint32(o[8:], tsecr)
	}
	copy(t[hl:], payload)
	binary.BigEndian.PutUint16(t[16:], csumFold(csumAdd(sum, t)))
	g.write(g.pkt[:off+tl])
}

// udp writes one UDP datagram sent by side dir of f.
func (g *gen) udp(f *flow, dir int, payload []byte) {
	r := 1 - dir
	ul := udpLen + len(payload)
	off, sum := g.writeIP(f, dir, 17, ul)
	u := g.pkt[off : off+ul]
	binary.BigEndian.PutUint16(u[0:], f.port[dir])
	binary.BigEndian.PutUint16(u[2:], f.port[r])
	binary.BigEndian.PutUint16(u[4:], uint16(ul))
	u[6], u[7] = 0, 0
	copy(u[udpLen:], payload)
	c := csumFold(csumAdd(sum, u))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	g.write(g.pkt[:off+ul])
}

// write appends one packet record and advances the capture clock by the
// packet's time on a 1 Gbit/s link (preamble + FCS + gap = 24 bytes) plus a
// little jitter, so the 64 interleaved flows share a busy gigabit uplink.
func (g *gen) write(data []byte) {
	ci := gopacket.CaptureInfo{
		Timestamp:     time.Unix(0, g.now),
		CaptureLength: len(data),
		Length:        len(data),
	}
	if err := g.w.WritePacket(ci, data); err != nil && g.err == nil {
		g.err = err
	}
	g.st.Packets++
	g.st.FileBytes += int64(pcapHdr + len(data))
	g.now += int64(len(data)+24)*8 + int64(g.rng.IntN(800))
}
