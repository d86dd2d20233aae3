package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/segment/archive"
)

// fill writes n changes (a mix of heartbeats over a few aggregates and
// other change types) in batches.
func fill(t *testing.T, j *Journal, n int) {
	t.Helper()
	var batch []Change
	for i := 0; i < n; i++ {
		c := heartbeat(fmt.Sprintf("ws-%d", i%7))
		if i%10 == 0 {
			c.ChangeType = "updated"
		}
		if i%25 == 0 {
			c = Change{Source: "runtime.leases", Surface: "runtime_leases", ChangeType: "created", AggregateType: "lease", AggregateID: fmt.Sprintf("l-%d", i)}
		}
		c.Metadata = map[string]any{"i": i}
		batch = append(batch, c)
		if len(batch) == 500 {
			if _, err := j.RecordBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if _, err := j.RecordBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func all(t *testing.T, j *Journal, q Query) []Change {
	t.Helper()
	q.Limit = -1
	res, err := j.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return res.Changes
}

func TestCompactionKeepsEveryRecordReadableAcrossTheArchiveHotBoundary(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 3000)
	before := all(t, j, Query{})
	rep, err := j.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Archives) == 0 || rep.Records == 0 || rep.Ratio < 2 {
		t.Fatalf("report: %+v", rep)
	}
	fill(t, j, 500)
	after := all(t, j, Query{})
	if !reflect.DeepEqual(before, after[:len(before)]) {
		t.Fatal("records changed across compaction")
	}
	st := j.Status()
	if st.ArchiveSegments != len(rep.Archives) || st.HotSegments < 1 || st.Records != 3500 {
		t.Fatalf("status: archives=%d hot segs=%d records=%d", st.ArchiveSegments, st.HotSegments, st.Records)
	}
	// Newest first crosses the boundary the other way.
	newest := all(t, j, Query{NewestFirst: true})
	for i := range newest {
		if newest[i].Sequence != after[len(after)-1-i].Sequence {
			t.Fatalf("newest-first order broken at %d", i)
		}
	}
	// A cursor in the archive range continues into the hot log in order.
	res, err := j.Query(context.Background(), Query{After: 100, Limit: 4000})
	if err != nil || len(res.Changes) != 3400 || res.Changes[0].Sequence != 101 {
		t.Fatalf("cursor query: %v %d", err, len(res.Changes))
	}
	// Filters agree with a full scan after compaction and after reopen.
	q := Query{Surfaces: []string{"runtime_leases"}}
	leases := all(t, j, q)
	j.Close()
	j2 := openT(t, dir, WithSegmentSize(64<<10))
	if got := all(t, j2, q); !reflect.DeepEqual(got, leases) || len(leases) != 140 {
		t.Fatalf("after reopen: %d lease records, want %d (140)", len(got), len(leases))
	}
	if got := all(t, j2, Query{}); !reflect.DeepEqual(got, after) {
		t.Fatal("reopen changed the records")
	}
	rv, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || !rv.Clean {
		t.Fatalf("validate: %v %+v", err, rv.Problems)
	}
}

func TestSealActiveCompactsEverythingWrittenBefore(t *testing.T) {
	j := openT(t, t.TempDir())
	fill(t, j, 1000)
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	st := j.Status()
	if rep.Records != 1000 || st.HotRecords != 0 || st.ArchiveRecords != 1000 {
		t.Fatalf("report %+v status hot=%d archived=%d", rep, st.HotRecords, st.ArchiveRecords)
	}
	rc, err := j.Record(context.Background(), heartbeat("ws-1"))
	if err != nil || rc.Sequence != 1001 {
		t.Fatalf("record after full compaction: %+v %v", rc, err)
	}
	if n := len(all(t, j, Query{})); n != 1001 {
		t.Fatalf("%d records readable", n)
	}
}

func TestHeartbeatCoalescingKeepsNewestPerAggregateAndCountsTheRest(t *testing.T) {
	j := openT(t, t.TempDir())
	fill(t, j, 1000)
	before := all(t, j, Query{})
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true, Coalesce: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	after := all(t, j, Query{})
	// Model: every non-heartbeat kept; for heartbeats the newest per
	// aggregate (one window: everything was written within the hour...
	// unless the test straddles an hour boundary, so compute the model).
	newest := map[string]uint64{}
	for _, c := range before {
		if c.ChangeType == "heartbeat" {
			k := c.Surface + c.AggregateID + fmt.Sprint(c.OccurredAt.UnixNano()/int64(time.Hour))
			newest[k] = c.Sequence
		}
	}
	var want []Change
	for _, c := range before {
		k := c.Surface + c.AggregateID + fmt.Sprint(c.OccurredAt.UnixNano()/int64(time.Hour))
		if c.ChangeType != "heartbeat" || newest[k] == c.Sequence {
			want = append(want, c)
		}
	}
	if !reflect.DeepEqual(after, want) {
		t.Fatalf("coalesced to %d records, model says %d", len(after), len(want))
	}
	if rep.Coalesced != uint64(len(before)-len(want)) || j.Status().Coalesced != rep.Coalesced {
		t.Fatalf("coalesced count %d, want %d", rep.Coalesced, len(before)-len(want))
	}
}

func TestRetentionRemovesOldestArchivesAndCursorBelowHorizonIsCompacted(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10), WithRetention(Retention{MaxRecords: 1500}))
	fill(t, j, 4000)
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) == 0 || rep.HorizonAfter <= 1 {
		t.Fatalf("retention removed nothing: %+v", rep)
	}
	st := j.Status()
	if st.Records > 1500 || st.Horizon != rep.HorizonAfter {
		t.Fatalf("status records=%d horizon=%d", st.Records, st.Horizon)
	}
	_, err = j.Query(context.Background(), Query{After: 1})
	if !errors.Is(err, ErrCompacted) {
		t.Fatalf("cursor below horizon: %v", err)
	}
	if _, err := j.Query(context.Background(), Query{After: st.Horizon - 1}); err != nil {
		t.Fatalf("cursor at horizon: %v", err)
	}
	j.Close()
	j2 := openT(t, dir, WithSegmentSize(64<<10))
	if h := j2.Status().Horizon; h != rep.HorizonAfter {
		t.Fatalf("horizon after reopen %d, want %d", h, rep.HorizonAfter)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 2000)
	before := j.Status()
	rep, err := j.Compact(context.Background(), CompactOptions{DryRun: true, SealActive: true})
	if err != nil || rep.Records != 2000 || !rep.DryRun {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	after := j.Status()
	if after.ArchiveSegments != 0 || after.HotRecords != before.HotRecords {
		t.Fatal("dry run changed the journal")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, archiveDirName)); len(ents) != 0 {
		t.Fatalf("dry run wrote %d files", len(ents))
	}
}

