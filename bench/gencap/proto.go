package main

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Addressing: clients in 198.18.0.0/16 and 2001:2:0:1::/64, servers in
// 198.19.0.0/16 and 2001:2:0:2::/64 (benchmarking ranges, RFC 2544/5180).
const (
	clientIPs   = 4000
	clientPorts = 28232 // Linux ephemeral range 32768-60999
)

var (
	httpHosts = []string{"files.example.com", "backup.example.net", "api.example.org",
		"cdn.example.com", "sync.example.net", "upload.example.org"}
	userAgents = []string{"curl/7.88.1", "python-requests/2.31.0", "Go-http-client/1.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0", "rclone/v1.60.1"}
	namePrefix = []string{"backup", "dump", "export", "archive", "db", "logs", "report", "home"}
	nameExt    = []string{"tar.gz", "zip", "bin", "sql.gz", "7z", "img"}
	ftpUsers   = []string{"backup", "deploy", "alice", "bob", "svc-sync"}
)

func (g *gen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *gen) fileName() string {
	return fmt.Sprintf("%s-%06d.%s", g.pick(namePrefix), g.rng.IntN(1000000), g.pick(nameExt))
}

func (g *gen) httpDate() string { return time.Unix(0, g.now).UTC().Format(http.TimeFormat) }

// newFlow allocates a client address and port and a connection to server
// number srv (of a small pool) on port sport.
func (g *gen) newFlow(v6 bool, srv int, sport uint16) *flow {
	k := g.nextClient
	g.nextClient++
	idx := 1 + k%clientIPs
	f := &flow{v6: v6}
	if v6 {
		copy(f.ip[0][:], []byte{0x20, 0x01, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(idx >> 8), byte(idx)})
		copy(f.ip[1][:], []byte{0x20, 0x01, 0x00, 0x02, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, byte(srv)})
		f.mss = 1440 - tcpOptTS
		f.flowLabel = g.rng.Uint32() & 0xfffff
		g.st.IPv6Conns++
	} else {
		copy(f.ip[0][:4], []byte{198, 18, byte(idx >> 8), byte(idx)})
		copy(f.ip[1][:4], []byte{198, 19, byte(srv >> 8), byte(srv)})
		f.mss = 1460 - tcpOptTS
	}
	f.port[0] = uint16(32768 + (k/clientIPs)%clientPorts)
	f.port[1] = sport
	f.mac[0] = [6]byte{0x02, 0x00, 0xc6, 0x12, byte(idx >> 8), byte(idx)}
	f.mac[1] = gatewayMAC
	g.initFlow(f)
	return f
}

// dataFlow opens an FTP data connection from the control connection's client
// to the server's passive port.
func (g *gen) dataFlow(ctl *flow, n int, sport uint16) *flow {
	f := &flow{v6: ctl.v6, ip: ctl.ip, mac: ctl.mac, mss: ctl.mss, flowLabel: g.rng.Uint32() & 0xfffff}
	f.port[0] = uint16(32768 + (int(ctl.port[0])-32768+1+n)%clientPorts)
	f.port[1] = sport
	if f.v6 {
		g.st.IPv6Conns++
	}
	g.initFlow(f)
	return f
}

func (g *gen) initFlow(f *flow) {
	f.isn = [2]uint32{g.rng.Uint32(), g.rng.Uint32()}
	f.ipid = [2]uint16{uint16(g.rng.Uint32()), uint16(g.rng.Uint32())}
	f.tsoff = [2]uint32{g.rng.Uint32(), g.rng.Uint32()}
	f.win = [2]uint16{502, 509}
	g.st.TCPConns++
}

// finish gives every bulk message its own starting point in the blocks.
func (g *gen) finish(s *session) *session {
	for i := range s.acts {
		s.acts[i].m.boff = g.rng.IntN(blockSize)
	}
	return s
}

func (g *gen) httpServer() int { return 10 + g.rng.IntN(16) }

