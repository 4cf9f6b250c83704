// Package events defines the sensor's output records (HTTP transactions, FTP
// commands, FTP data transfers and flow summaries) and writes them as JSON
// Lines with Elastic Common Schema field names. docs/events.md is the
// contract: fields are only ever added.
package events

import (
	"net/netip"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/protocols"
	"exfilwatch/protocols/ftp"
	"exfilwatch/protocols/http"
)

// Conn identifies the connection an event belongs to. Client is always the
// side that opened it (ECS source), Server the side that accepted it.
type Conn struct {
	FlowID         uint64
	Client, Server netip.AddrPort
	IPv6           bool
	Transport      string // "tcp" or "udp"
	Tunnel         string // outermost encapsulation removed, if any
	// ClientGuessed says the handshake was not seen: the client side was
	// inferred from ports and content.
	ClientGuessed bool
	// Attribution is the local process behind the connection; nil when no
	// attribution was attempted (replay without process metadata).
	Attribution *attribution.Result
	// Direction is ECS network.direction seen from the monitored host:
	// "outbound", "inbound", "internal", "external", or "" when the host's
	// networks are not known.
	Direction string
}

// HTTP is one HTTP request/response transaction.
type HTTP struct {
	Conn
	Tx *http.Transaction
}

// FTPCommand is one FTP command with its reply.
type FTPCommand struct {
	Conn
	Cmd *ftp.Command
}

// FTPData is one FTP data transfer: Conn is the data connection (zero when
// the data connection was announced but its packets were not seen), Control
// the control connection that ordered it.
type FTPData struct {
	Conn
	Control Conn
	T       *ftp.Transfer
}

// Flow is the summary of one connection, written when it leaves the table.
type Flow struct {
	Conn
	Protocol    string // "http", "ftp", "ftp-data", "" when not recognised
	Start, End  time.Time
	Packets     [2]uint64 // indexed by protocols.Dir
	Bytes       [2]uint64 // frame bytes on the wire
	Payload     [2]uint64 // unique reassembled payload bytes
	GapBytes    [2]uint64
	Gaps        uint64
	Retransmits uint64
	OutOfOrder  uint64
	BadChecksum uint64
	SawSYN      bool
	CloseReason string
	Encrypted   bool // FTP after AUTH TLS
}

// Sink receives events. Implementations must not keep the pointers' inner
// slices beyond the call unless they own them (the producer does not reuse
// them, but later issues may).
type Sink interface {
	HTTP(*HTTP)
	FTPCommand(*FTPCommand)
	FTPData(*FTPData)
	Flow(*Flow)
}

// Counts tallies events by dataset.
type Counts struct {
	HTTP, FTPCommands, FTPData, Flows uint64
	DNS                               uint64
}

// Dir re-exports the stream direction for Flow indexes.
type Dir = protocols.Dir
