package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// captureCheck opens one /dev/bpf device, as `run` does (PKTAP,
// --interface pktap,all, captures through the same devices).
func captureCheck() checkResult {
	const name = "capture (/dev/bpf)"
	devs, _ := filepath.Glob("/dev/bpf*")
	if len(devs) == 0 {
		return failed(name, "no /dev/bpf* device", "reboot; macOS creates /dev/bpf devices at boot")
	}
	busy := 0
	var lastErr error
	for _, d := range devs {
		f, err := os.OpenFile(d, os.O_RDWR, 0)
		if err == nil {
			f.Close()
			return okResult(name, d+" opens for reading (PKTAP uses the same devices)")
		}
		if errors.Is(err, syscall.EBUSY) {
			busy++
			continue
		}
		lastErr = err
	}
	if busy == len(devs) {
		return warned(name, fmt.Sprintf("all %d /dev/bpf devices are busy", len(devs)), "close other capture programs (Wireshark, tcpdump); macOS adds devices on demand up to its limit")
	}
	if errors.Is(lastErr, os.ErrPermission) {
		return failed(name, lastErr.Error(), "run as root")
	}
	return failed(name, fmt.Sprint(lastErr), "run as root; check that no security product blocks /dev/bpf")
}

// fileAccessCheck probes eslogger (present, permitted, running as root).
func fileAccessCheck(opt doctorOptions) checkResult {
	return esloggerCheck(opt.esloggerPath, opt.timeout)
}
