package capture

// Pure, OS-independent pieces of the macOS /dev/bpf capture (live_darwin.go,
// pktapif_darwin.go): the walker over a BPF read buffer, the PKTAP unwrapping
// used by the user-space filter, the parsing of PKTAP interface names and the
// ioctl numbers and argument layouts. They live in an untagged file so that
// the tests run on Linux.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// BPF read buffer layout (xnu bsd/net/bpf.h):
//
//	struct bpf_hdr {
//		struct BPF_TIMEVAL bh_tstamp;  // timeval32 on LP64: i32 sec, i32 usec
//		bpf_u_int32 bh_caplen;         // offset 8
//		bpf_u_int32 bh_datalen;        // offset 12
//		u_short     bh_hdrlen;         // offset 16: header plus padding
//	};
//	#define BPF_ALIGNMENT sizeof(int32_t)
//	#define BPF_WORDALIGN(x) (((x)+(BPF_ALIGNMENT-1))&~(BPF_ALIGNMENT-1))
//
// The kernel writes 18 content bytes (SIZEOF_BPF_HDR), padded so that the
// network header is aligned: bh_hdrlen is 18 for Ethernet and 20 for
// DLT_NULL, DLT_RAW and DLT_PKTAP. With BIOCSEXTHDR the header is the larger
// struct bpf_hdr_ext (60 bytes, 64 in xnu versions with bh_comp_gencnt), which starts
// with the same fields, so the walker handles both: it only trusts bh_hdrlen.
// Integers are in host byte order, little-endian on every Mac (x86_64, arm64).
const (
	bpfHdrMinLen = 18 // SIZEOF_BPF_HDR
	bpfAlignment = 4  // BPF_ALIGNMENT = sizeof(int32_t) on darwin
)

// bpfWordAlign is BPF_WORDALIGN. gopacket's bsdbpf aligns to the machine
// word (8 on 64-bit), which is wrong on darwin: one reason for this reader.
func bpfWordAlign(x int) int { return (x + bpfAlignment - 1) &^ (bpfAlignment - 1) }

// BPFHeader is the header of one record in a BPF read buffer.
type BPFHeader struct {
	Sec     uint32 // bh_tstamp.tv_sec (read unsigned: valid until 2106)
	Usec    uint32 // bh_tstamp.tv_usec
	CapLen  uint32 // bytes captured (the length of the data)
	DataLen uint32 // bytes on the wire
	HdrLen  uint16 // length of this header plus padding
}

// Time returns the record's timestamp.
func (h BPFHeader) Time() time.Time {
	return time.Unix(int64(h.Sec), int64(h.Usec)*1000)
}

// ErrBPFRecord says a BPF read buffer holds a record whose lengths do not fit.
var ErrBPFRecord = errors.New("corrupt BPF record")

// BPFRecords walks the records of one BPF read buffer. It never panics: a
// record whose lengths do not fit the buffer ends the walk with an error.
type BPFRecords struct {
	buf []byte
	off int
}

// Reset starts a walk over buf (the bytes one read(2) returned).
func (r *BPFRecords) Reset(buf []byte) {
	r.buf = buf
	r.off = 0
}

// Next returns the next record. ok is false when the buffer is exhausted or
// err is set; after an error the rest of the buffer is skipped. data aliases
// the buffer.
func (r *BPFRecords) Next() (hdr BPFHeader, data []byte, ok bool, err error) {
	if r.off >= len(r.buf) {
		// The last record is not padded: the aligned offset may pass the end.
		return BPFHeader{}, nil, false, nil
	}
	off := r.off
	rem := len(r.buf) - off
	fail := func(format string, a ...any) (BPFHeader, []byte, bool, error) {
		r.off = len(r.buf)
		return BPFHeader{}, nil, false, fmt.Errorf("%w at offset %d of %d: %s", ErrBPFRecord, off, len(r.buf), fmt.Sprintf(format, a...))
	}
	if rem < bpfHdrMinLen {
		return fail("%d bytes left, a header needs %d", rem, bpfHdrMinLen)
	}
	b := r.buf[off:]
	hdr = BPFHeader{
		Sec:     binary.LittleEndian.Uint32(b[0:4]),
		Usec:    binary.LittleEndian.Uint32(b[4:8]),
		CapLen:  binary.LittleEndian.Uint32(b[8:12]),
		DataLen: binary.LittleEndian.Uint32(b[12:16]),
		HdrLen:  binary.LittleEndian.Uint16(b[16:18]),
	}
	hl := int(hdr.HdrLen)
	if hl < bpfHdrMinLen {
		return fail("bh_hdrlen %d < %d", hl, bpfHdrMinLen)
	}
	if hl > rem {
		return fail("bh_hdrlen %d > %d bytes left", hl, rem)
	}
	if uint64(hdr.CapLen) > uint64(rem-hl) {
		return fail("bh_caplen %d > %d bytes left after the header", hdr.CapLen, rem-hl)
	}
	cl := int(hdr.CapLen)
	// hl >= 18, so every record moves the walk forward by at least 20 bytes.
	r.off = off + bpfWordAlign(hl+cl)
	return hdr, b[hl : hl+cl : hl+cl], true, nil
}

