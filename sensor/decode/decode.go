// Package decode turns one captured frame into the transport-level facts the
// flow table needs: addresses, ports, TCP sequence state and payload. It
// unwraps link layers (Ethernet, VLAN, PPPoE, MPLS, Linux SLL/SLL2, BSD
// NULL/LOOP, raw IP, Apple PKTAP) and tunnels (GRE, ERSPAN, VXLAN, Geneve,
// Teredo, IP-in-IP), and reassembles IPv4 fragments.
//
// The hot path (Ethernet → IPv4/IPv6 → TCP) is decoded by hand from the frame
// bytes, without allocation and without trusting any length field: every
// slice is checked against what was captured. A frame that cannot be placed is
// counted by reason, never fatal.
package decode

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"exfilwatch/sensor/capture"
)

// IP protocol numbers used here.
const (
	ProtoICMP   = 1
	ProtoIPIP   = 4
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoIPv6   = 41
	ProtoGRE    = 47
	ProtoICMPv6 = 58
)

// TCP flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
)

// maxEncapDepth bounds tunnel nesting, so a crafted frame cannot recurse forever.
const maxEncapDepth = 8

// Packet is the decoded view of one frame. Payload aliases the frame buffer
// (or, for reassembled fragments, a buffer owned by the decoder): it is only
// valid until the next call to Decode.
type Packet struct {
	Timestamp time.Time
	WireLen   int // original length of the frame on the wire

	IPv6     bool
	Src, Dst [16]byte // IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d)
	Proto    uint8    // ProtoTCP or ProtoUDP
	SrcPort  uint16
	DstPort  uint16

	// TCP only.
	Seq, Ack uint32
	Flags    uint8
	Window   uint16

	Payload []byte

	// Tunnel is the outermost encapsulation that was removed ("" for none):
	// "gre", "erspan", "vxlan", "geneve", "teredo", "ipip", "mpls", "pppoe".
	Tunnel string
	// BadChecksum is set when the IPv4 header or TCP/UDP checksum is wrong.
	// Such packets are decoded anyway: on the capturing host itself they are
	// normal (transmit checksum offload).
	BadChecksum bool
	// Truncated is set when the frame was cut by the snap length: the
	// payload holds fewer bytes than the IP header announced.
	Truncated bool

	// Meta is the packet's process metadata: decoded from the PKTAP header
	// for link types 149 and 258, or copied from capture.Frame.Meta (Apple
	// pcapng) by DecodeFrame. Zero when the frame carried none. See
	// pktapmeta.go.
	Meta capture.ProcMeta
}

// SrcAddr returns the source address in its natural form (IPv4 unmapped).
func (p *Packet) SrcAddr() netip.Addr { return addrOf(p.Src, p.IPv6) }

// DstAddr returns the destination address in its natural form.
func (p *Packet) DstAddr() netip.Addr { return addrOf(p.Dst, p.IPv6) }

func addrOf(a [16]byte, v6 bool) netip.Addr {
	x := netip.AddrFrom16(a)
	if !v6 {
		return x.Unmap()
	}
	return x
}

// Reason says why a frame was not turned into a TCP or UDP packet. The values
// name counters in the run summary.
type Reason uint8

const (
	OK                    Reason = iota
	ReasonFragment               // an IPv4 fragment held until its datagram is complete
	ReasonTruncated              // a header was cut short
	ReasonUnknownLink            // a link type this decoder does not know
	ReasonNotIP                  // ARP, LLDP, STP and other non-IP frames
	ReasonOtherProto             // ICMP, SCTP, ESP… (not TCP or UDP)
	ReasonBadHeader              // an impossible length, version or option
	ReasonTooDeep                // more nested encapsulations than maxEncapDepth
	ReasonFragmentDropped        // a fragment the reassembler refused (overlap, limit)
	ReasonIPv6Fragment           // an IPv6 fragment (not reassembled)
	ReasonPanic                  // a decoder panicked and was recovered
	numReasons
)

var reasonNames = [numReasons]string{
	OK:                    "ok",
	ReasonFragment:        "ipv4_fragment_pending",
	ReasonTruncated:       "truncated",
	ReasonUnknownLink:     "unknown_link_type",
	ReasonNotIP:           "not_ip",
	ReasonOtherProto:      "other_ip_protocol",
	ReasonBadHeader:       "bad_header",
	ReasonTooDeep:         "too_many_encapsulations",
	ReasonFragmentDropped: "ipv4_fragment_dropped",
	ReasonIPv6Fragment:    "ipv6_fragment",
	ReasonPanic:           "decoder_panic",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", r)
}

// Counters is what the decoder saw, by outcome.
type Counters struct {
	Packets      uint64
	Decoded      uint64
	ByReason     [numReasons]uint64
	BadChecksums uint64
	Truncated    uint64 // decoded, but the payload was cut by the snap length
	Reassembled  uint64 // IPv4 datagrams rebuilt from fragments
	Tunnelled    uint64
}

// Skipped returns the per-reason counts of frames that were not decoded, by name.
func (c *Counters) Skipped() map[string]uint64 {
	m := make(map[string]uint64)
	for r := Reason(1); r < numReasons; r++ {
		if c.ByReason[r] > 0 {
			m[r.String()] = c.ByReason[r]
		}
	}
	return m
}

// Options configures a Decoder. Zero values mean the documented defaults.
type Options struct {
	// VerifyChecksums computes TCP/UDP checksums to count bad ones. IPv4
	// header checksums are always checked (they are cheap).
	VerifyChecksums bool
	// MaxFragmentBytes bounds the bytes held for incomplete IPv4 datagrams
	// (default 16 MiB). Past it, all pending fragments are dropped and counted.
	MaxFragmentBytes int
	// FragmentTimeout drops incomplete datagrams older than this, in packet
	// time (default 30s).
	FragmentTimeout time.Duration
}

func (o Options) maxFragmentBytes() int {
	if o.MaxFragmentBytes > 0 {
		return o.MaxFragmentBytes
	}
	return 16 << 20
}

func (o Options) fragmentTimeout() time.Duration {
	if o.FragmentTimeout > 0 {
		return o.FragmentTimeout
	}
	return 30 * time.Second
}

// be is the byte order of every network header.
var be = binary.BigEndian
