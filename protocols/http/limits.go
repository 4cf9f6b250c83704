// Limits and anomaly names: every bound the parser enforces, and what it
// reports when one is hit. README.md lists the same table.

package http

import "exfilwatch/protocols"

// Defaults applied when the matching Limits field is zero (or negative). They
// are finite on purpose: a hostile peer must never make a Parser grow without
// bound.
const (
	// DefaultMaxLineBytes caps a request line, status line or header line,
	// without its CRLF. Apache and nginx use 8 KiB.
	DefaultMaxLineBytes = 8 << 10
	// DefaultMaxHeaderBytes caps one header block (start line, fields and the
	// blank line), and separately one trailer block.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxHeaders caps the header fields of one message (and trailers).
	DefaultMaxHeaders = 100
	// DefaultMaxChunkLineBytes caps a chunk-size line with its extensions, as
	// net/http's chunked reader does (maxLineLength = 4096).
	DefaultMaxChunkLineBytes = 4 << 10
	// DefaultMaxPending caps requests waiting for a response (pipelining).
	DefaultMaxPending = 32
	// DefaultMaxMultipartParts caps the parts recorded per request.
	DefaultMaxMultipartParts = 100
	// DefaultMaxMultipartHeaderBytes caps one part's header block.
	DefaultMaxMultipartHeaderBytes = 4 << 10
	// DefaultMaxChunkSize caps one chunk's declared size (1 TiB).
	DefaultMaxChunkSize = 1 << 40
	// DefaultMaxAnomalies caps the anomalies kept per transaction; later ones
	// are only counted in one AnomalyTooManyAnomalies record.
	DefaultMaxAnomalies = 32
	// DefaultMaxInformational caps Response.Informational.
	DefaultMaxInformational = 8
)

