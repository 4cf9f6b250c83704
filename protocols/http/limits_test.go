// Paired limit tests: abuse gives the named anomaly and the parser goes on;
// the legal extreme right at the limit passes without one.

package http

import (
	"strconv"
	"strings"
	"testing"
)

// requestWithHeaderBlock returns a GET whose header block (request line,
// fields, blank line) is exactly n bytes.
func requestWithHeaderBlock(n int) string {
	start, field, end := "GET / HTTP/1.1\r\n", "X-Pad: \r\n", "\r\n"
	return start + "X-Pad: " + strings.Repeat("p", n-len(start)-len(field)-len(end)) + "\r\n" + end
}

func TestLimitDefaults(t *testing.T) {
	got := Limits{}.resolved()
	want := Limits{
		MaxLineBytes: 8192, MaxHeaderBytes: 65536, MaxHeaders: 100, MaxChunkLineBytes: 4096,
		MaxPending: 32, MaxMultipartParts: 100, MaxMultipartHeaderBytes: 4096, MaxChunkSize: 1 << 40,
		MaxAnomalies: 32, MaxInformational: 8,
	}
	check(t, "resolved zero Limits", got, want)
	check(t, "negative means default", Limits{MaxLineBytes: -1}.maxLineBytes(), DefaultMaxLineBytes)
	check(t, "explicit value", Limits{MaxPending: 3}.maxPending(), 3)
}

func TestLimitLineBytes(t *testing.T) {
	lim := Limits{MaxLineBytes: 64}
	field := func(n int) string { return "X-A: " + strings.Repeat("a", n-len("X-A: ")) + "\r\n" }

	t.Run("header line at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli("GET / HTTP/1.1\r\n" + field(64) + "Host: h\r\n\r\n")}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "Host", txs[0].Request.Host, "h")
	})
	t.Run("header line over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli("GET / HTTP/1.1\r\n" + field(65) + "Host: h\r\n\r\n")}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyLineTooLong})
		check(t, "Limit", txs[0].Anomalies[0].Limit, int64(64))
		check(t, "Host", txs[0].Request.Host, "h")
	})
	t.Run("request line at the limit", func(t *testing.T) {
		line := "GET /" + strings.Repeat("x", 64-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n\r\n"
		txs := runSplits(t, lim, append([]event{cli("GET /a HTTP/1.1\r\n\r\n" + line)}, closeBoth()...))
		wantN(t, txs, 2)
		noAnomalies(t, txs)
	})
	t.Run("request line over the limit", func(t *testing.T) {
		line := "GET /" + strings.Repeat("x", 65-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n\r\n"
		txs := runSplits(t, lim, append([]event{cli("GET /a HTTP/1.1\r\n\r\n" + line + "GET /b HTTP/1.1\r\n\r\n")}, closeBoth()...))
		wantN(t, txs, 2)
		check(t, "Target", txs[1].Request.Target, "/b")
		check(t, "anomalies", anomalyNames(txs[1]), []string{AnomalyLineTooLong, AnomalyResync})
	})
	t.Run("a line that never ends stays bounded", func(t *testing.T) {
		evs := []event{cli("GET /a HTTP/1.1\r\nX-Long: ")}
		for i := 0; i < 100; i++ {
			evs = append(evs, cli(strings.Repeat("z", 1000)))
		}
		evs = append(evs, cli("\r\n\r\n"))
		// Too big for every split offset; byte by byte is the hard case.
		txs := run(t, lim, append(evs, closeBoth()...), whole)
		if got := run(t, lim, append(evs, closeBoth()...), byteByByte); !same(got, txs) {
			t.Fatalf("byte by byte differs:\n%s", diff(got, txs))
		}
		wantN(t, txs, 1)
		// 100 KB of one line: over the line limit and the 64 KiB block too.
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyHeaderBytesLimit, AnomalyLineTooLong})
	})
}

