//go:build !linux

// This file is the complement of procfs_linux.go and process_linux.go: the
// procfs socket table and process source exist only on Linux. The parsers
// in procfs.go and procfs_pid.go build and are tested everywhere.

package attribution

import (
	"fmt"
	"net/netip"
	"time"
)

// ProcTable is the Linux socket table; elsewhere it reports ErrUnsupported.
type ProcTable struct{}

var _ SocketTable = (*ProcTable)(nil)

// NewProcTable returns an error wrapping ErrUnsupported off Linux.
func NewProcTable(root string, opts ProcTableOptions) (*ProcTable, error) {
	return nil, fmt.Errorf("attribution: procfs socket table: %w", ErrUnsupported)
}

// Lookup implements SocketTable; it returns ErrUnsupported off Linux.
func (t *ProcTable) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	return Owner{}, fmt.Errorf("attribution: procfs socket table: %w", ErrUnsupported)
}

// Scan returns ErrUnsupported off Linux.
func (t *ProcTable) Scan() error {
	return fmt.Errorf("attribution: procfs socket table: %w", ErrUnsupported)
}

// Close implements SocketTable.
func (t *ProcTable) Close() error { return nil }

// Stats returns zero counters off Linux.
func (t *ProcTable) Stats() ProcTableStats { return ProcTableStats{} }

// NewProcessCache returns a cache whose reads fail with ErrUnsupported off
// Linux.
func NewProcessCache(root string, opts ProcessCacheOptions) *ProcessCache {
	return newProcessCache(procUnsupported{}, opts)
}

type procUnsupported struct{}

func (procUnsupported) open(int32) (procHandle, error) {
	return nil, fmt.Errorf("attribution: procfs processes: %w", ErrUnsupported)
}

func (procUnsupported) bootTime() (time.Time, error) {
	return time.Time{}, fmt.Errorf("attribution: procfs processes: %w", ErrUnsupported)
}
