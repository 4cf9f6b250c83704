package ftp

import (
	"testing"

	"exfilwatch/protocols"
)

func TestSniff(t *testing.T) {
	const (
		c = protocols.ClientToServer
		s = protocols.ServerToClient
	)
	tests := []struct {
		dir  protocols.Dir
		in   string
		want Verdict
	}{
		{s, "220 (vsFTPd 3.0.3)\r\n", Yes},
		{s, "220---------- Welcome to Pure-FTPd", Yes},
		{s, "220-", Yes},
		{s, "22", NeedMore},
		{s, "220", NeedMore},
		{s, "", NeedMore},
		{s, "2200", No},
		{s, "230 Login", No},
		{s, "HTTP/1.1 200 OK\r\n", No},
		{s, "SSH-2.0-OpenSSH", No},

		{c, "USER anonymous\r\n", Yes},
		{c, "user anonymous\r\n", Yes},
		{c, "AUTH TLS\r\n", Yes},
		{c, "Auth ", Yes},
		{c, "USE", NeedMore},
		{c, "", NeedMore},
		{c, "USERS", No},
		{c, "FEAT\r\n", Yes},
		{c, "syst\n", Yes},
		{c, "PASV\r\n", Yes},
		{c, "EPSV\r\n", Yes},
		{c, "EPSV ALL\r\n", Yes},
		{c, "PWD\r\n", Yes},
		{c, "TYPE I\r\n", Yes},
		{c, "FEAT", NeedMore},
		{c, "FEAT\r", NeedMore},
		{c, "TYPE ", NeedMore},
		{c, "FEATURE\r\n", No},
		{c, "PWDX\r\n", No},
		{c, "GET / HTTP/1.1\r\n", No},
		{c, "\x16\x03\x01\x02\x00", No},
		{c, "\u212aEAT\r\n", No}, // Kelvin sign is not 'K', nor any ASCII letter
		{protocols.Dir(5), "USER x\r\n", No},
	}
	for _, tt := range tests {
		if got := Sniff(tt.dir, []byte(tt.in)); got != tt.want {
			t.Errorf("Sniff(%v, %q) = %v, want %v", tt.dir, tt.in, got, tt.want)
		}
	}
}

// Every prefix of a Yes is NeedMore or Yes, never No.
func TestSniffPrefixes(t *testing.T) {
	for _, in := range []struct {
		dir protocols.Dir
		s   string
	}{
		{protocols.ServerToClient, "220 hi"},
		{protocols.ClientToServer, "USER x"},
		{protocols.ClientToServer, "OPTS UTF8 ON\r\n"},
		{protocols.ClientToServer, "TYPE L 8\n"},
	} {
		for i := 0; i <= len(in.s); i++ {
			if v := Sniff(in.dir, []byte(in.s[:i])); v == No {
				t.Errorf("Sniff(%q) = No", in.s[:i])
			}
		}
		if v := Sniff(in.dir, []byte(in.s)); v != Yes {
			t.Errorf("Sniff(%q) = %v", in.s, v)
		}
	}
}
