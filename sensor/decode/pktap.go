package decode

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
// It is ParsePKTAP without the metadata (pktapmeta.go holds the one parser).
func UnwrapPKTAP(b []byte) (inner []byte, dlt uint32, r Reason) {
	return parsePKTAP(b, nil, nil)
}
