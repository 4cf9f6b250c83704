package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// side is one direction of a connection as seen in the capture.
type side struct {
	isn      uint32
	sent     int64 // highest relative sequence end sent so far
	fin      bool
	finRel   int64
	lastAck  int64
	acks     bool
	data     []byte           // reassembled in-order bytes
	pending  map[int64][]byte // segments received ahead of a hole
	segments int
}

type conn struct {
	ip     [2]net.IP
	port   [2]uint16
	v6     bool
	side   [2]*side
	synAck bool
	order  int
}

// accept adds a data segment at relative offset off.
func (s *side) accept(t *testing.T, c *conn, off int64, p []byte) {
	next := int64(len(s.data))
	switch {
	case off < next:
		end := min(off+int64(len(p)), next)
		if !bytes.Equal(s.data[off:end], p[:end-off]) {
			t.Fatalf("%v: retransmitted bytes at %d differ from the original", c, off)
		}
		if off+int64(len(p)) > next {
			s.accept(t, c, next, p[next-off:])
		}
	case off > next:
		s.pending[off] = append([]byte(nil), p...)
	default:
		s.data = append(s.data, p...)
		for {
			q, ok := s.pending[int64(len(s.data))]
			if !ok {
				break
			}
			delete(s.pending, int64(len(s.data)))
			s.data = append(s.data, q...)
		}
	}
}

func (c *conn) String() string {
	return fmt.Sprintf("%s:%d->%s:%d", c.ip[0], c.port[0], c.ip[1], c.port[1])
}

var (
	benchV4 = &net.IPNet{IP: net.IPv4(198, 18, 0, 0), Mask: net.CIDRMask(15, 32)}
	benchV6 = &net.IPNet{IP: net.ParseIP("2001:2::"), Mask: net.CIDRMask(48, 128)}
)

