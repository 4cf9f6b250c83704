package sensor

import (
	"errors"

	"exfilwatch/protocols/dns"
	"exfilwatch/sensor/decode"
	"exfilwatch/sensor/events"
)

// dnsPort is the only port whose UDP payloads are read as DNS responses:
// mDNS (5353) and LLMNR answer for the local link, which is never an upload
// destination.
const dnsPort = 53

// dnsPacket reads the current packet as a DNS response when it is UDP from
// port 53 and the sink wants DNS events (events.DNSSink). The event goes
// through the same queue as the others, so it keeps its place in the output
// and gets its flow's process when attribution runs.
func (s *Sensor) dnsPacket() {
	p := &s.pkt
	if p.Proto != decode.ProtoUDP || p.SrcPort != dnsPort || len(p.Payload) == 0 {
		return
	}
	if _, ok := s.sink.(events.DNSSink); !ok {
		return
	}
	r, err := dns.ParseResponse(p.Payload)
	if errors.Is(err, dns.ErrNotResponse) {
		return // a query or a NOTIFY from a server's port: nothing to name
	}
	if err != nil {
		// A snap length that cut the datagram is not the sender's fault,
		// but its answers are lost all the same.
		s.C.DNSMalformed++
		return
	}
	f := s.table.Lookup(p)
	if f == nil {
		return
	}
	st, ok := f.App.(*flowState)
	if !ok {
		return
	}
	s.C.DNSResponses++
	ev := &events.DNS{Conn: s.connOf(f, st), Time: p.Timestamp, Response: r}
	s.pe = pendingEvent{Record: events.Record{Kind: events.KindDNS, DNS: ev}}
	s.emit(&s.pe)
}
