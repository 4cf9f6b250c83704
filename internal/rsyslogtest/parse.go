package rsyslogtest

import (
	"bytes"
	"fmt"

	"github.com/leodido/go-syslog/v4/rfc5424"
)

// bom starts an RFC 5424 MSG that is UTF-8 (§6.4).
var bom = []byte("\xef\xbb\xbf")

// Parsed is an RFC 5424 message as go-syslog read it.
type Parsed struct {
	*rfc5424.SyslogMessage
	SD  map[string]string // the params of the SD element asked for
	Msg []byte            // MSG without its BOM
	BOM bool              // MSG started with a BOM
}

// Parse5424 parses strictly (MSG must be BOM + UTF-8 or carry no BOM) and
// requires the SD element sdID (syslog.SDID: this package cannot import
// the syslog package, whose own tests use it).
func Parse5424(raw []byte, sdID string) (*Parsed, error) {
	m, err := rfc5424.NewParser(rfc5424.WithCompliantMsg()).Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("go-syslog rejects %q: %w", raw, err)
	}
	sm := m.(*rfc5424.SyslogMessage)
	if sm.StructuredData == nil || (*sm.StructuredData)[sdID] == nil {
		return nil, fmt.Errorf("no %s element in %q", sdID, raw)
	}
	p := &Parsed{SyslogMessage: sm, SD: (*sm.StructuredData)[sdID]}
	if sm.Message != nil {
		p.Msg = []byte(*sm.Message)
		if bytes.HasPrefix(p.Msg, bom) {
			p.BOM = true
			p.Msg = p.Msg[len(bom):]
		}
	}
	return p, nil
}

// Str is *s, or "" for a header field go-syslog left nil.
func Str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Lines splits output into its non-blank lines.
func Lines(b []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}