// readBack decodes a capture packet by packet, checking headers, checksums
// and per-flow sequence/ack consistency, and returns the reassembled
// connections in order of their SYN, plus the number of UDP packets.
func readBack(t *testing.T, file []byte, st Stats, wantOpen int) ([]*conn, int) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &payload)
	parser.IgnoreUnsupported = true // DNS payloads
	decoded := make([]gopacket.LayerType, 0, 8)
	conns := map[string]*conn{}
	var order []*conn
	open, maxOpen := 0, 0
	var last time.Time
	npkt, nudp := 0, 0
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		npkt++
		if ci.Timestamp.Before(last) {
			t.Fatalf("packet %d: timestamp goes back", npkt)
		}
		last = ci.Timestamp
		if err := parser.DecodeLayers(data, &decoded); err != nil || len(decoded) < 3 {
			t.Fatalf("packet %d: %v (decoded %v)", npkt, err, decoded)
		}
		var nl gopacket.NetworkLayer
		var src, dst net.IP
		var l3len int
		switch decoded[1] {
		case layers.LayerTypeIPv4:
			nl, src, dst = &ip4, ip4.SrcIP, ip4.DstIP
			if gopacket.FoldChecksum(gopacket.ComputeChecksum(ip4.Contents, 0)) != 0 {
				t.Fatalf("packet %d: bad IPv4 header checksum", npkt)
			}
			l3len = int(ip4.Length)
			if !benchV4.Contains(src) || !benchV4.Contains(dst) {
				t.Fatalf("packet %d: address outside 198.18.0.0/15: %v %v", npkt, src, dst)
			}
		case layers.LayerTypeIPv6:
			nl, src, dst = &ip6, ip6.SrcIP, ip6.DstIP
			l3len = 40 + int(ip6.Length)
			if !benchV6.Contains(src) || !benchV6.Contains(dst) {
				t.Fatalf("packet %d: address outside 2001:2::/48: %v %v", npkt, src, dst)
			}
		default:
			t.Fatalf("packet %d: layers %v", npkt, decoded)
		}
		if l3len != len(data)-14 {
			t.Fatalf("packet %d: IP length %d, frame carries %d", npkt, l3len, len(data)-14)
		}
		if decoded[2] == layers.LayerTypeUDP {
			udp.SetNetworkLayerForChecksum(nl)
			if err, res := udp.VerifyChecksum(); err != nil || !res.Valid {
				t.Fatalf("packet %d: bad UDP checksum (%v)", npkt, err)
			}
			nudp++
			continue
		}
		if decoded[2] != layers.LayerTypeTCP {
			t.Fatalf("packet %d: layers %v", npkt, decoded)
		}
		tcp.SetNetworkLayerForChecksum(nl)
		if err, res := tcp.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("packet %d: bad TCP checksum (%v)", npkt, err)
		}

		key := fmt.Sprintf("%s:%d>%s:%d", src, tcp.SrcPort, dst, tcp.DstPort)
		rkey := fmt.Sprintf("%s:%d>%s:%d", dst, tcp.DstPort, src, tcp.SrcPort)
		c, dir := conns[key], 0
		if c == nil {
			c, dir = conns[rkey], 1
		}
		if tcp.SYN && !tcp.ACK {
			if c != nil {
				t.Fatalf("packet %d: SYN on a known flow %v", npkt, c)
			}
			c = &conn{ip: [2]net.IP{src, dst}, port: [2]uint16{uint16(tcp.SrcPort), uint16(tcp.DstPort)},
				v6: decoded[1] == layers.LayerTypeIPv6, order: len(order)}
			c.side[0] = &side{isn: tcp.Seq, pending: map[int64][]byte{}}
			c.side[1] = &side{pending: map[int64][]byte{}}
			conns[key] = c
			order = append(order, c)
			open++
			maxOpen = max(maxOpen, open)
			continue
		}
		if c == nil {
			t.Fatalf("packet %d: segment of an unknown flow %s", npkt, key)
		}
		me, peer := c.side[dir], c.side[1-dir]
		if tcp.SYN {
			if dir != 1 || c.synAck || tcp.Ack != c.side[0].isn+1 {
				t.Fatalf("packet %d: bad SYN/ACK on %v", npkt, c)
			}
			c.synAck = true
			me.isn = tcp.Seq
			continue
		}
		if !c.synAck || !tcp.ACK {
			t.Fatalf("packet %d: segment before the handshake or without ACK on %v", npkt, c)
		}
		// ACKs never acknowledge more than the peer sent and never go back.
		ack := int64(tcp.Ack - peer.isn - 1)
		limit := peer.sent
		if peer.fin {
			limit++
		}
		if ack > limit || (me.acks && ack < me.lastAck) {
			t.Fatalf("packet %d: ack %d on %v (peer sent %d, last ack %d)", npkt, ack, c, limit, me.lastAck)
		}
		me.lastAck, me.acks = ack, true

		off := int64(tcp.Seq - me.isn - 1)
		n := int64(len(tcp.Payload))
		mss := int64(1448)
		if c.v6 {
			mss = 1428
		}
		if n > mss {
			t.Fatalf("packet %d: %d-byte segment exceeds MSS on %v", npkt, n, c)
		}
		if off < 0 || off > me.sent+mss {
			t.Fatalf("packet %d: seq offset %d far from %d sent on %v", npkt, off, me.sent, c)
		}
		if me.fin && (n > 0 || tcp.FIN && off != me.finRel) {
			t.Fatalf("packet %d: data after FIN on %v", npkt, c)
		}
		if n > 0 {
			me.accept(t, c, off, tcp.Payload)
			me.sent = max(me.sent, off+n)
			me.segments++
		}
		if tcp.FIN && !me.fin {
			me.fin, me.finRel = true, off+n
			if c.side[0].fin && c.side[1].fin {
				open--
			}
		}
	}
	if int64(npkt) != st.Packets {
		t.Fatalf("read %d packets, generator wrote %d", npkt, st.Packets)
	}
	for _, c := range order {
		for d, s := range c.side {
			if !s.fin || len(s.pending) > 0 || s.finRel != int64(len(s.data)) {
				t.Fatalf("%v side %d: fin=%v at %d, %d bytes in order, %d segments pending",
					c, d, s.fin, s.finRel, len(s.data), len(s.pending))
			}
		}
	}
	if maxOpen < wantOpen {
		t.Fatalf("at most %d connections open at once, want >= %d (interleaving)", maxOpen, wantOpen)
	}
	return order, nudp
}

var pasv = regexp.MustCompile(`^227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)\.`)

