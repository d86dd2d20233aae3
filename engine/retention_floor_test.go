package engine

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
)

// floorAt is a RetentionFloor whose shipped sequence the test moves.
type floorAt struct {
	shipped atomic.Uint64
	err     atomic.Pointer[error]
	mu      sync.Mutex
	dropped []RemovedArchive
}

func (f *floorAt) floor() RetentionFloor {
	return RetentionFloor{Name: "test", Shipped: func(id string) (uint64, error) {
		if id == "" || id == "none" {
			return 0, errors.New("no journal id given")
		}
		if e := f.err.Load(); e != nil {
			return 0, *e
		}
		return f.shipped.Load(), nil
	}, Dropped: func(a RemovedArchive) {
		f.mu.Lock()
		f.dropped = append(f.dropped, a)
		f.mu.Unlock()
	}}
}

func TestRetentionByRecordCountStopsAtTheFloorAndMovesOnWhenItRises(t *testing.T) {
	f := &floorAt{}
	f.shipped.Store(1000)
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10), WithRetention(Retention{MaxRecords: 1500}), WithRetentionFloor(f.floor()))
	fill(t, j, 4000)
	dry, err := j.Compact(context.Background(), CompactOptions{DryRun: true, SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dry.Removed, rep.Removed) {
		t.Fatalf("the dry run predicted removing %+v, the real run removed %+v", dry.Removed, rep.Removed)
	}
	if len(rep.Removed) == 0 {
		t.Fatal("nothing below the floor was removed: the floor held back archives it had shipped")
	}
	for _, a := range rep.Removed {
		if a.LastSequence > 1000 || a.Unshipped != 0 {
			t.Fatalf("max_records removed %+v above the floor 1000", a)
		}
	}
	if h := j.Status().Horizon; h > 1001 {
		t.Fatalf("horizon %d passed the floor 1000", h)
	}
	if st := j.Status(); st.Records <= 1500 {
		t.Fatalf("records %d: the floor should keep more than MaxRecords here", st.Records)
	}
	f.shipped.Store(4000)
	if _, err := j.Compact(context.Background(), CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := j.Status(); st.Records > 1500 {
		t.Fatalf("records %d after the floor rose to the head: retention should be back to MaxRecords 1500", st.Records)
	}
	if len(f.dropped) != 0 {
		t.Fatalf("dropped reported without a byte budget: %+v", f.dropped)
	}
}

func TestAFloorThatCannotBeReadHoldsEveryArchiveBack(t *testing.T) {
	f := &floorAt{}
	bad := errors.New("relay cursor damaged")
	f.err.Store(&bad)
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10), WithRetention(Retention{MaxRecords: 1500}), WithRetentionFloor(f.floor()))
	fill(t, j, 4000)
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 0 || j.Status().Horizon > 1 {
		t.Fatalf("an unreadable floor let retention remove %+v", rep.Removed)
	}
}

func TestTheByteBudgetRemovesUnshippedRecordsAndSaysSo(t *testing.T) {
	f := &floorAt{} // nothing shipped
	seg := 64 << 10
	j := openT(t, t.TempDir(), WithSegmentSize(seg), WithRetention(Retention{MaxBytes: MinRetentionBytes(seg)}), WithRetentionFloor(f.floor()))
	fillRandom(t, j, 3000)
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) == 0 {
		t.Fatal("the byte budget removed nothing: the test does not exceed it")
	}
	var sum uint64
	for _, a := range rep.Removed {
		if a.Reason != "max_bytes" || a.Unshipped == 0 || a.Unshipped > a.Records {
			t.Fatalf("removed %+v: want reason max_bytes with its unshipped records counted", a)
		}
		sum += a.Unshipped
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !reflect.DeepEqual(f.dropped, rep.Removed) {
		t.Fatalf("Dropped was told %+v, the report says %+v", f.dropped, rep.Removed)
	}
	if sum == 0 {
		t.Fatal("no unshipped records counted")
	}
}
