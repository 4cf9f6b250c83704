package sensor

import (
	"slices"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/protocols"
	"exfilwatch/protocols/ftp"
	"exfilwatch/protocols/http"
	"exfilwatch/sensor/decode"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/flows"
)

type appProto uint8

const (
	protoUnknown appProto = iota // still looking at the first bytes
	protoHTTP
	protoFTP
	protoFTPData
	protoOpaque // not recognised, or given up on: bytes are only counted
	protoDone   // HTTP connection whose parser finished and was released
)

func (p appProto) String() string {
	switch p {
	case protoHTTP, protoDone:
		return "http"
	case protoFTP:
		return "ftp"
	case protoFTPData:
		return "ftp-data"
	}
	return ""
}

const (
	// sniffMax bounds the bytes held per direction while the first line is
	// incomplete; no request line or banner needs more to be recognised.
	sniffMax = 64
	// sniffTries bounds how many segments are examined before a flow is
	// declared opaque. Looking at later segments lets a capture that starts
	// in the middle of a keep-alive connection be picked up at the next request.
	sniffTries = 32
)

// flowState is the sensor's per-flow state (flows.Flow.App).
type flowState struct {
	proto  appProto
	conn   events.Conn
	stream protocols.Stream
	sniff  [2][]byte
	tries  int
	ended  [2]bool

	httpP *http.Parser // protoHTTP: returned to the sensor's free list when both sides ended
	// onReq is the parser's OnRequest hook for this state, made once and
	// kept across reuse (freeState): no allocation per connection.
	onReq func(*http.Transaction)
	ctl   *ftpControl // protoFTP: this session; protoFTPData: the session that ordered it
	// attr is the flow's process when per-packet metadata gave it and no
	// attributor runs (replay of a PKTAP capture).
	attr *attribution.Result
	// protoFTPData only.
	expID   uint64
	passive bool
	closed  bool
}

// handler is the Sensor seen as the flow table's Handler.
type handler Sensor

func (h *handler) s() *Sensor { return (*Sensor)(h) }

func (s *Sensor) connOf(f *flows.Flow, st *flowState) events.Conn {
	c := events.Conn{
		FlowID:        f.ID,
		Client:        f.Client().AddrPort(),
		Server:        f.Server().AddrPort(),
		IPv6:          f.IPv6,
		Transport:     "tcp",
		Tunnel:        f.Tunnel,
		ClientGuessed: !f.SawSYN,
	}
	if f.Proto == decode.ProtoUDP {
		c.Transport = "udp"
		c.ClientGuessed = false
	}
	c.Direction = s.local.direction(c.Client.Addr(), c.Server.Addr())
	c.Attribution = st.attr
	return c
}

func (h *handler) Opened(f *flows.Flow) {
	s := h.s()
	st := s.newState()
	f.App = st
	// The packet that opened the flow may say which process sent it (PKTAP,
	// Apple pcapng): the first choice, with no race against a short-lived
	// process. A delegated socket is attributed to the app it works for.
	var pid int32
	var name string
	if m := &s.pkt.Meta; m.Valid {
		switch {
		case m.Delegated && m.HasEProc && m.EPID > 0:
			pid, name = m.EPID, m.EName
		case m.HasProc && m.PID > 0:
			pid, name = m.PID, m.Name
		}
	}
	if s.attr != nil {
		s.attr.Begin(attribution.Request{
			ID: f.ID, Proto: f.Proto, Client: f.Client().AddrPort(), Server: f.Server().AddrPort(), Start: f.First,
			PID: pid, Name: name,
		})
	} else if pid > 0 {
		// Replay of a capture with process metadata but no journal: what
		// the metadata says is all there is.
		st.attr = &attribution.Result{Method: attribution.MethodPKTAP, PID: pid, Name: name}
		s.C.PKTAPAttributed++
	}
	if f.Proto != decode.ProtoTCP {
		st.proto = protoOpaque
		return
	}
	if e, ok := s.exp.match(f, f.First); ok {
		s.attachData(f, st, e)
	}
}

func (h *handler) Data(f *flows.Flow, dir protocols.Dir, b []byte, ts time.Time) {
	st := f.App.(*flowState)
	switch st.proto {
	case protoHTTP, protoFTP:
		h.s().cur = f
		st.stream.Feed(dir, b, ts)
	case protoFTPData:
		st.ctl.s.DataPayload(st.expID, st.toServer(dir), b)
	case protoUnknown:
		h.s().sniffData(f, st, dir, b, ts)
	}
}

func (h *handler) Gap(f *flows.Flow, dir protocols.Dir, n int64, ts time.Time) {
	st := f.App.(*flowState)
	switch st.proto {
	case protoHTTP, protoFTP:
		st.stream.Gap(dir, n, ts)
	case protoFTPData:
		st.ctl.s.DataGap(st.expID, st.toServer(dir), n)
	case protoUnknown:
		st.sniff[dir] = st.sniff[dir][:0] // the next bytes are not a continuation
	}
}

