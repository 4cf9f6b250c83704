package attribution

// Supervised eslogger: runs /usr/bin/eslogger with a fixed event list (no
// shell), parses its JSON lines into records on a bounded channel, and
// restarts it when it dies. Untagged so that it is tested on Linux with
// stand-in executables; only the real binary is macOS-specific.
//
// eslogger mutes every process in its own process group, so it is started
// in the sensor's group on purpose: the sensor's own file reads then never
// come back as events (no feedback loop).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of EsloggerOptions.
const (
	DefaultEsloggerPath       = "/usr/bin/eslogger"
	DefaultEsloggerRestartMin = 1 * time.Second
	DefaultEsloggerRestartMax = 1 * time.Minute
	DefaultEsloggerSlowRetry  = 5 * time.Minute
	DefaultEsloggerBuffer     = 4096
	DefaultEsloggerMaxStderr  = 4096
	DefaultEsloggerKillAfter  = 3 * time.Second
	// maxEsloggerEvents bounds the event names passed to eslogger.
	maxEsloggerEvents = 64
)

// DefaultEsloggerEvents are the events the sensor needs: process starts
// and image changes, exits, and file opens, closes and renames.
var DefaultEsloggerEvents = []string{"exec", "fork", "exit", "open", "close", "rename"}

// Classified eslogger failures. They are reported once (logged at error
// level and kept in Stats.LastError) and retried every SlowRetry, since
// only an administrator can fix them.
var (
	ErrEsloggerMissing      = errors.New("eslogger not found: it ships with macOS 13 (Ventura) and later as /usr/bin/eslogger; file access and process events are unavailable")
	ErrEsloggerNotPermitted = errors.New("eslogger not permitted: Endpoint Security needs Full Disk Access for the process that starts the sensor; grant it in System Settings > Privacy & Security > Full Disk Access, or with an MDM PPPC profile (service SystemPolicyAllFiles)")
	ErrEsloggerNotRoot      = errors.New("eslogger must run as root: Endpoint Security refuses other users; run the sensor with sudo or as a LaunchDaemon")
)

// EsloggerOptions configures RunEslogger. The zero value means the
// documented defaults.
type EsloggerOptions struct {
	// Path of the eslogger binary; default DefaultEsloggerPath.
	Path string
	// Events are the event names given to eslogger, each one argument;
	// default DefaultEsloggerEvents.
	Events []string
	// RestartMin and RestartMax bound the backoff between restarts after
	// eslogger died: it starts at RestartMin, doubles after each quick
	// death, and returns to RestartMin after a run longer than RestartMax.
	// Defaults DefaultEsloggerRestartMin and DefaultEsloggerRestartMax.
	RestartMin, RestartMax time.Duration
	// SlowRetry is the wait after a failure only an administrator can fix
	// (missing binary, no Full Disk Access, not root). Default
	// DefaultEsloggerSlowRetry.
	SlowRetry time.Duration
	// MaxLine bounds one output line; longer lines are skipped and
	// counted. Default MaxEsloggerLine.
	MaxLine int
	// Buffer is the capacity of the Records channel; a record that finds
	// it full is dropped and counted. Default DefaultEsloggerBuffer.
	Buffer int
	// MaxStderr bounds the standard error kept per run to classify a
	// failure. Default DefaultEsloggerMaxStderr.
	MaxStderr int
	// KillAfter is how long Close waits after SIGTERM before SIGKILL.
	// Default DefaultEsloggerKillAfter.
	KillAfter time.Duration
	// Logger receives starts, exits and failures.
	Logger zerolog.Logger
}

func (o *EsloggerOptions) defaults() {
	if o.Path == "" {
		o.Path = DefaultEsloggerPath
	}
	if len(o.Events) == 0 {
		o.Events = DefaultEsloggerEvents
	}
	if o.RestartMin <= 0 {
		o.RestartMin = DefaultEsloggerRestartMin
	}
	if o.RestartMax <= 0 {
		o.RestartMax = DefaultEsloggerRestartMax
	}
	if o.RestartMax < o.RestartMin {
		o.RestartMax = o.RestartMin
	}
	if o.SlowRetry <= 0 {
		o.SlowRetry = DefaultEsloggerSlowRetry
	}
	if o.MaxLine <= 0 {
		o.MaxLine = MaxEsloggerLine
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultEsloggerBuffer
	}
	if o.MaxStderr <= 0 {
		o.MaxStderr = DefaultEsloggerMaxStderr
	}
	if o.KillAfter <= 0 {
		o.KillAfter = DefaultEsloggerKillAfter
	}
}

