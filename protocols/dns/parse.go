// Package dns parses DNS responses (RFC 1035) seen on the wire, so that the
// detector can name the destination of an upload that carries no Host header
// (FTP, unparsed flows). It keeps only what naming needs: the question, the
// response code and the A, AAAA and CNAME answers. It runs on hostile traffic
// as root: it never panics, never trusts a count or a length, and bounds every
// loop (see README.md). No I/O, no clock, no globals that change.
package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Record types and the class the parser keeps.
const (
	TypeA     uint16 = 1
	TypeCNAME uint16 = 5
	TypeAAAA  uint16 = 28
	ClassIN   uint16 = 1
)

// Limits of the parser. They are constants, not knobs: each one is far above
// what a real resolver sends and low enough that a crafted message costs
// little.
const (
	// MaxMessageBytes is the largest message accepted: the TCP length
	// prefix cannot say more, and UDP cannot carry more.
	MaxMessageBytes = 65535
	// MaxNameBytes is RFC 1035's limit on a name in wire form (length
	// bytes and the final zero included).
	MaxNameBytes = 255
	// MaxPointers bounds the compression pointers followed in one name:
	// it ends pointer loops. A legitimate name needs one.
	MaxPointers = 16
	// MaxQuestions bounds the questions walked to reach the answers.
	// Resolvers send one.
	MaxQuestions = 4
	// MaxAnswers bounds the A/AAAA/CNAME answers kept; more are counted in
	// Response.Dropped. Large round-robin sets have a few dozen.
	MaxAnswers = 64
	// MaxRecords bounds the resource records walked in the answer section,
	// whatever their type.
	MaxRecords = 512
)

// ErrNotResponse says the message is well-formed enough to be a DNS query or
// a non-QUERY operation rather than a response to a query: not malformed,
// just nothing to name.
var ErrNotResponse = errors.New("dns: not a response to a standard query")

// Answer is one kept resource record of the answer section.
type Answer struct {
	Name   string // owner name, lower case, without the final dot
	Type   uint16 // TypeA, TypeAAAA or TypeCNAME
	TTL    uint32
	Addr   netip.Addr // A and AAAA
	Target string     // CNAME: the canonical name, lower case
}

// Data is the record's value as text: the address or the CNAME target.
func (a *Answer) Data() string {
	if a.Type == TypeCNAME {
		return a.Target
	}
	if a.Addr.IsValid() {
		return a.Addr.String()
	}
	return ""
}

// Response is a parsed DNS response.
type Response struct {
	ID    uint16
	QName string // first question's name, lower case ("" when none)
	QType uint16
	RCode int // header RCODE (4 bits; the EDNS extension is not read)
	// Truncated is the TC bit: the server cut the answer (the client will
	// usually retry over TCP).
	Truncated bool
	// Authoritative is the AA bit.
	Authoritative bool
	Answers       []Answer
	// Skipped are answer records of other types or classes (DNAME, RRSIG,
	// ...); Dropped are A/AAAA/CNAME answers past MaxAnswers or records past
	// MaxRecords.
	Skipped, Dropped int
}

// ParseResponseTCP parses one DNS message with its 2-byte TCP length prefix
// (RFC 1035 4.2.2). Bytes after the message are ignored.
func ParseResponseTCP(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, errors.New("dns: tcp length prefix truncated")
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b)-2 < n {
		return Response{}, fmt.Errorf("dns: tcp message truncated: %d of %d bytes", len(b)-2, n)
	}
	return ParseResponse(b[2 : 2+n])
}

// ParseResponse parses one DNS message as carried by UDP. Authority and
// additional sections are not read.
func ParseResponse(b []byte) (Response, error) {
	var r Response
	if len(b) > MaxMessageBytes {
		return r, fmt.Errorf("dns: message of %d bytes exceeds %d", len(b), MaxMessageBytes)
	}
	if len(b) < 12 {
		return r, fmt.Errorf("dns: header truncated: %d of 12 bytes", len(b))
	}
	r.ID = u16(b, 0)
	flags := u16(b, 2)
	if flags&0x8000 == 0 || (flags>>11)&0xf != 0 {
		return r, ErrNotResponse
	}
	r.Authoritative = flags&0x0400 != 0
	r.Truncated = flags&0x0200 != 0
	r.RCode = int(flags & 0xf)
	qd, an := int(u16(b, 4)), int(u16(b, 6))
	if qd > MaxQuestions {
		return r, fmt.Errorf("dns: %d questions exceed %d", qd, MaxQuestions)
	}
	off := 12
	for i := range qd {
		name, next, err := readName(b, off)
		if err != nil {
			return r, fmt.Errorf("dns: question %d: %w", i+1, err)
		}
		if len(b)-next < 4 {
			return r, fmt.Errorf("dns: question %d: type and class truncated", i+1)
		}
		if i == 0 {
			r.QName, r.QType = name, u16(b, next)
		}
		off = next + 4
	}
	// A truncated response (TC) may end inside a record: keep what is
	// whole. Without TC, a record that does not fit is malformed.
	for i := range an {
		if i >= MaxRecords {
			r.Dropped += an - i
			break
		}
		a, next, kept, err := readAnswer(b, off)
		if err != nil {
			if r.Truncated {
				r.Dropped += an - i
				break
			}
			return r, fmt.Errorf("dns: answer %d: %w", i+1, err)
		}
		off = next
		switch {
		case !kept:
			r.Skipped++
		case len(r.Answers) >= MaxAnswers:
			r.Dropped++
		default:
			r.Answers = append(r.Answers, a)
		}
	}
	return r, nil
}

