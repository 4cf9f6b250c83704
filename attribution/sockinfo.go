package attribution

// This file decodes what macOS libproc returns about sockets:
// proc_pidinfo(PROC_PIDLISTFDS) and proc_pidfdinfo(PROC_PIDFDSOCKETINFO).
// It is untagged so the decoders are tested on every platform; the calls
// themselves are in libproc_darwin.go.
//
// Layouts and constants: apple-oss-distributions/xnu@1031c584
// bsd/sys/proc_info.h, as summarised in shared/reference/macos-formats.md
// §3.2 (xnu@e3723e1, unchanged since xnu-2422). The offsets below were
// checked against a C compiler by testdata/darwin/proc_info_layout.c
// (TestProcInfoLayoutMatchesC). Both Darwin ABIs (arm64, x86_64) are LP64
// and little-endian, so every integer is read little-endian, except the
// ports and addresses, which the kernel stores in network order.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// libproc flavors and sizes (xnu bsd/sys/proc_info.h unless noted).
const (
	// ProcAllPIDs is the proc_listpids type for every process (PROC_ALL_PIDS).
	ProcAllPIDs = 1
	// ProcPIDListFDs is the proc_pidinfo flavor that lists a process's
	// descriptors as struct proc_fdinfo (PROC_PIDLISTFDS).
	ProcPIDListFDs = 1
	// ProcPIDTBSDInfo is the proc_pidinfo flavor for struct proc_bsdinfo
	// (PROC_PIDTBSDINFO).
	ProcPIDTBSDInfo = 3
	// ProcPIDVnodePathInfo is the proc_pidinfo flavor for struct
	// proc_vnodepathinfo, the current and root directories
	// (PROC_PIDVNODEPATHINFO).
	ProcPIDVnodePathInfo = 9
	// ProcPIDTShortBSDInfo is the proc_pidinfo flavor for struct
	// proc_bsdshortinfo (PROC_PIDT_SHORTBSDINFO).
	ProcPIDTShortBSDInfo = 13
	// ProcPIDUniqIdentifierInfo is the proc_pidinfo flavor for struct
	// proc_uniqidentifierinfo (PROC_PIDUNIQIDENTIFIERINFO, from
	// bsd/sys/proc_info_private.h: Apple SPI, not in the SDK header).
	ProcPIDUniqIdentifierInfo = 17
	// ProcPIDFDSocketInfo is the proc_pidfdinfo flavor for struct
	// socket_fdinfo (PROC_PIDFDSOCKETINFO).
	ProcPIDFDSocketInfo = 3
	// ProxFDTypeSocket is proc_fdinfo.proc_fdtype for a socket
	// (PROX_FDTYPE_SOCKET).
	ProxFDTypeSocket = 2
	// ProcPIDPathInfoMaxSize is the buffer proc_pidpath wants
	// (PROC_PIDPATHINFO_MAXSIZE = 4*MAXPATHLEN, MAXPATHLEN = 1024).
	ProcPIDPathInfoMaxSize = 4 * 1024
	// MaxComLen is MAXCOMLEN (bsd/sys/param.h): pbi_comm is MaxComLen
	// bytes, pbi_name 2*MaxComLen.
	MaxComLen = 16

	// SocketFDInfoSize is sizeof(struct socket_fdinfo).
	SocketFDInfoSize = 792
	// ProcFDInfoSize is sizeof(struct proc_fdinfo).
	ProcFDInfoSize = 8
)

// Offsets inside struct socket_fdinfo (pfi @0, psi @24; soi_proto @264).
const (
	sockinfoOffType     = 176 // psi.soi_type int32
	sockinfoOffProtocol = 180 // psi.soi_protocol int32
	sockinfoOffFamily   = 184 // psi.soi_family int32
	sockinfoOffKind     = 256 // psi.soi_kind int32
	sockinfoOffProto    = 264 // psi.soi_proto union (in_sockinfo / tcp_sockinfo)
	// in_sockinfo, relative to soi_proto.
	sockinfoInFport = 0  // insi_fport: int holding a network-order u_short
	sockinfoInLport = 4  // insi_lport: same encoding
	sockinfoInVflag = 24 // insi_vflag uint8
	sockinfoInFaddr = 32 // insi_faddr: 16 bytes, in4in6_addr or in6_addr
	sockinfoInLaddr = 48 // insi_laddr: 16 bytes
	// tcp_sockinfo, relative to soi_proto (tcpsi_ini is the in_sockinfo).
	sockinfoTCPState = 80 // tcpsi_state int32
)

