package workload_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/bench/baseline"
	"github.com/agentruntime/statejournal/bench/workload"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		spec  workload.Spec
		calls func(records uint64) uint64
	}{
		{"single-record writers make one call per record", workload.Spec{Writers: 4, Duration: 30 * time.Millisecond}, func(r uint64) uint64 { return r }},
		{"batch writers make one call per batch", workload.Spec{Writers: 2, Batch: 10, Duration: 30 * time.Millisecond}, func(r uint64) uint64 { return r / 10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" and every acknowledged record is in the file", func(t *testing.T) {
			dir := t.TempDir()
			tg, err := baseline.OpenPlainGroupCommit(dir, baseline.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := workload.Run(context.Background(), tg, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := tg.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "journal.ndjson"))
			if err != nil {
				t.Fatal(err)
			}
			if lines := uint64(bytes.Count(data, []byte("\n"))); res.Records == 0 || lines != res.Records {
				t.Fatalf("run acknowledged %d records, file holds %d", res.Records, lines)
			}
			if res.Calls != tt.calls(res.Records) || res.Latency.Count() != res.Calls {
				t.Fatalf("%d calls and %d latency observations for %d records", res.Calls, res.Latency.Count(), res.Records)
			}
		})
	}
}

func TestRunStopsAtTheFirstError(t *testing.T) {
	tg, err := baseline.OpenPlainFsync(t.TempDir(), baseline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := workload.Run(context.Background(), tg, workload.Spec{Writers: 3, Duration: time.Minute})
	if !errors.Is(err, baseline.ErrClosed) {
		t.Fatalf("Run on a closed target = %v, want ErrClosed", err)
	}
	if res.Records != 0 {
		t.Fatalf("%d records acknowledged by a closed target", res.Records)
	}
}

func TestRunNeedsAWriter(t *testing.T) {
	if _, err := workload.Run(context.Background(), nil, workload.Spec{}); !errors.Is(err, workload.ErrNoWriters) {
		t.Fatalf("Run with no writers = %v, want ErrNoWriters", err)
	}
}
