//go:build linux

// Command client is the short-lived process of the attribution benchmark
// (bench/attribution): it makes ONE HTTP upload and then lives until its
// target lifetime, counted from the start of main, so the sensor has that
// long to find the process behind the connection.
//
//	client ADDR:PORT PATH LIFETIME BODY_BYTES
//
// It uses raw socket system calls (no net/http, no netpoller) so that a 5 ms
// lifetime is reachable: connect, send the request, read the response, keep
// the socket open (as curl or wget do until they exit), sleep the remainder,
// exit. The kernel closes the socket at exit. When the exchange itself takes
// longer than the lifetime the client exits right after the response.
//
// On exit it prints one JSON line on stdout: its pid, the local end of the
// connection, and wall-clock times (Unix nanoseconds) of main's start, the
// connect call, the connection being established, the response, and exit.
package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type report struct {
	PID        int    `json:"pid"`
	Local      string `json:"local,omitempty"`
	Start      int64  `json:"t_start"`
	Connect    int64  `json:"t_connect,omitempty"`
	Connected  int64  `json:"t_connected,omitempty"`
	Response   int64  `json:"t_response,omitempty"`
	Exit       int64  `json:"t_exit"`
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	LifetimeNS int64  `json:"lifetime_ns"`
}

func main() {
	t0 := time.Now()
	r := report{PID: os.Getpid(), Start: t0.UnixNano()}
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: client ADDR:PORT PATH LIFETIME BODY_BYTES")
		os.Exit(2)
	}
	lifetime, err1 := time.ParseDuration(os.Args[3])
	size, err2 := strconv.Atoi(os.Args[4])
	if err1 != nil || err2 != nil || size < 0 {
		fmt.Fprintln(os.Stderr, "client: bad lifetime or body size")
		os.Exit(2)
	}
	if err := upload(&r, os.Args[1], os.Args[2], size); err != nil {
		r.Error = err.Error()
	}
	if rest := lifetime - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	end := time.Now()
	r.Exit = end.UnixNano()
	r.LifetimeNS = end.Sub(t0).Nanoseconds()
	b, _ := json.Marshal(r)
	os.Stdout.Write(append(b, '\n'))
	os.Exit(0) // the socket is still open: the kernel closes it now
}

func upload(r *report, addr, path string, size int) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	family := syscall.AF_INET6
	var sa syscall.Sockaddr = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() {
		family = syscall.AF_INET
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	tv := syscall.NsecToTimeval(int64(5 * time.Second))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	r.Connect = time.Now().UnixNano()
	if err := syscall.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	r.Connected = time.Now().UnixNano()
	if la, err := syscall.Getsockname(fd); err == nil {
		switch a := la.(type) {
		case *syscall.SockaddrInet4:
			r.Local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
		case *syscall.SockaddrInet6:
			r.Local = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
		}
	}
	host := addr
	req := make([]byte, 0, 256+size)
	req = fmt.Appendf(req, "PUT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: exfw-attr-client/1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, host, size)
	for i := range size {
		req = append(req, byte('a'+i%26))
	}
	for len(req) > 0 {
		n, err := syscall.Write(fd, req)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return fmt.Errorf("write: %w", err)
		}
		req = req[n:]
	}
	// Read the status line and headers, then Content-Length bytes of body.
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	headEnd, need := -1, -1
	for {
		n, err := syscall.Read(fd, tmp)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			if headEnd < 0 {
				return fmt.Errorf("read: connection closed before the response")
			}
			break
		}
		buf = append(buf, tmp[:n]...)
		if headEnd < 0 {
			i := strings.Index(string(buf), "\r\n\r\n")
			if i < 0 {
				continue
			}
			headEnd = i + 4
			head := string(buf[:i])
			line, rest, _ := strings.Cut(head, "\r\n")
			if f := strings.Fields(line); len(f) >= 2 {
				r.Status, _ = strconv.Atoi(f[1])
			}
			for _, h := range strings.Split(rest, "\r\n") {
				k, v, ok := strings.Cut(h, ":")
				if ok && strings.EqualFold(strings.TrimSpace(k), "content-length") {
					need, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
		}
		if need >= 0 && len(buf)-headEnd >= need {
			break
		}
	}
	r.Response = time.Now().UnixNano()
	if r.Status < 200 || r.Status > 299 {
		return fmt.Errorf("status %d", r.Status)
	}
	return nil
}
