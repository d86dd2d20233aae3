package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Defaults of the per-client stream buffer (Config.StreamBuffer,
// StreamStall, StreamFinalWrite).
const (
	DefaultStreamBuffer     = 1 << 20
	DefaultStreamStall      = 5 * time.Second
	DefaultStreamFinalWrite = 30 * time.Second
)

// Stream names (the stream label of the stream metrics, the stream key
// of the logs) and resync reasons.
const (
	streamFollow        = "follow"
	streamInvalidations = "invalidations"
	resyncOverflow      = "overflow"
	resyncCompacted     = "compacted"
)

// errOverflow is push's answer when the client's buffer stayed full for
// the stall time: the client is not reading.
var errOverflow = errors.New("server: the stream client's buffer overflowed")

// errWriterGone is push's answer once the connection failed.
var errWriterGone = errors.New("server: the stream connection failed")

// streamItem is one encoded line or event; seq is the sequence it brings
// the client to (0 for a control line).
type streamItem struct {
	b   []byte
	seq uint64
}

// streamOut is the bounded buffer between a stream's producer (the
// handler's loop over the journal) and one goroutine writing to the
// connection. The producer never blocks on the client's socket: it waits
// at most the stall time for room, then the client is an overflow. The
// server holds at most twice max bytes per client (the queue and the
// batch being written), whatever the client does.
type streamOut struct {
	max   int
	stall time.Duration

	mu     sync.Mutex
	items  []streamItem
	size   int
	done   bool   // finish was called: nothing more is pushed
	taken  uint64 // the highest seq handed to the writer
	failed bool

	wake   chan struct{} // to the writer: items or done
	room   chan struct{} // to the producer: the writer took the queue
	gone   chan struct{} // closed when the writer failed
	exited chan struct{} // closed when the writer returned
}

// newStreamOut starts the writer: it writes every item to w and calls
// flush after each batch. On a write or flush error it calls fail (the
// handler cancels its loop) and stops. from is the sequence the stream
// starts after.
func newStreamOut(max int, stall time.Duration, from uint64, w io.Writer, flush func() error, fail func()) *streamOut {
	o := &streamOut{max: max, stall: stall, taken: from,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), gone: make(chan struct{}), exited: make(chan struct{})}
	go o.run(w, flush, fail)
	return o
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (o *streamOut) run(w io.Writer, flush func() error, fail func()) {
	defer close(o.exited)
	for {
		o.mu.Lock()
		for len(o.items) == 0 && !o.done {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		batch := o.items
		o.items, o.size = nil, 0
		for _, it := range batch {
			if it.seq > 0 {
				o.taken = it.seq
			}
		}
		last := o.done
		o.mu.Unlock()
		signal(o.room)
		err := error(nil)
		for _, it := range batch {
			if _, err = w.Write(it.b); err != nil {
				break
			}
		}
		if err == nil && len(batch) > 0 {
			err = flush()
		}
		if err != nil {
			o.mu.Lock()
			o.failed = true
			o.mu.Unlock()
			close(o.gone)
			fail()
			return
		}
		if last {
			o.mu.Lock()
			empty := len(o.items) == 0
			o.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// push queues b. When the queue is full it waits up to the stall time
// for the writer to take it; then it answers errOverflow. It answers
// errWriterGone once the connection failed and ctx's error when ctx ends.
func (o *streamOut) push(ctx context.Context, b []byte, seq uint64) error {
	var deadline time.Time
	for {
		o.mu.Lock()
		if o.failed {
			o.mu.Unlock()
			return errWriterGone
		}
		if o.size == 0 || o.size+len(b) <= o.max {
			o.items = append(o.items, streamItem{b: b, seq: seq})
			o.size += len(b)
			o.mu.Unlock()
			signal(o.wake)
			return nil
		}
		o.mu.Unlock()
		if deadline.IsZero() {
			deadline = time.Now().Add(o.stall)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return errOverflow
		}
		t := time.NewTimer(wait)
		select {
		case <-o.room:
		case <-o.gone:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		t.Stop()
	}
}

// finish ends the stream: with drop, the queued items not yet handed to
// the writer are discarded (an overflow); final, when not nil, is given
// the sequence the client will have got (the last item the writer has
// or, without drop, the last queued) and returns the last line to send.
// finish waits for the writer to write it or fail; the caller has set a
// write deadline so that the wait is bounded.
func (o *streamOut) finish(drop bool, final func(resume uint64) []byte) {
	o.mu.Lock()
	if drop {
		o.items, o.size = nil, 0
	}
	resume := o.taken
	for _, it := range o.items {
		if it.seq > 0 {
			resume = it.seq
		}
	}
	if final != nil && !o.failed {
		if b := final(resume); b != nil {
			o.items = append(o.items, streamItem{b: b})
		}
	}
	o.done = true
	o.mu.Unlock()
	signal(o.wake)
	<-o.exited
}
