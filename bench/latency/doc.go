// Package latency holds the compact latency histogram the load driver and the
// Go benchmarks use to report p50/p99 append latency without allocating per
// record.
//
// The histogram is log-linear, in the manner of HdrHistogram: values below
// 2*SubBuckets nanoseconds are counted exactly; above that, every power of two
// is split into SubBuckets equal sub-buckets, so a reported quantile is at
// most 1/SubBuckets (about 3%) above the true value. Quantiles report the
// highest value of the bucket they fall in, so a p99 is never flattering.
//
// A Histogram is a fixed-size value (no pointers, no maps): one per writer
// goroutine, recorded without locks, merged once at the end of a run.
package latency
