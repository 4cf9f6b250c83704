// The body path must allocate nothing and run near SHA-256 speed.

package http

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

const segment = 1448 // a typical TCP payload on a 1500-byte MTU

func bodyChunk() []byte {
	b := make([]byte, segment)
	for i := range b {
		b[i] = byte(i*7 + i>>3) // no LF-free runs nor all-LF: realistic for the multipart scan
	}
	return b
}

func TestBodyPathAllocs(t *testing.T) {
	ts := time.Unix(1, 0)
	chunk := bodyChunk()
	for _, tc := range []struct {
		name string
		dir  func(p *Parser)
	}{
		{"content-length request", func(p *Parser) {
			p.Feed(toSrv, []byte("PUT /x HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n"), ts)
		}},
		{"chunked request", func(p *Parser) {
			p.Feed(toSrv, []byte("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n"), ts)
		}},
		{"multipart request", func(p *Parser) {
			p.Feed(toSrv, []byte("POST /x HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=zzzz\r\nContent-Length: 1099511627776\r\n\r\n--zzzz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n"), ts)
		}},
		{"close-delimited response", func(p *Parser) {
			p.Feed(toSrv, []byte("GET / HTTP/1.1\r\n\r\n"), ts)
			p.Feed(toCli, []byte("HTTP/1.1 200 OK\r\n\r\n"), ts)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Limits{}, func(*Transaction) {})
			p.OnRequest(func(*Transaction) {})
			tc.dir(p)
			dir := toSrv
			if tc.name == "close-delimited response" {
				dir = toCli
			}
			st := p.half[dir].state
			if st != stBodyLength && st != stChunkData && st != stBodyClose {
				t.Fatalf("setup left state %v", st)
			}
			if a := testing.AllocsPerRun(1000, func() { p.Feed(dir, chunk, ts) }); a != 0 {
				t.Fatalf("%v allocs per body Feed", a)
			}
			if p.half[dir].state != st {
				t.Fatalf("state moved to %v", p.half[dir].state)
			}
		})
	}
}

// BenchmarkUpload feeds a 1 MiB Content-Length upload in 1448-byte segments.
func BenchmarkUpload(b *testing.B) {
	const size = 1 << 20
	head := []byte("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n")
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 31)
	}
	ts := time.Unix(1, 0)
	n := 0
	p := New(Limits{}, func(*Transaction) { n++ })
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Feed(toSrv, head, ts)
		for off := 0; off < size; off += segment {
			p.Feed(toSrv, body[off:min(off+segment, size)], ts)
		}
		// Answer it so the queue does not fill up.
		p.Feed(toCli, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), ts)
	}
	b.StopTimer()
	if n != b.N {
		b.Fatalf("%d transactions for %d uploads", n, b.N)
	}
}

// BenchmarkMultipartUpload is the same upload wrapped in multipart/form-data:
// two SHA-256 passes (body and part) plus the delimiter scan.
func BenchmarkMultipartUpload(b *testing.B) {
	const size = 1 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}
	pre := "--XyZzY\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n"
	post := "\r\n--XyZzY--\r\n"
	body := append(append([]byte(pre), data...), post...)
	head := []byte("POST /upload HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XyZzY\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	ts := time.Unix(1, 0)
	p := New(Limits{}, func(*Transaction) {})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Feed(toSrv, head, ts)
		for off := 0; off < len(body); off += segment {
			p.Feed(toSrv, body[off:min(off+segment, len(body))], ts)
		}
		p.Feed(toCli, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), ts)
	}
}

// BenchmarkSHA256Segments is the ceiling for BenchmarkUpload: crypto/sha256
// alone over the same 1448-byte segments. Compare the two from one run, since
// a shared machine moves both.
func BenchmarkSHA256Segments(b *testing.B) {
	const size = 1 << 20
	body := make([]byte, size)
	h := sha256.New()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Reset()
		for off := 0; off < size; off += segment {
			h.Write(body[off:min(off+segment, size)])
		}
	}
}