// PKTAP (xnu bsd/net/pktap.h; shared reference macos-formats.md §1.2, §1.5).
const (
	dltPKTAP      = 149 // DLT_PKTAP = DLT_USER2 on darwin; Apple writes LINKTYPE 149 too
	linkTypeRaw   = 101 // LINKTYPE_RAW (DLT_RAW is 12 on darwin)
	dltRawDarwin  = 12
	pktapHdrV1Min = 108 // Wireshark's minimum; xnu writes sizeof(struct pktap_header) = 156
	pktapHdrV1Max = 4096
	pktapHdrV2Min = 40 // sizeof(struct pktap_v2_hdr)
	pthFlagV2Hdr  = 0x80000
)

// pktapNetwork returns the network-layer packet inside a PKTAP record: it
// skips the PKTAP header (pth_length) and the link-layer header
// (pth_frame_pre_length: 14 for Ethernet, 4 for DLT_NULL, 0 for raw IP) and
// drops the link-layer trailer (pth_frame_post_length) when it fits. ok is
// false when the lengths do not fit the record.
func pktapNetwork(b []byte) (pkt []byte, ok bool) {
	var hl, pre, post uint64
	if len(b) >= pktapHdrV2Min && binary.LittleEndian.Uint32(b[36:40])&pthFlagV2Hdr != 0 {
		// struct pktap_v2_hdr: u8 pth_length, ..., u16 pre at 8, u16 post at 10.
		hl = uint64(b[0])
		if hl < pktapHdrV2Min {
			return nil, false
		}
		pre = uint64(binary.LittleEndian.Uint16(b[8:10]))
		post = uint64(binary.LittleEndian.Uint16(b[10:12]))
	} else {
		// struct pktap_header v1: u32 pth_length at 0, pre at 44, post at 48.
		if len(b) < pktapHdrV1Min {
			return nil, false
		}
		hl = uint64(binary.LittleEndian.Uint32(b[0:4]))
		if hl < pktapHdrV1Min || hl > pktapHdrV1Max {
			return nil, false
		}
		pre = uint64(binary.LittleEndian.Uint32(b[44:48]))
		post = uint64(binary.LittleEndian.Uint32(b[48:52]))
	}
	start := hl + pre
	if start > uint64(len(b)) {
		return nil, false
	}
	end := uint64(len(b))
	if post <= end-start {
		end -= post
	}
	return b[start:end], true
}

// pktapSpec is a parsed PKTAP interface name.
type pktapSpec struct {
	ifname  string        // an existing pktap unit ("pktap2"); "" to create one
	filters []pktapFilter // nil: keep the kernel's default (Ethernet and cellular only)
}

// PKTAP interface filter (xnu bsd/net/pktap.h, the userland struct
// pktap_filter, which the kernel reads as struct x_pktap_filter):
//
//	struct pktap_filter {
//		uint32_t filter_op;      // PKTAP_FILTER_OP_NONE 0, _PASS 1, _SKIP 2
//		uint32_t filter_param;   // PKTAP_FILTER_PARAM_NONE 0, _IF_TYPE 1, _IF_NAME 2
//		union {
//			uint32_t _filter_if_type;
//			char     _filter_if_name[PKTAP_IFXNAMESIZE];  // IF_NAMESIZE + 8 = 24
//		} param_;
//	};  // 32 bytes
//
// PKTP_CMD_FILTER_SET takes exactly PKTAP_MAX_FILTERS (8) of them; unused
// entries are OP_NONE and must all come after the used ones (pktap.c
// pktap_setdrvspec). "A rule with interface type 0 (zero) matches any
// interfaces."
type pktapFilter struct {
	Op    uint32
	Param uint32
	Name  [pktapIfxNameSize]byte // or the if_type in the first 4 bytes
}

