package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"exfilwatch/config"
)

// plistValue decodes the subset of Apple's XML property lists the
// packaging uses: dict, array, string, integer, true, false.
func plistValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if tok == nil {
				return m, nil
			}
			if tok.Name.Local != "key" {
				return nil, fmt.Errorf("dict: <%s> where a <key> belongs", tok.Name.Local)
			}
			var k string
			if err := d.DecodeElement(&k, tok); err != nil {
				return nil, err
			}
			vt, err := nextElement(d)
			if err != nil || vt == nil {
				return nil, fmt.Errorf("dict: key %q without a value", k)
			}
			v, err := plistValue(d, *vt)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("dict: duplicate key %q", k)
			}
			m[k] = v
		}
	case "array":
		var a []any
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if tok == nil {
				return a, nil
			}
			v, err := plistValue(d, *tok)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "string":
		var s string
		err := d.DecodeElement(&s, &start)
		return s, err
	case "integer":
		var n int
		err := d.DecodeElement(&n, &start)
		return n, err
	case "true", "false":
		var s string
		err := d.DecodeElement(&s, &start)
		return start.Name.Local == "true", err
	}
	return nil, fmt.Errorf("unsupported plist element <%s>", start.Name.Local)
}

// nextElement returns the next start element, or nil at the enclosing end.
func nextElement(d *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		}
	}
}

func parsePlist(t *testing.T, p string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		tok, err := nextElement(d)
		if err != nil || tok == nil {
			t.Fatalf("%s: no <plist>: %v", p, err)
		}
		if tok.Name.Local != "plist" {
			continue
		}
		root, err := nextElement(d)
		if err != nil || root == nil {
			t.Fatalf("%s: empty plist: %v", p, err)
		}
		v, err := plistValue(d, *root)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		// Nothing but the closing tags may follow.
		if tok, err := nextElement(d); tok != nil || err != nil {
			t.Fatalf("%s: content after the top dict (%v)", p, err)
		}
		if _, err := d.Token(); err != io.EOF {
			for {
				if _, err := d.Token(); err != nil {
					if err != io.EOF {
						t.Fatalf("%s: %v", p, err)
					}
					break
				}
			}
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: top level is not a dict", p)
		}
		return m
	}
}

func TestLaunchDaemonPlist(t *testing.T) {
	m := parsePlist(t, "../../packaging/macos/com.exfilwatch.sensor.plist")
	want := map[string]any{
		"Label": "com.exfilwatch.sensor",
		"ProgramArguments": []any{"/usr/local/bin/exfilwatch", "--log-format", "json", "run", "--config",
			"/usr/local/etc/exfilwatch/exfilwatch.yaml"},
		"RunAtLoad": true, "KeepAlive": true, "ProcessType": "Interactive", "ThrottleInterval": 30,
		"ExitTimeOut": 30, "Umask": 23, "WorkingDirectory": "/var/db/exfilwatch",
		"StandardOutPath":    "/var/log/exfilwatch/exfilwatch.out",
		"StandardErrorPath":  "/var/log/exfilwatch/exfilwatch.log",
		"SoftResourceLimits": map[string]any{"NumberOfFiles": 8192},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("plist:\n got %#v\nwant %#v", m, want)
	}
	// The arguments must be ones the binary accepts.
	args := m["ProgramArguments"].([]any)
	app := newApp()
	if app.Command("run") == nil || args[1] != "--log-format" {
		t.Error("run command or global flag missing")
	}
	// newsyslog rotates exactly the two files launchd writes.
	conf, err := os.ReadFile("../../packaging/macos/newsyslog-exfilwatch.conf")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, line := range strings.Split(string(conf), "\n") {
		if f := strings.Fields(line); len(f) >= 7 && !strings.HasPrefix(line, "#") {
			files = append(files, f[0])
			if f[2] != "640" || f[6] != "JN" {
				t.Errorf("newsyslog line %q: want mode 640, flags JN", line)
			}
		}
	}
	if !reflect.DeepEqual(files, []string{want["StandardErrorPath"].(string), want["StandardOutPath"].(string)}) {
		t.Errorf("newsyslog files = %q", files)
	}
}

