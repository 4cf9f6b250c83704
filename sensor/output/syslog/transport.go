package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Default maximum message sizes (octets, framing excluded). Past them the
// MSG is truncated (Truncate), never dropped.
const (
	// DefaultMaxUDP is the size RFC 5426 §3.2 says every receiver SHOULD
	// take.
	DefaultMaxUDP = 2048
	// DefaultMaxStream (TCP, TLS, Unix stream) is the size RFC 5425 §4.3.1
	// says receivers SHOULD take, and rsyslog's default $MaxMessageSize.
	DefaultMaxStream = 8192
	// MaxUDP is the largest payload of a UDP datagram over IPv4.
	MaxUDP = 65507
)

// DefaultMaxUnixgram is the largest datagram the platform's local socket
// takes by default (macOS: net.local.dgram.maxdgram is 2048).
var DefaultMaxUnixgram = func() int {
	if runtime.GOOS == "darwin" {
		return 2048
	}
	return DefaultMaxStream
}()

// DefaultUnixPath is the local syslog socket of the platform.
var DefaultUnixPath = func() string {
	if runtime.GOOS == "darwin" {
		return "/var/run/syslog"
	}
	return "/dev/log"
}()

// Endpoint is a parsed syslog URL.
type Endpoint struct {
	Scheme string // udp, tcp, tls, unix
	Host   string // host name or address, without brackets (not for unix)
	Port   int    // not for unix
	Path   string // unix only
}

