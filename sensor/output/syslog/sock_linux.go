package syslog

import "golang.org/x/sys/unix"

// sendQueue is SIOCOUTQ: bytes sent but not acknowledged, plus unsent.
func sendQueue(fd int) (int, error) {
	return unix.IoctlGetInt(fd, unix.SIOCOUTQ)
}
