package events

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAsyncKeepsOrderAndFlushes(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONWriter(&buf)
	a := NewAsync(j, j.Flush)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		ev := Flow{Conn: Conn{FlowID: uint64(i + 1), Transport: "udp"}, Start: t0, End: t0}
		a.Flow(&ev)
		ev.FlowID = 999999 // the producer reuses its record at once
		if i == 500 {
			if err := a.Flush(); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(buf.String(), "\n"); n != 501 {
				t.Fatalf("after Flush %d lines, want 501", n)
			}
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1000 || j.Counts.Flows != 1000 {
		t.Fatalf("%d lines, counts %+v", len(lines), j.Counts)
	}
	for i, l := range lines {
		if !strings.Contains(l, `"flow":{"id":`+itoa(i+1)+`}`) {
			t.Fatalf("line %d out of order: %s", i, l)
		}
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}
