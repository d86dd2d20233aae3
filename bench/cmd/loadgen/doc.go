// Command loadgen is the journal's load driver: it measures the engine and
// the baselines of package baseline under the same scenarios in the same run
// and prints one table of figures and ratios (or, with -json, one stable JSON
// document for comparison across commits).
//
// Every (scenario, target) pair runs in its own child process — loadgen
// re-executing itself with -child as its first argument — so peak RSS and CPU
// time belong to that pair alone. Each scenario runs -count rounds with the
// targets interleaved, and the round with the median records/s is reported. The child drives the target with
// workload.Run, measures the load phase (records, latency histogram, fsyncs,
// CPU from getrusage) and the bytes its data directory holds after Close, and
// prints its figures as JSON on stdout; the parent adds the child's peak RSS
// from its rusage.
//
// Usage:
//
//	go run ./bench/cmd/loadgen                 # the full table: 2 s runs, 3 rounds (a few minutes)
//	go run ./bench/cmd/loadgen -smoke          # every scenario once for 1 s (CI)
//	go run ./bench/cmd/loadgen -json > run.json
//	go run ./bench/cmd/loadgen -o run.json     # the table, and the JSON in run.json
//	go run ./bench/cmd/loadgen -scenarios 'writers=64' -targets 'engine|plain'
//
// It exits 1 when a run failed, 2 on bad flags, and with -strict also 1 when
// a performance target is missed.
package main
