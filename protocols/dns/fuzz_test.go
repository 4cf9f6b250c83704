package dns

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func FuzzParseResponse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, p := range files {
		b := readHex(f, strings.TrimSuffix(filepath.Base(p), ".hex"))
		if strings.HasPrefix(filepath.Base(p), "tcp_") {
			b = b[2:]
		}
		f.Add(b)
	}
	f.Add(newMsg(flagsResp, 1, 1).raw(1, 'a', 0xc0, 14, 0xc0, 12).b)
	f.Add(newMsg(0x8380, 1, 2).name("tc.test").raw(0, 1, 0, 1, 0xc0, 12).rr(TypeA, 4).raw(198, 18, 0, 4, 0xc0).b)
	names := NewNames(4)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "dns: ") {
				t.Fatalf("error %q", msg)
			}
		} else {
			if len(r.Answers) > MaxAnswers || len(r.QName) > 4*MaxNameBytes {
				t.Fatalf("unbounded: %d answers, qname %d bytes", len(r.Answers), len(r.QName))
			}
			for _, a := range r.Answers {
				ok := len(a.Name) <= 4*MaxNameBytes
				switch a.Type {
				case TypeA:
					ok = ok && a.Addr.Is4() && a.Target == ""
				case TypeAAAA:
					ok = ok && a.Addr.Is6() && a.Target == ""
				case TypeCNAME:
					ok = ok && !a.Addr.IsValid() && a.Target != "" && len(a.Target) <= 4*MaxNameBytes
				default:
					ok = false
				}
				if !ok {
					t.Fatalf("bad answer %+v", a)
				}
			}
			names.Observe(&r, time.Unix(0, 0))
			for _, a := range r.Answers {
				if a.Addr.IsValid() && len(names.Names(a.Addr)) > MaxNamesPerAddr {
					t.Fatal("names per address unbounded")
				}
			}
			if st := names.Stats(); st.Addrs > 4 {
				t.Fatalf("names table holds %d addresses", st.Addrs)
			}
		}
		if len(b) <= 65535 {
			rt, errt := ParseResponseTCP(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
			if (err == nil) != (errt == nil) || !reflect.DeepEqual(r, rt) {
				t.Fatalf("tcp framing changed the result: %v / %v", err, errt)
			}
		}
	})
}