// readAnswer decodes the resource record at off. kept is false for records
// of other types or classes, which are only stepped over.
func readAnswer(b []byte, off int) (a Answer, next int, kept bool, err error) {
	name, next, err := readName(b, off)
	if err != nil {
		return a, 0, false, err
	}
	if len(b)-next < 10 {
		return a, 0, false, errors.New("record header truncated")
	}
	typ, class := u16(b, next), u16(b, next+2)
	ttl := uint32(u16(b, next+4))<<16 | uint32(u16(b, next+6))
	rdlen := int(u16(b, next+8))
	rd := next + 10
	if len(b)-rd < rdlen {
		return a, 0, false, fmt.Errorf("rdata truncated: %d of %d bytes", len(b)-rd, rdlen)
	}
	end := rd + rdlen
	if class != ClassIN || typ != TypeA && typ != TypeAAAA && typ != TypeCNAME {
		return a, end, false, nil
	}
	a = Answer{Name: name, Type: typ, TTL: ttl}
	switch typ {
	case TypeA, TypeAAAA:
		want := 4
		if typ == TypeAAAA {
			want = 16
		}
		if rdlen != want {
			return a, 0, false, fmt.Errorf("%s rdata of %d bytes, want %d", TypeString(typ), rdlen, want)
		}
		a.Addr, _ = netip.AddrFromSlice(b[rd:end])
	case TypeCNAME:
		// The target may point back into the message, but its own bytes
		// must stay inside the rdata.
		t, tend, err := readName(b[:end], rd)
		if err != nil {
			return a, 0, false, fmt.Errorf("cname: %w", err)
		}
		if tend != end {
			return a, 0, false, fmt.Errorf("cname rdata has %d extra bytes", end-tend)
		}
		a.Target = t
	}
	return a, end, true, nil
}

func u16(b []byte, i int) uint16 { return uint16(b[i])<<8 | uint16(b[i+1]) }

// readName decodes the (possibly compressed) name at off and returns it with
// the offset just past its in-place bytes. The text is lower case without the
// final dot; the root is ".". Bytes that are not letters, digits, '-' or '_'
// are escaped as dig prints them (\. and \DDD), so that a label holding a dot
// can never pass for two labels when the name is matched against a glob.
func readName(b []byte, off int) (string, int, error) {
	var buf [MaxNameBytes * 4]byte // worst case: every byte as \DDD
	out := buf[:0]
	wire := 0 // wire length of the name so far, the final zero included
	end := -1 // where the in-place bytes end, once a pointer was followed
	ptrs := 0
	for {
		if off >= len(b) {
			return "", 0, errors.New("name truncated")
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
		case 0xc0:
			if off+1 >= len(b) {
				return "", 0, errors.New("compression pointer truncated")
			}
			if ptrs++; ptrs > MaxPointers {
				return "", 0, fmt.Errorf("more than %d compression pointers", MaxPointers)
			}
			if end < 0 {
				end = off + 2
			}
			off = int(u16(b, off) & 0x3fff)
			continue
		default:
			return "", 0, fmt.Errorf("unsupported label type 0x%02x", c&0xc0)
		}
		wire += c + 1
		if wire > MaxNameBytes {
			return "", 0, fmt.Errorf("name longer than %d bytes", MaxNameBytes)
		}
		if c == 0 {
			off++
			break
		}
		if off+1+c > len(b) {
			return "", 0, errors.New("label truncated")
		}
		if len(out) > 0 {
			out = append(out, '.')
		}
		for _, ch := range b[off+1 : off+1+c] {
			out = appendLabelByte(out, ch)
		}
		off += 1 + c
	}
	if end < 0 {
		end = off
	}
	if len(out) == 0 {
		return ".", end, nil
	}
	return string(out), end, nil
}

func appendLabelByte(out []byte, ch byte) []byte {
	switch {
	case ch >= 'A' && ch <= 'Z':
		return append(out, ch+'a'-'A')
	case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
		return append(out, ch)
	case ch == '.' || ch == '\\':
		return append(out, '\\', ch)
	}
	return append(out, '\\', '0'+ch/100, '0'+ch/10%10, '0'+ch%10)
}

// TypeString names a record type as zone files do; unknown types are
// written TYPEnnn (RFC 3597).
func TypeString(t uint16) string {
	switch t {
	case TypeA:
		return "A"
	case 2:
		return "NS"
	case TypeCNAME:
		return "CNAME"
	case 6:
		return "SOA"
	case 12:
		return "PTR"
	case 15:
		return "MX"
	case 16:
		return "TXT"
	case TypeAAAA:
		return "AAAA"
	case 33:
		return "SRV"
	case 39:
		return "DNAME"
	case 64:
		return "SVCB"
	case 65:
		return "HTTPS"
	case 255:
		return "ANY"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// RCodeString names a response code (RFC 1035, RFC 2136), as ECS
// dns.response_code wants; unknown codes are written RCODEnn.
func RCodeString(c int) string {
	names := [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}
	if c >= 0 && c < len(names) {
		return names[c]
	}
	return "RCODE" + strconv.Itoa(c)
}
