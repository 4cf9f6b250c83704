package attribution

// LsofTable is a SocketTable that runs lsof: the macOS fallback when
// libproc cannot be used. lsof is slow on macOS (seconds on a busy host, and
// it wakes file-system daemons: bandwhich#187), so it runs only on a miss,
// at most once per MinInterval, under a timeout. Untagged: lsof -F output
// is the same on Linux, so the table is tested here with a stand-in
// command.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"sync"
	"time"
)

// DefaultLsofArgs are the arguments LsofTable gives lsof: no host or port
// names, TCP and UDP files only, field output with pid, command, ppid,
// uid, fd, type, protocol, name and TCP info (macos-formats.md §4).
var DefaultLsofArgs = []string{"-nP", "-iTCP", "-iUDP", "-FpcRuftPnT"}

// Defaults of LsofOptions.
const (
	DefaultLsofTimeout     = 5 * time.Second
	DefaultLsofMinInterval = 2 * time.Second
	DefaultLsofMaxOutput   = 32 << 20
)

// LsofOptions configures an LsofTable. Zero fields take the defaults.
type LsofOptions struct {
	// Path is the lsof command: "lsof" (looked up in PATH) when empty.
	Path string
	// Args replace DefaultLsofArgs; they must ask for -F output.
	Args []string
	// Timeout bounds one lsof run (DefaultLsofTimeout).
	Timeout time.Duration
	// MinInterval is the least time between two runs (DefaultLsofMinInterval);
	// a miss within it returns ErrNotFound at once.
	MinInterval time.Duration
	// Grace keeps sockets attributable after the last run that saw them
	// (DefaultSocketGrace).
	Grace time.Duration
	// MaxSockets bounds the sockets remembered (DefaultMaxSockets).
	MaxSockets int
	// MaxOutput bounds the lsof output read (DefaultLsofMaxOutput bytes).
	MaxOutput int
	// Logf, when set, gets one line per failed lsof run.
	Logf func(format string, args ...any)
	// Now is the clock (time.Now).
	Now func() time.Time
}

// LsofStats counts what an LsofTable did.
type LsofStats struct {
	Runs     uint64 // lsof runs
	Failures uint64 // runs that failed (timeout, not found, no output)
	Sockets  int    // sockets in the last successful run
	Dropped  uint64 // sockets not remembered because the table was full
}

var _ SocketTable = (*LsofTable)(nil)

// LsofTable is a SocketTable backed by lsof -F.
type LsofTable struct {
	path string
	opts LsofOptions

	runMu sync.Mutex // one lsof run at a time

	mu      sync.Mutex // guards what follows
	idx     *sockinfoIndex
	lastRun time.Time // start of the last run, claimed under mu
	running bool      // an lsof run is in progress
	stats   LsofStats
}

// NewLsofTable returns a table that runs lsof on misses. It fails, with an
// error wrapping ErrUnsupported, when the command cannot be found.
func NewLsofTable(opts LsofOptions) (*LsofTable, error) {
	if opts.Path == "" {
		opts.Path = "lsof"
	}
	path, err := exec.LookPath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("attribution: lsof table: %w (%w)", ErrUnsupported, err)
	}
	if len(opts.Args) == 0 {
		opts.Args = append([]string(nil), DefaultLsofArgs...)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultLsofTimeout
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultLsofMinInterval
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultLsofMaxOutput
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &LsofTable{path: path, opts: opts, idx: newSockinfoIndex(opts.Grace, opts.MaxSockets)}, nil
}

// Lookup implements SocketTable. On a miss it runs lsof, unless it ran
// less than MinInterval ago, and looks again. Lookups made while lsof runs
// do not wait for it: they miss (ErrNotFound) and may be retried.
func (t *LsofTable) Lookup(proto uint8, local, remote netip.AddrPort) (Owner, error) {
	t.mu.Lock()
	now := t.opts.Now()
	if e, ok := t.idx.lookup(proto, local, remote, now); ok {
		t.mu.Unlock()
		return e.owner(), nil
	}
	if t.running || !t.lastRun.IsZero() && now.Sub(t.lastRun) < t.opts.MinInterval {
		t.mu.Unlock()
		return Owner{}, ErrNotFound
	}
	t.lastRun = now // claims the run
	t.mu.Unlock()

	if err := t.refresh(context.Background()); err != nil {
		return Owner{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.idx.lookup(proto, local, remote, t.opts.Now()); ok {
		return e.owner(), nil
	}
	return Owner{}, ErrNotFound
}

// Refresh runs lsof now and records what it lists.
func (t *LsofTable) Refresh(ctx context.Context) error {
	t.mu.Lock()
	t.lastRun = t.opts.Now()
	t.mu.Unlock()
	return t.refresh(ctx)
}

// Stats returns the counters.
func (t *LsofTable) Stats() LsofStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Dropped = t.idx.dropped
	return s
}

// Close implements SocketTable; an LsofTable holds nothing between runs.
func (t *LsofTable) Close() error { return nil }

// refresh runs lsof (one run at a time) and records its sockets.
func (t *LsofTable) refresh(ctx context.Context) error {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	t.mu.Lock()
	t.running = true
	t.mu.Unlock()
	files, err := t.run(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running = false
	t.stats.Runs++
	if err != nil {
		t.stats.Failures++
		if t.opts.Logf != nil {
			t.opts.Logf("attribution: %v", err)
		}
		return err
	}
	now := t.opts.Now()
	for i := range files {
		t.idx.put(files[i].Socket, now)
	}
	t.idx.expire(now)
	t.stats.Sockets = len(files)
	return nil
}

// run runs lsof once and parses its output. lsof exits 1 when one of the
// -i selections matched nothing, so the exit status alone is no error:
// output that parses is kept, and a failure is reported only for a
// timeout, a command that cannot run, or an exit error with no output.
func (t *LsofTable) run(ctx context.Context) ([]LsofFile, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.path, t.opts.Args...)
	stdout := &lsofCapped{max: t.opts.MaxOutput}
	stderr := &lsofCapped{max: 1024}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("lsof: %w after %v", ctx.Err(), t.opts.Timeout)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return nil, fmt.Errorf("lsof: %w", runErr)
	}
	files, perr := ParseLsofFFiles(bytes.NewReader(stdout.buf.Bytes()))
	if runErr != nil && stdout.buf.Len() == 0 {
		return nil, fmt.Errorf("lsof: %w: %q", runErr, bytes.TrimSpace(stderr.buf.Bytes()))
	}
	if t.opts.Logf != nil {
		if stdout.truncated {
			t.opts.Logf("attribution: lsof output over %d bytes, the rest ignored", t.opts.MaxOutput)
		}
		if perr != nil {
			t.opts.Logf("attribution: lsof output: %v", perr)
		}
	}
	return files, nil
}

// lsofCapped keeps the first max bytes written to it and drops the rest.
type lsofCapped struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *lsofCapped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}
