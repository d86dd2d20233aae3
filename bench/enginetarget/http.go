package enginetarget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
)

// HTTP is the engine behind the journal server, as a workload.Target: every
// Record is one POST /v1/changes over loopback TCP through a server.Client.
// It keeps conns clients, each with its own connection; a call borrows one,
// so at most conns requests are in flight and the server sees conns
// keep-alive connections. Client-side encoding runs in this process and is
// part of the figures, as a co-located writer would pay it.
type HTTP struct {
	dir        string
	j          *engine.Journal
	srv        *server.Server
	clients    chan *server.Client
	all        []*server.Client
	stop       context.CancelFunc
	served     chan error
	baseFsyncs uint64
	ndjson     bool // RecordBatch posts NDJSON instead of a JSON array
}

var _ workload.Target = (*HTTP)(nil)

// OpenHTTP opens a fresh journal in dataDir (runtime root rootDir) under
// mode, starts a server on a free loopback port (no Unix socket, no token)
// and dials conns clients to it. RecordBatch posts a JSON array, or NDJSON
// (application/x-ndjson, one change per line) when ndjson is set. Close
// stops the server and the journal. extra engine options are applied
// last.
func OpenHTTP(dataDir, rootDir string, mode workload.SyncMode, conns int, ndjson bool, extra ...engine.Option) (*HTTP, error) {
	if conns < 1 {
		return nil, fmt.Errorf("http target needs at least one connection, got %d", conns)
	}
	reg := prometheus.NewRegistry()
	e, err := Open(dataDir, rootDir, mode, append([]engine.Option{engine.WithRegisterer(reg)}, extra...)...)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(e.j, server.Config{
		Listen:   "127.0.0.1:0",
		Socket:   server.Disabled,
		Registry: reg,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start server: %w", err), e.Close())
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &HTTP{
		dir: dataDir, j: e.j, srv: srv, stop: stop,
		clients:    make(chan *server.Client, conns),
		served:     make(chan error, 1),
		baseFsyncs: e.baseFsyncs,
		ndjson:     ndjson,
	}
	go func() { h.served <- srv.Serve(ctx) }()
	for i := 0; i < conns; i++ {
		c := server.Dial("", srv.Addr(), "")
		h.all = append(h.all, c)
		h.clients <- c
	}
	return h, nil
}

// Name returns "engine".
func (h *HTTP) Name() string { return "engine" }

// Dir returns the journal's data directory.
func (h *HTTP) Dir() string { return h.dir }

// Fsyncs returns the hot-log fsyncs since the journal was opened.
func (h *HTTP) Fsyncs() uint64 { return h.j.Status().Fsyncs - h.baseFsyncs }

// Record posts rec as one change.
func (h *HTTP) Record(ctx context.Context, rec workload.Record) error {
	return h.post(ctx, []engine.Change{change(&rec)})
}

// RecordBatch posts recs as one JSON array, or as NDJSON.
func (h *HTTP) RecordBatch(ctx context.Context, recs []workload.Record) error {
	cs := make([]engine.Change, len(recs))
	for i := range recs {
		cs[i] = change(&recs[i])
	}
	return h.post(ctx, cs)
}

func (h *HTTP) post(ctx context.Context, cs []engine.Change) error {
	record := (*server.Client).Record
	if h.ndjson && len(cs) > 1 {
		record = (*server.Client).RecordNDJSON
	}
	var c *server.Client
	select {
	case c = <-h.clients:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := record(c, ctx, cs)
	h.clients <- c
	return err
}

// Close stops the server (draining in-flight requests), closes the clients'
// connections and closes the journal.
func (h *HTTP) Close() error {
	h.stop()
	serveErr := <-h.served
	h.served <- serveErr // a second Close sees the same answer
	for _, c := range h.all {
		c.Close()
	}
	if err := h.j.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
		return errors.Join(serveErr, fmt.Errorf("close engine: %w", err))
	}
	return serveErr
}
