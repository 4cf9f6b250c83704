//go:build !linux && !darwin

package capture

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrLiveUnsupported says this build has no live capture backend.
var ErrLiveUnsupported = errors.New("live capture is not supported on " + runtime.GOOS + " (only on linux and darwin); read a capture file instead")

// OpenLive fails: live capture exists only for Linux (AF_PACKET) and macOS
// (/dev/bpf).
func OpenLive(iface string, opt LiveOptions) (Live, error) {
	return nil, fmt.Errorf("open %s: %w", iface, ErrLiveUnsupported)
}
