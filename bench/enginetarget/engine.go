package enginetarget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/engine"
)

// Engine is the journal engine as a workload.Target.
type Engine struct {
	dir        string
	j          *engine.Journal
	baseFsyncs uint64 // fsyncs Open itself issued, left out of Fsyncs
	batches    sync.Pool
}

var _ workload.Target = (*Engine)(nil)

// Open opens a fresh journal in dataDir under mode, with metrics on a private
// registry and the runtime root (which surface storage paths resolve
// against) set to rootDir, so nothing outside the two directories is touched,
// and with background compaction on, as the server runs it.
// extra options are applied last.
func Open(dataDir, rootDir string, mode workload.SyncMode, extra ...engine.Option) (*Engine, error) {
	policy, err := engine.ParseSyncPolicy(mode.String())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return nil, fmt.Errorf("create runtime root: %w", err)
	}
	opts := append([]engine.Option{
		engine.WithSync(policy),
		engine.WithRegisterer(prometheus.NewRegistry()),
		engine.WithRoot(rootDir),
		// As journalctl serve runs it: sealed segments are compacted in the
		// background, which bounds the hot log and its in-memory index.
		engine.WithAutoCompact(engine.AutoCompact{Enabled: true}),
		engine.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}, extra...)
	j, err := engine.Open(dataDir, opts...)
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	return &Engine{dir: dataDir, j: j, baseFsyncs: j.Status().Fsyncs}, nil
}

// Name returns "engine".
func (e *Engine) Name() string { return "engine" }

// Dir returns the journal's data directory.
func (e *Engine) Dir() string { return e.dir }

// Journal returns the engine under test.
func (e *Engine) Journal() *engine.Journal { return e.j }

// Fsyncs returns the hot-log fsyncs since Open returned.
func (e *Engine) Fsyncs() uint64 { return e.j.Status().Fsyncs - e.baseFsyncs }

func change(rec *workload.Record) engine.Change {
	return engine.Change{
		Source:        rec.Source,
		Surface:       rec.Surface,
		ChangeType:    rec.ChangeType,
		AggregateType: rec.AggregateType,
		AggregateID:   rec.AggregateID,
		Metadata:      rec.Metadata,
	}
}

// Record records rec with one engine Record call.
func (e *Engine) Record(ctx context.Context, rec workload.Record) error {
	_, err := e.j.Record(ctx, change(&rec))
	return err
}

// RecordBatch records recs with one engine RecordBatch call. The Change slice
// is pooled so the adapter adds no allocation per call.
func (e *Engine) RecordBatch(ctx context.Context, recs []workload.Record) error {
	p, _ := e.batches.Get().(*[]engine.Change)
	if p == nil {
		p = new([]engine.Change)
	}
	cs := (*p)[:0]
	for i := range recs {
		cs = append(cs, change(&recs[i]))
	}
	_, err := e.j.RecordBatch(ctx, cs)
	clear(cs)
	*p = cs[:0]
	e.batches.Put(p)
	return err
}

// Close closes the journal.
func (e *Engine) Close() error {
	if err := e.j.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
		return fmt.Errorf("close engine: %w", err)
	}
	return nil
}

// RootDirFor returns the runtime root directory the harness pairs with a
// data directory: a sibling, so bytes on disk measure the journal alone.
func RootDirFor(dataDir string) string {
	return filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+".root")
}