func TestLimitHeaderBytes(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 200}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(requestWithHeaderBlock(200))}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "HeaderBytes", txs[0].Request.HeaderBytes, int64(200))
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(requestWithHeaderBlock(201))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyHeaderBytesLimit})
		check(t, "Observed", txs[0].Anomalies[0].Observed, int64(201))
		check(t, "Limit", txs[0].Anomalies[0].Limit, int64(200))
	})
	t.Run("framing fields still count past the limit", func(t *testing.T) {
		req := "POST /x HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 300) + "\r\nHost: late\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\n\r\n"
		txs := runSplits(t, lim, append([]event{cli(req)}, closeBoth()...))
		wantN(t, txs, 2)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyHeaderBytesLimit})
		check(t, "Host not kept", txs[0].Request.Host, "")
		check(t, "BodySHA256", txs[0].Request.BodySHA256, sum("abc"))
		check(t, "Target 2", txs[1].Request.Target, "/y")
	})
}

func TestLimitHeaderCount(t *testing.T) {
	lim := Limits{MaxHeaders: 5}
	req := func(n int) string {
		var b strings.Builder
		b.WriteString("POST / HTTP/1.1\r\n")
		for i := 0; i < n; i++ {
			b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
		b.WriteString("Content-Length: 2\r\nUser-Agent: ua\r\n\r\nhi")
		return b.String()
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(3))}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "UserAgent", txs[0].Request.UserAgent, "ua")
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(4))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyHeaderCountLimit})
		check(t, "Observed", txs[0].Anomalies[0].Observed, int64(6))
		check(t, "UserAgent dropped", txs[0].Request.UserAgent, "")
		check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(2))
	})
}

func TestLimitChunkLine(t *testing.T) {
	lim := Limits{MaxChunkLineBytes: 16}
	req := func(lineLen int) string {
		size := "3;e=" + strings.Repeat("x", lineLen-len("3;e="))
		return "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nabc\r\n0\r\n\r\n"
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(16))}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(3))
		check(t, "BodyComplete", txs[0].Request.BodyComplete, true)
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(17))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyChunkLineTooLong})
		check(t, "BodyComplete", txs[0].Request.BodyComplete, false)
	})
}

func TestLimitChunkSize(t *testing.T) {
	lim := Limits{MaxChunkSize: 16}
	t.Run("at the limit", func(t *testing.T) {
		body := strings.Repeat("b", 16)
		txs := runSplits(t, lim, append([]event{cli("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + body + "\r\n0\r\n\r\n")}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "BodySHA256", txs[0].Request.BodySHA256, sum(body))
	})
	t.Run("over the limit", func(t *testing.T) {
		body := strings.Repeat("b", 17)
		txs := runSplits(t, lim, append([]event{cli("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n" + body + "\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n")}, closeBoth()...))
		wantN(t, txs, 2)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyChunkSizeLimit})
		check(t, "Observed", txs[0].Anomalies[0].Observed, int64(17))
		check(t, "Target 2", txs[1].Request.Target, "/next")
	})
	t.Run("sizes beyond int64 are bad", func(t *testing.T) {
		txs := runSplits(t, Limits{}, append([]event{cli("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n")}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadChunkSize})
	})
}

func TestLimitPending(t *testing.T) {
	lim := Limits{MaxPending: 2}
	reqs := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString("GET /" + strconv.Itoa(i) + " HTTP/1.1\r\n\r\n")
		}
		return b.String()
	}
	resps := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + strconv.Itoa(i))
		}
		return b.String()
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(reqs(2)), srv(resps(2))}, closeBoth()...))
		wantN(t, txs, 2)
		noAnomalies(t, txs)
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(reqs(3)), srv(resps(3))}, closeBoth()...))
		wantN(t, txs, 3)
		check(t, "evicted", txs[0].Request.Target, "/1")
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyTooManyPending})
		check(t, "no response", txs[0].Response == nil, true)
		// The response to /1 is parsed but skipped, so /2 and /3 still
		// get their own.
		for i, target := range []string{"/2", "/3"} {
			check(t, "Target", txs[i+1].Request.Target, target)
			check(t, "anomalies", anomalyNames(txs[i+1]), []string(nil))
			check(t, "resp.End", txs[i+1].Response.End, at(1))
		}
	})
	t.Run("flood stays bounded", func(t *testing.T) {
		evs := append([]event{cli(reqs(500))}, closeBoth()...)
		txs := run(t, lim, evs, whole)
		wantN(t, txs, 500)
		if got := run(t, lim, evs, byteByByte); !same(got, txs) {
			t.Fatalf("byte by byte differs:\n%s", diff(got, txs))
		}
	})
}

