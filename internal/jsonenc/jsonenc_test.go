package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// eventsAppendString is sensor/events' own escaper as it was before this
// package replaced it, kept verbatim as the reference of the html=false
// dialect: event lines must not change by a byte.
func eventsAppendString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexd[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

var hostile = []string{
	"", "plain", `quote" back\slash`, "<script>&amp;</script>",
	"ctl\x00\x01\b\f\x1f\x7f", "tab\tcr\rlf\n", "bad utf8 \xff\xfe end",
	"ok é ü 日本 🙂", "\u2028\u2029", "\xe2\x80", "\xe2\x80\xa8\xe2\x80", "\xf0\x9f\x99", "\xed\xa0\x80 surrogate",
	"\xf4\x90\x80\x80 past U+10FFFF", "\xc0\xaf overlong",
}

// FuzzAppendString: html on writes exactly what json.Marshal writes for a
// string; html off exactly what the events' escaper wrote; the []byte form
// and AppendChars agree with the string form; the result is valid JSON.
func FuzzAppendString(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		checkDialect(t, s, true, want)
		checkDialect(t, s, false, eventsAppendString(nil, s))
	})
}

func checkDialect(t *testing.T, s string, html bool, want []byte) {
	t.Helper()
	prefix := []byte("x:")
	got := AppendString(prefix, s, html)
	if !bytes.Equal(got[len(prefix):], want) || string(got[:len(prefix)]) != "x:" {
		t.Fatalf("html=%v %q:\n got %s\nwant %s", html, s, got[len(prefix):], want)
	}
	if b := AppendString(nil, []byte(s), html); !bytes.Equal(b, want) {
		t.Fatalf("html=%v %q as []byte:\n got %s\nwant %s", html, s, b, want)
	}
	if c := AppendChars(nil, s, html); !bytes.Equal(c, want[1:len(want)-1]) {
		t.Fatalf("html=%v %q without quotes:\n got %s\nwant %s", html, s, c, want)
	}
	if !json.Valid(got[len(prefix):]) {
		t.Fatalf("html=%v %q: invalid JSON %s", html, s, got)
	}
}

func TestDialects(t *testing.T) {
	for _, c := range []struct {
		in         string
		html, evts string
	}{
		{"a<b>&c", `"a\u003cb\u003e\u0026c"`, `"a<b>&c"`},
		{"\b\f\x7f", `"\b\f` + "\x7f" + `"`, `"\u0008\u000c\u007f"`},
		{"x\xffy", `"x\ufffdy"`, "\"x\ufffdy\""},
		{"\u2028\u2029", `"\u2028\u2029"`, `"\u2028\u2029"`},
		{"\x00\x1f\"\\", `"\u0000\u001f\"\\"`, `"\u0000\u001f\"\\"`},
	} {
		if got := string(AppendString(nil, c.in, true)); got != c.html {
			t.Errorf("html %q: got %s want %s", c.in, got, c.html)
		}
		if got := string(AppendString(nil, c.in, false)); got != c.evts {
			t.Errorf("events %q: got %s want %s", c.in, got, c.evts)
		}
	}
}

// FuzzAppendTime: both formats match time.AppendFormat for any instant,
// whether the cache hits (same second) or not.
func FuzzAppendTime(f *testing.F) {
	f.Add(int64(1700000000), int64(123456789), int64(0))
	f.Add(int64(-62135596800), int64(0), int64(1))
	f.Add(int64(253402300800), int64(1), int64(-1))
	f.Add(int64(-1<<62), int64(999999999), int64(1<<40))
	f.Fuzz(func(t *testing.T, sec, nsec, step int64) {
		var c TimeCache
		for _, tm := range []time.Time{
			time.Unix(sec, nsec), time.Unix(sec, nsec).In(time.FixedZone("X", 3600)),
			time.Unix(sec, 0), time.Unix(sec, nsec).Add(time.Duration(step)), time.Unix(sec, nsec+1),
		} {
			u := tm.UTC()
			if got, want := c.AppendRFC3339Nano(nil, tm), u.AppendFormat(nil, time.RFC3339Nano); !bytes.Equal(got, want) {
				t.Fatalf("RFC3339Nano %v: got %s want %s", tm, got, want)
			}
			if got, want := c.AppendNano9([]byte("x"), tm), u.AppendFormat([]byte("x"), "2006-01-02T15:04:05.000000000Z"); !bytes.Equal(got, want) {
				t.Fatalf("Nano9 %v: got %s want %s", tm, got, want)
			}
		}
	})
}

func TestAppendRFC3339NanoIsMarshalJSON(t *testing.T) {
	var c TimeCache
	for _, tm := range []time.Time{{}, time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 1, time.FixedZone("X", -7200)), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		want, err := tm.UTC().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got := append(c.AppendRFC3339Nano([]byte{'"'}, tm), '"')
		if !bytes.Equal(got, want) {
			t.Errorf("got %s want %s", got, want)
		}
	}
}

func TestAppendHex(t *testing.T) {
	if got := string(AppendHex([]byte("k:"), []byte{0, 0xab, 0xff})); got != `k:"00abff"` {
		t.Fatalf("got %s", got)
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "/home/user/Documents/some report 2026 (final).pdf"
	for _, html := range []bool{true, false} {
		name := "events"
		if html {
			name = "html"
		}
		b.Run(name, func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf = AppendString(buf[:0], s, html)
			}
		})
	}
}
