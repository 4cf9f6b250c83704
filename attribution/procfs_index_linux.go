// This file is the inode → process index of the Linux socket table: which
// process holds which socket inode, learned from root/PID/fd and kept
// incrementally (see ProcTable).

package attribution

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procPIDState is what the index knows of one process's fd table.
type procPIDState struct {
	sig   procFDSig
	socks map[int32]uint64 // fd → socket inode
}

// procFDSig identifies the state of a root/PID/fd directory without reading
// it: the proc inode of the directory (new for a new process behind a reused
// pid) and its size, which since Linux 6.2 is the number of open fds (0
// before, so older kernels rely on the rate-limited full walk).
type procFDSig struct {
	ino  uint64
	size int64
}

type procInodeOwner struct{ pid, fd int32 }

// ownerOf returns the pid holding the socket inode.
func (t *ProcTable) ownerOf(inode uint64, now time.Time) (int32, bool) {
	if o, ok := t.inodes[inode]; ok {
		if t.holds(o, inode) {
			return o.pid, true
		}
		delete(t.inodes, inode)
		if st := t.pids[o.pid]; st != nil {
			delete(st.socks, o.fd)
		}
	}
	if ts, ok := t.unowned[inode]; ok && now.Sub(ts) < t.rescanEvery {
		return 0, false
	}
	clear(t.want)
	t.want[inode] = struct{}{}
	full := t.rescan(t.want, now, false)
	if o, ok := t.inodes[inode]; ok {
		delete(t.unowned, inode)
		return o.pid, true
	}
	if full {
		t.expireUnowned(now)
		t.unowned[inode] = now
	}
	return 0, false
}

// holds confirms an index entry with one readlink.
func (t *ProcTable) holds(o procInodeOwner, inode uint64) bool {
	path := t.root + "/" + strconv.Itoa(int(o.pid)) + "/fd/" + strconv.Itoa(int(o.fd))
	n, err := unix.Readlink(path, t.linkBuf[:])
	if err != nil {
		return false
	}
	got, ok := procParseSocketLink(t.linkBuf[:n])
	return ok && got == inode
}

func (t *ProcTable) expireUnowned(now time.Time) {
	if len(t.unowned) < procMaxUnowned {
		return
	}
	for ino, ts := range t.unowned {
		if now.Sub(ts) >= t.rescanEvery {
			delete(t.unowned, ino)
		}
	}
	if len(t.unowned) >= procMaxUnowned {
		clear(t.unowned)
	}
}

// procProbeMax bounds the pids rescan probes, newest first, before it lists
// root: enough for the processes a busy host starts between two lookups.
const procProbeMax = 32

// procPIDMask covers every pid (PID_MAX_LIMIT is 1<<22): pid numbers wrap
// at pid_max, so recency is the distance below the last pid allocated,
// modulo the wrap.
const procPIDMask = 1<<22 - 1

// rescan reads fd tables until every inode of want is indexed (found ones
// are deleted from want). A flow is looked up on its first packet, and a
// short-lived client may close its socket a millisecond later: its fd table
// has to be read before those of the other processes. So rescan first
// probes the pids allocated since the last rescan, newest first, by number
// from the kernel's last allocated pid (root/loadavg), without listing
// root; then reads the fd tables of the processes new since the last
// rescan, then of those whose fd directory changed, then, if force or if
// the last full walk is MinRescanInterval old, of all the others. Within a
// phase the most recently allocated pids go first: after pid numbers
// wrapped, old processes have the highest pids. It reports whether it
// walked every process.
func (t *ProcTable) rescan(want map[uint64]struct{}, now time.Time, force bool) (full bool) {
	t.stats.Rescans++
	clear(t.probed)
	last, haveLast := t.lastPID()
	if haveLast {
		prev := t.lastProbed
		t.lastProbed = last
		if t.probe(want, last, prev); len(want) == 0 {
			return false
		}
	}
	names, err := procReadDirNames(t.root)
	if err != nil {
		return false
	}
	clear(t.listed)
	var fresh, known []int32
	for _, name := range names {
		n, ok := procParseDec(name, 31)
		if !ok || n == 0 {
			continue
		}
		pid := int32(n)
		t.listed[pid] = struct{}{}
		if !haveLast && pid > last {
			last = pid
		}
		if _, ok := t.pids[pid]; ok {
			known = append(known, pid)
		} else {
			fresh = append(fresh, pid)
		}
	}
	for pid := range t.pids {
		if _, ok := t.listed[pid]; !ok {
			t.forgetPID(pid)
		}
	}
	newest := func(a, b int32) int {
		return int(uint32(last-a)&procPIDMask) - int(uint32(last-b)&procPIDMask)
	}
	slices.SortFunc(fresh, newest)
	slices.SortFunc(known, newest)
	for _, pid := range fresh {
		if p, ok := t.probed[pid]; ok {
			// Read an instant ago, without a wanted inode.
			t.setPID(pid, p.sig, p.socks)
			continue
		}
		if t.scanPID(pid, want); len(want) == 0 {
			return false
		}
	}
	var same []int32
	for _, pid := range known {
		if p, ok := t.probed[pid]; ok {
			t.setPID(pid, p.sig, p.socks)
			continue
		}
		sig, _ := t.fdSig(pid) // zero when unreadable, as scanPID records it
		if sig == t.pids[pid].sig {
			same = append(same, pid)
			continue
		}
		if t.scanPID(pid, want); len(want) == 0 {
			return false
		}
	}
	if !force && now.Sub(t.lastFullWalk) < t.rescanEvery {
		return false
	}
	t.lastFullWalk = now
	t.stats.FullRescans++
	for _, pid := range same {
		if t.scanPID(pid, want); len(want) == 0 {
			return false
		}
	}
	return true
}

