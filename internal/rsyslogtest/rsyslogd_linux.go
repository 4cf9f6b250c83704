package rsyslogtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Options are the inputs of an rsyslogd. A UDP input always listens on
// 127.0.0.1: its probe tells when every input does.
type Options struct {
	// Netns runs rsyslogd (and the probe) in this named network namespace
	// (ip netns exec), on its loopback; the ports must then be given.
	Netns string
	// UDPPort is the UDP input's port; 0 picks a free one.
	UDPPort int
	// TCP adds an imptcp input (octet counting or LF framing) on TCPPort,
	// or a free port when TCPPort is 0.
	TCP     bool
	TCPPort int
	// TLS, when set, adds an imtcp input with the gtls driver and TLS's
	// server certificate on TLSPort (0: a free port); TLSAuthMode "anon"
	// (the default) takes any client, "x509/certvalid" requires a client
	// certificate signed by the CA.
	TLS         *PKI
	TLSPort     int
	TLSAuthMode string
	// UnixSocket, when set, adds an imuxsock input (a datagram socket).
	UnixSocket string
	// Inputs is more configuration: inputs made with TCPInput, TLSInput
	// and UnixInput on ports of the caller's choosing.
	Inputs string
	// Fields also writes FieldsFile: one JSON object a message with what
	// rsyslog parsed (left out by the benchmarks: it measures rsyslog's
	// JSON escaping, not us).
	Fields bool
	// InputName starts each line of Raw with the input module's name and a
	// space, so a test can tell which input (imudp, imptcp for tcp://,
	// imtcp for tls://, imuxsock) a message came through.
	InputName bool
}

// Rsyslog is one rsyslogd run by a test in the foreground, with its own
// configuration, work directory and output files; the test's cleanup stops
// it.
type Rsyslog struct {
	Dir                       string
	Conf                      string // the configuration's text
	Raw                       string // one line per message: [%inputname% ]%rawmsg%
	FieldsFile                string // with Options.Fields
	UDPPort, TCPPort, TLSPort int
	UnixSocket                string
	Stderr                    *LockedBuffer // what rsyslogd said
	stop                      func()
}

// probe is the readiness datagram; its MSGID keeps it out of what the
// readers return.
const probe = "<13>1 - - probe - PROBE - ready"

