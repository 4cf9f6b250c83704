package sensor

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"exfilwatch/attribution"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/events"
)

// sink records events; it copies what it keeps (the sensor reuses records).
type sink struct {
	http  []events.HTTP
	ftp   []events.FTPCommand
	data  []events.FTPData
	flows []events.Flow
}

func (s *sink) HTTP(e *events.HTTP)             { s.http = append(s.http, *e) }
func (s *sink) FTPCommand(e *events.FTPCommand) { s.ftp = append(s.ftp, *e) }
func (s *sink) FTPData(e *events.FTPData)       { s.data = append(s.data, *e) }
func (s *sink) Flow(e *events.Flow)             { s.flows = append(s.flows, *e) }

// peer sends TCP segments of one connection as Ethernet frames.
type peer struct {
	t        testing.TB
	rec      *frameRecorder // when set, frames are also recorded (fuzz seeds)
	s        *Sensor
	ip       net.IP
	port     uint16
	seq, ack uint32
	now      *time.Time
}

func (p *peer) send(to *peer, flags string, payload string) {
	p.t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: p.ip, DstIP: to.ip}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.port), DstPort: layers.TCPPort(to.port), Seq: p.seq, Ack: to.seq, Window: 500}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		}
	}
	tcp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		p.t.Fatal(err)
	}
	*p.now = p.now.Add(time.Millisecond)
	fr := capture.Frame{Data: buf.Bytes(), Timestamp: *p.now, WireLen: len(buf.Bytes()), LinkType: 1}
	if p.rec != nil {
		p.rec.add(buf.Bytes())
	}
	p.s.Frame(&fr)
	p.seq += uint32(len(payload))
	if tcp.SYN || tcp.FIN {
		p.seq++
	}
}

func pair(t testing.TB, s *Sensor, now *time.Time, cport, sport uint16) (c, srv *peer) {
	c = &peer{t: t, s: s, ip: net.IP{198, 18, 0, 1}, port: cport, seq: 1000, now: now}
	srv = &peer{t: t, s: s, ip: net.IP{198, 18, 0, 2}, port: sport, seq: 90000, now: now}
	return c, srv
}

func TestHTTPOnAnyPortWithHandshake(t *testing.T) {
	k := &sink{}
	s := New(Config{}, k)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c, srv := pair(t, s, &now, 41000, 4444)
	c.send(srv, "S", "")
	srv.send(c, "SA", "")
	c.send(srv, "A", "")
	c.send(srv, "PA", "PUT /drop HTTP/1.1\r\nHost: x:4444\r\nContent-Length: 5\r\n\r\nhello")
	srv.send(c, "PA", "HTTP/1.1 204 No Content\r\n\r\n")
	c.send(srv, "FA", "")
	srv.send(c, "FA", "")
	c.send(srv, "A", "")
	s.Flush()
	if len(k.http) != 1 || len(k.flows) != 1 {
		t.Fatalf("http %d flows %d", len(k.http), len(k.flows))
	}
	h := k.http[0]
	if h.Tx.Request.Method != "PUT" || h.Tx.Request.BodyBytes != 5 || h.Tx.Response.StatusCode != 204 || h.Client.Port() != 41000 || h.ClientGuessed {
		t.Fatalf("event %+v %+v", h.Conn, h.Tx.Request)
	}
	if f := k.flows[0]; f.Protocol != "http" || f.CloseReason != "fin" || f.Packets[0] != 5 || f.Packets[1] != 3 || f.Payload[0] != 60 || f.Payload[1] != 27 {
		t.Fatalf("flow %+v", f)
	}
}

