package attribution

// Script identity: when the process is an interpreter (python, perl, a
// shell…), what it runs matters more than the interpreter itself: the
// script file, the inline code (-c/-e) or the module (python -m). It is
// read from the command line the way the interpreter reads it, so that an
// option's value (python -W error, bash -o pipefail) is not taken for the
// script.

import (
	"path"
	"strings"
	"unicode/utf8"
)

// Bounds of the Script fields: an inline program or a path longer than
// this is cut (at a UTF-8 boundary) and ends with ScriptCut.
const (
	MaxScriptInline = 4096
	MaxScriptPath   = 4096
	MaxScriptModule = 1024
	// ScriptCut ends a cut field.
	ScriptCut = "…"
	// ScriptStdin is Script.Path when the interpreter reads its program
	// from standard input ("-", or no script and no inline code).
	ScriptStdin = "-"
	// maxLauncherDepth bounds env-of-env chains.
	maxLauncherDepth = 4
)

// Script is what an interpreter process runs. The zero value means the
// process is not a known interpreter (or nothing is known).
type Script struct {
	// Interpreter is the interpreter's family: "python", "perl", "ruby",
	// "node", "osascript", "php", "Rscript", "tclsh", or the shell's own
	// name ("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish",
	// "tcsh", "csh"). For an exec that Endpoint Security reports with a
	// script but an interpreter not in this list, it is the executable's
	// base name.
	Interpreter string
	// Path is the script file, absolute when the process's directory is
	// known, or ScriptStdin; "" with inline code or a module.
	Path string
	// Inline is the program given on the command line (-c, -e; several
	// -e joined by newlines), cut at MaxScriptInline.
	Inline string
	// Module is the module run by python -m.
	Module string
}

// optKind says what an interpreter option does.
type optKind uint8

const (
	optFlag      optKind = iota
	optValue             // takes a value that is not the program
	optInline            // takes the program text as its value
	optModule            // takes a module name (python -m)
	optFile              // takes the script path (php -f)
	optChdir             // takes a directory the script path is relative to (ruby -C)
	optRest              // takes the rest of its group, possibly empty (perl -i.bak)
	optDigits            // takes the digits that follow in its group (perl -0777, -l)
	optCmdFlag           // shells' -c: the first operand is the program
	optStdinFlag         // shells' -s: the program is read from stdin
)

// interpSyntax describes one interpreter's command line.
type interpSyntax struct {
	family string
	// short options by letter; letters not listed are flags.
	short map[byte]optKind
	// long options ("--name" or, for tclsh, "-name"), value after "=" or
	// in the next argument.
	long map[string]optKind
	// grouped: short options may be grouped (-uc) and a value may be
	// attached (-Werror); when false each argument is one option (node).
	grouped bool
	// attachedValues: a value-taking letter in a group takes the rest of
	// the group (getopt); shells take the next argument instead.
	attachedValues bool
	// plus: options may also start with '+' (shells' +o).
	plus bool
	// stopAtInline: the first inline or module option ends the options,
	// the remaining arguments belong to the program (python -c, -m).
	stopAtInline bool
}

