// Package capture reads saved packet captures: classic pcap (both byte
// orders, micro- and nanosecond timestamps), pcapng (several sections and
// interfaces with different link types), either of them gzip-compressed.
// Classic pcap is read with gopacket's pure-Go pcapgo reader; pcapng with
// this package's own block walker (pcapng.go), which also returns Apple's
// per-packet process metadata (Frame.Meta). Replay needs no libpcap.
package capture

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one captured frame. Data is owned by the reader and only valid
// until the next call to Next.
type Frame struct {
	Data      []byte
	Timestamp time.Time
	WireLen   int
	LinkType  uint32
	Interface int
	// Meta is the packet's process metadata from Apple pcapng blocks and
	// options (pcapng only; zero for classic pcap). For link types 149/258
	// the PKTAP header is decoded by the decode package instead.
	Meta ProcMeta
}

// Format names a capture file format.
type Format string

const (
	FormatPcap   Format = "pcap"
	FormatPcapNG Format = "pcapng"
)

const readBufferSize = 1 << 20

// File is an open capture file.
type File struct {
	Path       string
	Format     Format
	Compressed bool

	f      *os.File
	gz     *gzip.Reader
	pcap   *pcapgo.Reader
	ngr    *ngReader // pcapng.go
	frames int64
	offset int64 // classic pcap: byte offset of the next record (uncompressed)
}

// ErrNotCapture says a file is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng file")

// Open opens a capture file and reads its header. Errors name the file and
// say what is wrong in one line.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	c := &File{Path: path, f: f}
	if err := c.init(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (c *File) init() error {
	if st, err := c.f.Stat(); err == nil && st.IsDir() {
		return errors.New("is a directory, not a capture file")
	}
	var r io.Reader = bufio.NewReaderSize(c.f, readBufferSize)
	br := r.(*bufio.Reader)
	head, err := br.Peek(2)
	if len(head) == 0 {
		if err == nil || err == io.EOF {
			return errors.New("empty file")
		}
		return err
	}
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		c.gz = gz
		c.Compressed = true
		br = bufio.NewReaderSize(gz, readBufferSize)
	}
	magic, err := br.Peek(4)
	if len(magic) < 4 {
		if len(magic) == 0 && c.Compressed {
			return errors.New("empty file (inside gzip)")
		}
		return fmt.Errorf("%w: only %d bytes", ErrNotCapture, len(magic))
	}
	switch binary.LittleEndian.Uint32(magic) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		c.Format = FormatPcap
		rd, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("pcap header: %w", cleanEOF(err))
		}
		c.pcap = rd
		c.offset = 24
		if !Supported(uint32(rd.LinkType())) {
			return fmt.Errorf("unsupported link type %d (%s)", uint32(rd.LinkType()), rd.LinkType())
		}
	case 0x0a0d0d0a:
		c.Format = FormatPcapNG
		rd, err := newNgReader(br)
		if err != nil {
			return fmt.Errorf("pcapng header: %w", cleanEOF(err))
		}
		c.ngr = rd
	default:
		return fmt.Errorf("%w (magic 0x%08x)", ErrNotCapture, binary.BigEndian.Uint32(magic))
	}
	return nil
}

func cleanEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated header")
	}
	return err
}

// Supported reports whether the decoder knows a link type.
func Supported(lt uint32) bool {
	switch lt {
	case 0, 1, 12, 14, 101, 108, 113, 149, 228, 229, 258, 276:
		return true
	}
	return false
}

// Frames returns how many frames were read so far.
func (c *File) Frames() int64 { return c.frames }

// Next reads the next frame into fr. It returns io.EOF at the end of the
// file, and a one-line error when the file is damaged: with the record
// number and byte offset for classic pcap, the packets read so far and the
// block's byte offset for pcapng.
func (c *File) Next(fr *Frame) error {
	if c.ngr != nil {
		if err := c.ngr.next(fr); err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return c.recordError(err)
		}
		c.frames++
		return nil
	}
	data, ci, err := c.pcap.ZeroCopyReadPacketData()
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return c.recordError(err)
	}
	c.frames++
	c.offset += 16 + int64(ci.CaptureLength)
	fr.Data = data
	fr.Timestamp = ci.Timestamp
	fr.WireLen = ci.Length
	fr.LinkType = uint32(c.pcap.LinkType())
	fr.Interface = ci.InterfaceIndex
	fr.Meta = ProcMeta{}
	return nil
}

func (c *File) recordError(err error) error {
	var ne *NgError
	if errors.As(err, &ne) {
		return fmt.Errorf("%s: %s (after %d packets, block at byte offset %d)", c.Path, ne.Msg, c.frames, ne.Offset)
	}
	what := err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		what = "truncated: the last record is incomplete"
	}
	if c.pcap != nil {
		return fmt.Errorf("%s: %s (record %d at byte offset %d)", c.Path, what, c.frames+1, c.offset)
	}
	return fmt.Errorf("%s: %s (after %d packets)", c.Path, what, c.frames)
}

// Close closes the file.
func (c *File) Close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	return c.f.Close()
}
