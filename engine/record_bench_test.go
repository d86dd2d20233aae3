package engine

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// benchHeartbeat is the load generator's heartbeat: three metadata keys.
func benchHeartbeat() Change {
	c := heartbeat("ws-7")
	c.Metadata = map[string]any{"pid": 10007, "state": "running", "host": "bench-host-01"}
	return c
}

// The write path's own CPU, without the disk: sync=none, metrics on a
// private registry as in production. allocs/op is per record (Record) or
// per 1,000 records (RecordBatch).
func BenchmarkRecordPath(b *testing.B) {
	open := func(b *testing.B) *Journal {
		j, err := Open(b.TempDir(), WithSync(SyncNone), WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.Close() })
		return j
	}
	b.Run("prepare+encode", func(b *testing.B) {
		j := open(b)
		c := benchHeartbeat()
		r := getRequest()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			r.items, r.enc, r.ends = r.items[:0], r.enc[:0], r.ends[:0]
			if err := j.add(r, c, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record/writers=1", func(b *testing.B) {
		j := open(b)
		c := benchHeartbeat()
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := j.Record(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record/writers=64", func(b *testing.B) {
		j := open(b)
		ctx := context.Background()
		b.SetParallelism(32)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			c := benchHeartbeat()
			for pb.Next() {
				if _, err := j.Record(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("batch=1000", func(b *testing.B) {
		j := open(b)
		cs := make([]Change, 1000)
		for i := range cs {
			cs[i] = benchHeartbeat()
		}
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := j.RecordBatch(ctx, cs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
