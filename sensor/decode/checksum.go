package decode

import (
	"encoding/binary"
	"math/bits"
)

// checksum returns the ones' complement sum (folded to 16 bits, not
// inverted) of b added to initial. A correct header or segment, including its
// checksum field, sums to 0xffff. It adds 8 bytes at a time: verifying
// checksums must not dominate the cost of a bulk upload.
func checksum(b []byte, initial uint64) uint16 {
	sum := initial
	var carry uint64
	for len(b) >= 32 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[0:8]), 0)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[8:16]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[16:24]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[24:32]), carry)
		sum += carry
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), 0)
		sum += carry
		b = b[8:]
	}
	for len(b) >= 2 {
		sum, carry = bits.Add64(sum, uint64(binary.BigEndian.Uint16(b)), 0)
		sum += carry
		b = b[2:]
	}
	if len(b) == 1 {
		sum, carry = bits.Add64(sum, uint64(b[0])<<8, 0)
		sum += carry
	}
	// Fold 64 → 16 bits with end-around carry.
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 16) + (sum & 0xffff)
	sum = (sum >> 16) + (sum & 0xffff)
	return uint16(sum)
}

// pseudoSum returns the folded sum of the TCP/UDP pseudo-header and segment.
func pseudoSum(p *Packet, proto uint8, seg []byte) uint16 {
	var s uint64
	if p.IPv6 {
		s += sum16s(p.Src[:]) + sum16s(p.Dst[:])
	} else {
		s += sum16s(p.Src[12:]) + sum16s(p.Dst[12:])
	}
	s += uint64(proto) + uint64(len(seg))
	return checksum(seg, s)
}

func sum16s(b []byte) uint64 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(binary.BigEndian.Uint16(b[i:]))
	}
	return s
}
