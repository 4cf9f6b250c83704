package capture

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// Capture backends that OpenLiveBackend accepts.
const (
	// BackendNative is the pure-Go capture of this OS: AF_PACKET on Linux,
	// /dev/bpf on macOS (OpenLive). It needs neither cgo nor libpcap.
	BackendNative = "native"
	// BackendPcap captures through libpcap (gopacket/pcap). It exists only
	// in a build with -tags pcap and cgo enabled.
	BackendPcap = "pcap"
)

// ErrNoPcap says this binary was built without the libpcap backend.
var ErrNoPcap = errors.New("this exfilwatch was built without libpcap support: build with -tags pcap (needs cgo and libpcap-dev)")

// builtins is the set of optional backends compiled into this binary. An
// optional backend adds a method to it in its own build-tagged file
// (live_pcap.go: openPcap), so whether it exists is settled at compile time:
// no registration at init, no package state to mutate.
type builtins struct{}

// pcapBuiltin is the method live_pcap.go adds to builtins.
type pcapBuiltin interface {
	openPcap(iface string, opt LiveOptions) (Live, error)
}

func hasPcap() (pcapBuiltin, bool) {
	b, ok := any(builtins{}).(pcapBuiltin)
	return b, ok
}

// hasNative says whether OpenLive can capture on this OS (live_linux.go,
// live_darwin.go; live_other.go only fails).
func hasNative() bool {
	return runtime.GOOS == "linux" || runtime.GOOS == "darwin"
}

// Backends lists the backends this build has, in the order of preference:
// "native" where the OS has one, "pcap" in a build with -tags pcap and cgo.
func Backends() []string {
	var out []string
	if hasNative() {
		out = append(out, BackendNative)
	}
	if _, ok := hasPcap(); ok {
		out = append(out, BackendPcap)
	}
	return out
}

// OpenLiveBackend opens a live capture with the named backend: "" or
// "native" for OpenLive, "pcap" for libpcap. The Live's Backend method names
// the mechanism actually used ("afpacket", "bpf", "pcap").
func OpenLiveBackend(backend, iface string, opt LiveOptions) (Live, error) {
	switch backend {
	case "", BackendNative:
		return OpenLive(iface, opt)
	case BackendPcap:
		b, ok := hasPcap()
		if !ok {
			return nil, ErrNoPcap
		}
		return b.openPcap(iface, opt)
	}
	return nil, fmt.Errorf("unknown capture backend %q: want %s", backend, strings.Join([]string{BackendNative, BackendPcap}, " or "))
}
