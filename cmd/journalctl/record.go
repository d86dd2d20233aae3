package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
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

// DefaultLockWait is how long a writing command waits for the writer
// lock another journalctl holds (--wait).
const DefaultLockWait = 10 * time.Second

// openWriter returns the engine when no other process writes, or a client
// of the server that holds the directory. A writer without an API to go
// through (another journalctl state-journal-record, compact or repair)
// is waited for, up to wait (0: not at all); after that the error names
// it.
func (g *globals) openWriter(sync string, wait time.Duration) (batchWriter, string, error) {
	p, err := engine.ParseSyncPolicy(sync)
	if err != nil {
		return nil, "", usageErr("--sync: %v", err)
	}
	if err := g.checkWritableDir(); err != nil {
		return nil, "", err
	}
	opts, err := g.engineOptions()
	if err != nil {
		return nil, "", err
	}
	var j *engine.Journal
	h, err := g.waitForLock(wait, func() error {
		var err error
		j, err = engine.Open(g.dir, append(opts, engine.WithSync(p), engine.WithHolder("journalctl state-journal-record"))...)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if h != nil {
		if j != nil {
			j.Close()
		}
		c, err := g.dial(h)
		if err != nil {
			return nil, "", err
		}
		return clientWriter{c}, "server " + describeHolder(h), nil
	}
	return j, "engine", nil
}

// waitForLock runs open (which takes the writer lock) until it does not
// fail with types.ErrLocked, for at most wait. When the holder is a
// server (it serves an API to write through) it returns the holder
// instead, without waiting: the caller goes through it. After wait, the
// error names the holder and how long it waited.
func (g *globals) waitForLock(wait time.Duration, open func() error) (*engine.Holder, error) {
	serves := func(h *engine.Holder) bool { return h != nil && (h.Socket != "" || h.Address != "") }
	deadline := time.Now().Add(wait)
	pause := 5 * time.Millisecond
	for {
		if held, h := engine.LockHolder(g.dir); held && serves(h) {
			return h, nil
		}
		err := open()
		if !errors.Is(err, types.ErrLocked) {
			return nil, err
		}
		_, h := engine.LockHolder(g.dir)
		if serves(h) {
			return h, nil
		}
		if !time.Now().Before(deadline) {
			if wait <= 0 {
				return nil, fmt.Errorf("%w (not waited for: --wait 0)", err)
			}
			return nil, fmt.Errorf("%w (waited %s for it; --wait sets how long)", err, wait)
		}
		// A jittered, growing pause: ten writers that queue up do not
		// retry in lock step.
		time.Sleep(min(time.Until(deadline), pause+time.Duration(rand.Int64N(int64(pause)))))
		pause = min(2*pause, 100*time.Millisecond)
	}
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
	wait            time.Duration
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
record (a leading UTF-8 byte order mark is ignored; blank lines are skipped);
receipts stream back in input order, batched group commits underneath, each
with its input line number ("line", 1-based). A bad line — invalid JSON, a
record the contract or policy refuses, a line over 8 MiB — is reported with
its line number and not written; the lines after it are. With --json every
output line is one JSON object: a receipt, {"line": N, "error": {...}} for a
refused line, or, if writing fails, one last such error naming the first
line not recorded ("not_recorded_from_line"): that line and every line after
it, read or not, were not recorded. Exit 1 if any line was not recorded.

When a server (journalctl serve) holds the data directory, records go through
it; otherwise this command opens the journal itself, waiting up to --wait for
another journalctl that holds the writer lock.

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
	boolVar(fl, &c.MutatesAuthorityState, "mutates-authority-state", "", false, "the change mutates authority state (authority-adjacent surfaces, owner sources only)")
	boolVar(fl, &f.stdin, "stdin", "", false, "read NDJSON records from standard input")
	fl.StringVar(&f.sync, "sync", "always", "sync policy when this command opens the journal itself: always, interval, none")
	fl.Var(newDurationFlag(&f.wait, DefaultLockWait), "wait", "how long to wait for the writer lock another journalctl holds (e.g. 30s; 0 fails at once)")
	return cmd
}

// recordFlagOf names the flag a record field comes from.
var recordFlagOf = map[string]string{
	"surface": "--surface", "change_type": "--change-type", "source": "--source",
	"aggregate_type": "--aggregate-type", "aggregate_id": "--aggregate-id", "severity": "--severity",
	"snapshot_hint": "--snapshot-hint", "changed_surfaces": "--changed-surface", "correlation_id": "--correlation-id",
	"causation_id": "--causation-id", "artifact_ref": "--artifact-ref", "metadata": "--metadata",
	"event_id": "--event-id", "occurred_at": "--occurred-at", "mutates_authority_state": "--mutates-authority-state",
}

func runRecordFlags(g *globals, f *recordFlags, cmd *cobra.Command) error {
	c := f.change
	if c.Surface == "" {
		return usageErr("--surface is required: name a registered surface id (see journalctl state-surfaces)")
	}
	if c.ChangeType == "" {
		return usageErr("--change-type is required: one of created, updated, deleted, heartbeat, transitioned, expired, invalidated")
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
		t, err := parse.Timestamp(f.occurredAt)
		if err != nil {
			return usageErr("--occurred-at %v", err)
		}
		c.OccurredAt = t
	}
	if len(f.metadata) > 0 {
		c.Metadata = map[string]any{}
		for _, kv := range f.metadata {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageErr("--metadata %q is not key=value", kv)
			}
			c.Metadata[k] = metadataValue(v)
		}
	}
	w, _, err := g.openWriter(f.sync, f.wait)
	if err != nil {
		return g.fail(exitProblems, err)
	}
	defer w.Close()
	rcs, err := w.RecordBatch(cmd.Context(), []engine.Change{c})
	if err != nil {
		var fe *types.FieldError
		if errors.As(err, &fe) {
			fe.Index = -1 // one record from flags: its position means nothing
			if fe.Kind == types.ErrInvalid || fe.Kind == types.ErrUnknownSurface {
				// A value given on the command line that the contract
				// refuses is a bad flag value: usage, whatever its code.
				if flag, ok := recordFlagOf[fe.Field]; ok {
					return usageErr("%s: %w", flag, err)
				}
				return usageErr("%w", err)
			}
		}
		return g.fail(exitProblems, err)
	}
	out := bufio.NewWriter(g.out)
	printReceipt(g, out, rcs[0], 0)
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

// printReceipt prints one receipt; line, when not 0, is its input line
// (--stdin), first in the JSON object and in the human line.
func printReceipt(g *globals, w *bufio.Writer, rc engine.Receipt, line int) {
	if g.json {
		b, _ := json.Marshal(rc)
		if line > 0 && len(b) > 1 && b[0] == '{' {
			// Spliced rather than embedded, so the receipt's own JSON
			// encoding (whatever it becomes) is kept as it is.
			w.WriteString(`{"line":` + strconv.Itoa(line))
			if b[1] != '}' {
				w.WriteByte(',')
			}
			w.Write(b[1:])
		} else {
			w.Write(b)
		}
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
	if line > 0 {
		fmt.Fprintf(w, "line=%d ", line)
	}
	fmt.Fprintf(w, "sequence=%d event_id=%s redactions=%d durable=%t%s\n", rc.Sequence, rc.EventID, rc.Redactions, rc.Durable, dup)
}

// Bounds of --stdin.
const (
	// maxLineBytes bounds one input line: the server's body bound, so a
	// line the server would take as a one-record body is taken here too.
	// A longer line is skipped (read to its end, never held) and reported.
	maxLineBytes = server.DefaultMaxBodyBytes
	// stdinBatch and stdinBatchBytes bound one group commit (one POST
	// through a server, well under its body bound).
	stdinBatch      = 1000
	stdinBatchBytes = 4 << 20
)

// stdinItem is one input line and what became of it.
type stdinItem struct {
	line    int
	size    int
	change  engine.Change
	err     error           // the line was refused: not recorded
	receipt *engine.Receipt // the line was recorded
}

// stdinBatchOf is what the reader hands the writer: lines in input order,
// and, last, a read error that ends the input.
type stdinBatchOf struct {
	items   []*stdinItem
	readErr error
	errLine int // the line the read error stopped at
}

// readLine reads one line of at most max bytes (without its newline).
// A longer line is consumed to its end, its bytes dropped, and size
// says how long it was. eof is true when the input ended; a last line
// without a newline is still returned.
func readLine(br *bufio.Reader, max int) (line []byte, size int, eof bool, err error) {
	for {
		frag, rerr := br.ReadSlice('\n')
		size += len(frag)
		if size <= max+1 { // +1: the newline is not part of the line
			line = append(line, frag...)
		} else if line != nil {
			line = nil // over the bound: stop holding it
		}
		switch {
		case rerr == nil:
			size-- // the newline
			if size > max {
				return nil, size, false, nil
			}
			return line[:len(line)-1], size, false, nil
		case errors.Is(rerr, bufio.ErrBufferFull):
			continue
		case errors.Is(rerr, io.EOF):
			if size > max {
				return nil, size, true, nil
			}
			return line, size, true, nil
		default:
			return nil, size, false, rerr
		}
	}
}

// readStdin reads NDJSON lines, parses each and sends them in batches,
// in input order. A batch is sent when full, or as soon as no more input
// is buffered, so an interactive writer sees each receipt at once.
func readStdin(in io.Reader, out chan<- stdinBatchOf) {
	defer close(out)
	br := bufio.NewReaderSize(in, 64<<10)
	var b stdinBatchOf
	bytesIn := 0
	send := func() {
		if len(b.items) > 0 || b.readErr != nil {
			out <- b
		}
		b, bytesIn = stdinBatchOf{}, 0
	}
	for n := 1; ; n++ {
		if br.Buffered() == 0 {
			send() // the next read may block: hand over what is ready
		}
		line, size, eof, err := readLine(br, maxLineBytes)
		if err != nil {
			b.readErr, b.errLine = err, n
			send()
			return
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		it := &stdinItem{line: n, size: size}
		switch {
		case size > maxLineBytes:
			it.err = &lineTooLong{size: size}
		case len(bytes.TrimSpace(line)) == 0:
			it = nil // blank lines separate nothing
		default:
			it.change, it.err = engine.ParseChange(bytes.TrimSpace(line))
		}
		if it != nil {
			b.items = append(b.items, it)
			bytesIn += size
		}
		if eof {
			send()
			return
		}
		if len(b.items) >= stdinBatch || bytesIn >= stdinBatchBytes {
			send()
		}
	}
}

// utf8BOM is the UTF-8 byte order mark some Windows tools write first;
// it is ignored at the start of the input, as the server ignores it at
// the start of a body.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineTooLong is an input line over maxLineBytes. It matches
// types.ErrTooLarge (code too_large).
type lineTooLong struct{ size int }

func (e *lineTooLong) Error() string {
	return fmt.Sprintf("the line is %d bytes, over the bound of %d bytes (8 MiB) for one record line; skipped, the lines after it are read", e.size, maxLineBytes)
}
func (e *lineTooLong) Unwrap() error { return types.ErrTooLarge }

// stdinRun writes --stdin records and reports each line in input order.
type stdinRun struct {
	g        *globals
	w        batchWriter
	out      *bufio.Writer
	rejected int
}

// commit records the items that parsed. On return every item has a
// receipt or an error, unless commit returns an error: then the items
// without either were not acknowledged (their outcome is unknown).
func (r *stdinRun) commit(ctx context.Context, items []*stdinItem) error {
	for {
		var cs []engine.Change
		var pos []int
		for i, it := range items {
			if it.err == nil && it.receipt == nil {
				cs = append(cs, it.change)
				pos = append(pos, i)
			}
		}
		if len(cs) == 0 {
			return nil
		}
		rcs, err := r.w.RecordBatch(ctx, cs)
		if err == nil {
			if len(rcs) != len(cs) {
				return fmt.Errorf("the journal answered %d receipts for %d records", len(rcs), len(cs))
			}
			for k, i := range pos {
				items[i].receipt = &rcs[k]
			}
			return nil
		}
		var fe *types.FieldError
		if errors.As(err, &fe) && (fe.Index >= 0 && fe.Index < len(pos) || len(pos) == 1) {
			// The batch is all or nothing: refuse the bad line, write
			// the others.
			k := max(fe.Index, 0)
			fe.Index = -1
			items[pos[k]].err = err
			continue
		}
		if refusedWhole(err) {
			if len(pos) == 1 {
				items[pos[0]].err = err // e.g. one line over the server's body bound
				continue
			}
			// The batch was refused whole without naming a line (a body
			// over a server's smaller bound, a refusal without an index):
			// nothing was written, so halving it is safe and finds the
			// line.
			mid := pos[len(pos)/2]
			if err := r.commit(ctx, items[:mid]); err != nil {
				return err
			}
			return r.commit(ctx, items[mid:])
		}
		return err
	}
}

// refusedWhole reports whether err refuses a batch for its content (so
// nothing of it was written), as opposed to a failure of the write path
// whose outcome is unknown.
func refusedWhole(err error) bool {
	switch types.Code(err) {
	case types.CodeTooLarge, types.CodeInvalidChange, types.CodeUnknownSurface, types.CodePolicyViolation, types.CodeEventIDConflict:
		return true
	}
	return false
}

// report prints each item in order until the first one that has neither
// a receipt nor an error, and returns its index (len(items) when all
// were reported).
func (r *stdinRun) report(items []*stdinItem) int {
	for i, it := range items {
		switch {
		case it.receipt != nil:
			printReceipt(r.g, r.out, *it.receipt, it.line)
		case it.err != nil:
			r.rejected++
			r.lineError(it.line, it.err, nil)
		default:
			return i
		}
	}
	return len(items)
}

// lineError prints the error of one input line: a JSON line under
// --json (stdout, in order with the receipts), else a line on stderr.
func (r *stdinRun) lineError(line int, err error, extra map[string]any) {
	if r.g.json {
		body := errorBody(err)
		for k, v := range extra {
			body[k] = v
		}
		b, _ := json.Marshal(struct {
			Line  int            `json:"line"`
			Error map[string]any `json:"error"`
		}{line, body})
		r.out.Write(b)
		r.out.WriteByte('\n')
		return
	}
	r.out.Flush()
	fmt.Fprintf(r.g.errOut, "journalctl: line %d: %v\n", line, err)
}

func runRecordStdin(g *globals, f *recordFlags, in io.Reader) error {
	w, _, err := g.openWriter(f.sync, f.wait)
	if err != nil {
		return g.fail(exitProblems, fmt.Errorf("no line was recorded: %w", err))
	}
	defer w.Close()
	batches := make(chan stdinBatchOf, 2)
	go readStdin(in, batches)
	r := &stdinRun{g: g, w: w, out: bufio.NewWriter(g.out)}
	defer r.out.Flush()
	ctx := context.Background()
	for b := range batches {
		cerr := r.commit(ctx, b.items)
		done := r.report(b.items)
		if cerr != nil {
			first := b.items[done].line
			last := b.items[len(b.items)-1].line
			msg := fmt.Sprintf("lines %d-%d were not acknowledged (their outcome is unknown: some may be on disk; a retry with the same event_id is recorded once): %v; "+
				"nothing after line %d was sent: lines %d to the end of the input are not known to be recorded", first, last, cerr, last, first)
			r.lineError(first, &stdinFailure{msg: msg, err: cerr}, map[string]any{"not_recorded_from_line": first, "outcome_unknown_to_line": last})
			r.out.Flush()
			return &exitError{code: exitProblems, err: errReported}
		}
		if b.readErr != nil {
			msg := fmt.Sprintf("read standard input at line %d: %v; lines %d to the end of the input were not recorded", b.errLine, b.readErr, b.errLine)
			r.lineError(b.errLine, &stdinFailure{msg: msg, err: b.readErr}, map[string]any{"not_recorded_from_line": b.errLine})
			r.out.Flush()
			return &exitError{code: exitProblems, err: errReported}
		}
		if err := r.out.Flush(); err != nil {
			return err
		}
	}
	if r.rejected > 0 {
		r.out.Flush()
		// Each rejected line was reported on its own; the summary goes to
		// standard error so --json output stays one JSON object per line.
		fmt.Fprintf(g.errOut, "journalctl: %d line(s) rejected\n", r.rejected)
		return &exitError{code: exitProblems, err: errReported}
	}
	return nil
}

// stdinFailure is the error that ends a --stdin run: its message says
// which lines were not recorded; it matches the cause (and so keeps its
// code).
type stdinFailure struct {
	msg string
	err error
}

func (e *stdinFailure) Error() string { return e.msg }
func (e *stdinFailure) Unwrap() error { return e.err }