// Values of the fields decoded above.
const (
	sockinfoAFInet  = 2  // AF_INET
	sockinfoAFInet6 = 30 // AF_INET6 on Darwin (Linux uses 10)

	sockinfoKindIn  = 1 // SOCKINFO_IN: pri_in is valid (UDP, raw)
	sockinfoKindTCP = 2 // SOCKINFO_TCP: pri_tcp is valid

	sockinfoINIIPv4 = 0x1 // INI_IPV4
	sockinfoINIIPv6 = 0x2 // INI_IPV6
)

// sockinfoTCPStates are the names of tcpsi_state values TSI_S_CLOSED (0) to
// TSI_S_TIME_WAIT (10), spelled as xnu's tcpstates[] (bsd/netinet/tcp_fsm.h)
// and so as lsof prints them in TST=.
var sockinfoTCPStates = [...]string{
	"CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
	"FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT",
}

var (
	// ErrNotInetSocket says a socket_fdinfo describes a socket the
	// attribution tables ignore: not AF_INET/AF_INET6 (Unix, system, route
	// sockets), not TCP or UDP (raw, ICMP), or one the kernel has no
	// protocol control block for (soi_kind SOCKINFO_GENERIC).
	ErrNotInetSocket = errors.New("attribution: not a TCP or UDP socket")
	// ErrBadSocketInfo says a socket_fdinfo has the right size but values
	// it cannot have (a port above 16 bits, a TCP state out of range, a
	// kind that contradicts the protocol).
	ErrBadSocketInfo = errors.New("attribution: malformed socket_fdinfo")
)

// FDInfo is one struct proc_fdinfo of a PROC_PIDLISTFDS answer.
type FDInfo struct {
	FD   int32  // proc_fd
	Type uint32 // proc_fdtype: ProxFDTypeSocket for a socket
}

// DecodeFDList decodes a PROC_PIDLISTFDS answer, an array of 8-byte
// struct proc_fdinfo {int32 proc_fd; uint32 proc_fdtype}. A trailing
// partial record is ignored.
func DecodeFDList(b []byte) []FDInfo {
	n := len(b) / ProcFDInfoSize
	out := make([]FDInfo, 0, n)
	for i := 0; i < n; i++ {
		r := b[i*ProcFDInfoSize : (i+1)*ProcFDInfoSize]
		out = append(out, FDInfo{
			FD:   int32(binary.LittleEndian.Uint32(r[0:4])),
			Type: binary.LittleEndian.Uint32(r[4:8]),
		})
	}
	return out
}

