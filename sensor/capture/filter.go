package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/bpf"
)

// CompileFilter turns a tcpdump-syntax filter into a BPF program for frames
// of the given link type, without linking libpcap: it asks the system's
// tcpdump (always present on macOS, a Debian package on Linux) to compile
// it against an empty capture file of that link type ("tcpdump -ddd").
func CompileFilter(expr string, linkType uint32) ([]bpf.RawInstruction, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		for _, p := range []string{"/usr/sbin/tcpdump", "/usr/bin/tcpdump"} {
			if _, e := os.Stat(p); e == nil {
				tcpdump, err = p, nil
				break
			}
		}
		if err != nil {
			return nil, errors.New("compile filter: tcpdump is needed to compile --bpf expressions and was not found")
		}
	}
	f, err := os.CreateTemp("", "exfilwatch-filter-*.pcap")
	if err != nil {
		return nil, fmt.Errorf("compile filter: %w", err)
	}
	defer os.Remove(f.Name())
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], linkType)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		return nil, fmt.Errorf("compile filter: %w", err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tcpdump, "-ddd", "-r", f.Name(), expr)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return nil, fmt.Errorf("bad filter %q: %s", expr, strings.TrimPrefix(msg, "tcpdump: "))
	}
	return ParseDDD(out)
}

// ParseDDD parses "tcpdump -ddd" output: a count, then one "code jt jf k"
// line per instruction.
func ParseDDD(out []byte) ([]bpf.RawInstruction, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return nil, errors.New("compile filter: empty program")
	}
	n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || n <= 0 || n > 4096 {
		return nil, fmt.Errorf("compile filter: bad instruction count %q", sc.Text())
	}
	prog := make([]bpf.RawInstruction, 0, n)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			return nil, fmt.Errorf("compile filter: bad instruction %q", sc.Text())
		}
		var v [4]uint64
		for i := range f {
			if v[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("compile filter: bad instruction %q", sc.Text())
			}
		}
		if v[1] > 255 || v[2] > 255 || v[0] > 0xffff {
			return nil, fmt.Errorf("compile filter: bad instruction %q", sc.Text())
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) != n {
		return nil, fmt.Errorf("compile filter: %d instructions, header said %d", len(prog), n)
	}
	return prog, nil
}

// Filter runs a compiled program in user space, for sources whose kernel
// filter cannot be used (PKTAP on macOS: BPF filters do not apply there).
type Filter struct{ vm *bpf.VM }

// NewFilter builds a user-space filter from a compiled program.
func NewFilter(prog []bpf.RawInstruction) (*Filter, error) {
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		// Some raw instructions have no typed form; the VM still needs them.
		return nil, errors.New("filter: program uses instructions the user-space VM does not support")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return &Filter{vm: vm}, nil
}

// Match reports whether the frame passes the filter.
func (f *Filter) Match(frame []byte) bool {
	n, err := f.vm.Run(frame)
	return err == nil && n > 0
}
