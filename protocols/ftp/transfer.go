// Data channels: expectations announced to the sensor, their association
// with transfer commands, byte accounting and Transfer emission.

package ftp

import (
	"crypto/sha256"
	"hash"
	"math"
	"net/netip"
	"time"

	"exfilwatch/protocols"
)

// Mode says which side accepts the data connection.
type Mode uint8

const (
	Passive Mode = iota // PASV/EPSV/LPSV: the client connects to the server
	Active              // PORT/EPRT/LPRT: the server connects to the client
)

func (m Mode) String() string {
	switch m {
	case Passive:
		return "passive"
	case Active:
		return "active"
	}
	return "invalid"
}

// Expectation announces a data connection the sensor should match to this
// control session and report through DataOpen/DataBytes/DataGap/DataClose.
type Expectation struct {
	ID   uint64 // unique within the session, starting at 1
	Mode Mode
	// Responder is the endpoint that will accept the data connection:
	// passive, the server address and port from the 227/228/229 reply;
	// active, the client address and port from PORT/EPRT/LPRT.
	//
	// When the text names no usable address, Responder.Addr() is invalid
	// (Responder.IsValid() is false) but Responder.Port() is set, and the
	// sensor must use the control connection's address on that side: the
	// server's for EPSV replies "(|||port|)" (RFC 2428 gives only the port)
	// and PASV replies with 0.0.0.0, the client's for PORT/EPRT with an
	// unspecified address. Behind NAT the announced address may also differ
	// from the one on the wire; matching on the port alone is then the
	// sensor's call.
	Responder netip.AddrPort
	Time      time.Time // when the reply (passive) or command (active) was fed
}

// Transfer is one data transfer: one expectation used by one transfer command.
type Transfer struct {
	ExpectationID uint64
	Mode          Mode
	Responder     netip.AddrPort // as announced in the Expectation
	// Command is STOR STOU APPE RETR LIST NLST or MLSD; "" for a data
	// connection no transfer command claimed before the session ended.
	Command string
	// Filename is the command's argument as the client sent it; for a STOU
	// without argument, the name the server chose.
	Filename string
	// StoredAs is, for STOU, the name the server chose (from a "FILE: x"
	// reply), which differs from the client's suggestion.
	StoredAs string
	Upload   bool // STOR, STOU, APPE

	BytesToServer int64 // from the FTP client host to the FTP server host, gaps included
	BytesToClient int64
	Gap           bool // some bytes were not captured (DataGap): the content is incomplete

	// SHA256 is the SHA-256 of the data in one direction: to the server
	// for an upload (STOR, STOU, APPE), to the client for the other
	// commands; for a channel no command claimed (Command ""), to the
	// server when only that side sent data, else to the client.
	// HashToServer says which. The hash covers the channel from its first
	// byte, including bytes that came before the transfer command.
	SHA256       [32]byte
	HashToServer bool
	// HashValid is set when every byte of that direction was hashed: no
	// gap, and the sensor passed them all to DataPayload (bytes reported
	// with DataBytes are only counted). An empty direction has a valid
	// hash, the SHA-256 of nothing.
	HashValid bool

	Reply        *Reply    // completion reply (226, 250, 426, 451, 550…), nil if none came
	Start, End   time.Time // min and max of data open, command, replies and data close
	CommandStart time.Time // zero when Command is ""
}

// dataChan is one expectation and, once a transfer command claims it, the
// transfer in progress. A data connection's bytes are counted and hashed,
// never kept.
type dataChan struct {
	exp Expectation

	bound    bool   // a transfer command claimed it
	cmdSeq   uint64 // sequence number of that command
	command  string
	filename string
	storedAs string
	upload   bool
	cmdStart time.Time
	replied  bool   // the completion reply came, or never will (evicted, server ended)
	reply    *Reply // nil if none

	opened, closed bool // a data connection was reported (open, bytes, gap or close), and closed
	toServer       int64
	toClient       int64
	gap            bool
	first, last    time.Time
	hash           [2]dataHash // index dirIndex(toServer)
}

// dataHash is the running SHA-256 of one direction of a data connection.
type dataHash struct {
	h    hash.Hash // nil until the first payload byte
	lost bool      // bytes were counted that were not hashed: the hash is void
}

// dirIndex maps toServer to the index of dataChan.hash.
func dirIndex(toServer bool) int {
	if toServer {
		return 0
	}
	return 1
}

// hashDir returns the direction the Transfer's hash covers.
func (d *dataChan) hashDir() (toServer bool) {
	if d.bound {
		return d.upload
	}
	return d.toServer > 0 && d.toClient == 0
}

