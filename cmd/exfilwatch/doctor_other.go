//go:build !linux && !darwin

package main

import "errors"

var errUnsupported = errors.New("not supported on this system")

func writable(string) error           { return nil }
func diskFree(string) (uint64, error) { return 0, errUnsupported }
func captureCheck() checkResult       { return warned("capture", "not checked on this system", "") }
func fileAccessCheck(doctorOptions) checkResult {
	return warned("file access", "not checked on this system", "")
}
