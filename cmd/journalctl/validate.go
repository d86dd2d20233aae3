package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/relay"
	"github.com/agentruntime/statejournal/types"
)

func newValidateCmd(g *globals) *cobra.Command {
	var (
		repair bool
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "state-journal-validate",
		Short: "Check frames, checksums, sequences, schema and registry conformance (exit 0 clean, 1 problems, 2 usage)",
		Long: `Check every hot-log frame and CRC, sequence continuity inside and across
segments, every record against runtime-state-change-v1, every record
against the surface registry and migration policy, and the relay's and the
coverage watcher's state files (state/relay.json, state/relay-dropped.json,
state/coverage.json). Each problem is reported with its segment (or file),
offset and sequence. Validation takes no lock and changes no
file, so it runs beside a live server.

--repair (needs the writer lock: stop the server first) quarantines what open
refuses: each damaged byte range is copied to the quarantine directory and its
sequences are replaced by tombstones, so sequences stay gapless and every
valid record after the damage is kept.

Exit codes: 0 clean, 1 problems found (or repaired), 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := g.registry()
			if err != nil {
				return err
			}
			ctx := context.Background()
			if err := g.checkJournalDir(); err != nil {
				return g.fail(exitProblems, err)
			}
			var repaired *engine.RepairReport
			if repair {
				opts, err := g.engineOptions()
				if err != nil {
					return err
				}
				var r engine.RepairReport
				h, err := g.waitForLock(wait, func() error {
					var err error
					r, err = engine.Repair(ctx, g.dir, opts...)
					return err
				})
				if err == nil && h != nil {
					err = fmt.Errorf("%w: held by %s; stop the server to repair", types.ErrLocked, describeHolder(h))
				}
				if err != nil {
					return g.fail(exitProblems, fmt.Errorf("repair: %w", err))
				}
				repaired = &r
			}
			rep, err := engine.ValidateDir(ctx, g.dir, engine.ValidateOptions{Registry: reg})
			if err != nil {
				return g.fail(exitProblems, err)
			}
			if repaired != nil {
				rep.Repaired = repaired.Cuts
				rep.Repair = repaired
			}
			if rep.JournalID != "" {
				for _, p := range stateFileProblems(g.dir, rep.JournalID) {
					rep.Add(p)
				}
			}
			code := exitOK
			if !rep.Clean || (repaired != nil && (len(repaired.Cuts) > 0 || len(repaired.Missing) > 0 || len(repaired.Rewritten) > 0 || len(repaired.Unrepaired) > 0)) {
				code = exitProblems
			}
			if g.json {
				if err := g.printJSON(rep); err != nil {
					return err
				}
			} else {
				state := "clean"
				if !rep.Clean {
					state = "PROBLEMS FOUND"
				}
				fmt.Fprintf(g.out, "%s: %s — sequences %d..%d; hot log: %s, %d records, %s; archives: %d, %d records (%d coalesced), %s\n",
					rep.Dir, state, rep.FirstSequence, rep.LastSequence, plural(rep.Segments, "segment", "segments"), rep.Records, humanBytes(rep.Bytes),
					rep.ArchiveSegments, rep.ArchiveRecords, rep.Coalesced, humanBytes(rep.ArchiveBytes))
				if len(rep.Problems) > 0 {
					tw := g.table()
					fmt.Fprintln(tw, "SEVERITY\tKIND\tSEGMENT\tOFFSET\tSEQUENCE\tPROBLEM")
					for _, p := range rep.Problems {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", p.Severity, p.Kind, orDash(p.Segment), p.Offset, p.Sequence, p.Message)
					}
					tw.Flush()
				}
				if repaired != nil {
					for _, c := range repaired.Cuts {
						fmt.Fprintf(g.out, "repaired: %s in %s at offset %d: %d bytes kept in %s\n", c.Cause, c.Segment, c.Offset, c.Bytes, c.Quarantine)
					}
					for _, m := range repaired.Missing {
						if m.Segment != "" {
							fmt.Fprintf(g.out, "repaired: sequences %d..%d were held by no file and are lost: tombstones written to hot/%s, loss noted in quarantine/%s\n",
								m.First, m.Last, m.Segment, m.Note)
						} else {
							fmt.Fprintf(g.out, "repaired: sequences %d..%d were held by no file and are lost: %s\n", m.First, m.Last, m.Note)
						}
					}
					for _, w := range repaired.Rewritten {
						fmt.Fprintf(g.out, "repaired: %s\n", w)
					}
					for _, u := range repaired.Unrepaired {
						fmt.Fprintf(g.out, "NOT repaired: %s\n", u)
					}
					if len(repaired.Lost) > 0 {
						fmt.Fprintf(g.out, "repaired: %d sequence(s) replaced by tombstones: %v\n", len(repaired.Lost), repaired.Lost)
					}
				}
			}
			if code != exitOK {
				return &exitError{code: code, err: errReported}
			}
			return nil
		},
	}
	boolVar(cmd.Flags(), &repair, "repair", "", false, "quarantine damaged entries (needs the writer lock)")
	cmd.Flags().Var(newDurationFlag(&wait, DefaultLockWait), "wait", "with --repair: how long to wait for the writer lock another journalctl holds (0 fails at once)")
	return cmd
}

// stateFileProblems verifies the state files of the packages above the
// engine, with their own readers: the relay's cursor and its record of
// drops decide what is shipped and what retention may remove (the relay
// does not start on one it does not believe: an error); the coverage
// figures are what a restarted watcher believes of each surface's proof
// (one not believed starts afresh: a warning). A missing file is no
// problem.
func stateFileProblems(dir, journalID string) []engine.Problem {
	var ps []engine.Problem
	add := func(sev, file string, err error) {
		ps = append(ps, engine.Problem{Severity: sev, Kind: engine.ProblemState, Segment: file, Message: err.Error()})
	}
	if _, _, err := relay.ReadCursor(dir, journalID); err != nil {
		add(engine.SeverityError, "state/"+relay.CursorFileName, err)
	}
	if _, _, err := relay.ReadDropped(dir, journalID); err != nil {
		add(engine.SeverityError, "state/"+relay.DroppedFileName, err)
	}
	if _, err := coverage.ReadPersisted(dir, journalID); err != nil {
		add(engine.SeverityWarning, "state/"+coverage.StateFileName, err)
	}
	return ps
}