func multipartRequest(boundary string, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	body := b.String()
	return "POST /f HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=\"" + boundary + "\"\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestLimitMultipartParts(t *testing.T) {
	lim := Limits{MaxMultipartParts: 2}
	part := func(name string) string {
		return "Content-Disposition: form-data; name=\"" + name + "\"\r\n\r\nv-" + name
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(multipartRequest("b0undary", part("a"), part("b")))}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "parts", len(txs[0].Request.Multipart), 2)
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(multipartRequest("b0undary", part("a"), part("b"), part("c"), part("d")))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyMultipartPartLimit})
		check(t, "parts", len(txs[0].Request.Multipart), 2)
		check(t, "part b", txs[0].Request.Multipart[1], Part{Name: "b", Bytes: 3, SHA256: sum("v-b"), HashValid: true})
		check(t, "BodyComplete", txs[0].Request.BodyComplete, true)
	})
}

func TestLimitMultipartHeaderBytes(t *testing.T) {
	lim := Limits{MaxMultipartHeaderBytes: 64}
	part := func(block int) string {
		line := "Content-Disposition: form-data; name=\"f\"; filename=\""
		pad := block - len(line) - len("\"\r\n\r\n")
		return line + strings.Repeat("n", pad) + "\"\r\n\r\nDATA"
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(multipartRequest("bnd", part(64)))}, closeBoth()...))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "Filename", len(txs[0].Request.Multipart[0].Filename), 64-len("Content-Disposition: form-data; name=\"f\"; filename=\"")-len("\"\r\n\r\n"))
		check(t, "Bytes", txs[0].Request.Multipart[0].Bytes, int64(4))
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(multipartRequest("bnd", part(65)))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyMultipartHeaderLimit})
		check(t, "Bytes", txs[0].Request.Multipart[0].Bytes, int64(4))
		check(t, "HashValid", txs[0].Request.Multipart[0].HashValid, true)
	})
}

func TestLimitInformational(t *testing.T) {
	lim := Limits{MaxInformational: 2}
	evs := func(n int) []event {
		return append([]event{
			cli("GET / HTTP/1.1\r\n\r\n"),
			srv(strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", n) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		}, closeBoth()...)
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, evs(2))
		wantN(t, txs, 1)
		noAnomalies(t, txs)
		check(t, "Informational", txs[0].Response.Informational, []int{102, 102})
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, evs(3))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyTooManyInformational})
		check(t, "Informational", txs[0].Response.Informational, []int{102, 102})
		check(t, "StatusCode", txs[0].Response.StatusCode, 200)
	})
}

func TestLimitAnomalies(t *testing.T) {
	lim := Limits{MaxAnomalies: 3}
	req := func(bad int) string {
		return "GET / HTTP/1.1\r\n" + strings.Repeat("no colon here\r\n", bad) + "\r\n"
	}
	t.Run("at the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(3))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadHeaderLine, AnomalyBadHeaderLine, AnomalyBadHeaderLine})
	})
	t.Run("over the limit", func(t *testing.T) {
		txs := runSplits(t, lim, append([]event{cli(req(10))}, closeBoth()...))
		wantN(t, txs, 1)
		check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadHeaderLine, AnomalyBadHeaderLine, AnomalyBadHeaderLine, AnomalyTooManyAnomalies})
		check(t, "dropped", txs[0].Anomalies[3].Observed, int64(7))
	})
}
