package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
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

func newJournalCmd(g *globals) *cobra.Command {
	var qf queryFlags
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
			if g.json {
				if res.Changes == nil {
					res.Changes = []engine.Change{}
				}
				return g.printJSON(res)
			}
			return printChanges(g, res.Changes)
		},
	}
	qf.bind(cmd)
	return cmd
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
