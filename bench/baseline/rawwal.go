package baseline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/wal"

	"github.com/agentruntime/statejournal/bench/workload"
)

// openWAL opens a tidwall/wal log in dir with its default options, except that
// NoSync is set unless every write must be durable.
func openWAL(dir string, opts Options) (*wal.Log, uint64, error) {
	o := *wal.DefaultOptions
	o.NoSync = opts.Sync != workload.SyncAlways
	l, err := wal.Open(dir, &o)
	if err != nil {
		return nil, 0, fmt.Errorf("open wal: %w", err)
	}
	last, err := l.LastIndex()
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("wal last index: %w", err), l.Close())
	}
	return l, last, nil
}

// walRotations counts the fsyncs tidwall/wal issues on its own when it
// rotates a segment: one per segment file beyond the first.
func walRotations(dir string) uint64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var segs uint64
	for _, e := range ents {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			segs++
		}
	}
	if segs == 0 {
		return 0
	}
	return segs - 1
}

// RawWAL is baseline (c): github.com/tidwall/wal with one Write per record
// and its built-in fsync per Write (under SyncAlways), serialized by a mutex
// that also assigns the index. Data is the record's JSON without the newline
// (the log frames it). RecordBatch is one WriteBatch under the mutex.
type RawWAL struct {
	dir  string
	opts Options
	enc  encoder

	mu     sync.Mutex // serializes writes and index assignment
	log    *wal.Log
	next   uint64    // guarded by mu: index of the next entry
	batch  wal.Batch // guarded by mu
	closed bool      // guarded by mu

	fsyncs  atomic.Uint64
	syncErr atomic.Pointer[error]
	syncer  *intervalSyncer
}

var _ workload.Target = (*RawWAL)(nil)

// OpenRawWAL opens (creating) a tidwall/wal log in dir.
func OpenRawWAL(dir string, opts Options) (*RawWAL, error) {
	l, last, err := openWAL(dir, opts)
	if err != nil {
		return nil, err
	}
	w := &RawWAL{dir: dir, opts: opts, log: l, next: last + 1}
	if opts.Sync == workload.SyncInterval {
		w.syncer = startIntervalSyncer(opts.interval(), l.Sync, &w.fsyncs, &w.syncErr)
	}
	return w, nil
}

// Name returns "wal".
func (w *RawWAL) Name() string { return "wal" }

// Dir returns the log's directory.
func (w *RawWAL) Dir() string { return w.dir }

// Fsyncs returns the fsyncs issued since open, segment rotations included.
func (w *RawWAL) Fsyncs() uint64 { return w.fsyncs.Load() + walRotations(w.dir) }

// Record writes rec as one log entry; under SyncAlways the log fsyncs before
// Write returns.
func (w *RawWAL) Record(ctx context.Context, rec workload.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf)
	if _, err := w.enc.appendLine(buf, &rec); err != nil {
		return err
	}
	line := buf.Bytes()
	line = line[:len(line)-1]

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.log.Write(w.next, line); err != nil {
		return fmt.Errorf("wal write %d: %w", w.next, err)
	}
	w.next++
	if w.opts.Sync == workload.SyncAlways {
		w.fsyncs.Add(1)
	}
	return nil
}

