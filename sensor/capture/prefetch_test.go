package capture

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fakeSource yields frames of given sizes, then err.
type fakeSource struct {
	sizes []int
	i     int
	err   error
	buf   []byte
}

func (f *fakeSource) Next(fr *Frame) error {
	if f.i >= len(f.sizes) {
		return f.err
	}
	n := f.sizes[f.i]
	f.buf = f.buf[:0]
	for k := 0; k < n; k++ {
		f.buf = append(f.buf, byte(f.i+k))
	}
	*fr = Frame{Data: f.buf, WireLen: n, LinkType: uint32(f.i), Interface: f.i}
	f.i++
	return nil
}
func (f *fakeSource) Close() error { return nil }

func TestPrefetcherGivesTheSameFramesAndError(t *testing.T) {
	var sizes []int
	for i := 0; i < 20000; i++ {
		sizes = append(sizes, (i*97)%1600)
	}
	sizes = append(sizes, 3<<20, 10, prefetchArenaSize, 0, 5) // oversized frames between normal ones
	damaged := errors.New("damaged record")
	for _, final := range []error{io.EOF, damaged} {
		want := &fakeSource{sizes: sizes, err: final}
		p := NewPrefetcher(&fakeSource{sizes: sizes, err: final})
		var a, b Frame
		for i := 0; ; i++ {
			errA := want.Next(&a)
			errB := p.Next(&b)
			if errA != nil || errB != nil {
				if errA != errB {
					t.Fatalf("frame %d: error %v, want %v", i, errB, errA)
				}
				break
			}
			if !bytes.Equal(a.Data, b.Data) || a.LinkType != b.LinkType || a.Interface != b.Interface || a.WireLen != b.WireLen {
				t.Fatalf("frame %d differs", i)
			}
		}
		if err := p.Next(&b); err != final {
			t.Fatalf("after the end: %v", err)
		}
		p.Close()
	}
}

func TestPrefetcherCloseEarly(t *testing.T) {
	sizes := make([]int, 100000)
	for i := range sizes {
		sizes[i] = 1000
	}
	p := NewPrefetcher(&fakeSource{sizes: sizes, err: io.EOF})
	var fr Frame
	for i := 0; i < 10; i++ {
		if err := p.Next(&fr); err != nil {
			t.Fatal(err)
		}
	}
	p.Close() // must not hang with the reader blocked on a full queue
}