const (
	pktapIfxNameSize      = 24 // PKTAP_IFXNAMESIZE
	pktapMaxFilters       = 8  // PKTAP_MAX_FILTERS
	pktapFilterOpPass     = 1  // PKTAP_FILTER_OP_PASS
	pktapFilterParamType  = 1  // PKTAP_FILTER_PARAM_IF_TYPE
	pktapFilterParamName  = 2  // PKTAP_FILTER_PARAM_IF_NAME
	pktpCmdFilterSet      = 3  // PKTP_CMD_FILTER_SET
	pktapIfName           = "pktap"
	ifNameSize            = 16 // IFNAMSIZ
	pktapFilterArrayBytes = pktapMaxFilters * int(unsafe.Sizeof(pktapFilter{}))
)

// parsePKTAPName says whether an interface name asks for PKTAP and how, the
// way Apple's libpcap reads it (pcap-darwin.c pcap_setup_pktap_interface):
//
//	pktap                 a new pktap interface, kernel default filter
//	                      (Ethernet and cellular; no lo0, utun, ipsec)
//	pktap,all  all  any   a new pktap interface passing every interface
//	pktap,en0,utun3       a new pktap interface passing these interfaces
//	pktap2[,...]          the existing interface pktap2 (not created here)
//
// Unlike libpcap, "all"/"any" are recognised in any position of the list.
func parsePKTAPName(name string) (spec pktapSpec, isPKTAP bool, err error) {
	if name == "all" || name == "any" {
		name = "pktap,all"
	}
	base, params, hasParams := strings.Cut(name, ",")
	if !strings.HasPrefix(base, pktapIfName) {
		return pktapSpec{}, false, nil
	}
	if unit := base[len(pktapIfName):]; unit != "" {
		// At most "pktap65535", which fits IFNAMSIZ.
		if _, err := strconv.ParseUint(unit, 10, 16); err != nil {
			return pktapSpec{}, false, nil // "pktapfoo": an ordinary interface name
		}
		spec.ifname = base
	}
	if !hasParams {
		return spec, true, nil
	}
	spec.filters = []pktapFilter{}
	for _, p := range strings.Split(params, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if len(spec.filters) == pktapMaxFilters {
			return pktapSpec{}, true, fmt.Errorf("%s: at most %d interfaces can be listed after pktap", name, pktapMaxFilters)
		}
		f := pktapFilter{Op: pktapFilterOpPass}
		if p == "all" || p == "any" {
			f.Param = pktapFilterParamType // if_type 0 matches every interface
		} else {
			if len(p) > pktapIfxNameSize-1 {
				return pktapSpec{}, true, fmt.Errorf("%s: interface name %q longer than %d characters", name, p, pktapIfxNameSize-1)
			}
			f.Param = pktapFilterParamName
			copy(f.Name[:], p)
		}
		spec.filters = append(spec.filters, f)
	}
	if len(spec.filters) == 0 {
		return pktapSpec{}, true, fmt.Errorf("%s: no interface listed after the comma", name)
	}
	return spec, true, nil
}

// filterArray returns the PKTP_CMD_FILTER_SET argument: the filters, then
// OP_NONE entries up to PKTAP_MAX_FILTERS.
func (s pktapSpec) filterArray() (a [pktapMaxFilters]pktapFilter) {
	copy(a[:], s.filters)
	return a
}

// linkTypeOfDLT maps a darwin DLT value (BIOCGDLT) to the LINKTYPE value
// that capture files, CompileFilter and the decoder use. They are equal for
// everything a Mac attaches except DLT_RAW (12 → LINKTYPE_RAW 101). PKTAP
// stays 149, as Apple's libpcap writes it.
func linkTypeOfDLT(dlt uint32) uint32 {
	if dlt == dltRawDarwin {
		return linkTypeRaw
	}
	return dlt
}

