//go:build pcap && cgo

package capture

// The live tests of the libpcap backend capture only inside a network
// namespace they create: TestPcapInNetns makes one ("ip netns add"), brings
// its loopback up and re-runs this test binary inside it ("ip netns exec",
// which also mounts a /sys of that namespace, where libpcap reads interface
// counters), limited to the TestPcapNetns* tests, which do nothing unless
// they find themselves in that namespace. Re-executing was chosen over
// runtime.LockOSThread + setns on the test's own thread: libpcap, the
// sockets the test sends from and the /sys files libpcap reads would all
// have to agree on the namespace of one thread, and a mistake there
// captures on the machine's real interfaces; a child process cannot make it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const (
	// pcapNetnsEnv names the namespace a child test runs in.
	pcapNetnsEnv = "EXFILWATCH_PCAP_NETNS"
	// pcapRequireNetnsEnv turns the parent's skips (not root, no ip, no
	// namespaces) into failures, for make targets that must run them.
	pcapRequireNetnsEnv = "EXFILWATCH_REQUIRE_NETNS"
)

var pcapNetnsTests = []string{
	"TestPcapNetnsLoopback",
	"TestPcapNetnsFilter",
	"TestPcapNetnsCloseWhileReading",
	"TestPcapNetnsOpenErrors",
}

func TestPcapInNetns(t *testing.T) {
	if os.Getenv(pcapNetnsEnv) != "" {
		t.Skip("already inside the test namespace")
	}
	cannot := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(pcapRequireNetnsEnv) != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if runtime.GOOS != "linux" {
		cannot("network namespaces are a Linux feature")
	}
	if os.Geteuid() != 0 {
		cannot("needs root to create a network namespace and capture")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		cannot("needs ip (iproute2)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("exfilwatch-pcaptest-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		cannot("ip netns add %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, exe,
		"-test.run=^("+strings.Join(pcapNetnsTests, "|")+")$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), pcapNetnsEnv+"="+ns)
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("tests inside the namespace: %v", err)
	}
	for _, name := range pcapNetnsTests {
		if !bytes.Contains(out, []byte("--- PASS: "+name+" ")) {
			t.Errorf("%s did not pass inside the namespace", name)
		}
	}
}

// inPcapNetns skips a test outside TestPcapInNetns's namespace and makes
// sure the namespace really is a fresh one: loopback only.
func inPcapNetns(t *testing.T) {
	t.Helper()
	if os.Getenv(pcapNetnsEnv) == "" {
		t.Skip("runs inside TestPcapInNetns's network namespace")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("not in a fresh network namespace: interfaces %v", ifs)
	}
}

// pcapFrame is what a test keeps of a captured frame (Data is only valid
// until the next Next).
type pcapFrame struct {
	link    uint32
	wire    int
	capLen  int
	ts      time.Time
	udpDst  int // 0 if not UDP
	udpSrc  int
	tcpDst  int // 0 if not TCP
	tcpSrc  int
	syn     bool
	payload string
}

func decodePcapFrame(fr *Frame) pcapFrame {
	f := pcapFrame{link: fr.LinkType, wire: fr.WireLen, capLen: len(fr.Data), ts: fr.Timestamp}
	p := gopacket.NewPacket(fr.Data, layers.LinkType(fr.LinkType), gopacket.NoCopy)
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		f.udpSrc, f.udpDst, f.payload = int(u.SrcPort), int(u.DstPort), string(u.Payload)
	}
	if c, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		f.tcpSrc, f.tcpDst, f.syn, f.payload = int(c.SrcPort), int(c.DstPort), c.SYN, string(c.Payload)
	}
	return f
}

