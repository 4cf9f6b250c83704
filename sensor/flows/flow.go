// Package flows keeps the table of TCP and UDP connections and reassembles
// TCP byte streams. It decides who opened each connection, hands in-order
// payload straight to a Handler without copying (only out-of-order data is
// buffered, within limits), records gaps, and closes flows on FIN, RST, idle
// timeout, eviction or end of capture. Time always comes from packets.
package flows

import (
	"bytes"
	"net/netip"
	"time"

	"exfilwatch/protocols"
	"exfilwatch/sensor/decode"
)

// Endpoint is one side of a connection. IPv4 addresses are IPv4-mapped.
type Endpoint struct {
	Addr [16]byte
	Port uint16
}

// AddrPort returns the endpoint in its natural form (IPv4 unmapped).
func (e Endpoint) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.Addr).Unmap(), e.Port)
}

func compareEndpoints(a, b Endpoint) int {
	if c := bytes.Compare(a.Addr[:], b.Addr[:]); c != 0 {
		return c
	}
	switch {
	case a.Port < b.Port:
		return -1
	case a.Port > b.Port:
		return 1
	}
	return 0
}

// Key identifies a connection regardless of direction.
type Key struct {
	Lo, Hi Endpoint
	Proto  uint8
}

// CloseReason says why a flow ended.
type CloseReason uint8

const (
	CloseFIN     CloseReason = iota // both sides finished with FIN
	CloseRST                        // a side reset the connection
	CloseIdle                       // no packet for the idle timeout
	CloseEvicted                    // dropped to make room (MaxFlows)
	CloseEnd                        // end of the capture (or shutdown)
	CloseReused                     // a new connection reused the 5-tuple
)

func (r CloseReason) String() string {
	switch r {
	case CloseFIN:
		return "fin"
	case CloseRST:
		return "rst"
	case CloseIdle:
		return "idle_timeout"
	case CloseEvicted:
		return "evicted"
	case CloseEnd:
		return "end_of_capture"
	case CloseReused:
		return "port_reused"
	}
	return "unknown"
}

// Flow is one connection. The Table reuses a Flow once it has been handed to
// Handler.Closed: nothing may keep a pointer to it after that. Internally, per-side arrays are indexed by the
// side first guessed to be the client (0) or server (1); the Handler may
// correct the guess once from content (SetSwapped), and every exported
// accessor and Handler callback speaks in corrected client/server terms.
type Flow struct {
	Key   Key
	ID    uint64
	Proto uint8
	IPv6  bool
	// SawSYN says the opening handshake was seen, so the client is certain.
	// Without it the client was guessed from the ports (see guessClient).
	SawSYN bool
	Tunnel string

	First, Last time.Time
	BadChecksum uint64

	side    [2]Endpoint
	packets [2]uint64
	bytes   [2]uint64 // frame bytes on the wire
	half    [2]half
	dd      [2]dirDeliverer
	swapped bool
	closed  bool // both sides ended or RST; waiting for linger or reuse
	reason  CloseReason

	// App is the Handler's per-flow state.
	App any

	prev, next *Flow // LRU list, most recent at the head
}

func (f *Flow) idx(d protocols.Dir) int {
	if f.swapped {
		return int(d ^ 1)
	}
	return int(d)
}

// Client returns the side that opened the connection.
func (f *Flow) Client() Endpoint { return f.side[f.idx(protocols.ClientToServer)] }

// Server returns the side that accepted the connection.
func (f *Flow) Server() Endpoint { return f.side[f.idx(protocols.ServerToClient)] }

// Packets returns the packets sent in direction d.
func (f *Flow) Packets(d protocols.Dir) uint64 { return f.packets[f.idx(d)] }

// Bytes returns the frame bytes sent in direction d.
func (f *Flow) Bytes(d protocols.Dir) uint64 { return f.bytes[f.idx(d)] }

// Half returns the reassembly counters of direction d.
func (f *Flow) Half(d protocols.Dir) HalfStats { return f.half[f.idx(d)].HalfStats }

// Closed reports whether both directions ended.
func (f *Flow) Closed() bool { return f.closed }

// Reason returns why the flow closed (valid once it was handed to Handler.Closed).
func (f *Flow) Reason() CloseReason { return f.reason }

// Swapped reports whether SetSwapped corrected the first guess.
func (f *Flow) Swapped() bool { return f.swapped }

// SetSwapped exchanges client and server. The Handler calls it when content
// shows the port-based guess was wrong (an HTTP request from the presumed
// server), only for flows whose handshake was not seen, and before it has
// passed any payload to a parser.
func (f *Flow) SetSwapped() {
	if !f.SawSYN {
		f.swapped = !f.swapped
	}
}

// sideOf returns the internal side index of a packet sent by src.
func (f *Flow) sideOf(src Endpoint) int {
	if src == f.side[0] {
		return 0
	}
	return 1
}

// guessClient decides who opened a connection whose handshake was not seen,
// from the ports: a well-known or registered port against an ephemeral one.
// The Handler may still correct it from content.
func guessClient(p *decode.Packet) (srcIsClient bool) {
	sp, dp := p.SrcPort, p.DstPort
	switch {
	case dp < 1024 && sp >= 1024:
		return true
	case sp < 1024 && dp >= 1024:
		return false
	case dp < 49152 && sp >= 49152:
		return true
	case sp < 49152 && dp >= 49152:
		return false
	case sp != dp:
		return sp > dp
	}
	return true
}
