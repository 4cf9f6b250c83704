package capture

import (
	"errors"
	"runtime"
	"slices"
	"testing"
)

func TestOpenLiveBackendUnknown(t *testing.T) {
	l, err := OpenLiveBackend("bogus", "lo", LiveOptions{})
	if err == nil {
		l.Close()
		t.Fatal("backend bogus opened")
	}
	if want := `unknown capture backend "bogus": want native or pcap`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestOpenLiveBackendPcapWithoutTag(t *testing.T) {
	if _, ok := hasPcap(); ok {
		t.Skip("this build has the libpcap backend (live_pcap_test.go tests it)")
	}
	l, err := OpenLiveBackend("pcap", "lo", LiveOptions{})
	if err == nil {
		l.Close()
		t.Fatal("pcap backend opened in a build without it")
	}
	if !errors.Is(err, ErrNoPcap) {
		t.Errorf("error %v is not ErrNoPcap", err)
	}
	if want := "this exfilwatch was built without libpcap support: build with -tags pcap (needs cgo and libpcap-dev)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestBackends(t *testing.T) {
	got := Backends()
	_, pcap := hasPcap()
	native := runtime.GOOS == "linux" || runtime.GOOS == "darwin"
	if slices.Contains(got, BackendNative) != native || slices.Contains(got, BackendPcap) != pcap {
		t.Errorf("Backends() = %q on %s (pcap built: %v)", got, runtime.GOOS, pcap)
	}
	if len(got) != len(slices.Compact(slices.Clone(got))) {
		t.Errorf("Backends() = %q has duplicates", got)
	}
}
