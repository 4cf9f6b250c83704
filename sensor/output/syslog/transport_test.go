package syslog

import (
	"context"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := map[string]Endpoint{
		"udp://127.0.0.1:514":      {Scheme: "udp", Host: "127.0.0.1", Port: 514},
		"TCP://collector.test:601": {Scheme: "tcp", Host: "collector.test", Port: 601},
		"tls://[::1]:6514":         {Scheme: "tls", Host: "::1", Port: 6514},
		"tls://siem.test:6514/":    {Scheme: "tls", Host: "siem.test", Port: 6514},
		"unix:///run/x/log.sock":   {Scheme: "unix", Path: "/run/x/log.sock"},
		"unix://":                  {Scheme: "unix", Path: DefaultUnixPath},
	}
	for raw, want := range good {
		got, err := ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	bad := map[string]string{
		"":                    "empty",
		"127.0.0.1:514":       "no scheme",
		"syslog.test":         "no scheme",
		"http://h:514":        `unknown scheme "http"`,
		"udp://h":             "no port",
		"tcp://:514":          "no host",
		"tcp://h:0":           "not 1-65535",
		"tcp://h:99999":       "not 1-65535",
		"tcp://h:514/path":    "no path",
		"tls://u:p@h:6514":    "user info",
		"udp://h:514?x=1":     "query",
		"unix://host/dev/log": "has no host",
		"tcp://[::1:514":      "syslog URL",
		"udp://h:51 4":        "syslog URL",
		"tls://" + strings.Repeat("a", 5000) + ":1": "4096",
	}
	for raw, want := range bad {
		_, err := ParseURL(raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseURL(%q): %v; want an error with %q", raw, err, want)
		}
	}
}

func TestDialOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := Dial(ctx, "udp://127.0.0.1:9", TransportOptions{MaxMessage: 100}); err == nil || !strings.Contains(err.Error(), "below 480") {
		t.Errorf("small max: %v", err)
	}
	if _, err := Dial(ctx, "udp://127.0.0.1:9", TransportOptions{MaxMessage: 70000}); err == nil || !strings.Contains(err.Error(), "UDP datagram") {
		t.Errorf("big UDP max: %v", err)
	}
	if _, err := Dial(ctx, "unix:///nonexistent/socket", TransportOptions{}); err == nil || !strings.Contains(err.Error(), "/nonexistent/socket") {
		t.Errorf("missing socket: %v", err)
	}
	tr, err := Dial(ctx, "udp://127.0.0.1:9", TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.MaxMessage() != DefaultMaxUDP || tr.Stream() {
		t.Errorf("udp defaults: max %d stream %v", tr.MaxMessage(), tr.Stream())
	}
	tr.Close()
	if err := tr.Send([]byte("x")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("send after close: %v", err)
	}
	if tr.Alive() == nil {
		t.Error("alive after close")
	}
}