// DecodePIDList decodes a proc_listpids answer, an array of int32 pids,
// dropping pid 0 (kernel_task, which has no descriptors; the kernel also
// leaves zeros at the end of the buffer) and negative values. A trailing
// partial record is ignored.
func DecodePIDList(b []byte) []int32 {
	n := len(b) / 4
	out := make([]int32, 0, n)
	for i := 0; i < n; i++ {
		if pid := int32(binary.LittleEndian.Uint32(b[i*4:])); pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// DecodeSocketFDInfo decodes a struct socket_fdinfo as returned by
// proc_pidfdinfo(pid, fd, PROC_PIDFDSOCKETINFO, buf, 792), which must be
// exactly SocketFDInfoSize bytes.
//
// It follows Apple lsof (dialects/darwin/libproc/dsock.c,
// process_socket_common): pri_tcp for SOCKINFO_TCP and pri_in for
// SOCKINFO_IN; ports are ntohs of the low 16 bits of insi_lport/insi_fport;
// an AF_INET socket's addresses are the last 4 bytes of the 16-byte fields;
// an AF_INET6 socket with INI_IPV4 in insi_vflag is a v4-mapped dual-stack
// socket and is reported with IPv4 addresses (so it matches IPv4 flows), as
// is any IPv4-mapped IPv6 address. Link-local IPv6 addresses carry the
// interface index in bytes 2–3 (xnu's KAME embedded scope): it is cleared
// and kept as the address's zone, in decimal. A foreign address that is
// unspecified with port 0 (listening or unconnected socket) gives a zero
// Remote.
//
// The result has PID 0 and FD -1: the caller knows them. UID is 0: the
// kernel leaves soi_stat zeroed for sockets (xnu bsd/kern/proc_info.c
// pid_socketinfo), so the owner's uid comes from the process.
//
// Errors: a short buffer wraps io.ErrUnexpectedEOF; a socket that is not
// TCP or UDP over IPv4/IPv6 wraps ErrNotInetSocket; impossible values wrap
// ErrBadSocketInfo.
func DecodeSocketFDInfo(b []byte) (Socket, error) {
	var s Socket
	if len(b) < SocketFDInfoSize {
		return s, fmt.Errorf("attribution: socket_fdinfo is %d bytes, want %d: %w", len(b), SocketFDInfoSize, io.ErrUnexpectedEOF)
	}
	if len(b) > SocketFDInfoSize {
		return s, fmt.Errorf("%w: %d bytes, want %d (another socket_fdinfo layout?)", ErrBadSocketInfo, len(b), SocketFDInfoSize)
	}
	family, err := sockinfoI32(b, sockinfoOffFamily)
	if err != nil {
		return s, err
	}
	if family != sockinfoAFInet && family != sockinfoAFInet6 {
		return s, fmt.Errorf("%w: family %d", ErrNotInetSocket, family)
	}
	kind, err := sockinfoI32(b, sockinfoOffKind)
	if err != nil {
		return s, err
	}
	protocol, err := sockinfoI32(b, sockinfoOffProtocol)
	if err != nil {
		return s, err
	}
	sotype, err := sockinfoI32(b, sockinfoOffType)
	if err != nil {
		return s, err
	}
	switch kind {
	case sockinfoKindTCP:
		// xnu fills pri_tcp only for SOCK_STREAM with protocol 0 or TCP
		// (bsd/kern/socket_info.c fill_socketinfo).
		if protocol != int32(TCP) && protocol != 0 {
			return s, fmt.Errorf("%w: SOCKINFO_TCP with protocol %d", ErrBadSocketInfo, protocol)
		}
		s.Proto = TCP
		st, err := sockinfoI32(b, sockinfoOffProto+sockinfoTCPState)
		if err != nil {
			return s, err
		}
		if st < 0 || int(st) >= len(sockinfoTCPStates) {
			return s, fmt.Errorf("%w: tcpsi_state %d", ErrBadSocketInfo, st)
		}
		s.State = sockinfoTCPStates[st]
	case sockinfoKindIn:
		switch {
		case protocol == int32(UDP):
			s.Proto = UDP
		case protocol == int32(TCP):
			// A TCP socket whose tcpcb is gone (closing): the addresses
			// are still valid, the state is not known.
			s.Proto = TCP
		default:
			return s, fmt.Errorf("%w: protocol %d (type %d)", ErrNotInetSocket, protocol, sotype)
		}
	default:
		return s, fmt.Errorf("%w: soi_kind %d", ErrNotInetSocket, kind)
	}

	in := sockinfoOffProto
	lport, err := sockinfoPort(b, in+sockinfoInLport)
	if err != nil {
		return s, err
	}
	fport, err := sockinfoPort(b, in+sockinfoInFport)
	if err != nil {
		return s, err
	}
	vflag, err := sockinfoU8(b, in+sockinfoInVflag)
	if err != nil {
		return s, err
	}
	laddr, err := sockinfoAddr(b, in+sockinfoInLaddr, family, vflag)
	if err != nil {
		return s, err
	}
	faddr, err := sockinfoAddr(b, in+sockinfoInFaddr, family, vflag)
	if err != nil {
		return s, err
	}
	s.Local = netip.AddrPortFrom(laddr, lport)
	if !(faddr.IsUnspecified() && fport == 0) {
		s.Remote = netip.AddrPortFrom(faddr, fport)
	}
	s.FD = -1
	return s, nil
}

// sockinfoAddr reads a 16-byte insi_laddr/insi_faddr at off.
func sockinfoAddr(b []byte, off int, family int32, vflag uint8) (netip.Addr, error) {
	if off < 0 || off+16 > len(b) {
		return netip.Addr{}, fmt.Errorf("attribution: socket_fdinfo address at %d: %w", off, io.ErrUnexpectedEOF)
	}
	var a [16]byte
	copy(a[:], b[off:off+16])
	if family == sockinfoAFInet || vflag&sockinfoINIIPv4 != 0 && sockinfoV4Form(a, vflag) {
		// in4in6_addr: i46a_addr4 is the last 4 bytes, network order.
		return netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]}), nil
	}
	addr, zone := sockinfoKAMEScope(a)
	ip := netip.AddrFrom16(addr)
	if ip.Is4In6() {
		return ip.Unmap(), nil
	}
	if zone != 0 {
		ip = ip.WithZone(strconv.Itoa(int(zone)))
	}
	return ip, nil
}

