package attribution

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FanotifyOptions configures NewFanotify (Linux only).
type FanotifyOptions struct {
	// Paths are mount points or directories to watch. The whole mount
	// containing each path is marked (FAN_MARK_MOUNT), or the whole
	// filesystem when Filesystem is set (FAN_MARK_FILESYSTEM).
	Paths []string
	// Filesystem marks the filesystem containing each path instead of its
	// mount (sees the file through every bind mount).
	Filesystem bool
	// QueueSize bounds the Events channel; 0 means 8192. When the channel
	// is full, records are dropped and counted (FanotifyStats.Dropped).
	QueueSize int
	// Hash says which files to hash (FileAccess.SHA256) on an open for
	// reading or a close after writing; nil hashes none. It runs on the
	// event reader for every such event: it must be fast and must not
	// block (a path-class match).
	Hash func(path string) bool
	// MaxHashBytes is the largest file hashed; 0 means DefaultMaxHashBytes.
	// Larger files get their Size but no hash (FanotifyStats.HashTooLarge).
	MaxHashBytes int64
}

// DefaultMaxHashBytes is FanotifyOptions.MaxHashBytes when unset: bigger
// than documents and key files, small enough that one hash takes tens of
// milliseconds.
const DefaultMaxHashBytes = 64 << 20

// hashQueueLen bounds the files waiting for the hash worker (each holds
// its event's file descriptor); when full, records go out without a hash
// (FanotifyStats.HashBusy).
const hashQueueLen = 32

// FanotifyStats are the counters of a Fanotify source.
type FanotifyStats struct {
	// Events is the number of FileAccess records delivered on Events.
	Events uint64
	// Dropped is the number of records dropped because Events was full.
	Dropped uint64
	// Overflows is the number of FAN_Q_OVERFLOW events: the kernel queue
	// was full and it dropped events itself.
	Overflows uint64
	// Errors counts failed reads, malformed buffers and unresolvable fds.
	Errors uint64
	// Self is the number of kernel events caused by this process, skipped.
	Self uint64
	// Hashed is the number of files hashed (one per kernel event, however
	// many records it gave).
	Hashed uint64
	// HashTooLarge counts files Hash selected but larger than MaxHashBytes
	// (their records carry Size and no hash).
	HashTooLarge uint64
	// HashBusy counts files not hashed because the hash worker's queue was
	// full.
	HashBusy uint64
	// HashErrors counts files whose size or content could not be read.
	HashErrors uint64
}

// fanotify ABI constants (include/uapi/linux/fanotify.h), repeated here so
// the parser builds on every platform.
const (
	fanEventMetadataLen = 24
	fanMetadataVersion  = 3

	fanOpen       = 0x20
	fanCloseWrite = 0x8
	fanOpenExec   = 0x1000
	fanQOverflow  = 0x4000

	fanNoFD = -1
)

// fanotifyMeta is one struct fanotify_event_metadata.
type fanotifyMeta struct {
	Mask uint64
	FD   int32
	PID  int32
}

var errFanotifyShort = errors.New("attribution: fanotify: truncated event")

// parseFanotifyEvents calls fn for each struct fanotify_event_metadata in
// buf (a buffer returned by read(2) on a fanotify fd, native byte order):
//
//	u32 event_len; u8 vers; u8 reserved; u16 metadata_len;
//	u64 mask; s32 fd; s32 pid;
//
// Info records after the metadata (metadata_len..event_len) are skipped.
// It returns the number of bytes consumed; on a malformed event it stops
// there and returns an error (fn has been called for the events before).
func parseFanotifyEvents(buf []byte, fn func(fanotifyMeta)) (int, error) {
	ne := binary.NativeEndian
	off := 0
	for off < len(buf) {
		b := buf[off:]
		if len(b) < fanEventMetadataLen {
			return off, errFanotifyShort
		}
		evLen := ne.Uint32(b[0:4])
		vers := b[4]
		metaLen := ne.Uint16(b[6:8])
		if vers != fanMetadataVersion {
			return off, fmt.Errorf("attribution: fanotify: metadata version %d, want %d", vers, fanMetadataVersion)
		}
		if metaLen < fanEventMetadataLen {
			return off, fmt.Errorf("attribution: fanotify: metadata_len %d < %d", metaLen, fanEventMetadataLen)
		}
		if evLen < uint32(metaLen) {
			return off, fmt.Errorf("attribution: fanotify: event_len %d < metadata_len %d", evLen, metaLen)
		}
		if uint64(evLen) > uint64(len(b)) {
			return off, errFanotifyShort
		}
		fn(fanotifyMeta{
			Mask: ne.Uint64(b[8:16]),
			FD:   int32(ne.Uint32(b[16:20])),
			PID:  int32(ne.Uint32(b[20:24])),
		})
		off += int(evLen)
	}
	return off, nil
}

// fanotifyAccesses maps an event mask to the access kinds it reports, in
// order. FAN_OPEN_EXEC comes with FAN_OPEN on exec: it is reported once,
// as AccessExec. A plain FAN_OPEN is AccessRead: the event's fd carries
// the listener's open flags, not the opener's, so a write-open is also
// reported as read (its FAN_CLOSE_WRITE then says AccessWrite).
func fanotifyAccesses(mask uint64) []AccessKind {
	var ks []AccessKind
	switch {
	case mask&fanOpenExec != 0:
		ks = append(ks, AccessExec)
	case mask&fanOpen != 0:
		ks = append(ks, AccessRead)
	}
	if mask&fanCloseWrite != 0 {
		ks = append(ks, AccessWrite)
	}
	return ks
}
