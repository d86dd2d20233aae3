package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestFollowSeesTheBacklogThenNewRecordsInOrderWithTicksWhenQuiet(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := j.Record(ctx, heartbeat(fmt.Sprintf("ws-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	errStop := errors.New("stop")
	var seqs []uint64
	ticks := 0
	go func() {
		time.Sleep(100 * time.Millisecond)
		for i := range 5 {
			if _, err := j.Record(ctx, heartbeat(fmt.Sprintf("late-%d", i))); err != nil {
				t.Error(err)
			}
		}
	}()
	err := j.Follow(ctx, Query{After: 2, Surfaces: []string{"runtime_work_session"}}, FollowOptions{Tick: 20 * time.Millisecond, Batch: 2}, func(ev FollowEvent) error {
		if ev.Change == nil {
			ticks++
			if ev.Cursor < uint64(2+len(seqs)) || ev.Head < ev.Cursor {
				t.Errorf("tick cursor %d head %d after %d records", ev.Cursor, ev.Head, len(seqs))
			}
			if len(seqs) == 8 {
				return errStop
			}
			return nil
		}
		if ev.Cursor != ev.Change.Sequence {
			t.Errorf("cursor %d for record %d", ev.Cursor, ev.Change.Sequence)
		}
		seqs = append(seqs, ev.Change.Sequence)
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("follow ended with %v, want the callback's error", err)
	}
	for i, s := range seqs {
		if s != uint64(3+i) {
			t.Fatalf("sequences %v, want 3..10 in order", seqs)
		}
	}
	if len(seqs) != 8 || ticks == 0 {
		t.Fatalf("got %d records and %d ticks", len(seqs), ticks)
	}
}

func TestFollowFromACursorBelowTheHorizonIsCompacted(t *testing.T) {
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10), WithRetention(Retention{MaxRecords: 1500}))
	fill(t, j, 4000)
	if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	err := j.Follow(context.Background(), Query{After: 0}, FollowOptions{}, func(FollowEvent) error {
		t.Fatal("a record was passed on from below the horizon")
		return nil
	})
	if !errors.Is(err, ErrCompacted) {
		t.Fatalf("follow from 0 below the horizon: %v", err)
	}
}

func TestFollowEndsWithTheContext(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := j.Follow(ctx, Query{}, FollowOptions{}, func(FollowEvent) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow ended with %v", err)
	}
}

// A paced follower reads on its own schedule, not at every commit, and
// still passes on every record in order, once, including the ones that
// commit while it sleeps.
func TestAPacedFollowerSeesEveryRecordOnceInOrder(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 300
	const pace = 100 * time.Millisecond
	began := time.Now()
	go func() {
		for i := range n {
			// One commit each, other surfaces' records between them, a
			// millisecond apart: an unpaced follower reads about once each.
			time.Sleep(time.Millisecond)
			if _, err := j.Record(ctx, heartbeat(fmt.Sprintf("ws-%d", i))); err != nil {
				t.Error(err)
				return
			}
			if _, err := j.Record(ctx, Change{Source: "runtime.test", Surface: "runtime_agent_registry", ChangeType: "heartbeat", AggregateType: "agent", AggregateID: "a"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	errStop := errors.New("stop")
	var seqs []uint64
	reads := 0 // reads that reached the head (Drained): at most one a pace
	err := j.Follow(ctx, Query{Surfaces: []string{"runtime_work_session"}}, FollowOptions{Pace: pace, Batch: 7}, func(ev FollowEvent) error {
		if ev.Change == nil {
			return nil
		}
		if ev.Drained {
			reads++
		}
		if ev.Change.Surface != "runtime_work_session" || len(seqs) > 0 && ev.Change.Sequence <= seqs[len(seqs)-1] {
			t.Errorf("record %d of %s after %v", ev.Change.Sequence, ev.Change.Surface, seqs[max(0, len(seqs)-3):])
		}
		seqs = append(seqs, ev.Change.Sequence)
		if len(seqs) == n {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("follow ended with %v after %d records, want all %d", err, len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint64(1+2*i) {
			t.Fatalf("record %d is sequence %d, want %d: every work-session record, in order", i, s, 1+2*i)
		}
	}
	// Not a timing claim: whatever the machine's speed, a paced follower
	// cannot have read to the head more often than once a pace (plus the
	// first read), and the writer's n commits gave it n chances.
	if most := int(time.Since(began)/pace) + 2; reads > most {
		t.Fatalf("%d reads to the head in %s at a pace of %s (at most %d): the follower read per commit", reads, time.Since(began).Round(time.Millisecond), pace, most)
	}
}

// Under a filter the newest record is seldom one that matched, so a
// batching follower cannot tell the end of a read by Cursor == Head:
// Drained marks it, on the last matching record of every read that
// reached the head, and on no other.
func TestDrainedMarksTheEndOfEachReadUnderAFilter(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	agent := Change{Source: "runtime.test", Surface: "runtime_agent_registry", ChangeType: "heartbeat", AggregateType: "agent", AggregateID: "a"}
	for i := range 5 { // each agent record followed by a record of another surface
		if _, err := j.Record(ctx, agent); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Record(ctx, heartbeat(fmt.Sprintf("ws-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	errStop := errors.New("stop")
	var drained []bool
	err := j.Follow(ctx, Query{Surfaces: []string{"runtime_agent_registry"}}, FollowOptions{Batch: 2}, func(ev FollowEvent) error {
		if ev.Change == nil {
			return nil
		}
		if ev.Cursor == ev.Head {
			t.Errorf("record %d is the head; the test wants the head to be another surface's", ev.Cursor)
		}
		drained = append(drained, ev.Drained)
		if len(drained) == 5 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("follow ended with %v", err)
	}
	// Reads of two: [1 3] more, [5 7] more, [9] the last, drained.
	if want := []bool{false, false, false, false, true}; !slices.Equal(drained, want) {
		t.Fatalf("Drained %v, want %v", drained, want)
	}
}
