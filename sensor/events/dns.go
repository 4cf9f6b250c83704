package events

import (
	"strconv"
	"strings"
	"time"

	"exfilwatch/protocols/dns"
)

// DNS is one DNS response seen on UDP from port 53. Conn is its UDP flow:
// Client is the side that asked, Server the resolver.
type DNS struct {
	Conn
	Time     time.Time // the response packet's time
	Response dns.Response
}

// DNSSink is implemented by sinks that want DNS responses. It is separate
// from Sink so that sinks written before DNS events existed need no change:
// the sensor only builds DNS events when its sink implements it.
type DNSSink interface {
	DNS(*DNS)
}

// DNS implements DNSSink: the event is forwarded, in order with the others,
// to the wrapped sink if it implements DNSSink.
func (a *Async) DNS(e *DNS) {
	c := *e
	a.add(asyncItem{rec: Record{Kind: KindDNS, DNS: &c}})
}

// DNS writes one dns event (ECS dns.*).
func (j *JSONWriter) DNS(ev *DNS) {
	j.Counts.DNS++
	r := &ev.Response
	e := &j.e
	head(e, "dns", ev.Time, ev.Time)
	endpoint(e, "source", &ev.Conn, true, 0, 0, false)
	endpoint(e, "destination", &ev.Conn, false, 0, 0, false)
	network(e, &ev.Conn, "dns", 0, 0, false)
	process(e, ev.Attribution)
	e.Open("dns")
	e.Str("type", "answer")
	e.Str("id", strconv.FormatUint(uint64(r.ID), 10))
	e.Str("response_code", dns.RCodeString(r.RCode))
	var flags []string
	if r.Authoritative {
		flags = append(flags, "AA")
	}
	if r.Truncated {
		flags = append(flags, "TC")
	}
	if len(flags) > 0 {
		e.OpenArr("header_flags")
		for _, f := range flags {
			e.ElemStr(f)
		}
		e.CloseArr()
	}
	if r.QName != "" {
		e.Open("question")
		e.Str("name", r.QName)
		e.Str("type", dns.TypeString(r.QType))
		e.Close()
	}
	if len(r.Answers) > 0 {
		e.OpenArr("answers")
		for i := range r.Answers {
			a := &r.Answers[i]
			e.Open("")
			e.Str("name", a.Name)
			e.Str("type", dns.TypeString(a.Type))
			e.Uint("ttl", uint64(a.TTL))
			e.Str("data", a.Data())
			e.Close()
		}
		e.CloseArr()
		n := 0
		for i := range r.Answers {
			if a := &r.Answers[i]; a.Addr.IsValid() {
				if n == 0 {
					e.OpenArr("resolved_ip")
				}
				n++
				e.Sep()
				e.B = append(e.B, '"')
				e.B = a.Addr.AppendTo(e.B)
				e.B = append(e.B, '"')
			}
		}
		if n > 0 {
			e.CloseArr()
		}
	}
	e.Close()
	e.Open("exfilwatch")
	flowRef(e, &ev.Conn, j.Source)
	if r.Skipped > 0 || r.Dropped > 0 {
		e.Open("dns")
		if r.Skipped > 0 {
			e.Int("answers_skipped", int64(r.Skipped))
		}
		if r.Dropped > 0 {
			e.Int("answers_dropped", int64(r.Dropped))
		}
		e.Close()
	}
	e.Close()
	e.Close()
	j.emit()
}

// DNS writes one line per response: the question, the code and the answers.
func (t *TextWriter) DNS(ev *DNS) {
	t.Counts.DNS++
	r := &ev.Response
	var b strings.Builder
	b.WriteString(r.QName)
	if r.QName != "" {
		b.WriteString(" " + dns.TypeString(r.QType))
	}
	b.WriteString(" -> " + dns.RCodeString(r.RCode))
	for i := range r.Answers {
		a := &r.Answers[i]
		if i == 0 {
			b.WriteString("  ")
		} else {
			b.WriteString(", ")
		}
		if a.Name != r.QName || a.Type == dns.TypeCNAME {
			b.WriteString(a.Name + " ")
		}
		b.WriteString(dns.TypeString(a.Type) + " " + a.Data())
	}
	if r.Truncated {
		b.WriteString("  truncated")
	}
	t.line(ev.Time, "dns", &ev.Conn, b.String())
}
