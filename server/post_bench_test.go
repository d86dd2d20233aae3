package server

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

// BenchmarkPostChanges measures the HTTP write path's own CPU: a real
// server on loopback TCP and its Go client in this process, the journal
// at sync=none so the disk is out of the figure. One op is one POST;
// allocs/op counts client and server together.
func BenchmarkPostChanges(b *testing.B) {
	heartbeat := func() engine.Change {
		return engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
			AggregateType: "work_session", AggregateID: "ws-7",
			Metadata: map[string]any{"pid": 10007, "state": "running", "host": "bench-host-01"}}
	}
	serve := func(b *testing.B) *Server {
		reg := prometheus.NewRegistry()
		j, err := engine.Open(b.TempDir(), engine.WithSync(engine.SyncNone), engine.WithRegisterer(reg), engine.WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		srv, err := New(j, Config{Listen: "127.0.0.1:0", Socket: Disabled, Registry: reg, Logger: quietLogger()})
		if err != nil {
			j.Close()
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		b.Cleanup(func() {
			cancel()
			<-done
			j.Close()
		})
		return srv
	}
	for _, tc := range []struct {
		name   string
		batch  int
		ndjson bool
	}{
		{"records=1/conns=16", 1, false},
		{"records=100/ndjson/conns=16", 100, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := serve(b)
			cs := make([]engine.Change, tc.batch)
			for i := range cs {
				cs[i] = heartbeat()
			}
			b.SetParallelism(8) // 16 writers on 2 CPUs
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := Dial("", srv.Addr(), "")
				defer c.Close()
				for pb.Next() {
					var err error
					if tc.ndjson {
						_, err = c.RecordNDJSON(context.Background(), cs)
					} else {
						_, err = c.Record(context.Background(), cs)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.batch), "ns/record")
		})
	}
}
