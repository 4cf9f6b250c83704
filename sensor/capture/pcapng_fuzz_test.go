package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPcapNG walks arbitrary bytes as a pcapng stream: an error is fine; a
// panic, a hang, a packet larger than the input or a byte offset past it is
// not. Seeds: Apple's samples (when the shared reference is there),
// captures/mixed.pcapng and synthetic files with every block type. Large
// files are cut to their first blocks: the fuzzer minimises every new
// input, which takes minutes on a 100 KB seed and stalls the run.
//
//	go test ./sensor/capture -run '^$' -fuzz FuzzPcapNG -fuzztime 30s
func FuzzPcapNG(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(macOSSamples, "apple_tcpdump_*.pcapng"))
	seeds = append(seeds, "../../captures/mixed.pcapng")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(firstBlocks(b, 4<<10))
		}
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		b := newNg(order)
		b.idb(0, stropt(optIfName, "lo0\x00"), ngOpt{optIfTsresol, []byte{0x80 | 10}}, ngOpt{optIfTsoffset, b.u64(3)})
		b.pib(5, stropt(optPibName, "p\x00"), ngOpt{optPibUUID, bytes.Repeat([]byte{1}, 16)})
		b.epb(0, 1, []byte{2, 0, 0, 0, 0x45}, u32opt(b, optEpbPIB, 0), u32opt(b, optEpbEPIB, 1), u32opt(b, optEpbFlags, 1),
			u32opt(b, optEpbSvc, 900), u32opt(b, optEpbPMDFlags, 8), u32opt(b, optEpbFlowID, 7), ngOpt{optEpbTraceTag, b.u16(1)})
		b.block(ngSPB, append(b.u32(3), 1, 2, 3))
		b.block(ngISB, make([]byte, 12))
		b.shb()
		b.idb(1)
		b.epb(0, 2, []byte{1})
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ng, err := newNgReader(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		var fr Frame
		for n := 0; ; n++ {
			if n > len(b)/12+1 {
				t.Fatalf("%d packets from %d bytes", n, len(b))
			}
			err := ng.next(&fr)
			if ng.off > int64(len(b)) {
				t.Fatalf("offset %d past the end (%d)", ng.off, len(b))
			}
			if err != nil {
				if err != io.EOF {
					_ = err.Error()
				}
				return
			}
			if len(fr.Data) > len(b) {
				t.Fatalf("packet of %d bytes from %d", len(fr.Data), len(b))
			}
			if fr.Interface >= len(ng.ifaces) {
				t.Fatalf("interface %d of %d", fr.Interface, len(ng.ifaces))
			}
		}
	})
}

// firstBlocks returns the longest prefix of a little-endian pcapng stream
// that ends at a block boundary and is at most max bytes (or the first
// block, if that is longer).
func firstBlocks(b []byte, max int) []byte {
	end := 0
	for end+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[end+4:]))
		if n < 12 || end+n > len(b) || end > 0 && end+n > max {
			break
		}
		end += n
	}
	return b[:end]
}
