package sensor

import (
	"net/netip"
	"time"

	"exfilwatch/protocols"
	"exfilwatch/protocols/ftp"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/flows"
)

// ftpControl ties an FTP control session to the data connections it
// announced.
type ftpControl struct {
	s    *ftp.Session
	conn *events.Conn           // the control connection (in its flowState)
	data map[uint64]events.Conn // expectation id → data connection seen
}

// controlClosed detaches the session from its flow state, which is
// recycled: conn then points to a copy.
func (ctl *ftpControl) controlClosed() {
	c := *ctl.conn
	ctl.conn = &c
}

func (s *Sensor) newFTPControl(st *flowState) *ftpControl {
	ctl := &ftpControl{conn: &st.conn, data: make(map[uint64]events.Conn)}
	ctl.s = ftp.NewSession(s.cfg.FTP, ftp.Handler{
		Command: func(c *ftp.Command) {
			s.C.Anomalies += uint64(len(c.Anomalies))
			s.pe = pendingEvent{Record: events.Record{Kind: events.KindFTP, FTP: events.FTPCommand{Conn: *ctl.conn, Cmd: c}}}
			s.emit(&s.pe)
		},
		Expect: func(e ftp.Expectation) {
			s.C.ExpectedChannels++
			s.exp.add(ctl, e, &s.C)
		},
		Transfer: func(t *ftp.Transfer) {
			s.C.FTPTransfers++
			data := ctl.data[t.ExpectationID]
			delete(ctl.data, t.ExpectationID)
			s.pe = pendingEvent{Record: events.Record{Kind: events.KindFTPData, FTPData: events.FTPData{Conn: data, Control: *ctl.conn, T: t}}}
			s.emit(&s.pe)
		},
		Anomaly: func(protocols.Anomaly) { s.C.Anomalies++ },
	})
	return ctl
}

// attachData marks a flow as the data connection an FTP session expected.
func (s *Sensor) attachData(f *flows.Flow, st *flowState, e *expEntry) {
	st.proto = protoFTPData
	st.ctl = e.ctl
	st.expID = e.id
	st.passive = e.mode == ftp.Passive
	st.conn = s.connOf(f, st)
	e.ctl.data[e.id] = st.conn
	s.C.FTPDataFlows++
	s.C.ExpectedMatched++
	e.ctl.s.DataOpen(e.id, f.First)
}

// expEntry is one announced FTP data connection.
type expEntry struct {
	ctl  *ftpControl
	id   uint64
	mode ftp.Mode
	at   time.Time
	keys [2]netip.AddrPort // the responder endpoint, and the control server's address with its port when they differ (NAT)
	gone bool
}

// expectations is the bounded table of FTP data connections waited for,
// keyed by the endpoint that will accept the connection.
type expectations struct {
	max   int
	ttl   time.Duration
	m     map[netip.AddrPort]*expEntry
	order []*expEntry // oldest first, for eviction and expiry
}

func (x *expectations) init(max int, ttl time.Duration) {
	x.max, x.ttl = max, ttl
	x.m = make(map[netip.AddrPort]*expEntry)
}

func (x *expectations) add(ctl *ftpControl, e ftp.Expectation, c *Counters) {
	srv := ctl.conn.Server
	if ctl.conn.Server.Addr().Is4In6() {
		srv = netip.AddrPortFrom(srv.Addr().Unmap(), srv.Port())
	}
	ent := &expEntry{ctl: ctl, id: e.ID, mode: e.Mode, at: e.Time}
	resp := e.Responder
	addr := resp.Addr()
	if !addr.IsValid() || addr.IsUnspecified() {
		// EPSV gives only a port, and some servers answer PASV with 0.0.0.0:
		// the data connection goes to the control connection's server.
		if e.Mode == ftp.Active {
			addr = ctl.conn.Client.Addr()
		} else {
			addr = srv.Addr()
		}
	}
	ent.keys[0] = netip.AddrPortFrom(addr.Unmap(), resp.Port())
	if e.Mode == ftp.Passive && ent.keys[0].Addr() != srv.Addr() {
		ent.keys[1] = netip.AddrPortFrom(srv.Addr(), resp.Port())
	}
	x.expire(e.Time, c)
	for len(x.order) >= x.max {
		old := x.order[0]
		x.order = x.order[1:]
		if !old.gone {
			c.ExpectedDropped++
			x.remove(old)
		}
	}
	for _, k := range ent.keys {
		if k.IsValid() {
			if prev := x.m[k]; prev != nil && prev != ent {
				x.remove(prev)
			}
			x.m[k] = ent
		}
	}
	x.order = append(x.order, ent)
}

func (x *expectations) remove(e *expEntry) {
	e.gone = true
	for _, k := range e.keys {
		if k.IsValid() && x.m[k] == e {
			delete(x.m, k)
		}
	}
}

func (x *expectations) expire(now time.Time, c *Counters) {
	for len(x.order) > 0 {
		e := x.order[0]
		if !e.gone && now.Sub(e.at) <= x.ttl {
			return
		}
		x.order = x.order[1:]
		if !e.gone {
			c.ExpectedExpired++
			x.remove(e)
		}
	}
}

// match finds the expectation a new TCP flow fulfils, by its responder
// endpoint. Without a handshake the roles may be guessed wrong, so the
// client endpoint is tried too (and the flow swapped on a match).
func (x *expectations) match(f *flows.Flow, now time.Time) (*expEntry, bool) {
	if len(x.m) == 0 {
		return nil, false
	}
	if e := x.m[f.Server().AddrPort()]; e != nil && now.Sub(e.at) <= x.ttl {
		x.remove(e)
		return e, true
	}
	if !f.SawSYN {
		if e := x.m[f.Client().AddrPort()]; e != nil && now.Sub(e.at) <= x.ttl {
			x.remove(e)
			f.SetSwapped()
			return e, true
		}
	}
	return nil, false
}

// dropSession forgets what a closed control session still expected.
func (x *expectations) dropSession(ctl *ftpControl) {
	for _, e := range x.order {
		if e.ctl == ctl && !e.gone {
			x.remove(e)
		}
	}
}
