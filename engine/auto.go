package engine

import (
	"context"
	"errors"
	"time"
)

// Backoff of automatic compaction after a failure: the first retry waits
// autoBackoffMin, each further failure doubles the wait up to
// autoBackoffMax. A success resets it.
const (
	autoBackoffMin = time.Second
	autoBackoffMax = 5 * time.Minute
)

// startAuto starts the background compactor when AutoCompact is on. It
// runs a compaction when the committer seals a hot segment, and every
// Interval so age-based retention applies to a quiet journal too.
func (j *Journal) startAuto() {
	if !j.opts.auto.Enabled || j.opts.readOnly {
		return
	}
	j.autoStop = make(chan struct{})
	j.autoDone = make(chan struct{})
	j.autoKick = make(chan struct{}, 1)
	go j.autoLoop()
}

// autoLoop runs compactions until Close. A failed compaction (no space,
// a damaged segment) leaves the hot log writable; it is reported by
// Compact (log, metric, Status) and retried after a backoff, during
// which seal kicks and ticks wait.
func (j *Journal) autoLoop() {
	defer close(j.autoDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-j.autoStop
		cancel()
	}()
	t := time.NewTicker(j.opts.auto.Interval)
	defer t.Stop()
	var (
		backoff time.Duration
		retry   *time.Timer
		retryC  <-chan time.Time
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-j.autoStop:
			return
		case <-j.autoKick:
		case <-t.C:
		case <-retryC:
			retryC = nil
		}
		if retryC != nil {
			continue // backing off: the retry timer runs the next attempt
		}
		if j.failure() != nil {
			continue
		}
		rep, err := j.Compact(ctx, CompactOptions{Coalesce: j.opts.auto.Coalesce})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, autoBackoffMin), autoBackoffMax)
			at := time.Now().Add(backoff).UTC()
			if f := j.compactFail.Load(); f != nil {
				nf := *f
				nf.RetryAt = &at
				j.compactFail.CompareAndSwap(f, &nf)
			}
			j.log.Warn("automatic compaction will retry", "after", backoff, "err", err)
			if retry == nil {
				retry = time.NewTimer(backoff)
			} else {
				retry.Reset(backoff)
			}
			retryC = retry.C
			continue
		}
		backoff = 0
		if len(rep.Archives) > 0 || len(rep.Removed) > 0 {
			j.log.Info("compacted", "archives", len(rep.Archives), "records", rep.Records, "coalesced", rep.Coalesced,
				"tombstones", rep.Tombstones, "ratio", rep.Ratio, "removed", len(rep.Removed), "horizon", rep.HorizonAfter, "duration", rep.Duration)
		}
	}
}

// kickAuto asks the background compactor to run; it never blocks.
func (j *Journal) kickAuto() {
	if j.autoKick == nil {
		return
	}
	select {
	case j.autoKick <- struct{}{}:
	default:
	}
}
