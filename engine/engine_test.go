package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

func heartbeat(id string) Change {
	return Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: id}
}

func openT(t *testing.T, dir string, opts ...Option) *Journal {
	t.Helper()
	j, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestRecordThenQueryReturnsEveryRequiredField(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	ctx := context.Background()
	rc, err := j.Record(ctx, heartbeat("ws-42"))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Sequence != 1 || !rc.Durable || rc.EventID == "" {
		t.Fatalf("receipt = %+v", rc)
	}
	res, err := j.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 {
		t.Fatalf("got %d changes", len(res.Changes))
	}
	c := res.Changes[0]
	if c.SchemaVersion != SchemaVersion || c.Sequence != 1 || c.EventID != rc.EventID || c.Severity != "info" ||
		c.SnapshotHint != "runtime_health" || len(c.ChangedSurfaces) != 1 || c.OccurredAt.IsZero() {
		t.Fatalf("change = %+v", c)
	}
}

func TestBadInputIsRejectedWithTheFieldAndNothingIsWritten(t *testing.T) {
	j := openT(t, t.TempDir())
	ctx := context.Background()
	cases := []struct {
		name  string
		mod   func(*Change)
		kind  error
		field string
	}{
		{"unknown surface suggests the closest id", func(c *Change) { c.Surface = "runtime_work_sesion" }, types.ErrUnknownSurface, "surface"},
		{"missing change type", func(c *Change) { c.ChangeType = "" }, types.ErrInvalid, "change_type"},
		{"bad change type", func(c *Change) { c.ChangeType = "poked" }, types.ErrInvalid, "change_type"},
		{"bad severity", func(c *Change) { c.Severity = "loud" }, types.ErrInvalid, "severity"},
		{"missing aggregate id", func(c *Change) { c.AggregateID = "" }, types.ErrInvalid, "aggregate_id"},
		{"missing source", func(c *Change) { c.Source = "" }, types.ErrInvalid, "source"},
		{"changed surfaces without the surface", func(c *Change) { c.ChangedSurfaces = []string{"runtime_leases"} }, types.ErrInvalid, "changed_surfaces"},
		{"mutates authority on a plain surface", func(c *Change) { c.MutatesAuthorityState = true }, types.ErrPolicy, "mutates_authority_state"},
		{"approvals from a stranger", func(c *Change) {
			c.Surface = "runtime_approvals"
			c.ChangeType = "updated"
			c.Source = "runtime.stranger"
		}, types.ErrPolicy, "source"},
		{"disabled surface", func(c *Change) { c.Surface = "runtime_action_timeline"; c.ChangeType = "created" }, types.ErrPolicy, "surface"},
		{"bad snapshot hint", func(c *Change) { c.SnapshotHint = "nope" }, types.ErrInvalid, "snapshot_hint"},
		{"wrong schema version", func(c *Change) { c.SchemaVersion = "v0" }, types.ErrInvalid, "schema_version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := heartbeat("ws-1")
			tc.mod(&c)
			_, err := j.Record(ctx, c)
			var fe *types.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, tc.kind) || fe.Field != tc.field {
				t.Fatalf("err = %v (%T), want %v on field %s", err, err, tc.kind, tc.field)
			}
		})
	}
	if st := j.Status(); st.LastSequence != 0 {
		t.Fatalf("something was written: %+v", st)
	}
}

