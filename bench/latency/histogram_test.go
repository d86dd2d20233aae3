package latency

import (
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
		// tol is the allowed relative excess of the answer over want; the
		// histogram never answers below the true value.
		tol float64
	}{
		{"an empty histogram answers zero", nil, 0.99, 0, 0},
		{"a single value is every quantile", []time.Duration{5 * time.Millisecond}, 0.5, 5 * time.Millisecond, 0},
		{"small values are counted exactly", seq(1, 50, time.Nanosecond), 0.5, 25, 0},
		{"p50 of 1..1000 µs is 500 µs within precision", seq(1, 1000, time.Microsecond), 0.50, 500 * time.Microsecond, 1.0 / SubBuckets},
		{"p99 of 1..1000 µs is 990 µs within precision", seq(1, 1000, time.Microsecond), 0.99, 990 * time.Microsecond, 1.0 / SubBuckets},
		{"p100 is the maximum", seq(1, 1000, time.Microsecond), 1, time.Millisecond, 0},
		{"p0 is the minimum", seq(3, 1000, time.Microsecond), 0, 3 * time.Microsecond, 0},
		{"one slow outlier in a hundred is the p100 not the p99", append(repeat(100*time.Microsecond, 99), time.Second), 0.99, 100 * time.Microsecond, 1.0 / SubBuckets},
		{"values beyond the tracked range are clamped to the maximum seen", []time.Duration{100 * time.Second}, 0.5, 100 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			if got < tt.want || float64(got-tt.want) > tt.tol*float64(tt.want) {
				t.Fatalf("Quantile(%v) = %v, want %v (+%.1f%%)", tt.q, got, tt.want, 100*tt.tol)
			}
		})
	}
}

func TestMergeEqualsRecordingEverythingInOne(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	if merged != all {
		t.Fatalf("merged histogram differs from one fed every value")
	}
	if merged.Count() != 1000 || merged.Min() != 1 || merged.Max() != time.Duration(1000*1000) {
		t.Fatalf("count/min/max = %d/%v/%v", merged.Count(), merged.Min(), merged.Max())
	}
}

func TestBucketsAreContiguousAndOrdered(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		b := bucketOf(v)
		if b != prev && b != prev+1 {
			t.Fatalf("value %d jumps from bucket %d to %d", v, prev, b)
		}
		if bucketHigh(b) < v {
			t.Fatalf("value %d lies above its bucket's high %d", v, bucketHigh(b))
		}
		prev = b
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(123 * time.Microsecond) }); n != 0 {
		t.Fatalf("Record allocates %v times per call", n)
	}
}

func seq(from, to int, unit time.Duration) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*unit)
	}
	return out
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
