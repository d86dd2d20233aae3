package latency

import (
	"math"
	"math/bits"
	"time"
)

const (
	// subBits is log2 of SubBuckets.
	subBits = 5
	// SubBuckets is the number of sub-buckets per power of two; it sets the
	// relative precision of quantiles (1/SubBuckets).
	SubBuckets = 1 << subBits
	// maxShift bounds the tracked range: values at or above
	// 2^(maxShift+subBits+1) ns (about 68 s) land in the last bucket.
	maxShift = 30
	// numBuckets is the number of counters in a Histogram.
	numBuckets = (maxShift + 2) * SubBuckets
)

// Histogram counts durations in log-linear buckets. The zero value is ready to
// use. It is not safe for concurrent use: give each goroutine its own and
// Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    uint64 // nanoseconds
	min    uint64 // nanoseconds, valid when count > 0
	max    uint64 // nanoseconds
}

// bucketOf returns the bucket index for v nanoseconds.
func bucketOf(v uint64) int {
	if v < 2*SubBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	if shift > maxShift {
		return numBuckets - 1
	}
	return (shift+1)*SubBuckets + int(v>>uint(shift)) - SubBuckets
}

// bucketHigh returns the highest value (ns) that maps to bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*SubBuckets {
		return uint64(i)
	}
	shift := i/SubBuckets - 1
	low := uint64(i%SubBuckets+SubBuckets) << uint(shift)
	return low + (1 << uint(shift)) - 1
}

// Record adds one observation. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += v
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest observation, or 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest observation, or 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Quantile returns the value at quantile q (0 <= q <= 1): the highest value
// of the bucket holding the ceil(q*count)-th smallest observation, clamped to
// the observed maximum. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.count {
		rank = h.count
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
