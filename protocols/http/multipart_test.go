// Multipart splitting, checked against mime/multipart as an oracle on
// adversarial bodies fed in random pieces.

package http

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	mimemultipart "mime/multipart"
	"strconv"
	"strings"
	"testing"
)

func TestMultipartFilenames(t *testing.T) {
	req := multipartRequest("----WebKitFormBoundary7MA4YWxkTrZu0gW",
		"Content-Disposition: form-data; name=\"doc\"; filename=\"plain.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF",
		"Content-Disposition: form-data; name=\"u\"; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nx",
		"Content-Disposition: form-data; name=\"l\"; filename*=iso-8859-1'en'%A3%20sterling.txt\r\n\r\ny",
		"content-disposition: form-data; name=q\"; filename=\"a \\\"quoted\\\" C:\\path.txt\"\r\n\r\nz",
		"Content-Disposition: form-data; name=\"bad\"; filename=\"keep.txt\"; filename*=UTF-8''%ZZ\r\n\r\n",
	)
	txs := runSplits(t, Limits{}, append([]event{cli(req)}, closeBoth()...))
	wantN(t, txs, 1)
	noAnomalies(t, txs)
	parts := txs[0].Request.Multipart
	check(t, "parts", len(parts), 5)
	check(t, "plain", parts[0], Part{Name: "doc", Filename: "plain.pdf", ContentType: "application/pdf", Bytes: 4, SHA256: sum("%PDF"), HashValid: true})
	check(t, "filename*", parts[1].Filename, "€ rates.txt")
	check(t, "latin-1", parts[2].Filename, "£ sterling.txt")
	check(t, "token name", parts[3].Name, "q\"")
	check(t, "escapes", parts[3].Filename, `a "quoted" C:\path.txt`)
	check(t, "undecodable filename* falls back", parts[4].Filename, "keep.txt")
	check(t, "empty part", parts[4].Bytes, int64(0))
	check(t, "empty part hash", parts[4].SHA256, sum(""))
}

func TestMultipartBoundaryForms(t *testing.T) {
	for _, tc := range []struct{ ct, want string }{
		{"multipart/form-data; boundary=abc", "abc"},
		{"multipart/form-data; boundary=\"a b:c\"", "a b:c"},
		{"Multipart/Mixed;charset=utf-8;  BOUNDARY=xyz ", "xyz"},
		{"multipart/form-data; boundary=", ""},
		{"multipart/form-data", ""},
		{"multipart/form-data; boundary=\"" + strings.Repeat("b", maxBoundaryLen+1) + "\"", ""},
	} {
		got, isMP := multipartBoundary(tc.ct)
		if !isMP || got != tc.want {
			t.Errorf("multipartBoundary(%q) = %q, %v; want %q, true", tc.ct, got, isMP, tc.want)
		}
	}
	if _, isMP := multipartBoundary("application/x-www-form-urlencoded"); isMP {
		t.Error("urlencoded taken for multipart")
	}
	txs := runSplits(t, Limits{}, append([]event{cli("POST / HTTP/1.1\r\nContent-Type: multipart/form-data\r\nContent-Length: 2\r\n\r\nab")}, closeBoth()...))
	wantN(t, txs, 1)
	check(t, "anomalies", anomalyNames(txs[0]), []string{AnomalyBadMultipartBoundary})
	check(t, "BodyBytes", txs[0].Request.BodyBytes, int64(2))
}

func TestMultipartBareLFAndPreamble(t *testing.T) {
	body := "preamble text\n--sep\nContent-Disposition: form-data; name=\"a\"\n\nline1\nline2\n--sep\n" +
		"Content-Disposition: form-data; name=\"b\"\n\n--sep--\nepilogue --sep\n"
	req := "POST / HTTP/1.1\nContent-Type: multipart/mixed; boundary=sep\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body
	txs := runSplits(t, Limits{}, append([]event{cli(req)}, closeBoth()...))
	wantN(t, txs, 1)
	check(t, "Multipart", txs[0].Request.Multipart, []Part{
		{Name: "a", Bytes: 11, SHA256: sum("line1\nline2"), HashValid: true},
		{Name: "b", Bytes: 0, SHA256: sum(""), HashValid: true},
	})
}