// upload: one POST of 1-50 MiB, plain, multipart/form-data or chunked, some
// with Expect: 100-continue.
func (g *gen) upload() *session {
	s := &session{}
	v6 := g.rng.Float64() < 0.15
	host := g.pick(httpHosts)
	f := g.newFlow(v6, g.httpServer(), 80)
	s.open(f)
	n := g.bulkSize()
	name := g.fileName()
	kind := g.rng.Float64()
	expect := kind < 0.8 && g.rng.Float64() < 0.2
	h := fmt.Appendf(nil, "POST /upload/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n",
		name, host, g.pick(userAgents))
	var body []piece
	switch {
	case kind < 0.5:
		h = fmt.Appendf(h, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", n)
		body = []piece{bulk(n)}
	case kind < 0.8:
		b := fmt.Sprintf("------------------------%016x", g.rng.Uint64())
		pre := fmt.Appendf(nil, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"+
			"Content-Type: application/octet-stream\r\n\r\n", b, name)
		post := fmt.Appendf(nil, "\r\n--%s--\r\n", b)
		h = fmt.Appendf(h, "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n",
			b, int64(len(pre))+n+int64(len(post)))
		body = []piece{lit(pre), bulk(n), lit(post)}
		g.st.HTTPMultipart++
	default:
		h = fmt.Appendf(h, "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n")
		body = []piece{chunked(n, []int{4096, 8192, 16384, 65536}[g.rng.IntN(4)])}
		g.st.HTTPChunkedReq++
	}
	if expect {
		h = append(h, "Expect: 100-continue\r\n\r\n"...)
		s.send(f, 0, lit(h))
		s.send(f, 1, litS("HTTP/1.1 100 Continue\r\n\r\n"))
		s.send(f, 0, body...)
		g.st.HTTPContinue++
	} else {
		h = append(h, "\r\n"...)
		s.send(f, 0, append([]piece{lit(h)}, body...)...)
	}
	js := fmt.Sprintf(`{"status":"stored","name":%q,"bytes":%d}`, name, n)
	closeConn := g.rng.IntN(2) == 0
	conn := "keep-alive"
	if closeConn {
		conn = "close"
	}
	s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 201 Created\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s",
		g.httpDate(), len(js), conn, js)))
	g.st.HTTPDownloadBytes += int64(len(js))
	if closeConn {
		s.close(f, 1)
	} else {
		s.close(f, 0)
	}
	g.st.SessUpload++
	g.st.HTTPRequests++
	g.st.HTTPPost++
	g.st.HTTPResponses++
	g.st.HTTPUploadBytes += n
	return g.finish(s)
}

// download: one GET answered with 1-50 MiB, some chunked.
func (g *gen) download() *session {
	s := &session{}
	v6 := g.rng.Float64() < 0.15
	f := g.newFlow(v6, g.httpServer(), 80)
	s.open(f)
	n := g.bulkSize()
	name := g.fileName()
	s.send(f, 0, lit(fmt.Appendf(nil, "GET /files/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n\r\n",
		name, g.pick(httpHosts), g.pick(userAgents))))
	h := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: %s\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Disposition: attachment; filename=\"%s\"\r\n", g.httpDate(), name)
	if g.rng.Float64() < 0.15 {
		h = append(h, "Transfer-Encoding: chunked\r\n\r\n"...)
		s.send(f, 1, lit(h), chunked(n, 16384))
	} else {
		h = fmt.Appendf(h, "Content-Length: %d\r\n\r\n", n)
		s.send(f, 1, lit(h), bulk(n))
	}
	s.close(f, 0)
	g.st.SessDownload++
	g.st.HTTPRequests++
	g.st.HTTPGet++
	g.st.HTTPResponses++
	g.st.HTTPDownloadBytes += n
	return g.finish(s)
}

// smallExchange appends one small GET or POST and its response.
// maxBody bounds the response and POST body sizes.
func (g *gen) smallExchange(s *session, f *flow, host, ua string, conn string, pGet float64, maxBody int) {
	g.st.HTTPRequests++
	g.st.HTTPResponses++
	if g.rng.Float64() < pGet {
		g.st.HTTPGet++
		s.send(f, 0, lit(fmt.Appendf(nil, "GET /api/v2/items/%d?page=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"+
			"Accept: */*\r\nCookie: session=%016x\r\nConnection: %s\r\n\r\n",
			g.rng.IntN(100000), g.rng.IntN(50), host, ua, g.rng.Uint64(), conn)))
		x := g.rng.Float64()
		switch {
		case x < 0.10:
			s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 304 Not Modified\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
				"ETag: \"%08x\"\r\nConnection: %s\r\n\r\n", g.httpDate(), g.rng.Uint32(), conn)))
		case x < 0.15:
			const nf = "not found\n"
			s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 404 Not Found\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
				"Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s", g.httpDate(), len(nf), conn, nf)))
			g.st.HTTPDownloadBytes += int64(len(nf))
		case x < 0.20:
			n := int64(100 + g.rng.IntN(maxBody))
			s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
				"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: %s\r\n\r\n", g.httpDate(), conn)),
				chunkedText(n, 1024))
			g.st.HTTPDownloadBytes += n
		default:
			n := int64(100 + g.rng.IntN(maxBody))
			s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
				"Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n", g.httpDate(), n, conn)),
				textBody(n))
			g.st.HTTPDownloadBytes += n
		}
		return
	}
	g.st.HTTPPost++
	n := int64(20 + g.rng.IntN(maxBody*2/3))
	s.send(f, 0, lit(fmt.Appendf(nil, "POST /api/v2/events HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"+
		"Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n", host, ua, n, conn)), textBody(n))
	g.st.HTTPUploadBytes += n
	if g.rng.Float64() < 0.3 {
		s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 204 No Content\r\nServer: nginx/1.24.0\r\nDate: %s\r\nConnection: %s\r\n\r\n",
			g.httpDate(), conn)))
		return
	}
	js := fmt.Sprintf(`{"ok":true,"id":%d}`, g.rng.IntN(1<<30))
	s.send(f, 1, lit(fmt.Appendf(nil, "HTTP/1.1 201 Created\r\nServer: nginx/1.24.0\r\nDate: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s", g.httpDate(), len(js), conn, js)))
	g.st.HTTPDownloadBytes += int64(len(js))
}

