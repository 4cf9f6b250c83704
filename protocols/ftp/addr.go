// Data-channel addresses: PORT/PASV (RFC 959), EPRT/EPSV (RFC 2428),
// LPRT/LPSV (RFC 1639).

package ftp

import (
	"bytes"
	"errors"
	"net/netip"
)

var (
	errMalformedAddress = errors.New("ftp: malformed data address")
	errZeroPort         = errors.New("ftp: data port 0")
	errAddressFamily    = errors.New("ftp: address does not match its family")
)

// parsePORT reads "h1,h2,h3,h4,p1,p2". An address of 0.0.0.0 gives an
// invalid Addr with the port set: the caller falls back to the control
// connection's address.
func parsePORT(arg []byte) (netip.AddrPort, error) {
	var n [6]int
	if numberList(bytes.TrimSpace(arg), n[:]) != 6 {
		return netip.AddrPort{}, errMalformedAddress
	}
	return hostPort(n)
}

// parsePASV finds "h1,h2,h3,h4,p1,p2" anywhere in a 227 reply: servers
// write it with or without parentheses, and some put text before it.
func parsePASV(msg []byte) (netip.AddrPort, error) {
	var n [6]int
	for i := range msg {
		if !isDigit(msg[i]) || (i > 0 && isDigit(msg[i-1])) {
			continue
		}
		if numberList(msg[i:], n[:]) == 6 {
			return hostPort(n)
		}
	}
	return netip.AddrPort{}, errMalformedAddress
}

func hostPort(n [6]int) (netip.AddrPort, error) {
	port := uint16(n[4]<<8 | n[5])
	if port == 0 {
		return netip.AddrPort{}, errZeroPort
	}
	ip := netip.AddrFrom4([4]byte{byte(n[0]), byte(n[1]), byte(n[2]), byte(n[3])})
	if ip.IsUnspecified() {
		ip = netip.Addr{}
	}
	return netip.AddrPortFrom(ip, port), nil
}

// parseEPRT reads "<d><af><d><addr><d><port><d>", d any byte in 33..126
// (RFC 2428 §2), af 1 for IPv4 and 2 for IPv6.
func parseEPRT(arg []byte) (netip.AddrPort, error) {
	af, addr, port, err := splitExtended(bytes.TrimSpace(arg))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return extendedAddr(af, addr, port, false)
}

// parseEPSV reads the "(|||port|)" of a 229 reply, any delimiter. The reply
// names no address (RFC 2428 §3), so the Addr is invalid and the caller uses
// the control connection's server address. A server that does fill in
// family and address is taken at its word.
func parseEPSV(msg []byte) (netip.AddrPort, error) {
	if open := bytes.IndexByte(msg, '('); open >= 0 {
		inner := msg[open+1:]
		if end := bytes.LastIndexByte(inner, ')'); end >= 0 {
			inner = inner[:end]
		}
		if af, addr, port, err := splitExtended(bytes.TrimSpace(inner)); err == nil {
			return extendedAddr(af, addr, port, true)
		}
	}
	// No usable parentheses: look for "ddd<port>d" anywhere.
	for i := 0; i+4 < len(msg); i++ {
		d := msg[i]
		if !isDelimiter(d) || msg[i+1] != d || msg[i+2] != d {
			continue
		}
		if _, _, port, err := splitExtended(msg[i:]); err == nil {
			return extendedAddr(nil, nil, port, true)
		}
	}
	return netip.AddrPort{}, errMalformedAddress
}

