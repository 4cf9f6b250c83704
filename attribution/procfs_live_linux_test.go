package attribution

// Live tests against this host's kernel: they open real sockets from this
// test process and from python3 children, and look them up through /proc
// and sock_diag. They need Linux and, for other users' processes, root.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// liveModes are the two ways a live table finds sockets.
var liveModes = []struct {
	name string
	opts ProcTableOptions
}{
	{"sockdiag", ProcTableOptions{}},
	{"procfs", ProcTableOptions{DisableSockDiag: true}},
}

func newLiveTable(t testing.TB, opts ProcTableOptions) *ProcTable {
	t.Helper()
	tbl, err := NewProcTable("/proc", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	return tbl
}

func checkMode(t testing.TB, tbl *ProcTable, mode string) {
	t.Helper()
	s := tbl.Stats()
	switch mode {
	case "sockdiag":
		if s.SockDiagQueries == 0 || s.SockDiagErrors != 0 || s.ProcNetReads != 0 || !s.SockDiagActive {
			t.Fatalf("sock_diag not used alone: %+v", s)
		}
	case "procfs":
		if s.SockDiagQueries != 0 || s.ProcNetReads == 0 {
			t.Fatalf("procfs not used: %+v", s)
		}
	}
}

// tcpPair connects to a listener on network/addr from this process and
// returns both ends as this host sees them.
func tcpPair(t testing.TB, network, addr, dial string) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	client, err = net.Dial("tcp", net.JoinHostPort(dial, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic(fmt.Sprintf("address %T", a))
}

func TestLiveLookupSelf(t *testing.T) {
	pairs := []struct {
		name                  string
		network, listen, dial string
	}{
		{"tcp4", "tcp4", "127.0.0.1:0", "127.0.0.1"},
		// Go listens dual-stack on ":0": the accepted socket is in tcp6
		// with ::ffff:127.0.0.1, and must match the IPv4 flow.
		{"dual-stack listener", "tcp", ":0", "127.0.0.1"},
		{"tcp6", "tcp6", "[::1]:0", "::1"},
	}
	for _, mode := range liveModes {
		t.Run(mode.name, func(t *testing.T) {
			tbl := newLiveTable(t, mode.opts)
			for _, p := range pairs {
				t.Run(p.name, func(t *testing.T) {
					client, server := tcpPair(t, p.network, p.listen, p.dial)
					for _, c := range []net.Conn{client, server} {
						local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
						o, err := tbl.Lookup(TCP, local, remote)
						if err != nil || o.PID != int32(os.Getpid()) || o.UID != uint32(os.Geteuid()) || o.Inode == 0 {
							t.Fatalf("Lookup %v → %v: %+v, %v; want pid %d", local, remote, o, err, os.Getpid())
						}
					}
					// The listener's port with another remote: never by port alone.
					local := addrPort(server.LocalAddr())
					remote := netip.AddrPortFrom(addrPort(server.RemoteAddr()).Addr(), 1)
					if _, err := tbl.Lookup(TCP, local, remote); !errors.Is(err, ErrNotFound) {
						t.Fatalf("listener matched by port: %v", err)
					}
				})
			}
			t.Run("udp", func(t *testing.T) {
				srv, err := net.ListenUDP("udp", &net.UDPAddr{}) // unconnected, dual-stack
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				cli, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: srv.LocalAddr().(*net.UDPAddr).Port})
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				cl := addrPort(cli.LocalAddr())
				sv := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(srv.LocalAddr().(*net.UDPAddr).Port))
				for _, q := range [][2]netip.AddrPort{{cl, sv}, {sv, cl}} {
					o, err := tbl.Lookup(UDP, q[0], q[1])
					if err != nil || o.PID != int32(os.Getpid()) {
						t.Fatalf("UDP %v → %v: %+v %v", q[0], q[1], o, err)
					}
				}
			})
			t.Run("miss", func(t *testing.T) {
				_, err := tbl.Lookup(TCP, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %v", err)
				}
			})
			checkMode(t, tbl, mode.name)
		})
	}
}

