package dns

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readHex loads a response recorded from a real dnsmasq by testdata/record.py.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func ans(name string, typ uint16, data string) Answer {
	a := Answer{Name: name, Type: typ, TTL: 300}
	if typ == TypeCNAME {
		a.Target = data
	} else {
		a.Addr = netip.MustParseAddr(data)
	}
	return a
}

func TestParseRecordedResponses(t *testing.T) {
	rr := make([]Answer, 0, 20)
	for i := 1; i <= 20; i++ {
		rr = append(rr, ans("rr.example.test", TypeA, netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}).String()))
	}
	cases := []struct {
		file    string
		tcp     bool
		id      uint16
		qname   string
		qtype   uint16
		rcode   int
		answers []Answer
		anyOrd  bool // round robin: dnsmasq shuffles
	}{
		{"a_files", false, 0x1001, "files.example.test", TypeA, 0, []Answer{ans("files.example.test", TypeA, "198.18.0.10")}, false},
		{"aaaa_files", false, 0x1002, "files.example.test", TypeAAAA, 0, []Answer{ans("files.example.test", TypeAAAA, "2001:2::10")}, false},
		// Asked in mixed case: every name comes back lower case.
		{"cname_chain_a", false, 0x1003, "www.example.test", TypeA, 0, []Answer{
			ans("www.example.test", TypeCNAME, "cdn.example.test"),
			ans("cdn.example.test", TypeCNAME, "files.example.test"),
			ans("files.example.test", TypeA, "198.18.0.10"),
		}, false},
		{"nxdomain", false, 0x1004, "nope.nx.example.test", TypeA, 3, nil, false},
		{"round_robin", false, 0x1005, "rr.example.test", TypeA, 0, rr, true},
		{"tcp_cname_chain_aaaa", true, 0x1006, "www.example.test", TypeAAAA, 0, []Answer{
			ans("www.example.test", TypeCNAME, "cdn.example.test"),
			ans("cdn.example.test", TypeCNAME, "files.example.test"),
			ans("files.example.test", TypeAAAA, "2001:2::10"),
		}, false},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b := readHex(t, c.file)
			var r Response
			var err error
			if c.tcp {
				r, err = ParseResponseTCP(b)
			} else {
				r, err = ParseResponse(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != c.id || r.QName != c.qname || r.QType != c.qtype || r.RCode != c.rcode || r.Truncated || r.Skipped != 0 || r.Dropped != 0 {
				t.Fatalf("header = %+v", r)
			}
			// dnsmasq answers its own records authoritatively, not the
			// blocked domain.
			if r.Authoritative != (c.rcode == 0) {
				t.Errorf("AA = %v", r.Authoritative)
			}
			got := r.Answers
			if c.anyOrd {
				got = sortedByAddr(got)
			}
			if len(got) != len(c.answers) {
				t.Fatalf("answers = %+v, want %+v", got, c.answers)
			}
			for i := range got {
				if got[i] != c.answers[i] {
					t.Errorf("answer %d = %+v, want %+v", i, got[i], c.answers[i])
				}
			}
		})
	}
}

