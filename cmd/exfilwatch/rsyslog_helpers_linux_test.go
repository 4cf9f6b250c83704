package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	"golang.org/x/sys/unix"

	"exfilwatch/sensor/output/syslog"
)

// The real-rsyslog harness of sensor/output/syslog, adapted for the lab:
// rsyslogd runs inside the lab's host namespace on its loopback, where the
// sensor under test runs too (a test file cannot import another package's
// test helpers).

// rsyslogd is one rsyslogd run in the foreground inside a namespace. Each
// line of its output file is "<input module> <raw message>", so a test can
// tell which destination (imudp, imptcp for tcp://, imtcp for tls://) a
// message came through.
type rsyslogd struct {
	raw    string
	stderr *lockedBuffer
	stop   func() // idempotent
}

// startRsyslogd starts rsyslogd in ns with a UDP input on 127.0.0.1:udpPort
// (also the readiness probe's) plus the given inputs, and returns once the
// probe was written out, so every input listens.
func startRsyslogd(t *testing.T, ns string, udpPort int, inputs string) *rsyslogd {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err2 := os.Stat(bin); err2 != nil {
			t.Fatalf("rsyslogd not found (%v): these tests need a real rsyslog: apt-get install rsyslog rsyslog-gnutls (make deps does)", err)
		}
	}
	dir := t.TempDir()
	r := &rsyslogd{raw: filepath.Join(dir, "raw.log"), stderr: &lockedBuffer{}}
	conf := fmt.Sprintf(`
global(workDirectory=%[1]q maxMessageSize="256k" net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="on")
module(load="imudp")
%[2]s
input(type="imudp" address="127.0.0.1" port="%[3]d")
template(name="raw" type="string" string="%%inputname%% %%rawmsg%%\n")
action(type="omfile" file=%[4]q template="raw" flushOnTXEnd="on" asyncWriting="off")
`, dir, inputs, udpPort, r.raw)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs rsyslogd in place: the pid is rsyslogd's.
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(r.stop)
	var probe net.Conn
	if err := inNetns(ns, func() (err error) {
		probe, err = net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited: %s\nconfiguration:\n%s", r.stderr, conf)
		default:
		}
		probe.Write([]byte("<13>1 - - probe - PROBE - ready"))
		if b, _ := os.ReadFile(r.raw); bytes.Contains(b, []byte("PROBE")) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd wrote no probe within 20s: %s", r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// messages returns what rsyslog wrote so far, probes left out, by input
// module.
func (r *rsyslogd) messages() map[string][][]byte {
	b, _ := os.ReadFile(r.raw)
	b = b[:bytes.LastIndexByte(b, '\n')+1] // a last line still being written
	out := map[string][][]byte{}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		input, msg, ok := bytes.Cut(l, []byte{' '})
		if !ok || bytes.Contains(msg, []byte(" PROBE ")) {
			continue
		}
		out[string(input)] = append(out[string(input)], msg)
	}
	return out
}

// inNetns runs f on an OS thread moved into the named namespace: sockets f
// opens stay in that namespace. The thread is returned to the test's
// namespace, or left to die with its goroutine if that fails.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err) // thread stays locked: it exits with us
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rsyslogTLSInput is an imtcp listener with the gtls driver, any client;
// its certificate is newTestPKI's (collector.test, 127.0.0.1).
func rsyslogTLSInput(p testPKI, port int) string {
	return fmt.Sprintf(`
global(defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q
       defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d")
`, p.caFile, p.certFile, p.keyFile, port)
}

// rsyslogTCPInput is a plain TCP listener (octet-counted framing).
func rsyslogTCPInput(port int) string {
	return fmt.Sprintf(`module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d")
`, port)
}

// syslogMsg is an RFC 5424 message as go-syslog parsed it.
type syslogMsg struct {
	*rfc5424.SyslogMessage
	sd  map[string]string
	msg []byte // MSG without its BOM
}

// parseSyslog5424 parses strictly and requires exfilwatch's SD element.
func parseSyslog5424(raw []byte) (*syslogMsg, error) {
	m, err := rfc5424.NewParser(rfc5424.WithCompliantMsg()).Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("go-syslog rejects %q: %w", raw, err)
	}
	sm := m.(*rfc5424.SyslogMessage)
	if sm.StructuredData == nil || (*sm.StructuredData)[syslog.SDID] == nil {
		return nil, fmt.Errorf("no %s element in %q", syslog.SDID, raw)
	}
	p := &syslogMsg{SyslogMessage: sm, sd: (*sm.StructuredData)[syslog.SDID]}
	if sm.Message != nil {
		p.msg = bytes.TrimPrefix([]byte(*sm.Message), []byte("\xef\xbb\xbf"))
	}
	return p, nil
}

func derefStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// logLines returns the JSON log lines of a stderr that carry msg.
func logLines(stderr, msg string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, `"message":"`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}
