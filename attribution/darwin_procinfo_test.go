package attribution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// darwinBSDInfoFixture lays out a struct proc_bsdinfo (xnu
// bsd/sys/proc_info.h) field by field, offsets written as literals.
func darwinBSDInfoFixture(pid, ppid int32, uid uint32, comm, name string, sec, usec uint64) []byte {
	b := make([]byte, 136)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x4010) // pbi_flags: PROC_FLAG_EXEC|PROC_FLAG_LP64
	le.PutUint32(b[4:], 2)      // pbi_status SRUN
	le.PutUint32(b[8:], 0)      // pbi_xstatus
	le.PutUint32(b[12:], uint32(pid))
	le.PutUint32(b[16:], uint32(ppid))
	le.PutUint32(b[20:], uid)          // pbi_uid
	le.PutUint32(b[24:], 20)           // pbi_gid (staff)
	le.PutUint32(b[28:], uid)          // pbi_ruid
	le.PutUint32(b[32:], 20)           // pbi_rgid
	le.PutUint32(b[36:], uid)          // pbi_svuid
	le.PutUint32(b[40:], 20)           // pbi_svgid
	copy(b[48:48+15], comm)            // pbi_comm[16], NUL-terminated by the kernel
	copy(b[64:64+31], name)            // pbi_name[32]
	le.PutUint32(b[96:], 23)           // pbi_nfiles
	le.PutUint32(b[100:], uint32(pid)) // pbi_pgid
	le.PutUint32(b[112:], 0)           // e_tpgid
	le.PutUint32(b[116:], 0)           // pbi_nice
	le.PutUint64(b[120:], sec)         // pbi_start_tvsec
	le.PutUint64(b[128:], usec)        // pbi_start_tvusec
	return b
}

func TestDecodeBSDInfo(t *testing.T) {
	b := darwinBSDInfoFixture(2227, 1, 501, "Google Chrome H", "Google Chrome Helper", 1764220000, 123456)
	got, err := DecodeBSDInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BSDInfo{
		Flags: 0x4010, Status: 2, PID: 2227, PPID: 1, UID: 501, GID: 20, RUID: 501, PGID: 2227,
		Comm: "Google Chrome H", Name: "Google Chrome Helper",
		StartSec: 1764220000, StartUsec: 123456,
		StartTime: time.Unix(1764220000, 123456000).UTC(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// A 16-byte comm without NUL is taken whole, not read past.
	copy(b[48:64], "ABCDEFGHIJKLMNOP")
	if got, _ := DecodeBSDInfo(b); got.Comm != "ABCDEFGHIJKLMNOP" {
		t.Errorf("comm without NUL = %q", got.Comm)
	}
	for i := 0; i < 136; i++ {
		if _, err := DecodeBSDInfo(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes: err = %v", i, err)
		}
	}
	bad := darwinBSDInfoFixture(1, 0, 0, "launchd", "", 1, 2_000_000)
	if _, err := DecodeBSDInfo(bad); err == nil {
		t.Error("usec ≥ 1e6 accepted")
	}
}

func TestDecodeBSDShortInfo(t *testing.T) {
	b := make([]byte, 64)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 590) // pbsi_pid
	le.PutUint32(b[4:], 1)   // pbsi_ppid
	le.PutUint32(b[8:], 590) // pbsi_pgid
	le.PutUint32(b[12:], 2)  // pbsi_status
	copy(b[16:], "com.apple.WebKi")
	le.PutUint32(b[32:], 0x10) // pbsi_flags
	le.PutUint32(b[36:], 501)  // pbsi_uid
	le.PutUint32(b[40:], 20)   // pbsi_gid
	got, err := DecodeBSDShortInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BSDShortInfo{PID: 590, PPID: 1, PGID: 590, Comm: "com.apple.WebKi", UID: 501}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := DecodeBSDShortInfo(b[:63]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short: %v", err)
	}
}

func TestDecodeUniqIdentifierInfo(t *testing.T) {
	b := make([]byte, 56)
	uuid := [16]byte{0x86, 0x88, 0x0a, 0x73, 0x84, 0x9b, 0x38, 0x58, 0xa5, 0xef, 0x90, 0x2d, 0xfb, 0xc9, 0x6b, 0x30}
	copy(b[0:], uuid[:])
	binary.LittleEndian.PutUint64(b[16:], 77001) // p_uniqueid
	binary.LittleEndian.PutUint64(b[24:], 1)     // p_puniqueid
	binary.LittleEndian.PutUint32(b[32:], 9)     // p_idversion
	got, err := DecodeUniqIdentifierInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	want := UniqIdentifierInfo{UUID: uuid, UniqueID: 77001, ParentUniqueID: 1, IDVersion: 9}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := DecodeUniqIdentifierInfo(b[:35]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short: %v", err)
	}
}

func TestDecodeVnodePathCWD(t *testing.T) {
	b := make([]byte, 2352)
	copy(b[152:], "/Users/alice/Documents\x00")
	copy(b[1176+152:], "/\x00") // pvi_rdir
	got, err := DecodeVnodePathCWD(b)
	if err != nil || got != "/Users/alice/Documents" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := DecodeVnodePathCWD(b[:1000]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short: %v", err)
	}
}

// darwinProcArgs2Fixture builds a kern.procargs2 answer as xnu lays it
// out: int32 argc, exec path, NUL padding to the word, argv, envp.
func darwinProcArgs2Fixture(argc int32, exe string, pad int, args, env []string) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(argc))
	b = append(b, exe...)
	b = append(b, make([]byte, 1+pad)...)
	for _, a := range args {
		b = append(append(b, a...), 0)
	}
	for _, e := range env {
		b = append(append(b, e...), 0)
	}
	return append(b, 0, 0)
}

