package capture

// Prefetcher reads a capture file on its own goroutine, a batch of frames
// ahead of the decoder: reading (system calls, copying, record parsing) then
// overlaps decoding on a second core. Frames are copied into a few arenas
// that rotate, so memory stays bounded (prefetchArenas × prefetchArenaSize,
// plus one oversized frame at most).
type Prefetcher struct {
	src   Source
	full  chan *prefetchBatch
	empty chan *prefetchBatch
	cur   *prefetchBatch
	pos   int
	err   error
	stop  chan struct{}
	done  chan struct{}
}

type prefetchBatch struct {
	arena  []byte
	frames []Frame
	err    error // set on the last batch: io.EOF or the read error
}

const (
	prefetchArenaSize = 1 << 20
	prefetchArenas    = 4
	prefetchMaxFrames = 4096
)

// NewPrefetcher starts reading src ahead. The caller must keep reading until
// Next returns an error, or call Close.
func NewPrefetcher(src Source) *Prefetcher {
	p := &Prefetcher{src: src, full: make(chan *prefetchBatch, prefetchArenas),
		empty: make(chan *prefetchBatch, prefetchArenas), stop: make(chan struct{}), done: make(chan struct{})}
	for range prefetchArenas {
		p.empty <- &prefetchBatch{arena: make([]byte, 0, prefetchArenaSize), frames: make([]Frame, 0, 256)}
	}
	go p.run()
	return p
}

func (p *Prefetcher) run() {
	defer close(p.done)
	var fr Frame
	for {
		var b *prefetchBatch
		select {
		case b = <-p.empty:
		case <-p.stop:
			return
		}
		b.arena, b.frames, b.err = b.arena[:0], b.frames[:0], nil
		for len(b.frames) < prefetchMaxFrames {
			if err := p.src.Next(&fr); err != nil {
				b.err = err
				break
			}
			if len(b.arena)+len(fr.Data) > cap(b.arena) && len(b.frames) > 0 {
				// No room: keep this frame for the next batch.
				p.full <- b
				select {
				case b = <-p.empty:
				case <-p.stop:
					return
				}
				b.arena, b.frames, b.err = b.arena[:0], b.frames[:0], nil
			}
			if len(fr.Data) > cap(b.arena) {
				b.arena = make([]byte, 0, len(fr.Data)) // an oversized frame gets its own arena
			}
			start := len(b.arena)
			b.arena = append(b.arena, fr.Data...)
			f := fr
			f.Data = b.arena[start:len(b.arena):len(b.arena)]
			b.frames = append(b.frames, f)
		}
		select {
		case p.full <- b:
		case <-p.stop:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// Next returns the next frame; its Data is valid until the next call.
func (p *Prefetcher) Next(fr *Frame) error {
	for {
		if p.cur != nil && p.pos < len(p.cur.frames) {
			*fr = p.cur.frames[p.pos]
			p.pos++
			return nil
		}
		if p.err != nil {
			return p.err
		}
		if p.cur != nil {
			if p.cur.err != nil {
				p.err = p.cur.err
				return p.err
			}
			if cap(p.cur.arena) > prefetchArenaSize { // give back the oversized arena
				p.cur.arena = make([]byte, 0, prefetchArenaSize)
			}
			p.empty <- p.cur
		}
		p.cur, p.pos = <-p.full, 0
	}
}

// Close stops reading ahead and waits for the reading goroutine.
func (p *Prefetcher) Close() error {
	select {
	case <-p.done:
	default:
		close(p.stop)
		<-p.done
	}
	return nil
}