// Limits bounds the memory one Parser may use. A zero field means the
// documented default (see the Default* constants), as net/http does with
// MaxHeaderBytes. Worst case per connection is roughly
// MaxPending * (MaxHeaderBytes + MaxMultipartParts*MaxMultipartHeaderBytes)
// of kept strings, plus two line buffers of MaxLineBytes.
type Limits struct {
	MaxLineBytes            int   // longer lines are dropped: AnomalyLineTooLong
	MaxHeaderBytes          int   // later fields only frame the body: AnomalyHeaderBytesLimit
	MaxHeaders              int   // later fields only frame the body: AnomalyHeaderCountLimit
	MaxChunkLineBytes       int   // sync is lost: AnomalyChunkLineTooLong
	MaxPending              int   // the oldest is emitted without response: AnomalyTooManyPending
	MaxMultipartParts       int   // later parts are not recorded: AnomalyMultipartPartLimit
	MaxMultipartHeaderBytes int   // the rest of the part header is skipped: AnomalyMultipartHeaderLimit
	MaxChunkSize            int64 // sync is lost: AnomalyChunkSizeLimit
	MaxAnomalies            int   // later anomalies are counted: AnomalyTooManyAnomalies
	MaxInformational        int   // later 1xx codes are dropped: AnomalyTooManyInformational
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (l Limits) maxLineBytes() int   { return orDefault(l.MaxLineBytes, DefaultMaxLineBytes) }
func (l Limits) maxHeaderBytes() int { return orDefault(l.MaxHeaderBytes, DefaultMaxHeaderBytes) }
func (l Limits) maxHeaders() int     { return orDefault(l.MaxHeaders, DefaultMaxHeaders) }
func (l Limits) maxChunkLineBytes() int {
	return orDefault(l.MaxChunkLineBytes, DefaultMaxChunkLineBytes)
}
func (l Limits) maxPending() int { return orDefault(l.MaxPending, DefaultMaxPending) }
func (l Limits) maxMultipartParts() int {
	return orDefault(l.MaxMultipartParts, DefaultMaxMultipartParts)
}
func (l Limits) maxMultipartHeaderBytes() int {
	return orDefault(l.MaxMultipartHeaderBytes, DefaultMaxMultipartHeaderBytes)
}
func (l Limits) maxChunkSize() int64 {
	if l.MaxChunkSize > 0 {
		return l.MaxChunkSize
	}
	return DefaultMaxChunkSize
}
func (l Limits) maxAnomalies() int     { return orDefault(l.MaxAnomalies, DefaultMaxAnomalies) }
func (l Limits) maxInformational() int { return orDefault(l.MaxInformational, DefaultMaxInformational) }

// resolved returns l with every default applied, so the hot path reads plain
// fields instead of calling accessors.
func (l Limits) resolved() Limits {
	return Limits{
		MaxLineBytes:            l.maxLineBytes(),
		MaxHeaderBytes:          l.maxHeaderBytes(),
		MaxHeaders:              l.maxHeaders(),
		MaxChunkLineBytes:       l.maxChunkLineBytes(),
		MaxPending:              l.maxPending(),
		MaxMultipartParts:       l.maxMultipartParts(),
		MaxMultipartHeaderBytes: l.maxMultipartHeaderBytes(),
		MaxChunkSize:            l.maxChunkSize(),
		MaxAnomalies:            l.maxAnomalies(),
		MaxInformational:        l.maxInformational(),
	}
}

// Anomaly names. Limit anomalies carry Observed and Limit; protocol violations
// carry the offending text in Detail (protocols.Quote).
const (
	AnomalyLineTooLong          = "http.line_too_long"
	AnomalyHeaderBytesLimit     = "http.header_bytes_limit"
	AnomalyHeaderCountLimit     = "http.header_count_limit"
	AnomalyChunkLineTooLong     = "http.chunk_line_too_long"
	AnomalyChunkSizeLimit       = "http.chunk_size_limit"
	AnomalyTooManyPending       = "http.too_many_pending"
	AnomalyMultipartPartLimit   = "http.multipart_part_limit"
	AnomalyMultipartHeaderLimit = "http.multipart_header_limit"
	AnomalyTooManyAnomalies     = "http.too_many_anomalies"
	AnomalyTooManyInformational = "http.too_many_informational"

	AnomalyMultipleContentLength = "http.multiple_content_length"    // differing values; the largest is used
	AnomalyContentLengthChunked  = "http.content_length_and_chunked" // chunked wins
	AnomalyBadContentLength      = "http.bad_content_length"         // not a decimal number; ignored
	AnomalyBadTransferEncoding   = "http.bad_transfer_encoding"      // chunked not last, or a request TE without chunked
	AnomalyBadChunkSize          = "http.bad_chunk_size"             // not hex; sync is lost, then regained
	AnomalyMissingChunkCRLF      = "http.missing_chunk_crlf"         // chunk data not followed by CRLF
	AnomalyBadRequestLine        = "http.bad_request_line"           // in sync, a line that is no request line
	AnomalyBadStatusLine         = "http.bad_status_line"            // in sync, a line that is no status line
	AnomalyBadHeaderLine         = "http.bad_header_line"            // no colon, bad name, or a fold with nothing to continue
	AnomalyBadMultipartBoundary  = "http.bad_multipart_boundary"     // multipart/* with an unusable boundary
	AnomalyUnmatchedResponse     = "http.unmatched_response"         // a response with no request waiting
	AnomalyContentGap            = "http.content_gap"                // Gap was called; Observed is its size
	AnomalyResync                = "http.resync"                     // sync regained; Observed bytes were skipped
	AnomalyExpectBodyNotSent     = "http.expect_body_not_sent"       // Expect: 100-continue refused, next request came instead of the body
)

// addAnomaly appends a to list, keeping at most max records plus one
// AnomalyTooManyAnomalies record that counts what was dropped.
func addAnomaly(list []protocols.Anomaly, max int, a protocols.Anomaly) []protocols.Anomaly {
	switch {
	case len(list) < max:
		return append(list, a)
	case len(list) == max:
		return append(list, protocols.Anomaly{Name: AnomalyTooManyAnomalies, Observed: 1, Limit: int64(max)})
	default:
		list[len(list)-1].Observed++
		return list
	}
}
