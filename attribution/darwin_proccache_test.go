package attribution

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

type darwinFakeProc struct {
	bsd       []byte
	exe       string
	args      []byte
	cwd       string
	uuid      [16]byte
	idVersion int32
	sid       int32
	denied    bool // path, args, cwd refused (another user's process)
}

type darwinFakeOS struct {
	mu        sync.Mutex
	procs     map[int32]*darwinFakeProc
	users     map[uint32]string
	describes int // path calls: one per description
	userCalls int
}

func (o *darwinFakeOS) get(pid int32) (*darwinFakeProc, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.procs[pid]
	if !ok {
		return nil, fmt.Errorf("%w (no such process)", ErrNotFound)
	}
	return p, nil
}

func (o *darwinFakeOS) bsdInfo(pid int32) ([]byte, error) {
	p, err := o.get(pid)
	if err != nil {
		return nil, err
	}
	return p.bsd, nil
}

func (o *darwinFakeOS) path(pid int32) (string, error) {
	o.mu.Lock()
	o.describes++
	o.mu.Unlock()
	p, err := o.get(pid)
	if err != nil {
		return "", err
	}
	if p.denied {
		return "", ErrPermission
	}
	return p.exe, nil
}

func (o *darwinFakeOS) procName(pid int32) (string, error) { return "", ErrPermission }

func (o *darwinFakeOS) procArgs2(pid int32) ([]byte, error) {
	p, err := o.get(pid)
	if err != nil {
		return nil, err
	}
	if p.denied {
		return nil, ErrPermission
	}
	return p.args, nil
}

func (o *darwinFakeOS) vnodePathInfo(pid int32) ([]byte, error) {
	p, err := o.get(pid)
	if err != nil {
		return nil, err
	}
	if p.denied {
		return nil, ErrPermission
	}
	b := make([]byte, ProcVnodePathInfoSize)
	copy(b[152:], p.cwd)
	return b, nil
}

func (o *darwinFakeOS) uniqInfo(pid int32) ([]byte, error) {
	p, err := o.get(pid)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 56)
	copy(b, p.uuid[:])
	binary.LittleEndian.PutUint32(b[32:], uint32(p.idVersion))
	return b, nil
}

func (o *darwinFakeOS) sessionID(pid int32) (int32, error) {
	p, err := o.get(pid)
	if err != nil {
		return 0, err
	}
	return p.sid, nil
}

func (o *darwinFakeOS) userName(uid uint32) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.userCalls++
	if n, ok := o.users[uid]; ok {
		return n, nil
	}
	return "", errors.New("unknown user")
}

