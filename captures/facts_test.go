package captures_test

// Helpers for captures_test.go: the facts files written by
// captures/lab/manifest.py, an in-process replay through the sensor, and the
// comparison of the sensor's events with the facts.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"exfilwatch/sensor"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/events"
)

// ---------------------------------------------------------------------------
// facts (expected/<capture file name>.facts.json, see manifest.py capture_facts)
// ---------------------------------------------------------------------------

type partFact struct {
	Name        *string `json:"name"`
	Filename    *string `json:"filename"`
	ContentType *string `json:"content_type"`
	Bytes       int64   `json:"bytes"`
	SHA256      string  `json:"sha256"`
}

type httpFact struct {
	Method            string     `json:"method"`
	Target            string     `json:"target"`
	Host              *string    `json:"host"`
	ClientIP          string     `json:"client_ip"`
	ServerIP          string     `json:"server_ip"`
	ServerPort        int64      `json:"server_port"`
	RequestBodyBytes  int64      `json:"request_body_bytes"`
	RequestBodySHA256 *string    `json:"request_body_sha256"`
	Multipart         []partFact `json:"multipart"`
	StatusCode        *int64     `json:"status_code"`
	Interim           []int64    `json:"interim"`
	ResponseBodyBytes int64      `json:"response_body_bytes"`
	Stable            bool       `json:"stable"`
	Unstable          []string   `json:"unstable"`
}

type ftpFact struct {
	Command    string   `json:"command"`
	Arg        *string  `json:"arg"`
	ClientIP   string   `json:"client_ip"`
	ServerIP   string   `json:"server_ip"`
	ServerPort int64    `json:"server_port"`
	ReplyCode  *int64   `json:"reply_code"`
	Interim    []int64  `json:"interim"`
	Stable     bool     `json:"stable"`
	Unstable   []string `json:"unstable"`
}

type ftpDataFact struct {
	Command   string   `json:"command"`
	Filename  *string  `json:"filename"`
	Mode      string   `json:"mode"`
	Direction string   `json:"direction"`
	Bytes     int64    `json:"bytes"`
	SHA256    *string  `json:"sha256"`
	ReplyCode int64    `json:"reply_code"`
	Stable    bool     `json:"stable"`
	Unstable  []string `json:"unstable"`
}

type connFact struct {
	Role          *string  `json:"role"`
	ClientIP      string   `json:"client_ip"`
	ServerIP      string   `json:"server_ip"`
	ServerPort    int64    `json:"server_port"`
	BytesToServer int64    `json:"bytes_to_server"`
	BytesToClient int64    `json:"bytes_to_client"`
	Stable        bool     `json:"stable"`
	Unstable      []string `json:"unstable"`
}

type captureFacts struct {
	Capture      string        `json:"capture"`
	GeneratedBy  string        `json:"generated_by"`
	StableFields string        `json:"stable_fields"`
	HTTP         []httpFact    `json:"http"`
	FTP          []ftpFact     `json:"ftp"`
	FTPData      []ftpDataFact `json:"ftp_data"`
	Connections  []connFact    `json:"connections"`
}

// loadFacts reads every <root>/expected/*.facts.json.
func loadFacts(t *testing.T, root string) []*captureFacts {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "expected", "*.facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all []*captureFacts
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		// a fact this test does not know would go unchecked
		dec.DisallowUnknownFields()
		var f captureFacts
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if f.Capture == "" || filepath.Base(f.Capture)+".facts.json" != filepath.Base(p) {
			t.Fatalf("%s: names capture %q", p, f.Capture)
		}
		all = append(all, &f)
	}
	return all
}

