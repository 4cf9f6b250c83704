//go:build !linux && !darwin

package attribution

// NewSystem has no implementation on this platform: flows stay
// unattributed with the reason "unsupported".
func NewSystem() (SocketTable, ProcessSource, error) {
	return nil, nil, ErrUnsupported
}
