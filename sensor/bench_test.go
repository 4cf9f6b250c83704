package sensor

import (
	"io"
	"path/filepath"
	"testing"

	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/decode"
	"exfilwatch/sensor/events"
)

// discard is a sink that encodes events (as replay does) into nowhere.
func discard() *events.JSONWriter { return events.NewJSONWriter(io.Discard) }

// BenchmarkReplay decodes the repository's real captures from memory: the
// whole pipeline (decode, reassembly, sniffing, parsers, event encoding)
// without the file reading. Profile it with
// go test -run NONE -bench Replay -cpuprofile cpu.out ./sensor/
func BenchmarkReplay(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("..", "captures", "*.pcap"))
	if len(files) == 0 {
		b.Fatal("no captures")
	}
	var frames []capture.Frame
	var size int64
	for _, p := range files {
		f, err := capture.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		var fr capture.Frame
		for f.Next(&fr) == nil {
			c := fr
			c.Data = append([]byte(nil), fr.Data...)
			frames = append(frames, c)
			size += int64(len(fr.Data))
		}
		f.Close()
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := discard()
		s := New(Config{Decode: decode.Options{VerifyChecksums: true}}, w)
		for i := range frames {
			s.Frame(&frames[i])
		}
		s.Flush()
		w.Flush()
	}
	b.ReportMetric(float64(len(frames)*b.N)/b.Elapsed().Seconds(), "packets/s")
}
