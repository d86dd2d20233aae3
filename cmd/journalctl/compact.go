package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
)

func newCompactCmd(g *globals) *cobra.Command {
	var (
		dryRun bool
		wait   time.Duration
		rf     retentionFlags
	)
	cmd := &cobra.Command{
		Use:   "state-journal-compact",
		Short: "Compact the hot log into zstd archives and apply retention",
		Long: `Seal the active hot segment and compact everything written before this call
into zstd-compressed archives, then remove the oldest archives past the
retention limits and advance the horizon (the oldest readable sequence).

--dry-run reports what would be compacted, coalesced and removed, and
changes nothing. It runs the real run's planner and encodes every archive
into no file, so its sizes and removals are what the real run does on an
idle journal. --max-bytes is what the directory may hold; it must leave
room for the hot log's two segments plus one (the error names the
minimum). A progress bar is drawn on a terminal.
When a server holds the data directory, the server compacts; when another
journalctl holds the writer lock, this command waits for it up to --wait.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ret, err := rf.retention()
			if err != nil {
				return err
			}
			window, err := rf.coalesceWindow()
			if err != nil {
				return err
			}
			rep, err := compact(g, cmd, dryRun, ret, window, &rf, wait)
			if errors.Is(err, engine.ErrRetention) {
				// --max-bytes below the hot log's headroom: a usage error
				// naming the minimum.
				return g.fail(exitUsage, fmt.Errorf("--max-bytes: %w", err))
			}
			if err != nil {
				return g.fail(exitProblems, err)
			}
			if g.json {
				return g.printJSON(rep)
			}
			printCompactReport(g, rep)
			return nil
		},
	}
	boolVar(cmd.Flags(), &dryRun, "dry-run", "", false, "report what would be compacted, coalesced and removed, and change nothing")
	cmd.Flags().Var(newDurationFlag(&wait, DefaultLockWait), "wait", "how long to wait for the writer lock another journalctl holds (e.g. 30s; 0 fails at once)")
	rf.bind(cmd)
	return cmd
}

func compact(g *globals, cmd *cobra.Command, dryRun bool, ret engine.Retention, window time.Duration, rf *retentionFlags, wait time.Duration) (engine.CompactReport, error) {
	ctx := context.Background()
	if err := g.checkJournalDir(); err != nil {
		return engine.CompactReport{}, err
	}
	viaServer := func(h *engine.Holder) (engine.CompactReport, error) {
		c, err := g.dial(h)
		if err != nil {
			return engine.CompactReport{}, err
		}
		defer c.Close()
		req := server.CompactRequest{DryRun: dryRun, Coalesce: rf.coalesce}
		if cmd.Flags().Changed("max-bytes") {
			req.MaxBytes = &rf.maxBytes
		}
		if cmd.Flags().Changed("max-age") {
			req.MaxAge = &rf.maxAge
		}
		if cmd.Flags().Changed("max-records") {
			req.MaxRecords = &rf.maxRecords
		}
		return c.Compact(ctx, req)
	}
	opts, err := g.engineOptions()
	if err != nil {
		return engine.CompactReport{}, err
	}
	// Retention keeps what the NATS relay has not shipped (its cursor in
	// state/relay.json), in the dry run too, so the dry run predicts it.
	_, floor, err := relayGuard(g, nil)
	if err != nil {
		return engine.CompactReport{}, err
	}
	opts = append(opts, engine.WithRetention(ret), engine.WithHolder("journalctl state-journal-compact"), floor)
	var j *engine.Journal
	if dryRun {
		// A dry run changes nothing, so it needs no lock; a server that
		// holds the directory answers it with its own retention.
		if held, h := engine.LockHolder(g.dir); held && h != nil && (h.Socket != "" || h.Address != "") {
			return viaServer(h)
		}
		j, err = engine.Open(g.dir, append(opts, engine.ReadOnly())...)
	} else {
		var h *engine.Holder
		h, err = g.waitForLock(wait, func() error {
			var err error
			j, err = engine.Open(g.dir, opts...)
			return err
		})
		if err == nil && h != nil {
			return viaServer(h)
		}
	}
	if err != nil {
		return engine.CompactReport{}, err
	}
	defer j.Close()
	o := engine.CompactOptions{DryRun: dryRun, SealActive: true, Coalesce: window}
	var bar *progressBar
	if f, ok := g.errOut.(*os.File); ok && !g.json && term.IsTerminal(int(f.Fd())) {
		bar = &progressBar{out: f}
		o.Progress = bar.update
	}
	rep, err := j.Compact(ctx, o)
	bar.finish()
	return rep, err
}

func printCompactReport(g *globals, rep engine.CompactReport) {
	fmt.Fprintln(g.out, rep.Message)
	if len(rep.Archives) > 0 {
		tw := g.table()
		verb := "ARCHIVE"
		if rep.DryRun {
			verb = "WOULD WRITE"
		}
		fmt.Fprintf(tw, "%s\tSEQUENCES\tRECORDS\tCOALESCED\tIN\tOUT\n", verb)
		for _, a := range rep.Archives {
			out := humanBytes(a.OutputBytes) // measured, also in a dry run
			fmt.Fprintf(tw, "%s\t%d..%d\t%d\t%d\t%s\t%s\n", a.Name, a.FirstSequence, a.LastSequence, a.Records, a.Coalesced, humanBytes(a.InputBytes), out)
		}
		tw.Flush()
	}
	if len(rep.Removed) > 0 {
		tw := g.table()
		verb := "REMOVED"
		if rep.DryRun {
			verb = "WOULD REMOVE"
		}
		fmt.Fprintf(tw, "%s\tSEQUENCES\tRECORDS\tBYTES\tREASON\n", verb)
		for _, r := range rep.Removed {
			reason := r.Reason
			if r.Unshipped > 0 {
				reason += fmt.Sprintf(" (%d never relayed to NATS)", r.Unshipped)
			}
			fmt.Fprintf(tw, "%s\t%d..%d\t%d\t%s\t%s\n", r.Name, r.FirstSequence, r.LastSequence, r.Records, humanBytes(r.Bytes), reason)
		}
		tw.Flush()
	}
	if rep.HorizonAfter != rep.HorizonBefore {
		fmt.Fprintf(g.out, "horizon: %d -> %d (consumers with a cursor below %d must resync from a snapshot)\n", rep.HorizonBefore, rep.HorizonAfter, rep.HorizonAfter-1)
	}
}

// progressBar draws compaction progress on a terminal.
type progressBar struct {
	out  *os.File
	last time.Time
	done bool
}

func (p *progressBar) update(done, total int64) {
	if p == nil || total <= 0 || time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	const width = 30
	n := int(done * width / total)
	fmt.Fprintf(p.out, "\rcompacting [%s%s] %3d%% %s/%s", strings.Repeat("#", n), strings.Repeat(" ", width-n),
		done*100/total, humanBytes(done), humanBytes(total))
	p.done = true
}

func (p *progressBar) finish() {
	if p != nil && p.done {
		fmt.Fprintln(p.out)
	}
}