var (
	pythonSyntax = &interpSyntax{family: "python", grouped: true, attachedValues: true, stopAtInline: true,
		short: map[byte]optKind{'c': optInline, 'm': optModule, 'W': optValue, 'X': optValue},
		long:  map[string]optKind{"check-hash-based-pycs": optValue}}
	perlSyntax = &interpSyntax{family: "perl", grouped: true, attachedValues: true,
		short: map[byte]optKind{'e': optInline, 'E': optInline, 'I': optValue, 'M': optValue, 'm': optValue,
			'0': optDigits, 'l': optDigits, 'C': optRest, 'd': optRest, 'D': optRest, 'F': optRest, 'i': optRest, 'x': optRest}}
	rubySyntax = &interpSyntax{family: "ruby", grouped: true, attachedValues: true,
		short: map[byte]optKind{'e': optInline, 'I': optValue, 'r': optValue, 'C': optChdir, 'E': optValue,
			'0': optDigits, 'F': optRest, 'K': optRest, 'T': optRest, 'W': optRest, 'x': optRest},
		long: map[string]optKind{"encoding": optValue, "external-encoding": optValue, "internal-encoding": optValue}}
	nodeSyntax = &interpSyntax{family: "node",
		short: map[byte]optKind{'e': optInline, 'p': optInline, 'r': optValue, 'C': optValue},
		long: map[string]optKind{"eval": optInline, "print": optInline, "require": optValue, "import": optValue,
			"loader": optValue, "experimental-loader": optValue, "conditions": optValue, "title": optValue,
			"env-file": optValue, "inspect-port": optValue, "redirect-warnings": optValue, "icu-data-dir": optValue,
			"openssl-config": optValue, "tls-cipher-list": optValue, "run": optValue, "input-type": optValue}}
	osascriptSyntax = &interpSyntax{family: "osascript", grouped: true, attachedValues: true,
		short: map[byte]optKind{'e': optInline, 'l': optValue, 's': optValue}}
	phpSyntax = &interpSyntax{family: "php", grouped: true, attachedValues: true,
		short: map[byte]optKind{'r': optInline, 'B': optInline, 'R': optInline, 'E': optInline, 'F': optFile,
			'f': optFile, 'c': optValue, 'd': optValue, 'z': optValue, 't': optValue, 'S': optValue},
		long: map[string]optKind{"run": optInline, "process-begin": optInline, "process-code": optInline,
			"process-end": optInline, "process-file": optFile, "file": optFile, "php-ini": optValue,
			"define": optValue, "zend-extension": optValue, "rf": optValue, "rc": optValue, "re": optValue,
			"rz": optValue, "ri": optValue}}
	rscriptSyntax = &interpSyntax{family: "Rscript",
		short: map[byte]optKind{'e': optInline}}
	tclshSyntax = &interpSyntax{family: "tclsh",
		long: map[string]optKind{"encoding": optValue}}
	// Shells: -c makes the first operand the program, -s reads stdin,
	// -o/+o and bash's -O/+O take the next argument.
	shellShort = map[byte]optKind{'c': optCmdFlag, 's': optStdinFlag, 'o': optValue, 'O': optValue}
	shellLong  = map[string]optKind{"rcfile": optValue, "init-file": optValue}
	fishSyntax = &interpSyntax{family: "fish", grouped: true, attachedValues: true,
		short: map[byte]optKind{'c': optInline, 'C': optValue, 'd': optValue, 'o': optValue, 'f': optValue},
		long: map[string]optKind{"command": optInline, "init-command": optValue, "debug": optValue,
			"debug-output": optValue, "profile": optValue, "profile-startup": optValue, "features": optValue}}
)

func shellSyntax(name string) *interpSyntax {
	return &interpSyntax{family: name, grouped: true, plus: true, short: shellShort, long: shellLong}
}

// interpreters maps a base name without version to its syntax.
var interpreters = map[string]*interpSyntax{
	"python": pythonSyntax, "pypy": pythonSyntax,
	"perl": perlSyntax, "ruby": rubySyntax,
	"node": nodeSyntax, "nodejs": nodeSyntax,
	"osascript": osascriptSyntax, "php": phpSyntax, "php-cli": phpSyntax,
	"rscript": rscriptSyntax, "tclsh": tclshSyntax,
	"sh": shellSyntax("sh"), "bash": shellSyntax("bash"), "rbash": shellSyntax("bash"),
	"zsh": shellSyntax("zsh"), "dash": shellSyntax("dash"), "ksh": shellSyntax("ksh"),
	"mksh": shellSyntax("mksh"), "ash": shellSyntax("ash"), "fish": fishSyntax,
	"tcsh": shellSyntax("tcsh"), "csh": shellSyntax("csh"),
}

// interpreterByName finds the interpreter of an executable's base name:
// the name itself, case-insensitive (macOS's Python.app runs "Python"),
// with an optional version suffix ("python3.11", "perl5.34", "tclsh8.6",
// "zsh-5.9", "python3.7m") and, for argv[0] of a login shell, a leading
// '-'.
func interpreterByName(base string) *interpSyntax {
	base = strings.ToLower(strings.TrimPrefix(base, "-"))
	if s, ok := interpreters[base]; ok {
		return s
	}
	// The name is the letters before the version (php-cli has a dash).
	i := strings.IndexAny(base, "0123456789")
	if i <= 0 {
		return nil
	}
	name, ver := base[:i], base[i:]
	if s, ok := interpreters[name]; ok && versionSuffix(ver) {
		return s
	}
	if n := strings.TrimSuffix(name, "-"); n != name {
		if s, ok := interpreters[n]; ok && versionSuffix(ver) {
			return s
		}
	}
	return nil
}

