package attribution

import (
	"errors"
	"fmt"
	"testing"
)

func lineagePIDs(ps []*Process) []int32 {
	var out []int32
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

func TestLineage(t *testing.T) {
	f := newFakeProcs()
	f.add(1, 0, 1, 2, "systemd", "/usr/lib/systemd/systemd", "/sbin/init")
	f.add(100, 1, 100, 5000, "bash", "/usr/bin/bash", "-bash")
	f.add(4200, 100, 100, 90000, "sh", "/usr/bin/dash", "sh", "-c", "curl")
	f.add(4242, 4200, 100, 90012, "curl", "/usr/bin/curl", "curl")
	f.add(777, 1, 777, 3000, "python3", "/usr/bin/python3", "python3") // its own session
	f.add(800, 1, 50, 3100, "daemon", "/usr/sbin/d", "d")              // session leader gone
	c, _ := newTestCache(f, ProcessCacheOptions{})
	tests := []struct {
		pid  int32
		max  int
		want []int32
	}{
		{4242, 0, []int32{4242, 4200, 100}}, // up to the session leader, included
		{4242, 2, []int32{4242, 4200}},
		{4242, 1, []int32{4242}},
		{777, 0, []int32{777}},
		{800, 0, []int32{800, 1}}, // up to pid 1
		{1, 0, []int32{1}},
	}
	for _, tt := range tests {
		got, err := c.Lineage(tt.pid, tt.max)
		if err != nil || fmt.Sprint(lineagePIDs(got)) != fmt.Sprint(tt.want) {
			t.Errorf("Lineage(%d, %d) = %v, %v; want %v", tt.pid, tt.max, lineagePIDs(got), err, tt.want)
		}
	}
	if _, err := c.Lineage(9999, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown pid: %v", err)
	}
}

// TestLineageReusedParentPID: the parent exited and its pid now names a
// process that started after the child: the lineage stops there.
func TestLineageReusedParentPID(t *testing.T) {
	f := newFakeProcs()
	f.add(50, 40, 30, 1000, "child", "/c", "c")
	f.add(40, 30, 30, 5000, "impostor", "/i", "i") // started after the child
	c, _ := newTestCache(f, ProcessCacheOptions{})
	got, err := c.Lineage(50, 0)
	if err != nil || fmt.Sprint(lineagePIDs(got)) != "[50]" {
		t.Fatalf("got %v %v", lineagePIDs(got), err)
	}
	// A parent/child cycle (impossible, but input is not trusted).
	f.add(60, 61, 99, 10, "a", "/a", "a")
	f.add(61, 60, 99, 10, "b", "/b", "b")
	got, err = c.Lineage(60, 0)
	if err != nil || fmt.Sprint(lineagePIDs(got)) != "[60 61]" {
		t.Fatalf("cycle: %v %v", lineagePIDs(got), err)
	}
}

// TestSnapshotKeepsLineageAfterExit: a short-lived command and its shell
// both exit; what Snapshot captured while they lived is still the lineage.
func TestSnapshotKeepsLineageAfterExit(t *testing.T) {
	f := newFakeProcs()
	f.add(100, 1, 100, 5000, "bash", "/usr/bin/bash", "-bash")
	f.add(4200, 100, 100, 90000, "sh", "/usr/bin/dash", "sh", "-c", "curl")
	f.add(4242, 4200, 100, 90012, "curl", "/usr/bin/curl", "curl", "-T", "secret")
	c, _ := newTestCache(f, ProcessCacheOptions{})
	if _, err := c.Snapshot(4242); err != nil {
		t.Fatal(err)
	}
	delete(f.procs, 4242)
	delete(f.procs, 4200)
	got, err := c.Lineage(4242, 0)
	if err != nil || fmt.Sprint(lineagePIDs(got)) != "[4242 4200 100]" || got[0].Args[2] != "secret" {
		t.Fatalf("got %v %v", lineagePIDs(got), err)
	}
}
