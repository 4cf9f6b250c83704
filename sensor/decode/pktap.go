package decode

import "encoding/binary"

// PKTAP header constants (xnu bsd/net/pktap.h; see docs and
// shared reference macos-formats.md §1). All integers are little-endian.
const (
	pktapV1MinLen  = 108 // Wireshark's minimum; xnu writes 156
	pktapFlagV2Hdr = 0x80000
	pktapV2MinLen  = 40
)

// UnwrapPKTAP returns the frame inside an Apple PKTAP header and its DLT
// (the macOS DLT value: 0 NULL, 1 Ethernet, 12 raw IP). It handles the v1
// header (both the pre-2025 and current layouts: they differ only in fields
// this function does not read) and the compact v2 header. Lengths are checked
// against the captured bytes: gopacket's own decoder once sliced past them.
func UnwrapPKTAP(b []byte) (inner []byte, dlt uint32, r Reason) {
	if len(b) >= pktapV2MinLen && binary.LittleEndian.Uint32(b[36:40])&pktapFlagV2Hdr != 0 {
		hl := int(b[0])
		if hl < pktapV2MinLen {
			return nil, 0, ReasonBadHeader
		}
		if hl > len(b) {
			return nil, 0, ReasonTruncated
		}
		return b[hl:], uint32(binary.LittleEndian.Uint16(b[6:8])), OK
	}
	if len(b) < pktapV1MinLen {
		return nil, 0, ReasonTruncated
	}
	hl := binary.LittleEndian.Uint32(b[0:4])
	if hl < pktapV1MinLen || hl > 4096 {
		return nil, 0, ReasonBadHeader
	}
	if int(hl) > len(b) {
		return nil, 0, ReasonTruncated
	}
	dlt = binary.LittleEndian.Uint32(b[8:12])
	if dlt == LinkPKTAP || dlt == LinkPKTAPUser {
		return nil, 0, ReasonBadHeader // a PKTAP inside a PKTAP is a crafted loop
	}
	return b[hl:], dlt, OK
}
