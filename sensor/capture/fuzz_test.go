package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func pcapBytes(linkType uint32, frames ...[]byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, []uint32{0xa1b2c3d4})
	binary.Write(&b, binary.LittleEndian, []uint16{2, 4})
	binary.Write(&b, binary.LittleEndian, []uint32{0, 0, 65535, linkType})
	for i, f := range frames {
		binary.Write(&b, binary.LittleEndian, []uint32{uint32(1700000000 + i), 0, uint32(len(f)), uint32(len(f))})
		b.Write(f)
	}
	return b.Bytes()
}

func readAll(t testing.TB, path string) (n int, err error) {
	f, err := Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var fr Frame
	for {
		if err := f.Next(&fr); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

func TestOpenAndReadFormats(t *testing.T) {
	dir := t.TempDir()
	frame := bytes.Repeat([]byte{0xab}, 60)
	le := pcapBytes(1, frame, frame)
	be := make([]byte, len(le)) // the same file written big-endian
	copy(be, le)
	binary.BigEndian.PutUint32(be[0:], 0xa1b2c3d4)
	binary.BigEndian.PutUint16(be[4:], 2)
	binary.BigEndian.PutUint16(be[6:], 4)
	binary.BigEndian.PutUint32(be[16:], 65535)
	binary.BigEndian.PutUint32(be[20:], 1)
	for off := 24; off < len(be); off += 16 + 60 {
		for k := 0; k < 4; k++ {
			v := binary.LittleEndian.Uint32(le[off+4*k:])
			binary.BigEndian.PutUint32(be[off+4*k:], v)
		}
	}
	ns := append([]byte(nil), le...)
	binary.LittleEndian.PutUint32(ns, 0xa1b23c4d)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(le)
	zw.Close()
	for name, b := range map[string][]byte{"le.pcap": le, "be.pcap": be, "ns.pcap": ns, "gz.pcap.gz": gz.Bytes()} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		n, err := readAll(t, p)
		if err != nil || n != 2 {
			t.Errorf("%s: %d frames, %v", name, n, err)
		}
	}
}

func TestUnsupportedLinkTypeFailsAtOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(p, pcapBytes(9999), 0o644)
	if _, err := Open(p); err == nil || !bytes.Contains([]byte(err.Error()), []byte("unsupported link type 9999")) {
		t.Fatalf("err %v", err)
	}
	os.WriteFile(p, []byte("GIF89a...."), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrNotCapture) {
		t.Fatalf("err %v", err)
	}
}

// FuzzOpen reads arbitrary bytes as a capture file: an error is fine, a
// panic or a hang is not.
func FuzzOpen(f *testing.F) {
	f.Add(pcapBytes(1, bytes.Repeat([]byte{1}, 40)))
	f.Add(pcapBytes(0, []byte{2, 0, 0, 0, 0x45}))
	ng := []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
		1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 20, 0, 0, 0,
		6, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4, 36, 0, 0, 0}
	f.Add(ng)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.pcap")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Skip()
		}
		readAll(t, p)
	})
}
