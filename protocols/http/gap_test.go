// Capture gaps: counted as body where the body's extent is known, sync lost
// and regained elsewhere.

package http

import (
	"strings"
	"testing"
)

func TestGapInsideContentLengthBody(t *testing.T) {
	body := strings.Repeat("0123456789", 10) // 100 bytes
	evs := append([]event{
		cli("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + body[:30]),
		gapEv(toSrv, 40),
		cli(body[70:] + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
		srv("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 2)
	r := txs[0].Request
	check(t, "Gap", txs[0].Gap, true)
	check(t, "BodyBytes", r.BodyBytes, int64(100))
	check(t, "BodyComplete", r.BodyComplete, true)
	check(t, "BodyHashValid", r.BodyHashValid, false)
	check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyContentGap})
	check(t, "gap size", txs[0].Anomalies[0].Observed, int64(40))
	check(t, "End", r.End, at(2))
	check(t, "next Target", txs[1].Request.Target, "/next")
	check(t, "next Gap", txs[1].Gap, false)
	check(t, "next anomalies", anomalyNames(txs[1]), []string(nil))
	check(t, "next StatusCode", txs[1].Response.StatusCode, 200)
}

func TestGapPastContentLengthBodyLosesSync(t *testing.T) {
	evs := append([]event{
		cli("POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"),
		gapEv(toSrv, 20), // the rest of the body and part of a next request
		cli("t: h\r\n\r\nGET /after HTTP/1.1\r\n\r\n"),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 2)
	check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(10))
	check(t, "BodyComplete", txs[0].Request.BodyComplete, true)
	check(t, "BodyHashValid", txs[0].Request.BodyHashValid, false)
	check(t, "Target 2", txs[1].Request.Target, "/after")
	check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyResync})
}

func TestGapInHeadersResyncs(t *testing.T) {
	evs := append([]event{
		cli("GET /a HTTP/1.1\r\nHo"),
		gapEv(toSrv, 50),
		cli("st: x\r\nAccept: */*\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n"),
		srv("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 2)
	check(t, "Target", txs[0].Request.Target, "/a")
	check(t, "Gap", txs[0].Gap, true)
	check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
	check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyContentGap})
	check(t, "Target 2", txs[1].Request.Target, "/b")
	check(t, "Host 2", txs[1].Request.Host, "y")
	check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyResync})
	check(t, "skipped", txs[1].Anomalies[0].Observed, int64(len("st: x\r\nAccept: */*\r\n\r\n")))
}

func TestGapBetweenRequests(t *testing.T) {
	evs := append([]event{
		cli("GET /a HTTP/1.1\r\n\r\n"),
		gapEv(toSrv, 100),
		cli("GET /c HTTP/1.1\r\n\r\n"),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 2)
	check(t, "Gap 1", txs[0].Gap, false)
	check(t, "Target 2", txs[1].Request.Target, "/c")
	// The gap happened outside any transaction: the next one reports it.
	check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyContentGap})
}

func TestGapInsideChunk(t *testing.T) {
	t.Run("fits in the chunk", func(t *testing.T) {
		evs := append([]event{
			cli("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01"),
			gapEv(toSrv, 5),
			cli("789\r\n0\r\n\r\nGET /n HTTP/1.1\r\n\r\n"),
		}, closeBoth()...)
		txs := runSplits(t, Limits{}, evs)
		wantN(t, txs, 2)
		check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(10))
		check(t, "BodyComplete", txs[0].Request.BodyComplete, true)
		check(t, "BodyHashValid", txs[0].Request.BodyHashValid, false)
		check(t, "Target 2", txs[1].Request.Target, "/n")
		check(t, "anomalies 2", anomalyNames(txs[1]), []string(nil))
	})
	t.Run("runs past the chunk", func(t *testing.T) {
		evs := append([]event{
			cli("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01"),
			gapEv(toSrv, 50),
			cli("xx\r\nGET /n HTTP/1.1\r\n\r\n"),
		}, closeBoth()...)
		txs := runSplits(t, Limits{}, evs)
		wantN(t, txs, 2)
		check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(10))
		check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
		check(t, "Target 2", txs[1].Request.Target, "/n")
	})
}