func (h *handler) End(f *flows.Flow, dir protocols.Dir, ts time.Time) {
	st := f.App.(*flowState)
	st.ended[dir] = true
	switch st.proto {
	case protoHTTP:
		st.stream.End(dir, ts)
		if st.ended[0] && st.ended[1] {
			h.s().releaseHTTP(st)
		}
	case protoFTP:
		st.stream.End(dir, ts)
	case protoFTPData:
		if st.ended[0] && st.ended[1] && !st.closed {
			st.closed = true
			st.ctl.s.DataClose(st.expID, ts)
		}
	}
}

func (h *handler) Closed(f *flows.Flow) {
	s := h.s()
	st := f.App.(*flowState)
	if st.proto == protoFTPData && !st.closed {
		st.closed = true
		st.ctl.s.DataClose(st.expID, f.Last)
	}
	if st.proto == protoUnknown && f.Proto == decode.ProtoTCP && f.Half(0).Bytes+f.Half(1).Bytes > 0 {
		s.C.OpaqueFlows++ // carried data nobody recognised (empty connections are not counted)
	}
	if st.conn.FlowID == 0 {
		st.conn = s.connOf(f, st)
	}
	pe := &s.pe
	*pe = pendingEvent{Record: events.Record{Kind: events.KindFlow}}
	ev := &pe.Flow
	*ev = events.Flow{
		Conn:        st.conn,
		Protocol:    st.proto.String(),
		Start:       f.First,
		End:         f.Last,
		SawSYN:      f.SawSYN,
		BadChecksum: f.BadChecksum,
	}
	for d := protocols.ClientToServer; d <= protocols.ServerToClient; d++ {
		hs := f.Half(d)
		ev.Packets[d] = f.Packets(d)
		ev.Bytes[d] = f.Bytes(d)
		ev.Payload[d] = hs.Bytes
		ev.GapBytes[d] = hs.GapBytes
		ev.Gaps += hs.Gaps
		ev.Retransmits += hs.Retransmits
		ev.OutOfOrder += hs.OutOfOrder
		s.C.Gaps += hs.Gaps
		s.C.GapBytes += hs.GapBytes
		s.C.Retransmits += hs.Retransmits
		s.C.OutOfOrder += hs.OutOfOrder
		s.C.OutOfWindow += hs.OutOfWindow
		s.C.ForcedSkips += hs.ForcedSkips
	}
	if f.Proto == decode.ProtoTCP {
		ev.CloseReason = f.Reason().String()
	}
	if st.proto == protoFTP && st.ctl.s.Encrypted() {
		ev.Encrypted = true
	}
	s.emit(pe)
	if st.proto == protoFTP {
		s.exp.dropSession(st.ctl)
		st.ctl.controlClosed()
	}
	// The attributor keeps the answer (bounded, oldest forgotten first): a
	// transfer may still be reported after its data connection closed.
	s.releaseHTTP(st)
	f.App = nil
	if s.cur == f {
		s.cur = nil
	}
	s.freeState(st)
}

// sniffData looks at the first bytes of each direction until one of them is
// recognised as HTTP or FTP.
func (s *Sensor) sniffData(f *flows.Flow, st *flowState, dir protocols.Dir, b []byte, ts time.Time) {
	buf := b
	added := 0 // bytes of b copied into the held bytes
	if len(st.sniff[dir]) > 0 {
		added = min(sniffMax-len(st.sniff[dir]), len(b))
		st.sniff[dir] = append(st.sniff[dir], b[:added]...)
		buf = st.sniff[dir]
	}
	proto, swap, verdict := classify(f, dir, buf)
	switch verdict {
	case verdictYes:
		if swap {
			f.SetSwapped()
			dir = dir.Reverse()
			st.sniff[0], st.sniff[1] = st.sniff[1], st.sniff[0]
		}
		s.attach(f, st, proto)
		// Bytes held back in the other direction come first: they arrived
		// earlier.
		if o := st.sniff[dir.Reverse()]; len(o) > 0 {
			st.stream.Feed(dir.Reverse(), o, ts)
		}
		if len(st.sniff[dir]) > 0 {
			// The held bytes, then whatever of b did not fit in them.
			st.stream.Feed(dir, st.sniff[dir], ts)
			if added < len(b) {
				st.stream.Feed(dir, b[added:], ts)
			}
		} else {
			st.stream.Feed(dir, b, ts)
		}
		st.sniff = [2][]byte{}
	case verdictNeedMore:
		if len(st.sniff[dir]) == 0 {
			st.sniff[dir] = append(make([]byte, 0, sniffMax), b[:min(len(b), sniffMax)]...)
		} else if len(st.sniff[dir]) >= sniffMax {
			s.notRecognised(f, st, dir)
		}
	default:
		s.notRecognised(f, st, dir)
	}
}

func (s *Sensor) notRecognised(f *flows.Flow, st *flowState, dir protocols.Dir) {
	st.sniff[dir] = st.sniff[dir][:0]
	st.tries++
	if st.tries >= sniffTries {
		st.proto = protoOpaque
		st.sniff = [2][]byte{}
		s.C.OpaqueFlows++
	}
}

