package events

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTimeMatchesRFC3339Nano(t *testing.T) {
	var e enc
	e.Open("")
	times := []time.Time{
		{},
		time.Date(2026, 11, 27, 4, 43, 51, 54240000, time.UTC),
		time.Date(2026, 11, 27, 4, 43, 51, 999999999, time.UTC),
		time.Date(2026, 11, 27, 4, 43, 52, 1, time.FixedZone("x", 3600)),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	for _, tm := range times {
		e.Reset()
		e.Time("t", tm)
		want := `"t":"` + tm.UTC().Format("2006-01-02T15:04:05.000000000Z") + `"`
		if string(e.B) != want {
			t.Errorf("got %s want %s", e.B, want)
		}
	}
}

func TestStringsStayValidJSON(t *testing.T) {
	for _, s := range []string{"plain", "quote\" back\\slash", "ctl\x00\x01\x1f\x7f", "tab\tcr\rlf\n", "bad utf8 \xff\xfe end", "ok é ü 日本", "\u2028\u2029"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if json.Valid([]byte(s)) && got != s && s != "bad utf8 \xff\xfe end" {
			t.Errorf("%q round-trips as %q", s, got)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, c := range []struct {
		in, host string
		port     int
	}{
		{"example.org", "example.org", 0},
		{"example.org:8080", "example.org", 8080},
		{"[2001:2::2]:8443", "[2001:2::2]", 8443},
		{"[::1]", "[::1]", 0},
		{"198.18.0.2:80", "198.18.0.2", 80},
		{"h:99999999", "h", 0},
		{"  spaced:81 ", "spaced", 81},
	} {
		if h, p := hostPort(c.in); h != c.host || p != c.port {
			t.Errorf("hostPort(%q) = %q, %d; want %q, %d", c.in, h, p, c.host, c.port)
		}
	}
}
