package attribution

// This file parses lsof output about network files: the field output of
// `lsof -nP -iTCP -iUDP -F pcRuftPnT` (the macOS fallback when libproc
// cannot be used) and, for the samples people paste, the columnar output
// of `lsof -i`. Untagged: the parsers take an io.Reader and are tested on
// every platform. Formats: shared/reference/macos-formats.md §4 (lsof 4.91
// lsof.8 "OUTPUT FOR OTHER PROGRAMS", include/lsof_fields.h).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// MaxLsofLine bounds one lsof field (-F) or line (columnar). A longer one
// is skipped, counted, and reported as ErrLsofLineTooLong once the rest is
// parsed.
const MaxLsofLine = 4096

// ErrLsofLineTooLong says lsof output had fields or lines longer than
// MaxLsofLine; they were skipped.
var ErrLsofLineTooLong = errors.New("attribution: lsof line too long")

// LsofFile is one TCP or UDP file of lsof output, with what lsof says of
// its process besides the socket.
type LsofFile struct {
	Socket
	// Command is the process name: in -F output lsof's full name (pbi_name
	// on macOS), in columnar output cut to 9 characters unless +c 0.
	Command string
	// PPID is the parent pid (-F R), 0 when not given.
	PPID int32
	// User is the USER column of columnar output (a name, or a uid with
	// -l); empty for -F output, which gives UID.
	User string
	// Type is lsof's TYPE: "IPv4" or "IPv6". A v4-mapped socket is "IPv6"
	// with IPv4 addresses.
	Type string
}

// ParseLsofF parses the output of `lsof -nP -iTCP -iUDP -F pcRuftPnT` into
// sockets: one per TCP or UDP file whose name lsof printed as addresses.
// Fields may end with NL or NUL (-F0). Fields it does not use are ignored,
// and missing ones leave zero values (FD -1 when f is missing or is not a
// number). Files it cannot make a socket of are skipped. The error is
// non-nil only for a read error or when fields longer than MaxLsofLine
// were skipped; the sockets parsed are returned with it.
func ParseLsofF(r io.Reader) ([]Socket, error) {
	files, err := ParseLsofFFiles(r)
	out := make([]Socket, len(files))
	for i := range files {
		out[i] = files[i].Socket
	}
	return out, err
}

// ParseLsofFFiles is ParseLsofF with the process fields lsof gave.
func ParseLsofFFiles(r io.Reader) ([]LsofFile, error) {
	var (
		out     []LsofFile
		proc    lsofProc
		file    lsofFFile
		inProc  bool
		inFile  bool
		tooLong int
	)
	flush := func() {
		if inProc && inFile {
			if f, ok := file.socket(proc); ok {
				out = append(out, f)
			}
		}
		inFile = false
		file = lsofFFile{}
	}
	sc := lsofScanner(r, true, &tooLong)
	for sc.Scan() {
		field := sc.Bytes()
		if len(field) == 0 {
			continue
		}
		v := string(field[1:])
		switch field[0] {
		case 'p':
			flush()
			proc = lsofProc{}
			inProc = true
			if pid, err := strconv.ParseInt(v, 10, 32); err == nil && pid >= 0 {
				proc.pid = int32(pid)
			} else {
				inProc = false // files of this process cannot be attributed
			}
		case 'c':
			proc.command = v
		case 'R':
			if ppid, err := strconv.ParseInt(v, 10, 32); err == nil && ppid >= 0 {
				proc.ppid = int32(ppid)
			}
		case 'u':
			if uid, err := strconv.ParseUint(v, 10, 32); err == nil {
				proc.uid, proc.uidKnown = uint32(uid), true
			}
		case 'f':
			flush()
			inFile = true
			file.fd = lsofFD(v)
		case 't':
			file.typ = v
		case 'P':
			file.proto = v
		case 'n':
			file.name = v
		case 'T':
			if st, ok := strings.CutPrefix(v, "ST="); ok {
				file.state = st
			}
		}
	}
	flush()
	return out, lsofScanErr(sc.Err(), tooLong)
}