// Start writes the configuration, starts rsyslogd and returns once the
// probe sent to the UDP input was written out, so every input listens.
func Start(t testing.TB, o Options) *Rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err2 := os.Stat(bin); err2 != nil {
			t.Fatalf("rsyslogd not found (%v): these tests need a real rsyslog: apt-get install rsyslog rsyslog-gnutls (make deps does)", err)
		}
	}
	port := func(p int, network string) int {
		if p == 0 {
			if o.Netns != "" {
				t.Fatalf("rsyslogtest: give the %s port of an rsyslogd in namespace %s", network, o.Netns)
			}
			return FreePort(t, network)
		}
		return p
	}
	r := &Rsyslog{Dir: t.TempDir(), Stderr: &LockedBuffer{}, UDPPort: port(o.UDPPort, "udp"), UnixSocket: o.UnixSocket}
	r.Raw = filepath.Join(r.Dir, "raw.log")
	inputs := o.Inputs
	if o.TLS != nil {
		r.TLSPort = port(o.TLSPort, "tcp")
		inputs += TLSInput(o.TLS, r.TLSPort, o.TLSAuthMode)
	}
	if o.TCP {
		r.TCPPort = port(o.TCPPort, "tcp")
		inputs += TCPInput(r.TCPPort)
	}
	if o.UnixSocket != "" {
		inputs += UnixInput(o.UnixSocket)
	}
	rawTemplate := "%%rawmsg%%"
	if o.InputName {
		rawTemplate = "%%inputname%% %%rawmsg%%"
	}
	conf := fmt.Sprintf(`
global(workDirectory=%q maxMessageSize="256k" net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="on")
module(load="imudp")
%s
input(type="imudp" address="127.0.0.1" port="%d")
template(name="raw" type="string" string="`+rawTemplate+`\n")
action(type="omfile" file=%q template="raw" flushOnTXEnd="on" asyncWriting="off")
`, r.Dir, inputs, r.UDPPort, r.Raw)
	if o.Fields {
		r.FieldsFile = filepath.Join(r.Dir, "fields.log")
		conf += fmt.Sprintf(`template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="protocol" name="protocol-version" format="jsonf")
}
action(type="omfile" file=%q template="fields" flushOnTXEnd="on" asyncWriting="off")
`, r.FieldsFile)
	}
	r.Conf = conf
	confPath := filepath.Join(r.Dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{bin, "-n", "-f", confPath, "-i", filepath.Join(r.Dir, "rsyslogd.pid")}
	if o.Netns != "" {
		// ip netns exec execs rsyslogd in place: the pid is rsyslogd's.
		args = append([]string{"ip", "netns", "exec", o.Netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = r.Stderr, r.Stderr
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
	var conn net.Conn
	dial := func() (err error) {
		conn, err = net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.UDPPort)))
		return err
	}
	if o.Netns != "" {
		err = inNetns(o.Netns, dial)
	} else {
		err = dial()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited: %s\nconfiguration:\n%s", r.Stderr, conf)
		default:
		}
		conn.Write([]byte(probe))
		if b, _ := os.ReadFile(r.Raw); bytes.Contains(b, []byte("PROBE")) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd wrote no probe within 20s: %s", r.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TLSInput is the configuration of a TLS listener (imtcp, gtls driver)
// with p's server certificate; authMode "anon" (or "") takes any client,
// "x509/certvalid" requires a client certificate signed by the CA.
func TLSInput(p *PKI, port int, authMode string) string {
	if authMode == "" {
		authMode = "anon"
	}
	return fmt.Sprintf(`
global(defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q
       defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%q)
input(type="imtcp" address="127.0.0.1" port="%d")
`, p.CAFile, p.ServerCert, p.ServerKey, authMode, port)
}

// TCPInput is a plain TCP listener (imptcp: octet counting or LF framing).
func TCPInput(port int) string {
	return fmt.Sprintf(`module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d")
`, port)
}

// UnixInput is a Unix datagram socket (imuxsock) at path.
func UnixInput(path string) string {
	return fmt.Sprintf(`module(load="imuxsock" sysSock.use="off")
input(type="imuxsock" socket=%q rateLimit.interval="0" useSpecialParser="off" parseHostname="on")
`, path)
}

// Stop stops rsyslogd (SIGTERM, SIGKILL after 5 s); calling it again does
// nothing.
func (r *Rsyslog) Stop() { r.stop() }

// isProbe: raw lines carry " PROBE " (the MSGID between spaces).
func isProbe(l []byte) bool { return bytes.Contains(l, []byte(" PROBE ")) }

// complete drops a last line rsyslog is still writing.
func complete(b []byte) []byte {
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

// Lines returns the complete lines of Raw so far, probes left out.
func (r *Rsyslog) Lines() [][]byte {
	b, _ := os.ReadFile(r.Raw)
	var out [][]byte
	for _, l := range Lines(complete(b)) {
		if !isProbe(l) {
			out = append(out, l)
		}
	}
	return out
}

// Count is how many messages of ours Raw holds; cheaper than Lines for a
// benchmark that polls.
func (r *Rsyslog) Count() int {
	b, _ := os.ReadFile(r.Raw)
	return bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte(" PROBE "))
}

// ByInput returns the messages so far by input module (Options.InputName).
func (r *Rsyslog) ByInput() map[string][][]byte {
	out := map[string][][]byte{}
	for _, l := range r.Lines() {
		if input, msg, ok := bytes.Cut(l, []byte{' '}); ok {
			out[string(input)] = append(out[string(input)], msg)
		}
	}
	return out
}

// Read returns the messages so far, raw and, with Options.Fields, as
// rsyslog parsed them.
func (r *Rsyslog) Read(t testing.TB) (raw [][]byte, fields []map[string]string) {
	t.Helper()
	raw = r.Lines()
	if r.FieldsFile == "" {
		return raw, nil
	}
	fb, _ := os.ReadFile(r.FieldsFile)
	for _, l := range Lines(complete(fb)) {
		var m map[string]string
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("rsyslog fields line %q: %v", l, err)
		}
		if m["msgid"] != "PROBE" {
			fields = append(fields, m)
		}
	}
	return raw, fields
}

// Wait waits up to 20 s until rsyslog wrote want messages (and their
// fields, with Options.Fields), then 200 ms more to catch duplicates, and
// returns what Read does.
func (r *Rsyslog) Wait(t testing.TB, want int) (raw [][]byte, fields []map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, fields = r.Read(t)
		if len(raw) >= want && (r.FieldsFile == "" || len(fields) >= want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d of %d messages; rsyslogd said: %s", len(raw), want, r.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return r.Read(t)
}

// FreePort returns a loopback port ("udp" or "tcp") nobody listened on a
// moment ago.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

// LockedBuffer is a bytes.Buffer safe to read while a process writes it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
