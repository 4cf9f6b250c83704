// The named states of one direction's parser.

package http

// state is where one direction of the connection is in the HTTP grammar.
type state uint8

const (
	stStartLine  state = iota // expecting a request or status line; initial state, must be zero
	stHunt                    // sync lost or mid-stream start: skipping lines until a start line
	stHeaders                 // inside a header block
	stBodyLength              // inside a body of known remaining length
	stChunkSize               // expecting a chunk-size line
	stChunkData               // inside chunk data of known remaining length
	stChunkEnd                // expecting the CRLF that ends chunk data
	stTrailers                // inside the trailer block after the last chunk
	stBodyClose               // inside a body that runs until this direction ends
	stOpaque                  // tunnel, upgrade or ended: bytes are ignored
)

func (s state) String() string {
	switch s {
	case stStartLine:
		return "start_line"
	case stHunt:
		return "hunt"
	case stHeaders:
		return "headers"
	case stBodyLength:
		return "body_length"
	case stChunkSize:
		return "chunk_size"
	case stChunkData:
		return "chunk_data"
	case stChunkEnd:
		return "chunk_end"
	case stTrailers:
		return "trailers"
	case stBodyClose:
		return "body_close"
	case stOpaque:
		return "opaque"
	}
	return "invalid"
}

// mpState is where the multipart splitter is inside a request body.
type mpState uint8

const (
	mpPreamble   mpState = iota // before the first delimiter: bytes ignored; initial state, must be zero
	mpAfterDelim                // after "--boundary": "--" closes, else padding up to LF
	mpHeaders                   // inside a part's header block
	mpBody                      // inside a part's body: bytes counted and hashed
	mpEpilogue                  // after the close delimiter: bytes ignored
)

func (s mpState) String() string {
	switch s {
	case mpPreamble:
		return "preamble"
	case mpAfterDelim:
		return "after_delimiter"
	case mpHeaders:
		return "part_headers"
	case mpBody:
		return "part_body"
	case mpEpilogue:
		return "epilogue"
	}
	return "invalid"
}