func (d *dataChan) touch(ts time.Time) {
	if ts.IsZero() {
		return
	}
	if d.first.IsZero() || ts.Before(d.first) {
		d.first = ts
	}
	if ts.After(d.last) {
		d.last = ts
	}
}

// done reports whether the transfer can be emitted: its command was
// answered and its connection closed.
func (d *dataChan) done() bool { return d.bound && d.replied && d.closed }

func (d *dataChan) transfer() *Transfer {
	t := &Transfer{
		ExpectationID: d.exp.ID,
		Mode:          d.exp.Mode,
		Responder:     d.exp.Responder,
		Command:       d.command,
		Filename:      d.filename,
		StoredAs:      d.storedAs,
		Upload:        d.upload,
		BytesToServer: d.toServer,
		BytesToClient: d.toClient,
		Gap:           d.gap,
		Reply:         d.reply,
		Start:         d.first,
		End:           d.last,
		CommandStart:  d.cmdStart,
	}
	t.HashToServer = d.hashDir()
	if x := &d.hash[dirIndex(t.HashToServer)]; !x.lost {
		t.HashValid = true
		if x.h != nil {
			x.h.Sum(t.SHA256[:0])
		} else {
			t.SHA256 = sha256.Sum256(nil)
		}
	}
	return t
}

// expect records a new expectation and announces it. When the table is
// full it drops the oldest entry no data connection used; if every entry has
// one, the oldest is flushed as a Transfer so its bytes are not lost.
func (s *Session) expect(mode Mode, ap netip.AddrPort, ts time.Time) uint64 {
	if max := s.lim.maxExpected(); len(s.chans) >= max {
		s.anomaly(protocols.Anomaly{Name: AnomalyTooManyExpected,
			Observed: int64(len(s.chans) + 1), Limit: int64(max)})
		victim := 0
		for i, d := range s.chans {
			if !d.opened {
				victim = i
				break
			}
		}
		d := s.chans[victim]
		s.removeChan(victim)
		if d.opened {
			s.emitTransfer(d)
		}
	}
	s.nextID++
	e := Expectation{ID: s.nextID, Mode: mode, Responder: ap, Time: ts}
	s.chans = append(s.chans, &dataChan{exp: e})
	if s.h.Expect != nil {
		s.h.Expect(e)
	}
	return e.ID
}

// bindTransfer gives a transfer command every expectation announced and not
// yet claimed: the first transfer command after an expectation consumes it.
// Several only when the client asked PASV twice; the stale one never sees a
// connection and so never becomes a Transfer.
func (s *Session) bindTransfer(p *pendingCmd) {
	// Entries whose command completed without any data connection are
	// finished: the server is done with them.
	s.dropChans(func(d *dataChan) bool { return d.bound && d.replied && !d.opened })
	for _, d := range s.chans {
		if d.bound {
			continue
		}
		d.bound = true
		d.cmdSeq = p.seq
		d.command = p.cmd.Name
		d.filename = p.cmd.Arg
		d.upload = isUpload(p.cmd.Name)
		d.cmdStart = p.cmd.Start
		d.touch(p.cmd.Start)
		// From now on only the transfer's direction is hashed: the other
		// one's state is released and its hash never reported.
		d.hash[dirIndex(!d.upload)] = dataHash{lost: true}
	}
}

// transferReply applies a reply to the transfers of command seq and returns
// the ones now complete, already removed from the table. A final error
// reply ends a transfer that never had a data connection: no Transfer.
func (s *Session) transferReply(seq uint64, name string, r *Reply, final bool) []*dataChan {
	var ready []*dataChan
	keep := s.chans[:0]
	for _, d := range s.chans {
		if !d.bound || d.cmdSeq != seq {
			keep = append(keep, d)
			continue
		}
		d.touch(r.Time)
		if name == "STOU" {
			if f, ok := stouName(r.Message); ok {
				d.storedAs = f
				if d.filename == "" {
					d.filename = f
				}
			}
		}
		if final {
			rc := *r // the Transfer gets its own copy of the Command's reply
			d.replied = true
			d.reply = &rc
			if !d.opened && r.Code >= 400 {
				continue // failed before any connection: nothing to report
			}
			if d.done() {
				ready = append(ready, d)
				continue
			}
		}
		keep = append(keep, d)
	}
	clear(s.chans[len(keep):])
	s.chans = keep
	return ready
}