// TestLiveProcessSelf describes this test process and checks the result
// against the os package (process_gopsutil_linux_test.go checks it against
// gopsutil v4).
func TestLiveProcessSelf(t *testing.T) {
	c := NewProcessCache("/proc", ProcessCacheOptions{})
	pid := int32(os.Getpid())
	p, err := c.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	wd, _ := os.Getwd()
	if p.Executable != exe || !reflect.DeepEqual(p.Args, os.Args) || p.CWD != wd || p.PPID != int32(os.Getppid()) || p.UID != uint32(os.Geteuid()) {
		t.Fatalf("got %+v\nwant exe %s args %q cwd %s ppid %d", *p, exe, os.Args, wd, os.Getppid())
	}
	if p.User != "root" && os.Geteuid() == 0 {
		t.Errorf("user %q", p.User)
	}
	if d := time.Since(p.StartTime); d < 0 || d > time.Hour {
		t.Errorf("start time %v (%v ago)", p.StartTime, d)
	}

	lin, err := c.Lineage(pid, 0)
	if err != nil || len(lin) < 2 || lin[1].PID != int32(os.Getppid()) {
		t.Errorf("lineage %v %v", lineagePIDs(lin), err)
	}
}

// python3 prefers the system interpreter: a pyenv shim on the PATH is a
// shell script that execs the real one.
func python3(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return p
}

