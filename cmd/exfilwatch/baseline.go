package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"exfilwatch/attribution"
	"exfilwatch/config"
)

// baseline learn turns events of a period of normal traffic into allowlist
// entries for a person to review. It learns only what an allowlist entry
// can pin down without trusting the process's own word: a valid code
// signature with a team id, else the executable path. A process known only
// by its name is not learned (anyone can take a name).

const (
	// maxBaselineLine bounds one event line; events carry bounded fields
	// (args, multipart parts), so a longer line is not ours.
	maxBaselineLine = 4 << 20
	// maxBaselineGroups bounds memory on hostile or huge inputs; uploads of
	// further (identity, destination) pairs are counted as dropped.
	maxBaselineGroups = 100000
	// maxNamesPerGroup bounds the process names kept for the comments.
	maxNamesPerGroup = 8
)

func baselineCommand() *cli.Command {
	return &cli.Command{
		Name:  "baseline",
		Usage: "learn allowlist entries from normal traffic",
		Subcommands: []*cli.Command{{
			Name:      "learn",
			Usage:     "write allowlist entries (exfilwatch.yaml) for the uploads seen in event files",
			ArgsUsage: "[EVENTS…]",
			Description: "Reads event JSON Lines written by `exfilwatch replay` or `run` (--events) over a period of\n" +
				"normal traffic, keeps outbound uploads (HTTP requests with a body of at least --min-bytes,\n" +
				"FTP STOR/STOU/APPE data) by attributed non-browser processes, groups them by process identity\n" +
				"(macOS team id and signing id when the signature is valid, else the executable path) and\n" +
				"destination (the HTTP host name when known, else the IP), and writes one allowlist entry per\n" +
				"group seen at least --min-count times, with counts, bytes and first/last seen in its reason.\n" +
				"Review the entries before use: each one silences alerts. Exit status 1 on unreadable input.",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "from", Usage: "event file `FILE` (JSON Lines; \"-\" for stdin); repeatable, or give files as arguments"},
				&cli.StringFlag{Name: "out", Value: "-", Usage: "write the YAML to `FILE` (\"-\" for stdout)"},
				&cli.IntFlag{Name: "min-count", Value: 2, Usage: "ignore (identity, destination) pairs seen fewer than `N` times"},
				&cli.Int64Flag{Name: "min-bytes", Value: int64(config.DefaultMinUploadBytes), Usage: "smallest HTTP request body or FTP upload that counts, in bytes (the rule's min_upload_bytes)"},
			},
			Action: baselineLearnAction,
		}},
	}
}

func baselineLearnAction(c *cli.Context) error {
	files := append(c.StringSlice("from"), c.Args().Slice()...)
	if len(files) == 0 {
		return errors.New("baseline learn: no event file given (usage: exfilwatch baseline learn --from EVENTS [--out baseline.yaml])")
	}
	if c.Int("min-count") < 1 {
		return fmt.Errorf("baseline learn: --min-count must be at least 1, got %d", c.Int("min-count"))
	}
	if c.Int64("min-bytes") < 0 {
		return fmt.Errorf("baseline learn: --min-bytes must not be negative, got %d", c.Int64("min-bytes"))
	}
	l := newLearner(c.Int64("min-bytes"))
	for _, f := range files {
		if err := l.readFile(f); err != nil {
			logger.Error().Msg("baseline learn: " + err.Error())
			return exitError{code: 1}
		}
	}
	out, err := l.yaml(c.Int("min-count"), files)
	if err != nil {
		logger.Error().Msg("baseline learn: " + err.Error())
		return exitError{code: 1}
	}
	w, closeOut, err := openOutput(c.String("out"))
	if err != nil {
		return fmt.Errorf("baseline learn: --out: %w", err)
	}
	_, werr := w.Write(out)
	if cerr := closeOut(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		logger.Error().Str("out", c.String("out")).Msg("baseline learn: writing failed: " + werr.Error())
		return exitError{code: 1}
	}
	logger.Info().Int("events", l.events).Int("uploads", l.uploads).Int("entries", l.written).
		Int("below_min_count", l.belowMin).Int("browser", l.browser).Int("unattributed", l.unattributed).
		Int("name_only", l.nameOnly).Int("not_outbound", l.notOutbound).Int("dropped_groups_full", l.dropped).
		Msg("baseline learn done")
	return nil
}

