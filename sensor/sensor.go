// Package sensor is the decode pipeline shared by replay and live capture:
// frames are decoded (sensor/decode), grouped into flows and reassembled
// (sensor/flows), recognised by content and handed to the protocol parsers
// (protocols/http, protocols/ftp), whose transactions become events
// (sensor/events). Data flows one way; nothing here reads a clock: time comes
// from packets.
package sensor

import (
	"net/netip"
	"time"

	"exfilwatch/attribution"
	"exfilwatch/protocols/ftp"
	"exfilwatch/protocols/http"
	"exfilwatch/sensor/capture"
	"exfilwatch/sensor/decode"
	"exfilwatch/sensor/events"
	"exfilwatch/sensor/flows"
)

// Config holds every limit of the pipeline. Zero values mean the defaults
// documented on each field's type.
type Config struct {
	Decode decode.Options
	Flows  flows.Limits
	HTTP   http.Limits
	FTP    ftp.Limits
	// MaxExpectedChannels bounds the FTP data connections waited for, over
	// all sessions (default 4096).
	MaxExpectedChannels int
	// ExpectedChannelTTL is how long an announced data connection is waited
	// for, in packet time (default 5m).
	ExpectedChannelTTL time.Duration
	// AttributionWait bounds how long writing an event waits for the
	// process lookup of its flow, started at the flow's first packet
	// (default 250ms). It only matters in live capture.
	AttributionWait time.Duration
	// LocalNets are the networks of the monitored host: its own addresses
	// (live capture adds them) and any extra local networks configured. They
	// decide network.direction; empty means unknown.
	LocalNets []netip.Prefix
}

func (c Config) maxExpected() int {
	if c.MaxExpectedChannels > 0 {
		return c.MaxExpectedChannels
	}
	return 4096
}

func (c Config) attributionWait() time.Duration {
	if c.AttributionWait > 0 {
		return c.AttributionWait
	}
	return 250 * time.Millisecond
}

func (c Config) expectTTL() time.Duration {
	if c.ExpectedChannelTTL > 0 {
		return c.ExpectedChannelTTL
	}
	return 5 * time.Minute
}

// Counters are the pipeline's own totals (decoder and table keep theirs).
type Counters struct {
	Bytes            uint64 // captured bytes read
	Panics           uint64 // recovered panics (a bug; the flow is dropped from decoding)
	HTTPFlows        uint64
	FTPFlows         uint64
	FTPDataFlows     uint64
	OpaqueFlows      uint64 // TCP flows whose content was not recognised
	ExpectedChannels uint64 // FTP data connections announced
	ExpectedMatched  uint64
	ExpectedDropped  uint64 // dropped for MaxExpectedChannels
	ExpectedExpired  uint64 // never seen within ExpectedChannelTTL
	Anomalies        uint64
	FTPTransfers     uint64
	FTPEncrypted     uint64
	// Reassembly totals over closed flows.
	Gaps        uint64
	GapBytes    uint64
	Retransmits uint64
	OutOfOrder  uint64
	OutOfWindow uint64
	ForcedSkips uint64 // holes skipped because a buffer limit bit
	// LoopbackDuplicates are second copies of loopback packets (PKTAP
	// captures on pktap,all see each one going out and coming in).
	LoopbackDuplicates uint64
	// PKTAPAttributed are flows attributed from per-packet process metadata.
	PKTAPAttributed uint64
	// EventsDeferred waited for a process lookup; AttributionTimeouts are
	// connections whose lookup had not answered within AttributionWait.
	EventsDeferred      uint64
	AttributionTimeouts uint64
	// DNSResponses were read from UDP port 53 and emitted; DNSMalformed
	// were skipped because they did not parse (sensor/dns.go).
	DNSResponses uint64
	DNSMalformed uint64
}

// Stats is a snapshot of every counter of the pipeline.
type Stats struct {
	Sensor       Counters
	Decode       decode.Counters
	FragsDropped uint64
	Flows        flows.Counters
}

// Sensor runs the pipeline. It is not safe for concurrent use: one goroutine
// feeds it frames.
type Sensor struct {
	cfg   Config
	dec   *decode.Decoder
	table *flows.Table
	sink  events.Sink
	pkt   decode.Packet
	exp   expectations
	C     Counters
	cur   *flows.Flow
	local localNets
	attr  Attributor
	dedup decode.LoopbackDedup

	// Free lists and reused event records: the short-connection case
	// (hundreds of thousands of one-request connections) is allocation-bound.
	httpFree  []*http.Parser
	stateFree []*flowState
	pe        pendingEvent   // the record being emitted
	pending   []pendingEvent // events waiting for their lookups, in order
	now       time.Time      // the latest packet or Tick time

	// tap, when set, sees every packet of a flow (PacketTap); tapClosed
	// holds the flows closed while a packet was processed, reported after
	// that packet so that a flow's last packet comes before its close.
	tap       PacketTap
	tapClosed []uint64
}

// Attributor finds the local process behind a flow (attribution.Resolver).
type Attributor interface {
	Begin(attribution.Request)
	// Peek answers without waiting; ready is false while the lookup runs.
	Peek(id uint64) (r *attribution.Result, ready bool)
	// Result waits up to wait for the answer (used at shutdown only).
	Result(id uint64, wait time.Duration) *attribution.Result
	Forget(id uint64)
}

