// Package output delivers findings to remote collectors without losing
// them: each finding is formatted, appended to an on-disk spool, and a
// goroutine forwards the spool through a transport (see README.md).
package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/sensor/detect"
	"exfilwatch/sensor/output/spool"
)

// Sender is one connection to a destination. sensor/output/syslog's
// Transport satisfies it.
type Sender interface {
	// Send writes one message. For a stream, success means the kernel took
	// the bytes, not that the peer has them.
	Send(msg []byte) error
	Close() error
	// Stream is true for TCP/TLS/unix stream transports, whose writes
	// need confirming, false for datagrams.
	Stream() bool
}

// Liveness is implemented by stream senders that can tell, without
// blocking, whether the peer has closed or reset the connection.
type Liveness interface {
	Alive() error
}

// Unacked is implemented by stream senders that can tell how many written
// bytes the peer's TCP has not acknowledged yet (Linux SIOCOUTQ, macOS
// SO_NWRITE). With it a batch is acknowledged only once the receiver's
// host has every byte of it.
type Unacked interface {
	Unacked() (int, error)
}

// DialFunc opens a new connection to the destination. It must honour ctx.
type DialFunc func(ctx context.Context) (Sender, error)

// ForwarderOptions configure one destination. Zero values take defaults.
type ForwarderOptions struct {
	Name string // destination, for logs (e.g. the URL without credentials)
	Dir  string // this destination's own spool directory (required)
	Dial DialFunc
	// Format turns a finding into the message stored and sent; default
	// the finding's JSON (the ECS document, encoded once per finding).
	Format func(*detect.Finding) ([]byte, error)
	Spool  spool.Options

	// ConfirmDelay is how long after the last write of a batch the
	// connection must still be alive before the batch is acknowledged.
	ConfirmDelay time.Duration // default 200ms
	// ConfirmTimeout bounds how long a batch may stay unacknowledged by the
	// peer's TCP (Unacked > 0) before the connection is given up as
	// stalled and the batch re-sent on a new one; default 30s.
	ConfirmTimeout time.Duration
	// MaxBatch is how many messages are written between two looks at the
	// spool and the connection; a batch is the unit that is confirmed.
	// Default 256.
	MaxBatch int
	// MaxInflight bounds the messages written on a connection and not yet
	// confirmed: writing goes on while earlier batches wait out their
	// ConfirmDelay, up to this many. It is the bound on the messages sent
	// again after a broken connection or a sensor stop. Default 4096.
	MaxInflight  int
	BackoffMin   time.Duration // default 250ms
	BackoffMax   time.Duration // default 30s
	DialTimeout  time.Duration // default 10s
	FlushTimeout time.Duration // how long Close keeps sending; default 5s
	Log          zerolog.Logger
}