// ioctl numbers (darwin, LP64), from the _IOC macro of xnu bsd/sys/ioccom.h:
//
//	_IOC(inout, group, num, len) = inout | (len & IOCPARM_MASK) << 16 | group << 8 | num
//	IOCPARM_MASK 0x1fff, IOC_VOID 0x20000000, IOC_OUT 0x40000000,
//	IOC_IN 0x80000000, IOC_INOUT = IOC_IN|IOC_OUT
//	_IO = IOC_VOID, _IOR = IOC_OUT, _IOW = IOC_IN, _IOWR = IOC_INOUT
//
// Sizes on LP64: u_int 4, struct ifreq 32 (IFNAMSIZ 16 + a 16-byte union),
// struct bpf_program 16 (u_int + pad + pointer), struct timeval 16 (long
// tv_sec, int tv_usec, pad), struct bpf_stat 8 (two u_int), struct ifdrv 40
// (char[16], unsigned long, size_t, void*; #pragma pack(4) changes nothing
// because every field is already at an 8-byte offset). bpfbuf_test.go
// recomputes each value from these numbers and checks the Go argument types
// have the same sizes.
const (
	// xnu bsd/net/bpf.h
	biocSBLEN      = 0xc0044266 // _IOWR('B', 102, u_int)
	biocSETF       = 0x80104267 // _IOW('B', 103, struct bpf_program)
	biocPROMISC    = 0x20004269 // _IO('B', 105)
	biocGDLT       = 0x4004426a // _IOR('B', 106, u_int)
	biocSETIF      = 0x8020426c // _IOW('B', 108, struct ifreq)
	biocSRTIMEOUT  = 0x8010426d // _IOW('B', 109, struct timeval)
	biocGSTATS     = 0x4008426f // _IOR('B', 111, struct bpf_stat)
	biocIMMEDIATE  = 0x80044270 // _IOW('B', 112, u_int)
	biocSEXTHDR    = 0x8004427c // _IOW('B', 124, u_int)   (PRIVATE; not used yet)
	biocGWANTPKTAP = 0x4004427f // _IOR('B', 127, u_int)   (PRIVATE)
	biocSWANTPKTAP = 0xc004427f // _IOWR('B', 127, u_int)  (PRIVATE)
	biocSPKTHDRV2  = 0x80044284 // _IOW('B', 132, int)     (PRIVATE; not used: v1 headers)

	// xnu bsd/sys/sockio.h
	siocIFCREATE  = 0xc0206978 // _IOWR('i', 120, struct ifreq)
	siocIFDESTROY = 0x80206979 // _IOW('i', 121, struct ifreq)
	siocSDRVSPEC  = 0x8028697b // _IOW('i', 123, struct ifdrv)
)

// ioctl argument layouts (LP64). The sizes are checked against the ioctl
// numbers by the tests, and at compile time in live_darwin.go.
type (
	// struct ifreq: only the name is used (BIOCSETIF, SIOCIFCREATE, SIOCIFDESTROY).
	ifreq [32]byte

	// struct bpf_program (bf_insns points at struct bpf_insn {u16 code;
	// u8 jt; u8 jf; u32 k}, the layout of golang.org/x/net/bpf.RawInstruction).
	bpfProgram struct {
		Len   uint32
		_     [4]byte
		Insns unsafe.Pointer
	}

	// struct timeval on LP64 (the kernel reads it as user64_timeval).
	bpfTimeval struct {
		Sec  int64
		Usec int32
		_    [4]byte
	}

	// struct bpf_stat.
	bpfStat struct {
		Recv uint32
		Drop uint32
	}

	// struct ifdrv (xnu bsd/net/if.h).
	ifdrv struct {
		Name [ifNameSize]byte
		Cmd  uint64
		Len  uint64
		Data unsafe.Pointer
	}
)

// newIfreq returns an ifreq holding name, or an error when it does not fit
// (IFNAMSIZ includes the terminating NUL).
func newIfreq(name string) (ifreq, error) {
	var r ifreq
	if name == "" || len(name) >= ifNameSize || strings.IndexByte(name, 0) >= 0 {
		return r, fmt.Errorf("interface name %q: want 1 to %d characters", name, ifNameSize-1)
	}
	copy(r[:], name)
	return r, nil
}

// name returns the NUL-terminated name in an ifreq.
func (r *ifreq) name() string {
	n := r[:ifNameSize]
	if i := strings.IndexByte(string(n), 0); i >= 0 {
		n = n[:i]
	}
	return string(n)
}
