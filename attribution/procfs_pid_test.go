package attribution

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseProcStatFixture(t *testing.T) {
	st, err := parseProcStat(readFixture(t, "4242/stat"))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{PID: 4242, Comm: "curl", State: 'S', PPID: 4200, PGID: 4200, Session: 100, StartTicks: 90012}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
}

// statOf builds a stat line with this comm; the fields after it are those
// of a real process.
func statOf(comm string) string {
	return "321 (" + comm + ") R 20 321 300 34816 321 4194560 100 0 0 0 5 3 0 0 20 0 1 0 777 10485760 500 18446744073709551615 0 0 0\n"
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     procStat
		wantErr  string
	}{
		{"plain", statOf("bash"), procStat{321, "bash", 'R', 20, 321, 300, 777}, ""},
		{"spaces and parens in comm", statOf("a) (b c) d"), procStat{321, "a) (b c) d", 'R', 20, 321, 300, 777}, ""},
		{"empty comm", statOf(""), procStat{321, "", 'R', 20, 321, 300, 777}, ""},
		{"no newline", strings.TrimSuffix(statOf("x"), "\n"), procStat{321, "x", 'R', 20, 321, 300, 777}, ""},
		{"empty", "", procStat{}, "no (comm)"},
		{"no close paren", "321 (bash R 20", procStat{}, "no (comm)"},
		{"no pid", "(bash) R 1 2 3", procStat{}, "no (comm)"},
		{"bad pid", "x1 (bash) R 1 2 3", procStat{}, "bad pid"},
		{"pid overflow", "4294967296 (bash) R 1", procStat{}, "bad pid"},
		{"too few fields", "321 (bash) R 20 321 300", procStat{}, "fields after comm"},
		{"bad state", strings.Replace(statOf("x"), ") R ", ") RR ", 1), procStat{}, "bad state"},
		{"bad ppid", strings.Replace(statOf("x"), " R 20 ", " R -20 ", 1), procStat{}, "bad ppid"},
		{"bad pgrp", strings.Replace(statOf("x"), " R 20 321 ", " R 20 3z1 ", 1), procStat{}, "pgrp"},
		{"bad starttime", strings.Replace(statOf("x"), " 777 ", " 7x7 ", 1), procStat{}, "starttime"},
		{"garbage fixture", string(readFixture(t, "666/stat")), procStat{}, "no (comm)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errProcStat) {
					t.Fatalf("got %v, want error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tt.want)
			}
		})
	}
}

// TestParseProcStatTruncationSweep: no panic at any cut; a cut before the
// field after the start time is an error (so a cut never shortens it).
func TestParseProcStatTruncationSweep(t *testing.T) {
	full := statOf("a) b")
	cutOK := strings.Index(full, " 777 ") + len(" 777 1")
	for i := 0; i <= len(full); i++ {
		_, err := parseProcStat([]byte(full[:i]))
		if (err == nil) != (i >= cutOK) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
}

func TestParseProcStatusUIDs(t *testing.T) {
	r, e, err := parseProcStatusUIDs(readFixture(t, "555/status"))
	if err != nil || r != 1000 || e != 0 {
		t.Fatalf("setuid fixture: %d %d %v", r, e, err)
	}
	for _, bad := range []string{"", "Name:\tx\n", "Uid:\t1\n", "Uid:\tx\ty\n", "Uid:\t1\t99999999999\n"} {
		if _, _, err := parseProcStatusUIDs([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if r, e, err := parseProcStatusUIDs([]byte("Uid:\t5\t6\t7\t8")); err != nil || r != 5 || e != 6 {
		t.Errorf("no newline: %d %d %v", r, e, err)
	}
}

func TestParseProcCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"curl\x00-T\x00secret.txt\x00", []string{"curl", "-T", "secret.txt"}},
		{"sh\x00-c\x00\x00", []string{"sh", "-c"}}, // trailing empty arguments are indistinguishable from padding
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"nginx: worker process", []string{"nginx: worker process"}}, // setproctitle
		{"", nil},
		{"\x00\x00", nil},
	}
	for _, tt := range tests {
		if got := parseProcCmdline([]byte(tt.in)); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("parseProcCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseProcBootTime(t *testing.T) {
	if v, err := parseProcBootTime(readFixture(t, "stat")); err != nil || v != 1700000000 {
		t.Fatalf("fixture: %d %v", v, err)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "btime x\n", "btime \n", "btime 99999999999999999999\n"} {
		if _, err := parseProcBootTime([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
