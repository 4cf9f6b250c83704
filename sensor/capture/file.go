// Package capture reads saved packet captures: classic pcap (both byte
// orders, micro- and nanosecond timestamps), pcapng (several sections and
// interfaces with different link types), either of them gzip-compressed. It
// uses gopacket's pure-Go pcapgo readers, so replay needs no libpcap.
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

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
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
	ng     *pcapgo.NgReader
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
		rd, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return fmt.Errorf("pcapng header: %w", cleanEOF(err))
		}
		c.ng = rd
		if n := rd.NInterfaces(); n > 0 {
			ok := false
			for i := range n {
				if iface, err := rd.Interface(i); err == nil && Supported(uint32(iface.LinkType)) {
					ok = true
				}
			}
			if !ok {
				iface, _ := rd.Interface(0)
				return fmt.Errorf("unsupported link type %d (%s)", uint32(iface.LinkType), iface.LinkType)
			}
		}
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
// file, and a one-line error (with the record number and, for classic pcap,
// the byte offset) when the file is damaged.
func (c *File) Next(fr *Frame) error {
	var (
		data []byte
		ci   gopacket.CaptureInfo
		err  error
	)
	if c.pcap != nil {
		data, ci, err = c.pcap.ZeroCopyReadPacketData()
		fr.LinkType = uint32(c.pcap.LinkType())
	} else {
		data, ci, err = c.ng.ZeroCopyReadPacketData()
		if err == nil && len(ci.AncillaryData) > 0 {
			if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				fr.LinkType = uint32(lt)
			}
		}
	}
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return c.recordError(err)
	}
	c.frames++
	if c.pcap != nil {
		c.offset += 16 + int64(ci.CaptureLength)
	}
	fr.Data = data
	fr.Timestamp = ci.Timestamp
	fr.WireLen = ci.Length
	fr.Interface = ci.InterfaceIndex
	return nil
}

func (c *File) recordError(err error) error {
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
