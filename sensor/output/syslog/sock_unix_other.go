//go:build unix && !linux && !darwin

package syslog

import "errors"

func sendQueue(int) (int, error) {
	return 0, errors.New("the send queue length is not known on this system")
}
