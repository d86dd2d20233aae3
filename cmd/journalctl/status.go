package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
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
			if g.json {
				return g.printJSON(st)
			}
			tw := g.table()
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("Directory", st.Dir)
			row("First sequence (horizon)", st.FirstSequence)
			row("Last sequence", st.LastSequence)
			row("Records", st.Records)
			row("Hot log", fmt.Sprintf("%d records, %s in %d segments (segment size %s)", st.HotRecords, humanBytes(st.HotBytes), st.HotSegments, humanBytes(int64(st.SegmentSize))))
			row("Archives", fmt.Sprintf("%d records, %s in %d segments, %d coalesced, compression %.1fx", st.ArchiveRecords, humanBytes(st.ArchiveBytes), st.ArchiveSegments, st.Coalesced, st.CompressionRatio))
			for _, d := range st.DamagedArchives {
				row("  DAMAGED", d)
			}
			if st.LastCompaction != nil {
				lc := st.LastCompaction
				row("Last compaction", fmt.Sprintf("%s: %d archive(s), %d records, %d coalesced, %.1fx, %d removed, took %s", lc.At.Format(time.RFC3339), lc.Archives, lc.Records, lc.Coalesced, lc.Ratio, lc.Removed, lc.Duration))
			} else {
				row("Last compaction", "never")
			}
			row("Retention", fmt.Sprintf("max %s, max age %s, max %d records", humanBytes(st.Retention.MaxBytes), st.Retention.MaxAge, st.Retention.MaxRecords))
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
				row("Last recovery", r.At.Format(time.RFC3339))
				for _, c := range r.Cuts {
					row("  cut", fmt.Sprintf("%s in %s at offset %d: %d bytes from sequence %d kept in %s", c.Cause, c.Segment, c.Offset, c.Bytes, c.Sequence, c.Quarantine))
				}
			} else {
				row("Last recovery", "none")
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(g.out)
			tw = g.table()
			fmt.Fprintln(tw, "SURFACE\tRECORDS\tLAST SEQ\tLAST CHANGE\tLAST AT")
			for _, s := range st.Surfaces {
				at, seq := "-", "-"
				if s.LastAt != nil {
					at = s.LastAt.Format(time.RFC3339Nano)
					seq = fmt.Sprint(s.LastSequence)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.ID, s.Records, seq, orDash(s.LastChangeType), at)
			}
			return tw.Flush()
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
