package attribution

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestProcessCachePGIDLive starts real shells in their own process group
// (Setpgid) and in their own session (Setsid); each starts a background
// child, which stays in the shell's group (no job control in sh -c). The
// cache must report the group the kernel reports (getpgid(2)).
func TestProcessCachePGIDLive(t *testing.T) {
	for _, tc := range []struct {
		name string
		attr *syscall.SysProcAttr
	}{
		{"setpgid", &syscall.SysProcAttr{Setpgid: true}},
		{"setsid", &syscall.SysProcAttr{Setsid: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", `sleep 30 & echo $!; wait`)
			cmd.SysProcAttr = tc.attr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sh := int32(cmd.Process.Pid)
			line, err := bufio.NewReader(out).ReadString('\n')
			var child int
			if err == nil {
				child, err = strconv.Atoi(strings.TrimSpace(line))
			}
			t.Cleanup(func() {
				// Kill the whole group: the shell and its sleep.
				_ = syscall.Kill(-int(sh), syscall.SIGKILL)
				_ = cmd.Wait()
			})
			if err != nil {
				t.Fatalf("child pid: %q: %v", line, err)
			}
			c := NewProcessCache("/proc", ProcessCacheOptions{})
			for _, pid := range []int32{sh, int32(child)} {
				p, err := c.Process(pid)
				if err != nil {
					t.Fatal(err)
				}
				kernel, err := syscall.Getpgid(int(pid))
				if err != nil {
					t.Fatal(err)
				}
				if p.PGID != sh || int(p.PGID) != kernel {
					t.Errorf("pid %d (%s): PGID %d, want %d (getpgid %d)", pid, p.Name, p.PGID, sh, kernel)
				}
				wantSID := int32(0)
				if tc.attr.Setsid {
					wantSID = sh
				}
				if wantSID != 0 && p.SessionLeader != wantSID {
					t.Errorf("pid %d: session %d, want %d", pid, p.SessionLeader, wantSID)
				}
				if !tc.attr.Setsid && p.SessionLeader == sh {
					t.Errorf("pid %d: session leader is the shell without setsid", pid)
				}
			}
			// The test's own process is in another group.
			self, err := c.Process(int32(syscall.Getpid()))
			if err != nil {
				t.Fatal(err)
			}
			if self.PGID == sh || self.PGID != int32(syscall.Getpgrp()) {
				t.Errorf("self PGID %d, getpgrp %d, shell %d", self.PGID, syscall.Getpgrp(), sh)
			}
		})
	}
}
