package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"exfilwatch/attribution"
)

// captureCheck opens (and closes) an AF_PACKET socket, as `run` does.
func captureCheck() checkResult {
	const name = "capture (AF_PACKET)"
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return failed(name, fmt.Sprintf("AF_PACKET socket: %v", err), "run as root or grant CAP_NET_RAW")
		}
		return failed(name, fmt.Sprintf("AF_PACKET socket: %v", err), "use a kernel with CONFIG_PACKET, or build with -tags pcap and run --backend pcap")
	}
	unix.Close(fd)
	return okResult(name, "an AF_PACKET socket opens")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// fileAccessCheck sets up fanotify exactly as `run` does (the filesystems
// of /home and /root), then closes it.
func fileAccessCheck(opt doctorOptions) checkResult {
	const name = "file access (fanotify)"
	paths := defaultWatchPaths()
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	fan, err := attribution.NewFanotify(attribution.FanotifyOptions{Paths: paths, Filesystem: true, QueueSize: 1})
	if err != nil {
		switch {
		case errors.Is(err, unix.EPERM):
			return failed(name, err.Error(), "run as root (fanotify needs CAP_SYS_ADMIN); in a container, give it CAP_SYS_ADMIN in the host's user namespace")
		case errors.Is(err, unix.ENOSYS):
			return failed(name, err.Error(), "use a kernel built with CONFIG_FANOTIFY (5.1 or later for whole filesystems)")
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENODEV), errors.Is(err, unix.EINVAL):
			return failed(name, err.Error(), "this filesystem cannot be watched whole; pass --watch-path with the mount points of the users' homes")
		}
		return failed(name, err.Error(), "run `exfilwatch run --no-file-access` to go without (no finding can then be raised)")
	}
	fan.Close()
	return okResult(name, fmt.Sprintf("fanotify watches %v", paths))
}