func TestPPPCProfile(t *testing.T) {
	m := parsePlist(t, "../../packaging/macos/exfilwatch-pppc.mobileconfig")
	if m["PayloadType"] != "Configuration" || m["PayloadScope"] != "System" || m["PayloadVersion"] != 1 {
		t.Errorf("profile header: %v", m)
	}
	content, _ := m["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent = %v", m["PayloadContent"])
	}
	pl := content[0].(map[string]any)
	if pl["PayloadType"] != "com.apple.TCC.configuration-profile-policy" {
		t.Errorf("payload type %v", pl["PayloadType"])
	}
	if pl["PayloadUUID"] == m["PayloadUUID"] || pl["PayloadIdentifier"] == m["PayloadIdentifier"] {
		t.Error("payload and profile share a UUID or identifier")
	}
	svc := pl["Services"].(map[string]any)
	entries, _ := svc["SystemPolicyAllFiles"].([]any)
	if len(entries) != 1 || len(svc) != 1 {
		t.Fatalf("services = %v", svc)
	}
	e := entries[0].(map[string]any)
	if e["Identifier"] != "/usr/local/bin/exfilwatch" || e["IdentifierType"] != "path" || e["Authorization"] != "Allow" ||
		!strings.Contains(e["CodeRequirement"].(string), `certificate leaf[subject.OU] = "REPLACE_TEAMID"`) {
		t.Errorf("entry = %v", e)
	}
}

// The packaged configurations load, and name the directories that
// `make install` creates.
func TestPackagedConfigs(t *testing.T) {
	for goos, state := range map[string]string{"macos": "/var/db/exfilwatch", "linux": "/var/lib/exfilwatch"} {
		cfg, err := config.Load("../../packaging/" + goos + "/exfilwatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		o := cfg.Outputs
		if o.Spool.Dir != state+"/spool" || o.Evidence.Dir != state+"/evidence" || !strings.HasPrefix(o.Findings.Path, "/var/log/exfilwatch/") {
			t.Errorf("%s: %+v", goos, o)
		}
	}
}

// mode returns a file's permission bits, failing when it is missing.
func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestMakeInstallDestdir(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	if _, err := os.Stat("../../docs/operations.md"); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "exfilwatch")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	make := func(dest, osName, target string, extra ...string) string {
		t.Helper()
		args := append([]string{"-s", "-C", "../..", target, "DESTDIR=" + dest, "INSTALL_OS=" + osName, "INSTALL_DEPS=", "BIN=" + bin}, extra...)
		out, err := exec.Command("make", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, c := range []struct {
		os, etc, state, unit string
		extra                []string
	}{
		{"Darwin", "/usr/local/etc/exfilwatch", "/var/db/exfilwatch", "/Library/LaunchDaemons/com.exfilwatch.sensor.plist", []string{"/etc/newsyslog.d/exfilwatch.conf"}},
		{"Linux", "/etc/exfilwatch", "/var/lib/exfilwatch", "/etc/systemd/system/exfilwatch.service", nil},
	} {
		t.Run(c.os, func(t *testing.T) {
			dest := t.TempDir()
			make(dest, c.os, "install")
			for p, want := range map[string]os.FileMode{
				"/usr/local/bin/exfilwatch": 0o755, c.etc + "/exfilwatch.yaml": 0o600, c.state + "/spool": 0o700,
				c.state + "/evidence": 0o700, "/var/log/exfilwatch": 0o750, c.unit: 0o644,
				"/usr/local/share/doc/exfilwatch/operations.md": 0o644,
			} {
				if got := mode(t, dest+p); got != want {
					t.Errorf("%s: mode %o, want %o", p, got, want)
				}
			}
			for _, p := range c.extra {
				mode(t, dest+p)
			}
			if _, err := config.Load(dest + c.etc + "/exfilwatch.yaml"); err != nil {
				t.Errorf("installed config: %v", err)
			}
			// A second install keeps the edited configuration.
			edited := "# edited by the administrator\n"
			os.WriteFile(dest+c.etc+"/exfilwatch.yaml", []byte(edited), 0o600)
			out := make(dest, c.os, "install")
			if b, _ := os.ReadFile(dest + c.etc + "/exfilwatch.yaml"); string(b) != edited || !strings.Contains(out, "keeping") {
				t.Errorf("reinstall replaced the configuration:\n%s", out)
			}
			mode(t, dest+c.etc+"/exfilwatch.yaml.example")

			make(dest, c.os, "uninstall")
			for _, p := range []string{"/usr/local/bin/exfilwatch", c.unit, "/usr/local/share/doc/exfilwatch"} {
				if _, err := os.Stat(dest + p); !os.IsNotExist(err) {
					t.Errorf("%s left after uninstall", p)
				}
			}
			if b, _ := os.ReadFile(dest + c.etc + "/exfilwatch.yaml"); string(b) != edited {
				t.Error("uninstall removed the configuration")
			}
			mode(t, dest+c.state+"/spool")
			make(dest, c.os, "uninstall", "PURGE=1")
			for _, p := range []string{c.etc, c.state, "/var/log/exfilwatch"} {
				if _, err := os.Stat(dest + p); !os.IsNotExist(err) {
					t.Errorf("%s left after uninstall PURGE=1", p)
				}
			}
		})
	}
}
