// This file is the netlink sock_diag client: it asks the kernel for the one
// socket with an exact 5-tuple (inet_diag_req_v2 without NLM_F_DUMP), which
// answers in microseconds however many sockets the host has.

package attribution

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes and constants of include/uapi/linux/inet_diag.h and netlink.h.
const (
	sockdiagSizeofNlMsghdr = 16
	sockdiagSizeofReqV2    = 56
	sockdiagSizeofMsg      = 72
	sockdiagSizeofNlMsgerr = 4 // the error code; the echoed request follows
	sockdiagNoCookie       = ^uint32(0)
	sockdiagTimeout        = 200 * time.Millisecond
	sockdiagRecvBuf        = 8192
)

// sockdiagConn is one NETLINK_SOCK_DIAG socket. It is not safe for concurrent
// use; ProcTable serializes calls with its lock.
type sockdiagConn struct {
	fd  int
	seq uint32
	req [sockdiagSizeofNlMsghdr + sockdiagSizeofReqV2]byte
	buf []byte
}

func newSockdiagConn() (*sockdiagConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("attribution: sock_diag socket: %w", err)
	}
	tv := unix.NsecToTimeval(int64(sockdiagTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attribution: sock_diag timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attribution: sock_diag bind: %w", err)
	}
	return &sockdiagConn{fd: fd, buf: make([]byte, sockdiagRecvBuf)}, nil
}

func (d *sockdiagConn) Close() error { return unix.Close(d.fd) }

// sockdiagAnswer is what the kernel says of one socket.
type sockdiagAnswer struct {
	family        uint8
	state         uint8
	local, remote netip.AddrPort // unmapped
	uid           uint32
	inode         uint64
}

// query asks for the socket of proto with this local and remote end, in
// family AF_INET or AF_INET6 (for AF_INET the kernel also finds dual-stack
// IPv6 sockets that carry the flow with mapped addresses). It returns
// found=false when the kernel has no such socket (ENOENT).
//
// The kernel resolves the request like an arriving packet: for TCP it may
// answer with the listener of the local port, for UDP with an unconnected
// socket bound to it. The caller checks the answer's endpoints.
func (d *sockdiagConn) query(proto uint8, local, remote netip.AddrPort) (sockdiagAnswer, bool, error) {
	family := uint8(unix.AF_INET)
	if !local.Addr().Is4() {
		family = unix.AF_INET6
	}
	d.seq++
	b := d.req[:]
	clear(b)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], d.seq)
	r := b[sockdiagSizeofNlMsghdr:]
	r[0] = family
	r[1] = proto
	ne.PutUint32(r[4:], ^uint32(0)) // every state
	// inet_diag_sockid at r[8:]: sport, dport (big endian), src[16], dst[16], if, cookie[2].
	// TCP takes src = local end. UDP's udp_dump_one passes src and dst to
	// the lookup of an arriving packet, so src is the remote end there
	// (checked by TestSockdiagUDPOrder).
	src, dst := local, remote
	if proto == UDP {
		src, dst = remote, local
	}
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], src.Port())
	binary.BigEndian.PutUint16(id[2:], dst.Port())
	sockdiagPutAddr(id[4:20], src.Addr())
	sockdiagPutAddr(id[20:36], dst.Addr())
	ne.PutUint32(id[40:], sockdiagNoCookie)
	ne.PutUint32(id[44:], sockdiagNoCookie)

	if err := unix.Sendto(d.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return sockdiagAnswer{}, false, fmt.Errorf("attribution: sock_diag send: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return sockdiagAnswer{}, false, fmt.Errorf("attribution: sock_diag receive: %w", err)
		}
		ans, found, done, err := d.parse(d.buf[:n])
		if done || err != nil {
			return ans, found, err
		}
		// A late answer to an earlier, timed-out request: read on.
	}
}

// parse reads one datagram of netlink messages and reports done when it
// held the answer to the current request.
func (d *sockdiagConn) parse(b []byte) (ans sockdiagAnswer, found, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= sockdiagSizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		seq := ne.Uint32(b[8:])
		if l < sockdiagSizeofNlMsghdr || l > len(b) {
			return ans, false, true, fmt.Errorf("attribution: sock_diag: bad message length %d of %d", l, len(b))
		}
		msg := b[sockdiagSizeofNlMsghdr:l]
		if next := (l + 3) &^ 3; next < len(b) {
			b = b[next:]
		} else {
			b = nil
		}
		if seq != d.seq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) < sockdiagSizeofNlMsgerr {
				return ans, false, true, errors.New("attribution: sock_diag: short error message")
			}
			errno := -int32(ne.Uint32(msg))
			switch unix.Errno(errno) {
			case 0:
				continue // an ACK
			case unix.ENOENT:
				return ans, false, true, nil
			case unix.EPERM, unix.EACCES:
				return ans, false, true, fmt.Errorf("attribution: sock_diag: %w", ErrPermission)
			default:
				return ans, false, true, fmt.Errorf("attribution: sock_diag: %w", unix.Errno(errno))
			}
		case unix.NLMSG_DONE:
			return ans, false, true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(msg) < sockdiagSizeofMsg {
				return ans, false, true, fmt.Errorf("attribution: sock_diag: short answer (%d bytes)", len(msg))
			}
			ans, err = sockdiagParseMsg(msg)
			return ans, err == nil, true, err
		}
	}
	return ans, false, false, nil
}

// sockdiagParseMsg decodes struct inet_diag_msg: family, state, timer,
// retrans, inet_diag_sockid (48 bytes), expires, rqueue, wqueue, uid, inode.
func sockdiagParseMsg(m []byte) (sockdiagAnswer, error) {
	var a sockdiagAnswer
	a.family, a.state = m[0], m[1]
	id := m[4:52]
	var ok1, ok2 bool
	a.local, ok1 = sockdiagAddrPort(a.family, id[4:20], binary.BigEndian.Uint16(id[0:]))
	a.remote, ok2 = sockdiagAddrPort(a.family, id[20:36], binary.BigEndian.Uint16(id[2:]))
	if !ok1 || !ok2 {
		return a, fmt.Errorf("attribution: sock_diag: unknown family %d", a.family)
	}
	ne := binary.NativeEndian
	a.uid = ne.Uint32(m[64:])
	a.inode = uint64(ne.Uint32(m[68:]))
	return a, nil
}

func sockdiagPutAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		copy(dst, b[:])
		return
	}
	b := a.As16()
	copy(dst, b[:])
}

func sockdiagAddrPort(family uint8, b []byte, port uint16) (netip.AddrPort, bool) {
	switch family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