// Address is host:port, or the socket path for unix.
func (e Endpoint) Address() string {
	if e.Scheme == "unix" {
		return e.Path
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

func (e Endpoint) String() string {
	if e.Scheme == "unix" {
		return "unix://" + e.Path
	}
	return e.Scheme + "://" + e.Address()
}

// ParseURL reads udp://host:port, tcp://host:port, tls://host:port or
// unix:///path (unix:// alone is the platform's DefaultUnixPath). The port
// is required: 514 (UDP) and 6514 (TLS) are conventions, not something to
// guess for a SIEM's collector.
func ParseURL(raw string) (Endpoint, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Endpoint{}, errors.New("syslog URL is empty: want udp://, tcp://, tls://host:port or unix:///path")
	}
	if len(raw) > 4096 {
		return Endpoint{}, fmt.Errorf("syslog URL is %d characters long, more than 4096", len(raw))
	}
	if !strings.Contains(raw, "://") {
		return Endpoint{}, fmt.Errorf("syslog URL %q: no scheme: want udp://, tcp://, tls://host:port or unix:///path", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("syslog URL %q: %w", raw, unwrapURL(err))
	}
	e := Endpoint{Scheme: strings.ToLower(u.Scheme)}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("syslog URL %q: user info, query and fragment are not supported", raw)
	}
	switch e.Scheme {
	case "udp", "tcp", "tls":
	case "unix":
		if u.Host != "" {
			return Endpoint{}, fmt.Errorf("syslog URL %q: a unix URL has no host: write unix:///path/to/socket", raw)
		}
		e.Path = u.Path
		if e.Path == "" {
			e.Path = DefaultUnixPath
		}
		return e, nil
	case "":
		return Endpoint{}, fmt.Errorf("syslog URL %q: no scheme: want udp://, tcp://, tls:// or unix://", raw)
	default:
		return Endpoint{}, fmt.Errorf("syslog URL %q: unknown scheme %q: want udp, tcp, tls or unix", raw, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return Endpoint{}, fmt.Errorf("syslog URL %q: a %s URL has no path", raw, e.Scheme)
	}
	e.Host = u.Hostname()
	if e.Host == "" {
		return Endpoint{}, fmt.Errorf("syslog URL %q: no host", raw)
	}
	port := u.Port()
	if port == "" {
		return Endpoint{}, fmt.Errorf("syslog URL %q: no port (syslog is usually udp 514, tcp 514 or 601, tls 6514)", raw)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Endpoint{}, fmt.Errorf("syslog URL %q: port %q is not 1-65535", raw, port)
	}
	e.Port = n
	return e, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// TransportOptions configure Dial. The zero value is usable for udp, tcp
// and unix; tls needs CAFile (or InsecureSkipVerify).
type TransportOptions struct {
	// MaxMessage caps a message (octets, framing excluded); longer ones are
	// truncated by Send (Truncate) and counted. 0 means the default of the
	// transport: DefaultMaxUDP, DefaultMaxStream or DefaultMaxUnixgram.
	MaxMessage int
	// DialTimeout bounds connecting and the TLS handshake (default 10s).
	DialTimeout time.Duration
	// WriteTimeout bounds one Send on a stream (default 10s): a receiver
	// that stops reading makes Send fail instead of blocking the caller.
	WriteTimeout time.Duration

	// CAFile is the PEM file of the CA(s) that must have signed the TLS
	// server's certificate (RFC 5425 §5.2, certificate path validation).
	CAFile string
	// ServerName is the name the server's certificate must carry; default
	// the URL's host (an IP address is matched against IP SANs).
	ServerName string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// receivers that require one.
	CertFile, KeyFile string
	// MinTLSVersion defaults to TLS 1.2 (tls.VersionTLS12).
	MinTLSVersion uint16
	// InsecureSkipVerify sends without checking the server's certificate.
	// Only for tests of a receiver's setup: findings may then go to anyone.
	InsecureSkipVerify bool
}

// Transport sends syslog messages to one receiver.
type Transport interface {
	// Send writes one message, framed as the transport needs (octet
	// counting on TCP/TLS, LF-terminated on a Unix stream socket, one
	// datagram otherwise), truncating it first when it exceeds
	// MaxMessage. An error means the message may not have been delivered;
	// after an error on a stream, Close and Dial again. Safe for
	// concurrent use: frames never interleave.
	Send(msg []byte) error
	Close() error
	// Stream says whether the transport is connection-oriented (tcp, tls,
	// unix stream).
	Stream() bool
	// Alive checks, without blocking and without sending anything, that a
	// stream's peer has not closed or reset the connection (a syslog
	// receiver never sends data, so readable data or EOF means it is
	// gone). nil says nothing about delivery: see Unacked. Datagram
	// transports return nil unless Close was called.
	Alive() error
	// Unacked is the number of bytes written to a stream that the peer's
	// TCP has not acknowledged yet (Linux SIOCOUTQ, macOS SO_NWRITE; for
	// TLS it counts record bytes). 0 with Alive() == nil means every
	// message sent so far reached the receiver's host. Datagram
	// transports return 0.
	Unacked() (int, error)
	// MaxMessage is the size past which Send truncates.
	MaxMessage() int
	// Truncated counts the messages Send had to truncate.
	Truncated() uint64
	Endpoint() Endpoint
}

// ErrClosed is returned by a transport used after Close.
var ErrClosed = errors.New("syslog transport closed")

// Dial parses rawURL and connects. For tls it loads the CA and client
// files first, so an unreadable file fails here, and completes the
// handshake, so a certificate that does not match fails here too.
func Dial(ctx context.Context, rawURL string, opts TransportOptions) (Transport, error) {
	e, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return DialEndpoint(ctx, e, opts)
}

// DialEndpoint is Dial for an already parsed endpoint.
func DialEndpoint(ctx context.Context, e Endpoint, opts TransportOptions) (Transport, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.MaxMessage != 0 && opts.MaxMessage < MinMessage {
		return nil, fmt.Errorf("syslog %s: maximum message size %d is below %d octets", e, opts.MaxMessage, MinMessage)
	}
	base := transport{ep: e, maxMsg: opts.MaxMessage, writeTimeout: opts.WriteTimeout, state: new(state)}
	d := net.Dialer{Timeout: opts.DialTimeout}
	switch e.Scheme {
	case "udp":
		if base.maxMsg == 0 {
			base.maxMsg = DefaultMaxUDP
		}
		if base.maxMsg > MaxUDP {
			return nil, fmt.Errorf("syslog %s: maximum message size %d exceeds a UDP datagram (%d)", e, base.maxMsg, MaxUDP)
		}
		c, err := d.DialContext(ctx, "udp", e.Address())
		if err != nil {
			return nil, fmt.Errorf("syslog %s: %w", e, err)
		}
		base.conn = c
		return &datagram{transport: base}, nil
	case "tcp":
		if base.maxMsg == 0 {
			base.maxMsg = DefaultMaxStream
		}
		c, err := d.DialContext(ctx, "tcp", e.Address())
		if err != nil {
			return nil, fmt.Errorf("syslog %s: %w", e, err)
		}
		base.conn, base.raw = c, c
		return &stream{transport: base, octetCount: true}, nil
	case "tls":
		if base.maxMsg == 0 {
			base.maxMsg = DefaultMaxStream
		}
		cfg, err := tlsConfig(e, opts)
		if err != nil {
			return nil, fmt.Errorf("syslog %s: %w", e, err)
		}
		raw, err := d.DialContext(ctx, "tcp", e.Address())
		if err != nil {
			return nil, fmt.Errorf("syslog %s: %w", e, err)
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("syslog %s: TLS handshake (server name %q): %w", e, cfg.ServerName, err)
		}
		base.conn, base.raw = tc, raw
		return &stream{transport: base, octetCount: true}, nil
	case "unix":
		// Datagram first (what /dev/log and /var/run/syslog are), then
		// stream for receivers that listen on a stream socket.
		c, err := d.DialContext(ctx, "unixgram", e.Path)
		if err == nil {
			if base.maxMsg == 0 {
				base.maxMsg = DefaultMaxUnixgram
			}
			base.conn = c
			return &datagram{transport: base}, nil
		}
		if !errors.Is(err, syscall.EPROTOTYPE) {
			return nil, fmt.Errorf("syslog %s: %w", e, err)
		}
		c, err = d.DialContext(ctx, "unix", e.Path)
		if err != nil {
			return nil, fmt.Errorf("syslog %s (a stream socket): %w", e, err)
		}
		if base.maxMsg == 0 {
			base.maxMsg = DefaultMaxStream
		}
		base.conn, base.raw = c, c
		return &stream{transport: base}, nil
	}
	return nil, fmt.Errorf("syslog %s: unknown scheme %q", e, e.Scheme)
}

func tlsConfig(e Endpoint, opts TransportOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: opts.MinTLSVersion, ServerName: opts.ServerName}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		return nil, fmt.Errorf("minimum TLS version %#x is below TLS 1.2", cfg.MinVersion)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = e.Host
	}
	switch {
	case opts.InsecureSkipVerify:
		cfg.InsecureSkipVerify = true
	case opts.CAFile == "":
		return nil, errors.New("no CA file to verify the server's certificate with (set the CA file, or skip verification explicitly)")
	default:
		pem, err := readLimited(opts.CAFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("a client certificate needs both the certificate and the key file")
	}
	if opts.CertFile != "" {
		certPEM, err := readLimited(opts.CertFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		keyPEM, err := readLimited(opts.KeyFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("client key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// readLimited reads a small PEM file, refusing anything past limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// transport is what every kind shares.
type transport struct {
	ep           Endpoint
	conn         net.Conn
	raw          net.Conn // the TCP or Unix stream under conn (for Alive and Unacked)
	maxMsg       int
	writeTimeout time.Duration
	state        *state
}

// state is shared by the copies of transport made while dialing.
type state struct {
	truncated atomic.Uint64
	closed    atomic.Bool
}

func (t *transport) MaxMessage() int    { return t.maxMsg }
func (t *transport) Truncated() uint64  { return t.state.truncated.Load() }
func (t *transport) Endpoint() Endpoint { return t.ep }

func (t *transport) Close() error {
	if t.state.closed.Swap(true) {
		return nil
	}
	if err := t.conn.Close(); err != nil {
		return fmt.Errorf("syslog %s: close: %w", t.ep, err)
	}
	return nil
}

// fit truncates msg to the transport's maximum, counting it.
func (t *transport) fit(msg []byte) ([]byte, error) {
	if len(msg) <= t.maxMsg {
		return msg, nil
	}
	out, err := Truncate(msg, t.maxMsg)
	if err != nil {
		return nil, fmt.Errorf("syslog %s: message of %d octets: %w", t.ep, len(msg), err)
	}
	t.state.truncated.Add(1)
	return out, nil
}

type datagram struct {
	transport
}

func (d *datagram) Stream() bool { return false }

func (d *datagram) Send(msg []byte) error {
	if d.state.closed.Load() {
		return fmt.Errorf("syslog %s: %w", d.ep, ErrClosed)
	}
	msg, err := d.fit(msg)
	if err != nil {
		return err
	}
	if _, err := d.conn.Write(msg); err != nil {
		return fmt.Errorf("syslog %s: send: %w", d.ep, err)
	}
	return nil
}

func (d *datagram) Alive() error {
	if d.state.closed.Load() {
		return fmt.Errorf("syslog %s: %w", d.ep, ErrClosed)
	}
	return nil
}

func (d *datagram) Unacked() (int, error) { return 0, nil }

type stream struct {
	transport
	octetCount bool
	mu         sync.Mutex
	buf        []byte
	// dead keeps the first error: after a failed or partial write the
	// stream's framing is lost, so nothing more may be sent on it.
	dead error
}

func (s *stream) Stream() bool { return true }

func (s *stream) Send(msg []byte) error {
	if s.state.closed.Load() {
		return fmt.Errorf("syslog %s: %w", s.ep, ErrClosed)
	}
	msg, err := s.fit(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead != nil {
		return s.dead
	}
	// One Write per frame: the frame is never split between writers, and
	// small messages go out in one segment.
	b := s.buf[:0]
	if s.octetCount {
		b = strconv.AppendInt(b, int64(len(msg)), 10)
		b = append(b, ' ')
		b = append(b, msg...)
	} else {
		b = append(b, msg...)
		b = append(b, '\n')
	}
	if cap(b) <= 2*DefaultMaxStream {
		s.buf = b
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		s.dead = fmt.Errorf("syslog %s: send: %w", s.ep, err)
		return s.dead
	}
	if _, err := s.conn.Write(b); err != nil {
		s.dead = fmt.Errorf("syslog %s: send: %w", s.ep, err)
		return s.dead
	}
	return nil
}

func (s *stream) Alive() error {
	if s.state.closed.Load() {
		return fmt.Errorf("syslog %s: %w", s.ep, ErrClosed)
	}
	s.mu.Lock()
	dead := s.dead
	s.mu.Unlock()
	if dead != nil {
		return dead
	}
	n, err := peek(s.raw)
	if err != nil {
		return fmt.Errorf("syslog %s: connection lost: %w", s.ep, err)
	}
	if n == 0 {
		return nil
	}
	if tc, ok := s.conn.(*tls.Conn); ok {
		return s.tlsPending(tc)
	}
	return fmt.Errorf("syslog %s: the receiver sent data (a syslog receiver never does): treating the connection as lost", s.ep)
}

// tlsPending reads what a TLS server sent: TLS 1.3 session tickets are
// handled by crypto/tls and leave the connection alive; a close_notify or
// an alert means the server is gone. The read waits at most 10ms, and only
// when bytes are already waiting.
func (s *stream) tlsPending(tc *tls.Conn) error {
	if err := tc.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		return fmt.Errorf("syslog %s: %w", s.ep, err)
	}
	var b [1]byte
	n, err := tc.Read(b[:])
	tc.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0:
		return fmt.Errorf("syslog %s: the receiver sent data (a syslog receiver never does): treating the connection as lost", s.ep)
	case err == nil, errors.As(err, &ne) && ne.Timeout():
		return nil
	}
	return fmt.Errorf("syslog %s: connection lost: %w", s.ep, err)
}

func (s *stream) Unacked() (int, error) {
	if s.state.closed.Load() {
		return 0, fmt.Errorf("syslog %s: %w", s.ep, ErrClosed)
	}
	n, err := unacked(s.raw)
	if err != nil {
		return 0, fmt.Errorf("syslog %s: unacknowledged bytes: %w", s.ep, err)
	}
	return n, nil
}
