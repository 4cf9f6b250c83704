package attribution

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestScriptOfLive runs real interpreters and reads them back through the
// process cache: the script identity must come out of what /proc says.
func TestScriptOfLive(t *testing.T) {
	py := python3(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "x.py")
	body := "#!/usr/bin/env python3\nimport sys, time\nsys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		argv []string
		want Script
	}{
		{"python -u relative", []string{py, "-u", "./x.py"}, Script{Interpreter: "python", Path: script}},
		// The kernel runs /usr/bin/env, which execs python3 in the same process.
		{"shebang through env", []string{"./x.py"}, Script{Interpreter: "python", Path: script}},
		{"bash -c", []string{"/bin/bash", "-c", "echo ready; sleep 30; echo done"},
			Script{Interpreter: "bash", Inline: "echo ready; sleep 30; echo done"}},
		{"perl -e", []string{"/usr/bin/perl", "-e", `$|=1; print "ready\n"; sleep 30`},
			Script{Interpreter: "perl", Inline: `$|=1; print "ready\n"; sleep 30`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, tc.argv[0])); err != nil {
				if _, err := exec.LookPath(tc.argv[0]); err != nil {
					t.Skipf("%s: %v", tc.argv[0], err)
				}
			}
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("child said %q, %v", line, err)
			}
			p, err := NewProcessCache("/proc", ProcessCacheOptions{}).Process(int32(cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			if got := ScriptOf(p, ""); got != tc.want {
				t.Errorf("process %s %q in %s\n got %+v\nwant %+v", p.Executable, p.Args, p.CWD, got, tc.want)
			}
		})
	}
}