// versionSuffix accepts "3", "3.11", "5.34.1", "3.7m", "3.13t".
func versionSuffix(v string) bool {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return false
	}
	if last := v[len(v)-1]; last >= 'a' && last <= 'z' {
		v = v[:len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if (v[i] < '0' || v[i] > '9') && v[i] != '.' {
			return false
		}
	}
	return v[len(v)-1] != '.'
}

func isLauncher(base string) bool { return base == "env" }

// ScriptOf returns what the interpreter process p runs. execScript is the
// script Endpoint Security reported for p's exec (es_event_exec_t.script,
// set when a "#!" file was executed): it wins over the command line. A
// process that is not an interpreter gives the zero Script.
//
// The interpreter is recognized by the executable's base name (argv[0]
// when the executable is unknown or a multi-call binary such as busybox),
// never by the name alone. /usr/bin/env is a launcher: its options and
// VAR=value arguments are skipped and the command it runs is examined
// (the same process execs it).
func ScriptOf(p *Process, execScript string) Script {
	if p == nil {
		return Script{}
	}
	cwd := p.CWD
	args := p.Args
	base := path.Base(strings.TrimSuffix(p.Executable, " (deleted)"))
	if p.Executable == "" || base == "busybox" || base == "toybox" {
		switch {
		case len(args) > 0 && args[0] != "":
			base = path.Base(args[0])
		case p.Name != "":
			base = p.Name
		default:
			base = ""
		}
	}
	for depth := 0; isLauncher(base) && depth < maxLauncherDepth; depth++ {
		var cmd string
		cmd, args, cwd = skipEnv(args, cwd)
		if cmd == "" {
			break
		}
		base = path.Base(cmd)
	}
	syn := interpreterByName(base)
	var sc Script
	switch {
	case syn != nil:
		sc = parseScriptArgs(syn, args)
	case execScript != "" && base != "" && base != "." && base != "/":
		sc.Interpreter = base
	default:
		return Script{}
	}
	if execScript != "" {
		sc.Path, sc.Inline, sc.Module = execScript, "", ""
	}
	if sc.Path != "" && sc.Path != ScriptStdin && !path.IsAbs(sc.Path) && cwd != "" {
		sc.Path = path.Join(cwd, sc.Path)
	}
	sc.Path = cutField(sc.Path, MaxScriptPath)
	sc.Inline = cutField(sc.Inline, MaxScriptInline)
	sc.Module = cutField(sc.Module, MaxScriptModule)
	return sc
}

// skipEnv reads env's command line (GNU coreutils and BSD env): options,
// then NAME=value assignments, then the command and its arguments. It
// returns the command and its argv (argv[0] = the command), and the
// directory after -C/--chdir. -S/--split-string (used in "#!/usr/bin/env
// -S python3 -u") splits its value at blanks into arguments.
func skipEnv(args []string, cwd string) (cmd string, argv []string, dir string) {
	dir = cwd
	if len(args) > 0 {
		args = args[1:]
	}
	// take returns the value of option a at index i: attached, or the next
	// argument.
	i := 0
	take := func(attached string) string {
		if attached != "" {
			return attached
		}
		if i+1 < len(args) {
			i++
			return args[i]
		}
		return ""
	}
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == "-" { // obsolete spelling of -i
			continue
		}
		if strings.HasPrefix(a, "--") {
			name, val, hasVal := strings.Cut(a[2:], "=")
			// Other long options are flags or take only "=value".
			switch name {
			case "unset", "chdir", "split-string":
				if !hasVal {
					val = take("")
				}
				switch name {
				case "chdir":
					dir = joinDir(dir, val)
				case "split-string":
					return skipEnv(append([]string{"env"}, append(strings.Fields(val), args[i+1:]...)...), dir)
				}
			}
			continue
		}
		if len(a) > 1 && a[0] == '-' {
		group:
			for j := 1; j < len(a); j++ {
				switch a[j] {
				case 'u', 'P':
					take(a[j+1:])
					break group
				case 'C':
					dir = joinDir(dir, take(a[j+1:]))
					break group
				case 'S':
					val := take(a[j+1:])
					return skipEnv(append([]string{"env"}, append(strings.Fields(val), args[i+1:]...)...), dir)
				}
			}
			continue
		}
		break
	}
	for ; i < len(args); i++ {
		if !strings.Contains(args[i], "=") {
			return args[i], args[i:], dir
		}
	}
	return "", nil, dir
}

