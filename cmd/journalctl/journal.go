package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
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
	reverse     bool
}

func (f *queryFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.surfaces, "surface", nil, "only these surfaces (repeatable or comma-separated)")
	fl.StringSliceVar(&f.changeTypes, "change-type", nil, "only these change types (repeatable or comma-separated)")
	fl.Uint64Var(&f.after, "after", 0, "cursor: only records with a greater sequence, paged oldest first (as resume_after in the JSON answers)")
	fl.IntVarP(&f.limit, "limit", "n", engine.DefaultQueryLimit, "at most this many records, the newest ones (with --after: the first ones after the cursor); 0 for no limit")
	fl.StringVar(&f.since, "since", "", "only records committed at or after this time, on the journal's clock (not occurred_at): RFC 3339 (2026-12-01T10:00:00Z), a date (2026-12-01, midnight UTC) or a duration ago (30s, 15m, 36h, 7d, 2w)")
	fl.StringVar(&f.until, "until", "", "only records committed before this time (the forms of --since); must be after --since")
	fl.StringVar(&f.aggType, "aggregate-type", "", "only this aggregate type (with --aggregate-id)")
	fl.StringVar(&f.aggID, "aggregate-id", "", "only this aggregate id (with --aggregate-type)")
	fl.StringVar(&f.correlation, "correlation-id", "", "only this correlation id")
	fl.StringVar(&f.minSeverity, "min-severity", "", "only records at or above this severity (debug, info, notice, warning, error, critical)")
	boolVar(fl, &f.oldestFirst, "oldest-first", "", false, "print oldest first; -n still keeps the newest N unless --after is given (the default is newest first, except with --after)")
	boolVar(fl, &f.reverse, "reverse", "r", false, "print newest first, also with --after (which then keeps the newest N after the cursor)")
}

// query returns the list query the flags describe. The limit always
// selects from the newest end, as journalctl -n does, except after a
// cursor, where it pages forward; the order flags only choose how the
// selection is printed.
func (f *queryFlags) query(cmd *cobra.Command, now time.Time) (server.ListQuery, error) {
	q := engine.Query{
		After: f.after, Surfaces: splitList(f.surfaces), ChangeTypes: splitList(f.changeTypes),
		AggregateType: f.aggType, AggregateID: f.aggID, CorrelationID: f.correlation, MinSeverity: f.minSeverity,
	}
	lq := server.ListQuery{Query: q, Cursor: cmd.Flags().Changed("after")}
	if f.oldestFirst && f.reverse {
		return lq, usageErr("--oldest-first and --reverse contradict each other; give one")
	}
	lq.OldestFirst = f.oldestFirst || (lq.Cursor && !f.reverse)
	switch {
	case f.limit < 0:
		return lq, usageErr("--limit %d must be 0 (no limit) or positive", f.limit)
	case f.limit == 0:
		lq.Limit = -1
	default:
		lq.Limit = f.limit
	}
	if f.since != "" {
		t, err := parse.Time(f.since, now)
		if err != nil {
			return lq, usageErr("--since %v", err)
		}
		lq.Since = t
	}
	if f.until != "" {
		t, err := parse.Time(f.until, now)
		if err != nil {
			return lq, usageErr("--until %v", err)
		}
		lq.Until = t
	}
	if !lq.Since.IsZero() && !lq.Until.IsZero() && !lq.Until.After(lq.Since) {
		return lq, usageErr("--since %q (%s) is not before --until %q (%s): the range matches nothing; swap them",
			f.since, lq.Since.Format(time.RFC3339Nano), f.until, lq.Until.Format(time.RFC3339Nano))
	}
	return lq, nil
}

// queryFlagOf names the flag a query filter comes from.
var queryFlagOf = map[string]string{
	"surface": "--surface", "change_type": "--change-type", "min_severity": "--min-severity",
	"aggregate": "--aggregate-type and --aggregate-id",
}

// queryFlagErr is a filter the engine refused, given as a flag: a usage
// error (exit 2) naming the flag, with the code GET /v1/changes gives the
// same filter (invalid_query for a bad value; unknown_surface stays).
func queryFlagErr(fe *types.FieldError) error {
	if fe.Kind == types.ErrInvalid {
		fe.Kind = types.ErrInvalidQuery
	}
	fe.Index = -1
	if flag, ok := queryFlagOf[fe.Field]; ok {
		return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", flag, fe)}
	}
	return &exitError{code: exitUsage, err: fe}
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
	outShort       = "short"
	outJSON        = "json"
	outJSONL       = "jsonl"
	outCloudEvents = "cloudevents"
)

