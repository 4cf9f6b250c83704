// Package http is a streaming HTTP/1.0 and HTTP/1.1 parser for a passive
// sensor. It watches both directions of one reassembled TCP connection and
// emits one Transaction per request/response pair.
//
// The parser treats its input as hostile: it never panics, never buffers a
// body (body bytes are counted and hashed in place), and keeps every piece of
// state under a limit from Limits. Where the protocol is ambiguous it does what
// Zeek does rather than what net/http does: it keeps going, reports a named
// Anomaly and picks the interpretation that counts more bytes.
//
// There is no I/O, no logging, no clock and no global state here: time comes
// from the ts of Feed, Gap and End, and results leave through the emit callback.
//
// Where things are:
//   - types.go: Transaction, Request, Response, Part.
//   - limits.go: Limits, defaults and the anomaly names.
//   - parser.go: Parser, Feed/Gap/End, the FIFO queue of requests awaiting
//     responses. The hot loop to keep efficient is Parser.Feed on a body state.
//   - message.go: start lines, starting and finishing requests and responses.
//   - state.go: the named parser states.
//   - lines.go: line framing with a bounded buffer.
//   - startline.go: request and status lines (shared with Sniff).
//   - headers.go: header fields and message framing decisions.
//   - body.go: Content-Length, chunked and close-delimited bodies, gaps.
//   - multipart.go: streaming multipart/* part splitting and hashing.
//   - params.go: boundary, name and filename parameters.
//   - sniff.go: content-based protocol detection.
package http
