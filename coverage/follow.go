package coverage

import (
	"context"
	"errors"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// follow feeds the run loop the records of the active surfaces (those
// with a file change inside the matching window), through the journal's
// one Follow. A surface that becomes active is first backfilled from a
// window before its change (a record may precede the write), then the
// Follow restarts with the new set from the cursor it had reached, so no
// record is handed over twice or missed. Records of surfaces whose files
// do not change are never decoded: a heartbeat storm on a surface whose
// file is quiet costs the watcher nothing.
func (w *Watcher) follow(ctx context.Context) {
	cursor := w.j.Head() // every record up to it considered for the current set
	for ctx.Err() == nil {
		w.mu.Lock()
		var set []string
		type fill struct {
			id   string
			from time.Time
		}
		var fills []fill
		for _, t := range w.targets {
			if !t.active {
				continue
			}
			set = append(set, t.s.ID)
			if !t.backfillFrom.IsZero() {
				fills = append(fills, fill{t.s.ID, t.backfillFrom})
				t.backfillFrom = time.Time{}
			}
		}
		w.mu.Unlock()
		for _, f := range fills {
			if err := w.backfill(ctx, f.id, f.from, cursor); err != nil && ctx.Err() == nil {
				w.log.Warn("coverage: reading a surface's recent records failed; its changes may be called unjournaled", "surface", f.id, "err", err)
			}
		}
		if len(set) == 0 {
			cursor = w.j.Head()
			select {
			case <-ctx.Done():
				return
			case <-w.followWake:
			}
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		woken := make(chan struct{})
		go func() {
			select {
			case <-w.followWake:
				close(woken)
				cancel()
			case <-fctx.Done():
			}
		}()
		var batch []engine.Change
		seen := cursor
		flush := func(c context.Context) error {
			if len(batch) > 0 {
				select {
				case w.recs <- batch:
					batch = nil
				case <-c.Done():
					return c.Err()
				}
			}
			cursor = seen
			return nil
		}
		// Paced: one read every followPace, not one per group commit —
		// matching works in seconds, and a heartbeat storm on other
		// surfaces would otherwise wake the follower at every commit.
		// The matcher takes each read's records as one batch.
		err := w.j.Follow(fctx, engine.Query{After: cursor, Surfaces: set}, engine.FollowOptions{Tick: time.Second, Pace: followPace, Batch: followReadBatch}, func(ev engine.FollowEvent) error {
			if ev.Change != nil {
				batch = append(batch, *ev.Change)
				if len(batch)%followReadBatch == 0 {
					yield()
				}
			}
			seen = ev.Cursor
			// Flush at the end of each read: under a heartbeat storm on
			// other surfaces the last record of ours is seldom the head.
			caughtUp := ev.Drained || ev.Change == nil
			if len(batch) < followBatch && !caughtUp {
				return nil
			}
			return flush(fctx)
		})
		cancel()
		if flush(ctx) != nil || ctx.Err() != nil {
			return
		}
		select {
		case <-woken:
			continue // the set changed
		default:
		}
		w.log.Warn("coverage: following the journal stopped; following again in 1s", "after", cursor, "err", err)
		if errors.Is(err, engine.ErrCompacted) {
			cursor = w.j.Head() // retention overtook the follower: start again at the head
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// backfill hands over the records of surface id committed since from
// and up to sequence upTo: the ones a change that just activated the
// surface may match, which the Follow of the previous set skipped.
func (w *Watcher) backfill(ctx context.Context, id string, from time.Time, upTo uint64) error {
	after := uint64(0)
	if h := w.j.Status().FirstSequence; h > 0 {
		after = h - 1
	}
	for {
		res, err := w.j.Query(ctx, engine.Query{After: after, HasAfter: true, Since: from, Surfaces: []string{id}, Limit: followBatch})
		if err != nil {
			return err
		}
		var batch []engine.Change
		for _, c := range res.Changes {
			if c.Sequence > upTo {
				break
			}
			batch = append(batch, c)
			after = c.Sequence
		}
		if len(batch) > 0 {
			select {
			case w.recs <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !res.More || len(batch) < len(res.Changes) {
			return nil
		}
	}
}

// followReadBatch bounds the records one read decodes before the
// follower yields (see yield): a read of 1,000 would hold a CPU for a
// millisecond or two; 32 take about 100 µs.
const followReadBatch = 32

// followBatch bounds the records handed to the run loop at once, and
// followPace spaces the follower's reads of the journal. Matching works
// on a window of seconds, so the records may come half a second late:
// reading more often would cost the journal for nothing.
const (
	followBatch = 1024
	followPace  = 500 * time.Millisecond
)

// grace is how long after the window a change waits for its record:
// the time a committed record takes to reach the matcher (the follower's
// pace, and a busy journal's commit).
func (w *Watcher) grace() time.Duration { return max(w.cfg.SettleCap, time.Second) + followPace }
