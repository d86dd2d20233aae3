package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentruntime/statejournal/bench/latency"
)

// Spec describes one run: how many writers, whether they call Record or
// RecordBatch, and for how long.
type Spec struct {
	// Writers is the number of concurrent writer goroutines (at least 1).
	Writers int
	// Batch is the number of records per RecordBatch call; 0 or 1 means
	// each writer calls Record with one record.
	Batch int
	// Duration is how long writers start new calls; calls in flight at the
	// deadline complete and count.
	Duration time.Duration
}

// Result is what a run measured.
type Result struct {
	// Records is the number of records acknowledged.
	Records uint64
	// Calls is the number of Record or RecordBatch calls acknowledged.
	Calls uint64
	// Elapsed runs from releasing the writers to the last call returning.
	Elapsed time.Duration
	// Latency holds one observation per call: call to return (durable under
	// SyncAlways).
	Latency latency.Histogram
}

// ErrNoWriters is returned by Run when Spec.Writers is below 1.
var ErrNoWriters = errors.New("workload: spec needs at least one writer")

// Run drives t with spec.Writers goroutines until spec.Duration passes or a
// call fails. It returns the first error a call returned, wrapped with the
// writer's number, together with what was measured until then.
func Run(ctx context.Context, t Target, spec Spec) (*Result, error) {
	if spec.Writers < 1 {
		return nil, ErrNoWriters
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type writerState struct {
		hist    latency.Histogram
		records uint64
		calls   uint64
	}
	states := make([]*writerState, spec.Writers)
	for i := range states {
		states[i] = new(writerState)
	}

	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		errOnce  sync.Once
		firstErr error
		deadline time.Time
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < spec.Writers; w++ {
		wg.Add(1)
		go func(w int, st *writerState) {
			defer wg.Done()
			rec := Heartbeat(w)
			var batch []Record
			if spec.Batch > 1 {
				batch = make([]Record, spec.Batch)
				for i := range batch {
					batch[i] = rec
				}
			}
			<-start
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				var err error
				if batch != nil {
					err = t.RecordBatch(ctx, batch)
				} else {
					err = t.Record(ctx, rec)
				}
				if err != nil {
					fail(fmt.Errorf("writer %d: %w", w, err))
					return
				}
				st.hist.Record(time.Since(t0))
				st.calls++
				if batch != nil {
					st.records += uint64(len(batch))
				} else {
					st.records++
				}
			}
		}(w, states[w])
	}
	began := time.Now()
	deadline = began.Add(spec.Duration)
	close(start)
	wg.Wait()
	res := &Result{Elapsed: time.Since(began)}
	for _, st := range states {
		res.Latency.Merge(&st.hist)
		res.Records += st.records
		res.Calls += st.calls
	}
	return res, firstErr
}
