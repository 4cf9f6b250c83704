package syslog

import "golang.org/x/sys/unix"

// sendQueue is SO_NWRITE: the bytes in the send buffer, which TCP keeps
// until they are acknowledged.
func sendQueue(fd int) (int, error) {
	return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_NWRITE)
}
