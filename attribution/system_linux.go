//go:build linux

package attribution

// NewSystem opens this platform's socket table and process source: procfs
// (with the sock_diag fast path where the table uses it) on Linux.
func NewSystem() (SocketTable, ProcessSource, error) {
	t, err := NewProcTable("/proc", ProcTableOptions{})
	if err != nil {
		return nil, nil, err
	}
	return t, NewProcessCache("/proc", ProcessCacheOptions{}), nil
}
