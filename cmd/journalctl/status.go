package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/server"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state-journal-status",
		Short: "Show the journal's sequences, counts, bytes, segments, sync policy, writer and last recovery",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := g.openRead()
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer j.Close()
			st := j.Status()
			cov, covAt, covProblem := readCoverage(j)
			rst, rerr := relayStatus(j)
			if g.json {
				body := server.StatusBody{Status: st, Coverage: cov, CoverageProblem: covProblem}
				if rst != nil {
					body.Relay = rst
				}
				if rerr != nil {
					body.RelayError = rerr.Error()
				}
				return g.printJSON(body)
			}
			var rows [][2]string
			row := func(k string, v any) { rows = append(rows, [2]string{k, fmt.Sprint(v)}) }
			row("Directory", st.Dir)
			row("First sequence (horizon)", st.FirstSequence)
			row("Last sequence", st.LastSequence)
			row("Records", st.Records)
			row("Hot log", fmt.Sprintf("%d records, %s in %s (segment size %s)", st.HotRecords, humanBytes(st.HotBytes), plural(st.HotSegments, "segment", "segments"), humanBytes(int64(st.SegmentSize))))
			if st.ArchiveSegments == 0 {
				row("Archives", "none")
			} else {
				row("Archives", fmt.Sprintf("%d records, %s in %s, %d coalesced, compression %.1fx", st.ArchiveRecords, humanBytes(st.ArchiveBytes), plural(st.ArchiveSegments, "archive", "archives"), st.Coalesced, st.CompressionRatio))
			}
			for _, d := range st.DamagedArchives {
				row("  DAMAGED", d)
			}
			if st.LastCompaction != nil {
				lc := st.LastCompaction
				row("Last compaction", fmt.Sprintf("%s: %d archive(s), %d records, %d coalesced, %.1fx, %d removed, took %s", humanTime(lc.At), lc.Archives, lc.Records, lc.Coalesced, lc.Ratio, lc.Removed, lc.Duration))
			} else {
				row("Last compaction", "never")
			}
			row("Retention", fmt.Sprintf("max %s, max age %s, max %d records", humanBytes(st.Retention.MaxBytes), humanDuration(st.Retention.MaxAge), st.Retention.MaxRecords))
			row("Sync policy", st.SyncPolicy)
			row("Index memory", humanBytes(st.IndexBytes))
			if st.Writer != nil {
				row("Writer", st.Writer.String())
			} else {
				row("Writer", "none (no process holds the lock)")
			}
			row("Dedupe window", st.DedupeWindow)
			if st.LastRecovery != nil {
				r := st.LastRecovery
				row("Last recovery", humanTime(r.At))
				for _, c := range r.Cuts {
					row("  cut", fmt.Sprintf("%s in %s at offset %d: %d bytes from sequence %d kept in %s", c.Cause, c.Segment, c.Offset, c.Bytes, c.Sequence, c.Quarantine))
				}
			} else {
				row("Last recovery", "none")
			}
			switch {
			case rerr != nil:
				row("Relay", "cursor not believed: "+rerr.Error())
			case rst != nil:
				row("Relay", fmt.Sprintf("host %s to stream %s: shipped through %d, lag %d records, %.1f s", rst.Host, rst.Stream, rst.Shipped, rst.LagRecords, rst.LagSeconds))
				if d := rst.Dropped; d != nil {
					row("  DROPPED UNSHIPPED", fmt.Sprintf("%d records removed by the byte budget before the relay shipped them (last: %s, %d..%d, %s)", d.Records, d.LastArchive, d.LastFirst, d.LastLast, humanTime(d.LastAt)))
				}
			}
			if err := g.keyValues(rows); err != nil {
				return err
			}
			fmt.Fprintln(g.out)
			t := g.newTable(column{title: "SURFACE", shrink: 1, min: 16}, column{title: "RECORDS"}, column{title: "LAST SEQ"},
				column{title: "LAST CHANGE"}, column{title: "LAST AT"})
			for _, s := range st.Surfaces {
				at, seq := "-", "-"
				if s.LastAt != nil {
					at = humanTime(*s.LastAt)
					seq = fmt.Sprint(s.LastSequence)
				}
				t.add(s.ID, fmt.Sprint(s.Records), seq, orDash(s.LastChangeType), at)
			}
			if err := t.print(g.out); err != nil {
				return err
			}
			fmt.Fprintln(g.out)
			switch {
			case covProblem != "":
				fmt.Fprintf(g.out, "Coverage: %s\n", covProblem)
				return nil
			case cov == nil:
				fmt.Fprintln(g.out, "Coverage: no figures yet (journalctl serve writes them)")
				return nil
			}
			fmt.Fprintf(g.out, "Coverage, figures persisted at %s:\n", humanTime(*covAt))
			return g.printCoverage(cov, false)
		},
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
