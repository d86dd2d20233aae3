// Package workload defines what the benchmark harness drives and how: the
// Target interface every measured system implements (the engine and each
// baseline), the heartbeat Record the writers send, and Run, which drives a
// Target with N concurrent writers for a fixed time and measures each call.
//
// Run allocates nothing per record itself: every writer owns a prebuilt
// Record (or batch) and a latency.Histogram, and histograms are merged once at
// the end. Whatever a run allocates per record is the Target's own cost.
package workload