// outputFormats are the values of -o, for errors and completion.
var outputFormats = []string{outTable, outShort, outJSON, outJSONL, outCloudEvents}

func newJournalCmd(g *globals) *cobra.Command {
	var (
		qf     queryFlags
		nf     natsFollowFlags
		follow bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "state-journal",
		Short: "List journal records, newest first by default, with filters",
		Long: `List journal records. Without --after it shows the newest --limit records
(default ` + fmt.Sprint(engine.DefaultQueryLimit) + `, as over HTTP), newest first; --oldest-first prints the same
newest records oldest first, as journalctl -n does. With --after SEQ it pages
through the records after that cursor, oldest first, like a consumer catching
up; -r/--reverse then keeps the newest ones after the cursor, newest first.

A cursor below the compaction horizon is an error (exit 1, code "compacted")
that names the cursor (after), the horizon and where to resume after
refetching the snapshots (resume_after). The JSON answer carries the same
cursor vocabulary as GET /v1/changes: changes, order, after, head, horizon,
more, resume_after.

-f/--follow prints the newest 10 records (or -n), then each new one as it
commits: through the server's stream when a server holds the directory, else
by tailing the files. When the server stops it says so on stderr and goes on
tailing the files, and returns to the server's stream when one is up again;
no record is missed or repeated across a switch. It exits 0 on SIGINT or
SIGTERM and 1 only when it cannot go on (the cursor was compacted away, the
journal cannot be read).

-f --nats URL follows the cluster-wide NATS JetStream stream every host's
relay feeds (journalctl relay, docs/relay.md) instead of this journal: the
same filters and output formats, with the host as a column (a "host" and a
"stream_sequence" field in JSON); --host selects hosts, --stream the stream,
-n the last N messages of the stream to start with, --after a stream
sequence to start after. Each host's records arrive in its journal's order,
but for a record republished after a JetStream leader change (docs/relay.md).

Output (-o): table (aligned, fits the terminal; cut only on a terminal or
with $COLUMNS), short (one line per record, like journalctl -o short), json
(the list object; with -f, jsonl), jsonl (one record per line), cloudevents
(CloudEvents 1.0 JSON, one per line; sequence is a zero-padded string).
Times are RFC 3339 UTC: nine fractional digits in JSON, three in tables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			lq, err := qf.query(cmd, time.Now())
			if err != nil {
				return err
			}
			switch output {
			case "":
				output = outTable
				if g.json {
					output = outJSON
				}
			case outTable, outShort, outJSON, outJSONL, outCloudEvents:
			default:
				return usageErr("-o %q is not an output format; allowed: %s", output, strings.Join(outputFormats, ", "))
			}
			if nf.url != "" && !follow {
				return usageErr("--nats follows the cluster-wide stream: give -f with it")
			}
			if !follow && (cmd.Flags().Changed("host") || cmd.Flags().Changed("stream")) {
				return usageErr("--host and --stream apply to -f --nats")
			}
			if follow {
				if qf.reverse {
					return usageErr("-f prints records as they commit, oldest first; --reverse does not apply")
				}
				if nf.url != "" {
					return runNATSFollow(g, cmd, nf, lq, output, cmd.Flags().Changed("limit"))
				}
				if cmd.Flags().Changed("host") || cmd.Flags().Changed("stream") {
					return usageErr("--host and --stream apply to -f --nats")
				}
				return runFollow(g, cmd, lq, output, cmd.Flags().Changed("limit"))
			}
			j, err := g.openRead()
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer j.Close()
			res, err := j.Query(context.Background(), lq.Engine())
			if err != nil {
				var fe *types.FieldError
				if errors.As(err, &fe) {
					return queryFlagErr(fe)
				}
				if ce, ok := server.AsCompacted(err, lq.After, res.Horizon); ok {
					return g.fail(exitProblems, ce)
				}
				return g.fail(exitProblems, err)
			}
			l := server.NewList(lq, res)
			switch output {
			case outJSON:
				return g.printJSON(l)
			case outJSONL, outCloudEvents, outShort:
				w := bufio.NewWriter(g.out)
				for _, c := range l.Changes {
					writeLine(w, c, output)
				}
				return w.Flush()
			}
			if len(l.Changes) == 0 {
				_, err := fmt.Fprintf(g.out, "-- No entries (head %d, horizon %d) --\n", l.Head, l.Horizon)
				return err
			}
			t := g.newTable(changeColumns...)
			for _, c := range l.Changes {
				t.add(changeCells(c)...)
			}
			return t.print(g.out)
		},
	}
	qf.bind(cmd)
	nf.bind(cmd)
	boolVar(cmd.Flags(), &follow, "follow", "f", false, "after the newest records, keep printing new ones as they commit (from the server when one runs, else by tailing the files; survives the server stopping)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: "+strings.Join(outputFormats, ", "))
	completeJournalFlags(g, cmd)
	return cmd
}

// changeColumns are the columns of a record table, in the table and in
// -f alike.
var changeColumns = []column{
	{title: "SEQ"},
	{title: "OCCURRED AT"},
	{title: "SURFACE", shrink: 1, min: 14},
	{title: "CHANGE"},
	{title: "AGGREGATE", shrink: 2, min: 10},
	{title: "SEVERITY"},
	{title: "SOURCE", shrink: 3, min: 10, drop: 1},
	{title: "SNAPSHOT", shrink: 4, min: 8, drop: 2},
	{title: "EVENT ID", shrink: 5, min: 8, drop: 3},
}

// followWidths are the column widths of -f, which cannot measure rows it
// has not seen: wide enough for the usual values, then fitted to the
// terminal like the table.
var followWidths = []int{8, len(humanTimeLayout), 30, 10, 32, 8, 24, 20, 36}

func changeCells(c engine.Change) []string {
	return []string{strconv.FormatUint(c.Sequence, 10), humanTime(c.OccurredAt), c.Surface, c.ChangeType,
		c.AggregateType + "/" + c.AggregateID, c.Severity, c.Source, orDash(c.SnapshotHint), c.EventID}
}

// cloudEvent is a record as a CloudEvents 1.0 JSON event. Sequence is the
// sequence extension, a string (as the extension defines it), zero-padded
// to 20 digits so that it orders lexicographically.
type cloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Time            string         `json:"time"`
	Subject         string         `json:"subject"`
	DataContentType string         `json:"datacontenttype"`
	DataSchema      string         `json:"dataschema"`
	Sequence        string         `json:"sequence"`
	Surface         string         `json:"surface"`
	Data            *engine.Change `json:"data"`
}

// toCloudEvent maps a record: id ← event_id, source ← source, type ←
// runtime.state.<change_type>, time ← occurred_at, subject ←
// surface/aggregate_type/aggregate_id, sequence ← sequence; the record
// itself is the data.
func toCloudEvent(c engine.Change) cloudEvent {
	return cloudEvent{
		SpecVersion: "1.0", ID: c.EventID, Source: c.Source, Type: "runtime.state." + c.ChangeType,
		Time: types.FormatTime(c.OccurredAt), Subject: c.Surface + "/" + c.AggregateType + "/" + c.AggregateID,
		DataContentType: "application/json", DataSchema: engine.SchemaVersion, Sequence: fmt.Sprintf("%020d", c.Sequence),
		Surface: c.Surface, Data: &c,
	}
}

// shortLine is a record in -o short, modelled on journalctl's short
// format (time ident[pid]: message): time source[sequence]: surface
// change aggregate severity, and the snapshot hint when there is one.
func shortLine(c engine.Change) string {
	s := fmt.Sprintf("%s %s[%d]: %s %s %s/%s %s", humanTime(c.OccurredAt), c.Source, c.Sequence, c.Surface, c.ChangeType,
		c.AggregateType, c.AggregateID, c.Severity)
	if c.SnapshotHint != "" {
		s += " snapshot=" + c.SnapshotHint
	}
	return s
}

// writeLine writes one record in a line format.
func writeLine(w *bufio.Writer, c engine.Change, format string) {
	var b []byte
	switch format {
	case outShort:
		w.WriteString(shortLine(c))
		w.WriteByte('\n')
		return
	case outCloudEvents:
		b, _ = json.Marshal(toCloudEvent(c))
	default:
		b, _ = json.Marshal(c)
	}
	w.Write(b)
	w.WriteByte('\n')
}
