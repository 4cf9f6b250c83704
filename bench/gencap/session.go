package main

const (
	actOpen = iota
	actSend
	actClose
)

// An action is one step of a session's script: open a connection, send one
// application message in one direction, or close a connection.
type action struct {
	kind int
	f    *flow
	dir  int // actSend: the sender; actClose: the side that closes first
	m    msg
}

// A session is a scripted exchange on one or more flows (FTP uses a control
// connection and data connections). The scheduler advances it a few packets
// at a time.
type session struct {
	acts []action
	cur  int
	st   int // progress within the current action
}

func (s *session) open(f *flow) { s.acts = append(s.acts, action{kind: actOpen, f: f}) }
func (s *session) send(f *flow, dir int, p ...piece) {
	s.acts = append(s.acts, action{kind: actSend, f: f, dir: dir, m: msg{p: p}})
}
func (s *session) close(f *flow, first int) {
	s.acts = append(s.acts, action{kind: actClose, f: f, dir: first})
}

// estimate returns roughly how many file bytes the session will take.
func (s *session) estimate() int64 {
	var e int64
	for i := range s.acts {
		a := &s.acts[i]
		per := int64(pcapHdr + ethLen + ipv4Len + 20 + tcpOptTS)
		if a.f.v6 {
			per += ipv6Len - ipv4Len
		}
		switch a.kind {
		case actOpen, actClose:
			e += 3 * (per + 8)
		case actSend:
			l := a.m.wireLen()
			segs := (l + int64(a.f.mss) - 1) / int64(a.f.mss)
			e += l + segs*per + (segs/2+1)*per
		}
	}
	return e
}

// step advances the session by a few packets and reports whether it is done.
func (g *gen) step(s *session) bool {
	if s.cur >= len(s.acts) {
		return true
	}
	a := &s.acts[s.cur]
	var done bool
	switch a.kind {
	case actOpen:
		done = g.stepOpen(a.f, s.st)
	case actClose:
		done = g.stepClose(a.f, a.dir, s.st)
	case actSend:
		done = g.stepSend(s, a)
	}
	s.st++
	if done {
		s.cur++
		s.st = 0
	}
	return s.cur >= len(s.acts)
}

// stepOpen sends one packet of the three-way handshake.
func (g *gen) stepOpen(f *flow, st int) bool {
	switch st {
	case 0:
		g.tcp(f, 0, flagSYN, f.isn[0], 0, nil)
		f.seq[0] = f.isn[0] + 1
		return false
	case 1:
		g.tcp(f, 1, flagSYN|flagACK, f.isn[1], f.seq[0], nil)
		f.seq[1] = f.isn[1] + 1
		return false
	default:
		g.tcp(f, 0, flagACK, f.seq[0], f.seq[1], nil)
		return true
	}
}

// stepClose sends one packet of FIN/ACK, FIN/ACK, ACK, side first closing.
func (g *gen) stepClose(f *flow, first, st int) bool {
	other := 1 - first
	switch st {
	case 0:
		g.tcp(f, first, flagFIN|flagACK, f.seq[first], f.seq[other], nil)
		f.seq[first]++
		return false
	case 1:
		g.tcp(f, other, flagFIN|flagACK, f.seq[other], f.seq[first], nil)
		f.seq[other]++
		return false
	default:
		g.tcp(f, first, flagACK, f.seq[first], f.seq[other], nil)
		return true
	}
}

// ackFrom sends a pure ACK from side dir acknowledging ack.
func (g *gen) ackFrom(f *flow, dir int, ack uint32) {
	g.tcp(f, dir, flagACK, f.seq[dir], ack, nil)
}

// stepSend sends one to three segments of a message. The receiver ACKs every
// second segment; a small share of segments is sent out of order (the next
// segment first, answered by a duplicate ACK) or retransmitted.
func (g *gen) stepSend(s *session, a *action) bool {
	f, d := a.f, a.dir
	r := 1 - d
	burst := 1 + g.rng.IntN(3)
	for i := 0; i < burst && !a.m.done(); i++ {
		first := a.m.sent == 0
		seqA := f.seq[d]
		la := a.m.fill(g, g.seg[:f.mss])
		f.seq[d] += uint32(la)
		flagsA := byte(flagACK)
		if a.m.done() {
			flagsA |= flagPSH
		}
		x := g.rng.Float64()
		switch {
		case !first && !a.m.done() && x < pOutOfOrder:
			copy(g.hold, g.seg[:la])
			seqB := f.seq[d]
			lb := a.m.fill(g, g.seg[:f.mss])
			f.seq[d] += uint32(lb)
			flagsB := byte(flagACK)
			if a.m.done() {
				flagsB |= flagPSH
			}
			g.tcp(f, d, flagsB, seqB, f.seq[r], g.seg[:lb])
			g.ackFrom(f, r, seqA) // duplicate ACK: seqA is missing
			g.tcp(f, d, flagsA, seqA, f.seq[r], g.hold[:la])
			g.ackFrom(f, r, f.seq[d])
			f.unacked[d] = 0
			g.st.OutOfOrder++
		case !first && x < pOutOfOrder+pRetransmit:
			g.tcp(f, d, flagsA, seqA, f.seq[r], g.seg[:la])
			g.tcp(f, d, flagsA, seqA, f.seq[r], g.seg[:la])
			g.ackFrom(f, r, f.seq[d]) // duplicate data is ACKed at once
			f.unacked[d] = 0
			g.st.Retransmits++
		default:
			g.tcp(f, d, flagsA, seqA, f.seq[r], g.seg[:la])
			f.unacked[d]++
			if f.unacked[d] >= 2 {
				g.ackFrom(f, r, f.seq[d])
				f.unacked[d] = 0
			}
		}
	}
	if !a.m.done() {
		return false
	}
	if f.unacked[d] > 0 {
		// The ACK rides on the reply when the peer answers on this flow at
		// once; otherwise the receiver sends a (delayed) pure ACK.
		piggy := false
		if s.cur+1 < len(s.acts) {
			n := &s.acts[s.cur+1]
			piggy = n.kind == actSend && n.f == f && n.dir == r
		}
		if !piggy {
			g.ackFrom(f, r, f.seq[d])
		}
		f.unacked[d] = 0
	}
	return true
}