type lsofProc struct {
	pid, ppid int32
	command   string
	uid       uint32
	uidKnown  bool
}

type lsofFFile struct {
	fd                      int32
	typ, proto, name, state string
}

func (f lsofFFile) socket(p lsofProc) (LsofFile, bool) {
	proto, ok := lsofProto(f.proto)
	if !ok || (f.typ != "IPv4" && f.typ != "IPv6") {
		return LsofFile{}, false
	}
	local, remote, ok := lsofParseName(f.name, f.typ == "IPv6")
	if !ok {
		return LsofFile{}, false
	}
	s := Socket{Proto: proto, Local: local, Remote: remote, PID: p.pid, FD: f.fd}
	if proto == TCP {
		s.State = f.state
	}
	if p.uidKnown {
		s.UID = p.uid
	}
	return LsofFile{Socket: s, Command: p.command, PPID: p.ppid, Type: f.typ}, true
}

// ParseLsofColumns parses the columnar output of `lsof -i` (COMMAND PID
// USER FD TYPE DEVICE SIZE/OFF NODE NAME, then "(STATE)" for TCP), as in
// the real macOS samples. The TYPE column (IPv4/IPv6) anchors each line,
// so a COMMAND with spaces (+c 0) is kept whole. The header and lines that
// are not TCP/UDP files are skipped. UID is set only when USER is numeric
// (lsof -l). The error is as for ParseLsofF.
func ParseLsofColumns(r io.Reader) ([]LsofFile, error) {
	var out []LsofFile
	tooLong := 0
	sc := lsofScanner(r, false, &tooLong)
	for sc.Scan() {
		if f, ok := lsofColumnLine(sc.Text()); ok {
			out = append(out, f)
		}
	}
	return out, lsofScanErr(sc.Err(), tooLong)
}

func lsofColumnLine(line string) (LsofFile, bool) {
	tok := strings.Fields(line)
	t := -1
	for i := 4; i < len(tok); i++ {
		if tok[i] == "IPv4" || tok[i] == "IPv6" {
			t = i
			break
		}
	}
	if t < 0 {
		return LsofFile{}, false
	}
	pid, err := strconv.ParseInt(tok[t-3], 10, 32)
	if err != nil || pid < 0 {
		return LsofFile{}, false
	}
	p := -1
	for i := t + 1; i < len(tok) && i <= t+4; i++ {
		if _, ok := lsofProto(tok[i]); ok {
			p = i
			break
		}
	}
	if p < 0 || p+1 >= len(tok) {
		return LsofFile{}, false
	}
	proto, _ := lsofProto(tok[p])
	local, remote, ok := lsofParseName(tok[p+1], tok[t] == "IPv6")
	if !ok {
		return LsofFile{}, false
	}
	f := LsofFile{
		Socket:  Socket{Proto: proto, Local: local, Remote: remote, PID: int32(pid), FD: lsofFD(tok[t-1])},
		Command: strings.Join(tok[:t-3], " "),
		User:    tok[t-2],
		Type:    tok[t],
	}
	if uid, err := strconv.ParseUint(f.User, 10, 32); err == nil {
		f.UID = uint32(uid)
	}
	if proto == TCP && p+2 < len(tok) {
		if st, ok := strings.CutPrefix(tok[p+2], "("); ok {
			f.State, _ = strings.CutSuffix(st, ")")
		}
	}
	return f, true
}

// lsofScanner splits r into -F fields (NL or NUL ends one) or lines (NL),
// skipping any longer than MaxLsofLine and counting them in *tooLong.
func lsofScanner(r io.Reader, nul bool, tooLong *int) *bufio.Scanner {
	seps := "\n"
	if nul {
		seps = "\n\x00"
	}
	discarding := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLsofLine+1)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, seps); i >= 0 {
			if discarding {
				discarding = false
				return i + 1, nil, nil
			}
			return i + 1, bytes.TrimSuffix(data[:i], []byte("\r")), nil
		}
		if len(data) > MaxLsofLine {
			if !discarding {
				*tooLong++
			}
			discarding = true
			return len(data), nil, nil
		}
		if atEOF && len(data) > 0 {
			if discarding {
				return len(data), nil, nil
			}
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	return sc
}

