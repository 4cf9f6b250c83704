// Package attribution answers, for the sensor, "which local process owned
// this connection at time t" and "what is that process". OS specifics live
// in _linux.go and _darwin.go files behind the small interfaces here; the
// parsers of OS formats (/proc/net/tcp, lsof -F output, libproc struct
// bytes, PKTAP headers) are in untagged files that take bytes or an
// io.Reader, so they are tested on every platform.
package attribution

import (
	"errors"
	"net/netip"
	"time"
)

// Proto numbers of the transports a socket table knows.
const (
	TCP uint8 = 6
	UDP uint8 = 17
)

// Socket is one entry of a socket table, seen from the local host: Local is
// this host's end. Addresses are unmapped (an IPv4-mapped IPv6 socket is
// reported with its IPv4 addresses, so it matches IPv4 flows).
type Socket struct {
	Proto  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort // zero for a listening or unconnected socket
	State  string         // TCP state as the OS names it ("ESTABLISHED", "LISTEN"…), "" for UDP
	UID    uint32
	Inode  uint64 // Linux socket inode; 0 elsewhere
	PID    int32  // owning process, 0 when not known (yet)
	FD     int32  // file descriptor in PID, -1 when not known
}

// Owner is the answer to a lookup: the process that owned a socket.
type Owner struct {
	PID   int32
	UID   uint32
	Inode uint64
	// Seen is when the socket table was read.
	Seen time.Time
}

// SocketTable finds the owner of a connection. Implementations keep their
// own cache and rescan as little as they can; Lookup may block for a
// rescan but never for long (it is called from the capture path's helper,
// not per packet).
type SocketTable interface {
	// Lookup returns the owner of the socket with this protocol and
	// endpoints (local = this host's end). It returns ErrNotFound when no
	// socket matches, which the caller may retry.
	Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error)
	// Close releases what the table holds (netlink sockets, file handles).
	Close() error
}

// Process is what is known of one process. A process is identified by
// (PID, StartTime), never by PID alone: PIDs are reused.
type Process struct {
	PID        int32     `json:"pid"`
	PPID       int32     `json:"ppid,omitempty"`
	Name       string    `json:"name,omitempty"`
	Executable string    `json:"executable,omitempty"`
	Args       []string  `json:"args,omitempty"`
	CWD        string    `json:"cwd,omitempty"`
	StartTime  time.Time `json:"start_time,omitzero"`
	UID        uint32    `json:"uid"`
	User       string    `json:"user,omitempty"`
	// SessionLeader is the PID of the session leader (the login shell or
	// the daemon that started the session), when the OS says.
	SessionLeader int32 `json:"session_leader,omitempty"`
	// PGID is the process group (Linux /proc/PID/stat pgrp, macOS
	// pbi_pgid, Endpoint Security group_id): a shell pipeline shares one.
	PGID int32 `json:"pgid,omitempty"`
	// PIDVersion is the macOS audit token's pidversion (from eslogger);
	// with PID it names one process image. 0 where unknown.
	PIDVersion int32 `json:"pidversion,omitempty"`
	// Code is the code signature (macOS, from Endpoint Security); nil
	// when unknown.
	Code *CodeSignature `json:"code_signature,omitempty"`
}

// CodeSignature is a process's code signature as Endpoint Security
// reports it. Flags are the CS_* flags of xnu cs_blobs.h; Valid, AdHoc and
// Platform are read from them (Platform also from is_platform_binary).
type CodeSignature struct {
	SigningID string `json:"signing_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
	Flags     uint32 `json:"flags,omitempty"`
	Valid     bool   `json:"valid"`
	AdHoc     bool   `json:"adhoc,omitempty"`
	Platform  bool   `json:"platform_binary,omitempty"`
}

// ProcessSource describes processes.
type ProcessSource interface {
	// Process returns the process with this PID, as it is now.
	Process(pid int32) (*Process, error)
}

var (
	// ErrNotFound says no socket (or process) matched.
	ErrNotFound = errors.New("not found")
	// ErrUnsupported says this platform has no implementation.
	ErrUnsupported = errors.New("not supported on this platform")
	// ErrSocketClosed says the socket exists only as a closed endpoint
	// (TIME_WAIT): its process let go of it, retrying cannot help.
	ErrSocketClosed = errors.New("socket closed")
	// ErrPermission says the sensor lacks the rights to read the table
	// (not root, or macOS Full Disk Access / SIP restrictions).
	ErrPermission = errors.New("permission denied")
)