// noReply marks the transfers of command seq as answered by nothing: the
// command was evicted or the server direction ended.
func (s *Session) noReply(seq uint64) []*dataChan {
	var ready []*dataChan
	s.dropChans(func(d *dataChan) bool {
		if !d.bound || d.cmdSeq != seq || d.replied {
			return false
		}
		d.replied = true
		if d.done() {
			ready = append(ready, d)
			return true
		}
		return false
	})
	return ready
}

// stouName extracts the name from "FILE: x" (RFC 1123 §4.1.2.9; vsftpd puts
// it in the 150 reply, others in 250 or 226).
func stouName(msg string) (string, bool) {
	for i := 0; i+5 <= len(msg); i++ {
		if foldEqual([]byte(msg[i:i+5]), "FILE:") {
			rest := msg[i+5:]
			for len(rest) > 0 && rest[0] == ' ' {
				rest = rest[1:]
			}
			for j := 0; j < len(rest); j++ {
				if rest[j] == '\n' || rest[j] == '\r' {
					rest = rest[:j]
					break
				}
			}
			if rest != "" {
				return rest, true
			}
		}
	}
	return "", false
}

func (s *Session) findChan(id uint64) *dataChan {
	for _, d := range s.chans {
		if d.exp.ID == id {
			return d
		}
	}
	return nil
}

func (s *Session) removeChan(i int) {
	copy(s.chans[i:], s.chans[i+1:])
	s.chans[len(s.chans)-1] = nil
	s.chans = s.chans[:len(s.chans)-1]
}

// dropChans removes the entries for which drop returns true, keeping order.
func (s *Session) dropChans(drop func(*dataChan) bool) {
	keep := s.chans[:0]
	for _, d := range s.chans {
		if !drop(d) {
			keep = append(keep, d)
		}
	}
	clear(s.chans[len(keep):])
	s.chans = keep
}

func (s *Session) emitTransfer(d *dataChan) {
	if s.h.Transfer != nil {
		s.h.Transfer(d.transfer())
	}
}

// DataOpen reports that the sensor saw a data connection matching
// expectation expID open. Unknown IDs (never announced, dropped, already
// emitted) are ignored. One connection per expectation: a second open on
// the same ID is counted into the same Transfer.
func (s *Session) DataOpen(expID uint64, ts time.Time) {
	if d := s.findChan(expID); d != nil {
		d.opened = true
		d.touch(ts)
	}
}

// DataBytes adds n unique reassembled bytes seen on the data connection
// without their content: they are counted, and that direction's hash is
// void (Transfer.HashValid false). toServer means from the FTP client host
// to the FTP server host, whatever the mode. It does not allocate.
func (s *Session) DataBytes(expID uint64, toServer bool, n int64) {
	if n <= 0 {
		return
	}
	if d := s.findChan(expID); d != nil {
		d.count(toServer, n)
		d.hash[dirIndex(toServer)] = dataHash{lost: true}
	}
}

// DataPayload adds the next unique reassembled bytes of the data
// connection, in stream order: they are counted as DataBytes does and
// hashed in place (b is not kept). Both directions are hashed until a
// transfer command claims the channel, then only the transfer's. The
// first payload of a direction allocates its hash state; the rest does
// not allocate.
func (s *Session) DataPayload(expID uint64, toServer bool, b []byte) {
	if len(b) == 0 {
		return
	}
	d := s.findChan(expID)
	if d == nil {
		return
	}
	d.count(toServer, int64(len(b)))
	x := &d.hash[dirIndex(toServer)]
	if x.lost {
		return
	}
	if x.h == nil {
		x.h = sha256.New()
	}
	x.h.Write(b)
}

func (d *dataChan) count(toServer bool, n int64) {
	d.opened = true
	if toServer {
		d.toServer = addSat(d.toServer, n)
	} else {
		d.toClient = addSat(d.toClient, n)
	}
}

// DataGap reports n bytes missing from the capture of the data connection:
// they count in the totals (the peer did send them), mark the Transfer
// incomplete and void that direction's hash.
func (s *Session) DataGap(expID uint64, toServer bool, n int64) {
	if n <= 0 {
		return
	}
	if d := s.findChan(expID); d != nil {
		d.gap = true
		s.DataBytes(expID, toServer, n)
	}
}

// DataClose reports that the data connection ended. The Transfer is emitted
// now if its completion reply already came, else when it comes.
func (s *Session) DataClose(expID uint64, ts time.Time) {
	for i, d := range s.chans {
		if d.exp.ID != expID {
			continue
		}
		d.opened = true
		d.closed = true
		d.touch(ts)
		if d.done() {
			s.removeChan(i)
			s.emitTransfer(d)
		}
		return
	}
}

// addSat adds without wrapping: a hostile n must not turn a total negative.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
