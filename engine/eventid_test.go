package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/testproc"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// fakeClock is a journal clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func writerChange(id, agg string) Change {
	c := heartbeat(agg)
	c.EventID = id
	return c
}

func headOf(t *testing.T, j *Journal) uint64 {
	t.Helper()
	res, err := j.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Head
}

func countRecords(t *testing.T, j *Journal) int {
	t.Helper()
	res, err := j.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Changes)
}

func TestGeneratedEventIDsNameTheirSequenceAndAreUUIDv7(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx := context.Background()
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		rc, err := j.Record(ctx, heartbeat("ws-1"))
		if err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(rc.EventID)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != rc.EventID {
			t.Fatalf("generated id %q is not a canonical UUIDv7: %v", rc.EventID, err)
		}
		if !isGeneratedFor(rc.EventID, rc.Sequence, rc.CommittedAt.UnixNano()) {
			t.Fatalf("id %s does not name sequence %d committed at %s", rc.EventID, rc.Sequence, rc.CommittedAt)
		}
		if seen[rc.EventID] {
			t.Fatalf("id %s given twice", rc.EventID)
		}
		seen[rc.EventID] = true
		if rc.CommittedAt.IsZero() || !rc.OccurredAt.Equal(rc.CommittedAt) {
			t.Fatalf("receipt %+v: an omitted occurred_at is the commit time", rc)
		}
	}
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Changes {
		if !seen[c.EventID] || c.CommittedAt.IsZero() {
			t.Fatalf("stored record %d has id %s (committed %s), not the one its receipt gave", c.Sequence, c.EventID, c.CommittedAt)
		}
	}
	// A random UUIDv7 from a writer is an ordinary idempotency key.
	id := uuid.Must(uuid.NewV7()).String()
	rc, err := j.Record(ctx, writerChange(id, "ws-2"))
	if err != nil || rc.Duplicate || rc.EventID != id {
		t.Fatalf("a writer's UUIDv7: %+v, %v", rc, err)
	}
}

