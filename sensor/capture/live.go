package capture

import (
	"errors"
	"time"
)

// Source is where frames come from: a file (File) or a live interface. Next
// fills fr; for a live source it returns ErrTimeout when no frame arrived
// within the poll interval, so that the caller can run time-based work.
type Source interface {
	Next(fr *Frame) error
	Close() error
}

// LiveStats are the kernel's counters for a live capture.
type LiveStats struct {
	Received uint64 // frames the kernel handed to the capture
	Dropped  uint64 // frames the kernel dropped because the capture fell behind
}

// Live is an open live capture.
type Live interface {
	Source
	Stats() (LiveStats, error)
	// Backend names the capture mechanism ("afpacket", "bpf").
	Backend() string
}

// LiveOptions configure a live capture. Zero values mean the defaults.
type LiveOptions struct {
	// BufferSize is the kernel ring or buffer size in bytes (default 32 MiB
	// on Linux, 4 MiB on macOS).
	BufferSize int
	// Poll is how long Next waits before returning ErrTimeout (default 250ms).
	Poll time.Duration
	// Filter is a BPF filter program in tcpdump syntax; "" for none.
	Filter string
	// Promiscuous puts the interface in promiscuous mode (default off: the
	// sensor watches its own host).
	Promiscuous bool
}

func (o LiveOptions) poll() time.Duration {
	if o.Poll > 0 {
		return o.Poll
	}
	return 250 * time.Millisecond
}

// ErrTimeout says no frame arrived within the poll interval.
var ErrTimeout = errors.New("capture: no packet within the poll interval")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("capture: closed")
