package main

import (
	"sync"

	"exfilwatch/attribution"
)

// fileWatch copies file accesses seen by fanotify into the host journal,
// with the process that made them described at once (it may exit soon).
type fileWatch struct {
	fan   *attribution.Fanotify
	procs attribution.ProcessSource
	wg    sync.WaitGroup
	once  sync.Once
}

// startFileWatch watches the filesystems holding paths. Files for which
// hash returns true (nil: none) and not larger than maxHash bytes (0: the
// fanotify default) are hashed when read or written; the journal gets
// their size and hash with the access.
func startFileWatch(paths []string, j *attribution.JournalWriter, hash func(path string) bool, maxHash int64) (*fileWatch, error) {
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
			if procs != nil {
				p, _ = procs.Process(fa.PID)
			}
			j.FileAccess(fa, p)
		}
	}()
	return w, nil
}

// stop closes the watch and waits until every access was written.
func (w *fileWatch) stop() {
	w.once.Do(func() {
		w.fan.Close()
		w.wg.Wait()
	})
}
