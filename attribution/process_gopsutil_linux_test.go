//go:build linux

// This test compares ProcessCache, which reads /proc itself (through one
// handle per process, so a reused pid cannot mix two processes, and about
// ten times faster), with gopsutil v4's view of the same process.

package attribution

import (
	"os"
	"reflect"
	"testing"

	gopsutil "github.com/shirou/gopsutil/v4/process"
)

func TestLiveProcessMatchesGopsutil(t *testing.T) {
	pid := int32(os.Getpid())
	p, err := NewProcessCache("/proc", ProcessCacheOptions{}).Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gopsutil.NewProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := g.Name()
	exe, _ := g.Exe()
	args, _ := g.CmdlineSlice()
	cwd, _ := g.Cwd()
	created, _ := g.CreateTime()
	ppid, _ := g.Ppid()
	uids, _ := g.Uids()
	user, _ := g.Username()
	if name != p.Name || exe != p.Executable || !reflect.DeepEqual(args, p.Args) || cwd != p.CWD || ppid != p.PPID || user != p.User {
		t.Errorf("gopsutil: name %q exe %q args %q cwd %q ppid %d user %q\nours %+v", name, exe, args, cwd, ppid, user, *p)
	}
	// gopsutil's Username is of the real uid, ours of the effective one:
	// the same here (the test does not run setuid).
	if len(uids) < 2 || uids[1] != p.UID {
		t.Errorf("gopsutil uids %v, ours %d", uids, p.UID)
	}
	if created != p.StartTime.UnixMilli() {
		t.Errorf("gopsutil CreateTime %d ms, ours %d ms", created, p.StartTime.UnixMilli())
	}
}

// BenchmarkGopsutilProcess reads the same fields through gopsutil, for
// comparison with BenchmarkProcessRead.
func BenchmarkGopsutilProcess(b *testing.B) {
	pid := int32(os.Getpid())
	for b.Loop() {
		g, err := gopsutil.NewProcess(pid)
		if err != nil {
			b.Fatal(err)
		}
		g.Name()
		g.Exe()
		g.CmdlineSlice()
		g.Cwd()
		g.CreateTime()
		g.Ppid()
		g.Uids()
		g.Username()
	}
}
