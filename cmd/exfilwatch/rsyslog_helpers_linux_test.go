package main

import (
	"strings"
	"testing"

	"exfilwatch/internal/rsyslogtest"
	"exfilwatch/sensor/output/syslog"
)

// The lab's use of the real-rsyslog harness (internal/rsyslogtest):
// rsyslogd runs inside the lab's host namespace on its loopback, where the
// sensor under test runs too.

// rsyslogd is one rsyslogd run in the foreground inside a namespace. Each
// line of its output file is "<input module> <raw message>", so a test can
// tell which destination (imudp, imptcp for tcp://, imtcp for tls://) a
// message came through.
type rsyslogd struct {
	*rsyslogtest.Rsyslog
	stderr *lockedBuffer
}

type lockedBuffer = rsyslogtest.LockedBuffer

// startRsyslogd starts rsyslogd in ns with a UDP input on 127.0.0.1:udpPort
// (also the readiness probe's) plus the given inputs, and returns once the
// probe was written out, so every input listens.
func startRsyslogd(t *testing.T, ns string, udpPort int, inputs string) *rsyslogd {
	t.Helper()
	r := rsyslogtest.Start(t, rsyslogtest.Options{Netns: ns, UDPPort: udpPort, Inputs: inputs, InputName: true})
	return &rsyslogd{Rsyslog: r, stderr: r.Stderr}
}

// messages returns what rsyslog wrote so far, probes left out, by input
// module.
func (r *rsyslogd) messages() map[string][][]byte { return r.ByInput() }

// rsyslogTLSInput is an imtcp listener with the gtls driver, any client;
// its certificate is newTestPKI's (collector.test, 127.0.0.1).
func rsyslogTLSInput(p testPKI, port int) string { return rsyslogtest.TLSInput(p.PKI, port, "anon") }

// rsyslogTCPInput is a plain TCP listener (octet-counted framing).
func rsyslogTCPInput(port int) string { return rsyslogtest.TCPInput(port) }

// syslogMsg is an RFC 5424 message as go-syslog parsed it.
type syslogMsg struct {
	*rsyslogtest.Parsed
	sd  map[string]string
	msg []byte // MSG without its BOM
}

// parseSyslog5424 parses strictly and requires exfilwatch's SD element.
func parseSyslog5424(raw []byte) (*syslogMsg, error) {
	p, err := rsyslogtest.Parse5424(raw, syslog.SDID)
	if err != nil {
		return nil, err
	}
	return &syslogMsg{Parsed: p, sd: p.SD, msg: p.Msg}, nil
}

var derefStr = rsyslogtest.Str

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
