package events

import "exfilwatch/internal/jsonenc"

// enc appends one JSON object at a time, without reflection: the
// short-connection benchmark writes two events per connection and
// encoding/json's reflection would cost more than decoding the packets. Its
// zero value is the events' dialect (no HTML escaping, nine-digit times).
type enc struct {
	jsonenc.Encoder
}

// appendString appends s as a JSON string in the events' dialect (no HTML
// escaping; invalid UTF-8, which hostile traffic puts in any header, as
// U+FFFD so every line stays valid JSON).
func appendString(b []byte, s string) []byte {
	return jsonenc.AppendString(b, s, false)
}
