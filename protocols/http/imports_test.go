package http

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestImportHygiene keeps the parser free of I/O, logging and the sensor: it
// must stay a pure function of the bytes and timestamps it is given.
func TestImportHygiene(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "os", strings.HasPrefix(path, "os/"),
				path == "net", strings.HasPrefix(path, "net/"),
				path == "log", strings.HasPrefix(path, "log/"),
				path == "io/fs",
				strings.HasPrefix(path, "exfilwatch/sensor"),
				strings.HasPrefix(path, "exfilwatch/attribution"):
				t.Errorf("%s imports %q", name, path)
			}
		}
		// No clock either: time comes from the caller's timestamps.
		for _, banned := range []string{"time.Now(", "time.Since(", "time.Sleep("} {
			if strings.Contains(string(src), banned) {
				t.Errorf("%s calls %s", name, banned)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d files checked", checked)
	}
}

// TestReadmeListsAnomalies keeps README.md and the Anomaly* constants in step.
func TestReadmeListsAnomalies(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "limits.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, n := range v.Names {
				if strings.HasPrefix(n.Name, "Anomaly") && i < len(v.Values) {
					if lit, ok := v.Values[i].(*ast.BasicLit); ok {
						name, _ := strconv.Unquote(lit.Value)
						consts[name] = true
					}
				}
			}
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`(http\\.[a-z0-9_]+)`").FindAllStringSubmatch(string(readme), -1) {
		listed[m[1]] = true
	}
	if len(consts) < 20 {
		t.Fatalf("found only %d anomaly constants", len(consts))
	}
	for name := range consts {
		if !listed[name] {
			t.Errorf("README.md does not list %s", name)
		}
	}
	for name := range listed {
		if !consts[name] {
			t.Errorf("README.md lists unknown anomaly %s", name)
		}
	}
}
