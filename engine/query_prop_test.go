package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// fullScan reads every record from the files, bypassing the index: the
// archives in order, then the hot segments, skipping hot records an
// archive already holds.
// fataler is what fullScan needs of a test: *testing.T and *rapid.T both
// are one, so a failure inside a property fails that property.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func fullScan(t fataler, dir string) []Change {
	t.Helper()
	var out []Change
	id, err := readIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	as, err := loadArchives(filepath.Join(dir, archiveDirName), id)
	if err != nil {
		t.Fatal(err)
	}
	hz, err := readHorizon(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	floor := hz.value
	var archived uint64
	for _, a := range as {
		if a.last < floor {
			continue
		}
		ar, err := archive.Open(a.path)
		if err != nil {
			t.Fatal(err)
		}
		err = ar.Scan(0, nil, func(r archive.Record) bool {
			c, err := decodeStored(r.Payload, r.Seq)
			if err != nil {
				t.Fatal(err)
			}
			c.CommittedAt = time.Unix(0, r.Time).UTC()
			out = append(out, c)
			return true
		})
		ar.Close()
		if err != nil {
			t.Fatal(err)
		}
		archived = a.last
	}
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		_, err := segment.Scan(s, segment.ScanOptions{}, func(e segment.HotEntry) bool {
			if e.Seq <= archived || isTombstone(e.Payload) {
				return true
			}
			c, err := decodeStored(e.Payload, e.Seq)
			if err != nil {
				t.Fatal(err)
			}
			c.CommittedAt = time.Unix(0, e.Committed).UTC()
			out = append(out, c)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// modelQuery applies q to records the naive way.
func modelQuery(all []Change, q Query) []Change {
	var out []Change
	minSev, _ := record.SeverityCode(q.MinSeverity)
	for _, c := range all {
		sev, _ := record.SeverityCode(c.Severity)
		switch {
		case c.Sequence <= q.After,
			len(q.Surfaces) > 0 && !slices.ContainsFunc(c.ChangedSurfaces, func(s string) bool { return slices.Contains(q.Surfaces, s) }),
			len(q.ChangeTypes) > 0 && !slices.Contains(q.ChangeTypes, c.ChangeType),
			q.AggregateID != "" && (c.AggregateType != q.AggregateType || c.AggregateID != q.AggregateID),
			q.CorrelationID != "" && c.CorrelationID != q.CorrelationID,
			sev < minSev,
			// Time ranges select by the journal's commit time.
			!q.Since.IsZero() && c.CommittedAt.Before(q.Since),
			!q.Until.IsZero() && !c.CommittedAt.Before(q.Until):
			continue
		}
		out = append(out, c)
	}
	if q.NewestFirst {
		slices.Reverse(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

var propSurfaces = []string{"runtime_work_session", "runtime_leases", "runtime_scheduler_jobs", "runtime_notifications", "runtime_checkpoints"}
var propSources = map[string]string{"runtime_work_session": "runtime.work_session", "runtime_leases": "runtime.leases"}

func genChange(t *rapid.T, base time.Time, i int) Change {
	s := rapid.SampledFrom(propSurfaces).Draw(t, "surface")
	src := propSources[s]
	if src == "" {
		src = "runtime.test"
	}
	sf, _ := registry.Default().Lookup(s)
	allowed := slices.Clone(sf.AllowedChangeTypes())
	if slices.Contains(allowed, "heartbeat") {
		allowed = append(allowed, "heartbeat", "heartbeat") // heartbeat-heavy
	}
	ct := rapid.SampledFrom(allowed).Draw(t, "ct")
	// Some records list a second surface that admits them too: queries
	// by either surface find them.
	var changed []string
	if rapid.IntRange(0, 3).Draw(t, "multi?") == 0 {
		var others []string
		for _, o := range []string{"runtime_work_session", "runtime_scheduler_jobs", "runtime_notifications", "runtime_checkpoints"} {
			if of, _ := registry.Default().Lookup(o); o != s && of.Admit(src, ct, false) == nil {
				others = append(others, o)
			}
		}
		if len(others) > 0 {
			changed = []string{s, rapid.SampledFrom(others).Draw(t, "also")}
		}
	}
	return Change{
		ChangedSurfaces: changed,
		Source:          src, Surface: s, ChangeType: ct, AggregateType: "agg",
		AggregateID:   fmt.Sprintf("a-%d", rapid.IntRange(0, 5).Draw(t, "agg")),
		Severity:      rapid.SampledFrom(record.Severities()).Draw(t, "sev"),
		CorrelationID: rapid.SampledFrom([]string{"", "", "corr-1", "corr-2"}).Draw(t, "corr"),
		OccurredAt:    base.Add(time.Duration(rapid.IntRange(-400, 400).Draw(t, "skew")) * time.Second),
	}
}

func genQuery(t *rapid.T, head uint64, base time.Time) Query {
	q := Query{NewestFirst: rapid.Bool().Draw(t, "newest"), Limit: rapid.SampledFrom([]int{-1, 1, 7, 50}).Draw(t, "limit")}
	if rapid.Bool().Draw(t, "after?") {
		q.After = rapid.Uint64Range(0, head+1).Draw(t, "after")
	}
	if rapid.Bool().Draw(t, "surf?") {
		q.Surfaces = rapid.SliceOfNDistinct(rapid.SampledFrom(propSurfaces), 1, 2, rapid.ID[string]).Draw(t, "surfaces")
	}
	if rapid.Bool().Draw(t, "ct?") {
		q.ChangeTypes = []string{rapid.SampledFrom([]string{"heartbeat", "updated", "created", "expired"}).Draw(t, "cts")}
	}
	if rapid.IntRange(0, 3).Draw(t, "agg?") == 0 {
		q.AggregateType, q.AggregateID = "agg", fmt.Sprintf("a-%d", rapid.IntRange(0, 5).Draw(t, "aggid"))
	}
	if rapid.IntRange(0, 3).Draw(t, "corr?") == 0 {
		q.CorrelationID = rapid.SampledFrom([]string{"corr-1", "corr-2"}).Draw(t, "corrid")
	}
	if rapid.IntRange(0, 3).Draw(t, "sev?") == 0 {
		q.MinSeverity = rapid.SampledFrom(record.Severities()).Draw(t, "minsev")
	}
	if rapid.IntRange(0, 3).Draw(t, "time?") == 0 {
		q.Since = base.Add(time.Duration(rapid.IntRange(0, int(head)).Draw(t, "since")) * time.Second)
		q.Until = q.Since.Add(time.Duration(rapid.IntRange(1, 200).Draw(t, "span")) * time.Second)
	}
	return q
}

func checkQueries(t *rapid.T, j *Journal, all []Change, base time.Time, label string) {
	for k := 0; k < 15; k++ {
		q := genQuery(t, j.Head(), base)
		got, err := j.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: query %+v: %v", label, q, err)
		}
		want := modelQuery(all, q)
		// A Filter (what a reader of the NATS stream applies) passes
		// exactly the records the model does, cursor aside.
		f, err := NewFilter(q)
		if err != nil {
			t.Fatalf("%s: NewFilter(%+v): %v", label, q, err)
		}
		unbounded := q
		unbounded.Limit, unbounded.NewestFirst = 0, false
		var passed []uint64
		for i := range all {
			if all[i].Sequence > q.After && f.Match(&all[i]) {
				passed = append(passed, all[i].Sequence)
			}
		}
		var modeled []uint64
		for _, c := range modelQuery(all, unbounded) {
			modeled = append(modeled, c.Sequence)
		}
		if !slices.Equal(passed, modeled) {
			t.Fatalf("%s: query %+v: the Filter passes %v, the model %v", label, q, passed, modeled)
		}
		if len(got.Changes) != len(want) {
			t.Fatalf("%s: query %+v: index gave %d records, full scan %d", label, q, len(got.Changes), len(want))
		}
		for i := range want {
			if got.Changes[i].Sequence != want[i].Sequence || got.Changes[i].EventID != want[i].EventID {
				t.Fatalf("%s: query %+v: record %d is %d, full scan says %d", label, q, i, got.Changes[i].Sequence, want[i].Sequence)
			}
		}
	}
}

func TestIndexedQueriesEqualAFullScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp("", "prop")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		// The journal's clock ticks a second per reading, so commit times
		// spread over the range the queries draw from; occurred_at is
		// drawn apart from it (a writer's clock that is off).
		var tick atomic.Int64
		clock := WithClock(func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) })
		j, err := Open(dir, WithSegmentSize(64<<10), WithSync(SyncNone), clock)
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(1, 700).Draw(t, "n")
		var cs []Change
		for i := 0; i < n; i++ {
			cs = append(cs, genChange(t, base, i))
		}
		if _, err := j.RecordBatch(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
		checkQueries(t, j, fullScan(t, dir), base, "hot")
		if rapid.Bool().Draw(t, "compact") {
			if _, err := j.Compact(context.Background(), CompactOptions{SealActive: rapid.Bool().Draw(t, "seal")}); err != nil {
				t.Fatal(err)
			}
			checkQueries(t, j, fullScan(t, dir), base, "compacted")
		}
		j.Close()
		j2, err := Open(dir, WithSegmentSize(64<<10), WithSync(SyncNone), clock)
		if err != nil {
			t.Fatal(err)
		}
		checkQueries(t, j2, fullScan(t, dir), base, "reopened with the checkpoint")
		j2.Close()
		if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
			t.Fatalf("the clean close wrote no checkpoint: %v", err)
		}
		j2, err = Open(dir, WithSegmentSize(64<<10), WithSync(SyncNone), clock)
		if err != nil {
			t.Fatal(err)
		}
		defer j2.Close()
		checkQueries(t, j2, fullScan(t, dir), base, "reopened without a checkpoint")
		ro, err := Open(dir, ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		checkQueries(t, ro, fullScan(t, dir), base, "read-only")
	})
}
