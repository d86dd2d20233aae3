package baseline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/agentruntime/statejournal/bench/workload"
)

// PlainGroupCommit is baseline (b): the plain file and JSON lines of
// PlainFsync behind a group committer. Writers encode in their own goroutine
// and hand the line to the committer, which drains up to 4096 records or
// 4 MiB, writes them with one write and (under SyncAlways) one fsync, and
// answers everyone. It has no validation, redaction, framing, index or
// metrics: it is the ceiling the engine's group commit is held against.
type PlainGroupCommit struct {
	dir  string
	opts Options
	enc  encoder
	f    *os.File // written only by the committer goroutine
	c    *committer
	wbuf []byte // committer goroutine only

	closeOnce sync.Once
	closeErr  error
	fsyncs    atomic.Uint64
	syncErr   atomic.Pointer[error]
	syncer    *intervalSyncer
}

var _ workload.Target = (*PlainGroupCommit)(nil)

// OpenPlainGroupCommit creates dir if needed, opens its data file and starts
// the committer goroutine, which Close stops.
func OpenPlainGroupCommit(dir string, opts Options) (*PlainGroupCommit, error) {
	f, err := openDataFile(dir)
	if err != nil {
		return nil, err
	}
	p := &PlainGroupCommit{dir: dir, opts: opts, f: f}
	p.c = newCommitter(p.commit)
	if opts.Sync == workload.SyncInterval {
		p.syncer = startIntervalSyncer(opts.interval(), f.Sync, &p.fsyncs, &p.syncErr)
	}
	return p, nil
}

// Name returns "plain-group".
func (p *PlainGroupCommit) Name() string { return "plain-group" }

// Dir returns the directory holding the data file.
func (p *PlainGroupCommit) Dir() string { return p.dir }

// Fsyncs returns the number of fsyncs of the data file since open.
func (p *PlainGroupCommit) Fsyncs() uint64 { return p.fsyncs.Load() }

func (p *PlainGroupCommit) commit(batch []*commitRequest) error {
	p.wbuf = p.wbuf[:0]
	for _, r := range batch {
		p.wbuf = append(p.wbuf, r.buf.Bytes()...)
	}
	if _, err := p.f.Write(p.wbuf); err != nil {
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

// Record hands rec's line to the committer; under SyncAlways it returns after
// the batch holding it is fsynced.
func (p *PlainGroupCommit) Record(ctx context.Context, rec workload.Record) error {
	return p.RecordBatch(ctx, []workload.Record{rec})
}

// RecordBatch hands all of recs to the committer as one request.
func (p *PlainGroupCommit) RecordBatch(ctx context.Context, recs []workload.Record) error {
	return submitEncoded(ctx, &p.enc, p.c, recs)
}

// submitEncoded encodes recs into a pooled request and waits for the
// committer's answer.
func submitEncoded(ctx context.Context, enc *encoder, c *committer, recs []workload.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := getRequest()
	for i := range recs {
		if _, err := enc.appendLine(&req.buf, &recs[i]); err != nil {
			putRequest(req)
			return err
		}
		req.ends = append(req.ends, req.buf.Len())
	}
	err := c.submit(req)
	putRequest(req)
	return err
}

// Close stops the committer after it answered what was queued, stops the
// background fsync, fsyncs what is unsynced (not under SyncAlways) and closes
// the file.
func (p *PlainGroupCommit) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *PlainGroupCommit) close() error {
	p.c.close()
	p.syncer.Stop()
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
