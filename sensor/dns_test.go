package sensor

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"exfilwatch/protocols/dns"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/events"
)

// dnsSink is a sink that also wants DNS events; it records every kind in
// order.
type dnsSink struct {
	sink
	dns   []events.DNS
	order []string
}

func (s *dnsSink) DNS(e *events.DNS) {
	s.dns = append(s.dns, *e)
	s.order = append(s.order, "dns")
}

func (s *dnsSink) Flow(e *events.Flow) {
	s.sink.Flow(e)
	s.order = append(s.order, "flow")
}

// A real capture: dig asking a real dnsmasq on port 53 over UDP (three
// answers) and once over TCP, which the sensor leaves to the TCP path
// (testdata/record_dns.sh).
func TestDNSFromRecordedCapture(t *testing.T) {
	f, err := capture.Open("testdata/dns_dnsmasq.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := &dnsSink{}
	s := New(Config{}, k)
	var fr capture.Frame
	for {
		err := f.Next(&fr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s.Frame(&fr)
	}
	s.Flush()
	st := s.Stats().Sensor
	if st.DNSResponses != 3 || st.DNSMalformed != 0 || len(k.dns) != 3 {
		t.Fatalf("responses %d malformed %d events %d", st.DNSResponses, st.DNSMalformed, len(k.dns))
	}
	want := []struct {
		qname string
		rcode int
		data  []string
	}{
		{"www.example.test", 0, []string{"cdn.example.test", "files.example.test", "198.18.0.10"}},
		{"files.example.test", 0, []string{"2001:2::10"}},
		{"nope.nx.example.test", 3, nil},
	}
	flowIDs := map[uint64]bool{}
	for _, fl := range k.flows {
		if fl.Transport == "udp" {
			flowIDs[fl.FlowID] = true
		}
	}
	names := dns.NewNames(0)
	for i, ev := range k.dns {
		r := &ev.Response
		var data []string
		for j := range r.Answers {
			data = append(data, r.Answers[j].Data())
		}
		if r.QName != want[i].qname || r.RCode != want[i].rcode || !reflect.DeepEqual(data, want[i].data) {
			t.Errorf("event %d: %s rcode %d %q", i, r.QName, r.RCode, data)
		}
		// dig is the client, dnsmasq the server; the event names the UDP
		// flow whose summary is written too.
		if ev.Transport != "udp" || ev.Server.Port() != 53 || ev.Client.Port() == 53 || !flowIDs[ev.FlowID] {
			t.Errorf("event %d conn %+v (udp flows %v)", i, ev.Conn, flowIDs)
		}
		if ev.Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
		names.Observe(r, ev.Time)
	}
	if got := names.Names(netip.MustParseAddr("198.18.0.10")); !reflect.DeepEqual(got, []string{"www.example.test", "cdn.example.test", "files.example.test"}) {
		t.Errorf("names of 198.18.0.10 = %q", got)
	}
	// Each DNS event precedes the summary of its flow (written at Flush).
	if k.order[0] != "dns" || k.order[len(k.order)-1] != "flow" {
		t.Errorf("order %v", k.order)
	}
}

// udpFrame sends one UDP datagram as an Ethernet frame.
func udpFrame(t *testing.T, s *Sensor, now time.Time, sport, dport uint16, payload []byte) {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 0, 53}, DstIP: net.IP{198, 18, 0, 1}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	s.Frame(&capture.Frame{Data: buf.Bytes(), Timestamp: now, WireLen: len(buf.Bytes()), LinkType: 1})
}

func TestDNSMalformedQueriesAndOtherPorts(t *testing.T) {
	// A real dnsmasq answer (protocols/dns/testdata/a_files.hex).
	answer := []byte("\x10\x01\x85\x80\x00\x01\x00\x01\x00\x00\x00\x00\x05files\x07example\x04test\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc6\x12\x00\x0a")
	query := append([]byte(nil), answer[:len("files.example.test")+2+12+4]...)
	query[2], query[7] = 0x01, 0 // QR clear, no answers
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

	k := &dnsSink{}
	s := New(Config{}, k)
	udpFrame(t, s, now, 53, 40000, answer[:20]) // cut: malformed
	udpFrame(t, s, now, 53, 40000, query)       // a query from port 53: not an answer
	udpFrame(t, s, now, 5353, 40001, answer)    // mDNS port: not read
	udpFrame(t, s, now, 40002, 53, answer)      // to port 53: not read
	udpFrame(t, s, now, 53, 40000, answer)      // the one answer
	st := s.Stats().Sensor
	if st.DNSMalformed != 1 || st.DNSResponses != 1 || len(k.dns) != 1 {
		t.Fatalf("malformed %d responses %d events %d", st.DNSMalformed, st.DNSResponses, len(k.dns))
	}
	if ev := k.dns[0]; ev.Client != netip.MustParseAddrPort("198.18.0.1:40000") || ev.Response.Answers[0].Addr != netip.MustParseAddr("198.18.0.10") {
		t.Errorf("event %+v", ev)
	}

	// A sink that predates DNS events gets none, and nothing is parsed.
	old := &sink{}
	s = New(Config{}, old)
	udpFrame(t, s, now, 53, 40000, answer[:20])
	udpFrame(t, s, now, 53, 40000, answer)
	s.Flush()
	if st := s.Stats().Sensor; st.DNSMalformed != 0 || st.DNSResponses != 0 || len(old.flows) != 1 {
		t.Fatalf("old sink: %+v, %d flows", st, len(old.flows))
	}
}
