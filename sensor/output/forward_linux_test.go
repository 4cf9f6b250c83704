package output

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Unacked gives the test transport the same TCP-level confirmation as
// sensor/output/syslog's (SIOCOUTQ: bytes the peer has not ACKed).
func (s *lineSender) Unacked() (int, error) {
	tc, ok := s.c.(*net.TCPConn)
	if !ok {
		return 0, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("SIOCOUTQ: %w", ierr)
	}
	return n, nil
}
