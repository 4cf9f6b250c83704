// Command gencap writes synthetic pcap captures for the exfilwatch benchmark.
//
//	gencap -out mixed.pcap -kind mixed -size 1200000000 -seed 1
//	gencap -out short.pcap -kind short -conns 200000 -seed 1
//
// The mixed capture interleaves 64 concurrent sessions: bulk HTTP uploads
// (Content-Length, multipart/form-data, chunked, Expect: 100-continue), bulk
// HTTP downloads, keep-alive connections with dozens of small requests,
// passive-mode FTP sessions with STOR/RETR data connections, and some DNS.
// The short capture holds many one-request HTTP connections. A summary of
// what was written (the counts a decoder should find) goes to stderr and, as
// JSON, to -summary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "", "output pcap file (required)")
	kind := flag.String("kind", "mixed", "mixed or short")
	size := flag.Int64("size", 1_200_000_000, "mixed: target file size in bytes")
	conns := flag.Int("conns", 200_000, "short: number of connections")
	seed := flag.Uint64("seed", 1, "random seed")
	active := flag.Int("active", 0, "concurrent sessions (default 64 mixed, 300 short)")
	summary := flag.String("summary", "", "also write the summary as JSON to this file")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *summary, Config{Kind: *kind, Size: *size, Conns: *conns, Seed: *seed, Active: *active}); err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(1)
	}
}

func run(out, summary string, cfg Config) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	st, err := Generate(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	printSummary(os.Stderr, out, st)
	if summary != "" {
		b, _ := json.MarshalIndent(st, "", "  ")
		return os.WriteFile(summary, append(b, '\n'), 0o644)
	}
	return nil
}

func printSummary(w *os.File, out string, st Stats) {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(w, "gencap: wrote %s: %d bytes, %d packets in %.1fs (%.0f MB/s); capture spans %.1fs\n",
		out, st.FileBytes, st.Packets, st.Seconds, float64(st.FileBytes)/1e6/st.Seconds, st.CaptureS)
	fmt.Fprintf(w, "  tcp connections %d (ipv6 %d); sessions: upload %d, download %d, keep-alive %d, short %d, ftp %d\n",
		st.TCPConns, st.IPv6Conns, st.SessUpload, st.SessDownload, st.SessKeep, st.SessShort, st.SessFTP)
	fmt.Fprintf(w, "  http requests %d (GET %d, POST %d; chunked %d, multipart %d, 100-continue %d), responses %d\n",
		st.HTTPRequests, st.HTTPGet, st.HTTPPost, st.HTTPChunkedReq, st.HTTPMultipart, st.HTTPContinue, st.HTTPResponses)
	fmt.Fprintf(w, "  http upload body %.1f MiB, download body %.1f MiB\n", mib(st.HTTPUploadBytes), mib(st.HTTPDownloadBytes))
	fmt.Fprintf(w, "  ftp commands %d, replies %d, transfers %d (STOR %d, RETR %d), upload %.1f MiB, download %.1f MiB\n",
		st.FTPCommands, st.FTPReplies, st.FTPTransfers, st.FTPStor, st.FTPRetr, mib(st.FTPUploadBytes), mib(st.FTPDownloadBytes))
	fmt.Fprintf(w, "  udp packets %d (dns queries %d); out-of-order segments %d, retransmitted %d\n",
		st.UDPPackets, st.DNSQueries, st.OutOfOrder, st.Retransmits)
	fmt.Fprintf(w, "  expected tshark request frames (http.request or ftp.request==1): %d\n", st.ExpectedRequestFrames)
}