func (o *ForwarderOptions) defaults() {
	if o.Format == nil {
		o.Format = func(f *detect.Finding) ([]byte, error) { return f.JSON(), nil }
	}
	if o.ConfirmDelay <= 0 {
		o.ConfirmDelay = 200 * time.Millisecond
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = 30 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 4096
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
}

// ForwarderStats are one destination's counters (since start) and state.
type ForwarderStats struct {
	Spooled       uint64 // findings appended to the spool
	Unsynced      uint64 // of the spooled, not yet fsync'd (lost by a power loss now, not by kill -9)
	SyncErrors    uint64 // failed spool fsyncs (their messages wait for a good one)
	InFlight      uint64 // messages written on the connection and awaiting confirmation
	Sent          uint64 // messages written to a connection (re-sends included)
	Retried       uint64 // of Sent, re-sends of a message already written once by this process
	Acked         uint64 // messages confirmed and removed from the spool
	Dropped       uint64 // undelivered messages deleted because the spool was full
	DroppedBytes  uint64
	SpoolErrors   uint64 // findings lost because the spool write failed
	FormatErrors  uint64 // findings that could not be formatted
	DialFailures  uint64
	SendFailures  uint64 // write or confirmation failures (each ends a connection)
	Corrupt       uint64 // torn/corrupt spool tails truncated
	Depth         uint64 // messages waiting in the spool
	DepthBytes    uint64 // spool bytes on disk
	Connected     bool
	OutageSeconds float64 // length of the current outage, 0 when connected
}

// Forwarder is a detect.FindingSink that delivers findings to one
// destination at least once, through its own spool.
type Forwarder struct {
	opt  ForwarderOptions
	log  zerolog.Logger
	sp   *spool.Spool
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu          sync.Mutex
	st          ForwarderStats
	conn        Sender // current connection, so Close can break a stuck write
	maxSent     uint64 // highest seq written by this process
	outageStart time.Time
	deadline    time.Time // flush deadline once Close was called
}

// NewForwarder opens the destination's spool (what a previous run left is
// sent first) and starts forwarding.
func NewForwarder(opt ForwarderOptions) (*Forwarder, error) {
	opt.defaults()
	if opt.Dir == "" {
		return nil, errors.New("forwarder: no spool directory")
	}
	if opt.Dial == nil {
		return nil, errors.New("forwarder: no dial function")
	}
	log := opt.Log.With().Str("destination", opt.Name).Logger()
	opt.Spool.Log = log
	sp, err := spool.Open(opt.Dir, opt.Spool)
	if err != nil {
		return nil, fmt.Errorf("forwarder %s: %w", opt.Name, err)
	}
	if d := sp.Stats().Depth; d > 0 {
		log.Info().Uint64("messages", d).Msg("forwarder: resending what the spool kept from a previous run")
	}
	f := &Forwarder{opt: opt, log: log, sp: sp, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f, nil
}

// Finding formats f and appends it to the spool. It never touches the
// network and does not wait for an fsync: it costs one write, and the
// spool's committer makes the message durable against power loss within
// Spool.SyncInterval plus the fsync time (Stats.Unsynced counts what is
// not yet); a kill -9 loses nothing once it returned. A finding that
// cannot be formatted or spooled is counted (FormatErrors, SpoolErrors)
// and logged, and is lost for this destination only.
func (f *Forwarder) Finding(fd *detect.Finding) {
	msg, err := f.opt.Format(fd)
	if err != nil {
		f.mu.Lock()
		f.st.FormatErrors++
		f.mu.Unlock()
		f.log.Error().Err(err).Str("finding", fd.ID).Msg("forwarder: cannot format finding; not forwarded")
		return
	}
	if err := f.Append(msg); err != nil {
		f.log.Error().Err(err).Str("finding", fd.ID).Msg("forwarder: cannot spool finding; not forwarded")
	}
}

// Append spools one ready-made message.
func (f *Forwarder) Append(msg []byte) error {
	err := f.sp.Append(msg)
	f.mu.Lock()
	if err != nil {
		f.st.SpoolErrors++
	} else {
		f.st.Spooled++
	}
	f.mu.Unlock()
	return err
}

// Stats returns the counters.
func (f *Forwarder) Stats() ForwarderStats {
	ss := f.sp.Stats()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Dropped, st.DroppedBytes, st.Corrupt = ss.Dropped, ss.DroppedBytes, ss.Corrupt
	st.Depth, st.DepthBytes, st.Acked = ss.Depth, ss.DepthBytes, ss.Acked
	st.Unsynced, st.SyncErrors = ss.Unsynced, ss.SyncErrors
	st.Connected = f.conn != nil
	if !f.outageStart.IsZero() {
		st.OutageSeconds = time.Since(f.outageStart).Seconds()
	}
	return st
}

// Close keeps sending for up to FlushTimeout if connected, then closes the
// connection and the spool. What was not confirmed stays in the spool and
// is sent by the next NewForwarder on the same directory.
func (f *Forwarder) Close() error {
	f.once.Do(func() {
		// What Finding spooled just before is flushed too, not left to
		// the committer's next round.
		if err := f.sp.Sync(); err != nil {
			f.log.Error().Err(err).Msg("forwarder: spool fsync at close failed")
		}
		f.mu.Lock()
		f.deadline = time.Now().Add(f.opt.FlushTimeout)
		f.mu.Unlock()
		close(f.stop)
	})
	select {
	case <-f.done:
	case <-time.After(f.opt.FlushTimeout + f.opt.ConfirmDelay + time.Second):
		// A write is stuck on a peer that stopped reading: break it.
		f.mu.Lock()
		if f.conn != nil {
			f.conn.Close()
		}
		f.mu.Unlock()
		select {
		case <-f.done:
		case <-time.After(time.Second):
			f.log.Warn().Msg("forwarder: sender did not stop; closing the spool under it")
		}
	}
	if d := f.sp.Stats().Depth; d > 0 {
		f.log.Info().Uint64("messages", d).Msg("forwarder: closed with messages left in the spool for the next start")
	}
	return f.sp.Close()
}

func (f *Forwarder) stopping() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// pastDeadline reports whether Close's flush time is over.
func (f *Forwarder) pastDeadline() bool {
	if !f.stopping() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().After(f.deadline)
}

func (f *Forwarder) setConn(c Sender) {
	f.mu.Lock()
	f.conn = c
	f.mu.Unlock()
}

// batch is a run of messages written on the current connection and not
// yet removed from the spool.
type batch struct {
	last    uint64    // seq of its last message
	n       int       // messages
	written time.Time // when its last message was written
}

// pipeline is what the current connection carries unconfirmed: batches
// are written one after another while the older ones wait out their
// ConfirmDelay, so the rate is not one batch per ConfirmDelay.
type pipeline struct {
	batches  []batch
	n        int  // messages in batches
	tcpAcked int  // batches[:tcpAcked] are known to be ACKed by the peer's TCP
	draining bool // a due batch waits for the peer's TCP: no new writes until Unacked is 0
	lastPoll time.Time
	lastAck  time.Time
}

func (p *pipeline) reset() { *p = pipeline{batches: p.batches[:0]} }

// nextCheck is when confirm has something to do: the oldest batch's
// ConfirmDelay is over (acknowledgements at most four times per
// ConfirmDelay, each costing the cursor's fsyncs), or, while draining, the
// next poll of the peer's TCP.
func (p *pipeline) nextCheck(o *ForwarderOptions) time.Time {
	if p.draining {
		return p.lastPoll.Add(max(o.ConfirmDelay/20, time.Millisecond))
	}
	t := p.batches[0].written.Add(o.ConfirmDelay)
	if g := p.lastAck.Add(o.ConfirmDelay / 4); g.After(t) {
		t = g
	}
	return t
}

func (f *Forwarder) setInFlight(n int) {
	f.mu.Lock()
	f.st.InFlight = uint64(n)
	f.mu.Unlock()
}

func (f *Forwarder) run() {
	defer close(f.done)
	var (
		conn     Sender
		p        pipeline
		attempt  int  // failures in the current outage
		down     bool // an outage is being reported
		lastFail string
		lastLook bool // a read after Close was seen
	)
	fail := func(stage string, err error) {
		if conn != nil {
			conn.Close()
			conn = nil
			f.setConn(nil)
		}
		// Whatever was written and not confirmed is read again and re-sent
		// on the next connection.
		f.sp.Rewind()
		p.reset()
		f.setInFlight(0)
		attempt++
		f.mu.Lock()
		if stage == "dial" {
			f.st.DialFailures++
		} else {
			f.st.SendFailures++
		}
		if !down {
			f.outageStart = time.Now()
		}
		f.mu.Unlock()
		if !down {
			down = true
			lastFail = err.Error()
			f.log.Warn().Err(err).Str("stage", stage).Uint64("spooled", f.sp.Stats().Depth).
				Msg("forwarder: destination unavailable; spooling and retrying with backoff")
		} else if err.Error() != lastFail {
			lastFail = err.Error()
			f.log.Debug().Err(err).Str("stage", stage).Int("attempt", attempt).Msg("forwarder: still unavailable")
		}
	}
	for {
		if f.pastDeadline() || (conn == nil && f.stopping()) {
			break
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), f.opt.DialTimeout)
			go func() {
				select {
				case <-f.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			c, err := f.opt.Dial(ctx)
			cancel()
			if err != nil {
				fail("dial", err)
				f.sleep(f.backoff(attempt))
				continue
			}
			conn = c
			f.setConn(c)
			f.sp.Rewind()
			p.reset()
			if down {
				f.mu.Lock()
				outage := time.Since(f.outageStart)
				f.outageStart = time.Time{}
				f.mu.Unlock()
				f.log.Info().Dur("outage", outage).Int("failed_attempts", attempt).Uint64("spooled", f.sp.Stats().Depth).
					Msg("forwarder: destination reachable again; sending the spool")
				down = false
			}
			attempt = 0
		}

		sent, tried := 0, false
		if !p.draining && p.n < f.opt.MaxInflight {
			tried = true
			last, n, err := f.sendBatch(conn, min(f.opt.MaxBatch, f.opt.MaxInflight-p.n))
			if err != nil {
				if errors.Is(err, spool.ErrClosed) {
					break
				}
				fail("send", err)
				f.sleep(f.backoff(attempt))
				continue
			}
			sent = n
			if n > 0 && !conn.Stream() {
				// A datagram has nothing to confirm.
				if err := f.sp.Ack(last); err != nil {
					if errors.Is(err, spool.ErrClosed) {
						break
					}
					f.log.Error().Err(err).Msg("forwarder: cannot record delivery; messages may be sent again")
				}
				continue
			}
			if n > 0 {
				p.batches = append(p.batches, batch{last: last, n: n, written: time.Now()})
				p.n += n
				f.setInFlight(p.n)
			}
		}
		if len(p.batches) > 0 && !time.Now().Before(p.nextCheck(&f.opt)) {
			if err := f.confirm(conn, &p); err != nil {
				if errors.Is(err, spool.ErrClosed) {
					break
				}
				fail("confirm", fmt.Errorf("%d messages not confirmed: %w", p.n, err))
				f.sleep(f.backoff(attempt))
				continue
			}
		}
		if sent > 0 || (!tried && !p.draining && p.n < f.opt.MaxInflight) {
			// More may be waiting: the spool's notification may have been
			// taken while the pipeline was full.
			continue
		}
		if len(p.batches) == 0 && f.stopping() {
			// The read above may have run before Close made the last
			// findings durable: read once more now that stop is seen
			// (Close syncs before it signals), then stop.
			if !lastLook {
				lastLook = true
				continue
			}
			break
		}
		f.wait(&p)
	}
	if conn != nil {
		conn.Close()
		f.setConn(nil)
	}
}

// wait sleeps until there may be something to do: new durable messages
// (when the pipeline takes more), the next confirmation, or Close.
func (f *Forwarder) wait(p *pipeline) {
	var timer <-chan time.Time
	if len(p.batches) > 0 {
		t := time.NewTimer(max(time.Until(p.nextCheck(&f.opt)), 0))
		defer t.Stop()
		timer = t.C
	}
	var more <-chan struct{}
	if !p.draining && p.n < f.opt.MaxInflight {
		more = f.sp.Notify()
	}
	var stop <-chan struct{}
	if !f.stopping() {
		stop = f.stop
	}
	select {
	case <-timer:
	case <-more:
	case <-stop:
	}
}

// confirm removes from the spool the batches whose delivery it can
// vouch for. A write to a peer that just died still succeeds, so a batch
// is removed only when its ConfirmDelay is over (a RST/FIN had time to
// come back), the connection is still alive, and, where the transport can
// tell, the peer's TCP has acknowledged every byte written up to it (an
// Unacked of 0 seen after the batch was written: bytes once acknowledged
// stay so). While a due batch waits for that, no more is written, so the
// send queue drains even on a slow link.
func (f *Forwarder) confirm(conn Sender, p *pipeline) error {
	now := time.Now()
	due := 0
	for due < len(p.batches) && !now.Before(p.batches[due].written.Add(f.opt.ConfirmDelay)) {
		due++
	}
	if due == 0 {
		return nil
	}
	p.lastPoll = now
	if p.tcpAcked < due {
		if ua, ok := conn.(Unacked); ok {
			n, err := ua.Unacked()
			if err != nil {
				return err
			}
			if n == 0 {
				p.tcpAcked, p.draining = len(p.batches), false
			} else {
				p.draining = true
				if waited := now.Sub(p.batches[p.tcpAcked].written) - f.opt.ConfirmDelay; waited > f.opt.ConfirmTimeout {
					return fmt.Errorf("peer has not acknowledged %d bytes after %v", n, f.opt.ConfirmTimeout)
				}
			}
		} else {
			p.tcpAcked = len(p.batches)
		}
	}
	// Checked after Unacked: a reset empties the send queue (Unacked 0),
	// and this is what tells that apart from a delivery.
	if lv, ok := conn.(Liveness); ok {
		if err := lv.Alive(); err != nil {
			return err
		}
	}
	k := min(due, p.tcpAcked)
	if k == 0 {
		return nil
	}
	p.lastAck = now
	if err := f.sp.Ack(p.batches[k-1].last); err != nil {
		if errors.Is(err, spool.ErrClosed) {
			return err
		}
		// The next acknowledgement covers these too.
		f.log.Error().Err(err).Msg("forwarder: cannot record delivery; messages may be sent again")
	}
	for _, b := range p.batches[:k] {
		p.n -= b.n
	}
	p.batches = append(p.batches[:0], p.batches[k:]...)
	p.tcpAcked -= k
	f.setInFlight(p.n)
	return nil
}

// sendBatch writes up to limit spooled messages and returns the last seq
// written and how many.
func (f *Forwarder) sendBatch(conn Sender, limit int) (last uint64, n int, err error) {
	for n < limit {
		if f.pastDeadline() {
			return last, n, nil
		}
		seq, msg, err := f.sp.Next()
		if errors.Is(err, spool.ErrEmpty) {
			return last, n, nil
		}
		if err != nil {
			return last, n, err
		}
		if err := conn.Send(msg); err != nil {
			return last, n, err
		}
		f.mu.Lock()
		f.st.Sent++
		if seq <= f.maxSent {
			f.st.Retried++
		} else {
			f.maxSent = seq
		}
		f.mu.Unlock()
		last = seq
		n++
	}
	return last, n, nil
}

// backoff is exponential with jitter in [d/2, d], so many sensors that lost
// one collector do not reconnect in step.
func (f *Forwarder) backoff(attempt int) time.Duration {
	d := f.opt.BackoffMin
	for i := 1; i < attempt && d < f.opt.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, f.opt.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until Close.
func (f *Forwarder) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.stop:
	}
}

// SpoolDir names the spool directory of one destination under root: a
// readable part of the destination plus a hash of all of it, so two
// destinations never share a spool and the same destination finds its
// spool again after a restart. Pass the destination without credentials.
func SpoolDir(root, destination string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, destination)
	if len(clean) > 48 {
		clean = clean[:48]
	}
	h := sha256.Sum256([]byte(destination))
	return filepath.Join(root, clean+"-"+hex.EncodeToString(h[:4]))
}
