package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// batchWriter is what record writes through: the engine itself, or the
// server that holds the directory.
type batchWriter interface {
	RecordBatch(ctx context.Context, cs []engine.Change) ([]engine.Receipt, error)
	Close() error
}

type clientWriter struct{ c *server.Client }

func (w clientWriter) RecordBatch(ctx context.Context, cs []engine.Change) ([]engine.Receipt, error) {
	return w.c.Record(ctx, cs)
}
func (w clientWriter) Close() error { w.c.Close(); return nil }

// openWriter returns the engine when no other process writes, or a client
// of the server that holds the directory.
func (g *globals) openWriter(sync string) (batchWriter, string, error) {
	via := func(h *engine.Holder) (batchWriter, string, error) {
		if h == nil || (h.Socket == "" && h.Address == "") {
			return nil, "", fmt.Errorf("%w: held by %s, which serves no API to write through; stop it or wait", types.ErrLocked, describeHolder(h))
		}
		c, err := g.dial(h)
		if err != nil {
			return nil, "", err
		}
		return clientWriter{c}, "server " + describeHolder(h), nil
	}
	if held, h := engine.LockHolder(g.dir); held {
		return via(h)
	}
	opts, err := g.engineOptions()
	if err != nil {
		return nil, "", err
	}
	p, err := engine.ParseSyncPolicy(sync)
	if err != nil {
		return nil, "", usageErr("--sync: %v", err)
	}
	j, err := engine.Open(g.dir, append(opts, engine.WithSync(p), engine.WithHolder("journalctl state-journal-record"))...)
	if errors.Is(err, types.ErrLocked) {
		_, h := engine.LockHolder(g.dir)
		return via(h)
	}
	if err != nil {
		return nil, "", err
	}
	return j, "engine", nil
}

func describeHolder(h *engine.Holder) string {
	if h == nil {
		return "an unknown process"
	}
	return h.String()
}

type recordFlags struct {
	change          engine.Change
	changedSurfaces []string
	metadata        []string
	occurredAt      string
	stdin           bool
	sync            string
}

