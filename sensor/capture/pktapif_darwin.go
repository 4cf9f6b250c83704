//go:build darwin

package capture

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PKTAP pseudo-interface management, as Apple's libpcap does it
// (pcap-darwin.c pcap_setup_pktap_interface and
// pcap_cleanup_pktap_interface_internal): SIOCIFCREATE with the name "pktap"
// on an AF_INET datagram socket clones a new interface and writes its name
// ("pktap1") back into the ifreq; SIOCSDRVSPEC with PKTP_CMD_FILTER_SET
// chooses which interfaces it taps; SIOCIFDESTROY removes it. All three need
// root.
//
// Unlike libpcap this does not tag the interface with a description
// (SIOCSIFDESC) or reuse one a crashed run left behind: a sensor killed with
// SIGKILL leaves a pktapN interface until reboot or "ifconfig pktapN destroy".

// setupPKTAP returns the name of the pktap interface to attach to, creating
// it when spec names no existing unit (created is then true and the caller
// must destroy it), and installs the interface filter.
func setupPKTAP(spec pktapSpec) (name string, created bool, err error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return "", false, fmt.Errorf("pktap: socket: %w", err)
	}
	defer unix.Close(s)

	name = spec.ifname
	if name == "" {
		req, _ := newIfreq(pktapIfName)
		if err := ioctlPtr(s, siocIFCREATE, unsafe.Pointer(&req)); err != nil {
			return "", false, fmt.Errorf("create pktap interface: %w%s", err, rootHint(err))
		}
		name, created = req.name(), true
		if name == "" || name == pktapIfName {
			// The kernel always writes the unit back; do not attach to a guess.
			return "", false, fmt.Errorf("create pktap interface: the kernel returned the name %q", name)
		}
	}
	if spec.filters != nil {
		filters := spec.filterArray()
		var d ifdrv
		copy(d.Name[:], name)
		d.Cmd = pktpCmdFilterSet
		d.Len = uint64(pktapFilterArrayBytes)
		d.Data = unsafe.Pointer(&filters)
		err := ioctlPtr(s, siocSDRVSPEC, unsafe.Pointer(&d))
		runtime.KeepAlive(&filters)
		if err != nil {
			if created {
				destroyPKTAP(name)
			}
			return "", false, fmt.Errorf("set the interface filter of %s: %w", name, err)
		}
	}
	return name, created, nil
}

// destroyPKTAP removes a pktap interface this process created.
func destroyPKTAP(name string) error {
	req, err := newIfreq(name)
	if err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("destroy %s: socket: %w", name, err)
	}
	defer unix.Close(s)
	if err := ioctlPtr(s, siocIFDESTROY, unsafe.Pointer(&req)); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

// rootHint explains a permission error in one phrase.
func rootHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (run as root)"
	}
	return ""
}
