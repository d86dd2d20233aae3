package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// queryFlags are the filters state-journal shares with GET /v1/changes.
type queryFlags struct {
	surfaces    []string
	changeTypes []string
	after       uint64
	limit       int
	since       string
	until       string
	aggType     string
	aggID       string
	correlation string
	minSeverity string
	oldestFirst bool
}

func (f *queryFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.surfaces, "surface", nil, "only these surfaces (repeatable or comma-separated)")
	fl.StringSliceVar(&f.changeTypes, "change-type", nil, "only these change types (repeatable or comma-separated)")
	fl.Uint64Var(&f.after, "after", 0, "cursor: only records with a sequence greater than this (lists oldest first)")
	fl.IntVarP(&f.limit, "limit", "n", 50, "at most this many records (0 for no limit)")
	fl.StringVar(&f.since, "since", "", "only records that occurred at or after this time (RFC 3339, or an age such as 10m, 36h, 7d)")
	fl.StringVar(&f.until, "until", "", "only records that occurred before this time (RFC 3339 or an age)")
	fl.StringVar(&f.aggType, "aggregate-type", "", "only this aggregate type (with --aggregate-id)")
	fl.StringVar(&f.aggID, "aggregate-id", "", "only this aggregate id (with --aggregate-type)")
	fl.StringVar(&f.correlation, "correlation-id", "", "only this correlation id")
	fl.StringVar(&f.minSeverity, "min-severity", "", "only records at or above this severity (debug, info, notice, warning, error, critical)")
	fl.BoolVar(&f.oldestFirst, "oldest-first", false, "list oldest first (the default is newest first, except with --after)")
}