// Finding 13: a writer-supplied id equal to one the journal generated
// was stored again, as a second record with the same id.
func TestAWriterIDEqualToAGeneratedOneIsNeverStoredAgain(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	first, err := j.Record(ctx, heartbeat("ws-7"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := j.Record(ctx, heartbeat(fmt.Sprintf("ws-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, j *Journal, where string) {
		head := headOf(t, j)
		// The writer replays the record it read: same content, same id.
		same := heartbeat("ws-7")
		same.EventID = first.EventID
		rc, err := j.Record(ctx, same)
		if err != nil || !rc.Duplicate || rc.Sequence != first.Sequence || rc.EventID != first.EventID {
			t.Fatalf("%s: replay of generated id: %+v, %v; want the first receipt (sequence %d) with duplicate", where, rc, err, first.Sequence)
		}
		// Also with the occurred_at it read back.
		same.OccurredAt = first.OccurredAt
		if rc, err := j.Record(ctx, same); err != nil || !rc.Duplicate || rc.Sequence != first.Sequence {
			t.Fatalf("%s: replay with occurred_at: %+v, %v", where, rc, err)
		}
		other := heartbeat("ws-8")
		other.EventID = first.EventID
		_, err = j.Record(ctx, other)
		var fe *types.FieldError
		if !errors.Is(err, ErrEventIDConflict) || !errors.As(err, &fe) || fe.Field != "event_id" || types.Code(err) != "event_id_conflict" ||
			!strings.Contains(err.Error(), fmt.Sprint(first.Sequence)) {
			t.Fatalf("%s: generated id with other content: %v, want event_id_conflict naming sequence %d", where, err, first.Sequence)
		}
		if h := headOf(t, j); h != head {
			t.Fatalf("%s: head moved from %d to %d: something was written", where, head, h)
		}
		n := 0
		res, _ := j.Query(ctx, Query{Limit: -1})
		for _, c := range res.Changes {
			if c.EventID == first.EventID {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s: %d records carry id %s", where, n, first.EventID)
		}
	}
	check(t, j, "hot")
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	if v := j.view.Load(); len(v.archives) == 0 || v.first <= first.Sequence {
		t.Fatalf("the record was not archived: first hot %d", v.first)
	}
	check(t, j, "archived")
	j.Close()
	j = openT(t, dir, WithSegmentSize(64<<10))
	check(t, j, "reopened")
}

// Finding 13: a reused writer id with other content answered
// duplicate: true.
func TestAReusedEventIDWithOtherContentIsAConflict(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	job1 := func() Change {
		c := writerChange("job-1", "ws-1")
		c.OccurredAt = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
		return c
	}
	first, err := j.Record(ctx, job1())
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, j *Journal, where string) {
		head := headOf(t, j)
		rc, err := j.Record(ctx, job1())
		if err != nil || !rc.Duplicate || rc.Sequence != first.Sequence || !rc.CommittedAt.Equal(first.CommittedAt) {
			t.Fatalf("%s: same id, same content: %+v, %v; want the first receipt %+v", where, rc, err, first)
		}
		cases := map[string]func(*Change){
			"other aggregate": func(c *Change) { c.AggregateID = "ws-2" },
			"other severity":  func(c *Change) { c.Severity = "warning" },
			"other metadata":  func(c *Change) { c.Metadata = map[string]any{"n": 1} },
			"an occurred_at different from the first's": func(c *Change) { c.OccurredAt = first.OccurredAt.Add(-time.Hour) },
		}
		for name, mod := range cases {
			c := job1()
			mod(&c)
			_, err := j.Record(ctx, c)
			var fe *types.FieldError
			if !errors.Is(err, ErrEventIDConflict) || !errors.As(err, &fe) || fe.Field != "event_id" || fe.Value != "job-1" {
				t.Fatalf("%s: %s: %v, want an event_id_conflict", where, name, err)
			}
		}
		// A batch holding one conflicting change writes none of them and
		// names the change.
		_, err = j.RecordBatch(ctx, []Change{writerChange("job-new", "ws-3"), writerChange("job-1", "ws-9")})
		var fe *types.FieldError
		if !errors.Is(err, ErrEventIDConflict) || !errors.As(err, &fe) || fe.Index != 1 {
			t.Fatalf("%s: batch with a conflict: %v, want event_id_conflict at index 1", where, err)
		}
		if h := headOf(t, j); h != head {
			t.Fatalf("%s: head moved from %d to %d", where, head, h)
		}
	}
	check(t, j, "in memory")
	// One id twice inside one batch with other content.
	_, err = j.RecordBatch(ctx, []Change{writerChange("job-2", "ws-1"), writerChange("job-2", "ws-2")})
	var fe *types.FieldError
	if !errors.Is(err, ErrEventIDConflict) || !errors.As(err, &fe) || fe.Index != 1 {
		t.Fatalf("one id twice in a batch with other content: %v", err)
	}
	// ... and with the same content: one record, the second a duplicate.
	rcs, err := j.RecordBatch(ctx, []Change{writerChange("job-3", "ws-1"), writerChange("job-3", "ws-1")})
	if err != nil || rcs[0].Duplicate || !rcs[1].Duplicate || rcs[1].Sequence != rcs[0].Sequence {
		t.Fatalf("one id twice in a batch with the same content: %+v, %v", rcs, err)
	}
	// occurred_at left out on a retry of a change that supplied one (or
	// the other way round) is the same change.
	withTime := writerChange("job-4", "ws-1")
	withTime.OccurredAt = time.Now().Add(-time.Minute)
	a, err := j.Record(ctx, withTime)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := j.Record(ctx, writerChange("job-4", "ws-1")); err != nil || !b.Duplicate || b.Sequence != a.Sequence {
		t.Fatalf("retry without occurred_at: %+v, %v", b, err)
	}
	j.Close()
	j = openT(t, dir)
	check(t, j, "reopened from the checkpoint")
	j.Close()
	if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	check(t, j, "reopened without a checkpoint")
}

// Finding 2: without the checkpoint, the dedupe window was rebuilt from
// the hot log only, so a retry of an archived record became a second
// record.
func TestRetryOfAnArchivedRecordIsADuplicateWhateverHappenedToTheCheckpoint(t *testing.T) {
	ctx := context.Background()
	opts := []Option{WithSegmentSize(64 << 10)}
	setups := map[string]func(t *testing.T, dir string, before []byte){
		"checkpoint deleted": func(t *testing.T, dir string, _ []byte) {
			if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
				t.Fatal(err)
			}
		},
		"checkpoint damaged": func(t *testing.T, dir string, _ []byte) {
			p := filepath.Join(dir, stateDirName, checkpointFileName)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"checkpoint from before the compaction (a crash between the two)": func(t *testing.T, dir string, before []byte) {
			if err := os.WriteFile(filepath.Join(dir, stateDirName, checkpointFileName), before, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range setups {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, err := Open(dir, opts...)
			if err != nil {
				t.Fatal(err)
			}
			first := map[string]Receipt{}
			for i := 0; i < 40; i++ {
				id := fmt.Sprintf("retry-%d", i)
				rc, err := j.Record(ctx, writerChange(id, fmt.Sprintf("ws-%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				first[id] = rc
			}
			j.Close()
			before, err := os.ReadFile(filepath.Join(dir, stateDirName, checkpointFileName))
			if err != nil {
				t.Fatal(err)
			}
			j, err = Open(dir, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
				t.Fatal(err)
			}
			if v := j.view.Load(); len(v.archives) != 1 || len(v.entries) != 0 {
				t.Fatalf("want every record archived: %d archives, %d hot", len(v.archives), len(v.entries))
			}
			j.Close()
			damage(t, dir, before)
			j = openT(t, dir, opts...)
			if j.fromCheckpoint {
				t.Fatal("the checkpoint was used")
			}
			for id, f := range first {
				rc, err := j.Record(ctx, writerChange(id, strings.Replace(id, "retry", "ws", 1)))
				if err != nil || !rc.Duplicate || rc.Sequence != f.Sequence {
					t.Fatalf("retry of archived %s: %+v, %v; want duplicate of sequence %d", id, rc, err, f.Sequence)
				}
			}
			if n := countRecords(t, j); n != len(first) {
				t.Fatalf("%d records after the retries, want %d", n, len(first))
			}
		})
	}
}

// The same finding with a real crash: a child process is killed right
// after its compaction cut the hot log, before it could write the
// checkpoint; the retries after the restart must all be duplicates.
const timeChildEnv = "SJ_TIME_CHILD_DIR"

func timeChild(dir string) int {
	ctx := context.Background()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	for i := 40; i < 60; i++ {
		if _, err := j.Record(ctx, writerChange(fmt.Sprintf("retry-%d", i), fmt.Sprintf("ws-%d", i))); err != nil {
			fmt.Fprintln(os.Stderr, "child record:", err)
			return 3
		}
	}
	compactHook = func(step compactStep) {
		if step == stepHotTruncated {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour)
		}
	}
	_, err = j.Compact(ctx, CompactOptions{SealActive: true})
	fmt.Fprintln(os.Stderr, "child: compaction returned without the kill:", err)
	return 4
}

func TestRetryAfterAKillBetweenCompactionAndCheckpointIsADuplicate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := j.Record(ctx, writerChange(fmt.Sprintf("retry-%d", i), fmt.Sprintf("ws-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	j.Close() // a checkpoint now exists; the child's compaction makes it stale
	if r := testproc.Run(t, testproc.Options{Role: "killed-after-compaction", Env: []string{timeChildEnv + "=" + dir}}); !r.Killed {
		t.Fatalf("child was not killed at the hook: %s", r)
	}
	j = openT(t, dir, WithSegmentSize(64<<10))
	if j.fromCheckpoint {
		t.Fatal("the stale checkpoint was used")
	}
	if v := j.view.Load(); len(v.archives) == 0 {
		t.Fatal("the child's compaction left no archive")
	}
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 60 {
		t.Fatalf("%d records after the kill, want 60", len(res.Changes))
	}
	seqOf := map[string]uint64{}
	for _, c := range res.Changes {
		seqOf[c.EventID] = c.Sequence
	}
	for i := 0; i < 60; i++ {
		id := fmt.Sprintf("retry-%d", i)
		rc, err := j.Record(ctx, writerChange(id, fmt.Sprintf("ws-%d", i)))
		if err != nil || !rc.Duplicate || rc.Sequence != seqOf[id] {
			t.Fatalf("retry of %s: %+v, %v; want duplicate of sequence %d", id, rc, err, seqOf[id])
		}
	}
	if n := countRecords(t, j); n != 60 {
		t.Fatalf("%d records after the retries, want 60", n)
	}
	if probs := validateClean(t, "after the retries", dir); len(probs) > 0 {
		t.Fatalf("validate: %+v", probs)
	}
}

// The dedupe window rebuilt from the archives stays within its count
// bound and keeps the newest ids.
func TestTheRebuiltDedupeWindowKeepsItsCountBound(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(64 << 10), WithDedupeWindow(time.Hour, 25)}
	j, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		if _, err := j.Record(ctx, writerChange(fmt.Sprintf("k-%d", i), "ws-1")); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Record(ctx, heartbeat("ws-2")); err != nil { // generated ids are not remembered
			t.Fatal(err)
		}
	}
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	os.Remove(filepath.Join(dir, stateDirName, checkpointFileName))
	j = openT(t, dir, opts...)
	if n := j.dedupeIDs.Load(); n != 25 {
		t.Fatalf("rebuilt window holds %d ids, want its bound 25", n)
	}
	rc, err := j.Record(ctx, writerChange("k-59", "ws-1"))
	if err != nil || !rc.Duplicate {
		t.Fatalf("newest id forgotten: %+v, %v", rc, err)
	}
}

// Finding 10: the dedupe window ran from occurred_at, so a retry of an
// event dated before the window was stored twice.
func TestRetryOfAnOldDatedEventIsDeduped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := writerChange("late-1", "ws-1")
	c.OccurredAt = time.Now().Add(-72 * time.Hour) // three days late, window 24h
	first, err := j.Record(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := j.Record(ctx, c); err != nil || !rc.Duplicate || rc.Sequence != first.Sequence {
		t.Fatalf("retry: %+v, %v", rc, err)
	}
	j.Close()
	os.Remove(filepath.Join(dir, stateDirName, checkpointFileName))
	j = openT(t, dir)
	if rc, err := j.Record(ctx, c); err != nil || !rc.Duplicate || rc.Sequence != first.Sequence {
		t.Fatalf("retry after a rebuild: %+v, %v", rc, err)
	}
	if n := countRecords(t, j); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

// The window counts from the commit time: an id is forgotten a window
// after its record was committed, whatever occurred_at says.
func TestTheDedupeWindowCountsFromTheCommitTime(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	j := openT(t, t.TempDir(), WithClock(clock.Now), WithDedupeWindow(time.Hour, 100))
	c := writerChange("w-1", "ws-1")
	c.OccurredAt = clock.Now().Add(20 * 24 * time.Hour) // a writer's clock weeks ahead
	if _, err := j.Record(ctx, c); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if rc, err := j.Record(ctx, c); err != nil || !rc.Duplicate {
		t.Fatalf("inside the window: %+v, %v", rc, err)
	}
	clock.Advance(2 * time.Minute)
	if rc, err := j.Record(ctx, writerChange("w-2", "ws-1")); err != nil || rc.Duplicate { // expire runs on put
		t.Fatalf("%+v, %v", rc, err)
	}
	if rc, err := j.Record(ctx, c); err != nil || rc.Duplicate {
		t.Fatalf("past the window (counted from commit time, not the future occurred_at): %+v, %v", rc, err)
	}
}

func TestAFailedBatchSaysItsOutcomeIsUnknownAndHowToRetry(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), withFS(fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpSync, Path: hotDirName + "/", Err: syscall.EIO})))
	_, err := j.Record(ctx, writerChange("x-1", "ws-1"))
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "outcome of this write is unknown") || !strings.Contains(err.Error(), "same event_id") {
		t.Fatalf("in-flight failure: %v", err)
	}
	// A write refused after the failure was never attempted: it says so
	// by not claiming an unknown outcome.
	_, err = j.Record(ctx, writerChange("x-2", "ws-1"))
	if !errors.Is(err, ErrFailed) || strings.Contains(err.Error(), "unknown") {
		t.Fatalf("refused write: %v", err)
	}
}

// The segment scanner's verdict on envelopes of both versions reaches the
// index: a version 1 entry's commit time is its occurred_at.
func TestVersion1EnvelopesReadWithOccurredAtAsCommitTime(t *testing.T) {
	dir := t.TempDir()
	hot := filepath.Join(dir, hotDirName)
	if err := os.MkdirAll(hot, 0o755); err != nil {
		t.Fatal(err)
	}
	written := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	old := `{"schema_version":"runtime-state-change-v1","event_id":"0190a5f0-0000-7000-8000-000000000001","occurred_at":"2026-01-02T03:04:05.000000006Z","source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1","changed_surfaces":["runtime_work_session"],"severity":"info","snapshot_hint":"runtime_health","mutates_authority_state":false}`
	future := strings.Replace(strings.Replace(old, "2026-01-02", "2100-01-02", 1), "0001\"", "0002\"", 1)
	var b []byte
	b = segment.AppendWALEntry(b, segment.AppendEnvelopeV1(nil, 1, 0, []byte(old)))
	b = segment.AppendWALEntry(b, segment.AppendEnvelopeV1(nil, 2, segment.FlagWriterEventID, []byte(future)))
	p := filepath.Join(hot, segment.HotSegmentName(1))
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, written, written); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(written.Add(40 * 24 * time.Hour))
	j := openT(t, dir, WithClock(clock.Now))
	res, err := j.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 2 || !res.Changes[0].CommittedAt.Equal(res.Changes[0].OccurredAt) || !res.Changes[1].CommittedAt.Equal(written) {
		t.Fatalf("v1 commit times: %+v", res.Changes)
	}
	// The year-2100 record of the earlier release does not pin age
	// retention: its commit time is capped at its file's mtime, 40 days
	// ago, so both records are past a 30-day limit.
	rep, err := j.Compact(context.Background(), CompactOptions{SealActive: true, Retention: &Retention{MaxAge: 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 1 || rep.Removed[0].Reason != "max_age" || rep.HorizonAfter != 3 {
		t.Fatalf("retention: %+v", rep)
	}
	// New records continue the log in version 2.
	rc, err := j.Record(context.Background(), heartbeat("ws-2"))
	if err != nil || rc.Sequence != 3 || !rc.CommittedAt.Equal(clock.Now()) {
		t.Fatalf("record after the v1 entries: %+v, %v", rc, err)
	}
}

// The hash found by position when writing equals the one parsed from the
// stored record when rebuilding the window, or dedupe would call every
// retry after a restart a conflict.
func TestTheContentHashIsTheSameWrittenAndRead(t *testing.T) {
	j := openT(t, t.TempDir())
	for _, c := range []Change{writerChange("a", "ws-1"), writerChange("a-much-longer:id/with.every_char-1", "ws-2")} {
		c.Metadata = map[string]any{"k": "v", "n": 1}
		p, err := j.prepare(c, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		enc, err := p.change.AppendJSON(nil, false)
		if err != nil {
			t.Fatal(err)
		}
		h, ok := newContentHash(enc, len(p.change.EventID))
		st, err := parseStoredIdentity(enc)
		if !ok || err != nil || st.hash != h || st.id != c.EventID || st.occurred != p.change.OccurredAt.UnixNano() {
			t.Fatalf("written hash %x (%v), parsed %+v (%v)", h, ok, st, err)
		}
	}
}

// A damaged archive leaves a hole in the rebuilt window, logged with its
// name; the journal still opens and the other archives' ids are kept.
func TestADamagedArchiveLeavesALoggedHoleInTheRebuiltWindow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for k := 0; k < 20; k++ {
			if _, err := j.Record(ctx, writerChange(fmt.Sprintf("a%d-%d", i, k), "ws-1")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
			t.Fatal(err)
		}
	}
	older := j.view.Load().archives[0].path
	j.Close()
	b, err := os.ReadFile(older)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0xff // inside the records, not the footer
	if err := os.WriteFile(older, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, stateDirName, checkpointFileName))
	var logs testproc.Buffer
	j = openT(t, dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if !strings.Contains(logs.String(), "dedupe window incomplete") || !strings.Contains(logs.String(), filepath.Base(older)) {
		t.Fatalf("the hole is not logged with the archive's name:\n%s", logs.String())
	}
	if rc, err := j.Record(ctx, writerChange("a1-7", "ws-1")); err != nil || !rc.Duplicate {
		t.Fatalf("id of the intact archive: %+v, %v", rc, err)
	}
}

// testdata/step4-dir was written by the previous release (bb26393):
// version 1 envelopes, a version 1 checkpoint, an archive whose record
// times are occurred_at. 40 heartbeats, occurred_at 2026-11-30T12:00:00Z
// plus i seconds, every third with writer id old-<i>; 1..30 archived,
// 31..40 hot. It must open, keep every identity and continue in the new
// format.
func TestAStep4DirectoryOpensKeepsItsIdentitiesAndContinuesInVersion2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "step4-dir"), dir)
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(base.Add(time.Hour))
	var logs testproc.Buffer
	j, err := Open(dir, WithSegmentSize(64<<10), WithClock(clock.Now), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if j.fromCheckpoint || !strings.Contains(logs.String(), "index checkpoint not used") {
		t.Fatalf("the version 1 checkpoint: fromCheckpoint %v, log:\n%s", j.fromCheckpoint, logs.String())
	}
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil || len(res.Changes) != 40 {
		t.Fatalf("%d records, %v", len(res.Changes), err)
	}
	for i, c := range res.Changes {
		want := base.Add(time.Duration(i+1) * time.Second)
		if c.Sequence != uint64(i+1) || !c.OccurredAt.Equal(want) || !c.CommittedAt.Equal(want) {
			t.Fatalf("record %d: occurred %s committed %s, want both %s (no commit time: occurred_at stands in)", c.Sequence, c.OccurredAt, c.CommittedAt, want)
		}
	}
	old := func(i int, agg string) Change {
		c := heartbeat(agg)
		c.EventID, c.OccurredAt = fmt.Sprintf("old-%d", i), base.Add(time.Duration(i)*time.Second)
		return c
	}
	for _, i := range []int{3, 30, 33} { // archived, archived, hot
		rc, err := j.Record(ctx, old(i, fmt.Sprintf("ws-%d", i%5)))
		if err != nil || !rc.Duplicate || rc.Sequence != uint64(i) {
			t.Fatalf("retry of old-%d: %+v, %v", i, rc, err)
		}
	}
	if _, err := j.Record(ctx, old(3, "ws-9")); !errors.Is(err, ErrEventIDConflict) {
		t.Fatalf("old-3 with other content: %v", err)
	}
	rc, err := j.Record(ctx, heartbeat("ws-new"))
	if err != nil || rc.Sequence != 41 || !rc.CommittedAt.Equal(clock.Now()) {
		t.Fatalf("new record: %+v, %v", rc, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// The segment now holds both versions; every scan reads both.
	var versions []byte
	seg := segment.HotSegment{Path: filepath.Join(dir, hotDirName, segment.HotSegmentName(31)), FirstSeq: 31}
	if _, err := segment.Scan(seg, segment.ScanOptions{From: 0, Seq: 31}, func(e segment.HotEntry) bool {
		versions = append(versions, e.Version)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 11 || versions[0] != segment.EnvelopeVersion1 || versions[10] != segment.EnvelopeVersion2 {
		t.Fatalf("envelope versions in the continued segment: %v", versions)
	}
	if probs := validateClean(t, "continued step 4 directory", dir); len(probs) > 0 {
		t.Fatalf("validate: %+v", probs)
	}
	j = openT(t, dir, WithSegmentSize(64<<10), WithClock(clock.Now))
	if !j.fromCheckpoint {
		t.Fatal("the version 2 checkpoint written at close was not used")
	}
	if rc, err := j.Record(ctx, old(6, "ws-1")); err != nil || !rc.Duplicate || rc.Sequence != 6 {
		t.Fatalf("retry of old-6 from the new checkpoint: %+v, %v", rc, err)
	}
	if got, err := j.Query(ctx, Query{Since: base.Add(35 * time.Second), Limit: -1}); err != nil || len(got.Changes) != 7 {
		t.Fatalf("since 12:00:35: %d records, %v; want 35..41", len(got.Changes), err)
	}
}

// The window never outlives retention, even when the checkpoint that
// holds it predates a retention step a crash interrupted (horizon
// persisted, archives not yet removed: open removes them).
func TestTheWindowForgetsIDsBelowTheHorizonAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := j.Record(ctx, writerChange(fmt.Sprintf("gone-%d", i), "ws-1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	kept, err := j.Record(ctx, writerChange("kept", "ws-1"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close() // the checkpoint holds all six ids
	id, err := readIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeHorizonFile(fsx.OS, dir, id, kept.Sequence); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if !j.fromCheckpoint {
		t.Fatal("the checkpoint was not used")
	}
	rc, err := j.Record(ctx, writerChange("gone-2", "ws-1"))
	if err != nil || rc.Duplicate {
		t.Fatalf("an id of a record retention removed answered %+v, %v: a receipt for a record that no longer exists", rc, err)
	}
	if rc, err := j.Record(ctx, writerChange("kept", "ws-1")); err != nil || !rc.Duplicate || rc.Sequence != kept.Sequence {
		t.Fatalf("kept id: %+v, %v", rc, err)
	}
}