func TestGapInCloseDelimitedResponse(t *testing.T) {
	evs := []event{
		cli("GET / HTTP/1.0\r\n\r\n"),
		srv("HTTP/1.0 200 OK\r\n\r\nabc"),
		gapEv(toCli, 1000),
		srv("def"),
		endEv(toCli),
		endEv(toSrv),
	}
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 1)
	check(t, "Gap", txs[0].Gap, true)
	check(t, "resp.BodyBytes", txs[0].Response.BodyBytes, int64(1006))
	check(t, "resp.BodyComplete", txs[0].Response.BodyComplete, true)
}

func TestGapInResponseHeadersResyncs(t *testing.T) {
	evs := append([]event{
		cli("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
		srv("HTTP/1.1 200 OK\r\nContent-Le"),
		gapEv(toCli, 30),
		srv("garbage\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 2)
	check(t, "Gap 1", txs[0].Gap, true)
	check(t, "StatusCode 1", txs[0].Response.StatusCode, 200)
	check(t, "resp.BodyComplete 1", txs[0].Response.BodyComplete, false)
	check(t, "StatusCode 2", txs[1].Response.StatusCode, 404)
	check(t, "anomalies 2", anomalyNames(txs[1]), []string{AnomalyResync})
}

func TestGapInMultipartPart(t *testing.T) {
	req := multipartRequest("XyZ",
		"Content-Disposition: form-data; name=\"a\"; filename=\"a.bin\"\r\n\r\n"+strings.Repeat("A", 50),
		"Content-Disposition: form-data; name=\"b\"\r\n\r\nBBB")
	i := strings.Index(req, strings.Repeat("A", 50))
	evs := append([]event{
		cli(req[:i+10]),
		gapEv(toSrv, 20),
		cli(req[i+30:]),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 1)
	parts := txs[0].Request.Multipart
	check(t, "parts", len(parts), 2)
	check(t, "part a", parts[0], Part{Name: "a", Filename: "a.bin", Bytes: 50})
	check(t, "part b", parts[1], Part{Name: "b", Bytes: 3, SHA256: sum("BBB"), HashValid: true})
	check(t, "BodyHashValid", txs[0].Request.BodyHashValid, false)
}

func TestGapInMultipartHeaders(t *testing.T) {
	req := multipartRequest("XyZ",
		"Content-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain\r\n\r\naaaa",
		"Content-Disposition: form-data; name=\"b\"\r\n\r\nBBB")
	i := strings.Index(req, "Content-Type: text/plain")
	evs := append([]event{
		cli(req[:i]),
		gapEv(toSrv, int64(len("Content-Type: text/plain"))),
		cli(req[i+len("Content-Type: text/plain"):]),
	}, closeBoth()...)
	txs := runSplits(t, Limits{}, evs)
	wantN(t, txs, 1)
	parts := txs[0].Request.Multipart
	check(t, "parts", len(parts), 2)
	// The first part's start was hit: it is recorded, without size or hash.
	check(t, "part a", parts[0], Part{Name: "a"})
	check(t, "part b", parts[1], Part{Name: "b", Bytes: 3, SHA256: sum("BBB"), HashValid: true})
	check(t, "BodyBytes", txs[0].Request.BodyBytes, txs[0].Request.ContentLength)
}

func TestGapAfterEndIgnored(t *testing.T) {
	p := New(Limits{}, func(*Transaction) { t.Fatal("nothing to emit") })
	p.End(toSrv, at(0))
	p.Gap(toSrv, 10, at(1))
	p.Feed(toSrv, []byte("GET / HTTP/1.1\r\n\r\n"), at(2))
	p.Gap(protocols2, 10, at(3))
	p.Feed(protocols2, []byte("x"), at(3))
	p.End(protocols2, at(3))
	checkInvariants(t, p)
}

// protocols2 is an invalid direction: the parser must ignore it.
const protocols2 = toCli + 1
