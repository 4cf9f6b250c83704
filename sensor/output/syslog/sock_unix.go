//go:build unix

package syslog

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peek looks, without blocking and without consuming anything, at what the
// peer sent: n > 0 bytes waiting, or an error when the peer closed (EOF)
// or reset the connection.
func peek(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		// true: never wait for readability, the check must not block.
		return true
	})
	if err != nil {
		return 0, err
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN), errors.Is(rerr, unix.EWOULDBLOCK), errors.Is(rerr, unix.EINTR):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, errors.New("the receiver closed the connection (EOF)")
	}
	return n, nil
}

// unacked asks the kernel how many written bytes are still in the send
// queue (not yet acknowledged by the peer).
func unacked(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var qerr error
	err = rc.Control(func(fd uintptr) { n, qerr = sendQueue(int(fd)) })
	if err != nil {
		return 0, err
	}
	return n, qerr
}
