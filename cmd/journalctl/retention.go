package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
)

// retentionFlags are the retention limits shared by serve and
// state-journal-compact.
type retentionFlags struct {
	maxBytes   string
	maxAge     string
	maxRecords uint64
	coalesce   string
}

func (f *retentionFlags) bind(cmd *cobra.Command) {
	d := engine.DefaultRetention()
	fl := cmd.Flags()
	fl.StringVar(&f.maxBytes, "max-bytes", envOr("STATE_JOURNAL_MAX_BYTES", "1GiB"), "retention: most bytes on disk (hot + archives), e.g. 64M, 64MiB, 1.5GiB (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000); 0 for no limit (env STATE_JOURNAL_MAX_BYTES)")
	fl.StringVar(&f.maxAge, "max-age", envOr("STATE_JOURNAL_MAX_AGE", "30d"), "retention: oldest records kept, a duration such as 36h, 7d, 2w; 0 for no limit (env STATE_JOURNAL_MAX_AGE)")
	fl.Uint64Var(&f.maxRecords, "max-records", d.MaxRecords, "retention: most records kept; 0 for no limit")
	fl.StringVar(&f.coalesce, "coalesce", envOr("STATE_JOURNAL_COALESCE", "0"), "keep only the newest heartbeat per surface and aggregate per window of this length when compacting, a duration such as 30s, 1m; 0 keeps every heartbeat (env STATE_JOURNAL_COALESCE)")
}

func (f *retentionFlags) retention() (engine.Retention, error) {
	var r engine.Retention
	n, err := parse.Size(f.maxBytes)
	if err != nil {
		return r, usageErr("--max-bytes %v", err)
	}
	r.MaxBytes = n
	d, err := parse.Duration(f.maxAge)
	if err != nil {
		return r, usageErr("--max-age %v", err)
	}
	r.MaxAge = d
	r.MaxRecords = f.maxRecords
	return r, nil
}

func (f *retentionFlags) coalesceWindow() (time.Duration, error) {
	if f.coalesce == "" {
		return 0, nil
	}
	d, err := parse.Duration(f.coalesce)
	if err != nil {
		return 0, usageErr("--coalesce %v", err)
	}
	return d, nil
}
