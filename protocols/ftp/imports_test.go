package ftp

import (
	"go/build"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The parser is pure: no files, sockets, logging or sensor/attribution
// code, directly or through another package of this module.
func TestImportHygiene(t *testing.T) {
	forbidden := func(path string) bool {
		switch path {
		case "os", "net", "log", "log/slog", "io/fs", "os/exec", "syscall", "unsafe":
			return true
		}
		for _, p := range []string{"exfilwatch/sensor", "exfilwatch/attribution"} {
			if path == p || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
	const module = "exfilwatch"
	root, err := filepath.Abs("../..") // protocols/ftp → module root
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var visit func(dir, importPath string)
	visit = func(dir, importPath string) {
		if seen[importPath] {
			return
		}
		seen[importPath] = true
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", importPath, err)
		}
		for _, imp := range pkg.Imports {
			if forbidden(imp) {
				t.Errorf("%s imports %s", importPath, strconv.Quote(imp))
			}
			if imp == module || strings.HasPrefix(imp, module+"/") {
				visit(filepath.Join(root, strings.TrimPrefix(imp, module)), imp)
			}
		}
	}
	visit(".", module+"/protocols/ftp")
	if !seen[module+"/protocols"] {
		t.Error("did not follow exfilwatch/protocols: the walk is broken")
	}
}