// sockinfoV4Form says whether an AF_INET6 socket's address with INI_IPV4
// set is to be read as an in4in6_addr. lsof always does; the one exception
// kept here is a socket that also has INI_IPV6 and a real IPv6 address in
// the field (first 12 bytes neither zero nor the ::ffff: prefix), which
// truncating to 4 bytes would turn into a wrong IPv4 address.
func sockinfoV4Form(a [16]byte, vflag uint8) bool {
	if vflag&sockinfoINIIPv6 == 0 {
		return true
	}
	var zero [10]byte
	if [10]byte(a[:10]) != zero {
		return false
	}
	return a[10] == a[11] && (a[10] == 0 || a[10] == 0xff)
}

// sockinfoKAMEScope clears the interface index xnu embeds in bytes 2–3 of
// link-local unicast (fe80::/10) and interface- or link-local multicast
// (ff01::/16, ff02::/16) addresses (IN6_IS_SCOPE_EMBED; xnu
// bsd/netinet6/scope6.c in6_embedded_scope = 1) and returns it.
func sockinfoKAMEScope(a [16]byte) ([16]byte, uint16) {
	linkLocal := a[0] == 0xfe && a[1]&0xc0 == 0x80
	mcastScoped := a[0] == 0xff && (a[1]&0x0f == 0x1 || a[1]&0x0f == 0x2)
	if !linkLocal && !mcastScoped {
		return a, 0
	}
	zone := binary.BigEndian.Uint16(a[2:4])
	a[2], a[3] = 0, 0
	return a, zone
}

// sockinfoPort reads an insi_lport/insi_fport: an int whose first two bytes
// in memory are the port in network order (the kernel assigns a u_short in
// network order to an int: ntohs((u_short)x) on a little-endian host). The
// other two bytes are zero in anything the kernel wrote.
func sockinfoPort(b []byte, off int) (uint16, error) {
	if off < 0 || off+4 > len(b) {
		return 0, fmt.Errorf("attribution: socket_fdinfo port at %d: %w", off, io.ErrUnexpectedEOF)
	}
	if b[off+2] != 0 || b[off+3] != 0 {
		return 0, fmt.Errorf("%w: port field at %d is % x", ErrBadSocketInfo, off, b[off:off+4])
	}
	return binary.BigEndian.Uint16(b[off : off+2]), nil
}

func sockinfoI32(b []byte, off int) (int32, error) {
	if off < 0 || off+4 > len(b) {
		return 0, fmt.Errorf("attribution: int32 at %d of %d bytes: %w", off, len(b), io.ErrUnexpectedEOF)
	}
	return int32(binary.LittleEndian.Uint32(b[off : off+4])), nil
}

func sockinfoU32(b []byte, off int) (uint32, error) {
	v, err := sockinfoI32(b, off)
	return uint32(v), err
}

func sockinfoU64(b []byte, off int) (uint64, error) {
	if off < 0 || off+8 > len(b) {
		return 0, fmt.Errorf("attribution: uint64 at %d of %d bytes: %w", off, len(b), io.ErrUnexpectedEOF)
	}
	return binary.LittleEndian.Uint64(b[off : off+8]), nil
}

func sockinfoU8(b []byte, off int) (uint8, error) {
	if off < 0 || off >= len(b) {
		return 0, fmt.Errorf("attribution: byte at %d of %d bytes: %w", off, len(b), io.ErrUnexpectedEOF)
	}
	return b[off], nil
}

// sockinfoCString reads a NUL-terminated string from a fixed n-byte field
// at off; a field without NUL is taken whole.
func sockinfoCString(b []byte, off, n int) (string, error) {
	if off < 0 || n < 0 || off+n > len(b) {
		return "", fmt.Errorf("attribution: %d-byte string at %d of %d bytes: %w", n, off, len(b), io.ErrUnexpectedEOF)
	}
	f := b[off : off+n]
	for i, c := range f {
		if c == 0 {
			return string(f[:i]), nil
		}
	}
	return string(f), nil
}
