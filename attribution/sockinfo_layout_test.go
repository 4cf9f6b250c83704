package attribution

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProcInfoLayoutMatchesC compiles testdata/darwin/proc_info_layout.c,
// the xnu proc_info structures transcribed with Darwin's type sizes, with
// the host C compiler and checks that its offsets and sizes are the
// decoders' constants and the values documented in macos-formats.md §3.2.
// It needs a C compiler (not cgo: the program is built and run apart) and
// is skipped without one.
func TestProcInfoLayoutMatchesC(t *testing.T) {
	cc := ""
	for _, c := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		t.Skip("no C compiler")
	}
	bin := filepath.Join(t.TempDir(), "layout")
	out, err := exec.Command(cc, "-Wall", "-o", bin, filepath.Join("testdata", "darwin", "proc_info_layout.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	out, err = exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("layout: %v", err)
	}
	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[name] = n
	}
	want := map[string]int{
		// Sizes (macos-formats.md §3.2 table; xnu static asserts 56).
		"sizeof_socket_fdinfo":           SocketFDInfoSize, // 792
		"sizeof_socket_info":             768,
		"sizeof_in_sockinfo":             80,
		"sizeof_tcp_sockinfo":            120,
		"sizeof_un_sockinfo":             528,
		"sizeof_vinfo_stat":              136,
		"sizeof_proc_fdinfo":             ProcFDInfoSize,
		"sizeof_proc_bsdinfo":            ProcBSDInfoSize,
		"sizeof_proc_bsdshortinfo":       ProcBSDShortInfoSize,
		"sizeof_proc_uniqidentifierinfo": ProcUniqIdentifierInfoSize,
		"sizeof_proc_vnodepathinfo":      ProcVnodePathInfoSize,
		// socket_fdinfo, absolute offsets.
		"soi_type":         sockinfoOffType,
		"soi_protocol":     sockinfoOffProtocol,
		"soi_family":       sockinfoOffFamily,
		"soi_kind":         sockinfoOffKind,  // 256
		"soi_proto":        sockinfoOffProto, // 264
		"insi_fport":       sockinfoOffProto + sockinfoInFport,
		"insi_lport":       sockinfoOffProto + sockinfoInLport, // 268
		"insi_vflag":       sockinfoOffProto + sockinfoInVflag, // 288
		"insi_faddr":       sockinfoOffProto + sockinfoInFaddr, // 296
		"insi_laddr":       sockinfoOffProto + sockinfoInLaddr, // 312
		"insi_faddr_addr4": sockinfoOffProto + sockinfoInFaddr + 12,
		"insi_laddr_addr4": sockinfoOffProto + sockinfoInLaddr + 12,
		"tcpsi_state":      sockinfoOffProto + sockinfoTCPState, // 344
		// proc_bsdinfo.
		"pbi_flags":        bsdinfoOffFlags,
		"pbi_status":       bsdinfoOffStatus,
		"pbi_pid":          bsdinfoOffPID,
		"pbi_ppid":         bsdinfoOffPPID,
		"pbi_uid":          bsdinfoOffUID,
		"pbi_gid":          bsdinfoOffGID,
		"pbi_ruid":         bsdinfoOffRUID,
		"pbi_comm":         bsdinfoOffComm,
		"pbi_name":         bsdinfoOffName,
		"pbi_pgid":         bsdinfoOffPGID,
		"pbi_start_tvsec":  bsdinfoOffStartSec,
		"pbi_start_tvusec": bsdinfoOffStartUsec,
		// proc_bsdshortinfo, proc_uniqidentifierinfo, proc_vnodepathinfo.
		"pbsi_pid":      bsdshortOffPID,
		"pbsi_ppid":     bsdshortOffPPID,
		"pbsi_comm":     bsdshortOffComm,
		"pbsi_uid":      bsdshortOffUID,
		"p_uuid":        uniqidOffUUID,
		"p_uniqueid":    uniqidOffUniqueID,
		"p_idversion":   uniqidOffIDVersion,
		"pvi_cdir_path": vnodepathOffCdirPath,
	}
	// The values the reference documents, for the fields it lists.
	documented := map[string]int{
		"sizeof_socket_fdinfo": 792, "soi_kind": 256, "soi_proto": 264, "insi_fport": 264,
		"insi_lport": 268, "insi_vflag": 288, "insi_faddr": 296, "insi_laddr": 312,
		"tcpsi_state": 344, "soi_family": 184, "soi_protocol": 180, "soi_type": 176,
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not printed by the C program", name)
			continue
		}
		if g != w {
			t.Errorf("%s: C says %d, Go constant is %d", name, g, w)
		}
		if d, ok := documented[name]; ok && d != g {
			t.Errorf("%s: C says %d, macos-formats.md says %d", name, g, d)
		}
	}
}
