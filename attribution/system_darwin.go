//go:build darwin

package attribution

import "fmt"

// NewSystem opens this platform's socket table and process source: libproc
// through purego on macOS, with lsof as the fallback table when libproc is
// refused.
func NewSystem() (SocketTable, ProcessSource, error) {
	procs, err := NewDarwinProcessSource(DarwinProcessOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("libproc: %w", err)
	}
	t, err := NewLibprocTable(LibprocOptions{})
	if err == nil {
		return t, procs, nil
	}
	lt, lerr := NewLsofTable(LsofOptions{})
	if lerr != nil {
		return nil, nil, fmt.Errorf("libproc: %v; lsof: %w", err, lerr)
	}
	return lt, procs, nil
}