// Deps are the sensor's collaborators. Sink is required.
type Deps struct {
	Sink events.Sink
	// Attributor, when set, is asked for every new flow's process.
	Attributor Attributor
	// PacketTap, when set, sees every packet that belongs to a flow
	// (sensor/output/evidence keeps them for findings). Unset costs nothing.
	PacketTap PacketTap
}

// PacketTap sees the packets of flows as the sensor reads them, on the
// sensor's goroutine: it must not block. fr and its Data are only valid
// during the call. Packets that open no flow (orphan TCP segments, non-IP
// frames, second copies of loopback packets) are not shown. FlowClosed
// comes once per flow, after its last packet; the id is never reused.
type PacketTap interface {
	Packet(flowID uint64, fr *capture.Frame)
	FlowClosed(flowID uint64)
}

// tapHandler reports flow closes to the tap, on top of the sensor's own
// handling; it is only used when a tap is set.
type tapHandler struct{ *handler }

func (h tapHandler) Closed(f *flows.Flow) {
	id := f.ID // f is reused once handed back
	h.handler.Closed(f)
	s := h.s()
	s.tapClosed = append(s.tapClosed, id)
}

// tapPacket runs the current packet through the table and shows it to the
// tap with its flow's id: the flow after the packet (a new or reused one),
// or the one before it when the packet closed it.
func (s *Sensor) tapPacket(fr *capture.Frame) {
	var id uint64
	if f := s.table.Lookup(&s.pkt); f != nil {
		id = f.ID
	}
	s.table.Packet(&s.pkt)
	if f := s.table.Lookup(&s.pkt); f != nil {
		id = f.ID
	}
	if id != 0 {
		s.tap.Packet(id, fr)
	}
	s.flushTapClosed()
}

func (s *Sensor) flushTapClosed() {
	for _, id := range s.tapClosed {
		s.tap.FlowClosed(id)
	}
	s.tapClosed = s.tapClosed[:0]
}

// New returns a sensor that writes events to sink, without process
// attribution (replay).
func New(cfg Config, sink events.Sink) *Sensor {
	return NewWithDeps(cfg, Deps{Sink: sink})
}

// NewWithDeps returns a sensor wired to its collaborators.
func NewWithDeps(cfg Config, d Deps) *Sensor {
	s := &Sensor{cfg: cfg, sink: d.Sink, attr: d.Attributor, dec: decode.NewDecoder(cfg.Decode), local: localNets(cfg.LocalNets)}
	if d.PacketTap != nil {
		s.tap = d.PacketTap
		s.table = flows.NewTable(cfg.Flows, tapHandler{(*handler)(s)})
	} else {
		s.table = flows.NewTable(cfg.Flows, (*handler)(s))
	}
	s.exp.init(cfg.maxExpected(), cfg.expectTTL())
	return s
}

// Frame processes one captured frame. It never panics: a panic inside the
// pipeline is recovered and counted, and the flow it happened in is no longer
// decoded (its packets are still counted).
func (s *Sensor) Frame(fr *capture.Frame) {
	s.C.Bytes += uint64(len(fr.Data))
	if fr.Timestamp.After(s.now) {
		s.now = fr.Timestamp
	}
	if len(s.pending) > 0 {
		s.drain(false, 0)
	}
	if s.dec.DecodeFrame(fr, &s.pkt) != decode.OK {
		return
	}
	// With pktap,all each loopback packet is captured twice (out, then in):
	// count it once.
	if s.pkt.Meta.Valid && s.dedup.Duplicate(&s.pkt) {
		s.C.LoopbackDuplicates++
		return
	}
	defer s.recoverFlow()
	if s.tap != nil {
		s.tapPacket(fr)
	} else {
		s.table.Packet(&s.pkt)
	}
	s.dnsPacket()
}

func (s *Sensor) recoverFlow() {
	if e := recover(); e != nil {
		s.C.Panics++
		if s.cur != nil {
			if st, ok := s.cur.App.(*flowState); ok {
				st.proto = protoOpaque
				st.stream = nil
			}
		}
	}
}

// Tick runs time-based work (idle timeouts) when no packet brought time
// forward: a live capture calls it with the wall clock while the network is
// quiet. Replay never needs it.
func (s *Sensor) Tick(now time.Time) {
	defer s.recoverFlow()
	if now.After(s.now) {
		s.now = now
	}
	s.table.Expire(now)
	if s.tap != nil {
		s.flushTapClosed()
	}
	if len(s.pending) > 0 {
		s.drain(false, 0)
	}
}

// Flush ends every open flow (end of capture or shutdown) and emits what
// they still hold.
func (s *Sensor) Flush() {
	defer s.recoverFlow()
	s.table.Flush()
	if s.tap != nil {
		s.flushTapClosed()
	}
	s.waitPending()
}

// Stats returns the counters.
func (s *Sensor) Stats() Stats {
	return Stats{Sensor: s.C, Decode: s.dec.C, FragsDropped: s.dec.FragmentsDropped, Flows: s.table.C}
}

// localNets classifies connections as outbound, inbound, internal or
// external (ECS network.direction) from the monitored host's networks.
type localNets []netip.Prefix

func (l localNets) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l localNets) direction(client, server netip.Addr) string {
	if len(l) == 0 || !client.IsValid() {
		return ""
	}
	c, s := l.contains(client), l.contains(server)
	switch {
	case c && s:
		return "internal"
	case c:
		return "outbound"
	case s:
		return "inbound"
	}
	return "external"
}
