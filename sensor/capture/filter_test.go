package capture

import (
	"os/exec"
	"strings"
	"testing"
)

func TestCompileFilterWithTcpdump(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (make test installs it)")
	}
	prog, err := CompileFilter("tcp port 80", 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(prog)
	if err != nil {
		t.Fatal(err)
	}
	// Ethernet + IPv4 + TCP to port 80, and the same to port 22.
	pkt := func(dport byte) []byte {
		b := make([]byte, 14+20+20)
		b[12], b[13] = 0x08, 0x00
		b[14] = 0x45
		b[14+9] = 6
		b[14+20+2], b[14+20+3] = 0, dport
		return b
	}
	if !f.Match(pkt(80)) || f.Match(pkt(22)) {
		t.Fatalf("filter matches wrongly: %v %v", f.Match(pkt(80)), f.Match(pkt(22)))
	}
	if _, err := CompileFilter("tcp port nonsense(", 1); err == nil || !strings.Contains(err.Error(), "bad filter") {
		t.Fatalf("bad expression: %v", err)
	}
}

func TestParseDDDRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "x\n", "2\n1 2 3 4\n", "1\n1 2 3\n", "1\n70000 0 0 1\n", "1\n6 0 0 65535\n6 0 0 0\n"} {
		if _, err := ParseDDD([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if p, err := ParseDDD([]byte("1\n6 0 0 65535\n")); err != nil || len(p) != 1 || p[0].K != 65535 {
		t.Fatalf("%v %v", p, err)
	}
}