// baselineEvent holds the event fields the learner reads (docs/events.md).
type baselineEvent struct {
	Timestamp string `json:"@timestamp"`
	Event     struct {
		Dataset string `json:"dataset"`
	} `json:"event"`
	Destination struct {
		IP string `json:"ip"`
	} `json:"destination"`
	Network struct {
		Direction string `json:"direction"`
		Bytes     int64  `json:"bytes"`
	} `json:"network"`
	Process *struct {
		Name          string `json:"name"`
		Executable    string `json:"executable"`
		CodeSignature *struct {
			SigningID string `json:"signing_id"`
			TeamID    string `json:"team_id"`
			Valid     bool   `json:"valid"`
		} `json:"code_signature"`
	} `json:"process"`
	HTTP *struct {
		Request struct {
			Method string `json:"method"`
			Body   struct {
				Bytes int64 `json:"bytes"`
			} `json:"body"`
		} `json:"request"`
	} `json:"http"`
	URL struct {
		Domain string `json:"domain"`
	} `json:"url"`
	FTP struct {
		Direction string `json:"direction"`
		Mode      string `json:"mode"`
	} `json:"ftp"`
	Exfilwatch struct {
		FTPData struct {
			Control struct {
				Destination struct {
					IP string `json:"ip"`
				} `json:"destination"`
			} `json:"control"`
		} `json:"ftp_data"`
	} `json:"exfilwatch"`
}

// identity is what an entry pins the process by.
type identity struct {
	teamID, signingID, executable string
}

type groupKey struct {
	id   identity
	dest string // host name (lower case) or IP
}

type group struct {
	count, http, ftp int
	bytes            int64
	first, last      time.Time
	names            []string
	// ips are the addresses a host-name destination was reached at: the
	// detector matches host globs only against names a DNS answer in the
	// traffic confirmed (a Host header is the client's word), so the
	// entry lists the addresses too, for traffic whose lookups were not
	// captured.
	ips []string
}

// maxIPsPerGroup bounds the addresses listed beside a host name.
const maxIPsPerGroup = 8

type learner struct {
	minBytes                  int64
	browsers                  *attribution.BrowserClassifier
	groups                    map[groupKey]*group
	start                     time.Time
	end                       time.Time
	events                    int
	uploads                   int
	written                   int
	belowMin                  int
	browser                   int
	nameOnly                  int
	dropped                   int
	badHost                   int
	noDest                    int
	unattributed, notOutbound int
}

func newLearner(minBytes int64) *learner {
	return &learner{
		minBytes: minBytes,
		browsers: attribution.NewBrowserClassifier(attribution.DefaultMacBrowsers(), attribution.DefaultLinuxBrowsers()),
		groups:   map[groupKey]*group{},
	}
}

func (l *learner) readFile(name string) error {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return unwrapPath(err)
		}
		defer f.Close()
		r = f
	}
	return l.read(r, name)
}

// read consumes JSON Lines; the first bad line stops it with file:line.
func (l *learner) read(r io.Reader, name string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readBaselineLine(br, maxBaselineLine)
		if err == io.EOF && len(b) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			if errors.Is(err, errBaselineLineTooLong) {
				return fmt.Errorf("%s:%d: %v", name, line, err)
			}
			return fmt.Errorf("%s:%d: read: %w", name, line, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var ev baselineEvent
		if b[0] != '{' {
			return fmt.Errorf("%s:%d: not an event (a JSON object per line expected)", name, line)
		}
		if jerr := json.Unmarshal(b, &ev); jerr != nil {
			return fmt.Errorf("%s:%d: bad event JSON: %v", name, line, jerr)
		}
		if ev.Event.Dataset == "" {
			return fmt.Errorf("%s:%d: not an exfilwatch event (no event.dataset)", name, line)
		}
		l.add(&ev)
		if err == io.EOF {
			return nil
		}
	}
}

var errBaselineLineTooLong = fmt.Errorf("line longer than %d bytes", maxBaselineLine)

