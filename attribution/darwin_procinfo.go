package attribution

// This file decodes what macOS says about a process: proc_pidinfo's
// struct proc_bsdinfo, proc_bsdshortinfo, proc_uniqidentifierinfo and
// proc_vnodepathinfo, and the kern.procargs2 sysctl. Untagged (the name
// does not end in _darwin) so it is tested everywhere; darwin_process.go
// makes the calls.
//
// Layouts: apple-oss-distributions/xnu@1031c584 bsd/sys/proc_info.h and
// bsd/sys/proc_info_private.h, offsets checked against a C compiler by
// testdata/darwin/proc_info_layout.c (TestProcInfoLayoutMatchesC).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sizes of the process structures.
const (
	// ProcBSDInfoSize is sizeof(struct proc_bsdinfo).
	ProcBSDInfoSize = 136
	// ProcBSDShortInfoSize is sizeof(struct proc_bsdshortinfo).
	ProcBSDShortInfoSize = 64
	// ProcUniqIdentifierInfoSize is sizeof(struct proc_uniqidentifierinfo),
	// which xnu static-asserts to be 56.
	ProcUniqIdentifierInfoSize = 56
	// ProcVnodePathInfoSize is sizeof(struct proc_vnodepathinfo): two
	// vnode_info_path (152 bytes of vnode_info, then MAXPATHLEN of path).
	ProcVnodePathInfoSize = 2352

	// ProcFlagSessionLeader is PROC_FLAG_SLEADER in pbi_flags.
	ProcFlagSessionLeader = 0x20
)

// struct proc_bsdinfo offsets.
const (
	bsdinfoOffFlags      = 0
	bsdinfoOffStatus     = 4
	bsdinfoOffPID        = 12
	bsdinfoOffPPID       = 16
	bsdinfoOffUID        = 20
	bsdinfoOffGID        = 24
	bsdinfoOffRUID       = 28
	bsdinfoOffComm       = 48 // char[MAXCOMLEN]
	bsdinfoOffName       = 64 // char[2*MAXCOMLEN]
	bsdinfoOffPGID       = 100
	bsdinfoOffStartSec   = 120 // uint64 pbi_start_tvsec
	bsdinfoOffStartUsec  = 128 // uint64 pbi_start_tvusec
	bsdshortOffPID       = 0
	bsdshortOffPPID      = 4
	bsdshortOffPGID      = 8
	bsdshortOffComm      = 16
	bsdshortOffUID       = 36
	uniqidOffUUID        = 0
	uniqidOffUniqueID    = 16
	uniqidOffPUniqueID   = 24
	uniqidOffIDVersion   = 32
	vnodepathOffCdirPath = 152 // pvi_cdir.vip_path
	darwinMaxPathLen     = 1024
)

// BSDInfo is the part of struct proc_bsdinfo (PROC_PIDTBSDINFO) the
// sensor uses.
type BSDInfo struct {
	Flags  uint32 // pbi_flags (ProcFlagSessionLeader…)
	Status uint32 // pbi_status (p_stat: SRUN, SZOMB…)
	PID    int32
	PPID   int32
	UID    uint32 // effective uid
	GID    uint32
	RUID   uint32
	PGID   int32
	// Comm is pbi_comm: the executable's name cut to 15 characters.
	Comm string
	// Name is pbi_name: the process name, up to 31 characters, empty when
	// none is registered. lsof prefers it to Comm.
	Name string
	// StartTime is pbi_start_tvsec/usec.
	StartTime time.Time
	// StartSec and StartUsec are the raw start time: with PID they
	// identify the process (PIDs are reused).
	StartSec, StartUsec uint64
}

// DecodeBSDInfo decodes a struct proc_bsdinfo; b must hold at least
// ProcBSDInfoSize bytes (a short buffer wraps io.ErrUnexpectedEOF).
func DecodeBSDInfo(b []byte) (BSDInfo, error) {
	var bi BSDInfo
	if len(b) < ProcBSDInfoSize {
		return bi, fmt.Errorf("attribution: proc_bsdinfo is %d bytes, want %d: %w", len(b), ProcBSDInfoSize, io.ErrUnexpectedEOF)
	}
	var errs []error
	u32 := func(off int) uint32 {
		v, err := sockinfoU32(b, off)
		errs = append(errs, err)
		return v
	}
	u64 := func(off int) uint64 {
		v, err := sockinfoU64(b, off)
		errs = append(errs, err)
		return v
	}
	str := func(off, n int) string {
		v, err := sockinfoCString(b, off, n)
		errs = append(errs, err)
		return v
	}
	bi.Flags = u32(bsdinfoOffFlags)
	bi.Status = u32(bsdinfoOffStatus)
	bi.PID = int32(u32(bsdinfoOffPID))
	bi.PPID = int32(u32(bsdinfoOffPPID))
	bi.UID = u32(bsdinfoOffUID)
	bi.GID = u32(bsdinfoOffGID)
	bi.RUID = u32(bsdinfoOffRUID)
	bi.PGID = int32(u32(bsdinfoOffPGID))
	bi.Comm = str(bsdinfoOffComm, MaxComLen)
	bi.Name = str(bsdinfoOffName, 2*MaxComLen)
	bi.StartSec = u64(bsdinfoOffStartSec)
	bi.StartUsec = u64(bsdinfoOffStartUsec)
	if err := errors.Join(errs...); err != nil {
		return BSDInfo{}, err
	}
	if bi.PID < 0 {
		return BSDInfo{}, fmt.Errorf("attribution: proc_bsdinfo pid %d", bi.PID)
	}
	if bi.StartUsec >= 1e6 || bi.StartSec > 1<<40 {
		return BSDInfo{}, fmt.Errorf("attribution: proc_bsdinfo start time %d.%06d out of range", bi.StartSec, bi.StartUsec)
	}
	bi.StartTime = time.Unix(int64(bi.StartSec), int64(bi.StartUsec)*1000).UTC()
	return bi, nil
}