type verdict uint8

const (
	verdictNo verdict = iota
	verdictNeedMore
	verdictYes
)

// classify asks every parser whether buf, the first bytes seen in direction
// dir, start its protocol. When the handshake was not seen, it also asks with
// the roles reversed, and says so with swap.
func classify(f *flows.Flow, dir protocols.Dir, buf []byte) (p appProto, swap bool, v verdict) {
	type try struct {
		proto appProto
		rev   bool
	}
	tries := [...]try{{protoHTTP, false}, {protoFTP, false}, {protoHTTP, true}, {protoFTP, true}}
	for _, t := range tries {
		if t.rev && f.SawSYN {
			continue
		}
		d := dir
		if t.rev {
			d = dir.Reverse()
		}
		var got verdict
		switch t.proto {
		case protoHTTP:
			got = fromHTTP(http.Sniff(d, buf))
		case protoFTP:
			got = fromFTP(ftp.Sniff(d, buf))
		}
		if got == verdictYes {
			return t.proto, t.rev, verdictYes
		}
		if got > v {
			v = got
		}
	}
	return protoUnknown, false, v
}

func fromHTTP(v http.Verdict) verdict {
	switch v {
	case http.Yes:
		return verdictYes
	case http.NeedMore:
		return verdictNeedMore
	}
	return verdictNo
}

func fromFTP(v ftp.Verdict) verdict {
	switch v {
	case ftp.Yes:
		return verdictYes
	case ftp.NeedMore:
		return verdictNeedMore
	}
	return verdictNo
}

// attach starts a parser on a recognised flow.
func (s *Sensor) attach(f *flows.Flow, st *flowState, p appProto) {
	st.proto = p
	st.conn = s.connOf(f, st)
	s.cur = f
	switch p {
	case protoHTTP:
		s.C.HTTPFlows++
		conn := &st.conn
		emit := func(tx *http.Transaction) {
			s.C.Anomalies += uint64(len(tx.Anomalies))
			s.pe = pendingEvent{Record: events.Record{Kind: events.KindHTTP, HTTP: events.HTTP{Conn: *conn, Tx: tx}}}
			s.emit(&s.pe)
		}
		if n := len(s.httpFree); n > 0 {
			st.httpP = s.httpFree[n-1]
			s.httpFree = s.httpFree[:n-1]
			st.httpP.Reset(emit)
		} else {
			st.httpP = http.New(s.cfg.HTTP, emit)
		}
		if events.WantsRequests(s.sink) {
			if st.onReq == nil {
				st.onReq = func(tx *http.Transaction) { s.requestDone(st, tx) }
			}
			st.httpP.OnRequest(st.onReq)
		}
		st.stream = st.httpP
	case protoFTP:
		s.C.FTPFlows++
		st.ctl = s.newFTPControl(st)
		st.stream = st.ctl.s
	}
}

// requestDone turns a finished request that carried a body into a notice
// for the sink (events.RequestSink), queued like an event so that it waits
// for the same process lookup and leaves before its transaction's event.
// The notice holds a copy: the parser still fills the transaction in, and
// the sink may hand the notice to another goroutine (events.Async).
func (s *Sensor) requestDone(st *flowState, tx *http.Transaction) {
	if tx.Request.BodyBytes <= 0 {
		return
	}
	c := new(http.Transaction)
	*c = *tx
	c.Response = nil
	c.Anomalies = slices.Clone(tx.Anomalies)
	s.pe = pendingEvent{Record: events.Record{Kind: events.KindHTTPRequest, HTTP: events.HTTP{Conn: st.conn, Tx: c}}}
	s.emit(&s.pe)
}

// toServer says whether bytes sent in direction dir of a data connection go
// from the FTP client host to the FTP server host. In passive mode the FTP
// client opens the data connection; in active mode the server does.
func (st *flowState) toServer(dir protocols.Dir) bool {
	return (dir == protocols.ClientToServer) == st.passive
}

// freeListMax bounds each free list: enough to absorb a burst of short
// connections, small next to the flow table itself.
const freeListMax = 1024

func (s *Sensor) newState() *flowState {
	if n := len(s.stateFree); n > 0 {
		st := s.stateFree[n-1]
		s.stateFree = s.stateFree[:n-1]
		return st
	}
	return &flowState{}
}

func (s *Sensor) freeState(st *flowState) {
	if len(s.stateFree) < freeListMax {
		sniff, onReq := st.sniff, st.onReq
		*st = flowState{onReq: onReq}
		st.sniff[0], st.sniff[1] = sniff[0][:0], sniff[1][:0]
		s.stateFree = append(s.stateFree, st)
	}
}

// releaseHTTP hands a finished connection's parser back for reuse. Its
// transactions were all emitted when both sides ended.
func (s *Sensor) releaseHTTP(st *flowState) {
	if st.httpP == nil {
		return
	}
	if len(s.httpFree) < freeListMax {
		s.httpFree = append(s.httpFree, st.httpP)
	}
	st.httpP, st.stream = nil, nil
	st.proto = protoDone
}
