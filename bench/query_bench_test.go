package bench_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/bench/querybench"
	"github.com/agentruntime/statejournal/engine"
)

// The query benchmarks share one cache of generated journals per process
// (building 10M records takes tens of seconds), removed by TestMain.
var queryData struct {
	once  sync.Once
	cache *querybench.Cache
	err   error
}

// sizesEnv overrides the journal sizes of the query benchmarks
// ("1M,2M,5M,10M"); -short uses 200k.
const sizesEnv = "QUERYBENCH_SIZES"

// TestMain removes the generated journals after the benchmarks ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if queryData.cache != nil {
		if err := queryData.cache.Remove(); err != nil {
			os.Stderr.WriteString("querybench: " + err.Error() + "\n")
		}
	}
	os.Exit(code)
}

// querySizes returns the sizes to run: $QUERYBENCH_SIZES, else 200k under
// -short, else 1M and 10M (the ends of the flatness check; the driver
// also runs 2M and 5M).
func querySizes(b *testing.B) []int {
	if s := os.Getenv(sizesEnv); s != "" {
		n, err := querybench.ParseSizes(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	if testing.Short() {
		return []int{200_000}
	}
	return []int{1_000_000, 10_000_000}
}

// queryDataset returns the cached journal of n records; building it is
// outside the timer.
func queryDataset(b *testing.B, n int) *querybench.Dataset {
	b.Helper()
	queryData.once.Do(func() {
		queryData.cache, queryData.err = querybench.NewCache("", querybench.Config{})
	})
	if queryData.err != nil {
		b.Fatal(queryData.err)
	}
	ds, err := queryData.cache.Get(n)
	if err != nil {
		b.Fatal(err)
	}
	return ds
}

// openDataset opens the journal of n records for the queries of one
// benchmark and closes it when the benchmark ends.
func openDataset(b *testing.B, n int) (*querybench.Dataset, *engine.Journal) {
	b.Helper()
	ds := queryDataset(b, n)
	j, err := ds.Open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := j.Close(); err != nil {
			b.Error(err)
		}
	})
	return ds, j
}

// benchQuery runs q once to warm up and check it, then b.N times, and
// reports the p99 latency beside ns/op.
func benchQuery(b *testing.B, j *engine.Journal, q engine.Query, wantLen int) {
	ctx := context.Background()
	res, err := j.Query(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Changes) != wantLen {
		b.Fatalf("the query returned %d records, want %d", len(res.Changes), wantLen)
	}
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := j.Query(ctx, q); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(querybench.Summarize(lat).P99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(wantLen), "records/op")
}

// BenchmarkQueryRareSurface measures the newest 50 records of a surface
// that holds one record in 20,000: the query should cost the same at 1M
// and 10M records (target < 5 ms).
func BenchmarkQueryRareSurface(b *testing.B) {
	for _, n := range querySizes(b) {
		b.Run("records="+querybench.SizeName(n), func(b *testing.B) {
			ds, j := openDataset(b, n)
			benchQuery(b, j, querybench.RareQuery(), len(ds.NewestRare(querybench.RareLimit)))
		})
	}
}

// BenchmarkQueryCursor measures a follower's page: the 1,000 records
// after head-1,000.
func BenchmarkQueryCursor(b *testing.B) {
	for _, n := range querySizes(b) {
		b.Run("records="+querybench.SizeName(n)+"/limit=1000", func(b *testing.B) {
			_, j := openDataset(b, n)
			benchQuery(b, j, querybench.CursorQuery(j.Head()), querybench.CursorPage)
		})
	}
}

// BenchmarkStale measures Stale(head-100): which snapshots and surfaces
// a consumer 100 records behind must refetch (target < 100 µs).
func BenchmarkStale(b *testing.B) {
	for _, n := range querySizes(b) {
		b.Run("records="+querybench.SizeName(n), func(b *testing.B) {
			_, j := openDataset(b, n)
			since := j.Head() - querybench.StaleLag
			if _, err := j.Stale(since); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := j.Stale(since); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures Open of the whole journal, with the index
// checkpoint Close wrote (page cache warm; target < 1 s) and without it
// (deleted before each open). Close is outside the timer. It reports the
// largest RSS growth across one Open.
func BenchmarkOpen(b *testing.B) {
	for _, n := range querySizes(b) {
		for _, mode := range []querybench.OpenMode{querybench.WithCheckpoint, querybench.WithoutCheckpoint} {
			b.Run("records="+querybench.SizeName(n)+"/checkpoint="+mode.String(), func(b *testing.B) {
				ds := queryDataset(b, n)
				var rss int64
				b.ReportAllocs()
				b.StopTimer()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := querybench.PrepareOpen(ds, mode); err != nil {
						b.Fatal(err)
					}
					r0 := querybench.RSS()
					b.StartTimer()
					j, err := ds.Open()
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					rss = max(rss, querybench.RSS()-r0)
					if err := j.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rss)/(1<<20), "rss-growth-MiB")
			})
		}
	}
}
