package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const (
	blockSize = 1 << 20
	blockPad  = 1 << 16

	// Share of data segments (never the first of a message) sent out of
	// order, and share retransmitted.
	pOutOfOrder = 0.0025
	pRetransmit = 0.0025
)

// Config selects what to generate.
type Config struct {
	Kind   string // "mixed" or "short"
	Size   int64  // mixed: target file size in bytes
	Conns  int    // short: number of connections
	Seed   uint64
	Active int // concurrent sessions (0: 64 for mixed, 300 for short)
	// Bulk transfer sizes (mixed). Zero means 1 MiB and min(50 MiB, Size/24).
	MinBulk, MaxBulk int64
}

// Stats is what was written; the counts are what a decoder should find.
type Stats struct {
	Kind      string  `json:"kind"`
	Seed      uint64  `json:"seed"`
	FileBytes int64   `json:"file_bytes"`
	Packets   int64   `json:"packets"`
	Seconds   float64 `json:"gen_seconds"`
	CaptureS  float64 `json:"capture_span_seconds"`

	TCPConns  int `json:"tcp_connections"`
	IPv6Conns int `json:"ipv6_tcp_connections"`

	SessUpload   int `json:"sessions_http_upload"`
	SessDownload int `json:"sessions_http_download"`
	SessKeep     int `json:"sessions_http_keepalive"`
	SessShort    int `json:"sessions_http_short"`
	SessFTP      int `json:"sessions_ftp"`

	HTTPRequests      int   `json:"http_requests"`
	HTTPGet           int   `json:"http_get"`
	HTTPPost          int   `json:"http_post"`
	HTTPResponses     int   `json:"http_responses"` // final responses (not 100 Continue)
	HTTPContinue      int   `json:"http_100_continue"`
	HTTPChunkedReq    int   `json:"http_chunked_requests"`
	HTTPMultipart     int   `json:"http_multipart_uploads"`
	HTTPUploadBytes   int64 `json:"http_upload_body_bytes"`   // decoded request bodies (multipart: the file part)
	HTTPDownloadBytes int64 `json:"http_download_body_bytes"` // decoded response bodies

	FTPCommands      int   `json:"ftp_commands"`
	FTPReplies       int   `json:"ftp_replies"`
	FTPTransfers     int   `json:"ftp_transfers"`
	FTPStor          int   `json:"ftp_stor"`
	FTPRetr          int   `json:"ftp_retr"`
	FTPUploadBytes   int64 `json:"ftp_upload_bytes"`
	FTPDownloadBytes int64 `json:"ftp_download_bytes"`

	UDPPackets int `json:"udp_packets"`
	DNSQueries int `json:"dns_queries"`

	OutOfOrder  int `json:"out_of_order_segments"`
	Retransmits int `json:"retransmitted_segments"`

	// What `tshark -o tcp.reassemble_out_of_order:TRUE -Y 'http.request or
	// ftp.request==1'` should print: one line per HTTP request or FTP command.
	// (Plain `ftp.request` matches FTP replies too.)
	ExpectedRequestFrames int `json:"expected_request_frames"`
}

type gen struct {
	cfg   Config
	rng   *rand.Rand
	w     *pcapgo.Writer
	err   error
	now   int64 // capture clock, ns since the epoch
	start int64
	st    Stats

	pkt   []byte // packet being built
	seg   []byte // payload of the segment being built
	hold  []byte // payload held back (out-of-order / retransmission)
	block []byte // pseudorandom bulk bytes (blockSize+blockPad)
	text  []byte // printable bytes for small bodies

	nextClient int    // client address/port allocator
	planned    int64  // estimated file bytes of the sessions started
	started    int    // sessions started
	nextDNS    int64  // packet count at which to emit the next DNS exchange
	dnsID      uint16 // DNS transaction id
}

