// Package ftp parses an FTP control connection (RFC 959, 2228, 2428) as a
// passive observer and accounts the data transfers it sets up.
//
// The sensor feeds the control connection's reassembled bytes to a Session:
// client commands are matched FIFO to server replies and reported as
// Commands. Data connections are announced as Expectations; the sensor
// matches real connections to them and reports their bytes back with
// DataOpen, DataPayload (or DataBytes), DataGap and DataClose, and the
// session emits one Transfer per data transfer. Data-channel contents are
// counted and hashed (SHA-256) in place, never kept.
//
// The package does no I/O, no logging, keeps no globals and reads no clock:
// every time comes from the timestamps the sensor passes in. Hostile input
// never panics and memory stays within Limits; what was not accepted as is
// is reported as a protocols.Anomaly (names in limits.go and README.md).
package ftp

import (
	"bytes"
	"net/netip"
	"time"

	"exfilwatch/protocols"
)

// Handler receives what a Session finds. Any field may be nil. Callbacks
// run synchronously inside Feed, Gap, End and the Data* methods; they may
// call the Data* methods but not Feed, Gap or End. Pointers handed over are
// the callee's to keep.
type Handler struct {
	// Command gets each client command with its final (non-1xx) reply, in
	// command order, or without reply when the session ended or the
	// pending-command limit evicted it first.
	Command func(*Command)
	// Expect gets a data connection to watch for, as soon as it is known:
	// when the 227/228/229 reply arrives (passive), when the PORT/EPRT/LPRT
	// command is seen (active: the server may connect before replying 200).
	Expect func(Expectation)
	// Transfer gets each finished data transfer (see Session.DataOpen).
	Transfer func(*Transfer)
	// Anomaly gets anomalies not tied to one command; the others are in
	// Command.Anomalies.
	Anomaly func(protocols.Anomaly)
	// Unsolicited gets replies that answer no pending command: the greeting
	// (120/220/421 before anything else), a 421 before the server closes, or
	// a stray reply (which also raises AnomalyUnsolicitedReply).
	Unsolicited func(*Reply)
}

// state is where the control dialogue stands.
type state uint8

const (
	stateGreeting  state = iota // no reply yet: a first 120, 220 or 421 is the banner; initial state, must be zero
	stateReady                  // commands and replies in plaintext
	stateQuit                   // QUIT answered 2xx: the server closes, later commands are anomalous
	stateEncrypted              // AUTH answered 234: the rest of the connection is TLS, not decoded
	stateClosed                 // both directions ended: everything was flushed
)

func (s state) String() string {
	switch s {
	case stateGreeting:
		return "greeting"
	case stateReady:
		return "ready"
	case stateQuit:
		return "quit"
	case stateEncrypted:
		return "encrypted"
	case stateClosed:
		return "closed"
	}
	return "invalid"
}

// pendingCmd is a command waiting for its final reply.
type pendingCmd struct {
	cmd   *Command
	seq   uint64
	class cmdClass
	expID uint64 // expectation announced by PORT/EPRT/LPRT, 0 if none
}

// Session follows one FTP control connection. It implements
// protocols.Stream. It is not safe for concurrent use.
type Session struct {
	lim       Limits
	h         Handler
	state     state
	encrypted bool
	ended     [2]bool
	fr        [2]framer // indexed by protocols.Dir
	rep       replyAsm
	pending   []*pendingCmd // FIFO, at most MaxPendingCommands
	seq       uint64        // last command sequence number
	chans     []*dataChan   // expectations and transfers, oldest first, at most MaxExpected
	nextID    uint64        // last expectation ID
}

var _ protocols.Stream = (*Session)(nil)

// NewSession returns a Session that reports to h.
func NewSession(lim Limits, h Handler) *Session {
	s := &Session{lim: lim, h: h}
	s.fr[protocols.ClientToServer].max = lim.maxLineBytes()
	s.fr[protocols.ServerToClient].max = lim.maxLineBytes()
	return s
}

// Encrypted reports whether AUTH was accepted with 234: from then on the
// control connection is TLS and Feed ignores its bytes.
func (s *Session) Encrypted() bool { return s.encrypted }

// decoding reports whether control bytes are still parsed.
func (s *Session) decoding() bool { return s.state < stateEncrypted }