func joinDir(cwd, d string) string {
	if d == "" || path.IsAbs(d) || cwd == "" {
		return d
	}
	return path.Join(cwd, d)
}

// parseScriptArgs reads args (argv, argv[0] included) as syn's
// interpreter does.
func parseScriptArgs(syn *interpSyntax, args []string) Script {
	sc := Script{Interpreter: syn.family}
	if len(args) == 0 {
		return sc // command line unknown: nothing more to say
	}
	args = args[1:]
	var inline []string
	var file, chdir string
	cmdMode, stdinMode, fileSet := false, false, false
	i := 0
	// next returns the next argument as an option's value.
	next := func() string {
		if i+1 < len(args) {
			i++
			return args[i]
		}
		return ""
	}
	// apply records option o's value v; it reports whether the options end.
	apply := func(k optKind, v string) bool {
		switch k {
		case optInline:
			inline = append(inline, v)
			return syn.stopAtInline
		case optModule:
			sc.Module = v
			return syn.stopAtInline
		case optFile:
			file, fileSet = v, true
		case optChdir:
			chdir = joinDir(chdir, v)
		}
		return false
	}
	done := false
	for ; i < len(args) && !done; i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == "-" {
			if syn.short['c'] == optCmdFlag {
				i++ // shells: "-" ends the options
			}
			break
		}
		isOpt := len(a) > 1 && (a[0] == '-' || syn.plus && a[0] == '+')
		if !isOpt {
			break
		}
		// Long options: "--name[=value]"; tclsh's "-encoding" has one dash.
		if name, ok := strings.CutPrefix(a, "--"); ok || syn == tclshSyntax {
			if !ok {
				name = a[1:]
			}
			name, val, hasVal := strings.Cut(name, "=")
			k, known := syn.long[name]
			if !known || k == optFlag {
				continue
			}
			if !hasVal {
				val = next()
			}
			done = apply(k, val)
			continue
		}
		if !syn.grouped {
			k := syn.short[a[1]]
			if len(a) > 2 {
				// node -pe 'code': print and eval in one.
				if a == "-pe" || a == "-ep" {
					k = optInline
				} else {
					k = optFlag
				}
			}
			if k != optFlag {
				done = apply(k, next())
			}
			continue
		}
		for j := 1; j < len(a) && !done; j++ {
			k := syn.short[a[j]]
			switch k {
			case optFlag:
				continue
			case optCmdFlag:
				cmdMode = true
				continue
			case optStdinFlag:
				stdinMode = true
				continue
			case optRest:
				j = len(a)
				continue
			case optDigits:
				// Octal digits, or for -0 an x and hex digits (perl -0777,
				// -0x1F, -l015): "-le" is -l then -e.
				digit := func(c byte) bool { return c >= '0' && c <= '7' }
				if a[j] == '0' && j+1 < len(a) && (a[j+1] == 'x' || a[j+1] == 'X') {
					j++
					digit = isHexDigit
				}
				for j+1 < len(a) && digit(a[j+1]) {
					j++
				}
				continue
			}
			val := ""
			if syn.attachedValues && j+1 < len(a) {
				val = a[j+1:]
			} else {
				val = next()
			}
			done = apply(k, val)
			if syn.attachedValues {
				break
			}
		}
	}
	switch {
	case len(inline) > 0:
		sc.Inline = strings.Join(inline, "\n")
	case sc.Module != "":
	case fileSet:
		sc.Path = file
	case cmdMode:
		if i < len(args) {
			sc.Inline = args[i]
		}
	case stdinMode:
		sc.Path = ScriptStdin
	case i < len(args):
		sc.Path = args[i]
	default:
		sc.Path = ScriptStdin
	}
	if sc.Path != "" && sc.Path != ScriptStdin && chdir != "" && !path.IsAbs(sc.Path) {
		sc.Path = path.Join(chdir, sc.Path)
	}
	return sc
}

// cutField cuts s to at most max bytes at a rune boundary, marking the cut.
func cutField(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(ScriptCut)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ScriptCut
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
