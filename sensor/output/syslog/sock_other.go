//go:build !unix

package syslog

import (
	"errors"
	"net"
)

func peek(net.Conn) (int, error) {
	return 0, errors.New("liveness check not supported on this system")
}

func unacked(net.Conn) (int, error) {
	return 0, errors.New("the send queue length is not known on this system")
}