func TestParseProcArgs2(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantExe  string
		wantArgs []string
		wantErr  error
	}{{
		name:     "curl upload",
		in:       darwinProcArgs2Fixture(4, "/usr/bin/curl", 2, []string{"curl", "-T", "/Users/alice/Documents/q3.pdf", "ftp://203.0.113.9/"}, []string{"PATH=/usr/bin:/bin", "HOME=/Users/alice"}),
		wantExe:  "/usr/bin/curl",
		wantArgs: []string{"curl", "-T", "/Users/alice/Documents/q3.pdf", "ftp://203.0.113.9/"},
	}, {
		name:     "interpreter with a script and an empty argument",
		in:       darwinProcArgs2Fixture(3, "/opt/homebrew/bin/python3.12", 3, []string{"python3", "/tmp/x.py", ""}, nil),
		wantExe:  "/opt/homebrew/bin/python3.12",
		wantArgs: []string{"python3", "/tmp/x.py", ""},
	}, {
		name:     "no-read-procargs entitlement form (argc 1, one NUL, argv[0] = exec path)",
		in:       append(binary.LittleEndian.AppendUint32(nil, 1), "/usr/libexec/nsurlsessiond\x00\x00/usr/libexec/nsurlsessiond\x00"...),
		wantExe:  "/usr/libexec/nsurlsessiond",
		wantArgs: []string{"/usr/libexec/nsurlsessiond"},
	}, {
		name:     "argc 0",
		in:       darwinProcArgs2Fixture(0, "/sbin/launchd", 3, nil, []string{"X=1"}),
		wantExe:  "/sbin/launchd",
		wantArgs: []string{},
	}, {
		name:     "argc larger than the arguments",
		in:       darwinProcArgs2Fixture(5, "/bin/sh", 0, []string{"sh", "-c"}, nil)[:4+8+3+3],
		wantExe:  "/bin/sh",
		wantArgs: []string{"sh", "-c"},
		wantErr:  io.ErrUnexpectedEOF,
	}, {
		name:     "last argument cut",
		in:       []byte("\x02\x00\x00\x00/bin/ls\x00\x00ls\x00/Users/al"),
		wantExe:  "/bin/ls",
		wantArgs: []string{"ls", "/Users/al"},
		wantErr:  io.ErrUnexpectedEOF,
	}, {
		name:    "exec path without NUL",
		in:      []byte("\x01\x00\x00\x00/bin/l"),
		wantExe: "/bin/l",
		wantErr: io.ErrUnexpectedEOF,
	}, {
		name:    "too short for argc",
		in:      []byte{1, 0},
		wantErr: io.ErrUnexpectedEOF,
	}, {
		name:     "huge argc does not allocate",
		in:       []byte("\xff\xff\xff\x7f/x\x00\x00a\x00"),
		wantExe:  "/x",
		wantArgs: []string{"a"},
		wantErr:  io.ErrUnexpectedEOF,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe, args, err := ParseProcArgs2(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if exe != tt.wantExe {
				t.Errorf("exe = %q, want %q", exe, tt.wantExe)
			}
			if tt.wantArgs != nil && !reflect.DeepEqual(args, tt.wantArgs) {
				t.Errorf("args = %q, want %q", args, tt.wantArgs)
			}
		})
	}
	if _, _, err := ParseProcArgs2([]byte("\xff\xff\xff\xff/x\x00")); err == nil {
		t.Error("negative argc accepted")
	}
}