// Feed parses control-connection bytes: commands from the client, replies
// from the server.
func (s *Session) Feed(dir protocols.Dir, b []byte, ts time.Time) {
	if dir > protocols.ServerToClient || s.ended[dir] {
		return
	}
	f := &s.fr[dir]
	for len(b) > 0 && s.decoding() {
		n, ready := f.scan(b, ts)
		b = b[n:]
		if !ready {
			continue
		}
		line, total, start := f.line()
		if dir == protocols.ClientToServer {
			s.commandLine(line, total, start)
		} else {
			s.replyLine(line, total, ts)
		}
		f.reset()
	}
}

// Gap says n control bytes were not captured: the current line is lost, the
// parser drops input up to the next LF. Pending commands stay pending.
func (s *Session) Gap(dir protocols.Dir, n int64, ts time.Time) {
	if dir > protocols.ServerToClient || s.ended[dir] || n <= 0 || !s.decoding() {
		return
	}
	s.fr[dir].gap()
	if dir == protocols.ServerToClient && s.rep.state == replyMore {
		s.rep.gapped = true
	}
}

// End says a direction finished. When the server's ends, commands still
// waiting are emitted without reply; when both have, transfers that saw a
// data connection are flushed (Reply possibly nil) and the others dropped.
// Unclaimed data connections are flushed too, with Command "".
func (s *Session) End(dir protocols.Dir, ts time.Time) {
	if dir > protocols.ServerToClient || s.ended[dir] {
		return
	}
	s.ended[dir] = true
	if s.decoding() {
		f := &s.fr[dir]
		if f.partial() {
			line, total, _ := f.line()
			detail := protocols.Quote(line)
			if dir == protocols.ClientToServer {
				detail = quoteLine(line)
			}
			s.anomaly(protocols.Anomaly{Name: AnomalyPartialLine, Observed: total, Detail: detail})
		}
		f.reset()
		if dir == protocols.ServerToClient && s.rep.state == replyMore {
			s.anomaly(protocols.Anomaly{Name: AnomalyPartialLine, Observed: s.rep.seen,
				Detail: protocols.Quote(s.rep.msg)})
			s.rep.finish(ts)
		}
	}
	if dir == protocols.ServerToClient {
		s.flushPending(ts)
	}
	if s.ended[protocols.ClientToServer] && s.ended[protocols.ServerToClient] {
		s.finish(ts)
	}
}

// flushPending emits the commands still waiting: no reply can come.
func (s *Session) flushPending(ts time.Time) {
	for len(s.pending) > 0 {
		s.evict(ts, protocols.Anomaly{})
	}
}

// finish flushes every data channel that saw a connection.
func (s *Session) finish(ts time.Time) {
	s.flushPending(ts)
	chans := s.chans
	s.chans = nil
	s.state = stateClosed
	for _, d := range chans {
		if d.opened {
			s.emitTransfer(d)
		}
	}
}

func (s *Session) anomaly(a protocols.Anomaly) {
	if s.h.Anomaly != nil {
		s.h.Anomaly(a)
	}
}

// commandLine handles one client line.
func (s *Session) commandLine(line []byte, total int64, start time.Time) {
	c, an := parseCommand(line, total, s.lim)
	c.Start = start
	for _, a := range an {
		c.Anomalies = addAnomaly(c.Anomalies, a)
	}
	if s.state == stateQuit {
		c.Anomalies = addAnomaly(c.Anomalies, protocols.Anomaly{Name: AnomalyCommandAfterQuit,
			Detail: quoteLine(line)})
	}
	if max := s.lim.maxPendingCommands(); len(s.pending) >= max {
		s.evict(start, protocols.Anomaly{Name: AnomalyTooManyPending,
			Observed: int64(len(s.pending) + 1), Limit: int64(max)})
	}
	s.seq++
	p := &pendingCmd{cmd: c, seq: s.seq, class: classify(c.Name)}
	s.pending = append(s.pending, p)
	switch p.class {
	case classActive:
		_, arg, _ := bytes.Cut(line, []byte{' '})
		ap, err := activeAddr(c.Name, arg)
		if err != nil {
			c.Anomalies = addAnomaly(c.Anomalies, protocols.Anomaly{Name: AnomalyBadDataAddress,
				Detail: protocols.Quote(line)})
			return
		}
		p.expID = s.expect(Active, ap, start)
	case classTransfer:
		s.bindTransfer(p)
	}
}

// evict emits the oldest pending command without reply; a is the reason,
// if any.
func (s *Session) evict(ts time.Time, a protocols.Anomaly) {
	p := s.pending[0]
	s.popPending()
	if a.Name != "" {
		p.cmd.Anomalies = addAnomaly(p.cmd.Anomalies, a)
	}
	p.cmd.End = ts
	ready := s.noReply(p.seq)
	s.emitCommand(p.cmd)
	for _, d := range ready {
		s.emitTransfer(d)
	}
}

