package baseline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/internal/fsx"
)

// openDataFile creates dir and its append-only data file, durably.
func openDataFile(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create baseline dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open baseline file: %w", err)
	}
	if err := fsx.SyncDir(dir); err != nil {
		return nil, errors.Join(fmt.Errorf("sync baseline dir: %w", err), f.Close())
	}
	return f, nil
}

// PlainFsync is baseline (a): each Record encodes one JSON line, appends it to
// a plain file and (under SyncAlways) fsyncs, all under one mutex. It is safe
// for concurrent use; writers queue on the mutex.
type PlainFsync struct {
	dir  string
	opts Options
	enc  encoder

	mu     sync.Mutex // serializes write and fsync
	f      *os.File
	closed bool // guarded by mu

	fsyncs  atomic.Uint64
	syncErr atomic.Pointer[error]
	syncer  *intervalSyncer
}

var _ workload.Target = (*PlainFsync)(nil)

// OpenPlainFsync creates dir if needed and opens (appending to) its data file.
func OpenPlainFsync(dir string, opts Options) (*PlainFsync, error) {
	f, err := openDataFile(dir)
	if err != nil {
		return nil, err
	}
	p := &PlainFsync{dir: dir, opts: opts, f: f}
	if opts.Sync == workload.SyncInterval {
		p.syncer = startIntervalSyncer(opts.interval(), f.Sync, &p.fsyncs, &p.syncErr)
	}
	return p, nil
}

// Name returns "plain-fsync".
func (p *PlainFsync) Name() string { return "plain-fsync" }

// Dir returns the directory holding the data file.
func (p *PlainFsync) Dir() string { return p.dir }

// Fsyncs returns the number of fsyncs of the data file since open.
func (p *PlainFsync) Fsyncs() uint64 { return p.fsyncs.Load() }

// Record appends rec as one line; under SyncAlways it returns after the line
// is fsynced.
func (p *PlainFsync) Record(ctx context.Context, rec workload.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf)
	if _, err := p.enc.appendLine(buf, &rec); err != nil {
		return err
	}
	return p.write(buf.Bytes())
}

// RecordBatch appends recs as lines with one write and (under SyncAlways) one
// fsync.
func (p *PlainFsync) RecordBatch(ctx context.Context, recs []workload.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf)
	for i := range recs {
		if _, err := p.enc.appendLine(buf, &recs[i]); err != nil {
			return err
		}
	}
	return p.write(buf.Bytes())
}

func (p *PlainFsync) write(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, err := p.f.Write(b); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	if p.opts.Sync == workload.SyncAlways {
		p.fsyncs.Add(1)
		if err := p.f.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	return nil
}

// Close stops the background fsync, fsyncs what is unsynced (not under
// SyncAlways, where nothing is) and closes the file.
func (p *PlainFsync) Close() error {
	p.syncer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if e := p.syncErr.Load(); e != nil {
		errs = append(errs, fmt.Errorf("background fsync: %w", *e))
	}
	if p.opts.Sync != workload.SyncAlways {
		p.fsyncs.Add(1)
		if err := p.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("fsync: %w", err))
		}
	}
	if err := p.f.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
