// This file is the pure parser of the kernel's /proc/net/{tcp,tcp6,udp,udp6}
// tables and of /proc/PID/fd link targets. It takes an io.Reader and does no
// other I/O, so it is tested on every platform. The table that uses it is in
// procfs_linux.go.

package attribution

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// MaxProcNetLine is the longest /proc/net line ParseProcNet accepts. The
// kernel pads tcp lines to 150 bytes and tcp6 lines to 178; a longer line is
// not the kernel's and is skipped as bad (ErrProcLineTooLong).
const MaxProcNetLine = 1024

// procErrorLimit caps how much of a bad line an error quotes.
const procErrorLimit = 80

var (
	// ErrProcLineTooLong says a line was longer than MaxProcNetLine.
	ErrProcLineTooLong = errors.New("attribution: line too long")
	errProcNetLine     = errors.New("attribution: malformed /proc/net line")
)

// ProcNetError says that ParseProcNet skipped lines it could not parse. The
// sockets of the good lines are still returned with it.
type ProcNetError struct {
	Bad       int   // number of lines skipped
	FirstLine int   // 1-based line number of the first bad line (the header is line 1)
	Err       error // why the first bad line was rejected
}

func (e *ProcNetError) Error() string {
	return fmt.Sprintf("attribution: /proc/net: %d bad line(s) skipped, first at line %d: %v", e.Bad, e.FirstLine, e.Err)
}

func (e *ProcNetError) Unwrap() error { return e.Err }

// procTCPStates names the kernel's TCP states (include/net/tcp_states.h) as
// netstat and ss print them. Index is the state number.
var procTCPStates = [...]string{
	1:  "ESTABLISHED",
	2:  "SYN_SENT",
	3:  "SYN_RECV",
	4:  "FIN_WAIT1",
	5:  "FIN_WAIT2",
	6:  "TIME_WAIT",
	7:  "CLOSE",
	8:  "CLOSE_WAIT",
	9:  "LAST_ACK",
	10: "LISTEN",
	11: "CLOSING",
	12: "NEW_SYN_RECV",
}

// ParseProcNet parses one of the kernel's /proc/net/{tcp,tcp6,udp,udp6}
// tables. proto is TCP or UDP and ipv6 says which family's file it is (the
// address columns have 8 or 32 hex digits). The header line is skipped.
//
// Addresses are printed by the kernel as host-order 32-bit words in hex: an
// IPv4 address is one word, an IPv6 address four, so on a little-endian host
// 127.0.0.1 reads "0100007F" and ::1 reads "00000000000000000000000001000000".
// The parser decodes them with the byte order of the host it runs on, which
// is the order of the kernel that wrote them. Ports are plain hex numbers.
// IPv4-mapped IPv6 addresses are returned unmapped; a zero remote
// (listening or unconnected socket) is returned as the zero AddrPort.
//
// A malformed line is skipped and counted: the sockets of the good lines
// are returned together with a *ProcNetError. A read error is returned
// wrapped, with the sockets read before it. A last line without its newline
// is taken as truncated and skipped.
func ParseProcNet(r io.Reader, proto uint8, ipv6 bool) ([]Socket, error) {
	var out []Socket
	br := newProcNetReader()
	br.Reset(r)
	err := scanProcNet(br, proto, ipv6, func(s *Socket) bool {
		out = append(out, *s)
		return true
	})
	return out, err
}

// newProcNetReader returns a reader sized for scanProcNet, to Reset onto
// each table.
func newProcNetReader() *bufio.Reader { return bufio.NewReaderSize(nil, MaxProcNetLine) }

// scanProcNet calls fn for each socket of a /proc/net table until fn returns
// false. br must have a buffer of MaxProcNetLine bytes or less: a line that
// does not fit is skipped. It returns a read error, else a *ProcNetError
// when lines were skipped, else nil.
func scanProcNet(br *bufio.Reader, proto uint8, ipv6 bool, fn func(*Socket) bool) error {
	if proto != TCP && proto != UDP {
		return fmt.Errorf("attribution: /proc/net: unknown protocol %d", proto)
	}
	var (
		bad     *ProcNetError
		lineNo  int
		tooLong bool // inside the rest of an over-long line
		s       Socket
	)
	markBad := func(err error) {
		if bad == nil {
			bad = &ProcNetError{FirstLine: lineNo, Err: err}
		}
		bad.Bad++
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong {
				lineNo++
				markBad(ErrProcLineTooLong)
			}
			tooLong = true
			continue
		}
		if tooLong {
			// This is the end of an over-long line, already counted.
			tooLong = false
			if err == nil {
				continue
			}
			line = nil
		}
		if len(line) > 0 {
			lineNo++
			switch {
			case err == io.EOF:
				markBad(fmt.Errorf("%w: last line has no newline: %q", io.ErrUnexpectedEOF, procQuote(line)))
			case lineNo == 1 && isProcNetHeader(line):
				// skip
			default:
				if perr := parseProcNetLine(line, proto, ipv6, &s); perr != nil {
					markBad(perr)
				} else if !fn(&s) {
					return procNetErrOrNil(bad)
				}
			}
		}
		if err == io.EOF {
			return procNetErrOrNil(bad)
		}
		if err != nil {
			return fmt.Errorf("attribution: reading /proc/net: %w", err)
		}
	}
}

