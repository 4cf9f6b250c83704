package jsonenc

import (
	"testing"
	"time"
)

func TestEncoderNestingAndDialects(t *testing.T) {
	tm := time.Date(2026, 11, 27, 8, 0, 0, 500000000, time.UTC)
	for _, c := range []struct {
		e    Encoder
		want string
	}{
		{Encoder{}, `{"a":"<x>","t":"2026-11-27T08:00:00.500000000Z","o":{"n":-1,"l":[1,"s"],"b":true},"h":"0aff"}`},
		{Encoder{HTML: true, TrimmedTime: true}, `{"a":"\u003cx\u003e","t":"2026-11-27T08:00:00.5Z","o":{"n":-1,"l":[1,"s"],"b":true},"h":"0aff"}`},
	} {
		e := c.e
		for range 2 { // Reset forgets the previous document entirely
			e.Reset()
			e.Open("")
			e.Str("a", "<x>")
			e.StrNE("skip", "")
			e.Time("t", tm)
			e.Open("o")
			e.Int("n", -1)
			e.OpenArr("l")
			e.ElemInt(1)
			e.ElemStr("s")
			e.CloseArr()
			e.Bool("b", true)
			e.Close()
			e.Hex("h", []byte{0x0a, 0xff})
			e.Close()
			if string(e.B) != c.want {
				t.Errorf("got  %s\nwant %s", e.B, c.want)
			}
		}
	}
}
