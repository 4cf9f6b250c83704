package capture

import "strconv"

// ProcMeta is the per-packet process metadata that macOS attaches to packets
// captured on a pktap interface. It has two sources, which carry the same
// facts (see shared reference macos-formats.md §1):
//
//   - the PKTAP header in front of each frame of link type 149 (Apple's
//     DLT_PKTAP) or 258 (LINKTYPE_PKTAP), filled by the decode package;
//   - Apple's pcapng: Process Information Blocks (type 0x80000001) and the
//     Darwin EPB options 0x8001–0x800A that point to them, filled by this
//     package's pcapng reader.
//
// The zero value means "no metadata". A ProcMeta holds no pointers into the
// frame: its strings are owned (interned per PIB, IDB or by the decoder), so
// it may be kept after the next frame is read. Filling it allocates nothing
// per packet.
type ProcMeta struct {
	// Valid is set when the packet carried any Darwin metadata: a PKTAP
	// header, or at least one of the pcapng options epb_flags (direction) and
	// 0x8001–0x800A. IfName alone does not make it valid.
	Valid bool
	// Source says which header the fields below were read from.
	Source MetaSource

	// HasProc is set when the packet names a process: PKTAP pth_pid ∉ {0,-1}
	// or a non-empty pth_comm or a non-null pth_uuid (the rule Apple's libpcap
	// uses to write a PIB); in pcapng, option 0x8001 pointing to a PIB that
	// exists. PID 0 with name "kernel_task" is a real process (the kernel).
	HasProc bool
	// PID is pth_pid / the PIB's process_id: the last process that used the
	// socket (so->last_pid). -1 means the kernel found no socket.
	PID int32
	// Name is pth_comm / PIB option 2: the process name, truncated by the
	// kernel to 16 characters ("Google Chrome He"), trailing NULs removed.
	Name string
	// Path is PIB option 3 (pcapng only; Apple libpcap defines it but does
	// not write it).
	Path string
	// UUID is pth_uuid / PIB option 4: the executable's LC_UUID. HasUUID is
	// false when it is absent or all zero.
	UUID    [16]byte
	HasUUID bool

	// HasEProc, EPID, EName, EPath, EUUID and HasEUUID describe the effective
	// process: PKTAP pth_epid, pth_ecomm, pth_euuid; pcapng option 0x8003
	// (effective PIB index). For a delegated socket this is the process on
	// whose behalf the socket was used; otherwise it usually equals the
	// process above, or is absent.
	HasEProc bool
	EPID     int32
	EName    string
	EPath    string
	EUUID    [16]byte
	HasEUUID bool
	// Delegated is PKTAP's PTH_FLAG_PROC_DELEGATED (0x4). pcapng has no such
	// flag: there it is set when both processes are known and their PIDs
	// differ.
	Delegated bool

	// IfName is the real interface the packet was seen on: PKTAP pth_ifname,
	// or the pcapng IDB option if_name (2). It is set for every pcapng frame
	// whose interface has a name, even when Valid is false.
	IfName string
	// Direction comes from PTH_FLAG_DIR_IN/OUT or from epb_flags bits 0–1.
	Direction Direction
	// SvcClass is the socket's service class as an SO_TC_* value (0 BE,
	// 100 BK_SYS, … 900 CTL; see SvcName): PKTAP pth_svc, pcapng option
	// 0x8002. HasSvc is false when absent (PKTAP: pth_svc == -1).
	SvcClass int32
	HasSvc   bool
	// FlowID is the kernel's flow hash: PKTAP pth_flowid, pcapng option
	// 0x8005. 0 means absent (Apple writes the option only when non-zero).
	FlowID uint32
	// Flags uses the pcapng PMD bit layout (option 0x8004, the Flag*
	// constants below) for both sources: PKTAP pth_flags are translated the
	// way Apple's libpcap does when it writes pcapng.
	Flags uint32
	// PTHFlags is the raw PKTAP pth_flags word (PKTAP only; 0 for pcapng).
	PTHFlags uint32
	// TraceTag is PKTAP pth_trace_tag / pcapng option 0x8006.
	TraceTag uint16
	// CompGenCnt is pcapng option 0x800A, or pth_comp_gencnt of the current
	// (xnu ≥ 11417) PKTAP v1 layout. 0 when absent.
	CompGenCnt uint32
	// DropReason and DropLine are pcapng options 0x8007 and 0x8008 (droptap
	// captures only). The drop function name (0x8009) is not kept.
	DropReason uint32
	DropLine   uint16
}

// MetaSource says where a ProcMeta was read from.
type MetaSource uint8

const (
	MetaNone       MetaSource = iota // no metadata
	MetaPcapNG                       // Apple pcapng EPB options and PIBs
	MetaPKTAPv1Old                   // PKTAP v1 header, layout of xnu ≤ 11215 (byte 73 is padding)
	MetaPKTAPv1                      // PKTAP v1 header, layout of xnu ≥ 11417 (pth_ipproto at 73, pth_comp_gencnt at 112)
	MetaPKTAPv2                      // compact pktap_v2_hdr (PTH_FLAG_V2_HDR)
)

var metaSourceNames = [...]string{"none", "pcapng", "pktap-v1-old", "pktap-v1", "pktap-v2"}

func (s MetaSource) String() string {
	if int(s) < len(metaSourceNames) {
		return metaSourceNames[s]
	}
	return "source_" + strconv.Itoa(int(s))
}

// Direction of a packet relative to the capturing host.
type Direction uint8

const (
	DirUnknown Direction = 0
	DirIn      Direction = 1
	DirOut     Direction = 2
)

func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return "unknown"
}

// ProcMeta.Flags bits: the pcapng PMD flags of option 0x8004 (Apple libpcap
// pcap-ng.h PCAPNG_EPB_PMDF_*). They are not the pth_flags values.
const (
	FlagNewFlow      = 0x01
	FlagKeepAlive    = 0x02
	FlagRexmit       = 0x04
	FlagSocket       = 0x08 // the kernel found the packet's socket
	FlagNexusChannel = 0x10
	FlagWakePkt      = 0x20
	FlagULPN         = 0x40
	FlagLPW          = 0x80
)

// SvcName returns the name Apple's tcpdump prints for an SO_TC_* service
// class ("BE", "CTL", …), or the number.
func SvcName(svc int32) string {
	switch svc {
	case 0:
		return "BE"
	case 100:
		return "BK_SYS"
	case 200:
		return "BK"
	case 300:
		return "RD"
	case 400:
		return "OAM"
	case 500:
		return "AV"
	case 600:
		return "RV"
	case 700:
		return "VI"
	case 800:
		return "VO"
	case 900:
		return "CTL"
	}
	return strconv.Itoa(int(svc))
}

// TrimNUL returns b up to its first NUL byte. Apple writes C strings into
// fixed fields (pth_comm, pth_ifname) and, in older libpcap, NUL-terminated
// pcapng string options.
func TrimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