// splitExtended splits "<d>a<d>b<d>c<d>" into its three fields; bytes after
// the closing delimiter are ignored.
func splitExtended(s []byte) (af, addr, port []byte, err error) {
	if len(s) < 4 || !isDelimiter(s[0]) {
		return nil, nil, nil, errMalformedAddress
	}
	d := s[0]
	var f [3][]byte
	rest := s[1:]
	for i := range f {
		j := bytes.IndexByte(rest, d)
		if j < 0 {
			return nil, nil, nil, errMalformedAddress
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	return f[0], f[1], f[2], nil
}

func extendedAddr(af, addr, port []byte, passive bool) (netip.AddrPort, error) {
	p, ok := decimal(port, 65535)
	if !ok {
		return netip.AddrPort{}, errMalformedAddress
	}
	if p == 0 {
		return netip.AddrPort{}, errZeroPort
	}
	if passive && len(af) == 0 && len(addr) == 0 {
		return netip.AddrPortFrom(netip.Addr{}, uint16(p)), nil
	}
	ip, err := netip.ParseAddr(string(addr))
	if err != nil {
		return netip.AddrPort{}, errMalformedAddress
	}
	ip = ip.WithZone("")
	switch string(af) {
	case "1":
		if !ip.Is4() {
			return netip.AddrPort{}, errAddressFamily
		}
	case "2":
		if !ip.Is6() {
			return netip.AddrPort{}, errAddressFamily
		}
	default:
		return netip.AddrPort{}, errAddressFamily
	}
	// Flows carry IPv4 as IPv4: ::ffff:a.b.c.d must match them.
	ip = ip.Unmap()
	if ip.IsUnspecified() {
		ip = netip.Addr{}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// parseLPRT reads "af,hal,h1..hn,pal,p1,p2" (RFC 1639): af 4 with 4 address
// bytes or af 6 with 16, and a 2-byte port.
func parseLPRT(arg []byte) (netip.AddrPort, error) {
	var n [21]int
	k := numberList(bytes.TrimSpace(arg), n[:])
	return longAddr(n[:k])
}

// parseLPSV finds the LPRT-style list in a 228 reply.
func parseLPSV(msg []byte) (netip.AddrPort, error) {
	var n [21]int
	for i := range msg {
		if !isDigit(msg[i]) || (i > 0 && isDigit(msg[i-1])) {
			continue
		}
		k := numberList(msg[i:], n[:])
		if ap, err := longAddr(n[:k]); err == nil {
			return ap, nil
		}
	}
	return netip.AddrPort{}, errMalformedAddress
}

func longAddr(n []int) (netip.AddrPort, error) {
	if len(n) < 2 {
		return netip.AddrPort{}, errMalformedAddress
	}
	af, hal := n[0], n[1]
	if !(af == 4 && hal == 4 || af == 6 && hal == 16) || len(n) != 2+hal+3 || n[2+hal] != 2 {
		return netip.AddrPort{}, errMalformedAddress
	}
	var b [16]byte
	for i := 0; i < hal; i++ {
		b[i] = byte(n[2+i])
	}
	port := uint16(n[3+hal]<<8 | n[4+hal])
	if port == 0 {
		return netip.AddrPort{}, errZeroPort
	}
	var ip netip.Addr
	if af == 4 {
		ip = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		ip = netip.AddrFrom16(b).Unmap()
	}
	if ip.IsUnspecified() {
		ip = netip.Addr{}
	}
	return netip.AddrPortFrom(ip, port), nil
}

// numberList reads up to len(out) comma-separated numbers 0..255, spaces
// allowed around commas, and returns how many it read. It stops at the first
// byte that does not continue the list.
func numberList(s []byte, out []int) int {
	k, i := 0, 0
	for k < len(out) {
		j := i
		for j < len(s) && j-i < 3 && isDigit(s[j]) {
			j++
		}
		v, ok := decimal(s[i:j], 255)
		if !ok || (j < len(s) && isDigit(s[j])) {
			break
		}
		out[k] = v
		k++
		i = j
		if k == len(out) {
			break
		}
		// Separator: optional spaces, a comma, optional spaces.
		m := i
		for m < len(s) && s[m] == ' ' {
			m++
		}
		if m >= len(s) || s[m] != ',' {
			break
		}
		m++
		for m < len(s) && s[m] == ' ' {
			m++
		}
		i = m
	}
	return k
}

// decimal parses a non-empty run of digits no larger than max.
func decimal(b []byte, max int) (int, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, v <= max
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isDelimiter: RFC 2428 allows any printable ASCII but digits would be
// ambiguous with the fields, so they are refused.
func isDelimiter(c byte) bool { return c >= 33 && c <= 126 && !isDigit(c) }