func TestMultipartChunkedUnterminated(t *testing.T) {
	// A chunked multipart upload cut before its close delimiter: the open
	// part is recorded with its bytes but no valid hash.
	body := "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nsecret\r\n--B\r\n" +
		"Content-Disposition: form-data; name=\"g\"\r\n\r\npartial\r\n--"
	var c strings.Builder
	for i := 0; i < len(body); i += 7 {
		end := min(i+7, len(body))
		c.WriteString(strconv.FormatInt(int64(end-i), 16) + "\r\n" + body[i:end] + "\r\n")
	}
	c.WriteString("0\r\n\r\n")
	req := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=B\r\n\r\n" + c.String()
	txs := runSplits(t, Limits{}, append([]event{cli(req)}, closeBoth()...))
	wantN(t, txs, 1)
	parts := txs[0].Request.Multipart
	check(t, "parts", len(parts), 2)
	check(t, "part 0", parts[0], Part{Name: "f", Filename: "x", Bytes: 6, SHA256: sum("secret"), HashValid: true})
	check(t, "part 1 unterminated", parts[1], Part{Name: "g", Bytes: int64(len("partial\r\n--"))})
	check(t, "BodySHA256", txs[0].Request.BodySHA256, sum(body))
}

// adversarialContent builds part data full of near-delimiters, but no real
// one (that would be a different, valid body).
func adversarialContent(r *rand.Rand, boundary string) string {
	pieces := []string{"\r", "\n", "\r\n", "-", "--", "\r\n--", "\n--", "\r\n-", "x", "data ",
		"\r\n--" + boundary[:len(boundary)/2], "--" + boundary, "\r\r\n--" + boundary[:len(boundary)-1] + "Q"}
	for {
		var b strings.Builder
		for n := r.IntN(40); n > 0; n-- {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		if !strings.Contains("\n"+s, "\n--"+boundary) {
			return s
		}
	}
}

func TestMultipartOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		boundary := "bd" + strconv.Itoa(r.IntN(1e6))
		nparts := 1 + r.IntN(4)
		var parts []string
		for i := 0; i < nparts; i++ {
			parts = append(parts, "Content-Disposition: form-data; name=\"p"+strconv.Itoa(i)+"\"\r\n\r\n"+adversarialContent(r, boundary))
		}
		req := multipartRequest(boundary, parts...)
		body := req[strings.Index(req, "\r\n\r\n")+4:]

		// What mime/multipart makes of the same body.
		mr := mimemultipart.NewReader(strings.NewReader(body), boundary)
		var want []Part
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("oracle: %v on %q", err, body)
			}
			data, err := io.ReadAll(p)
			if err != nil {
				t.Fatalf("oracle read: %v", err)
			}
			want = append(want, Part{Name: p.FormName(), Bytes: int64(len(data)), SHA256: sha256.Sum256(data), HashValid: true})
		}

		cut := func(_ int, d string) []string {
			var out []string
			for len(d) > 0 {
				n := 1 + r.IntN(min(len(d), 1+r.IntN(20)))
				out = append(out, d[:n])
				d = d[n:]
			}
			return out
		}
		txs := run(t, Limits{}, append([]event{cli(req)}, closeBoth()...), cut)
		wantN(t, txs, 1)
		if got := txs[0].Request.Multipart; !equalParts(got, want) {
			t.Fatalf("body %q:\n got %+v\nwant %+v", body, got, want)
		}
	}
}

func equalParts(a, b []Part) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParamParser(t *testing.T) {
	// Every call must consume input, whatever the junk.
	for _, s := range []string{"", ";", "=", "==", "; a", "a=\"", "a=\"\\", ";;;=;=\"x", "k=v;k2=\"v;2\"; k3"} {
		rest := s
		for i := 0; ; i++ {
			_, _, r, ok := nextParam(rest)
			if !ok {
				break
			}
			if len(r) >= len(rest) || i > len(s) {
				t.Fatalf("nextParam(%q) did not advance", rest)
			}
			rest = r
		}
	}
	key, val, _, _ := nextParam(`; filename="a\"b\\c\d"`)
	check(t, "key", key, "filename")
	check(t, "val", val, `a"b\c\d`)
	if !bytes.Equal([]byte(val), []byte(`a"b\c\d`)) {
		t.Fatal("escape handling")
	}
}