// TestParseProcArgs2Fixture reads testdata/darwin/procargs2_curl.bin, a
// fixture written from the documented format (see the _test helper).
func TestParseProcArgs2Fixture(t *testing.T) {
	path := filepath.Join("testdata", "darwin", "procargs2_curl.bin")
	want := darwinProcArgs2Fixture(4, "/usr/bin/curl", 2,
		[]string{"curl", "-T", "/Users/alice/Documents/q3.pdf", "ftp://203.0.113.9/"},
		[]string{"PATH=/usr/bin:/bin", "HOME=/Users/alice"})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s differs from the fixture builder", path)
	}
	exe, args, err := ParseProcArgs2(b)
	if err != nil || exe != "/usr/bin/curl" || len(args) != 4 || args[2] != "/Users/alice/Documents/q3.pdf" {
		t.Errorf("got %q %q %v", exe, args, err)
	}
}

func FuzzParseProcArgs2(f *testing.F) {
	f.Add(darwinProcArgs2Fixture(4, "/usr/bin/curl", 2, []string{"curl", "-T", "a.pdf", "ftp://x/"}, []string{"A=1"}))
	f.Add([]byte("\x02\x00\x00\x00/bin/ls\x00\x00ls\x00/Users/al"))
	f.Add([]byte("\xff\xff\xff\x7f/x\x00\x00a\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		exe, args, err := ParseProcArgs2(b)
		total := len(exe)
		for _, a := range args {
			total += len(a)
		}
		if total > len(b) {
			t.Fatalf("%d bytes of strings from %d bytes of input", total, len(b))
		}
		if err == nil && len(b) >= 4 && int(int32(binary.LittleEndian.Uint32(b))) != len(args) {
			t.Fatalf("argc %d, %d args, no error", int32(binary.LittleEndian.Uint32(b)), len(args))
		}
	})
}

func TestDarwinProcessName(t *testing.T) {
	tests := []struct{ comm, name, exe, want string }{
		{"Google Chrome H", "Google Chrome Helper", "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/1/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper", "Google Chrome Helper"},
		{"com.apple.WebKi", "", "/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking", "com.apple.WebKit.Networking"},
		{"Google Chrome He", "", "/x/Google Chrome Helper (Renderer)", "Google Chrome Helper (Renderer)"},
		{"python3.12", "", "/opt/homebrew/bin/python3.12", "python3.12"},
		{"curl", "", "/usr/bin/curl-other", "curl"}, // short names are not cut: keep them
		{"com.apple.WebKi", "", "/usr/bin/other", "com.apple.WebKi"},
		{"", "", "/usr/sbin/mDNSResponder", "mDNSResponder"},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		if got := DarwinProcessName(tt.comm, tt.name, tt.exe); got != tt.want {
			t.Errorf("DarwinProcessName(%q, %q, %q) = %q, want %q", tt.comm, tt.name, tt.exe, got, tt.want)
		}
	}
}
