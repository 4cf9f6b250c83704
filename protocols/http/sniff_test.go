package http

import (
	"strings"
	"testing"

	"exfilwatch/protocols"
)

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		dir  protocols.Dir
		in   string
		want Verdict
	}{
		{toSrv, "", NeedMore},
		{toSrv, "G", NeedMore},
		{toSrv, "GET", NeedMore},
		{toSrv, "GET ", NeedMore},
		{toSrv, "GET /", Yes},
		{toSrv, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", Yes},
		{toSrv, "POST http://proxy.example/ HTTP/1.1\r\n", Yes},
		{toSrv, "CONNECT example.com:443 HTTP/1.1\r\n", Yes},
		{toSrv, "PROPFIND /dav/ HTTP/1.1\r\n", Yes},
		{toSrv, "M-SEARCH * HTTP/1.1\r\n", Yes},
		{toSrv, "GET /path\r\n", Yes}, // HTTP/0.9
		{toSrv, "FROBNICATE /x HTTP/1.1\r\n", Yes},
		{toSrv, "FROBNICATE /x HTTP/1.1", NeedMore},
		{toSrv, "FROBNICATE /x\r\n", No},
		{toSrv, "FROBNICATE /x HTTP/2.0\r\n", No},
		{toSrv, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", No},
		{toSrv, "GET  /", No},
		{toSrv, "get / HTTP/1.1\r\n", No},
		{toSrv, "GET\r\n", No},
		{toSrv, "\x16\x03\x01\x02\x00", No},
		{toSrv, "SSH-2.0-OpenSSH_9.6\r\n", No},
		{toSrv, "USER anonymous\r\n", No},
		{toSrv, "EHLO mail.example\r\n", No},
		{toSrv, strings.Repeat("A", 40), No},
		{toSrv, "FROB /" + strings.Repeat("a", sniffMaxLine), No},
		{toSrv, "FROB /a\x00", No},

		{toCli, "", NeedMore},
		{toCli, "HTTP/1.", NeedMore},
		{toCli, "HTTP/1.1 20", NeedMore},
		{toCli, "HTTP/1.1 200", Yes},
		{toCli, "HTTP/1.0 404 Not Found\r\n", Yes},
		{toCli, "HTTP/2.0 200", No},
		{toCli, "HTTP/1.1 2x0", No},
		{toCli, "http/1.1 200", No},
		{toCli, "220 ftp ready\r\n", No},
		{toCli, "SSH-2.0-x", No},

		{toCli + 1, "GET / HTTP/1.1\r\n", No},
	} {
		if got := Sniff(tc.dir, []byte(tc.in)); got != tc.want {
			t.Errorf("Sniff(%v, %q) = %v, want %v", tc.dir, tc.in, got, tc.want)
		}
	}
}

func TestStateNames(t *testing.T) {
	seen := map[string]bool{}
	for s := stStartLine; s <= stOpaque; s++ {
		n := s.String()
		if n == "invalid" || seen[n] {
			t.Errorf("state %d name %q", s, n)
		}
		seen[n] = true
	}
	for s := mpPreamble; s <= mpEpilogue; s++ {
		if s.String() == "invalid" {
			t.Errorf("mpState %d has no name", s)
		}
	}
	check(t, "bad state", state(200).String(), "invalid")
	check(t, "verdicts", []string{No.String(), Yes.String(), NeedMore.String(), Verdict(9).String()}, []string{"no", "yes", "need_more", "invalid"})
}