// startPythonClient runs python3 -c script (with PORT replaced), which
// connects to a new listener on 127.0.0.1, and returns the child and the
// accepted connection.
func startPythonClient(t testing.TB, script string) (*exec.Cmd, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	script = strings.ReplaceAll(script, "PORT", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	cmd := exec.Command(python3(t), "-c", script)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cmd, conn
}

func TestLiveChildProcess(t *testing.T) {
	for _, mode := range liveModes {
		t.Run(mode.name, func(t *testing.T) {
			tbl := newLiveTable(t, mode.opts)
			cache := NewProcessCache("/proc", ProcessCacheOptions{})
			cmd, conn := startPythonClient(t, `import socket,time; s=socket.create_connection(("127.0.0.1",PORT)); time.sleep(0.2)`)
			// The child's end: local is the child's address.
			local, remote := addrPort(conn.RemoteAddr()), addrPort(conn.LocalAddr())
			o, err := tbl.Lookup(TCP, local, remote)
			if err != nil || o.PID != int32(cmd.Process.Pid) {
				t.Fatalf("Lookup %v → %v: %+v %v; want child %d", local, remote, o, err, cmd.Process.Pid)
			}
			p, err := cache.Process(o.PID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(filepath.Base(p.Executable), "python3") || !slices.Contains(p.Args, "-c") || p.PPID != int32(os.Getpid()) {
				t.Fatalf("child described as %+v", *p)
			}
			t.Logf("child: pid %d exe %s args %q", p.PID, p.Executable, p.Args)
			lin, err := cache.Lineage(o.PID, 0)
			if err != nil || len(lin) < 2 || lin[1].PID != int32(os.Getpid()) {
				t.Fatalf("lineage %v %v", lineagePIDs(lin), err)
			}
			checkMode(t, tbl, mode.name)
		})
	}
}

// TestLiveShortLivedChild shows what the grace period achieves for a
// process that connects, lives 20 ms and exits before its flow is looked
// up:
//
//   - when the table saw the socket while the child lived (here a Scan at
//     accept time; a Lookup on the flow's first packet does the same), the
//     lookup after the exit answers the child's pid, with Owner.Seen the
//     time it was last seen, and the process cache, fed by OnOwner →
//     Snapshot, still describes the child;
//   - when nothing saw it alive, the lookup after the exit is ErrNotFound:
//     the socket is in TIME_WAIT (no inode) or gone, and no process holds
//     it any more.
func TestLiveShortLivedChild(t *testing.T) {
	const script = `import socket,time; s=socket.create_connection(("127.0.0.1",PORT)); time.sleep(0.02)`
	t.Run("seen alive", func(t *testing.T) {
		for attempt := 1; ; attempt++ {
			cache := NewProcessCache("/proc", ProcessCacheOptions{})
			tbl := newLiveTable(t, ProcTableOptions{OnOwner: func(pid int32) { cache.Snapshot(pid) }})
			cmd, conn := startPythonClient(t, script)
			start := time.Now()
			if err := tbl.Scan(); err != nil {
				t.Fatal(err)
			}
			scanned := time.Since(start)
			alive := cmd.ProcessState == nil && processAlive(cmd.Process.Pid)
			cmd.Wait()
			local, remote := addrPort(conn.RemoteAddr()), addrPort(conn.LocalAddr())
			o, err := tbl.Lookup(TCP, local, remote)
			if err != nil && !alive && attempt < 5 {
				t.Logf("attempt %d: the child exited before the scan ended (%v); again", attempt, scanned)
				continue
			}
			if err != nil || o.PID != int32(cmd.Process.Pid) {
				t.Fatalf("after exit: %+v %v; want child %d (scan took %v)", o, err, cmd.Process.Pid, scanned)
			}
			if processAlive(cmd.Process.Pid) {
				t.Fatal("child still alive")
			}
			p, err := cache.Process(o.PID)
			if err != nil || !slices.Contains(p.Args, "-c") {
				t.Fatalf("exited child not described: %+v %v", p, err)
			}
			s := tbl.Stats()
			t.Logf("scan took %v; answer seen %v before the lookup; stats %+v", scanned, time.Since(o.Seen).Round(time.Millisecond), s)
			if s.GraceHits != 1 {
				t.Fatalf("not a grace answer: %+v", s)
			}
			return
		}
	})
	t.Run("never seen alive", func(t *testing.T) {
		tbl := newLiveTable(t, ProcTableOptions{})
		cmd, conn := startPythonClient(t, script)
		cmd.Wait()
		local, remote := addrPort(conn.RemoteAddr()), addrPort(conn.LocalAddr())
		if o, err := tbl.Lookup(TCP, local, remote); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %+v %v", o, err)
		} else {
			t.Logf("as documented: %v", err)
		}
	})
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := parseProcStat(b)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// TestSockdiagUDPOrder checks the kernel's reading of a UDP request: the
// sockid's source is the remote end (udp_dump_one looks the socket up as
// for an arriving packet), while TCP's source is the local end.
func TestSockdiagUDPOrder(t *testing.T) {
	d, err := newSockdiagConn()
	if err != nil {
		t.Skip(err)
	}
	defer d.Close()
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.DialUDP("udp4", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	local, remote := addrPort(b.LocalAddr()), addrPort(b.RemoteAddr())
	ans, found, err := d.query(UDP, local, remote)
	if err != nil || !found || ans.local != local || ans.remote != remote {
		t.Fatalf("got %+v %v %v; want the socket %v → %v", ans, found, err, local, remote)
	}
}

// TestLiveLinkLocal: a connection over an IPv6 link-local address is bound
// to its interface; sock_diag does not find it without the interface
// index, so the table falls back to root/net.
func TestLiveLinkLocal(t *testing.T) {
	var ll netip.Addr
	var zone string
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() && ifc.Flags&net.FlagUp != 0 {
				ll, zone = p.Addr(), ifc.Name
			}
		}
	}
	if !ll.IsValid() {
		t.Skip("no IPv6 link-local address")
	}
	for _, mode := range liveModes {
		t.Run(mode.name, func(t *testing.T) {
			tbl := newLiveTable(t, mode.opts)
			client, server := tcpPair(t, "tcp6", "[::]:0", ll.WithZone(zone).String())
			for _, c := range []net.Conn{client, server} {
				local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
				o, err := tbl.Lookup(TCP, local, remote)
				if err != nil || o.PID != int32(os.Getpid()) {
					t.Fatalf("Lookup %v → %v: %+v %v", local, remote, o, err)
				}
			}
			t.Logf("stats %+v", tbl.Stats())
		})
	}
}