func (f *queryFlags) query(now time.Time) (engine.Query, error) {
	q := engine.Query{
		After: f.after, Surfaces: splitList(f.surfaces), ChangeTypes: splitList(f.changeTypes),
		AggregateType: f.aggType, AggregateID: f.aggID, CorrelationID: f.correlation, MinSeverity: f.minSeverity,
		NewestFirst: f.after == 0 && !f.oldestFirst,
	}
	switch {
	case f.limit < 0:
		return q, usageErr("--limit %d must be 0 (no limit) or positive", f.limit)
	case f.limit == 0:
		q.Limit = -1
	default:
		q.Limit = f.limit
	}
	if f.since != "" {
		t, err := engine.ParseWhen(f.since, now)
		if err != nil {
			return q, usageErr("--since: %v", err)
		}
		q.Since = t
	}
	if f.until != "" {
		t, err := engine.ParseWhen(f.until, now)
		if err != nil {
			return q, usageErr("--until: %v", err)
		}
		q.Until = t
	}
	return q, nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Output formats of state-journal.
const (
	outTable       = "table"
	outJSON        = "json"
	outJSONL       = "jsonl"
	outCloudEvents = "cloudevents"
)

func newJournalCmd(g *globals) *cobra.Command {
	var (
		qf     queryFlags
		follow bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "state-journal",
		Short: "List journal records, newest first by default, with filters",
		Long: `List journal records. Without --after it shows the newest --limit records,
newest first; with --after SEQ it lists the records after that cursor, oldest
first, like a consumer catching up. A cursor below the compaction horizon is an
error (exit 1, code "compacted"): resync from a snapshot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := qf.query(time.Now())
			if err != nil {
				return err
			}
			switch output {
			case "":
				output = outTable
				if g.json {
					output = outJSON
				}
			case outTable, outJSON, outJSONL, outCloudEvents:
			default:
				return usageErr("-o %q is not an output format; allowed: table, json, jsonl, cloudevents", output)
			}
			if follow {
				return runFollow(g, cmd, q, output, cmd.Flags().Changed("limit"))
			}
			j, err := g.openRead()
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer j.Close()
			res, err := j.Query(context.Background(), q)
			if err != nil {
				var fe *types.FieldError
				if errors.As(err, &fe) {
					return g.fail(exitUsage, err)
				}
				if errors.Is(err, types.ErrCompacted) {
					return g.fail(exitProblems, fmt.Errorf("%w; refetch the snapshots and resume from sequence %d", err, res.Horizon))
				}
				return g.fail(exitProblems, err)
			}
			switch output {
			case outJSON:
				if res.Changes == nil {
					res.Changes = []engine.Change{}
				}
				return g.printJSON(res)
			case outJSONL, outCloudEvents:
				w := bufio.NewWriter(g.out)
				for _, c := range res.Changes {
					writeLine(w, c, output)
				}
				return w.Flush()
			}
			return printChanges(g, res.Changes)
		},
	}
	qf.bind(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "after the newest records, keep printing new ones as they commit (from the server when one runs, else by tailing the files)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table, json, jsonl (one record per line), cloudevents (CloudEvents 1.0 JSON, one per line)")
	return cmd
}

// cloudEvent is a record as a CloudEvents 1.0 JSON event.
type cloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Time            string         `json:"time"`
	Subject         string         `json:"subject"`
	DataContentType string         `json:"datacontenttype"`
	DataSchema      string         `json:"dataschema"`
	Sequence        uint64         `json:"sequence"`
	Surface         string         `json:"surface"`
	Data            *engine.Change `json:"data"`
}

// toCloudEvent maps a record: id ← event_id, source ← source, type ←
// runtime.state.<change_type>, time ← occurred_at, subject ←
// surface/aggregate_type/aggregate_id; the record itself is the data.
func toCloudEvent(c engine.Change) cloudEvent {
	return cloudEvent{
		SpecVersion: "1.0", ID: c.EventID, Source: c.Source, Type: "runtime.state." + c.ChangeType,
		Time: c.OccurredAt.UTC().Format(engine.TimeLayout), Subject: c.Surface + "/" + c.AggregateType + "/" + c.AggregateID,
		DataContentType: "application/json", DataSchema: engine.SchemaVersion, Sequence: c.Sequence, Surface: c.Surface, Data: &c,
	}
}

// writeLine writes one record in a line format.
func writeLine(w *bufio.Writer, c engine.Change, format string) {
	var b []byte
	if format == outCloudEvents {
		b, _ = json.Marshal(toCloudEvent(c))
	} else {
		b, _ = json.Marshal(c)
	}
	w.Write(b)
	w.WriteByte('\n')
}

// followLine prints one followed record in the chosen format.
func followLine(w *bufio.Writer, c engine.Change, format string) {
	switch format {
	case outTable:
		fmt.Fprintf(w, "%-8d %s  %-30s %-12s %s/%s  %s  %s\n", c.Sequence, c.OccurredAt.Format("2006-01-02T15:04:05.000Z07:00"),
			c.Surface, c.ChangeType, c.AggregateType, c.AggregateID, c.Severity, c.Source)
	default:
		writeLine(w, c, format)
	}
}

// runFollow prints the newest records (10 unless -n was given), then
// every new matching record as it commits, like journalctl -f.
func runFollow(g *globals, cmd *cobra.Command, q engine.Query, format string, limitSet bool) error {
	if format == outJSON {
		format = outJSONL // a stream is one object per line
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := bufio.NewWriter(g.out)
	defer w.Flush()
	emit := func(c engine.Change) bool {
		followLine(w, c, format)
		return w.Flush() == nil
	}
	// The backlog: the newest n, printed oldest first.
	first := q
	if !limitSet {
		first.Limit = 10
	}
	j, err := g.openRead()
	if err != nil {
		return g.fail(exitProblems, err)
	}
	defer j.Close()
	cursor := q.After
	if q.After == 0 {
		first.NewestFirst = true
		res, err := j.Query(ctx, first)
		if err != nil {
			return g.fail(exitProblems, err)
		}
		for i := len(res.Changes) - 1; i >= 0; i-- {
			emit(res.Changes[i])
		}
		cursor = res.Head
	}
	q.After, q.NewestFirst, q.Limit = cursor, false, 1000
	if held, h := engine.LockHolder(g.dir); held && h != nil && (h.Socket != "" || h.Address != "") {
		c := server.Dial(h.Socket, h.Address, os.Getenv("STATE_JOURNAL_TOKEN"))
		defer c.Close()
		err := c.Follow(ctx, q, emit)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, types.ErrCompacted) {
			return g.fail(exitProblems, err)
		}
		// The server went away: keep following the files.
		fmt.Fprintf(g.errOut, "journalctl: follow through the server ended (%v); tailing the files\n", err)
	}
	for {
		res, err := j.Query(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return g.fail(exitProblems, err)
		}
		for _, c := range res.Changes {
			if !emit(c) {
				return nil
			}
			q.After = c.Sequence
		}
		if res.More {
			continue
		}
		q.After = max(q.After, res.Head)
		if _, err := j.Wait(ctx, q.After); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return g.fail(exitProblems, err)
		}
	}
}

func printChanges(g *globals, cs []engine.Change) error {
	tw := g.table()
	fmt.Fprintln(tw, "SEQ\tOCCURRED AT\tSURFACE\tCHANGE\tAGGREGATE\tSEVERITY\tSOURCE\tSNAPSHOT\tEVENT ID")
	for _, c := range cs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", c.Sequence, c.OccurredAt.Format("2006-01-02T15:04:05.000Z07:00"),
			c.Surface, c.ChangeType, c.AggregateType, c.AggregateID, c.Severity, c.Source, c.SnapshotHint, c.EventID)
	}
	return tw.Flush()
}