func lsofScanErr(err error, tooLong int) error {
	if err != nil {
		return fmt.Errorf("attribution: reading lsof output: %w", err)
	}
	if tooLong > 0 {
		return fmt.Errorf("%w: %d longer than %d bytes skipped", ErrLsofLineTooLong, tooLong, MaxLsofLine)
	}
	return nil
}

func lsofProto(s string) (uint8, bool) {
	switch s {
	case "TCP":
		return TCP, true
	case "UDP":
		return UDP, true
	}
	return 0, false
}

// lsofFD reads an FD: digits, then in columnar output the access mode and
// lock characters ("9u", "39u"). Anything else (cwd, txt) is -1.
func lsofFD(s string) int32 {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 {
		return -1
	}
	fd, err := strconv.ParseInt(s[:end], 10, 32)
	if err != nil {
		return -1
	}
	return int32(fd)
}

// lsofParseName parses an lsof NAME for an Internet file:
// "10.0.0.1:51291->35.186.224.47:443", "*:8080", "*:*", "[::1]:9229",
// "[fe80:4::1]:1111->[fe80:4::2]:2222". Anything after a space (a columnar
// " (ESTABLISHED)") is ignored. A "*" address is the unspecified address
// of the file's family; a "*" port is 0. An unspecified remote with port 0
// gives a zero Remote.
func lsofParseName(name string, v6 bool) (local, remote netip.AddrPort, ok bool) {
	if i := strings.IndexByte(name, ' '); i >= 0 {
		name = name[:i]
	}
	l, r, connected := strings.Cut(name, "->")
	local, ok = lsofParseEndpoint(l, v6)
	if !ok {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	if connected {
		remote, ok = lsofParseEndpoint(r, v6)
		if !ok {
			return netip.AddrPort{}, netip.AddrPort{}, false
		}
		if remote.Addr().IsUnspecified() && remote.Port() == 0 {
			remote = netip.AddrPort{}
		}
	}
	return local, remote, true
}

func lsofParseEndpoint(s string, v6 bool) (netip.AddrPort, bool) {
	var host, port string
	if rest, ok := strings.CutPrefix(s, "["); ok {
		h, p, ok := strings.Cut(rest, "]:")
		if !ok {
			return netip.AddrPort{}, false
		}
		host, port = h, p
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return netip.AddrPort{}, false
		}
		host, port = s[:i], s[i+1:]
	}
	var addr netip.Addr
	switch {
	case host == "*" && v6:
		addr = netip.IPv6Unspecified()
	case host == "*":
		addr = netip.IPv4Unspecified()
	default:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, false
		}
		addr = lsofUnscope(a)
	}
	p, ok := lsofPort(port)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, p), true
}

// lsofUnscope unmaps an IPv4-mapped address and moves the interface index
// lsof prints inside a link-local address (it prints the kernel's
// embedded KAME scope: "fe80:4::aede:48ff:fe00:1122") to the zone.
func lsofUnscope(a netip.Addr) netip.Addr {
	if a.Is4In6() {
		return a.Unmap()
	}
	if !a.Is6() || a.Zone() != "" {
		return a
	}
	b, zone := sockinfoKAMEScope(a.As16())
	if zone == 0 {
		return a
	}
	return netip.AddrFrom16(b).WithZone(strconv.Itoa(int(zone)))
}

// lsofServices are the service names lsof prints without -P for ports the
// sensor is likely to see (macOS /etc/services).
var lsofServices = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25,
	"domain": 53, "http": 80, "pop3": 110, "sunrpc": 111, "ntp": 123,
	"imap": 143, "snmp": 161, "ldap": 389, "https": 443, "microsoft-ds": 445,
	"submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995,
	"http-alt": 8080, "mdns": 5353,
}

func lsofPort(s string) (uint16, bool) {
	if s == "*" {
		return 0, true
	}
	if p, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(p), true
	}
	p, ok := lsofServices[s]
	return p, ok
}