// captureFiles lists the capture files under root that must have facts:
// *.pcap, *.pcapng and demo/*.pcapng (not the .gz copies), relative to root.
func captureFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.pcap", "*.pcapng", "demo/*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// in-process replay
// ---------------------------------------------------------------------------

type event map[string]any

// replay runs one capture through the sensor with the default configuration
// and returns the JSON Lines it wrote, parsed, plus the raw output.
func replay(t *testing.T, path string) ([]event, []byte) {
	t.Helper()
	f, err := capture.Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	w := events.NewJSONWriter(&buf)
	s := sensor.New(sensor.Config{}, w)
	var fr capture.Frame
	for {
		err := f.Next(&fr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		s.Frame(&fr)
	}
	s.Flush()
	if err := w.Flush(); err != nil {
		t.Fatalf("writing events: %v", err)
	}
	st := s.Stats()
	if st.Sensor.Panics != 0 {
		t.Errorf("%s: the sensor recovered %d panics", path, st.Sensor.Panics)
	}
	if st.Sensor.Anomalies != 0 {
		t.Errorf("%s: the sensor counted %d anomalies", path, st.Sensor.Anomalies)
	}
	var evs []event
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.UseNumber()
	for {
		var e event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: event %d is not JSON: %v", path, len(evs)+1, err)
		}
		evs = append(evs, e)
	}
	return evs, buf.Bytes()
}

// get walks a dotted path ("http.request.body.bytes") through nested objects.
func (e event) get(path string) (any, bool) {
	var cur any = map[string]any(e)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (e event) str(path string) string {
	v, _ := e.get(path)
	s, _ := v.(string)
	return s
}

// start is event.start (= @timestamp), the first packet of what the event
// describes.
func (e event) start(t *testing.T) time.Time {
	ts, err := time.Parse(time.RFC3339Nano, e.str("event.start"))
	if err != nil {
		t.Fatalf("event.start of %v: %v", e, err)
	}
	return ts
}

// byDataset splits events by event.dataset. Each list is stably sorted by
// event.start: events are written when they complete (docs/events.md), the
// facts are in capture order.
func byDataset(t *testing.T, evs []event) map[string][]event {
	out := map[string][]event{}
	for _, e := range evs {
		d := e.str("event.dataset")
		out[d] = append(out[d], e)
	}
	for _, l := range out {
		sort.SliceStable(l, func(i, j int) bool { return l[i].start(t).Before(l[j].start(t)) })
	}
	return out
}

// ---------------------------------------------------------------------------
// comparison
// ---------------------------------------------------------------------------

// checker collects the differences for one capture, each naming the event.
type checker struct {
	t       *testing.T
	capture string
}

func (c *checker) errorf(what string, format string, args ...any) {
	c.t.Helper()
	c.t.Errorf("%s: %s: %s", c.capture, what, fmt.Sprintf(format, args...))
}

// num returns an integer field; ok is false when absent or not an integer.
func num(e event, path string) (int64, bool) {
	v, ok := e.get(path)
	if !ok {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// eqStr: field must equal want, or be absent when want is nil.
func (c *checker) eqStr(e event, what, path string, want *string) {
	c.t.Helper()
	v, ok := e.get(path)
	switch {
	case want == nil && ok:
		c.errorf(what, "%s: expected absent, got %v", path, v)
	case want != nil && !ok:
		c.errorf(what, "%s: expected %q, got absent", path, *want)
	case want != nil && v != *want:
		c.errorf(what, "%s: expected %q, got %v", path, *want, v)
	}
}

func (c *checker) eqNum(e event, what, path string, want int64, zeroMayBeAbsent bool) {
	c.t.Helper()
	got, ok := num(e, path)
	if !ok {
		if _, present := e.get(path); !present && want == 0 && zeroMayBeAbsent {
			return
		}
		v, _ := e.get(path)
		c.errorf(what, "%s: expected %d, got %v", path, want, v)
		return
	}
	if got != want {
		c.errorf(what, "%s: expected %d, got %d", path, want, got)
	}
}

// eqCodes: an array of integers (absent = empty).
func (c *checker) eqCodes(e event, what, path string, want []int64, elem string) {
	c.t.Helper()
	var got []int64
	if v, ok := e.get(path); ok {
		arr, _ := v.([]any)
		for _, x := range arr {
			if elem != "" {
				m, _ := x.(map[string]any)
				x = m[elem]
			}
			n, _ := x.(json.Number)
			i, _ := n.Int64()
			got = append(got, i)
		}
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		c.errorf(what, "%s: expected %v, got %v", path, want, got)
	}
}

// notFalse: a boolean that must not be false when present.
func (c *checker) notFalse(e event, what, path string) {
	c.t.Helper()
	if v, ok := e.get(path); ok && v != true {
		c.errorf(what, "%s: %v", path, v)
	}
}

func (c *checker) absent(e event, what, path string) {
	c.t.Helper()
	if v, ok := e.get(path); ok {
		c.errorf(what, "%s present: %v", path, v)
	}
}

func ptr[T any](v T) *T { return &v }

// ecsDomain is url.domain as ECS defines it for a Host header: the host
// without the port; a literal IPv6 address keeps its [ and ] ("If the URL
// contains a literal IPv6 address enclosed by [ and ] (IETF RFC 2732), the [
// and ] characters should also be captured in the domain field").
func ecsDomain(host string) (domain string, port int64, hasPort bool) {
	h := host
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			domain, h = h[:i+1], h[i+1:]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		domain, h = h[:i], h[i:]
	} else {
		domain, h = h, ""
	}
	if strings.HasPrefix(h, ":") {
		var p int64
		if _, err := fmt.Sscanf(h[1:], "%d", &p); err == nil {
			return domain, p, true
		}
	}
	return domain, 0, false
}

func mimeOf(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// checkEvents compares the events of one capture with its facts. When a
// dataset has the wrong number of events, only that is reported for it (a
// field-by-field comparison would be shifted). Every fact
// is compared, also those marked unstable: facts and capture come from the
// same recording (record.sh writes both), "unstable" only says the value
// changes when the lab records again.
func checkEvents(t *testing.T, f *captureFacts, evs []event) {
	t.Helper()
	c := &checker{t: t, capture: f.Capture}
	ds := byDataset(t, evs)
	for d := range ds {
		switch d {
		case "http", "ftp", "ftp_data", "flow":
		default:
			c.errorf("events", "unexpected dataset %q (%d events)", d, len(ds[d]))
		}
	}
	for _, e := range evs {
		what := fmt.Sprintf("%s event %s", e.str("event.dataset"), e.str("@timestamp"))
		c.absent(e, what, "exfilwatch.http.anomalies")
		c.absent(e, what, "exfilwatch.ftp.anomalies")
		c.absent(e, what, "exfilwatch.flow.source_guessed")
	}

	// http
	if got, want := len(ds["http"]), len(f.HTTP); got != want {
		c.errorf("http", "%d events, expected %d: %s", got, want, summarize(ds["http"], "http.request.method", "url.original"))
	}
	for i := 0; len(ds["http"]) == len(f.HTTP) && i < len(f.HTTP); i++ {
		x, e := f.HTTP[i], ds["http"][i]
		what := fmt.Sprintf("http #%d (%s %s)", i+1, x.Method, x.Target)
		c.eqStr(e, what, "http.request.method", &x.Method)
		c.eqStr(e, what, "url.original", &x.Target)
		c.eqStr(e, what, "exfilwatch.http.host", x.Host)
		if x.Host != nil {
			dom, port, hasPort := ecsDomain(*x.Host)
			c.eqStr(e, what, "url.domain", &dom)
			if hasPort {
				c.eqNum(e, what, "url.port", port, false)
			}
		}
		c.eqStr(e, what, "source.ip", &x.ClientIP)
		c.eqStr(e, what, "destination.ip", &x.ServerIP)
		c.eqNum(e, what, "destination.port", x.ServerPort, false)
		c.eqNum(e, what, "http.request.body.bytes", x.RequestBodyBytes, true)
		c.eqStr(e, what, "http.request.body.sha256", x.RequestBodySHA256)
		if x.StatusCode == nil {
			c.absent(e, what, "http.response.status_code")
		} else {
			c.eqNum(e, what, "http.response.status_code", *x.StatusCode, false)
		}
		c.eqCodes(e, what, "exfilwatch.http.informational", x.Interim, "")
		c.eqNum(e, what, "http.response.body.bytes", x.ResponseBodyBytes, true)
		c.absent(e, what, "exfilwatch.http.gap")
		c.notFalse(e, what, "exfilwatch.http.request_body_complete")
		c.notFalse(e, what, "exfilwatch.http.response_body_complete")
		v, ok := e.get("exfilwatch.multipart")
		if x.Multipart == nil {
			if ok {
				c.errorf(what, "exfilwatch.multipart: expected absent, got %v", v)
			}
			continue
		}
		parts, _ := v.([]any)
		if !ok {
			c.errorf(what, "exfilwatch.multipart: expected %d parts, got absent", len(x.Multipart))
			continue
		}
		if len(parts) != len(x.Multipart) {
			c.errorf(what, "exfilwatch.multipart: %d parts, expected %d: %v", len(parts), len(x.Multipart), v)
			continue
		}
		for j, xp := range x.Multipart {
			m, _ := parts[j].(map[string]any)
			pe := event(m)
			pw := fmt.Sprintf("%s part %d", what, j+1)
			c.eqStr(pe, pw, "name", xp.Name)
			c.eqStr(pe, pw, "filename", xp.Filename)
			if xp.ContentType != nil {
				c.eqStr(pe, pw, "mime_type", ptr(mimeOf(*xp.ContentType)))
			} else {
				c.absent(pe, pw, "mime_type")
			}
			c.eqNum(pe, pw, "bytes", xp.Bytes, true)
			c.eqStr(pe, pw, "sha256", &xp.SHA256)
		}
	}

	// ftp
	if got, want := len(ds["ftp"]), len(f.FTP); got != want {
		c.errorf("ftp", "%d events, expected %d: %s", got, want, summarize(ds["ftp"], "ftp.command", "ftp.arg"))
	}
	for i := 0; len(ds["ftp"]) == len(f.FTP) && i < len(f.FTP); i++ {
		x, e := f.FTP[i], ds["ftp"][i]
		arg := ""
		if x.Arg != nil {
			arg = " " + *x.Arg
		}
		what := fmt.Sprintf("ftp #%d (%s%s)", i+1, x.Command, arg)
		c.eqStr(e, what, "ftp.command", &x.Command)
		c.eqStr(e, what, "ftp.arg", x.Arg)
		if x.ReplyCode == nil {
			c.absent(e, what, "ftp.reply.code")
		} else {
			c.eqNum(e, what, "ftp.reply.code", *x.ReplyCode, false)
		}
		c.eqCodes(e, what, "ftp.interim", x.Interim, "code")
		c.eqStr(e, what, "source.ip", &x.ClientIP)
		c.eqStr(e, what, "destination.ip", &x.ServerIP)
		c.eqNum(e, what, "destination.port", x.ServerPort, false)
	}

	// ftp_data
	if got, want := len(ds["ftp_data"]), len(f.FTPData); got != want {
		c.errorf("ftp_data", "%d events, expected %d: %s", got, want, summarize(ds["ftp_data"], "ftp.command", "ftp.filename"))
	}
	for i := 0; len(ds["ftp_data"]) == len(f.FTPData) && i < len(f.FTPData); i++ {
		x, e := f.FTPData[i], ds["ftp_data"][i]
		what := fmt.Sprintf("ftp_data #%d (%s %s)", i+1, x.Command, deref(x.Filename))
		c.eqStr(e, what, "ftp.command", &x.Command)
		c.eqStr(e, what, "ftp.filename", x.Filename)
		c.eqStr(e, what, "ftp.mode", &x.Mode)
		c.eqStr(e, what, "ftp.direction", &x.Direction)
		c.eqNum(e, what, "network.bytes", x.Bytes, true)
		c.eqNum(e, what, "ftp.reply.code", x.ReplyCode, false)
		up, down := x.Bytes, int64(0)
		if x.Direction == "download" {
			up, down = 0, x.Bytes
		}
		c.eqNum(e, what, "exfilwatch.ftp_data.bytes_to_server", up, true)
		c.eqNum(e, what, "exfilwatch.ftp_data.bytes_to_client", down, true)
		c.absent(e, what, "exfilwatch.ftp_data.gap")
		c.notFalse(e, what, "exfilwatch.ftp_data.data_connection_seen")
	}

	// flows: one per TCP connection, all closed with FIN, no gaps
	if got, want := len(ds["flow"]), len(f.Connections); got != want {
		c.errorf("flow", "%d flow events, expected %d TCP connections: %s", got, want, summarize(ds["flow"], "network.protocol", "destination.port"))
	}
	for i := 0; len(ds["flow"]) == len(f.Connections) && i < len(f.Connections); i++ {
		x, e := f.Connections[i], ds["flow"][i]
		what := fmt.Sprintf("flow #%d (%s → %s:%d)", i+1, x.ClientIP, x.ServerIP, x.ServerPort)
		c.eqStr(e, what, "network.transport", ptr("tcp"))
		if x.Role != nil {
			c.eqStr(e, what, "network.protocol", x.Role)
		}
		c.eqStr(e, what, "source.ip", &x.ClientIP)
		c.eqStr(e, what, "destination.ip", &x.ServerIP)
		c.eqNum(e, what, "destination.port", x.ServerPort, false)
		c.eqNum(e, what, "exfilwatch.flow_summary.payload_bytes.to_server", x.BytesToServer, true)
		c.eqNum(e, what, "exfilwatch.flow_summary.payload_bytes.to_client", x.BytesToClient, true)
		c.eqStr(e, what, "exfilwatch.flow_summary.close_reason", ptr("fin"))
		c.eqNum(e, what, "exfilwatch.flow_summary.gaps", 0, true)
		c.absent(e, what, "exfilwatch.flow_summary.gap_bytes")
		if v, _ := e.get("exfilwatch.flow_summary.handshake_seen"); v != true {
			c.errorf(what, "exfilwatch.flow_summary.handshake_seen: %v", v)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}

func summarize(evs []event, a, b string) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, strings.TrimSpace(e.str(a)+" "+e.str(b)))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// checkCaptures replays every capture under root that has a facts file and
// compares; every capture file must have one. It returns how many it checked.
func checkCaptures(t *testing.T, root string) int {
	t.Helper()
	all := loadFacts(t, root)
	byName := map[string]*captureFacts{}
	for _, f := range all {
		byName[f.Capture] = f
	}
	for _, name := range captureFiles(t, root) {
		if byName[name] == nil {
			t.Errorf("%s: no expected/%s.facts.json", name, filepath.Base(name))
		}
	}
	for _, f := range all {
		t.Run(f.Capture, func(t *testing.T) {
			path := filepath.Join(root, filepath.FromSlash(f.Capture))
			evs, out := replay(t, path)
			checkEvents(t, f, evs)
			// docs/events.md: the same capture always gives byte-identical output
			if _, again := replay(t, path); !bytes.Equal(out, again) {
				t.Errorf("%s: a second replay gave different output", f.Capture)
			}
		})
	}
	return len(all)
}

// checkGzipCopies replays every *.gz under root and compares its output with
// that of the uncompressed file beside it, byte for byte.
func checkGzipCopies(t *testing.T, root string) int {
	t.Helper()
	gzs, err := filepath.Glob(filepath.Join(root, "*.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, gz := range gzs {
		plain := strings.TrimSuffix(gz, ".gz")
		t.Run(filepath.Base(gz), func(t *testing.T) {
			if _, err := os.Stat(plain); err != nil {
				t.Fatalf("no uncompressed %s beside it: %v", plain, err)
			}
			gzEvs, gzOut := replay(t, gz)
			_, plainOut := replay(t, plain)
			if len(gzEvs) == 0 {
				t.Fatalf("no events")
			}
			if !bytes.Equal(gzOut, plainOut) {
				t.Errorf("events differ from %s:\n--- gz\n%s\n--- plain\n%s", filepath.Base(plain), gzOut, plainOut)
			}
		})
	}
	return len(gzs)
}