func TestDarwinProcCache(t *testing.T) {
	chrome := "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/1/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"
	osx := &darwinFakeOS{
		procs: map[int32]*darwinFakeProc{
			2227: {
				bsd:  darwinBSDInfoFixture(2227, 2200, 501, "Google Chrome H", "", 1764220000, 500000),
				exe:  chrome,
				args: darwinProcArgs2Fixture(2, chrome, 3, []string{chrome, "--type=utility"}, []string{"HOME=/Users/alice"}),
				cwd:  "/", uuid: [16]byte{1, 2, 3}, idVersion: 7, sid: 1,
			},
			8812: {
				bsd: darwinBSDInfoFixture(8812, 8800, 0, "python3.12", "", 1764220100, 0),
				exe: "/opt/homebrew/bin/python3.12", denied: true, sid: 8800,
			},
		},
		users: map[uint32]string{501: "alice", 0: "root"},
	}
	c := newDarwinProcCache(osx, DarwinProcessOptions{})
	p, err := c.process(2227)
	if err != nil {
		t.Fatal(err)
	}
	want := &Process{
		PID: 2227, PPID: 2200, Name: "Google Chrome Helper", Executable: chrome,
		Args: []string{chrome, "--type=utility"}, CWD: "/",
		StartTime: time.Unix(1764220000, 500000000).UTC(), UID: 501, User: "alice", SessionLeader: 1, PGID: 2227,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	// Cached: the same (pid, start time, pid version) is not described again,
	// and the caller's copy is its own.
	p.Args[0] = "changed"
	p2, err := c.process(2227)
	if err != nil || p2.Args[0] != chrome || osx.describes != 1 {
		t.Fatalf("second lookup: %+v, %v, %d descriptions", p2, err, osx.describes)
	}

	// Another user's process without root: only what proc_bsdinfo says.
	q, err := c.process(8812)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "python3.12" || q.Executable != "" || q.Args != nil || q.CWD != "" || q.User != "root" || q.SessionLeader != 8800 {
		t.Errorf("denied process: %+v", q)
	}

	// The pid is reused by another process (new start time): described anew.
	osx.procs[2227].bsd = darwinBSDInfoFixture(2227, 1, 501, "zip", "", 1764229999, 1)
	osx.procs[2227].exe = "/usr/bin/zip"
	osx.procs[2227].args = darwinProcArgs2Fixture(3, "/usr/bin/zip", 0, []string{"zip", "-r", "docs.zip"}, nil)
	r, err := c.process(2227)
	if err != nil || r.Name != "zip" || len(r.Args) != 3 || osx.describes != 3 {
		t.Fatalf("reused pid: %+v, %v, %d descriptions", r, err, osx.describes)
	}
	// exec in place keeps pid and start time but changes the pid version.
	osx.procs[2227].idVersion++
	osx.procs[2227].exe = "/usr/bin/curl"
	if r, err := c.process(2227); err != nil || r.Executable != "/usr/bin/curl" || osx.describes != 4 {
		t.Fatalf("exec: %+v, %v", r, err)
	}
	if len(c.procs) != 2 || len(c.byPID) != 2 {
		t.Errorf("%d cached, %d pids", len(c.procs), len(c.byPID))
	}
	if osx.userCalls != 2 {
		t.Errorf("%d user lookups, want 2 (cached by uid)", osx.userCalls)
	}

	if _, err := c.process(4242); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing process: %v", err)
	}
	if u, err := c.execUUID(2227); err != nil || u != [16]byte{1, 2, 3} {
		t.Errorf("execUUID = %x, %v", u, err)
	}
}

func TestDarwinProcCacheErrors(t *testing.T) {
	osx := &darwinFakeOS{procs: map[int32]*darwinFakeProc{
		1: {bsd: darwinBSDInfoFixture(2, 0, 0, "launchd", "", 1, 0)}, // answers for another pid
		3: {bsd: make([]byte, 50)},                                   // short answer
	}}
	c := newDarwinProcCache(osx, DarwinProcessOptions{})
	if _, err := c.process(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("pid mismatch: %v", err)
	}
	if _, err := c.process(3); err == nil || !strings.Contains(err.Error(), "50 bytes") {
		t.Errorf("short bsdinfo: %v", err)
	}
}

func TestDarwinProcCacheBounds(t *testing.T) {
	osx := &darwinFakeOS{procs: map[int32]*darwinFakeProc{}}
	for pid := int32(1); pid <= 20; pid++ {
		osx.procs[pid] = &darwinFakeProc{
			bsd:  darwinBSDInfoFixture(pid, 1, 501, "sh", "", uint64(1000+pid), 0),
			exe:  "/bin/sh",
			args: darwinProcArgs2Fixture(3, "/bin/sh", 0, []string{"sh", "-c", strings.Repeat("a", 100)}, nil),
		}
	}
	c := newDarwinProcCache(osx, DarwinProcessOptions{MaxProcesses: 5, MaxArgBytes: 50})
	for round := 0; round < 3; round++ {
		for pid := int32(1); pid <= 20; pid++ {
			p, err := c.process(pid)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Args, ""); len(got) != 50 || p.Args[0] != "sh" {
				t.Fatalf("args %q", p.Args)
			}
		}
	}
	if len(c.procs) > 5 || len(c.order) > 10 {
		t.Errorf("%d cached, order %d", len(c.procs), len(c.order))
	}
}
