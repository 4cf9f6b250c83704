// Command floor is the decode-only floor of the exfilwatch benchmark: it reads
// a capture and decodes Ethernet/802.1Q/IPv4/IPv6/TCP/UDP headers of every
// packet with a gopacket.DecodingLayerParser, with no flow tracking, no
// reassembly and no application parsing. No sensor that looks at every packet
// can be faster than this, so exfilwatch's throughput is reported as a share
// of it.
//
//	floor [-json] capture.pcap
//
// Classic pcap and pcapng are read. The summary (packets, bytes, TCP/UDP
// counts, seconds) goes to stdout, as JSON with -json.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Summary is what floor prints.
type Summary struct {
	Type         string  `json:"type"` // "floor"
	File         string  `json:"file"`
	FileBytes    int64   `json:"file_bytes"`
	Packets      int64   `json:"packets"`
	WireBytes    int64   `json:"wire_bytes"` // captured bytes of all packets
	IPv4         int64   `json:"ipv4"`
	IPv6         int64   `json:"ipv6"`
	TCP          int64   `json:"tcp"`
	UDP          int64   `json:"udp"`
	TCPPayload   int64   `json:"tcp_payload_bytes"`
	Undecodable  int64   `json:"decode_errors"`
	Seconds      float64 `json:"seconds"`
	MBPerSec     float64 `json:"mb_per_s"`
	PacketsPerSc float64 `json:"packets_per_s"`
}

// packetReader is satisfied by pcapgo.Reader and pcapgo.NgReader.
type packetReader interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

func main() {
	asJSON := flag.Bool("json", false, "print the summary as one JSON line")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: floor [-json] capture.pcap")
		os.Exit(2)
	}
	s, err := run(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(s)
		fmt.Println(string(b))
		return
	}
	fmt.Printf("floor: %s: %d packets, %d bytes (ipv4 %d, ipv6 %d, tcp %d, udp %d, errors %d) in %.2fs: %.1f MB/s, %.0f packets/s\n",
		s.File, s.Packets, s.FileBytes, s.IPv4, s.IPv6, s.TCP, s.UDP, s.Undecodable, s.Seconds, s.MBPerSec, s.PacketsPerSc)
}

func run(path string) (Summary, error) {
	s := Summary{Type: "floor", File: path}
	t0 := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		s.FileBytes = fi.Size()
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	var r packetReader
	if magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a {
		r, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		r, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}

	var (
		eth     layers.Ethernet
		dot1q   layers.Dot1Q
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		payload gopacket.Payload
	)
	if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
		return s, fmt.Errorf("%s: link type %v: only Ethernet captures are supported", path, lt)
	}
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6, &tcp, &udp, &payload)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 8)
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, fmt.Errorf("%s: packet %d: %w", path, s.Packets+1, err)
		}
		s.Packets++
		s.WireBytes += int64(len(data))
		if err := parser.DecodeLayers(data, &decoded); err != nil {
			s.Undecodable++
		}
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeIPv4:
				s.IPv4++
			case layers.LayerTypeIPv6:
				s.IPv6++
			case layers.LayerTypeTCP:
				s.TCP++
				s.TCPPayload += int64(len(tcp.Payload))
			case layers.LayerTypeUDP:
				s.UDP++
			}
		}
	}
	s.Seconds = time.Since(t0).Seconds()
	if s.Seconds > 0 {
		s.MBPerSec = float64(s.FileBytes) / 1e6 / s.Seconds
		s.PacketsPerSc = float64(s.Packets) / s.Seconds
	}
	return s, nil
}
