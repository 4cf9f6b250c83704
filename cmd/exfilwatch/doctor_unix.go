//go:build linux || darwin

package main

import "golang.org/x/sys/unix"

// writable asks the kernel whether this process may write p (a read-only
// filesystem answers EROFS even to root).
func writable(p string) error { return unix.Access(p, unix.W_OK) }

// diskFree is the space an unprivileged writer could still use at p; root
// may use a little more (the reserved blocks), which the margin covers.
func diskFree(p string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
