package events

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"exfilwatch/protocols/dns"
)

// recordedDNS parses a response recorded from a real dnsmasq (see
// protocols/dns/testdata/record.py).
func recordedDNS(t *testing.T, name string) dns.Response {
	t.Helper()
	s, err := os.ReadFile("../../protocols/dns/testdata/" + name + ".hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := dns.ParseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func dnsConn() Conn {
	return Conn{FlowID: 7, Transport: "udp", Client: netip.MustParseAddrPort("198.18.0.1:40000"), Server: netip.MustParseAddrPort("198.18.0.53:53")}
}

func TestJSONDNSEvent(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONWriter(&buf)
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	j.DNS(&DNS{Conn: dnsConn(), Time: ts, Response: recordedDNS(t, "cname_chain_a")})
	j.DNS(&DNS{Conn: dnsConn(), Time: ts, Response: recordedDNS(t, "nxdomain")})
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || j.Counts.DNS != 2 {
		t.Fatalf("%d lines, counts %+v", len(lines), j.Counts)
	}
	type answer struct {
		Name, Type, Data string
		TTL              int
	}
	var ev struct {
		Event  struct{ Dataset string }
		Source struct {
			IP   string
			Port int
		}
		Network struct{ Protocol, Transport string }
		DNS     struct {
			ID           string
			Type         string
			ResponseCode string   `json:"response_code"`
			HeaderFlags  []string `json:"header_flags"`
			Question     struct{ Name, Type string }
			Answers      []answer
			ResolvedIP   []string `json:"resolved_ip"`
		}
		Exfilwatch struct{ Flow struct{ ID int } }
	}
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	d := ev.DNS
	if ev.Event.Dataset != "dns" || ev.Network.Protocol != "dns" || ev.Network.Transport != "udp" || ev.Source.IP != "198.18.0.1" || ev.Exfilwatch.Flow.ID != 7 {
		t.Errorf("head: %s", lines[0])
	}
	if d.ID != "4099" || d.Type != "answer" || d.ResponseCode != "NOERROR" || d.Question.Name != "www.example.test" || d.Question.Type != "A" ||
		len(d.HeaderFlags) != 1 || d.HeaderFlags[0] != "AA" {
		t.Errorf("dns: %+v", d)
	}
	wantAns := []answer{
		{"www.example.test", "CNAME", "cdn.example.test", 300},
		{"cdn.example.test", "CNAME", "files.example.test", 300},
		{"files.example.test", "A", "198.18.0.10", 300},
	}
	if len(d.Answers) != 3 || len(d.ResolvedIP) != 1 || d.ResolvedIP[0] != "198.18.0.10" {
		t.Fatalf("answers: %+v", d)
	}
	for i := range wantAns {
		if d.Answers[i] != wantAns[i] {
			t.Errorf("answer %d = %+v, want %+v", i, d.Answers[i], wantAns[i])
		}
	}
	if !strings.Contains(lines[1], `"response_code":"NXDOMAIN"`) || strings.Contains(lines[1], "answers") || strings.Contains(lines[1], "resolved_ip") {
		t.Errorf("nxdomain: %s", lines[1])
	}
}

func TestTextDNSLine(t *testing.T) {
	var buf bytes.Buffer
	w := NewTextWriter(&buf)
	w.DNS(&DNS{Conn: dnsConn(), Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Response: recordedDNS(t, "cname_chain_a")})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "2026-11-27T10:00:00.000Z dns      198.18.0.1:40000 -> 198.18.0.53:53  www.example.test A -> NOERROR  www.example.test CNAME cdn.example.test, cdn.example.test CNAME files.example.test, files.example.test A 198.18.0.10\n"
	if buf.String() != want || w.Counts.DNS != 1 {
		t.Errorf("got  %q\nwant %q", buf.String(), want)
	}
}

// oldSink predates DNS events: it must keep working unchanged.
type oldSink struct{ flows []uint64 }

func (o *oldSink) HTTP(*HTTP)             {}
func (o *oldSink) FTPCommand(*FTPCommand) {}
func (o *oldSink) FTPData(*FTPData)       {}
func (o *oldSink) Flow(e *Flow)           { o.flows = append(o.flows, e.FlowID) }

// dnsOrderSink records the order of flow and dns events.
type dnsOrderSink struct {
	oldSink
	order []string
}

func (s *dnsOrderSink) Flow(e *Flow) { s.order = append(s.order, "flow:"+itoa(int(e.FlowID))) }
func (s *dnsOrderSink) DNS(e *DNS)   { s.order = append(s.order, "dns:"+e.Response.QName) }

func TestAsyncForwardsDNSInOrder(t *testing.T) {
	resp := recordedDNS(t, "a_files")
	for _, withDNS := range []bool{true, false} {
		var out Sink
		rec := &dnsOrderSink{}
		old := &oldSink{}
		if withDNS {
			out = rec
		} else {
			out = old
		}
		a := NewAsync(out, func() error { return nil })
		var want []string
		for i := range 600 { // more than two batches
			if i%3 == 1 {
				ev := DNS{Conn: dnsConn(), Response: resp}
				a.DNS(&ev)
				ev.Response.QName = "reused.test" // the producer reuses its record
				want = append(want, "dns:files.example.test")
			} else {
				a.Flow(&Flow{Conn: Conn{FlowID: uint64(i)}})
				want = append(want, "flow:"+itoa(i))
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if withDNS {
			if strings.Join(rec.order, " ") != strings.Join(want, " ") {
				t.Fatalf("order differs: %v", rec.order[:10])
			}
		} else if len(old.flows) != 400 {
			t.Fatalf("old sink got %d flows", len(old.flows))
		}
	}
}