func TestGroupCommitFsyncsFarFewerTimesThanRecords(t *testing.T) {
	j := openT(t, t.TempDir())
	const writers, per = 64, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := j.Record(context.Background(), heartbeat("ws-1")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := j.Status()
	if st.Appended != writers*per {
		t.Fatalf("appended %d", st.Appended)
	}
	if st.Fsyncs*4 > st.Appended {
		t.Fatalf("%d fsyncs for %d records: group commit is not batching", st.Fsyncs, st.Appended)
	}
	t.Logf("%d records, %d fsyncs, %d batches", st.Appended, st.Fsyncs, st.Batches)
}

func TestTornTailIsCutQuarantinedAndAcknowledgedRecordsSurvive(t *testing.T) {
	dir := t.TempDir()
	seg, _ := writeJournal(t, dir, 10)
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	j2 := openT(t, dir)
	st := j2.Status()
	if st.LastSequence != 9 || st.LastRecovery == nil || len(st.LastRecovery.Cuts) != 1 || st.LastRecovery.Cuts[0].Cause != segment.CauseTornTail {
		t.Fatalf("status after torn tail: last=%d recovery=%+v", st.LastSequence, st.LastRecovery)
	}
	if _, err := j2.Record(context.Background(), heartbeat("ws-1")); err != nil {
		t.Fatal(err)
	}
}

func TestFlippedByteInsideTheLogFailsOpenAndRepairKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	seg, _ := writeJournal(t, dir, 10)
	b, _ := os.ReadFile(seg)
	b[len(b)/2] ^= 0x20
	os.WriteFile(seg, b, 0o640)
	_, err := Open(dir)
	if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("open of a damaged log: %v", err)
	}
	rep, err := Repair(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) != 1 {
		t.Fatalf("repair lost %v", rep.Lost)
	}
	j2 := openT(t, dir)
	res, _ := j2.Query(context.Background(), Query{Limit: -1})
	// Nine records and the tombstone of the lost one, visible to readers.
	var lost []uint64
	for _, c := range res.Changes {
		if c.Lost != nil {
			lost = append(lost, c.Sequence)
		}
	}
	if len(res.Changes) != 10 || len(lost) != 1 || lost[0] != rep.Lost[0] || j2.Status().LastSequence != 10 {
		t.Fatalf("after repair: %d changes (tombstones at %v, repair lost %v), last %d", len(res.Changes), lost, rep.Lost, j2.Status().LastSequence)
	}
}

func TestDuplicateEventIDReturnsFirstReceiptAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := heartbeat("ws-1")
	c.EventID = "retry-key-1"
	first, err := j.Record(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := j.Record(context.Background(), c)
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("retry: %+v %v", again, err)
	}
	j.Close()
	j2 := openT(t, dir)
	after, err := j2.Record(context.Background(), c)
	if err != nil || !after.Duplicate || after.Sequence != first.Sequence {
		t.Fatalf("retry after reopen: %+v %v", after, err)
	}
	if j2.Status().LastSequence != 1 {
		t.Fatal("duplicate was written")
	}
}

func TestSecondWriterGetsLockedErrorNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, WithHolder("test holder"))
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "test holder") {
		t.Fatalf("second open: %v", err)
	}
	ro, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
}

func TestSegmentsRotateAndReopenSeesEverything(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	var cs []Change
	for i := 0; i < 2000; i++ {
		cs = append(cs, heartbeat("ws-1"))
	}
	for k := 0; k < 3; k++ {
		if _, err := j.RecordBatch(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
	}
	st := j.Status()
	j.Close()
	segs, _, _ := segment.ListHotSegments(filepath.Join(dir, "hot"))
	if len(segs) != st.HotSegments || len(segs) < 5 {
		t.Fatalf("mirrored %d segments, disk has %d", st.HotSegments, len(segs))
	}
	j2 := openT(t, dir, WithSegmentSize(64<<10))
	if j2.Status().LastSequence != 6000 {
		t.Fatal(j2.Status().LastSequence)
	}
	res, err := j2.Query(context.Background(), Query{After: 3990, Limit: 20})
	if err != nil || len(res.Changes) != 20 || res.Changes[0].Sequence != 3991 {
		t.Fatalf("cursor 3990 across segments: %v, %d records", err, len(res.Changes))
	}
}

func TestTheSyncerFsyncsTheActiveSegmentAfterARotation(t *testing.T) {
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10))
	var cs []Change
	for i := 0; i < 300; i++ {
		cs = append(cs, heartbeat("ws-1"))
	}
	for k := 0; k < 4; k++ {
		if _, err := j.RecordBatch(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
	}
	// Read in the committer, which owns the handle.
	var tail, want string
	if err := j.inCommitter(func() error {
		tail = j.c.tail.Name()
		want = j.c.tip.segs[len(j.c.tip.segs)-1].path
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if j.Status().HotSegments < 3 {
		t.Fatalf("no rotation happened: %d segments", j.Status().HotSegments)
	}
	if tail != want {
		t.Fatalf("the syncer fsyncs %s, the active segment is %s", tail, want)
	}
}

func TestCompactionReleasesTheHandlesOfRemovedSegments(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 3000)
	if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, "(deleted)") {
			t.Fatalf("a deleted file stays open: %s", target)
		}
	}
}
