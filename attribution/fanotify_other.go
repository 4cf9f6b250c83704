//go:build !linux

package attribution

// Fanotify is a fanotify file-access source; it exists only on Linux.
type Fanotify struct {
	// ExecEvents reports whether FAN_OPEN_EXEC is watched (never here).
	ExecEvents bool
}

// NewFanotify returns ErrUnsupported: fanotify is Linux only.
func NewFanotify(opts FanotifyOptions) (*Fanotify, error) {
	return nil, ErrUnsupported
}

// Events returns nil: there is never a source on this platform.
func (f *Fanotify) Events() <-chan FileAccess { return nil }

// Stats returns zero counters.
func (f *Fanotify) Stats() FanotifyStats { return FanotifyStats{} }

// Close does nothing.
func (f *Fanotify) Close() error { return nil }
