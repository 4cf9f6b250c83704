package dns

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestNamesFollowCNAMEChainOnRealResponse(t *testing.T) {
	n := NewNames(0)
	r, err := ParseResponse(readHex(t, "cname_chain_a"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	n.Observe(&r, t0)
	ip := netip.MustParseAddr("198.18.0.10")
	want := []string{"www.example.test", "cdn.example.test", "files.example.test"}
	if got := n.Names(ip); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names = %q, want %q", got, want)
	}
	// An IPv4-mapped address is the same host.
	if got := n.Names(netip.MustParseAddr("::ffff:198.18.0.10")); !reflect.DeepEqual(got, want) {
		t.Fatalf("mapped Names = %q", got)
	}
	// A later direct answer for files.example.test puts it first.
	r2, err := ParseResponse(readHex(t, "a_files"))
	if err != nil {
		t.Fatal(err)
	}
	n.Observe(&r2, t0.Add(time.Second))
	want = []string{"files.example.test", "www.example.test", "cdn.example.test"}
	if got := n.Names(ip); !reflect.DeepEqual(got, want) {
		t.Fatalf("after re-resolution Names = %q, want %q", got, want)
	}
	l := n.Lookup(ip)
	if len(l) != 3 || !l[0].At.Equal(t0.Add(time.Second)) || !l[1].At.Equal(t0) {
		t.Fatalf("Lookup = %+v", l)
	}
	if n.Names(netip.MustParseAddr("198.18.0.11")) != nil {
		t.Fatal("unknown address has names")
	}
	// The AAAA of the same chain, over TCP.
	r3, err := ParseResponseTCP(readHex(t, "tcp_cname_chain_aaaa"))
	if err != nil {
		t.Fatal(err)
	}
	n.Observe(&r3, t0)
	if got := n.Names(netip.MustParseAddr("2001:2::10")); len(got) != 3 || got[0] != "www.example.test" {
		t.Fatalf("AAAA Names = %q", got)
	}
}

func TestNamesBounded(t *testing.T) {
	n := NewNames(2)
	at := time.Unix(0, 0)
	resp := func(name string, ip string) *Response {
		return &Response{Answers: []Answer{{Name: name, Type: TypeA, Addr: netip.MustParseAddr(ip)}}}
	}
	n.Observe(resp("a.test", "198.18.0.1"), at)
	n.Observe(resp("b.test", "198.18.0.2"), at)
	n.Observe(resp("a2.test", "198.18.0.1"), at) // .1 is now the most recent
	n.Observe(resp("c.test", "198.18.0.3"), at)  // evicts .2
	if n.Names(netip.MustParseAddr("198.18.0.2")) != nil {
		t.Error("least recently resolved address kept")
	}
	if got := n.Names(netip.MustParseAddr("198.18.0.1")); !reflect.DeepEqual(got, []string{"a2.test", "a.test"}) {
		t.Errorf(".1 = %q", got)
	}
	if st := n.Stats(); st.Addrs != 2 || st.Evictions != 1 || st.NamesDropped != 0 {
		t.Errorf("stats = %+v", st)
	}
	// One CDN address behind many names keeps the latest MaxNamesPerAddr.
	for i := range MaxNamesPerAddr + 3 {
		n.Observe(resp(string(rune('a'+i))+".cdn.test", "198.18.0.3"), at)
	}
	got := n.Names(netip.MustParseAddr("198.18.0.3"))
	if len(got) != MaxNamesPerAddr || got[0] != string(rune('a'+MaxNamesPerAddr+2))+".cdn.test" {
		t.Errorf("cdn names = %q", got)
	}
	if st := n.Stats(); st.NamesDropped != 4 { // c.test and the three oldest cdn names
		t.Errorf("names dropped = %d", st.NamesDropped)
	}
}

// A CNAME loop in a hostile response ends the chain walk.
func TestNamesCNAMELoop(t *testing.T) {
	n := NewNames(0)
	r := &Response{Answers: []Answer{
		{Name: "a.test", Type: TypeCNAME, Target: "x.test"},
		{Name: "b.test", Type: TypeCNAME, Target: "a.test"},
		{Name: "a.test", Type: TypeCNAME, Target: "b.test"},
		{Name: "x.test", Type: TypeA, Addr: netip.MustParseAddr("198.18.0.9")},
	}}
	n.Observe(r, time.Unix(0, 0))
	got := n.Names(netip.MustParseAddr("198.18.0.9"))
	if !reflect.DeepEqual(got, []string{"b.test", "a.test", "x.test"}) {
		t.Fatalf("Names = %q", got)
	}
}
