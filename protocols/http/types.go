// The records the parser emits. This file is just the types.

package http

import (
	"time"

	"exfilwatch/protocols"
)

// Transaction is one request and the response matched to it (FIFO, as
// HTTP/1.1 pipelining requires). The emit callback owns it after the call.
//
// A response with no request to match (the client side was lost or started
// mid-stream) is emitted with a zero Request (Method "", ContentLength -1) and
// the anomaly AnomalyUnmatchedResponse.
type Transaction struct {
	Request   Request
	Response  *Response // nil when no response was seen
	Anomalies []protocols.Anomaly
	Gap       bool // some bytes of this transaction were never captured

	reqDone     bool // the request is finished (complete or not)
	respStarted bool // a status line (interim or final) was matched to it
	respDone    bool // the final response is finished, or none will come
	discard     bool // scratch record for a response to an evicted request
	seq         uint64
}

// Seq is the transaction's number on its connection, from 1 in the order
// the parser started them (0 for a Transaction not made by a Parser). With
// the connection's identity it names the transaction: a copy taken by an
// OnRequest hook and the emitted transaction share it.
func (t *Transaction) Seq() uint64 { return t.seq }

// Request is what the client sent.
type Request struct {
	Start   time.Time // ts of the Feed that delivered the first request-line byte
	End     time.Time // ts at which the body completed (or the request was given up)
	Method  string
	Target  string // exactly as on the wire
	Version string // "1.0", "1.1" or "0.9"

	Host, UserAgent, ContentType, Connection, TransferEncoding, ContentEncoding string

	ContentLength int64 // -1 if absent or unusable
	Chunked       bool
	Expect100     bool

	HeaderBytes   int64    // request line, header fields and the blank line, terminators included
	BodyBytes     int64    // de-chunked, not decompressed; gap bytes inside a body included
	BodySHA256    [32]byte // valid only when BodyHashValid
	BodyHashValid bool     // false if a gap hit the body or the body did not complete
	BodyComplete  bool     // the body ended where its framing said it would

	Multipart []Part // when Content-Type is multipart/* with a boundary
}

// Part is one part of a multipart request body.
type Part struct {
	Name, Filename, ContentType string
	Bytes                       int64 // between the part's header block and the next delimiter
	SHA256                      [32]byte
	HashValid                   bool // false if a gap hit the part or it was not terminated
}

// Response is what the server sent back.
type Response struct {
	Start      time.Time // ts of the first status line (interim or final)
	End        time.Time // ts at which the body completed
	Version    string    // "1.0", "1.1" or "0.9" (raw HTTP/0.9 reply)
	StatusCode int
	Reason     string

	ContentType, ContentEncoding string

	ContentLength int64 // -1 if absent or unusable
	Chunked       bool
	BodyBytes     int64
	BodyComplete  bool
	Informational []int // 1xx codes seen before the final response, e.g. 100
}