// readBaselineLine returns one line without its newline, refusing overlong ones
// without holding them in memory.
func readBaselineLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(out)+len(chunk) > max+1 {
			return nil, errBaselineLineTooLong
		}
		out = append(out, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return out, err
		}
		return out[:len(out)-1], nil
	}
}

func (l *learner) add(ev *baselineEvent) {
	l.events++
	var n int64
	switch ev.Event.Dataset {
	case "http":
		if ev.HTTP == nil || ev.HTTP.Request.Method == "" {
			return
		}
		n = ev.HTTP.Request.Body.Bytes
	case "ftp_data":
		if ev.FTP.Direction != "upload" {
			return
		}
		n = ev.Network.Bytes
	default:
		return
	}
	if n < l.minBytes || n == 0 {
		return
	}
	// Without local networks the direction is unknown; the attributed
	// process then owned the socket, which is how the sensor sees uploads.
	// An active-mode FTP data connection is opened by the server, so there
	// an upload from this host arrives as an inbound connection.
	want := "outbound"
	if ev.Event.Dataset == "ftp_data" && ev.FTP.Mode == "active" {
		want = "inbound"
	}
	if d := ev.Network.Direction; d != "" && d != want {
		l.notOutbound++
		return
	}
	if ev.Process == nil {
		l.unattributed++
		return
	}
	p := ev.Process
	var id identity
	ci := attribution.CodeIdentity{Executable: p.Executable}
	if cs := p.CodeSignature; cs != nil {
		ci.SigningID, ci.TeamID, ci.ValidSignature = cs.SigningID, cs.TeamID, cs.Valid
		// A team id is Apple's to give; an ad-hoc signature has none and
		// picks any signing id, so only a valid team-signed binary is
		// learned by its signature.
		if cs.Valid && cs.TeamID != "" {
			id.teamID, id.signingID = cs.TeamID, cs.SigningID
		}
	}
	if _, isBrowser := l.browsers.IsBrowser(ci); isBrowser {
		l.browser++
		return
	}
	if id.teamID == "" {
		exe := strings.TrimSuffix(p.Executable, " (deleted)")
		if !strings.HasPrefix(exe, "/") {
			l.nameOnly++
			return
		}
		id.executable = path.Clean(exe)
	}
	dest, ok := l.destination(ev)
	if !ok {
		return
	}
	l.uploads++
	k := groupKey{id, dest}
	g := l.groups[k]
	if g == nil {
		if len(l.groups) >= maxBaselineGroups {
			l.dropped++
			return
		}
		g = &group{}
		l.groups[k] = g
	}
	g.count++
	g.bytes += n
	if ev.Event.Dataset == "http" {
		g.http++
	} else {
		g.ftp++
	}
	if t, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
		if g.first.IsZero() || t.Before(g.first) {
			g.first = t
		}
		if t.After(g.last) {
			g.last = t
		}
		if l.start.IsZero() || t.Before(l.start) {
			l.start = t
		}
		if t.After(l.end) {
			l.end = t
		}
	}
	if p.Name != "" && len(g.names) < maxNamesPerGroup && !containsString(g.names, p.Name) {
		g.names = append(g.names, p.Name)
	}
	if ip := l.destIP(ev); ip != "" && ip != dest && len(g.ips) < maxIPsPerGroup && !containsString(g.ips, ip) {
		g.ips = append(g.ips, ip)
	}
}

// destIP is the upload's server address (the FTP control connection's for
// a data transfer).
func (l *learner) destIP(ev *baselineEvent) string {
	ip := ev.Destination.IP
	if ev.Event.Dataset == "ftp_data" {
		ip = ev.Exfilwatch.FTPData.Control.Destination.IP
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	return a.Unmap().WithZone("").String()
}

// destination is the HTTP host name when the request named one, else the
// destination IP. A name that is not a plain DNS name is not learned: in an
// allowlist, "*" or "[" in it would be a glob.
func (l *learner) destination(ev *baselineEvent) (string, bool) {
	if h := strings.TrimSuffix(strings.ToLower(ev.URL.Domain), "."); h != "" {
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			return a.Unmap().WithZone("").String(), true
		}
		if plainHost(h) {
			return h, true
		}
		l.badHost++
	}
	ip := ev.Destination.IP
	if ev.Event.Dataset == "ftp_data" {
		// The data connection's far end may be this host (active mode);
		// the upload goes to the FTP server, the control connection's.
		ip = ev.Exfilwatch.FTPData.Control.Destination.IP
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		l.noDest++
		return "", false
	}
	return a.Unmap().WithZone("").String(), true
}

func plainHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// globEscape makes a path match itself only, in the allowlist's glob syntax.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// yaml renders the groups seen at least minCount times, most uploads
// first, as an exfilwatch.yaml allowlist, and checks that config accepts it.
func (l *learner) yaml(minCount int, files []string) ([]byte, error) {
	type kv struct {
		k groupKey
		g *group
	}
	var keep []kv
	for k, g := range l.groups {
		if g.count < minCount {
			l.belowMin++
			continue
		}
		keep = append(keep, kv{k, g})
	}
	sort.Slice(keep, func(i, j int) bool {
		a, b := keep[i], keep[j]
		if a.g.count != b.g.count {
			return a.g.count > b.g.count
		}
		if a.k.id != b.k.id {
			return fmt.Sprint(a.k.id) < fmt.Sprint(b.k.id)
		}
		return a.k.dest < b.k.dest
	})
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, e := range keep {
		entry := config.AllowEntry{
			Executable:   globEscape(e.k.id.executable),
			TeamID:       e.k.id.teamID,
			SigningID:    e.k.id.signingID,
			Destinations: append(config.StringList{e.k.dest}, e.g.ips...),
			Reason:       reasonText(e.g),
		}
		if entry.Executable == "" && entry.TeamID == "" {
			continue // not reached: add learns no other identity
		}
		var n yaml.Node
		if err := n.Encode(entry); err != nil {
			return nil, fmt.Errorf("encode entry: %w", err)
		}
		n.HeadComment = "process name: " + strings.Join(e.g.names, ", ")
		if len(e.g.names) == 0 {
			n.HeadComment = "process name: unknown"
		}
		seq.Content = append(seq.Content, &n)
	}
	l.written = len(seq.Content)
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "allowlist"}, seq,
	}}
	span := "no timestamps"
	if !l.start.IsZero() {
		span = l.start.UTC().Format(time.RFC3339) + " to " + l.end.UTC().Format(time.RFC3339)
	}
	root.HeadComment = fmt.Sprintf("Written by exfilwatch baseline learn from %s (%d events, %s).\n"+
		"Uploads kept: outbound HTTP bodies and FTP uploads of at least %d bytes by attributed\n"+
		"non-browser processes; one entry per (process, destination) pair seen at least %d times\n"+
		"(pairs seen fewer times: %d). IP destinations are exact; widen them by hand if needed.\n"+
		"REVIEW EVERY ENTRY before adding it to exfilwatch.yaml: an entry silences alerts.\n"+
		"Consider adding `classes:` so that an allowed tool that reads other files still alerts.",
		strings.Join(files, ", "), l.events, span, l.minBytes, minCount, l.belowMin)
	if len(seq.Content) == 0 {
		seq.Style = yaml.FlowStyle
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	// What is written must load: a learned value config rejects is a bug
	// here, better reported than written.
	if _, err := config.Parse(buf.Bytes(), "baseline.yaml"); err != nil {
		return nil, fmt.Errorf("learned entries do not validate: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return buf.Bytes(), nil
}

func reasonText(g *group) string {
	var what []string
	if g.http > 0 {
		what = append(what, fmt.Sprintf("%d HTTP", g.http))
	}
	if g.ftp > 0 {
		what = append(what, fmt.Sprintf("%d FTP", g.ftp))
	}
	s := fmt.Sprintf("learned: %d uploads (%s), %d bytes", g.count, strings.Join(what, ", "), g.bytes)
	if !g.first.IsZero() {
		s += fmt.Sprintf(", first %s, last %s", g.first.UTC().Format(time.RFC3339), g.last.UTC().Format(time.RFC3339))
	}
	return s
}
