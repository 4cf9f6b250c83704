package attribution

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// ReadEslogger on the real samples with damage added: every good line is
// still read, the bad ones are counted and named by their line in the file.
func TestReadEsloggerSkipsBadLines(t *testing.T) {
	b, err := os.ReadFile(esloggerSample)
	if err != nil {
		t.Skipf("real samples not present: %v", err)
	}
	good := strings.Count(strings.TrimSpace(string(b)), "\n") + 1
	in := "\n{not json\n" + string(b) + strings.Repeat("x", MaxEsloggerLine+10) + "\n"
	var n int
	st, err := ReadEslogger(bytes.NewReader([]byte(in)), func(any) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	if st.BadLines != 2 || len(st.Errors) != 2 || !strings.HasPrefix(st.Errors[0], "line 2:") ||
		!strings.HasPrefix(st.Errors[1], "line "+strconv.Itoa(good+3)+":") {
		t.Fatalf("stats %+v", st)
	}
	if n != st.Records || n == 0 || st.Records > good {
		t.Fatalf("%d records emitted, stats %+v (sample has %d lines)", n, st, good)
	}
}