// BSDShortInfo is the part of struct proc_bsdshortinfo
// (PROC_PIDT_SHORTBSDINFO) the sensor uses.
type BSDShortInfo struct {
	PID, PPID, PGID int32
	Comm            string
	UID             uint32
}

// DecodeBSDShortInfo decodes a struct proc_bsdshortinfo; b must hold at
// least ProcBSDShortInfoSize bytes.
func DecodeBSDShortInfo(b []byte) (BSDShortInfo, error) {
	var si BSDShortInfo
	if len(b) < ProcBSDShortInfoSize {
		return si, fmt.Errorf("attribution: proc_bsdshortinfo is %d bytes, want %d: %w", len(b), ProcBSDShortInfoSize, io.ErrUnexpectedEOF)
	}
	pid, err1 := sockinfoI32(b, bsdshortOffPID)
	ppid, err2 := sockinfoI32(b, bsdshortOffPPID)
	pgid, err3 := sockinfoI32(b, bsdshortOffPGID)
	comm, err4 := sockinfoCString(b, bsdshortOffComm, MaxComLen)
	uid, err5 := sockinfoU32(b, bsdshortOffUID)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return si, err
	}
	return BSDShortInfo{PID: pid, PPID: ppid, PGID: pgid, Comm: comm, UID: uid}, nil
}

// UniqIdentifierInfo is struct proc_uniqidentifierinfo
// (PROC_PIDUNIQIDENTIFIERINFO).
type UniqIdentifierInfo struct {
	// UUID is the LC_UUID of the main executable: the value PKTAP carries
	// as pth_uuid / pth_e_uuid.
	UUID [16]byte
	// UniqueID is a per-boot 64-bit process id that is never reused.
	UniqueID       uint64
	ParentUniqueID uint64
	// IDVersion is the pid version, which changes at every exec.
	IDVersion int32
}

// DecodeUniqIdentifierInfo decodes a struct proc_uniqidentifierinfo; b
// must hold at least the 36 bytes up to p_idversion (the kernel returns 56).
func DecodeUniqIdentifierInfo(b []byte) (UniqIdentifierInfo, error) {
	var u UniqIdentifierInfo
	if len(b) < uniqidOffIDVersion+4 {
		return u, fmt.Errorf("attribution: proc_uniqidentifierinfo is %d bytes, want %d: %w", len(b), ProcUniqIdentifierInfoSize, io.ErrUnexpectedEOF)
	}
	copy(u.UUID[:], b[uniqidOffUUID:uniqidOffUUID+16])
	id, err1 := sockinfoU64(b, uniqidOffUniqueID)
	pid, err2 := sockinfoU64(b, uniqidOffPUniqueID)
	ver, err3 := sockinfoI32(b, uniqidOffIDVersion)
	if err := errors.Join(err1, err2, err3); err != nil {
		return UniqIdentifierInfo{}, err
	}
	u.UniqueID, u.ParentUniqueID, u.IDVersion = id, pid, ver
	return u, nil
}

// DecodeVnodePathCWD returns the current directory from a struct
// proc_vnodepathinfo (PROC_PIDVNODEPATHINFO): pvi_cdir.vip_path, a
// MAXPATHLEN field at offset 152.
func DecodeVnodePathCWD(b []byte) (string, error) {
	return sockinfoCString(b, vnodepathOffCdirPath, darwinMaxPathLen)
}

// ParseProcArgs2 decodes the kern.procargs2 sysctl (KERN_PROCARGS2) of a
// process: a native int32 argc, the executable path as exec saw it,
// NUL-terminated, NUL padding, then argc NUL-terminated arguments (argv[0]
// first), then the environment, which is not returned. Source: xnu
// bsd/kern/kern_sysctl.c sysctl_procargsx ("Put processes argc as the
// first word in the copyout buffer") and sysctl_procargs_no_read (argc 1,
// exec path, one NUL, argv[0]); ps(1) getproclline reads it the same way.
//
// An empty argv[0] cannot be told from the padding; like ps, this skips
// it. When the buffer ends before argc arguments, the ones found are
// returned with an error that wraps io.ErrUnexpectedEOF.
func ParseProcArgs2(b []byte) (exe string, args []string, err error) {
	argc, err := sockinfoI32(b, 0)
	if err != nil {
		return "", nil, fmt.Errorf("attribution: procargs2 argc: %w", err)
	}
	if argc < 0 {
		return "", nil, fmt.Errorf("attribution: procargs2 argc %d", argc)
	}
	rest := b[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return string(rest), nil, fmt.Errorf("attribution: procargs2 executable path has no NUL: %w", io.ErrUnexpectedEOF)
	}
	exe, rest = string(rest[:i]), rest[i:]
	for len(rest) > 0 && rest[0] == 0 {
		rest = rest[1:]
	}
	// Every argument takes at least one byte, so argc cannot make this
	// allocate more than the input.
	n := int(argc)
	if n > len(rest) {
		n = len(rest)
	}
	args = make([]string, 0, n)
	for len(args) < int(argc) {
		if len(rest) == 0 {
			return exe, args, fmt.Errorf("attribution: procargs2 has %d of %d arguments: %w", len(args), argc, io.ErrUnexpectedEOF)
		}
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			args = append(args, string(rest))
			return exe, args, fmt.Errorf("attribution: procargs2 argument %d has no NUL: %w", len(args)-1, io.ErrUnexpectedEOF)
		}
		args = append(args, string(rest[:j]))
		rest = rest[j+1:]
	}
	return exe, args, nil
}
