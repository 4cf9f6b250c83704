// Package rotate writes a JSON Lines file that rotates by size: when a
// write would take the file past MaxBytes, the file becomes name.1 (name.1
// becomes name.2, …, up to name.Keep; the oldest is removed) and a new file
// is started. A line is never split across files: the writer only rotates
// at a line boundary, so a write that ends inside a line keeps the rest of
// that line in the same file even past MaxBytes. Reopen supports external
// rotation (logrotate with SIGHUP): it reopens the path.
package rotate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// Options configure a Writer. Zero values mean the defaults.
type Options struct {
	// MaxBytes is the size past which the file rotates (default 100 MiB);
	// negative never rotates (external rotation only).
	MaxBytes int64
	// Keep is how many rotated files are kept (default 5); negative keeps
	// none (the full file is removed when rotating).
	Keep int
}

func (o *Options) defaults() {
	if o.MaxBytes == 0 {
		o.MaxBytes = 100 << 20
	}
	if o.Keep == 0 {
		o.Keep = 5
	}
}

// Stats are the writer's counters.
type Stats struct {
	Rotations uint64 `json:"rotations"`
	Reopens   uint64 `json:"reopens"`
	Bytes     uint64 `json:"bytes"`  // written over the writer's life
	Errors    uint64 `json:"errors"` // writes, rotations or reopens that failed
}

// Writer is an io.WriteCloser over the rotating file, safe for concurrent
// use. Files are created with mode 0600.
type Writer struct {
	mu       sync.Mutex
	path     string
	opt      Options
	f        *os.File
	size     int64
	lineOpen bool // the file ends inside a line: no rotation now
	closed   bool
	st       Stats
}

var _ io.WriteCloser = (*Writer)(nil)

// Open opens (appending) or creates path.
func Open(path string, opt Options) (*Writer, error) {
	opt.defaults()
	w := &Writer{path: path, opt: opt}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rotate: open %s: %w", w.path, unwrap(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("rotate: %s: %w", w.path, unwrap(err))
	}
	w.f, w.size, w.lineOpen = f, fi.Size(), false
	if w.size > 0 {
		w.lineOpen = !endsWithNewline(w.path, w.size)
	}
	return nil
}

// endsWithNewline says whether an existing file's last byte ends a line
// (a file cut mid-line by a crash gets the rest of nothing: the next line
// is not glued to it by rotating later, but it is not split either).
func endsWithNewline(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return true
	}
	return b[0] == '\n'
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Write writes p, rotating first when p would take the file past MaxBytes
// and the file ends at a line boundary. p is written whole to one file.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("rotate: %s: %w", w.path, os.ErrClosed)
	}
	if w.f == nil { // a failed reopen or rotation: try again
		if err := w.open(); err != nil {
			w.st.Errors++
			return 0, err
		}
	}
	if w.opt.MaxBytes > 0 && w.size > 0 && !w.lineOpen && w.size+int64(len(p)) > w.opt.MaxBytes {
		if err := w.rotate(); err != nil {
			w.st.Errors++
			if w.f == nil {
				return 0, err
			}
			// The old file could not be moved: keep writing to it rather
			// than lose the line.
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	w.st.Bytes += uint64(n)
	if n > 0 {
		w.lineOpen = p[n-1] != '\n'
	}
	if err != nil {
		w.st.Errors++
		return n, fmt.Errorf("rotate: write %s: %w", w.path, unwrap(err))
	}
	return n, nil
}

func (w *Writer) name(i int) string { return w.path + "." + strconv.Itoa(i) }

// rotate shifts name.i to name.i+1, name to name.1, and opens a new name.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		w.f = nil
		if oerr := w.open(); oerr != nil {
			return errors.Join(fmt.Errorf("rotate: close %s: %w", w.path, unwrap(err)), oerr)
		}
		return fmt.Errorf("rotate: close %s: %w", w.path, unwrap(err))
	}
	w.f = nil
	var err error
	if w.opt.Keep < 0 {
		err = os.Remove(w.path)
	} else {
		if rerr := os.Remove(w.name(w.opt.Keep)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
		for i := w.opt.Keep - 1; i >= 1 && err == nil; i-- {
			if rerr := os.Rename(w.name(i), w.name(i+1)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = rerr
			}
		}
		if err == nil {
			err = os.Rename(w.path, w.name(1))
		}
	}
	if oerr := w.open(); oerr != nil {
		return errors.Join(err, oerr)
	}
	if err != nil {
		return fmt.Errorf("rotate %s: %w", w.path, unwrap(err))
	}
	w.st.Rotations++
	return nil
}

// Reopen closes the file and opens the path again: after an external tool
// (logrotate) moved it away, writing goes on in a new file.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("rotate: reopen %s: %w", w.path, os.ErrClosed)
	}
	var cerr error
	if w.f != nil {
		cerr = w.f.Close()
		w.f = nil
	}
	if err := w.open(); err != nil {
		w.st.Errors++
		return err
	}
	w.st.Reopens++
	if cerr != nil {
		w.st.Errors++
		return fmt.Errorf("rotate: close %s: %w", w.path, unwrap(cerr))
	}
	return nil
}

// Close closes the file; later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.f == nil {
		w.closed = true
		return nil
	}
	w.closed = true
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("rotate: close %s: %w", w.path, unwrap(err))
	}
	return nil
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}
