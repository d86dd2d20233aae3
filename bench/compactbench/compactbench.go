// Package compactbench measures compaction on a heartbeat-heavy journal:
// the compression ratio, the compaction throughput per CPU second, and
// the append latency that concurrent writers see with and without a
// compaction running beside them (step 3's targets).
package compactbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/bench/latency"
	"github.com/agentruntime/statejournal/engine"
)

// Targets of step 3.
const (
	TargetRatio       = 8.0
	TargetMBPerCPUSec = 100.0
	TargetP99Factor   = 2.0
)

// Result is one measurement.
type Result struct {
	Records        int           `json:"records"`
	InputBytes     int64         `json:"input_bytes"`
	OutputBytes    int64         `json:"output_bytes"`
	Ratio          float64       `json:"ratio"`
	CompactWall    time.Duration `json:"compact_wall_ns"`
	CompactCPU     time.Duration `json:"compact_cpu_ns"`
	MBPerCPUSecond float64       `json:"mb_per_cpu_second"`
	MBPerSecond    float64       `json:"mb_per_second"`
	P99Quiet       time.Duration `json:"append_p99_quiet_ns"`
	P99Compacting  time.Duration `json:"append_p99_compacting_ns"`
	P50Quiet       time.Duration `json:"append_p50_quiet_ns"`
	P50Compacting  time.Duration `json:"append_p50_compacting_ns"`
	Compactions    int           `json:"compactions_during_load"`
	RecordsQuiet   uint64        `json:"records_quiet"`
	RecordsLoaded  uint64        `json:"records_compacting"`
}

// Heartbeat returns the i-th change of a heartbeat-heavy workload: nine
// in ten are heartbeats of 500 work sessions, the rest updates of other
// surfaces, each with the small metadata a runtime attaches.
func Heartbeat(i int) engine.Change {
	c := engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: fmt.Sprintf("ws-%d", i%500),
		Metadata: map[string]any{"pid": 1000 + i%500, "state": "running", "tokens_used": i % 9000, "host": "worker-3"}}
	if i%10 == 9 {
		c = engine.Change{Source: "runtime.test", Surface: "runtime_scheduler_jobs", ChangeType: "updated",
			AggregateType: "job", AggregateID: fmt.Sprintf("job-%d", i%97), Metadata: map[string]any{"attempt": i % 5}}
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// MeasureCompaction writes n heartbeat-heavy records and compacts them
// all with one Compact(SealActive) call.
func MeasureCompaction(dir string, n int) (Result, error) {
	r := Result{Records: n}
	j, err := engine.Open(dir, engine.WithSync(engine.SyncNone), engine.WithLogger(quietLogger()), engine.WithSegmentSize(64<<20))
	if err != nil {
		return r, err
	}
	defer j.Close()
	ctx := context.Background()
	batch := make([]engine.Change, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, Heartbeat(i))
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := j.RecordBatch(ctx, batch); err != nil {
				return r, err
			}
			batch = batch[:0]
		}
	}
	cpu0, t0 := host.CPUTime(), time.Now()
	rep, err := j.Compact(ctx, engine.CompactOptions{SealActive: true, Retention: &engine.Retention{}})
	if err != nil {
		return r, err
	}
	r.CompactWall, r.CompactCPU = time.Since(t0), host.CPUTime()-cpu0
	r.InputBytes, r.OutputBytes, r.Ratio = rep.InputBytes, rep.OutputBytes, rep.Ratio
	r.MBPerSecond = float64(rep.InputBytes) / 1e6 / r.CompactWall.Seconds()
	r.MBPerCPUSecond = float64(rep.InputBytes) / 1e6 / r.CompactCPU.Seconds()
	return r, nil
}

// MeasureAppendLatency runs writers under sync=always for d, once quiet
// and once while a compactor compacts every sealed segment as soon as it
// can, and returns both latency distributions.
func MeasureAppendLatency(dir string, writers int, d time.Duration, r *Result) error {
	run := func(sub string, compact bool) (*latency.Histogram, uint64, int, error) {
		j, err := engine.Open(dir+"/"+sub, engine.WithLogger(quietLogger()), engine.WithSegmentSize(1<<20),
			engine.WithRetention(engine.Retention{MaxBytes: 64 << 20}))
		if err != nil {
			return nil, 0, 0, err
		}
		defer j.Close()
		ctx := context.Background()
		stop := make(chan struct{})
		var compactions atomic.Int64
		var cwg sync.WaitGroup
		if compact {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					rep, err := j.Compact(ctx, engine.CompactOptions{})
					if err == nil && len(rep.Archives) > 0 {
						compactions.Add(int64(len(rep.Archives)))
					} else {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
		}
		hs := make([]latency.Histogram, writers)
		var wg sync.WaitGroup
		var errOnce atomic.Value
		deadline := time.Now().Add(d)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; time.Now().Before(deadline); i += writers {
					t := time.Now()
					if _, err := j.Record(ctx, Heartbeat(i)); err != nil {
						errOnce.CompareAndSwap(nil, err)
						return
					}
					hs[w].Record(time.Since(t))
				}
			}(w)
		}
		wg.Wait()
		close(stop)
		cwg.Wait()
		if e := errOnce.Load(); e != nil {
			return nil, 0, 0, e.(error)
		}
		var all latency.Histogram
		for i := range hs {
			all.Merge(&hs[i])
		}
		return &all, j.Status().Appended, int(compactions.Load()), nil
	}
	quiet, nq, _, err := run("quiet", false)
	if err != nil {
		return err
	}
	loaded, nl, c, err := run("compacting", true)
	if err != nil {
		return err
	}
	r.P99Quiet, r.P50Quiet = quiet.Quantile(0.99), quiet.Quantile(0.5)
	r.P99Compacting, r.P50Compacting = loaded.Quantile(0.99), loaded.Quantile(0.5)
	r.Compactions, r.RecordsQuiet, r.RecordsLoaded = c, nq, nl
	return nil
}

// Checks returns the PASS/MISS lines for r.
func (r Result) Checks() []string {
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	factor := float64(r.P99Compacting) / float64(max(r.P99Quiet, 1))
	return []string{
		fmt.Sprintf("compression ratio %.1fx (target >= %.0fx): %s", r.Ratio, TargetRatio, verdict(r.Ratio >= TargetRatio)),
		fmt.Sprintf("compaction %.0f MB of input per CPU second, %.0f MB/s wall (target >= %.0f MB/s on one core): %s",
			r.MBPerCPUSecond, r.MBPerSecond, TargetMBPerCPUSec, verdict(r.MBPerCPUSecond >= TargetMBPerCPUSec)),
		fmt.Sprintf("append p99 %s quiet, %s during compaction (%d archives written): %.2fx (target <= %.0fx): %s",
			r.P99Quiet, r.P99Compacting, r.Compactions, factor, TargetP99Factor, verdict(factor <= TargetP99Factor)),
	}
}

// TempDir makes a scratch directory for a run.
func TempDir() (string, error) { return os.MkdirTemp("", "compactbench") }
