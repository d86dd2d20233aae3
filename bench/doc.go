// Package bench is the journal's proof harness: Go benchmarks (in
// bench_test.go) and, below it, the pieces the load driver is built from.
//
//   - bench/workload: the Target interface, the heartbeat record and Run,
//     which drives a Target with N writers and measures every call.
//   - bench/latency: the allocation-free log-linear latency histogram.
//   - bench/baseline: the systems every figure is compared with in the same
//     run — (a) plain file, fsync per record; (b) plain file, group commit;
//     (c) raw tidwall/wal, Write per record; (d) raw tidwall/wal, group
//     commit into WriteBatch.
//   - bench/enginetarget: the engine as a Target.
//   - bench/cmd/loadgen: the load driver (`make bench`, `make bench-smoke`)
//     that prints one table of figures and ratios, or JSON with -json.
//
// The Go benchmarks are named for benchstat:
//
//	BenchmarkRecord/writers=64/sync=always/target=engine
//	BenchmarkRecordBatch/batch=1000/writers=4/sync=always/target=plain-group
//
// Compare two commits with
//
//	go test -run '^$' -bench . -count 10 ./bench > new.txt
//	benchstat old.txt new.txt
//
// See README.md for what each scenario and baseline measures and how to read
// the ratios.
package bench
