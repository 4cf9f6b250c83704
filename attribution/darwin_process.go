//go:build darwin

package attribution

// The macOS ProcessSource: proc_pidinfo(PROC_PIDTBSDINFO) for ppid, uid,
// start time and names, proc_pidpath for the executable, the
// kern.procargs2 sysctl for the arguments, PROC_PIDVNODEPATHINFO for the
// current directory, PROC_PIDUNIQIDENTIFIERINFO for the executable's UUID
// and pid version, getsid for the session. Cached by (pid, start time) in
// darwin_proccache.go.

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// DarwinProcessSource describes macOS processes. It implements
// ProcessSource.
type DarwinProcessSource struct {
	c *darwinProcCache
}

var _ ProcessSource = (*DarwinProcessSource)(nil)

// NewDarwinProcessSource binds libproc. It fails, with an error wrapping
// ErrUnsupported, when libproc cannot be bound.
func NewDarwinProcessSource(opts DarwinProcessOptions) (*DarwinProcessSource, error) {
	f, err := libprocLoad()
	if err != nil {
		return nil, fmt.Errorf("attribution: libproc: %w (%w)", ErrUnsupported, err)
	}
	return &DarwinProcessSource{c: newDarwinProcCache(&darwinProcOS{f: f}, opts)}, nil
}

// Process implements ProcessSource. It fails with ErrNotFound when the
// process does not exist, ErrPermission when the sensor may not read it.
// Fields the OS refuses (the arguments and directory of another user's
// process when not root) are left empty.
func (s *DarwinProcessSource) Process(pid int32) (*Process, error) {
	return s.c.process(pid)
}

// ExecutableUUID returns the LC_UUID of pid's main executable, the value
// PKTAP headers carry (pth_uuid, pth_e_uuid): a PKTAP record whose UUID
// differs from it was not made by the process now holding the pid.
func (s *DarwinProcessSource) ExecutableUUID(pid int32) ([16]byte, error) {
	return s.c.execUUID(pid)
}

// darwinProcOS implements darwinProcAPI with libproc, sysctl and getsid.
type darwinProcOS struct {
	f *libprocFuncs
}

func (o *darwinProcOS) pidinfo(pid int32, flavor int32, size int) ([]byte, error) {
	buf := make([]byte, size)
	n, err := o.f.procPIDInfo(pid, flavor, 0, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (o *darwinProcOS) bsdInfo(pid int32) ([]byte, error) {
	return o.pidinfo(pid, ProcPIDTBSDInfo, ProcBSDInfoSize)
}

func (o *darwinProcOS) vnodePathInfo(pid int32) ([]byte, error) {
	return o.pidinfo(pid, ProcPIDVnodePathInfo, ProcVnodePathInfoSize)
}

func (o *darwinProcOS) uniqInfo(pid int32) ([]byte, error) {
	return o.pidinfo(pid, ProcPIDUniqIdentifierInfo, ProcUniqIdentifierInfoSize)
}

func (o *darwinProcOS) path(pid int32) (string, error) {
	return o.f.procString(o.f.pidpath, pid, ProcPIDPathInfoMaxSize)
}

func (o *darwinProcOS) procName(pid int32) (string, error) {
	return o.f.procString(o.f.name, pid, 2*MaxComLen+1)
}

func (o *darwinProcOS) procArgs2(pid int32) ([]byte, error) {
	b, err := unix.SysctlRaw("kern.procargs2", int(pid))
	if err != nil {
		// xnu answers EINVAL for another user's process (and for a
		// zombie): sysctl_procargsx.
		if err == syscall.EINVAL || err == syscall.EPERM {
			return nil, libprocErrno(syscall.EPERM)
		}
		return nil, err
	}
	return b, nil
}

func (o *darwinProcOS) sessionID(pid int32) (int32, error) {
	sid, err := unix.Getsid(int(pid))
	return int32(sid), err
}

func (o *darwinProcOS) userName(uid uint32) (string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", err
	}
	return u.Username, nil
}