// decodeApp parses the reassembled HTTP and FTP streams and returns the
// counts to compare with the generator's Stats.
func decodeApp(t *testing.T, conns []*conn) Stats {
	t.Helper()
	var got Stats
	dataDir := map[string]string{} // "serverip:port" -> STOR/RETR
	for _, c := range conns {
		got.TCPConns++
		if c.v6 {
			got.IPv6Conns++
		}
		cli, srv := c.side[0].data, c.side[1].data
		switch {
		case c.port[1] == 80:
			br := bufio.NewReader(bytes.NewReader(cli))
			bw := bufio.NewReader(bytes.NewReader(srv))
			for {
				req, err := http.ReadRequest(br)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%v: request %d: %v", c, got.HTTPRequests, err)
				}
				got.HTTPRequests++
				switch req.Method {
				case "GET":
					got.HTTPGet++
				case "POST":
					got.HTTPPost++
				}
				if len(req.TransferEncoding) > 0 {
					got.HTTPChunkedReq++
				}
				mt, params, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
				if mt == "multipart/form-data" {
					got.HTTPMultipart++
					mr := multipart.NewReader(req.Body, params["boundary"])
					for {
						p, err := mr.NextPart()
						if errors.Is(err, io.EOF) {
							break
						}
						if err != nil {
							t.Fatalf("%v: multipart: %v", c, err)
						}
						if p.FileName() == "" {
							t.Fatalf("%v: multipart part without filename", c)
						}
						n, err := io.Copy(io.Discard, p)
						if err != nil {
							t.Fatal(err)
						}
						got.HTTPUploadBytes += n
					}
				} else {
					n, err := io.Copy(io.Discard, req.Body)
					if err != nil {
						t.Fatalf("%v: request body: %v", c, err)
					}
					got.HTTPUploadBytes += n
				}
				for {
					resp, err := http.ReadResponse(bw, req)
					if err != nil {
						t.Fatalf("%v: response: %v", c, err)
					}
					if resp.StatusCode == http.StatusContinue {
						got.HTTPContinue++
						continue
					}
					got.HTTPResponses++
					n, err := io.Copy(io.Discard, resp.Body)
					if err != nil {
						t.Fatalf("%v: response body: %v", c, err)
					}
					got.HTTPDownloadBytes += n
					break
				}
			}
			if _, err := bw.Peek(1); err != io.EOF {
				t.Fatalf("%v: bytes left after the last response", c)
			}
		case c.port[1] == 21:
			if !bytes.HasPrefix(srv, []byte("220 ")) {
				t.Fatalf("%v: no FTP banner", c)
			}
			cmds := strings.Split(strings.TrimSuffix(string(cli), "\r\n"), "\r\n")
			replies := strings.Split(strings.TrimSuffix(string(srv), "\r\n"), "\r\n")
			got.FTPCommands += len(cmds)
			got.FTPReplies += len(replies)
			var ports []string
			for _, l := range replies {
				if m := pasv.FindStringSubmatch(l); m != nil {
					p1, _ := strconv.Atoi(m[5])
					p2, _ := strconv.Atoi(m[6])
					ports = append(ports, fmt.Sprintf("%s.%s.%s.%s:%d", m[1], m[2], m[3], m[4], p1*256+p2))
				}
			}
			i := 0
			for _, l := range cmds {
				if v, _, _ := strings.Cut(l, " "); v == "STOR" || v == "RETR" {
					dataDir[ports[i]] = v
					i++
				}
			}
			if i != len(ports) {
				t.Fatalf("%v: %d PASV replies, %d transfers", c, len(ports), i)
			}
		}
	}
	for _, c := range conns {
		if c.port[1] == 80 || c.port[1] == 21 {
			continue
		}
		switch dataDir[fmt.Sprintf("%s:%d", c.ip[1], c.port[1])] {
		case "STOR":
			got.FTPStor++
			got.FTPUploadBytes += int64(len(c.side[0].data))
		case "RETR":
			got.FTPRetr++
			got.FTPDownloadBytes += int64(len(c.side[1].data))
		default:
			t.Fatalf("%v: connection to neither HTTP, FTP nor an announced data port", c)
		}
		got.FTPTransfers++
	}
	return got
}

