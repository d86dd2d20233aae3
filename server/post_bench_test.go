package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/bench/host"
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
			cpu0 := host.CPUTime()
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
			b.ReportMetric(float64((host.CPUTime()-cpu0).Microseconds())/float64(b.N*tc.batch), "cpu-µs/record")
		})
	}
	// The floor: the same client and connections against a bare net/http
	// server whose handler reads the body and answers 201 with a fixed
	// receipt, no journal. What a loopback POST costs this machine before
	// the journal does anything.
	b.Run("floor/bare-net-http/conns=16", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		answer := []byte(`{"receipts":[{"sequence":1,"event_id":"e","surface":"s","durable":true,"duplicate":false,"redactions":0,"metadata_trimmed":false,"occurred_at":"2026-11-26T17:51:57.000000000Z","committed_at":"2026-11-26T17:51:57.000000000Z"}]}` + "\n")
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write(answer)
		})}
		go hs.Serve(ln)
		defer hs.Close()
		cs := []engine.Change{heartbeat()}
		b.SetParallelism(8)
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := host.CPUTime()
		b.RunParallel(func(pb *testing.PB) {
			c := Dial("", ln.Addr().String(), "")
			defer c.Close()
			for pb.Next() {
				if _, err := c.Record(context.Background(), cs); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64((host.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
	})
}