// readUntilQuiet reads frames until Next has returned ErrTimeout for quiet
// in a row (nothing more is coming) or until the deadline.
func readUntilQuiet(t *testing.T, l Live, quiet time.Duration, deadline time.Duration) []pcapFrame {
	t.Helper()
	var got []pcapFrame
	end := time.Now().Add(deadline)
	lastFrame := time.Now()
	for time.Now().Before(end) {
		var fr Frame
		err := l.Next(&fr)
		switch {
		case err == nil:
			got = append(got, decodePcapFrame(&fr))
			lastFrame = time.Now()
		case errors.Is(err, ErrTimeout):
			if time.Since(lastFrame) >= quiet {
				return got
			}
		default:
			t.Fatalf("Next: %v", err)
		}
	}
	return got
}

func sendUDP(t *testing.T, to *net.UDPAddr, payloads ...string) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range payloads {
		if _, err := c.WriteToUDP([]byte(p), to); err != nil {
			t.Fatal(err)
		}
	}
}

// tcpExchange connects to a listener on 127.0.0.1, sends msg and closes.
func tcpExchange(t *testing.T, msg string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		c.Read(buf)
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	wg.Wait()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestPcapNetnsLoopback(t *testing.T) {
	inPcapNetns(t)
	l, err := OpenLiveBackend("pcap", "lo", LiveOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Backend() != "pcap" {
		t.Errorf("Backend() = %q", l.Backend())
	}
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	udpPort := rx.LocalAddr().(*net.UDPAddr).Port
	start := time.Now()
	var sent []string
	for i := range 5 {
		sent = append(sent, fmt.Sprintf("exfilwatch-pcap-udp-%d", i))
	}
	sendUDP(t, rx.LocalAddr().(*net.UDPAddr), sent...)
	tcpPort := tcpExchange(t, "exfilwatch-pcap-tcp")

	frames := readUntilQuiet(t, l, 300*time.Millisecond, 10*time.Second)
	udp := map[string]bool{}
	var syn, tcpData bool
	for _, f := range frames {
		if f.link != 1 {
			t.Errorf("link type %d, want 1 (Ethernet, as Linux loopback gives)", f.link)
		}
		if f.wire < f.capLen || f.capLen == 0 {
			t.Errorf("wire length %d, captured %d", f.wire, f.capLen)
		}
		if f.ts.Before(start.Add(-time.Second)) || f.ts.After(time.Now().Add(time.Second)) {
			t.Errorf("timestamp %v not around the test (started %v)", f.ts, start)
		}
		if f.udpDst == udpPort {
			udp[f.payload] = true
		}
		if f.tcpDst == tcpPort && f.syn {
			syn = true
		}
		if f.tcpDst == tcpPort && f.payload == "exfilwatch-pcap-tcp" {
			tcpData = true
		}
	}
	for _, p := range sent {
		if !udp[p] {
			t.Errorf("UDP datagram %q not captured", p)
		}
	}
	if !syn || !tcpData {
		t.Errorf("TCP to port %d: SYN captured %v, data captured %v", tcpPort, syn, tcpData)
	}
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames read; Stats %+v", len(frames), st)
	if st.Received < uint64(len(frames)) {
		t.Errorf("Stats().Received = %d, but %d frames were read", st.Received, len(frames))
	}
	if st.Dropped != 0 {
		t.Errorf("Stats().Dropped = %d for a few packets", st.Dropped)
	}
	// The counters only grow.
	sendUDP(t, rx.LocalAddr().(*net.UDPAddr), "one more")
	more := readUntilQuiet(t, l, 300*time.Millisecond, 5*time.Second)
	st2, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st2.Received < st.Received+uint64(len(more)) || len(more) == 0 {
		t.Errorf("after %d more frames: Stats %+v, before %+v", len(more), st2, st)
	}
}

func TestPcapNetnsFilter(t *testing.T) {
	inPcapNetns(t)
	l, err := OpenLiveBackend("pcap", "lo", LiveOptions{Poll: 50 * time.Millisecond, Filter: "udp port 9999"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9999})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9998})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sendUDP(t, other.LocalAddr().(*net.UDPAddr), "to-9998-a", "to-9998-b", "to-9998-c")
	sendUDP(t, rx.LocalAddr().(*net.UDPAddr), "to-9999-a", "to-9999-b", "to-9999-c")
	tcpExchange(t, "tcp")
	sendUDP(t, other.LocalAddr().(*net.UDPAddr), "to-9998-d")

	frames := readUntilQuiet(t, l, 300*time.Millisecond, 10*time.Second)
	seen := map[string]bool{}
	for _, f := range frames {
		if f.udpDst != 9999 && f.udpSrc != 9999 {
			t.Errorf("frame passed the filter: %+v", f)
			continue
		}
		seen[f.payload] = true
	}
	for _, p := range []string{"to-9999-a", "to-9999-b", "to-9999-c"} {
		if !seen[p] {
			t.Errorf("%q not captured", p)
		}
	}
	if len(frames) != 3 {
		t.Errorf("%d frames, want the 3 to port 9999", len(frames))
	}
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The kernel filter drops the rest before it is counted. On loopback
	// the kernel hands every packet to the socket twice, sent and
	// received, and counts both; libpcap discards the sent copy in user
	// space. So 3 datagrams count 6 (libpcap 1.10), and anything above 6
	// would be packets the filter should have kept out.
	if st.Received < 3 || st.Received > 6 || st.Dropped != 0 {
		t.Errorf("Stats %+v, want 3 to 6 received, 0 dropped", st)
	}
}