func TestGenerateReadBack(t *testing.T) {
	for _, tc := range []struct {
		cfg      Config
		wantOpen int // connections open at once at some point
	}{
		{Config{Kind: "mixed", Size: 16 << 20, Seed: 7}, 20},
		{Config{Kind: "mixed", Size: 4 << 20, Seed: 8, Active: 8}, 3},
		{Config{Kind: "short", Conns: 3000, Seed: 3}, 200},
	} {
		cfg := tc.cfg
		t.Run(fmt.Sprintf("%s-%d", cfg.Kind, cfg.Seed), func(t *testing.T) {
			var buf bytes.Buffer
			st, err := Generate(&buf, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if int64(buf.Len()) != st.FileBytes {
				t.Fatalf("file has %d bytes, stats say %d", buf.Len(), st.FileBytes)
			}
			if cfg.Kind == "mixed" && (st.FileBytes < cfg.Size*9/10 || st.FileBytes > cfg.Size*12/10) {
				t.Errorf("file size %d, target %d", st.FileBytes, cfg.Size)
			}
			conns, nudp := readBack(t, buf.Bytes(), st, tc.wantOpen)
			got := decodeApp(t, conns)
			type pair struct {
				name      string
				got, want int64
			}
			for _, p := range []pair{
				{"tcp connections", int64(got.TCPConns), int64(st.TCPConns)},
				{"ipv6 connections", int64(got.IPv6Conns), int64(st.IPv6Conns)},
				{"http requests", int64(got.HTTPRequests), int64(st.HTTPRequests)},
				{"GET", int64(got.HTTPGet), int64(st.HTTPGet)},
				{"POST", int64(got.HTTPPost), int64(st.HTTPPost)},
				{"http responses", int64(got.HTTPResponses), int64(st.HTTPResponses)},
				{"100 continue", int64(got.HTTPContinue), int64(st.HTTPContinue)},
				{"chunked requests", int64(got.HTTPChunkedReq), int64(st.HTTPChunkedReq)},
				{"multipart uploads", int64(got.HTTPMultipart), int64(st.HTTPMultipart)},
				{"http upload bytes", got.HTTPUploadBytes, st.HTTPUploadBytes},
				{"http download bytes", got.HTTPDownloadBytes, st.HTTPDownloadBytes},
				{"ftp commands", int64(got.FTPCommands), int64(st.FTPCommands)},
				{"ftp replies", int64(got.FTPReplies), int64(st.FTPReplies)},
				{"ftp transfers", int64(got.FTPTransfers), int64(st.FTPTransfers)},
				{"ftp stor", int64(got.FTPStor), int64(st.FTPStor)},
				{"ftp retr", int64(got.FTPRetr), int64(st.FTPRetr)},
				{"ftp upload bytes", got.FTPUploadBytes, st.FTPUploadBytes},
				{"ftp download bytes", got.FTPDownloadBytes, st.FTPDownloadBytes},
				{"udp packets", int64(nudp), int64(st.UDPPackets)},
			} {
				if p.got != p.want {
					t.Errorf("%s: decoded %d, generator says %d", p.name, p.got, p.want)
				}
			}
			if cfg.Kind == "mixed" && cfg.Size >= 16<<20 {
				if st.SessUpload == 0 || st.SessDownload == 0 || st.SessKeep == 0 || st.SessFTP == 0 ||
					st.UDPPackets == 0 || st.IPv6Conns == 0 || st.OutOfOrder == 0 || st.Retransmits == 0 {
					t.Errorf("mixed capture lacks a kind of traffic: %+v", st)
				}
			}
			t.Logf("%d bytes, %d packets, %d connections, %d HTTP requests, %d FTP transfers, %d out-of-order, %d retransmitted",
				st.FileBytes, st.Packets, st.TCPConns, st.HTTPRequests, st.FTPTransfers, st.OutOfOrder, st.Retransmits)
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	sum := func() [32]byte {
		var buf bytes.Buffer
		if _, err := Generate(&buf, Config{Kind: "mixed", Size: 3 << 20, Seed: 42}); err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(buf.Bytes())
	}
	if sum() != sum() {
		t.Fatal("same seed, different files")
	}
}

func TestChecksum(t *testing.T) {
	// Compare the 32-bit-word accumulator with a byte-pair RFC 1071 sum on
	// all lengths and alignments.
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for i := 0; i < 5; i++ {
		for j := i; j <= len(b); j++ {
			var ref uint32
			p := b[i:j]
			for k := 0; k+1 < len(p); k += 2 {
				ref += uint32(p[k])<<8 | uint32(p[k+1])
			}
			if len(p)%2 == 1 {
				ref += uint32(p[len(p)-1]) << 8
			}
			if got, want := csumFold(csumAdd(0, p)), gopacket.FoldChecksum(ref); got != want {
				t.Fatalf("b[%d:%d]: %#04x, want %#04x", i, j, got, want)
			}
		}
	}
}

func TestChunkedWireLen(t *testing.T) {
	g := &gen{block: make([]byte, blockSize+blockPad), text: make([]byte, blockSize+blockPad)}
	for _, n := range []int64{0, 1, 4095, 4096, 4097, 100000} {
		m := msg{p: []piece{chunked(n, 4096)}}
		var out []byte
		buf := make([]byte, 1448)
		for !m.done() {
			k := m.fill(g, buf)
			out = append(out, buf[:k]...)
		}
		if int64(len(out)) != m.wireLen() {
			t.Fatalf("n=%d: %d bytes produced, wireLen %d", n, len(out), m.wireLen())
		}
	}
}