// Without a handshake the client is guessed from the ports; content (a
// request line from the presumed server) corrects the guess.
func TestMidStreamRolesCorrectedByContent(t *testing.T) {
	k := &sink{}
	s := New(Config{}, k)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	// The server listens on 50000 (ephemeral range), the client uses 40000:
	// ports alone point the wrong way.
	c, srv := pair(t, s, &now, 40000, 50000)
	c.send(srv, "PA", "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
	srv.send(c, "PA", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	s.Flush()
	if len(k.http) != 1 {
		t.Fatalf("http %d", len(k.http))
	}
	h := k.http[0]
	if h.Client.Port() != 40000 || h.Server.Port() != 50000 || !h.ClientGuessed {
		t.Fatalf("conn %+v", h.Conn)
	}
	if f := k.flows[0]; f.Client.Port() != 40000 || f.Bytes[0] == 0 || f.Payload[0] != 51 || f.Payload[1] != 40 {
		t.Fatalf("flow %+v", f)
	}
}

// The data connection opens after PASV but before the STOR command and
// closes before the 226: the transfer is still tied to its command.
func TestFTPDataBeforeCommand(t *testing.T) {
	k := &sink{}
	s := New(Config{}, k)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c, srv := pair(t, s, &now, 41000, 2121)
	c.send(srv, "S", "")
	srv.send(c, "SA", "")
	c.send(srv, "A", "")
	srv.send(c, "PA", "220 (vsFTPd 3.0.3)\r\n")
	c.send(srv, "PA", "USER u\r\n")
	srv.send(c, "PA", "331 Please specify the password.\r\n")
	c.send(srv, "PA", "PASS secret\r\n")
	srv.send(c, "PA", "230 Login successful.\r\n")
	c.send(srv, "PA", "PASV\r\n")
	srv.send(c, "PA", "227 Entering Passive Mode (198,18,0,2,156,64).\r\n")
	dc, ds := pair(t, s, &now, 41002, 156*256+64)
	dc.send(ds, "S", "")
	ds.send(dc, "SA", "")
	dc.send(ds, "A", "")
	c.send(srv, "PA", "STOR secret.tar\r\n")
	dc.send(ds, "PA", "0123456789")
	dc.send(ds, "PA", "abcdef")
	dc.send(ds, "FA", "")
	ds.send(dc, "FA", "")
	dc.send(ds, "A", "")
	srv.send(c, "PA", "150 Ok to send data.\r\n226 Transfer complete.\r\n")
	c.send(srv, "PA", "QUIT\r\n")
	srv.send(c, "PA", "221 Goodbye.\r\n")
	s.Flush()
	if len(k.data) != 1 {
		t.Fatalf("transfers %d, commands %d", len(k.data), len(k.ftp))
	}
	d := k.data[0]
	if d.T.Command != "STOR" || d.T.Filename != "secret.tar" || !d.T.Upload || d.T.BytesToServer != 16 || d.T.Reply == nil || d.T.Reply.Code != 226 {
		t.Fatalf("transfer %+v", d.T)
	}
	if d.Client.Port() != 41002 || d.Control.Server.Port() != 2121 {
		t.Fatalf("data %v control %v", d.Conn, d.Control)
	}
	for _, cmd := range k.ftp {
		if cmd.Cmd.Name == "PASS" && cmd.Cmd.Arg != "<redacted>" {
			t.Fatalf("PASS argument leaked: %q", cmd.Cmd.Arg)
		}
	}
	protos := map[string]int{}
	for _, f := range k.flows {
		protos[f.Protocol]++
	}
	if protos["ftp"] != 1 || protos["ftp-data"] != 1 {
		t.Fatalf("flow protocols %v", protos)
	}
}

// A segment lost by the capture inside a body: the transaction is kept, its
// byte count includes the missing bytes and it is marked.
func TestGapInsideBodyKeepsTransaction(t *testing.T) {
	k := &sink{}
	s := New(Config{}, k)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c, srv := pair(t, s, &now, 41000, 80)
	c.send(srv, "S", "")
	srv.send(c, "SA", "")
	c.send(srv, "A", "")
	c.send(srv, "PA", "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n0123456789")
	c.seq += 10 // ten bytes never captured
	c.send(srv, "PA", "abcdefghij")
	srv.send(c, "PA", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	c.send(srv, "FA", "")
	srv.send(c, "FA", "")
	c.send(srv, "A", "")
	s.Flush()
	if len(k.http) != 1 {
		t.Fatalf("http %d", len(k.http))
	}
	tx := k.http[0].Tx
	if tx.Request.BodyBytes != 30 || !tx.Gap || tx.Request.BodyHashValid || tx.Response == nil || tx.Response.StatusCode != 200 {
		t.Fatalf("tx %+v gap %v", tx.Request, tx.Gap)
	}
	if k.flows[0].Gaps != 1 || k.flows[0].GapBytes[0] != 10 {
		t.Fatalf("flow %+v", k.flows[0])
	}
}

func TestNetworkDirectionFromLocalNets(t *testing.T) {
	for _, c := range []struct {
		nets []string
		want string
	}{
		{nil, ""},
		{[]string{"198.18.0.1/32"}, "outbound"},
		{[]string{"198.18.0.2/32"}, "inbound"},
		{[]string{"198.18.0.0/24"}, "internal"},
		{[]string{"10.0.0.0/8"}, "external"},
	} {
		k := &sink{}
		cfg := Config{}
		for _, n := range c.nets {
			cfg.LocalNets = append(cfg.LocalNets, netip.MustParsePrefix(n))
		}
		s := New(cfg, k)
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		cl, srv := pair(t, s, &now, 41000, 80)
		cl.send(srv, "S", "")
		srv.send(cl, "SA", "")
		cl.send(srv, "PA", "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		s.Flush()
		if len(k.http) != 1 || k.http[0].Direction != c.want || k.flows[0].Direction != c.want {
			t.Errorf("%v: got %d events, direction %q, want %q", c.nets, len(k.http), k.flows[0].Direction, c.want)
		}
	}
}

func TestUnrecognisedTCPIsOnlyCounted(t *testing.T) {
	k := &sink{}
	s := New(Config{}, k)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c, srv := pair(t, s, &now, 41000, 22)
	c.send(srv, "S", "")
	srv.send(c, "SA", "")
	srv.send(c, "PA", "SSH-2.0-OpenSSH_9.2\r\n")
	c.send(srv, "PA", "SSH-2.0-OpenSSH_9.6\r\n")
	s.Flush()
	if len(k.http)+len(k.ftp) != 0 || len(k.flows) != 1 || k.flows[0].Protocol != "" {
		t.Fatalf("events %d/%d flows %+v", len(k.http), len(k.ftp), k.flows)
	}
}

// slowAttributor answers only the flows released so far.
type slowAttributor struct{ released map[uint64]bool }

func (a *slowAttributor) Begin(attribution.Request) {}
func (a *slowAttributor) Peek(id uint64) (*attribution.Result, bool) {
	if a.released[id] {
		return &attribution.Result{Method: attribution.MethodSocketTable, PID: int32(id)}, true
	}
	return nil, false
}
func (a *slowAttributor) Result(id uint64, _ time.Duration) *attribution.Result {
	r, _ := a.Peek(id)
	if r == nil {
		return &attribution.Result{Reason: attribution.ReasonTimeout}
	}
	return r
}
func (a *slowAttributor) Forget(uint64) {}

// Events wait, in order, for their lookups without holding up packets; a
// lookup that never answers lets its events go after AttributionWait.
func TestEventsWaitForAttributionWithoutBlocking(t *testing.T) {
	k := &sink{}
	at := &slowAttributor{released: map[uint64]bool{}}
	s := NewWithDeps(Config{AttributionWait: time.Second}, Deps{Sink: k, Attributor: at})
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c1, srv1 := pair(t, s, &now, 41000, 80)
	c2, srv2 := pair(t, s, &now, 41001, 80)
	for _, p := range [][2]*peer{{c1, srv1}, {c2, srv2}} {
		p[0].send(p[1], "S", "")
		p[1].send(p[0], "SA", "")
		p[0].send(p[1], "PA", "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		p[1].send(p[0], "PA", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}
	if len(k.http) != 0 || s.C.EventsDeferred != 2 {
		t.Fatalf("events written before their lookups answered: %d, deferred %d", len(k.http), s.C.EventsDeferred)
	}
	at.released[2] = true // the second flow answers first: order still holds
	s.Tick(now)
	if len(k.http) != 0 {
		t.Fatalf("the second event overtook the first")
	}
	at.released[1] = true
	s.Tick(now)
	if len(k.http) != 2 || k.http[0].Attribution.PID != 1 || k.http[1].Attribution.PID != 2 {
		t.Fatalf("events %d", len(k.http))
	}
	// A third flow whose lookup never answers: out after the wait, marked.
	c3, srv3 := pair(t, s, &now, 41002, 80)
	c3.send(srv3, "S", "")
	srv3.send(c3, "SA", "")
	c3.send(srv3, "PA", "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
	srv3.send(c3, "PA", "HTTP/1.1 204 No Content\r\n\r\n")
	s.Tick(now.Add(500 * time.Millisecond))
	if len(k.http) != 2 {
		t.Fatalf("written before the deadline")
	}
	s.Tick(now.Add(2 * time.Second))
	if len(k.http) != 3 || k.http[2].Attribution.Reason != attribution.ReasonTimeout || s.C.AttributionTimeouts != 1 {
		t.Fatalf("events %d, timeouts %d", len(k.http), s.C.AttributionTimeouts)
	}
}