// probe reads the fd tables of the pids from last down to prev (excluded;
// at most procProbeMax of them), the processes and threads started since
// the last rescan. A pid that is a thread reads its process's fd table; an
// inode found there is indexed under the process (its Tgid). Tables that
// hold no wanted inode are kept in t.probed for the listing phases.
func (t *ProcTable) probe(want map[uint64]struct{}, last, prev int32) {
	for pid, n := last, 0; pid > 0 && pid != prev && n < procProbeMax; pid, n = pid-1, n+1 {
		sig, socks, ok := t.readFDTable(pid)
		if !ok {
			continue // not in use (an exited process or thread)
		}
		t.stats.ProbedPIDs++
		hit := false
		for _, ino := range socks {
			if _, ok := want[ino]; ok {
				delete(want, ino)
				hit = true
			}
		}
		if !hit {
			t.probed[pid] = procPIDState{sig: sig, socks: socks}
			continue
		}
		tgid, ok := t.tgid(pid)
		if !ok || tgid == pid {
			t.setPID(pid, sig, socks)
		} else {
			for fd, ino := range socks {
				if _, ok := t.inodes[ino]; !ok {
					t.inodes[ino] = procInodeOwner{pid: tgid, fd: fd}
				}
			}
		}
		if len(want) == 0 {
			return
		}
	}
}

// lastPID returns the last pid the kernel allocated in the pid namespace
// of root: the fifth field of root/loadavg ("0.00 0.01 0.05 1/123 4567").
func (t *ProcTable) lastPID() (int32, bool) {
	f, err := os.Open(t.root + "/loadavg")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [128]byte
	n, _ := f.Read(buf[:])
	var fields [5][]byte
	fs := procFields(buf[:n], fields[:0])
	if len(fs) != 5 {
		return 0, false
	}
	pid, ok := procParseDec(fs[4], 31)
	if !ok || pid == 0 {
		return 0, false
	}
	return int32(pid), true
}

// tgid returns the process of a pid that may be a thread, from the Tgid
// line of root/PID/status.
func (t *ProcTable) tgid(pid int32) (int32, bool) {
	f, err := os.Open(t.root + "/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [512]byte // Tgid is the fourth line
	n, _ := io.ReadFull(f, buf[:])
	const key = "\nTgid:"
	i := bytes.Index(buf[:n], []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(buf[i+len(key):n], " \t")
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	} else {
		return 0, false
	}
	v, ok := procParseDec(rest, 31)
	if !ok || v == 0 {
		return 0, false
	}
	return int32(v), true
}

func (t *ProcTable) fdSig(pid int32) (procFDSig, error) {
	var st unix.Stat_t
	if err := unix.Stat(t.root+"/"+strconv.Itoa(int(pid))+"/fd", &st); err != nil {
		return procFDSig{}, err
	}
	return procFDSig{ino: st.Ino, size: st.Size}, nil
}

// scanPID reads the fd table of pid into the index and deletes from want
// the inodes it holds. An fd table that cannot be read (the process just
// exited, or the sensor is not root) is recorded empty with a zero
// signature: it is read again when that changes, and forgotten when the
// pid leaves root.
func (t *ProcTable) scanPID(pid int32, want map[uint64]struct{}) {
	sig, socks, ok := t.readFDTable(pid)
	if !ok {
		t.stats.UnreadableFDTables++
		t.setPID(pid, procFDSig{}, nil)
		return
	}
	for _, ino := range socks {
		delete(want, ino)
	}
	t.setPID(pid, sig, socks)
}

// readFDTable reads the signature and the sockets (fd → inode) of pid's
// fd table.
func (t *ProcTable) readFDTable(pid int32) (procFDSig, map[int32]uint64, bool) {
	dir := t.root + "/" + strconv.Itoa(int(pid)) + "/fd"
	f, err := os.Open(dir)
	if err != nil {
		return procFDSig{}, nil, false
	}
	defer f.Close()
	var sig procFDSig
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			sig = procFDSig{ino: st.Ino, size: st.Size}
		}
	}
	names, err := f.Readdirnames(-1)
	if err != nil && len(names) == 0 {
		return procFDSig{}, nil, false
	}
	t.stats.ScannedPIDs++
	t.stats.ScannedFDs += uint64(len(names))
	dfd := int(f.Fd())
	socks := make(map[int32]uint64)
	for _, name := range names {
		fd, ok := procParseDec(name, 31)
		if !ok {
			continue
		}
		n, err := unix.Readlinkat(dfd, name, t.linkBuf[:])
		if err != nil {
			continue
		}
		if ino, ok := procParseSocketLink(t.linkBuf[:n]); ok {
			socks[int32(fd)] = ino
		}
	}
	return sig, socks, true
}

// setPID replaces what the index knows of pid's fd table.
func (t *ProcTable) setPID(pid int32, sig procFDSig, socks map[int32]uint64) {
	if old := t.pids[pid]; old != nil {
		for _, ino := range old.socks {
			if o, ok := t.inodes[ino]; ok && o.pid == pid {
				delete(t.inodes, ino)
			}
		}
	}
	for fd, ino := range socks {
		if _, ok := t.inodes[ino]; !ok {
			t.inodes[ino] = procInodeOwner{pid: pid, fd: fd}
		}
	}
	t.pids[pid] = &procPIDState{sig: sig, socks: socks}
}

func (t *ProcTable) forgetPID(pid int32) {
	old := t.pids[pid]
	if old == nil {
		return
	}
	for _, ino := range old.socks {
		if o, ok := t.inodes[ino]; ok && o.pid == pid {
			delete(t.inodes, ino)
		}
	}
	delete(t.pids, pid)
}

func procReadDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
