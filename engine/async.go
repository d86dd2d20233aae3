package engine

import (
	"context"
	"errors"

	"github.com/agentruntime/statejournal/types"
)

// RecordAsync queues c and returns at once; it never blocks the caller's
// own mutation. When the bounded queue is full the change is dropped,
// counted (Status.AsyncDropped, state_journal_async_dropped_total) and
// ErrQueueFull returned. Validation and write failures of queued changes
// are logged and counted, never returned. Close drains the queue.
func (j *Journal) RecordAsync(c Change) error {
	if j.opts.readOnly {
		return types.ErrReadOnly
	}
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	if j.closed {
		return types.ErrClosed
	}
	if j.failure() != nil {
		j.dropAsync()
		return j.failure()
	}
	select {
	case j.async <- c:
		return nil
	default:
		j.dropAsync()
		return types.ErrQueueFull
	}
}

func (j *Journal) dropAsync() {
	j.asyncDropped.Add(1)
	if j.metrics != nil {
		j.metrics.asyncDropped.Inc()
	}
}

// asyncLoop records queued changes. Consecutive queued changes are sent
// as one batch when they validate together, so a burst costs one fsync.
func (j *Journal) asyncLoop() {
	defer close(j.asyncD)
	batch := make([]Change, 0, 256)
	for c := range j.async {
		batch = append(batch[:0], c)
	fill:
		for len(batch) < cap(batch) {
			select {
			case c, ok := <-j.async:
				if !ok {
					break fill
				}
				batch = append(batch, c)
			default:
				break fill
			}
		}
		j.recordAsyncBatch(batch)
	}
}

func (j *Journal) recordAsyncBatch(batch []Change) {
	ctx := context.Background()
	if _, err := j.recordBatchDirect(ctx, batch); err == nil {
		return
	}
	// Something in the batch failed: record one by one so one bad change
	// does not drop the others.
	for _, c := range batch {
		if _, err := j.recordDirect(ctx, c); err != nil {
			var fe *types.FieldError
			if errors.As(err, &fe) {
				j.log.Warn("async change rejected", "surface", c.Surface, "err", err)
			} else {
				j.log.Error("async change not recorded", "surface", c.Surface, "err", err)
			}
			j.dropAsync()
		}
	}
}
