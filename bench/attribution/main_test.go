//go:build linux

package main

import (
	"slices"
	"testing"
)

func TestParseSS(t *testing.T) {
	out := []byte(`ESTAB      0      0      198.18.97.1:51738    198.18.97.2:8080  users:(("attr-client",pid=29417,fd=3))
SYN-SENT   0      1      [2001:2:0:61::1]:47830 [2001:2:0:61::2]:8080 users:(("attr-client",pid=12,fd=3),("attr-client",pid=13,fd=3))
FIN-WAIT-2 0      0      198.18.97.1:51740    198.18.97.2:8080
ESTAB      0      0      [fe80::1%exfwbah1]:40000 [fe80::2%exfwbah1]:8080 users:(("x",pid=7,fd=4))
`)
	got := parseSS(out)
	want := []portPID{{51738, 29417}, {47830, 12}, {47830, 13}, {40000, 7}}
	if !slices.Equal(got, want) {
		t.Fatalf("parseSS = %v, want %v", got, want)
	}
}

func TestGenericDetail(t *testing.T) {
	a := genericDetail("not found: tcp 198.18.97.1:57726 → 198.18.97.2:8080: socket inode 0 has no visible owner")
	b := genericDetail("not found: tcp [2001:2:0:61::1]:47830 → [2001:2:0:61::2]:8080: socket inode 0 has no visible owner")
	c := genericDetail("not found: tcp 198.18.97.1:57726 → 198.18.97.2:8080: socket inode 12345 has no visible owner")
	if a != b || a == c || a != "not found: tcp N → N socket inode 0 has no visible owner" {
		t.Fatalf("details do not group:\n%s\n%s\n%s", a, b, c)
	}
}

func TestQuantile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if q := quantile(v, 0.5); q != 3 {
		t.Fatalf("median %v", q)
	}
	if q := quantile(v, 1); q != 5 {
		t.Fatalf("max %v", q)
	}
	if q := quantile(nil, 0.5); q != 0 {
		t.Fatalf("empty %v", q)
	}
}
