package captures_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFTPDataHashes checks the sensor's SHA-256 of every FTP data transfer
// in the committed captures: each one equals the hash manifest.py computed
// from the reassembled stream, and each upload equals what the real
// sha256sum says of the payload file the lab uploaded (matched by size:
// the payload files all differ in size).
func TestFTPDataHashes(t *testing.T) {
	payloads, err := filepath.Glob(filepath.Join("payloads", "*"))
	if err != nil || len(payloads) == 0 {
		t.Fatalf("no payload files: %v", err)
	}
	out, err := exec.Command("sha256sum", payloads...).Output()
	if err != nil {
		t.Skipf("sha256sum: %v", err)
	}
	bySize := map[int64]string{}
	for _, p := range payloads {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == p {
				bySize[fi.Size()] = f[0]
			}
		}
	}
	if len(bySize) != len(payloads) {
		t.Fatalf("payload sizes not distinct or sha256sum output not parsed: %v", bySize)
	}
	uploads := 0
	for _, f := range loadFacts(t, ".") {
		if len(f.FTPData) == 0 {
			continue
		}
		evs, _ := replay(t, f.Capture)
		ds := byDataset(t, evs)["ftp_data"]
		if len(ds) != len(f.FTPData) {
			t.Errorf("%s: %d ftp_data events, %d facts", f.Capture, len(ds), len(f.FTPData))
			continue
		}
		for i, x := range f.FTPData {
			e := ds[i]
			got := e.str("file.hash.sha256")
			what := f.Capture + ": " + x.Command + " " + deref(x.Filename)
			if x.SHA256 == nil || got != *x.SHA256 {
				t.Errorf("%s: file.hash.sha256 %q, facts say %v", what, got, deref(x.SHA256))
			}
			if x.Direction != "upload" {
				continue
			}
			uploads++
			if want, ok := bySize[x.Bytes]; !ok || got != want {
				t.Errorf("%s: file.hash.sha256 %q, sha256sum of the %d-byte payload says %q", what, got, x.Bytes, want)
			}
		}
	}
	if uploads < 5 {
		t.Errorf("only %d FTP uploads checked", uploads)
	}
}