func TestPcapNetnsCloseWhileReading(t *testing.T) {
	inPcapNetns(t)
	l, err := OpenLiveBackend("pcap", "lo", LiveOptions{Poll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	reading := make(chan struct{})
	go func() {
		close(reading)
		for {
			var fr Frame
			err := l.Next(&fr)
			if err == nil || errors.Is(err, ErrTimeout) {
				continue
			}
			done <- err
			return
		}
	}()
	<-reading
	time.Sleep(300 * time.Millisecond) // the reader is in, or between, reads
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while Next was reading")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var fr Frame
	if err := l.Next(&fr); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if _, err := l.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
}

func TestPcapNetnsOpenErrors(t *testing.T) {
	inPcapNetns(t)
	for _, c := range []struct {
		iface, filter, want string
	}{
		{"lo", "udp port", `bad filter "udp port": `},
		{"lo", "ether hots 1:2:3:4:5:6", `bad filter "ether hots 1:2:3:4:5:6": `},
		{"exfilwatch0", "", "libpcap: open exfilwatch0: no such interface"},
		{"", "", "no interface given"},
	} {
		l, err := OpenLiveBackend("pcap", c.iface, LiveOptions{Filter: c.filter})
		if err == nil {
			l.Close()
			t.Errorf("%q with filter %q opened", c.iface, c.filter)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q with filter %q: error %q, want one line starting %q", c.iface, c.filter, err, c.want)
		}
	}
}

// The PKTAP path (macOS) cannot run here; its filter can: compiled by
// libpcap for raw IP, run in user space on the packet inside each record,
// exactly as Next does.
func TestPcapPKTAPUserSpaceFilter(t *testing.T) {
	f, err := compilePcapRawFilter("tcp dst port 443")
	if err != nil {
		t.Fatal(err)
	}
	match := checkPKTAPFilter(t, f)
	if match([]byte("short")) {
		t.Error("a record too short for a PKTAP header matched")
	}
	for _, expr := range []string{"arp", "ether host 1:2:3:4:5:6", "vlan", "udp port"} {
		_, err := compilePcapRawFilter(expr)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("bad filter %q: ", expr)) {
			t.Errorf("%q for raw IP: %v", expr, err)
		}
	}
}

func TestPcapBackendListed(t *testing.T) {
	if got := Backends(); len(got) == 0 || got[len(got)-1] != BackendPcap {
		t.Errorf("Backends() = %q in a build with the pcap tag", got)
	}
}
