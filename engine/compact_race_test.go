package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReadOnlyQueriesNeverFailWhileCompactionCutsTheHotLog runs a
// read-only reader (refreshing its view, querying, and opening afresh)
// against a writer that keeps writing and compacting, so the reader's
// view keeps naming hot segments a compaction has just removed. No read
// may fail: it retries on the newer files or reads the archive.
func TestReadOnlyQueriesNeverFailWhileCompactionCutsTheHotLog(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10), WithRetention(Retention{}))
	fill(t, j, 600)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var compactions atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 30; i++ { // bounded: the journal stays small under -race
			select {
			case <-stop:
				return
			default:
			}
			fill(t, j, 80)
			if _, err := j.Compact(ctx, CompactOptions{SealActive: i%3 == 0}); err != nil {
				t.Errorf("compact: %v", err)
				return
			}
			compactions.Add(1)
		}
	}()
	ro, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ro.Close() }()
	var last uint64
	for i := 0; i < 300; i++ {
		if i%50 == 49 {
			ro.Close()
			if ro, err = Open(dir, ReadOnly()); err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("read-only open %d during compaction: %v", i, err)
			}
		}
		if _, err := ro.Refresh(); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("refresh %d during compaction: %v", i, err)
		}
		for _, q := range []Query{{After: last, Limit: 200}, {NewestFirst: true, Limit: 20}, {Surfaces: []string{"runtime_leases"}, NewestFirst: true, Limit: 5}} {
			res, err := ro.Query(ctx, q)
			if err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("read-only query %d (%+v) during compaction: %v\n%s", i, q, err, debugView(ro))
			}
			if q.After == last && len(res.Changes) > 0 {
				if res.Changes[0].Sequence != last+1 {
					close(stop)
					wg.Wait()
					t.Fatalf("cursor %d: the next record is %d", last, res.Changes[0].Sequence)
				}
				last = res.Changes[len(res.Changes)-1].Sequence
			}
		}
	}
	close(stop)
	wg.Wait()
	if compactions.Load() < 3 {
		t.Fatalf("only %d compactions ran beside the reader", compactions.Load())
	}
	t.Logf("300 rounds of read-only queries beside %d compactions; cursor reached %d", compactions.Load(), last)
}

// debugView describes j's view for a failure message.
func debugView(j *Journal) string {
	v := j.view.Load()
	s := fmt.Sprintf("first %d last %d entries %d segs:", v.first, v.last(), len(v.entries))
	for _, sg := range v.segs {
		s += fmt.Sprintf(" %d", sg.first)
	}
	s += " archives:"
	for _, a := range v.archives {
		s += fmt.Sprintf(" %d-%d", a.first, a.last)
	}
	return s
}
