package baseline

import (
	"bytes"
	"sync"
)

// Group-commit limits: the committer drains at most this many records or
// bytes into one write (a single request larger than that is taken whole).
const (
	maxBatchRecords = 4096
	maxBatchBytes   = 4 << 20
)

// commitRequest is one writer's hand-off: encoded records and the channel the
// committer answers on. Requests are pooled with their buffers and channel,
// so a call allocates no request.
type commitRequest struct {
	buf  bytes.Buffer // newline-terminated JSON lines, back to back
	ends []int        // end offset in buf of each line
	done chan error
}

var requestPool = sync.Pool{New: func() any {
	return &commitRequest{done: make(chan error, 1)}
}}

func getRequest() *commitRequest {
	r := requestPool.Get().(*commitRequest)
	r.buf.Reset()
	r.ends = r.ends[:0]
	return r
}

func putRequest(r *commitRequest) {
	if r.buf.Cap() <= 1<<20 {
		requestPool.Put(r)
	}
}

// lines calls fn with each encoded line of r, without its newline.
func (r *commitRequest) lines(fn func(line []byte)) {
	b := r.buf.Bytes()
	start := 0
	for _, end := range r.ends {
		fn(b[start : end-1])
		start = end
	}
}

// commitSink writes one drained batch and makes it durable (or not, by
// policy). It runs only on the committer goroutine.
type commitSink func(batch []*commitRequest) error

// committer is the group committer the PlainGroupCommit and RawWALBatch
// baselines share: writers hand it requests and wait on their own channel;
// one goroutine blocks for the first request, drains what is queued up to the
// limits, calls the sink once and answers every request with its result.
// After a sink error every later request gets the same error (sticky).
type committer struct {
	in   chan *commitRequest
	sink commitSink

	mu     sync.RWMutex // guards closed, so no send races close(in)
	closed bool         // guarded by mu

	done chan struct{}
}

// newCommitter starts the committer goroutine; its owner must call close.
func newCommitter(sink commitSink) *committer {
	c := &committer{
		in:   make(chan *commitRequest, maxBatchRecords),
		sink: sink,
		done: make(chan struct{}),
	}
	go c.loop()
	return c
}

func (c *committer) loop() {
	defer close(c.done)
	var (
		batch  []*commitRequest
		sticky error
	)
	for req := range c.in {
		batch = append(batch[:0], req)
		records, size := len(req.ends), req.buf.Len()
	drain:
		for records < maxBatchRecords && size < maxBatchBytes {
			select {
			case r, ok := <-c.in:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				records += len(r.ends)
				size += r.buf.Len()
			default:
				break drain
			}
		}
		err := sticky
		if err == nil {
			err = c.sink(batch)
			sticky = err
		}
		for _, r := range batch {
			r.done <- err
		}
		clear(batch)
	}
}

// submit hands req to the committer and waits for its answer.
func (c *committer) submit(req *commitRequest) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.in <- req
	c.mu.RUnlock()
	return <-req.done
}

// close stops accepting requests, lets the committer answer what is queued
// and waits for it to exit.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.in)
	}
	c.mu.Unlock()
	<-c.done
}
