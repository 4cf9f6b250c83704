//go:build darwin

package attribution

// libproc bindings without cgo (github.com/ebitengine/purego, as gopsutil
// v4 binds proc_pidinfo and proc_pidpath) and the macOS socket table built
// on them. gopsutil itself does not bind proc_listpids or proc_pidfdinfo
// and shells out to lsof for connections (macos-formats.md §3.3).
//
// The calls go through purego.SyscallN rather than RegisterLibFunc
// functions: its darwin trampoline captures errno right after the call,
// which the permission fallback needs (EPERM vs a process that exited),
// and Dlsym reports a missing symbol as an error where RegisterLibFunc
// panics. errno is cleared before each call, on a locked OS thread,
// because the libproc wrappers return 0 both for "no data" and for an
// error.

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ebitengine/purego"
)

// libprocLibraries are tried in order; libproc's functions are exported by
// libSystem (re-exported from libsystem_kernel).
var libprocLibraries = []string{
	"/usr/lib/libSystem.B.dylib",
	"/usr/lib/system/libsystem_kernel.dylib",
}

type libprocFuncs struct {
	listpids  uintptr // int proc_listpids(uint32_t type, uint32_t typeinfo, void *buffer, int buffersize)
	pidinfo   uintptr // int proc_pidinfo(int pid, int flavor, uint64_t arg, void *buffer, int buffersize)
	pidfdinfo uintptr // int proc_pidfdinfo(int pid, int fd, int flavor, void *buffer, int buffersize)
	pidpath   uintptr // int proc_pidpath(int pid, void *buffer, uint32_t buffersize)
	name      uintptr // int proc_name(int pid, void *buffer, uint32_t buffersize)
	errnoLoc  func() *int32
}

