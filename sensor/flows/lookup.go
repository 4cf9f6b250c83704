package flows

import "exfilwatch/sensor/decode"

// Lookup returns the flow a packet belongs to, or nil. The sensor uses it
// after Packet to name the flow of a UDP datagram it reads itself (DNS
// responses): the table hands UDP payloads to no Handler.
func (t *Table) Lookup(p *decode.Packet) *Flow {
	k, _, _ := keyOf(p)
	return t.m[k]
}
