package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentruntime/statejournal/segment"
)

func TestCompactStepsHaveDistinctNamesThatParseBack(t *testing.T) {
	steps := []compactStep{stepArchiveWritten, stepHotLogClosed, stepHotTruncated, stepHorizonWritten, stepArchiveRemoved}
	seen := map[string]bool{}
	for _, s := range steps {
		name := s.String()
		if seen[name] {
			t.Fatalf("two steps are named %q", name)
		}
		seen[name] = true
		if got, ok := parseCompactStep(name); !ok || got != s {
			t.Fatalf("%q parses to %v (%t), want %d", name, got, ok, s)
		}
	}
	for _, name := range []string{"", "tmp", "random", "compactStep(0)", "Archive-Written"} {
		if s, ok := parseCompactStep(name); ok {
			t.Fatalf("%q names step %d; only the hook steps have names", name, s)
		}
	}
}

// queryAll reads every record of rd's view, oldest first.
func queryAll(t *testing.T, j *Journal, rd *hotReader) (Result, error) {
	t.Helper()
	c, err := j.compile(Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	return j.queryView(context.Background(), rd, &c)
}

func TestAReaderPinnedBeforeACompactionReadsTheHotFilesItKnew(t *testing.T) {
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10), WithRetention(Retention{}))
	fill(t, j, 1500)
	rd, err := j.pinView()
	if err != nil {
		t.Fatal(err)
	}
	before := rd.v
	if len(before.segs) < 2 || len(before.archives) != 0 {
		t.Fatalf("want several hot segments and no archive, have %d segments and %d archives", len(before.segs), len(before.archives))
	}
	if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	after := j.view.Load()
	if after.version <= before.version || len(after.archives) == 0 || after.first <= before.first {
		t.Fatalf("the compaction published no compacted view: first %d→%d, archives %d", before.first, after.first, len(after.archives))
	}
	for _, s := range before.segs {
		if _, err := os.Stat(s.path); err == nil && s.first < after.first {
			t.Fatalf("hot segment %s still exists after it was compacted", s.path)
		}
	}
	// Every hot file the pinned view names is gone from the directory,
	// yet the reader reads them all through its handles.
	res, err := queryAll(t, j, rd)
	if err != nil {
		t.Fatalf("a reader pinned before the compaction failed: %v", err)
	}
	if len(res.Changes) != 1500 || res.Changes[0].Sequence != 1 || res.Changes[1499].Sequence != 1500 {
		t.Fatalf("the pinned reader read %d records", len(res.Changes))
	}
	handles := make([]*segFile, 0, len(before.segs))
	for _, s := range before.segs {
		if s.f != nil {
			handles = append(handles, s.f)
		}
	}
	rd.close()
	// publish dropped the handles the compacted view no longer holds;
	// they close when their last reader lets go, which was rd.
	for _, h := range handles {
		if _, err := h.f.Stat(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("a dropped segment's handle is still open after its last reader released it (stat: %v)", err)
		}
	}
	if _, err := j.pinView(); err != nil {
		t.Fatalf("pin the compacted view: %v", err)
	}
}

func TestAReadWhoseArchiveRetentionRemovedGoesStraightToTheNewerView(t *testing.T) {
	j := openT(t, t.TempDir(), WithSegmentSize(64<<10), WithRetention(Retention{}))
	ctx := context.Background()
	fill(t, j, 1500)
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	rd, err := j.pinView()
	if err != nil {
		t.Fatal(err)
	}
	stale := rd.v
	rep, err := j.Compact(ctx, CompactOptions{Retention: &Retention{MaxRecords: 200}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) == 0 {
		t.Fatalf("retention removed no archive: %s", rep.Message)
	}
	// The stale view names an archive that is gone: its read fails with a
	// file gone, which is what readPinned follows.
	_, err = queryAll(t, j, rd)
	rd.close()
	if !fileMoved(err) {
		t.Fatalf("reading a removed archive through the stale view: %v, want a file gone", err)
	}
	// The view that removed it is already published: no waiting.
	next, err := j.newerView(stale)
	if err != nil || next == nil {
		t.Fatalf("no newer view after retention published one: %v", err)
	}
	res, err := queryAll(t, j, next)
	next.close()
	if err != nil {
		t.Fatalf("query on the newer view: %v", err)
	}
	if res.Horizon != rep.HorizonAfter || len(res.Changes) == 0 || res.Changes[0].Sequence != rep.HorizonAfter {
		t.Fatalf("the newer view starts at %d (horizon %d), want the retention's horizon %d", res.Changes[0].Sequence, res.Horizon, rep.HorizonAfter)
	}
	// With nothing newer, a failed read is returned as it is.
	cur := j.view.Load()
	if rd, err := j.newerView(cur); rd != nil || err != nil {
		t.Fatalf("newerView of the published view: %v, %v; want none", rd, err)
	}
	// And the public path answers from the newer view.
	got, err := j.Query(ctx, Query{Limit: -1})
	if err != nil || len(got.Changes) != len(res.Changes) {
		t.Fatalf("Query after retention: %d records, %v; want %d", len(got.Changes), err, len(res.Changes))
	}
}

func TestAQueryOnAClosedJournalSaysClosed(t *testing.T) {
	j := openT(t, t.TempDir())
	fill(t, j, 10)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Close dropped every segment handle and publishes nothing newer: the
	// read says closed at once instead of waiting for a view that never
	// comes.
	if _, err := j.Query(context.Background(), Query{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after close: %v, want ErrClosed", err)
	}
}

func TestAReadOnlyLookAgainFollowsChangedFilesAndReportsFilesThatHoldStill(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir)
	fill(t, w, 10)
	ro, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	gone := fmt.Errorf("read hot segment: %w", os.ErrNotExist)

	calls := 0
	err = ro.lookAgain(func(int) error { calls++; return gone })
	if !errors.Is(err, os.ErrNotExist) || calls != 1 {
		t.Fatalf("a file missing from files that held still: %d looks, %v; want one look and the error", calls, err)
	}

	calls = 0
	err = ro.lookAgain(func(attempt int) error {
		calls++
		if attempt == 0 {
			// What a compaction does between a reader's listing and its
			// read: a file appears (and the one listed goes).
			if err := os.WriteFile(filepath.Join(dir, archiveDirName, "moved.tmp"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return gone
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("files changed under the look: %d looks, %v; want a second look that succeeds", calls, err)
	}

	calls = 0
	err = ro.lookAgain(func(int) error { calls++; return segment.ErrCorrupt })
	if !errors.Is(err, segment.ErrCorrupt) || calls != 1 {
		t.Fatalf("damage: %d looks, %v; want one look", calls, err)
	}
}