var libprocLoad = sync.OnceValues(func() (*libprocFuncs, error) {
	var (
		h    uintptr
		errs []error
	)
	for _, lib := range libprocLibraries {
		var err error
		if h, err = purego.Dlopen(lib, purego.RTLD_LAZY|purego.RTLD_GLOBAL); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if h == 0 {
		return nil, fmt.Errorf("dlopen: %w", errors.Join(errs...))
	}
	f := &libprocFuncs{}
	for _, s := range []struct {
		name string
		p    *uintptr
	}{
		{"proc_listpids", &f.listpids},
		{"proc_pidinfo", &f.pidinfo},
		{"proc_pidfdinfo", &f.pidfdinfo},
		{"proc_pidpath", &f.pidpath},
		{"proc_name", &f.name},
	} {
		p, err := purego.Dlsym(h, s.name)
		if err != nil {
			return nil, fmt.Errorf("dlsym %s: %w", s.name, err)
		}
		*s.p = p
	}
	errnoSym, err := purego.Dlsym(h, "__error")
	if err != nil {
		return nil, fmt.Errorf("dlsym __error: %w", err)
	}
	purego.RegisterFunc(&f.errnoLoc, errnoSym)
	return f, nil
})

// The call helpers below convert the buffer pointer inside the
// purego.SyscallN argument list: SyscallN is go:uintptrescapes, so the
// buffer is kept alive and in place for the call.

func (f *libprocFuncs) clearErrno() {
	if p := f.errnoLoc(); p != nil {
		*p = 0
	}
}

func (f *libprocFuncs) procListPIDs(typ, typeinfo uint32, buf []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f.clearErrno()
	r1, _, e := purego.SyscallN(f.listpids, uintptr(typ), uintptr(typeinfo),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
	return libprocResult(r1, e)
}

func (f *libprocFuncs) procPIDInfo(pid int32, flavor int32, arg uint64, buf []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f.clearErrno()
	r1, _, e := purego.SyscallN(f.pidinfo, uintptr(pid), uintptr(flavor), uintptr(arg),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
	return libprocResult(r1, e)
}

func (f *libprocFuncs) procPIDFDInfo(pid, fd, flavor int32, buf []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f.clearErrno()
	r1, _, e := purego.SyscallN(f.pidfdinfo, uintptr(pid), uintptr(fd), uintptr(flavor),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
	return libprocResult(r1, e)
}

// procString calls proc_pidpath or proc_name.
func (f *libprocFuncs) procString(fn uintptr, pid int32, size int) (string, error) {
	buf := make([]byte, size)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f.clearErrno()
	r1, _, e := purego.SyscallN(fn, uintptr(pid),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
	n, err := libprocResult(r1, e)
	if err != nil {
		return "", err
	}
	s, err := sockinfoCString(buf, 0, min(n, len(buf)))
	if err != nil {
		return "", err
	}
	return s, nil
}

// libprocResult reads a libproc wrapper's int result: a byte count, or 0
// (or -1) with errno set on error. Only the low 32 bits of r1 are the C
// int, and only the low 32 bits of errno are errno: purego's darwin
// trampoline loads 8 bytes from the int that __error() points to.
func libprocResult(r1, errno uintptr) (int, error) {
	n := int32(r1)
	if n > 0 {
		return int(n), nil
	}
	if e := syscall.Errno(uint32(errno)); e != 0 {
		return 0, libprocErrno(e)
	}
	return 0, nil
}

func libprocErrno(e syscall.Errno) error {
	switch e {
	case syscall.EPERM, syscall.EACCES:
		return fmt.Errorf("%w (%w)", ErrPermission, e)
	case syscall.ESRCH, syscall.EBADF:
		return fmt.Errorf("%w (%w)", ErrNotFound, e)
	}
	return e
}

// libprocDarwinAPI implements libprocAPI. Its buffers are reused: a
// returned slice is valid until the next call (the scanner decodes it
// before).
type libprocDarwinAPI struct {
	f      *libprocFuncs
	pidBuf []byte
	fdBuf  []byte
	short  [ProcBSDShortInfoSize]byte
}

func (a *libprocDarwinAPI) listPIDs() ([]byte, error) {
	n, err := a.f.procListPIDs(ProcAllPIDs, 0, nil)
	if err != nil {
		return nil, err
	}
	for try := 0; try < 4; try++ {
		size := n + n/4 + 256 // room for processes started since
		if cap(a.pidBuf) < size {
			a.pidBuf = make([]byte, size)
		}
		buf := a.pidBuf[:size]
		got, err := a.f.procListPIDs(ProcAllPIDs, 0, buf)
		if err != nil {
			return nil, err
		}
		if got < len(buf) {
			return buf[:got], nil
		}
		n = 2 * got // filled: there may be more
	}
	return a.pidBuf, nil
}

func (a *libprocDarwinAPI) listFDs(pid int32) ([]byte, error) {
	n, err := a.f.procPIDInfo(pid, ProcPIDListFDs, 0, nil)
	if err != nil {
		return nil, err
	}
	for try := 0; try < 3; try++ {
		size := n + 32*ProcFDInfoSize
		if cap(a.fdBuf) < size {
			a.fdBuf = make([]byte, size)
		}
		buf := a.fdBuf[:size]
		got, err := a.f.procPIDInfo(pid, ProcPIDListFDs, 0, buf)
		if err != nil {
			return nil, err
		}
		if got < len(buf) {
			return buf[:got], nil
		}
		n = 2 * got
	}
	return a.fdBuf, nil
}

func (a *libprocDarwinAPI) socketInfo(pid, fd int32, buf []byte) (int, error) {
	return a.f.procPIDFDInfo(pid, fd, ProcPIDFDSocketInfo, buf)
}

func (a *libprocDarwinAPI) shortInfo(pid int32) ([]byte, error) {
	n, err := a.f.procPIDInfo(pid, ProcPIDTShortBSDInfo, 0, a.short[:])
	if err != nil {
		return nil, err
	}
	return a.short[:n], nil
}

// LibprocTable is the macOS SocketTable: libproc socket enumeration
// (proc_listpids → proc_pidinfo(PROC_PIDLISTFDS) →
// proc_pidfdinfo(PROC_PIDFDSOCKETINFO)) with an incremental cache, and
// lsof as a fallback for what libproc may not read. The scan and cache
// rules are in libproc_scan.go.
type LibprocTable struct {
	s *libprocScanner
}

var _ SocketTable = (*LibprocTable)(nil)

// NewLibprocTable binds libproc and lists the processes once. It fails,
// with an error wrapping ErrUnsupported, when libproc cannot be bound
// (then NewLsofTable is the way left). Unless opts.Fallback is set or
// opts.NoLsofFallback, misses that libproc could not settle (processes it
// was not allowed to read) are passed to an LsofTable, when lsof is found.
func NewLibprocTable(opts LibprocOptions) (*LibprocTable, error) {
	f, err := libprocLoad()
	if err != nil {
		return nil, fmt.Errorf("attribution: libproc: %w (%w)", ErrUnsupported, err)
	}
	api := &libprocDarwinAPI{f: f}
	if _, err := api.listPIDs(); err != nil {
		return nil, fmt.Errorf("attribution: libproc: proc_listpids: %w", err)
	}
	if opts.Fallback == nil && !opts.NoLsofFallback {
		lsofOpts := opts.Lsof
		if lsofOpts.Logf == nil {
			lsofOpts.Logf = opts.Logf
		}
		if lt, err := NewLsofTable(lsofOpts); err == nil {
			opts.Fallback = lt
		} else if opts.Logf != nil {
			opts.Logf("attribution: no lsof fallback: %v", err)
		}
	}
	return &LibprocTable{s: newLibprocScanner(api, opts)}, nil
}

// Lookup implements SocketTable.
func (t *LibprocTable) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	return t.s.Lookup(proto, local, remote)
}

// Refresh scans every process now (a full scan); call it at start so the
// sockets open then are known before the first lookup.
func (t *LibprocTable) Refresh() error { return t.s.Refresh() }

// Stats returns the table's counters.
func (t *LibprocTable) Stats() LibprocStats { return t.s.Stats() }

// Close implements SocketTable: it closes the fallback table.
func (t *LibprocTable) Close() error { return t.s.Close() }
