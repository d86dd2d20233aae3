// Package enginetarget adapts the journal engine to the benchmark harness's
// workload.Target, so the load driver and the Go benchmarks measure the
// engine through its public API exactly as a Go caller uses it: Open with a
// sync policy and a private Prometheus registry (metrics on, as in
// production), Record and RecordBatch with heartbeat Changes, Status for the
// fsync count, Close.
//
// Engine adds no buffering or concurrency of its own: a Record call is one
// engine Record call. HTTP puts the journal server in front, for the HTTP
// ingestion scenario: a Record call is one POST /v1/changes over loopback.
package enginetarget
