package events

import "sync"

// Async moves encoding and writing off the decoding goroutine: events are
// copied into batches that another goroutine hands to the wrapped sink. On a
// capture of many short connections, encoding two events per connection
// costs as much as decoding it, and a second core is usually idle.
//
// The records' pointers (transactions, commands, transfers, attribution
// results) are owned by the sink once emitted and never touched again by the
// producer, so copying the records themselves is enough.
type Async struct {
	out     Sink
	flush   func() error
	ch      chan []asyncItem
	free    chan []asyncItem
	batch   []asyncItem
	wg      sync.WaitGroup
	flushMu sync.Mutex
	ack     chan struct{}
	err     error // the wrapped sink's last Flush error, set before ack
}

type asyncItem struct {
	rec   Record
	flush bool // a marker: flush the sink and acknowledge
}

const (
	asyncBatch   = 256
	asyncBatches = 8 // bounds memory: at most this many batches in flight
)

// NewAsync starts the writer goroutine. flush is the wrapped sink's Flush.
func NewAsync(out Sink, flush func() error) *Async {
	a := &Async{out: out, flush: flush, ch: make(chan []asyncItem, asyncBatches),
		free: make(chan []asyncItem, asyncBatches+2), ack: make(chan struct{})}
	a.batch = make([]asyncItem, 0, asyncBatch)
	a.wg.Add(1)
	go a.run()
	return a
}

func (a *Async) run() {
	defer a.wg.Done()
	for b := range a.ch {
		for i := range b {
			it := &b[i]
			if it.flush {
				a.err = a.flush()
				a.ack <- struct{}{}
			} else {
				it.rec.Deliver(a.out)
			}
			*it = asyncItem{} // drop references for the garbage collector
		}
		select {
		case a.free <- b[:0]:
		default:
		}
	}
}

func (a *Async) add(it asyncItem) {
	a.batch = append(a.batch, it)
	if len(a.batch) == cap(a.batch) {
		a.send()
	}
}

func (a *Async) send() {
	if len(a.batch) == 0 {
		return
	}
	a.ch <- a.batch
	select {
	case b := <-a.free:
		a.batch = b
	default:
		a.batch = make([]asyncItem, 0, asyncBatch)
	}
}

// HTTP implements Sink.
func (a *Async) HTTP(e *HTTP) { a.add(asyncItem{rec: Record{Kind: KindHTTP, HTTP: *e}}) }

// FTPCommand implements Sink.
func (a *Async) FTPCommand(e *FTPCommand) { a.add(asyncItem{rec: Record{Kind: KindFTP, FTP: *e}}) }

// FTPData implements Sink.
func (a *Async) FTPData(e *FTPData) { a.add(asyncItem{rec: Record{Kind: KindFTPData, FTPData: *e}}) }

// Flow implements Sink.
func (a *Async) Flow(e *Flow) { a.add(asyncItem{rec: Record{Kind: KindFlow, Flow: *e}}) }

// Flush hands over every event given so far, waits until the wrapped sink
// has written and flushed them, and returns its error.
func (a *Async) Flush() error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.add(asyncItem{flush: true})
	a.send()
	<-a.ack
	return a.err
}

// Close flushes and stops the writer goroutine.
func (a *Async) Close() error {
	err := a.Flush()
	close(a.ch)
	a.wg.Wait()
	return err
}
