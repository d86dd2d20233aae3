package bench_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/bench/baseline"
	"github.com/agentruntime/statejournal/bench/enginetarget"
	"github.com/agentruntime/statejournal/bench/latency"
	"github.com/agentruntime/statejournal/bench/workload"
)

// benchTargets are the systems every benchmark runs on, the engine first.
var benchTargets = []struct {
	name string
	open func(dir string, mode workload.SyncMode) (workload.Target, error)
}{
	{"engine", func(dir string, mode workload.SyncMode) (workload.Target, error) {
		data := filepath.Join(dir, "journal")
		return enginetarget.Open(data, enginetarget.RootDirFor(data), mode)
	}},
	{"plain-fsync", func(dir string, mode workload.SyncMode) (workload.Target, error) {
		return baseline.OpenPlainFsync(dir, baseline.Options{Sync: mode})
	}},
	{"plain-group", func(dir string, mode workload.SyncMode) (workload.Target, error) {
		return baseline.OpenPlainGroupCommit(dir, baseline.Options{Sync: mode})
	}},
	{"wal", func(dir string, mode workload.SyncMode) (workload.Target, error) {
		return baseline.OpenRawWAL(dir, baseline.Options{Sync: mode})
	}},
	{"wal-batch", func(dir string, mode workload.SyncMode) (workload.Target, error) {
		return baseline.OpenRawWALBatch(dir, baseline.Options{Sync: mode})
	}},
}

// recordSize is the heartbeat's size as a baseline JSON line: what one
// record carries, for b.SetBytes.
var recordSize = int64(baseline.LineSize(workload.Heartbeat(0)))

// BenchmarkRecord measures one Record call per op: b.N heartbeats shared
// among the writers, so ns/op is the inverse of aggregate throughput. It
// reports fsyncs/op, records/s and the p99 latency of a call.
func BenchmarkRecord(b *testing.B) {
	for _, writers := range []int{1, 8, 64, 256} {
		for _, tg := range benchTargets {
			b.Run(fmt.Sprintf("writers=%d/sync=always/target=%s", writers, tg.name), func(b *testing.B) {
				benchmarkCalls(b, tg.open, writers, 1)
			})
		}
	}
}

// BenchmarkRecordBatch measures one RecordBatch call of 1000 heartbeats per
// op, from 4 concurrent writers.
func BenchmarkRecordBatch(b *testing.B) {
	const batch, writers = 1000, 4
	for _, tg := range benchTargets {
		b.Run(fmt.Sprintf("batch=%d/writers=%d/sync=always/target=%s", batch, writers, tg.name), func(b *testing.B) {
			benchmarkCalls(b, tg.open, writers, batch)
		})
	}
}

// benchmarkCalls runs b.N calls (Record when batch is 1, else RecordBatch of
// batch records) spread over writers goroutines against a fresh target.
// Opening and closing the target are outside the timer.
func benchmarkCalls(b *testing.B, open func(string, workload.SyncMode) (workload.Target, error), writers, batch int) {
	t, err := open(b.TempDir(), workload.SyncAlways)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := t.Close(); err != nil {
			b.Error(err)
		}
	}()
	recs := make([][]workload.Record, writers)
	for w := range recs {
		recs[w] = make([]workload.Record, batch)
		for i := range recs[w] {
			recs[w][i] = workload.Heartbeat(w)
		}
	}
	hists := make([]latency.Histogram, writers)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		failOnce sync.Once
		failErr  error
	)
	ctx := context.Background()
	fsyncs0 := t.Fsyncs()

	b.SetBytes(recordSize * int64(batch))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := &hists[w]
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				var err error
				if batch == 1 {
					err = t.Record(ctx, recs[w][0])
				} else {
					err = t.RecordBatch(ctx, recs[w])
				}
				if err != nil {
					failOnce.Do(func() { failErr = err })
					return
				}
				h.Record(time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failErr != nil {
		b.Fatal(failErr)
	}

	var all latency.Histogram
	for i := range hists {
		all.Merge(&hists[i])
	}
	b.ReportMetric(float64(t.Fsyncs()-fsyncs0)/float64(b.N), "fsyncs/op")
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(all.Quantile(0.99).Nanoseconds()), "p99-ns")
}
