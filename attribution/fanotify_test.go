package attribution

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// fanEvent builds one struct fanotify_event_metadata followed by extra
// info bytes.
func fanEvent(vers uint8, metaLen uint16, mask uint64, fd, pid int32, extra int) []byte {
	ne := binary.NativeEndian
	b := make([]byte, fanEventMetadataLen+extra)
	ne.PutUint32(b[0:], uint32(len(b)))
	b[4] = vers
	ne.PutUint16(b[6:], metaLen)
	ne.PutUint64(b[8:], mask)
	ne.PutUint32(b[16:], uint32(fd))
	ne.PutUint32(b[20:], uint32(pid))
	return b
}

func collect(buf []byte) ([]fanotifyMeta, int, error) {
	var got []fanotifyMeta
	n, err := parseFanotifyEvents(buf, func(m fanotifyMeta) { got = append(got, m) })
	return got, n, err
}

func TestParseFanotifyEvents(t *testing.T) {
	var buf []byte
	buf = append(buf, fanEvent(3, 24, fanOpen, 7, 100, 0)...)
	buf = append(buf, fanEvent(3, 24, fanQOverflow, fanNoFD, 0, 0)...)
	buf = append(buf, fanEvent(3, 24, fanOpen|fanOpenExec, 9, 200, 16)...) // info record skipped
	buf = append(buf, fanEvent(3, 32, fanCloseWrite, 10, 300, 8)...)
	got, n, err := collect(buf)
	if err != nil || n != len(buf) {
		t.Fatalf("n=%d err=%v, want %d nil", n, err, len(buf))
	}
	want := []fanotifyMeta{
		{Mask: fanOpen, FD: 7, PID: 100},
		{Mask: fanQOverflow, FD: -1, PID: 0},
		{Mask: fanOpen | fanOpenExec, FD: 9, PID: 200},
		{Mask: fanCloseWrite, FD: 10, PID: 300},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got, n, err := collect(nil); err != nil || n != 0 || len(got) != 0 {
		t.Fatalf("empty: %v %d %v", got, n, err)
	}
}

func TestParseFanotifyEventsMalformed(t *testing.T) {
	good := fanEvent(3, 24, fanOpen, 7, 100, 0)
	cases := map[string][]byte{
		"short header":     good[:23],
		"bad version":      fanEvent(2, 24, fanOpen, 7, 100, 0),
		"small metalen":    fanEvent(3, 8, fanOpen, 7, 100, 0),
		"metalen>eventlen": fanEvent(3, 40, fanOpen, 7, 100, 0),
		"eventlen past end": func() []byte {
			b := fanEvent(3, 24, fanOpen, 7, 100, 0)
			binary.NativeEndian.PutUint32(b, 100)
			return b
		}(),
		"eventlen zero": func() []byte {
			b := fanEvent(3, 24, fanOpen, 7, 100, 0)
			binary.NativeEndian.PutUint32(b, 0)
			return b
		}(),
	}
	for name, bad := range cases {
		buf := append(append([]byte{}, good...), bad...)
		got, n, err := collect(buf)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if n != len(good) || len(got) != 1 {
			t.Errorf("%s: n=%d events=%d, want %d 1", name, n, len(got), len(good))
		}
	}
}

func TestFanotifyAccesses(t *testing.T) {
	for _, c := range []struct {
		mask uint64
		want []AccessKind
	}{
		{fanOpen, []AccessKind{AccessRead}},
		{fanOpen | fanOpenExec, []AccessKind{AccessExec}},
		{fanOpenExec, []AccessKind{AccessExec}},
		{fanCloseWrite, []AccessKind{AccessWrite}},
		{fanOpen | fanCloseWrite, []AccessKind{AccessRead, AccessWrite}},
		{fanQOverflow, nil},
	} {
		if got := fanotifyAccesses(c.mask); !reflect.DeepEqual(got, c.want) {
			t.Errorf("mask %#x: %v, want %v", c.mask, got, c.want)
		}
	}
}

func FuzzParseFanotifyEvents(f *testing.F) {
	f.Add(fanEvent(3, 24, fanOpen, 7, 100, 0))
	f.Add(append(fanEvent(3, 24, fanOpen, 7, 100, 8), fanEvent(3, 24, fanCloseWrite, 8, 1, 0)...))
	f.Add([]byte{})
	f.Add(make([]byte, 30))
	f.Fuzz(func(t *testing.T, buf []byte) {
		calls := 0
		n, err := parseFanotifyEvents(buf, func(fanotifyMeta) { calls++ })
		if n < 0 || n > len(buf) {
			t.Fatalf("consumed %d of %d", n, len(buf))
		}
		if err == nil && n != len(buf) {
			t.Fatalf("no error but consumed %d of %d", n, len(buf))
		}
		if calls*fanEventMetadataLen > n {
			t.Fatalf("%d events in %d bytes", calls, n)
		}
	})
}