// keepAlive: 12-60 small requests on one persistent connection.
func (g *gen) keepAlive() *session {
	s := &session{}
	v6 := g.rng.Float64() < 0.15
	f := g.newFlow(v6, g.httpServer(), 80)
	s.open(f)
	host, ua := g.pick(httpHosts), g.pick(userAgents)
	nreq := 12 + g.rng.IntN(49)
	for i := 0; i < nreq; i++ {
		g.smallExchange(s, f, host, ua, "keep-alive", 0.65, 6000)
	}
	s.close(f, 0)
	g.st.SessKeep++
	return g.finish(s)
}

// shortHTTP: handshake, one small request with Connection: close, response,
// server closes.
func (g *gen) shortHTTP() *session {
	s := &session{}
	v6 := g.rng.Float64() < 0.10
	f := g.newFlow(v6, g.httpServer(), 80)
	s.open(f)
	g.smallExchange(s, f, g.pick(httpHosts), g.pick(userAgents), "close", 0.7, 2000)
	s.close(f, 1)
	g.st.SessShort++
	return g.finish(s)
}

// ftp: a vsftpd-like session with 1-3 passive-mode STOR/RETR transfers.
func (g *gen) ftp() *session {
	s := &session{}
	srv := 256 + 20 + g.rng.IntN(4) // 198.19.1.20-23
	f := g.newFlow(false, srv, 21)
	s.open(f)
	reply := func(line string) {
		s.send(f, 1, litS(line+"\r\n"))
		g.st.FTPReplies++
	}
	cmd := func(line string) {
		s.send(f, 0, litS(line+"\r\n"))
		g.st.FTPCommands++
	}
	reply("220 (vsFTPd 3.0.3)")
	cmd("USER " + g.pick(ftpUsers))
	reply("331 Please specify the password.")
	cmd(fmt.Sprintf("PASS s3cret-%04d", g.rng.IntN(10000)))
	reply("230 Login successful.")
	cmd("SYST")
	reply("215 UNIX Type: L8")
	cmd("TYPE I")
	reply("200 Switching to Binary mode.")
	k := 1 + g.rng.IntN(3)
	var inSession int64
	for i := 0; i < k; i++ {
		port := uint16(10000 + g.rng.IntN(20000))
		cmd("PASV")
		reply(fmt.Sprintf("227 Entering Passive Mode (198,19,%d,%d,%d,%d).", srv>>8, srv&255, port>>8, port&255))
		df := g.dataFlow(f, i, port)
		s.open(df)
		n := g.bulkSize()
		name := g.fileName()
		if g.rng.Float64() < 0.6 {
			cmd("STOR " + name)
			reply("150 Ok to send data.")
			s.send(df, 0, bulk(n))
			s.close(df, 0)
			g.st.FTPStor++
			g.st.FTPUploadBytes += n
		} else {
			cmd("RETR " + name)
			reply(fmt.Sprintf("150 Opening BINARY mode data connection for %s (%d bytes).", name, n))
			s.send(df, 1, bulk(n))
			s.close(df, 1)
			g.st.FTPRetr++
			g.st.FTPDownloadBytes += n
		}
		reply("226 Transfer complete.")
		g.st.FTPTransfers++
		g.planned += n // so the next transfer's size sees this one
		inSession += n
	}
	g.planned -= inSession // newSession adds the whole session's estimate
	cmd("QUIT")
	reply("221 Goodbye.")
	s.close(f, 1)
	g.st.SessFTP++
	return g.finish(s)
}

// dns writes one A query and its answer.
func (g *gen) dns() {
	k := g.rng.IntN(clientIPs) + 1
	f := &flow{}
	copy(f.ip[0][:4], []byte{198, 18, byte(k >> 8), byte(k)})
	copy(f.ip[1][:4], []byte{198, 19, 0, 53})
	f.port = [2]uint16{uint16(32768 + g.rng.IntN(clientPorts)), 53}
	f.mac[0] = [6]byte{0x02, 0x00, 0xc6, 0x12, byte(k >> 8), byte(k)}
	f.mac[1] = gatewayMAC
	f.ipid = [2]uint16{uint16(g.rng.Uint32()), uint16(g.rng.Uint32())}
	g.dnsID++
	q := make([]byte, 12, 128)
	binary.BigEndian.PutUint16(q[0:], g.dnsID)
	binary.BigEndian.PutUint16(q[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(q[4:], 1)
	for _, label := range []string{"host" + strconv.Itoa(g.rng.IntN(5000)), "corp", "example", "com"} {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0, 0, 1, 0, 1) // root, type A, class IN
	g.udp(f, 0, q)
	a := append([]byte(nil), q...)
	binary.BigEndian.PutUint16(a[2:], 0x8180) // QR RD RA
	binary.BigEndian.PutUint16(a[6:], 1)
	a = append(a, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 19, 2, byte(g.rng.IntN(256)))
	g.udp(f, 1, a)
	g.st.UDPPackets += 2
	g.st.DNSQueries++
}