// procNetErrOrNil avoids returning a typed nil pointer as a non-nil error.
func procNetErrOrNil(e *ProcNetError) error {
	if e == nil {
		return nil
	}
	return e
}

func isProcNetHeader(line []byte) bool {
	var buf [2][]byte
	f := procFields(line, buf[:0])
	return len(f) > 1 && string(f[0]) == "sl" && string(f[1]) == "local_address"
}

// parseProcNetLine parses one data line into s. Columns (all tables):
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func parseProcNetLine(line []byte, proto uint8, ipv6 bool, s *Socket) error {
	var buf [12][]byte
	f := procFields(line, buf[:0])
	if len(f) < 10 {
		return fmt.Errorf("%w: %d fields, want at least 10: %q", errProcNetLine, len(f), procQuote(line))
	}
	if n := len(f[0]); n < 2 || f[0][n-1] != ':' {
		return fmt.Errorf("%w: bad slot %q", errProcNetLine, procQuote(f[0]))
	}
	local, ok1 := procParseHexAddrPort(f[1], ipv6)
	remote, ok2 := procParseHexAddrPort(f[2], ipv6)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: bad address in %q", errProcNetLine, procQuote(line))
	}
	st, ok := procParseHex(f[3], 2)
	if !ok || st == 0 || st >= uint64(len(procTCPStates)) {
		return fmt.Errorf("%w: bad state %q", errProcNetLine, procQuote(f[3]))
	}
	uid, ok := procParseDec(f[7], 32)
	if !ok {
		return fmt.Errorf("%w: bad uid %q", errProcNetLine, procQuote(f[7]))
	}
	inode, ok := procParseDec(f[9], 64)
	if !ok {
		return fmt.Errorf("%w: bad inode %q", errProcNetLine, procQuote(f[9]))
	}
	*s = Socket{Proto: proto, Local: local, UID: uint32(uid), Inode: inode, FD: -1}
	if remote.Port() != 0 || !remote.Addr().IsUnspecified() {
		s.Remote = remote
	}
	if proto == TCP {
		s.State = procTCPStates[st]
	}
	return nil
}

// procParseHexAddrPort parses "0100007F:0CEA" (or the 32-digit IPv6 form).
func procParseHexAddrPort(b []byte, ipv6 bool) (netip.AddrPort, bool) {
	n := 8
	if ipv6 {
		n = 32
	}
	if len(b) != n+5 || b[n] != ':' {
		return netip.AddrPort{}, false
	}
	port, ok := procParseHex(b[n+1:], 4)
	if !ok {
		return netip.AddrPort{}, false
	}
	var a [16]byte
	for i := 0; i < n/8; i++ {
		w, ok := procParseHex(b[8*i:8*i+8], 8)
		if !ok {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(a[4*i:], uint32(w))
	}
	var addr netip.Addr
	if ipv6 {
		addr = netip.AddrFrom16(a).Unmap()
	} else {
		addr = netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// procParseHex parses exactly n hex digits.
func procParseHex(b []byte, n int) (uint64, bool) {
	if len(b) != n {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// procParseDec parses a non-empty unsigned decimal that fits in bits.
func procParseDec[T string | []byte](b T, bits uint) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n := v*10 + uint64(c-'0')
		if v > (1<<64-1)/10 || n < v*10 {
			return 0, false
		}
		v = n
	}
	if bits < 64 && v>>bits != 0 {
		return 0, false
	}
	return v, true
}

// procFields splits b at spaces and tabs (like bytes.Fields, without allocating
// when dst has room), stopping at cap(dst) fields when cap(dst) > 0.
func procFields(b []byte, dst [][]byte) [][]byte {
	limit := cap(dst)
	i := 0
	for i < len(b) {
		for i < len(b) && procIsSpace(b[i]) {
			i++
		}
		if i == len(b) {
			break
		}
		j := i
		for j < len(b) && !procIsSpace(b[j]) {
			j++
		}
		if limit > 0 && len(dst) == limit {
			break
		}
		dst = append(dst, b[i:j])
		i = j
	}
	return dst
}

func procIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// procQuote caps b for an error message.
func procQuote(b []byte) []byte {
	if len(b) > procErrorLimit {
		return b[:procErrorLimit]
	}
	return b
}

// parseFDLink returns the inode of a /proc/PID/fd link target of the form
// "socket:[12345]", and false for any other target (files, pipes, anon
// inodes, malformed).
func parseFDLink(target string) (inode uint64, ok bool) {
	return procParseSocketLink(target)
}

func procParseSocketLink[T string | []byte](t T) (uint64, bool) {
	const prefix = "socket:["
	if len(t) < len(prefix)+2 || string(t[:len(prefix)]) != prefix || t[len(t)-1] != ']' {
		return 0, false
	}
	return procParseDec(t[len(prefix):len(t)-1], 64)
}