func TestCorruptArchiveIsNamedAndTheRestStaysReadable(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	fill(t, j, 3000)
	if _, err := j.Compact(context.Background(), CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	ents, _ := os.ReadDir(filepath.Join(dir, archiveDirName))
	if len(ents) < 2 {
		t.Fatalf("%d archives", len(ents))
	}
	victim := filepath.Join(dir, archiveDirName, ents[0].Name())
	b, _ := os.ReadFile(victim)
	b[len(b)/3] ^= 0xff
	os.WriteFile(victim, b, 0o644)

	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || rep.Clean {
		t.Fatalf("validate missed the damage: %v", err)
	}
	named := false
	for _, p := range rep.Problems {
		if p.Segment == ents[0].Name() && p.Kind == ProblemArchive {
			named = true
		}
	}
	if !named {
		t.Fatalf("problems do not name %s: %+v", ents[0].Name(), rep.Problems)
	}
	j2 := openT(t, dir, WithSegmentSize(64<<10))
	_, lastFirst, _ := archive.ParseFileName(ents[0].Name())
	res, err := j2.Query(context.Background(), Query{After: lastFirst, Limit: 10})
	if err != nil || len(res.Changes) != 10 {
		t.Fatalf("records after the damaged archive: %v", err)
	}
	if _, err := j2.Query(context.Background(), Query{Limit: -1}); err == nil {
		t.Fatal("a query across the damaged block succeeded silently")
	}
}