func sortedByAddr(a []Answer) []Answer {
	out := append([]Answer(nil), a...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Addr.Less(out[i].Addr) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// msg builds a response by hand for the malformed cases.
type msg struct{ b []byte }

func newMsg(flags uint16, qd, an int) *msg {
	return &msg{b: []byte{0xbe, 0xef, byte(flags >> 8), byte(flags), 0, byte(qd), 0, byte(an), 0, 0, 0, 0}}
}

func (m *msg) raw(b ...byte) *msg { m.b = append(m.b, b...); return m }

func (m *msg) name(s string) *msg {
	for _, l := range strings.Split(s, ".") {
		m.b = append(m.b, byte(len(l)))
		m.b = append(m.b, l...)
	}
	m.b = append(m.b, 0)
	return m
}

// rr appends a record header after its owner name.
func (m *msg) rr(typ uint16, rdlen int) *msg {
	return m.raw(byte(typ>>8), byte(typ), 0, 1, 0, 0, 0x0e, 0x10, byte(rdlen>>8), byte(rdlen))
}

const flagsResp = 0x8180

func TestParseRejectsMalformed(t *testing.T) {
	longName := strings.Repeat("a23456789.", 26) // 260 wire bytes
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "header truncated"},
		{"short header", []byte{1, 2, 3}, "header truncated"},
		{"question truncated", newMsg(flagsResp, 1, 0).raw(3, 'a', 'b').b, "label truncated"},
		{"question type missing", newMsg(flagsResp, 1, 0).name("a.test").raw(0, 1).b, "type and class truncated"},
		{"too many questions", newMsg(flagsResp, 5, 0).b, "5 questions"},
		{"pointer loop", newMsg(flagsResp, 1, 0).raw(0xc0, 12).b, "compression pointers"},
		{"two-pointer loop", newMsg(flagsResp, 1, 0).raw(1, 'a', 0xc0, 14, 0xc0, 12).b, "compression pointers"},
		{"pointer past end", newMsg(flagsResp, 1, 0).raw(0xc0, 200).b, "name truncated"},
		{"pointer cut", newMsg(flagsResp, 1, 0).raw(0xc0).b, "pointer truncated"},
		{"extended label", newMsg(flagsResp, 1, 0).raw(0x41, 0).b, "label type 0x40"},
		{"name too long", newMsg(flagsResp, 1, 0).name(longName+"test").raw(0, 1, 0, 1).b, "longer than 255"},
		{"announced answer missing", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1).b, "answer 1: name truncated"},
		{"record header cut", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12, 0, 1).b, "record header truncated"},
		{"rdata cut", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeA, 4).raw(1, 2).b, "rdata truncated"},
		{"A of 5 bytes", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeA, 5).raw(1, 2, 3, 4, 5).b, "A rdata of 5 bytes"},
		{"AAAA of 4 bytes", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeAAAA, 4).raw(1, 2, 3, 4).b, "AAAA rdata of 4 bytes"},
		// The target's bytes may not run past the rdata into the next record.
		{"cname past rdata", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeCNAME, 2).raw(1, 'b', 0).b, "cname: name truncated"},
		{"cname with trailing bytes", newMsg(flagsResp, 1, 1).name("a.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeCNAME, 4).raw(0xc0, 12, 9, 9).b, "2 extra bytes"},
		{"tcp prefix cut", []byte{0}, "length prefix"},
		{"tcp message cut", []byte{0, 20, 1, 2}, "2 of 20 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(c.name, "tcp") {
				_, err = ParseResponseTCP(c.b)
			} else {
				_, err = ParseResponse(c.b)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "dns: ") {
				t.Errorf("error %q is not one line starting with dns:", err)
			}
		})
	}
}

func TestQueriesAreNotResponses(t *testing.T) {
	for _, flags := range []uint16{0x0100 /* query */, 0xa800 /* NOTIFY response */} {
		_, err := ParseResponse(newMsg(flags, 1, 0).name("a.test").raw(0, 1, 0, 1).b)
		if !errors.Is(err, ErrNotResponse) {
			t.Errorf("flags %#04x: err = %v, want ErrNotResponse", flags, err)
		}
	}
}