// RecordBatch writes recs with one WriteBatch (one fsync under SyncAlways).
func (w *RawWAL) RecordBatch(ctx context.Context, recs []workload.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := getRequest()
	defer putRequest(req)
	for i := range recs {
		if _, err := w.enc.appendLine(&req.buf, &recs[i]); err != nil {
			return err
		}
		req.ends = append(req.ends, req.buf.Len())
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.batch.Clear()
	idx := w.next
	req.lines(func(line []byte) {
		w.batch.Write(idx, line)
		idx++
	})
	if err := w.log.WriteBatch(&w.batch); err != nil {
		return fmt.Errorf("wal write batch at %d: %w", w.next, err)
	}
	w.next = idx
	if w.opts.Sync == workload.SyncAlways {
		w.fsyncs.Add(1)
	}
	return nil
}

// Close stops the background fsync, fsyncs what is unsynced (not under
// SyncAlways) and closes the log.
func (w *RawWAL) Close() error {
	w.syncer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return closeWAL(w.log, w.opts, &w.fsyncs, &w.syncErr)
}

func closeWAL(l *wal.Log, opts Options, fsyncs *atomic.Uint64, syncErr *atomic.Pointer[error]) error {
	var errs []error
	if e := syncErr.Load(); e != nil {
		errs = append(errs, fmt.Errorf("background fsync: %w", *e))
	}
	if opts.Sync != workload.SyncAlways {
		fsyncs.Add(1)
		if err := l.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("wal sync: %w", err))
		}
	}
	if err := l.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wal: %w", err))
	}
	return errors.Join(errs...)
}

// RawWALBatch is baseline (d): tidwall/wal fed by the same group committer as
// PlainGroupCommit; each drained batch is one WriteBatch with one fsync (under
// SyncAlways).
type RawWALBatch struct {
	dir  string
	opts Options
	enc  encoder
	log  *wal.Log
	c    *committer

	next  uint64    // committer goroutine only
	batch wal.Batch // committer goroutine only

	closeOnce sync.Once
	closeErr  error
	fsyncs    atomic.Uint64
	syncErr   atomic.Pointer[error]
	syncer    *intervalSyncer
}

var _ workload.Target = (*RawWALBatch)(nil)

// OpenRawWALBatch opens (creating) a tidwall/wal log in dir and starts the
// committer goroutine, which Close stops.
func OpenRawWALBatch(dir string, opts Options) (*RawWALBatch, error) {
	l, last, err := openWAL(dir, opts)
	if err != nil {
		return nil, err
	}
	w := &RawWALBatch{dir: dir, opts: opts, log: l, next: last + 1}
	w.c = newCommitter(w.commit)
	if opts.Sync == workload.SyncInterval {
		w.syncer = startIntervalSyncer(opts.interval(), l.Sync, &w.fsyncs, &w.syncErr)
	}
	return w, nil
}

// Name returns "wal-batch".
func (w *RawWALBatch) Name() string { return "wal-batch" }

// Dir returns the log's directory.
func (w *RawWALBatch) Dir() string { return w.dir }

// Fsyncs returns the fsyncs issued since open, segment rotations included.
func (w *RawWALBatch) Fsyncs() uint64 { return w.fsyncs.Load() + walRotations(w.dir) }

func (w *RawWALBatch) commit(batch []*commitRequest) error {
	w.batch.Clear()
	idx := w.next
	for _, r := range batch {
		r.lines(func(line []byte) {
			w.batch.Write(idx, line)
			idx++
		})
	}
	if err := w.log.WriteBatch(&w.batch); err != nil {
		return fmt.Errorf("wal write batch at %d: %w", w.next, err)
	}
	w.next = idx
	if w.opts.Sync == workload.SyncAlways {
		w.fsyncs.Add(1)
	}
	return nil
}

// Record hands rec to the committer; under SyncAlways it returns after the
// batch holding it is fsynced.
func (w *RawWALBatch) Record(ctx context.Context, rec workload.Record) error {
	return w.RecordBatch(ctx, []workload.Record{rec})
}

// RecordBatch hands all of recs to the committer as one request.
func (w *RawWALBatch) RecordBatch(ctx context.Context, recs []workload.Record) error {
	return submitEncoded(ctx, &w.enc, w.c, recs)
}

// Close stops the committer after it answered what was queued, stops the
// background fsync, fsyncs what is unsynced (not under SyncAlways) and closes
// the log.
func (w *RawWALBatch) Close() error {
	w.closeOnce.Do(func() {
		w.c.close()
		w.syncer.Stop()
		w.closeErr = closeWAL(w.log, w.opts, &w.fsyncs, &w.syncErr)
	})
	return w.closeErr
}