// EsloggerStats are the counters of an EsloggerRunner.
type EsloggerStats struct {
	Starts    uint64 // eslogger processes started
	Restarts  uint64 // starts (or start attempts) after the first
	Lines     uint64 // output lines read
	BadLines  uint64 // lines that did not parse (skipped)
	LongLines uint64 // lines over MaxLine (skipped; also in BadLines)
	Records   uint64 // records delivered on the channel
	Dropped   uint64 // records dropped because the channel was full
	// GapEvents and GapGlobal are the events the kernel dropped, from the
	// sequence numbers (EsloggerParser.Gaps).
	GapEvents, GapGlobal uint64
	StderrTruncated      uint64 // runs whose standard error exceeded MaxStderr
	Running              bool   // an eslogger process is running now
	LastError            string // the last failure, "" if none
}

// EsloggerRunner runs and supervises eslogger. Create it with RunEslogger.
type EsloggerRunner struct {
	opts   EsloggerOptions
	log    zerolog.Logger
	out    chan any
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	stats   EsloggerStats
	lastErr error
}

// RunEslogger starts eslogger and its supervisor. It fails only on bad
// options; a failure to run eslogger (ErrEsloggerMissing…) is logged,
// kept in Stats.LastError and Err, and retried. The runner stops when ctx
// is done or Close is called; the Records channel is then closed.
func RunEslogger(ctx context.Context, opts EsloggerOptions) (*EsloggerRunner, error) {
	opts.defaults()
	if len(opts.Events) > maxEsloggerEvents {
		return nil, fmt.Errorf("eslogger: %d events, at most %d", len(opts.Events), maxEsloggerEvents)
	}
	for _, e := range opts.Events {
		if !validEsloggerEvent(e) {
			return nil, fmt.Errorf("eslogger: bad event name %q (want lower-case letters, digits and _)", e)
		}
	}
	opts.Events = append([]string(nil), opts.Events...)
	ctx, cancel := context.WithCancel(ctx)
	r := &EsloggerRunner{
		opts:   opts,
		log:    opts.Logger.With().Str("component", "eslogger").Logger(),
		out:    make(chan any, opts.Buffer),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go r.supervise(ctx)
	return r, nil
}

// validEsloggerEvent keeps event names from being read as options.
func validEsloggerEvent(e string) bool {
	if e == "" || len(e) > 64 {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Records returns the channel of *FileAccess and *ProcessEvent records. It
// is closed when the runner stops.
func (r *EsloggerRunner) Records() <-chan any { return r.out }

// Stats returns the counters.
func (r *EsloggerRunner) Stats() EsloggerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Err returns the last failure (nil if none), which wraps one of
// ErrEsloggerMissing, ErrEsloggerNotPermitted or ErrEsloggerNotRoot when
// it was classified.
func (r *EsloggerRunner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// Close stops eslogger (SIGTERM, then SIGKILL after KillAfter), waits for
// it and closes the Records channel.
func (r *EsloggerRunner) Close() error {
	r.once.Do(r.cancel)
	<-r.done
	return nil
}

func (r *EsloggerRunner) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	if err != nil {
		r.stats.LastError = err.Error()
	}
	r.mu.Unlock()
}

func (r *EsloggerRunner) supervise(ctx context.Context) {
	defer close(r.done)
	defer close(r.out)
	var parser EsloggerParser
	backoff := r.opts.RestartMin
	var reported error // the classified failure already logged at error level
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.mu.Lock()
			r.stats.Restarts++
			r.mu.Unlock()
		}
		began := time.Now()
		err := r.runOnce(ctx, &parser)
		if ctx.Err() != nil {
			return
		}
		r.setErr(err)
		wait := backoff
		switch class := esloggerClass(err); {
		case class != nil:
			wait = r.opts.SlowRetry
			if reported != class {
				r.log.Error().Err(err).Dur("retry_in", wait).Msg("eslogger cannot run")
				reported = class
			} else {
				r.log.Debug().Err(err).Msg("eslogger still cannot run")
			}
		default:
			reported = nil
			if time.Since(began) > r.opts.RestartMax {
				backoff = r.opts.RestartMin
				wait = backoff
			}
			r.log.Warn().Err(err).Dur("restart_in", wait).Msg("eslogger exited; restarting")
			backoff = min(2*backoff, r.opts.RestartMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// esloggerClass returns the classified failure err wraps, or nil.
func esloggerClass(err error) error {
	for _, c := range []error{ErrEsloggerMissing, ErrEsloggerNotPermitted, ErrEsloggerNotRoot} {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// runOnce runs eslogger until it exits or ctx is done, and returns why it
// ended.
func (r *EsloggerRunner) runOnce(ctx context.Context, parser *EsloggerParser) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("eslogger: stdout pipe: %w", err)
	}
	stderr := &boundedBuffer{max: r.opts.MaxStderr}
	// Fixed arguments, no shell: the event names were validated.
	cmd := exec.Command(r.opts.Path, r.opts.Events...)
	cmd.Stdout = pw
	cmd.Stderr = stderr
	cmd.Stdin = nil
	// A grandchild holding stderr must not block Wait for ever.
	cmd.WaitDelay = r.opts.KillAfter
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%w (%s)", ErrEsloggerMissing, r.opts.Path)
		}
		return fmt.Errorf("eslogger: start %s: %w", r.opts.Path, err)
	}
	pw.Close() // the child has its copy; EOF comes when it exits
	pid := cmd.Process.Pid
	r.mu.Lock()
	r.stats.Starts++
	r.stats.Running = true
	r.mu.Unlock()
	r.log.Info().Int("pid", pid).Str("path", r.opts.Path).Strs("events", r.opts.Events).Msg("eslogger started")

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The stopper ends the child on ctx, and unblocks the reader when the
	// pipe stays open after the child is gone (a grandchild holds it).
	readerDone := make(chan struct{})
	stopDone := make(chan struct{})
	var waitErr error
	go func() {
		defer close(stopDone)
		select {
		case waitErr = <-exited:
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(r.opts.KillAfter)
			select {
			case waitErr = <-exited:
				t.Stop()
			case <-t.C:
				r.log.Warn().Int("pid", pid).Msg("eslogger ignored SIGTERM; killing it")
				_ = cmd.Process.Kill()
				waitErr = <-exited
			}
		}
		t := time.NewTimer(r.opts.KillAfter)
		defer t.Stop()
		select {
		case <-readerDone:
		case <-t.C:
			pr.Close()
		}
	}()

	r.readLines(pr, parser)
	close(readerDone)
	<-stopDone
	pr.Close()

	r.mu.Lock()
	r.stats.Running = false
	if stderr.dropped > 0 {
		r.stats.StderrTruncated++
	}
	r.mu.Unlock()
	if ctx.Err() != nil {
		r.log.Info().Int("pid", pid).Msg("eslogger stopped")
		return nil
	}
	return classifyEslogger(waitErr, stderr.String(), os.Geteuid())
}

// classifyEslogger turns an exit and its standard error into an error,
// wrapping ErrEsloggerNotRoot or ErrEsloggerNotPermitted when the text
// says so. Endpoint Security's es_new_client results are
// ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED (not root) and
// ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED (no TCC approval, that is no Full
// Disk Access); eslogger's wording is not API, so both the constants and
// plain phrases are matched.
func classifyEslogger(waitErr error, stderr string, euid int) error {
	line := firstLine(stderr)
	low := strings.ToLower(stderr)
	status := "exited"
	if waitErr != nil {
		status = waitErr.Error()
	}
	detail := func(class error) error {
		if line == "" {
			return fmt.Errorf("%w (eslogger %s)", class, status)
		}
		return fmt.Errorf("%w (eslogger %s: %s)", class, status, line)
	}
	switch {
	case strings.Contains(low, "not_privileged") || strings.Contains(low, "not privileged") ||
		strings.Contains(low, "must be run as root") || strings.Contains(low, "requires root") ||
		strings.Contains(low, "root privileges"):
		return detail(ErrEsloggerNotRoot)
	case strings.Contains(low, "not_permitted") || strings.Contains(low, "not permitted") ||
		strings.Contains(low, "full disk access") || strings.Contains(low, "tcc"):
		return detail(ErrEsloggerNotPermitted)
	case euid > 0 && waitErr != nil:
		// Unrecognized wording, but only root may create an ES client.
		return detail(ErrEsloggerNotRoot)
	}
	if line != "" {
		return fmt.Errorf("eslogger %s: %s", status, line)
	}
	return fmt.Errorf("eslogger %s", status)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return cutField(s, 512)
}

// readLines parses rd line by line until EOF or a read error; a bad or
// too long line is counted and skipped.
func (r *EsloggerRunner) readLines(rd io.Reader, parser *EsloggerParser) {
	br := bufio.NewReaderSize(rd, 64<<10)
	var long []byte
	warned := false
	for {
		line, tooLong, err := readBoundedLine(br, r.opts.MaxLine, &long)
		if len(line) > 0 || tooLong {
			r.handleLine(line, tooLong, parser, &warned)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				r.log.Warn().Err(err).Msg("eslogger: reading output")
			}
			return
		}
	}
}

func (r *EsloggerRunner) handleLine(line []byte, tooLong bool, parser *EsloggerParser, warned *bool) {
	var rec any
	var err error
	if tooLong {
		err = fmt.Errorf("eslogger: line longer than %d bytes", r.opts.MaxLine)
	} else {
		rec, err = parser.ParseLine(line)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Lines++
	r.stats.GapEvents, r.stats.GapGlobal = parser.Gaps()
	if err != nil {
		r.stats.BadLines++
		if tooLong {
			r.stats.LongLines++
		}
		if !*warned {
			r.log.Warn().Err(err).Msg("eslogger: skipping bad line (further ones at debug level)")
			*warned = true
		} else {
			r.log.Debug().Err(err).Msg("eslogger: skipping bad line")
		}
		return
	}
	if rec == nil {
		return
	}
	select {
	case r.out <- rec:
		r.stats.Records++
	default:
		r.stats.Dropped++
	}
}

// readBoundedLine returns the next line without its newline. A line over
// max bytes is consumed to its end and reported as tooLong with no data;
// buf is scratch space for lines longer than the reader's buffer. err is
// set at the end of input (with the last unterminated line, if any).
func readBoundedLine(br *bufio.Reader, max int, buf *[]byte) (line []byte, tooLong bool, err error) {
	*buf = (*buf)[:0]
	for {
		frag, e := br.ReadSlice('\n')
		if !tooLong {
			n := len(*buf) + len(frag)
			if e == nil {
				n-- // the newline
			}
			if n > max {
				tooLong = true
				*buf = (*buf)[:0]
			} else if e == bufio.ErrBufferFull || len(*buf) > 0 {
				*buf = append(*buf, frag...)
			}
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			return nil, true, e
		}
		if len(*buf) > 0 {
			frag = *buf
		}
		return bytes.TrimSuffix(frag, []byte{'\n'}), false, e
	}
}

// boundedBuffer keeps the first max bytes written and counts the rest.
type boundedBuffer struct {
	mu      sync.Mutex
	b       []byte
	max     int
	dropped int
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(p), w.max-len(w.b))
	if n > 0 {
		w.b = append(w.b, p[:n]...)
	}
	w.dropped += len(p) - max(n, 0)
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// EsloggerFileStats describe a saved eslogger output read by ReadEslogger.
type EsloggerFileStats struct {
	Lines, Records, BadLines int
	// Errors are the first bad lines' errors ("line N: …"), at most 5.
	Errors []string
	// GapEvents and GapGlobal are the events eslogger reported dropped
	// (sequence-number gaps, EsloggerParser.Gaps).
	GapEvents, GapGlobal uint64
}

// ReadEslogger reads saved eslogger JSON Lines (replay --eslogger) and
// hands each *FileAccess and *ProcessEvent to emit, in file order. A bad or
// over-long line is counted and skipped, as the live reader does: the
// format is not a stable API. Only a read error ends it early.
func ReadEslogger(r io.Reader, emit func(rec any)) (EsloggerFileStats, error) {
	var st EsloggerFileStats
	var parser EsloggerParser
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		line, tooLong, err := readBoundedLine(br, MaxEsloggerLine, &buf)
		if err == nil || len(line) > 0 || tooLong {
			st.Lines++ // every line, blank ones too, so errors name the file's line
		}
		if len(line) > 0 || tooLong {
			rec, perr := parser.ParseLine(line)
			if tooLong {
				perr = fmt.Errorf("line longer than %d bytes", MaxEsloggerLine)
			}
			switch {
			case perr != nil:
				st.BadLines++
				if len(st.Errors) < 5 {
					st.Errors = append(st.Errors, fmt.Sprintf("line %d: %v", st.Lines, perr))
				}
			case rec != nil:
				st.Records++
				emit(rec)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			st.GapEvents, st.GapGlobal = parser.Gaps()
			return st, err
		}
	}
	st.GapEvents, st.GapGlobal = parser.Gaps()
	return st, nil
}
