package sensor

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"exfilwatch/sensor/capture"
)

// FuzzPipeline feeds a sequence of frames, cut from the fuzzer's bytes by
// 2-byte length prefixes, through the whole pipeline: decoding,
// reassembly, sniffing and both parsers. Nothing may panic (the sensor
// recovers panics, so they are checked through its counter).
func FuzzPipeline(f *testing.F) {
	seed := func(frames ...[]byte) []byte {
		var b bytes.Buffer
		for _, fr := range frames {
			binary.Write(&b, binary.BigEndian, uint16(len(fr)))
			b.Write(fr)
		}
		return b.Bytes()
	}
	for _, s := range seedConversations(f) {
		f.Add(seed(s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k := &sink{}
		s := New(Config{}, k)
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			now = now.Add(time.Millisecond)
			fr := capture.Frame{Data: data[:n], Timestamp: now, WireLen: n, LinkType: 1}
			s.Frame(&fr)
			data = data[n:]
		}
		s.Flush()
		if s.C.Panics != 0 {
			t.Fatalf("%d panics recovered", s.C.Panics)
		}
	})
}

// seedConversations records the frames of a few real exchanges built with
// the test peers.
func seedConversations(tb testing.TB) [][][]byte {
	var out [][][]byte
	rec := &frameRecorder{}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	mk := func(cport, sport uint16, script func(c, srv *peer)) {
		rec.frames = nil
		s := New(Config{}, &sink{})
		c, srv := pair(tb, s, &now, cport, sport)
		c.rec, srv.rec = rec, rec
		script(c, srv)
		out = append(out, rec.frames)
	}
	mk(41000, 80, func(c, srv *peer) {
		c.send(srv, "S", "")
		srv.send(c, "SA", "")
		c.send(srv, "PA", "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		srv.send(c, "PA", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.send(srv, "FA", "")
	})
	mk(41001, 21, func(c, srv *peer) {
		c.send(srv, "S", "")
		srv.send(c, "SA", "")
		srv.send(c, "PA", "220 hi\r\n")
		c.send(srv, "PA", "USER a\r\nPASV\r\n")
		srv.send(c, "PA", "331 ok\r\n227 (198,18,0,2,4,1)\r\n")
		c.send(srv, "PA", "STOR f\r\n")
		srv.send(c, "PA", "150 go\r\n226 done\r\n")
	})
	return out
}

type frameRecorder struct{ frames [][]byte }

func (r *frameRecorder) add(b []byte) { r.frames = append(r.frames, append([]byte(nil), b...)) }
