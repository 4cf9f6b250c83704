package main

import (
	"context"
	"sync"

	"exfilwatch/attribution"
)

// hostSink receives the host side's records: the detector, and the
// journal of a recording.
type hostSink struct {
	fileAccess func(attribution.FileAccess, *attribution.Process)
	process    func(attribution.ProcessEvent)
	// describe says whether an access needs its process described (read
	// from /proc) before it is handed on: on a whole filesystem most
	// accesses are neither sensitive nor recorded, and describing each
	// would cost more than everything else. nil: every access.
	describe func(attribution.FileAccess) bool
}

// fileWatch hands file accesses seen by fanotify to the host sink, with
// the process that made them described at once (it may exit soon).
type fileWatch struct {
	fan   *attribution.Fanotify
	procs attribution.ProcessSource
	wg    sync.WaitGroup
	once  sync.Once
}

// startFileWatch watches the filesystems holding paths. Files for which
// hash returns true (nil: none) and not larger than maxHash bytes (0: the
// fanotify default) are hashed when read or written; the records carry
// their size and hash.
func startFileWatch(paths []string, sink hostSink, hash func(path string) bool, maxHash int64) (*fileWatch, error) {
	// Mark whole filesystems, not mounts: a process in another mount
	// namespace (a container, ip netns exec) reaches the same files
	// through another mount.
	fan, err := attribution.NewFanotify(attribution.FanotifyOptions{Paths: paths, Filesystem: true,
		Hash: hash, MaxHashBytes: maxHash})
	if err != nil {
		return nil, err
	}
	table, procs, _ := attribution.NewSystem()
	if table != nil {
		table.Close() // only the process source is needed here
	}
	w := &fileWatch{fan: fan, procs: procs}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for fa := range fan.Events() {
			var p *attribution.Process
			if procs != nil && (sink.describe == nil || sink.describe(fa)) {
				p, _ = procs.Process(fa.PID)
			}
			sink.fileAccess(fa, p)
		}
	}()
	return w, nil
}

// stop closes the watch and waits until every access was handed on.
func (w *fileWatch) stop() {
	w.once.Do(func() {
		w.fan.Close()
		w.wg.Wait()
	})
}

// esWatch runs eslogger (macOS Endpoint Security) under supervision and
// hands its records to the host sink. eslogger names the files but gives
// no descriptor, so reads of sensitive files are hashed by path on the
// hasher's worker: the records then carry what fanotify's carry on Linux
// (Size, SHA256) for the detector's content match. Every record goes
// through the hasher's queue, hashed or not, so the sink sees eslogger's
// order (a read waiting for its hash is not overtaken by its process's
// exit).
type esWatch struct {
	r      *attribution.EsloggerRunner
	h      *attribution.FileHasher
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startEsWatch runs eslogger at path. Files read (read or read-write
// opens) whose path hash accepts (nil: none) are hashed.
func startEsWatch(path string, sink hostSink, hash func(path string) bool) (*esWatch, error) {
	return startEsWatchOpts(attribution.EsloggerOptions{Path: path, Logger: logger}, sink, hash, attribution.FileHasherOptions{})
}

func startEsWatchOpts(eo attribution.EsloggerOptions, sink hostSink, hash func(path string) bool, ho attribution.FileHasherOptions) (*esWatch, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := attribution.RunEslogger(ctx, eo)
	if err != nil {
		cancel()
		return nil, err
	}
	h := attribution.NewFileHasher(ho, func(rec any) {
		switch v := rec.(type) {
		case *attribution.FileAccess:
			sink.fileAccess(*v, v.Process)
		case *attribution.ProcessEvent:
			sink.process(*v)
		}
	})
	w := &esWatch{r: r, h: h, cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer h.Close() // emits what is queued before stop returns
		for rec := range r.Records() {
			want := false
			if fa, ok := rec.(*attribution.FileAccess); ok && hash != nil && fa.Result == 0 &&
				(fa.Access == attribution.AccessRead || fa.Access == attribution.AccessReadWrite) {
				want = hash(fa.Path)
			}
			// A full queue drops the record, counted in the hasher's
			// stats: this loop must keep draining eslogger's records.
			h.Submit(rec, want)
		}
	}()
	return w, nil
}

func (w *esWatch) stop() {
	w.once.Do(func() {
		w.r.Close()
		w.cancel()
		w.wg.Wait()
	})
}