func newRecordCmd(g *globals) *cobra.Command {
	var f recordFlags
	cmd := &cobra.Command{
		Use:   "state-journal-record",
		Short: "Record a state change (from flags, or NDJSON records on standard input with --stdin)",
		Long: `Record that a surface changed. The journal assigns the sequence and, when not
given, the event id (UUIDv7) and occurred_at. Each record prints one receipt
line (sequence, event id, redactions, durable) as soon as it is committed.

With --stdin, every line of standard input is one runtime-state-change-v1 JSON
record; receipts stream back line by line, batched group commits underneath.
A bad line is reported with its line number and not written; the others are.

When a server (journalctl serve) holds the data directory, records go through
it; otherwise this command opens the journal itself.

Defaults for flag records: --source journalctl, --aggregate-type the surface id
without its "runtime_" prefix, --aggregate-id the surface id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.stdin {
				return runRecordStdin(g, &f, cmd.InOrStdin())
			}
			return runRecordFlags(g, &f, cmd)
		},
	}
	fl := cmd.Flags()
	c := &f.change
	fl.StringVar(&c.Surface, "surface", "", "registered surface id (required)")
	fl.StringVar(&c.ChangeType, "change-type", "", "created, updated, deleted, heartbeat, transitioned, expired or invalidated (required)")
	fl.StringVar(&c.Source, "source", "", "emitting module, e.g. runtime.work_session (default journalctl)")
	fl.StringVar(&c.AggregateType, "aggregate-type", "", "aggregate type, e.g. work_session")
	fl.StringVar(&c.AggregateID, "aggregate-id", "", "aggregate id, e.g. ws-42")
	fl.StringVar(&c.Severity, "severity", "", "debug, info, notice, warning, error or critical (default info)")
	fl.StringVar(&c.SnapshotHint, "snapshot-hint", "", "snapshot to refetch (default: the surface's)")
	fl.StringArrayVar(&f.changedSurfaces, "changed-surface", nil, "a changed surface (repeatable; default: --surface)")
	fl.StringVar(&c.CorrelationID, "correlation-id", "", "correlation id")
	fl.StringVar(&c.CausationID, "causation-id", "", "causation id")
	fl.StringVar(&c.ArtifactRef, "artifact-ref", "", "reference to an artifact")
	fl.StringArrayVar(&f.metadata, "metadata", nil, "metadata key=value (repeatable; values that parse as JSON numbers, booleans or null keep that type)")
	fl.StringVar(&c.EventID, "event-id", "", "idempotency key (default: a new UUIDv7); a retry with the same id returns the first receipt")
	fl.StringVar(&f.occurredAt, "occurred-at", "", "RFC 3339 time the change occurred (default: now)")
	fl.BoolVar(&c.MutatesAuthorityState, "mutates-authority-state", false, "the change mutates authority state (authority-adjacent surfaces, owner sources only)")
	fl.BoolVar(&f.stdin, "stdin", false, "read NDJSON records from standard input")
	fl.StringVar(&f.sync, "sync", "always", "sync policy when this command opens the journal itself: always, interval, none")
	return cmd
}

func runRecordFlags(g *globals, f *recordFlags, cmd *cobra.Command) error {
	c := f.change
	if c.Surface == "" {
		return g.fail(exitUsage, usageErr("--surface is required: name a registered surface id (see journalctl state-surfaces)"))
	}
	if c.ChangeType == "" {
		return g.fail(exitUsage, usageErr("--change-type is required: one of created, updated, deleted, heartbeat, transitioned, expired, invalidated"))
	}
	if c.Source == "" {
		c.Source = "journalctl"
	}
	if c.AggregateType == "" {
		c.AggregateType = strings.TrimPrefix(c.Surface, "runtime_")
	}
	if c.AggregateID == "" {
		c.AggregateID = c.Surface
	}
	c.ChangedSurfaces = splitList(f.changedSurfaces)
	if f.occurredAt != "" {
		t, err := engine.ParseTime(f.occurredAt)
		if err != nil {
			return g.fail(exitUsage, usageErr("--occurred-at %q is not an RFC 3339 time (e.g. 2026-11-26T17:51:57.123Z)", f.occurredAt))
		}
		c.OccurredAt = t
	}
	if len(f.metadata) > 0 {
		c.Metadata = map[string]any{}
		for _, kv := range f.metadata {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return g.fail(exitUsage, usageErr("--metadata %q is not key=value", kv))
			}
			c.Metadata[k] = metadataValue(v)
		}
	}
	w, _, err := g.openWriter(f.sync)
	if err != nil {
		return g.fail(exitProblems, err)
	}
	defer w.Close()
	rcs, err := w.RecordBatch(cmd.Context(), []engine.Change{c})
	if err != nil {
		var fe *types.FieldError
		if errors.As(err, &fe) {
			fe.Index = -1 // one record from flags: its position means nothing
		}
		return g.fail(exitProblems, err)
	}
	out := bufio.NewWriter(g.out)
	printReceipt(g, out, rcs[0])
	return out.Flush()
}

// metadataValue keeps JSON scalars typed: 42, 1.5, true, null.
func metadataValue(v string) any {
	var x any
	if err := json.Unmarshal([]byte(v), &x); err == nil {
		switch x.(type) {
		case float64:
			return json.Number(v)
		case bool, nil:
			return x
		}
	}
	return v
}

func printReceipt(g *globals, w *bufio.Writer, rc engine.Receipt) {
	if g.json {
		b, _ := json.Marshal(rc)
		w.Write(b)
		w.WriteByte('\n')
		return
	}
	dup := ""
	if rc.Duplicate {
		dup = " duplicate=true"
	}
	if rc.MetadataTrimmed {
		dup += " metadata_trimmed=true" // over a bound: cut and marked, see metadata._trimmed
	}
	fmt.Fprintf(w, "sequence=%d event_id=%s redactions=%d durable=%t%s\n", rc.Sequence, rc.EventID, rc.Redactions, rc.Durable, dup)
}

// stdinItem is one parsed input line.
type stdinItem struct {
	line   int
	change engine.Change
	err    error
}

const stdinBatch = 1000

func runRecordStdin(g *globals, f *recordFlags, in io.Reader) error {
	w, _, err := g.openWriter(f.sync)
	if err != nil {
		return g.fail(exitProblems, err)
	}
	defer w.Close()
	items := make(chan stdinItem, 4*stdinBatch)
	readErr := make(chan error, 1)
	go func() {
		defer close(items)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			c, err := engine.ParseChange([]byte(line))
			items <- stdinItem{line: n, change: c, err: err}
		}
		readErr <- sc.Err()
	}()
	out := bufio.NewWriter(g.out)
	defer out.Flush()
	rejected := 0
	reject := func(line int, err error) {
		rejected++
		if g.json {
			b, _ := json.Marshal(map[string]any{"line": line, "error": errorBody(err)})
			out.Write(b)
			out.WriteByte('\n')
			return
		}
		out.Flush()
		fmt.Fprintf(g.errOut, "journalctl: line %d: %v\n", line, err)
	}
	batch := make([]engine.Change, 0, stdinBatch)
	lines := make([]int, 0, stdinBatch)
	ctx := context.Background()
	for first := range items {
		batch, lines = batch[:0], lines[:0]
		add := func(it stdinItem) {
			if it.err != nil {
				reject(it.line, it.err)
				return
			}
			batch = append(batch, it.change)
			lines = append(lines, it.line)
		}
		add(first)
	fill:
		for len(batch) < stdinBatch {
			select {
			case it, ok := <-items:
				if !ok {
					break fill
				}
				add(it)
			default:
				break fill
			}
		}
		for len(batch) > 0 {
			rcs, err := w.RecordBatch(ctx, batch)
			var fe *types.FieldError
			if err != nil && errors.As(err, &fe) && fe.Index >= 0 && fe.Index < len(batch) {
				// Report the bad line, drop it, write the rest.
				i := fe.Index
				fe.Index = -1
				reject(lines[i], fe)
				batch = append(batch[:i], batch[i+1:]...)
				lines = append(lines[:i], lines[i+1:]...)
				continue
			}
			if err != nil {
				out.Flush()
				return g.fail(exitProblems, fmt.Errorf("lines %d-%d not recorded: %w", lines[0], lines[len(lines)-1], err))
			}
			for _, rc := range rcs {
				printReceipt(g, out, rc)
			}
			if err := out.Flush(); err != nil {
				return err
			}
			break
		}
	}
	if err := <-readErr; err != nil {
		return g.fail(exitProblems, fmt.Errorf("read standard input: %w", err))
	}
	if rejected > 0 {
		out.Flush()
		// Each rejected line was reported on its own; the summary goes to
		// standard error so --json output stays one JSON object per line.
		fmt.Fprintf(g.errOut, "journalctl: %d line(s) rejected\n", rejected)
		return &exitError{code: exitProblems, err: errReported}
	}
	return nil
}