// RFC 1035 4.1.4's example: F.ISI.ARPA, FOO.F.ISI.ARPA by pointer, and ARPA
// as a pointer to the middle of the first name.
func TestCompressionLikeRFC1035(t *testing.T) {
	m := newMsg(flagsResp, 1, 3).name("F.ISI.ARPA").raw(0, 1, 0, 1)
	m.raw(3, 'F', 'O', 'O', 0xc0, 12).rr(TypeA, 4).raw(198, 18, 0, 1)
	m.raw(0xc0, 12+6).rr(TypeAAAA, 16).raw(0x20, 1, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
	m.raw(0xc0, 12).rr(TypeCNAME, 4).raw(1, 'x', 0xc0, 14)
	r, err := ParseResponse(m.b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Answer{
		{Name: "foo.f.isi.arpa", Type: TypeA, TTL: 3600, Addr: netip.MustParseAddr("198.18.0.1")},
		{Name: "arpa", Type: TypeAAAA, TTL: 3600, Addr: netip.MustParseAddr("2001:2:0:0:100::")},
		{Name: "f.isi.arpa", Type: TypeCNAME, TTL: 3600, Target: "x.isi.arpa"},
	}
	if r.QName != "f.isi.arpa" || len(r.Answers) != len(want) {
		t.Fatalf("got %+v", r)
	}
	for i := range want {
		if r.Answers[i] != want[i] {
			t.Errorf("answer %d = %+v, want %+v", i, r.Answers[i], want[i])
		}
	}
}

func TestOddBytesAreEscaped(t *testing.T) {
	// One label "allowed.com" under evil.test: it must not read as the
	// allowed.com domain.
	m := newMsg(flagsResp, 1, 1).raw(11).raw([]byte("allowed.com")...).raw(4).raw([]byte("evil")...).raw(4).raw([]byte("test")...).raw(0, 0, 1, 0, 1)
	m.raw(2, 0x00, '\\', 0xc0, 12).rr(TypeA, 4).raw(198, 18, 0, 2)
	r, err := ParseResponse(m.b)
	if err != nil {
		t.Fatal(err)
	}
	if r.QName != `allowed\.com.evil.test` {
		t.Errorf("qname = %q", r.QName)
	}
	if got := r.Answers[0].Name; got != `\000\\.allowed\.com.evil.test` {
		t.Errorf("owner = %q", got)
	}
}

func TestSkippedDroppedAndTruncated(t *testing.T) {
	// 70 A records, one TXT, one CHAOS-class A: 64 kept.
	m := newMsg(flagsResp, 1, 72).name("many.test").raw(0, 1, 0, 1)
	for i := range 70 {
		m.raw(0xc0, 12).rr(TypeA, 4).raw(198, 18, 2, byte(i))
	}
	m.raw(0xc0, 12).rr(16, 3).raw(2, 'h', 'i')
	m.raw(0xc0, 12).raw(0, 1, 0, 3, 0, 0, 0, 0, 0, 4, 198, 18, 0, 3)
	r, err := ParseResponse(m.b)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != MaxAnswers || r.Dropped != 70-MaxAnswers || r.Skipped != 2 {
		t.Fatalf("answers %d dropped %d skipped %d", len(r.Answers), r.Dropped, r.Skipped)
	}
	if r.Answers[MaxAnswers-1].Addr != netip.AddrFrom4([4]byte{198, 18, 2, MaxAnswers - 1}) {
		t.Errorf("last kept = %v", r.Answers[MaxAnswers-1].Addr)
	}

	// TC set and the second record cut: the first is kept, no error.
	tc := newMsg(0x8380, 1, 3).name("tc.test").raw(0, 1, 0, 1)
	tc.raw(0xc0, 12).rr(TypeA, 4).raw(198, 18, 0, 4)
	tc.raw(0xc0, 12).rr(TypeA, 4).raw(198)
	r, err = ParseResponse(tc.b)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Answers) != 1 || r.Dropped != 2 {
		t.Fatalf("truncated response: %+v", r)
	}
	// The same bytes without TC are malformed.
	tc.b[2] = 0x81
	if _, err := ParseResponse(tc.b); err == nil {
		t.Fatal("cut record without TC accepted")
	}
}

func TestMaxRecordsBoundsTheWalk(t *testing.T) {
	m := newMsg(flagsResp, 0, 0).raw()
	m.b[6], m.b[7] = 0xff, 0xff // 65535 announced
	for range MaxRecords + 10 {
		m.raw(0).rr(16, 0) // root-owned empty TXT: 11 bytes each
	}
	r, err := ParseResponse(m.b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Skipped != MaxRecords || r.Dropped != 65535-MaxRecords {
		t.Fatalf("skipped %d dropped %d", r.Skipped, r.Dropped)
	}
}

func TestNames(t *testing.T) {
	if got := TypeString(TypeAAAA) + TypeString(999) + RCodeString(3) + RCodeString(23); got != "AAAATYPE999NXDOMAINRCODE23" {
		t.Error(got)
	}
}