// Generate writes a classic pcap (Ethernet) to out.
func Generate(out io.Writer, cfg Config) (Stats, error) {
	t0 := time.Now()
	if cfg.MaxBulk == 0 {
		// 50 MiB for the full-size file; smaller files (quick runs) scale
		// the largest transfer down so they still hold a mix of sessions.
		cfg.MaxBulk = min(max(cfg.Size/24, 2<<20), 50<<20)
	}
	if cfg.MinBulk == 0 {
		cfg.MinBulk = min(1<<20, cfg.MaxBulk/4)
	}
	if cfg.Active == 0 {
		cfg.Active = 64
		if cfg.Kind == "short" {
			cfg.Active = 300
		}
	}
	switch cfg.Kind {
	case "mixed", "short":
	default:
		return Stats{}, fmt.Errorf("unknown kind %q (want mixed or short)", cfg.Kind)
	}
	bw := bufio.NewWriterSize(out, 8<<20)
	g := &gen{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		w:     pcapgo.NewWriter(bw),
		now:   time.Date(2024, 3, 4, 9, 30, 0, 0, time.UTC).UnixNano(),
		pkt:   make([]byte, 65536),
		seg:   make([]byte, 65536),
		hold:  make([]byte, 65536),
		block: make([]byte, blockSize+blockPad),
		text:  make([]byte, blockSize+blockPad),
	}
	g.start = g.now
	g.st.Kind, g.st.Seed = cfg.Kind, cfg.Seed
	for i := 0; i+8 <= blockSize; i += 8 {
		v := g.rng.Uint64()
		for j := 0; j < 8; j++ {
			g.block[i+j] = byte(v >> (8 * j))
		}
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:;-_=+/\n"
	for i := 0; i < blockSize; i++ {
		g.text[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	copy(g.block[blockSize:], g.block)
	copy(g.text[blockSize:], g.text)
	g.nextDNS = 200

	if err := g.w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return g.st, err
	}
	g.st.FileBytes = 24
	g.run()
	if g.err != nil {
		return g.st, g.err
	}
	if err := bw.Flush(); err != nil {
		return g.st, err
	}
	g.st.Seconds = time.Since(t0).Seconds()
	g.st.CaptureS = float64(g.now-g.start) / 1e9
	g.st.ExpectedRequestFrames = g.st.HTTPRequests + g.st.FTPCommands
	return g.st, nil
}

// moreSessions reports whether another session should be started.
func (g *gen) moreSessions() bool {
	if g.cfg.Kind == "short" {
		return g.started < g.cfg.Conns
	}
	return g.planned < g.cfg.Size
}

func (g *gen) newSession() *session {
	g.started++
	var s *session
	if g.cfg.Kind == "short" {
		s = g.shortHTTP()
	} else {
		x := g.rng.Float64()
		if g.started <= 4 {
			// Every mixed file, however small, starts with one session
			// of each kind.
			x = []float64{0.5, 0.90, 0.95, 0.99}[g.started-1]
		}
		switch {
		case x < 0.88:
			s = g.keepAlive()
		case x < 0.925:
			s = g.upload()
		case x < 0.96:
			s = g.download()
		default:
			s = g.ftp()
		}
	}
	g.planned += s.estimate()
	return s
}

// run interleaves cfg.Active sessions round-robin until the budget is spent
// and every session has finished.
func (g *gen) run() {
	active := make([]*session, 0, g.cfg.Active)
	ramp := max(1, g.cfg.Active/16) // sessions opened per pass while ramping up
	for g.err == nil {
		for n := 0; n < ramp && len(active) < g.cfg.Active && g.moreSessions(); n++ {
			active = append(active, g.newSession())
		}
		if len(active) == 0 {
			return
		}
		for i := 0; i < len(active); {
			if !g.step(active[i]) {
				i++
				continue
			}
			if g.moreSessions() {
				active[i] = g.newSession()
				i++
			} else {
				active[i] = active[len(active)-1]
				active = active[:len(active)-1]
			}
		}
		if g.cfg.Kind == "mixed" && g.st.Packets >= g.nextDNS {
			g.dns()
			g.nextDNS = g.st.Packets + 500 + int64(g.rng.IntN(3000))
		}
	}
}

// logUniform draws a size between lo and hi, uniform in log scale.
func (g *gen) logUniform(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	l, h := math.Log(float64(lo)), math.Log(float64(hi))
	return int64(math.Exp(l + g.rng.Float64()*(h-l)))
}

// bulkSize draws a bulk transfer size, trimmed to what is left of the size
// budget so the file ends near the target.
func (g *gen) bulkSize() int64 {
	n := g.logUniform(g.cfg.MinBulk, g.cfg.MaxBulk)
	if g.cfg.Kind == "mixed" {
		left := (g.cfg.Size - g.planned) * 100 / 110
		n = max(min(n, left), 64<<10)
	}
	return n
}
