package engine

import (
	"context"
	"errors"
	"time"
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
	for {
		select {
		case <-j.autoStop:
			return
		case <-j.autoKick:
		case <-t.C:
		}
		if j.failure() != nil {
			continue
		}
		rep, err := j.Compact(ctx, CompactOptions{Coalesce: j.opts.auto.Coalesce})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			j.log.Error("automatic compaction failed", "err", err)
			if j.metrics != nil {
				j.metrics.compactFailures.Inc()
			}
			continue
		}
		if len(rep.Archives) > 0 || len(rep.Removed) > 0 {
			j.log.Info("compacted", "archives", len(rep.Archives), "records", rep.Records, "coalesced", rep.Coalesced,
				"ratio", rep.Ratio, "removed", len(rep.Removed), "horizon", rep.HorizonAfter, "duration", rep.Duration)
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
