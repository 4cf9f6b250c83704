package attribution

// A live test of the order in which the socket table searches fd tables,
// run in a pid namespace of its own so that the pid numbers can be set:
// after pid numbers wrapped at pid_max, the newest process no longer has
// the highest pid, and a search by descending pid reads every older
// process first.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const newestOwnerChildEnv = "EXFILWATCH_TEST_PIDNS_CHILD"

// TestLiveNewestOwnerFirst: a client that connects, uploads 4 KB, reads a
// reply sent 3 ms later and exits (as curl against a server on a veth)
// must be found by the first lookup of a fresh table (a sensor that just
// started), made as the connection is accepted, although older processes
// with many fds have higher pids (pid numbers wrapped). Before the table
// searched the most recently allocated pids first it read those processes'
// 8000 fds first and the client was gone.
func TestLiveNewestOwnerFirst(t *testing.T) {
	if os.Getenv(newestOwnerChildEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root (pid and network namespaces)")
		}
		for _, tool := range []string{"unshare", "ip", "sleep"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
		python3(t)
		cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--net", os.Args[0], "-test.run=^TestLiveNewestOwnerFirst$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), newestOwnerChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a new pid and network namespace:\n%s", out)
		if err != nil || !strings.Contains(string(out), "--- PASS: TestLiveNewestOwnerFirst") {
			t.Fatalf("child test: %v", err)
		}
		return
	}
	// Here this process is pid 1 of a new pid namespace, with its own
	// /proc and an empty network namespace.
	const addr = "198.18.211.1"
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", addr + "/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	setLastPID := func(pid int) {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(fmt.Sprint(pid)), 0); err != nil {
			t.Fatalf("ns_last_pid: %v", err)
		}
	}
	// The older processes: 8 with 1000 fds each, at pids above 30000.
	var files []*os.File
	for range 1000 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	setLastPID(30000)
	for range 8 {
		cmd := exec.Command("sleep", "60")
		cmd.ExtraFiles = files
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, f := range files {
		f.Close()
	}
	// The wrap: new processes get low pids again.
	setLastPID(300)

	ln, err := net.Listen("tcp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	script := fmt.Sprintf(`import socket
s = socket.create_connection((%q, %d)); s.sendall(b"x" * 4096); s.recv(100); s.close()`, addr, ln.Addr().(*net.TCPAddr).Port)
	const trials = 5
	found := 0
	for trial := 1; trial <= trials; trial++ {
		tbl := newLiveTable(t, ProcTableOptions{})
		cmd := exec.Command(python3(t), "-c", script)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 4096)
			for n := 0; n < len(buf); {
				m, err := conn.Read(buf[n:])
				if err != nil {
					return
				}
				n += m
			}
			time.Sleep(3 * time.Millisecond)
			conn.Write([]byte("ok"))
		}()
		local, remote := addrPort(conn.RemoteAddr()), addrPort(conn.LocalAddr())
		start := time.Now()
		o, err := tbl.Lookup(TCP, local, remote)
		took := time.Since(start)
		cmd.Wait()
		conn.Close()
		s := tbl.Stats()
		t.Logf("trial %d: client pid %d: %+v %v in %v (fd tables read %d, fds %d)", trial, cmd.Process.Pid, o, err, took, s.ScannedPIDs, s.ScannedFDs)
		if cmd.Process.Pid > 30000 {
			t.Fatalf("the client got pid %d: pid numbers did not wrap", cmd.Process.Pid)
		}
		if err == nil && o.PID == int32(cmd.Process.Pid) {
			found++
		}
	}
	if found != trials {
		t.Fatalf("the first lookup found the client %d times out of %d", found, trials)
	}
}
