package attribution

import "time"

// AccessKind says what a process did to a file.
type AccessKind uint8

// Access kinds. The zero value is AccessUnknown.
const (
	AccessUnknown AccessKind = iota
	// AccessRead: opened for reading only (FREAD without FWRITE).
	AccessRead
	// AccessWrite: opened for writing only, or written to.
	AccessWrite
	// AccessReadWrite: opened for reading and writing.
	AccessReadWrite
	// AccessRenameSource: the file was renamed away from Path; DestPath,
	// when known, is where it went.
	AccessRenameSource
	// AccessRenameDest: a file was renamed onto Path (for sources that
	// report the destination side on its own).
	AccessRenameDest
	// AccessExec: the file was executed.
	AccessExec
	// AccessClose: the file was closed; FileAccess.Modified says whether
	// it was written to while open.
	AccessClose
)

// String returns a short lower-case name ("read", "rename_source"…).
func (k AccessKind) String() string {
	switch k {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessReadWrite:
		return "readwrite"
	case AccessRenameSource:
		return "rename_source"
	case AccessRenameDest:
		return "rename_dest"
	case AccessExec:
		return "exec"
	case AccessClose:
		return "close"
	}
	return "unknown"
}

// ParseAccessKind is the inverse of AccessKind.String; ok is false for a
// name it does not know.
func ParseAccessKind(s string) (k AccessKind, ok bool) {
	for k := AccessRead; k <= AccessClose; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return AccessUnknown, s == "unknown"
}

// Sources of file-access and process records.
const (
	SourceEslogger = "eslogger"
	SourceFanotify = "fanotify"
	SourceJournal  = "journal"
)

// FileAccess is one access by one process to one file. The process is
// identified by (PID, PIDVersion) on macOS (the audit token's pid and
// pidversion); PIDVersion is 0 where the OS has no such counter.
type FileAccess struct {
	Time       time.Time
	PID        int32
	PIDVersion int32
	Path       string
	// DestPath is the rename destination (AccessRenameSource), "" otherwise.
	DestPath string
	Access   AccessKind
	// Modified is set for AccessClose when the file was modified.
	Modified bool
	// Result is 0 when the operation succeeded, else an errno or the ES
	// result (eslogger only reports NOTIFY events, whose result is 0).
	Result int
	// Source is where the record came from: SourceEslogger, SourceFanotify
	// or SourceJournal.
	Source string
	// Size is the file's size in bytes when the access was seen (fstat of
	// the event's file descriptor). 0 means empty or unknown: sources that
	// cannot see the file (eslogger) leave it 0, and an empty file has
	// nothing worth matching.
	Size int64
	// SHA256 is the content's SHA-256 when Hashed: read from the file the
	// process had open, not from the path, which may have been replaced
	// since. Only files the source was asked to hash and not larger than
	// its limit are (FanotifyOptions.Hash, MaxHashBytes).
	SHA256 [32]byte
	Hashed bool
	// Process describes the process as the source saw it at the access
	// (eslogger's event process: executable, parent, group, signature);
	// nil when the source does not describe it (fanotify gives a pid only).
	Process *Process
}

// Process event kinds.
const (
	ProcExec = "exec"
	ProcFork = "fork"
	ProcExit = "exit"
)

// ProcessEvent is a process starting (fork), changing image (exec) or
// ending (exit).
//
//   - exec: PID/PIDVersion are the new image's (macOS gives the process a
//     new pidversion on exec); PrevPIDVersion is the image that called
//     exec. Process describes the new image.
//   - fork: PID/PIDVersion are the parent's; ChildPID/ChildPIDVersion
//     the new process's, which Process describes.
//   - exit: PID/PIDVersion and Process are the exiting process.
//
// The code-signing fields (SigningID…CodesigningFlags) and the
// responsible process describe the same process as Process.
type ProcessEvent struct {
	Time       time.Time
	Kind       string // ProcExec, ProcFork or ProcExit
	PID        int32
	PPID       int32
	PIDVersion int32
	// PrevPIDVersion is, for exec, the pidversion before the exec.
	PrevPIDVersion int32
	Process        *Process
	SigningID      string
	TeamID         string // "" for platform and ad-hoc signed code
	PlatformBinary bool
	// CodesigningFlags are the CS_* flags (xnu cs_blobs.h).
	CodesigningFlags uint32
	// Script is, for exec of an interpreter script, the script's path.
	Script string
	// ResponsiblePID/Version identify the responsible process (the app
	// of a helper or XPC service; may be the process itself).
	ResponsiblePID        int32
	ResponsiblePIDVersion int32
	// ExitStatus is, for exit, the raw wait(2) status.
	ExitStatus int
	// ChildPID/ChildPIDVersion identify, for fork, the new process.
	ChildPID        int32
	ChildPIDVersion int32
	Source          string
}
