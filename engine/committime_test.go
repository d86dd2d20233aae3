package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

var month = 30 * 24 * time.Hour

// Finding 10: age retention ran on occurred_at, so a backdated record
// was removed by the first compaction after it was written.
func TestABackdatedRecordIsNotExpiredByMaxAge(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), WithRetention(Retention{MaxAge: month}))
	c := heartbeat("ws-1")
	c.OccurredAt = time.Now().Add(-365 * 24 * time.Hour)
	rc, err := j.Record(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Compact(ctx, CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 0 {
		t.Fatalf("retention removed %+v: a record committed just now is not a year old", rep.Removed)
	}
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Sequence != rc.Sequence {
		t.Fatalf("the backdated record is gone: %+v, %v", res.Changes, err)
	}
	if got := res.Changes[0]; !got.OccurredAt.Equal(c.OccurredAt.UTC().Truncate(time.Nanosecond)) || !got.CommittedAt.Equal(rc.CommittedAt) {
		t.Fatalf("times: occurred %s committed %s, receipt %+v", got.OccurredAt, got.CommittedAt, rc)
	}
}

// Finding 10: a record dated far ahead made its archive "newest" forever,
// so age retention removed nothing from then on.
func TestAFutureDatedRecordDoesNotPinAgeRetention(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	j := openT(t, t.TempDir(), WithClock(clock.Now), WithRetention(Retention{MaxAge: month}))
	ahead := heartbeat("ws-1")
	ahead.OccurredAt = t0.Add(MaxOccurredAtAhead - time.Hour) // as far ahead as is accepted
	if _, err := j.RecordBatch(ctx, []Change{heartbeat("ws-0"), ahead}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := j.Record(ctx, heartbeat("ws-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * 24 * time.Hour)
	rec, err := j.Record(ctx, heartbeat("ws-3"))
	if err != nil {
		t.Fatal(err)
	}
	// 40 days after the first records were committed: the two older
	// archives are past the limit, whatever occurred_at claims.
	clock.Advance(30 * 24 * time.Hour)
	rep, err := j.Compact(ctx, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 2 || rep.Removed[0].Reason != "max_age" || rep.HorizonAfter != 4 {
		t.Fatalf("retention after 40 days: removed %+v, horizon %d; want both old archives removed, horizon 4", rep.Removed, rep.HorizonAfter)
	}
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Sequence != rec.Sequence {
		t.Fatalf("after retention: %+v, %v", res.Changes, err)
	}
}

func TestAnOccurredAtNoClockErrorExplainsIsRefused(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	for _, at := range []time.Time{time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(MaxOccurredAtAhead + time.Hour)} {
		c := heartbeat("ws-1")
		c.OccurredAt = at
		_, err := j.Record(ctx, c)
		var fe *types.FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "occurred_at" || !strings.Contains(fe.Problem, "ahead of the journal's clock") {
			t.Fatalf("occurred_at %s: %v", at, err)
		}
	}
	// Days ahead (a wrong writer clock) and any past time are accepted.
	for _, at := range []time.Time{time.Now().Add(5 * 24 * time.Hour), time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		c := heartbeat("ws-1")
		c.OccurredAt = at
		if _, err := j.Record(ctx, c); err != nil {
			t.Fatalf("occurred_at %s: %v", at, err)
		}
	}
	if n := countRecords(t, j); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

// --since and HTTP since= are engine Query.Since: they select by commit
// time, in the hot log and in archives.
func TestSinceAndUntilSelectByCommitTime(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	j := openT(t, t.TempDir(), WithClock(clock.Now))
	var seqs []uint64
	for i := 0; i < 6; i++ {
		c := heartbeat("ws-1")
		c.OccurredAt = t0.Add(-365 * 24 * time.Hour) // every writer claims last year
		rc, err := j.Record(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, rc.Sequence)
		clock.Advance(time.Hour)
		if i == 2 {
			if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name  string
		q     Query
		wantN []uint64
	}{
		{"since the second hour (archive and hot)", Query{Since: t0.Add(time.Hour)}, seqs[1:]},
		{"until the third hour (archive only)", Query{Until: t0.Add(2 * time.Hour)}, seqs[:2]},
		{"a range across both", Query{Since: t0.Add(2 * time.Hour), Until: t0.Add(4 * time.Hour)}, seqs[2:4]},
		{"the writers' claimed year selects nothing", Query{Until: t0.Add(-300 * 24 * time.Hour)}, nil},
	}
	for _, tc := range cases {
		for _, newest := range []bool{false, true} {
			tc.q.Limit, tc.q.NewestFirst = -1, newest
			res, err := j.Query(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, c := range res.Changes {
				got = append(got, c.Sequence)
			}
			if newest {
				for i, k := 0, len(got)-1; i < k; i, k = i+1, k-1 {
					got[i], got[k] = got[k], got[i]
				}
			}
			if len(got) != len(tc.wantN) {
				t.Fatalf("%s (newest %v): got %v, want %v", tc.name, newest, got, tc.wantN)
			}
			for i := range got {
				if got[i] != tc.wantN[i] {
					t.Fatalf("%s (newest %v): got %v, want %v", tc.name, newest, got, tc.wantN)
				}
			}
		}
	}
}

func TestCommittedAtIsTheJournalsAndNeverTheWriters(t *testing.T) {
	_, err := ParseChange([]byte(`{"surface":"runtime_work_session","committed_at":"2026-01-01T00:00:00Z"}`))
	var fe *types.FieldError
	if !errors.As(err, &fe) || fe.Field != "committed_at" {
		t.Fatalf("a supplied committed_at: %v", err)
	}
	j := openT(t, t.TempDir())
	c := heartbeat("ws-1")
	c.CommittedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // ignored by the Go API, like Sequence
	rc, err := j.Record(context.Background(), c)
	if err != nil || rc.CommittedAt.Year() < 2025 {
		t.Fatalf("receipt %+v, %v", rc, err)
	}
	res, err := j.Query(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.Changes[0])
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["committed_at"] != rc.CommittedAt.Format(TimeLayout) {
		t.Fatalf("query JSON %s, receipt committed %s", b, rc.CommittedAt.Format(TimeLayout))
	}
	rb, _ := json.Marshal(rc)
	if !strings.Contains(string(rb), `"committed_at"`) {
		t.Fatalf("receipt JSON %s", rb)
	}
}

// An archive written by an earlier release holds occurred_at as its
// records' time; one dated in the future counts as committed no later
// than its file was written, so it cannot pin age retention.
func TestAnArchiveDatedInTheFutureCountsFromItsFileTime(t *testing.T) {
	p := filepath.Join(t.TempDir(), "archive-1-2.sjar")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, written, written); err != nil {
		t.Fatal(err)
	}
	now := written.Add(40 * 24 * time.Hour).UnixNano()
	a := &archiveSeg{path: p, footer: archive.Footer{MaxTime: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}}
	if got := a.newestCommit(now); got != written.UnixNano() {
		t.Fatalf("future MaxTime: newest commit %s, want the file's mtime %s", time.Unix(0, got).UTC(), written)
	}
	past := written.Add(-time.Hour).UnixNano()
	a.footer.MaxTime = past
	if got := a.newestCommit(now); got != past {
		t.Fatalf("a past MaxTime is the commit time itself: got %d, want %d", got, past)
	}
}

func TestReceiptJSONWritesCommittedAtInTheOneTimeLayout(t *testing.T) {
	rc := Receipt{Sequence: 1, OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CommittedAt: time.Date(2026, 1, 2, 3, 4, 5, 7, time.UTC)}
	b, err := json.Marshal(rc)
	if err != nil || !strings.Contains(string(b), `"committed_at":"2026-01-02T03:04:05.000000007Z"`) || !strings.Contains(string(b), `"occurred_at":"2026-01-02T03:04:05.000000006Z"`) {
		t.Fatalf("receipt JSON %s, %v", b, err)
	}
	var back Receipt
	if err := json.Unmarshal(b, &back); err != nil || !back.CommittedAt.Equal(rc.CommittedAt) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}