func (s *Session) popPending() {
	copy(s.pending, s.pending[1:])
	s.pending[len(s.pending)-1] = nil
	s.pending = s.pending[:len(s.pending)-1]
}

func (s *Session) emitCommand(c *Command) {
	if s.h.Command != nil {
		s.h.Command(c)
	}
}

// onReply matches a complete reply to the oldest pending command.
func (s *Session) onReply(r Reply, an []protocols.Anomaly) {
	if s.state == stateGreeting {
		switch r.Code {
		case 120: // "ready in nnn minutes": the 220 follows
			s.unsolicited(r, an)
			return
		case 220, 421:
			s.state = stateReady
			s.unsolicited(r, an)
			return
		}
		s.state = stateReady // picked up mid-session
	}
	var p *pendingCmd
	if len(s.pending) > 0 {
		p = s.pending[0]
	}
	// Passive addresses are read by reply code whatever the command: a
	// reply that lands on the wrong command after a desync, or answers a
	// PASV lost in a gap, still opens a data channel.
	if r.Code >= 227 && r.Code <= 229 {
		if ap, err := passiveAddr(r.Code, []byte(r.Message)); err == nil {
			s.expect(Passive, ap, r.Time)
		} else {
			an = addAnomaly(an, protocols.Anomaly{Name: AnomalyBadDataAddress,
				Detail: protocols.Quote([]byte(r.Message))})
		}
	}
	if p == nil {
		if r.Code != 421 {
			an = addAnomaly(an, protocols.Anomaly{Name: AnomalyUnsolicitedReply,
				Detail: protocols.Quote([]byte(r.Message))})
		}
		s.unsolicited(r, an)
		return
	}
	c := p.cmd
	for _, a := range an {
		c.Anomalies = addAnomaly(c.Anomalies, a)
	}
	if r.Code >= 100 && r.Code < 200 {
		if max := s.lim.maxInterimReplies(); len(c.Interim) < max {
			c.Interim = append(c.Interim, r)
		} else {
			c.Anomalies = addAnomaly(c.Anomalies, protocols.Anomaly{Name: AnomalyTooManyInterim,
				Observed: int64(len(c.Interim) + 1), Limit: int64(max)})
		}
		if p.class == classTransfer {
			s.transferReply(p.seq, c.Name, &r, false)
		}
		return
	}

	s.popPending()
	c.Reply = &r
	c.End = r.Time
	var ready []*dataChan
	ok := r.Code >= 200 && r.Code < 300
	switch p.class {
	case classAuth:
		if r.Code == 234 && s.decoding() {
			s.state = stateEncrypted
			s.encrypted = true
		}
	case classActive:
		if !ok && p.expID != 0 {
			// Refused: the server will not connect.
			s.dropChans(func(d *dataChan) bool { return d.exp.ID == p.expID && !d.bound && !d.opened })
		}
	case classRein:
		if ok {
			// The server forgot PORT/PASV with the rest of the session state.
			s.dropChans(func(d *dataChan) bool { return !d.bound && !d.opened })
		}
	case classQuit:
		if ok && s.state == stateReady {
			s.state = stateQuit
		}
	case classTransfer:
		ready = s.transferReply(p.seq, c.Name, &r, true)
	}
	s.emitCommand(c)
	for _, d := range ready {
		s.emitTransfer(d)
	}
}

func (s *Session) unsolicited(r Reply, an []protocols.Anomaly) {
	for _, a := range an {
		s.anomaly(a)
	}
	if s.h.Unsolicited != nil {
		s.h.Unsolicited(&r)
	}
}

// activeAddr parses the argument of PORT, EPRT or LPRT.
func activeAddr(name string, arg []byte) (ap netip.AddrPort, err error) {
	switch name {
	case "PORT":
		return parsePORT(arg)
	case "EPRT":
		return parseEPRT(arg)
	}
	return parseLPRT(arg)
}

// passiveAddr parses the text of a 227 (PASV), 228 (LPSV) or 229 (EPSV) reply.
func passiveAddr(code int, msg []byte) (netip.AddrPort, error) {
	switch code {
	case 227:
		return parsePASV(msg)
	case 228:
		return parseLPSV(msg)
	}
	return parseEPSV(msg)
}
