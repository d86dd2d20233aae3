package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// archivedJournal writes n records in 64 KiB segments, compacts every
// sealed segment and closes: archives, then a hot tail.
func archivedJournal(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, n)
	if _, err := j.Compact(context.Background(), CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func archiveNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, archiveDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, _, ok := archive.ParseFileName(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out
}

func hotNames(t *testing.T, dir string) []string {
	t.Helper()
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Base(s.Path))
	}
	return out
}

// sequences returns the sequences a full forward read returns.
func sequences(t *testing.T, j *Journal) []uint64 {
	t.Helper()
	var out []uint64
	for _, c := range all(t, j, Query{}) {
		out = append(out, c.Sequence)
	}
	return out
}

func TestHorizonPastTheHeadStopsTheOpenAndDeletesNothing(t *testing.T) {
	dir := archivedJournal(t, 1500)
	before := archiveNames(t, dir)
	if len(before) < 2 {
		t.Fatalf("want at least 2 archives, got %v", before)
	}
	path := filepath.Join(dir, stateDirName, horizonFileName)
	if err := os.WriteFile(path, []byte(`{"horizon":999999,"updated_at":"2026-01-01T00:00:00Z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		var opts []Option
		if ro {
			opts = append(opts, ReadOnly())
		}
		j, err := Open(dir, opts...)
		if err == nil {
			j.Close()
			t.Fatalf("read-only=%v: open accepted a horizon past the head", ro)
		}
		if !strings.Contains(err.Error(), horizonFileName) || !errors.Is(err, ErrForeign) {
			t.Fatalf("read-only=%v: want ErrForeign naming the horizon file (a v1 file in a journal with an identity): %v", ro, err)
		}
	}
	if after := archiveNames(t, dir); !slices.Equal(before, after) {
		t.Fatalf("archives changed: %v -> %v", before, after)
	}
}

func TestDamagedHorizonFileIsAnErrorNamingIt(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":  "not json at all\x00\x01",
		"empty":    "",
		"cut":      `{"horizon":12`,
		"negative": `{"horizon":-3}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := archivedJournal(t, 1500)
			before := archiveNames(t, dir)
			if err := os.WriteFile(filepath.Join(dir, stateDirName, horizonFileName), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			j, err := Open(dir)
			if err == nil {
				j.Close()
				t.Fatal("open read a damaged horizon file without a word")
			}
			if !strings.Contains(err.Error(), horizonFileName) || !errors.Is(err, ErrIntegrity) {
				t.Fatalf("want ErrIntegrity naming the horizon file: %v", err)
			}
			if after := archiveNames(t, dir); !slices.Equal(before, after) {
				t.Fatalf("archives changed: %v -> %v", before, after)
			}
		})
	}
}

func TestArchiveNameClaimingALongerRangeCutsNoHotRecord(t *testing.T) {
	dir := archivedJournal(t, 1500)
	j := openT(t, dir, ReadOnly())
	want := sequences(t, j)
	j.Close()
	as := archiveNames(t, dir)
	last := as[len(as)-1]
	first, end, _ := archive.ParseFileName(last)
	forged := archive.FileName(first, end+40)
	if err := os.Rename(filepath.Join(dir, archiveDirName, last), filepath.Join(dir, archiveDirName, forged)); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir)
	if err == nil {
		got := sequences(t, j2)
		j2.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("open trusted the forged name %s: %d records readable, want %d", forged, len(got), len(want))
		}
		t.Fatalf("open accepted an archive whose name disagrees with its footer")
	}
	if !strings.Contains(err.Error(), forged) || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("want ErrIntegrity naming the archive: %v", err)
	}
	// The hot log still holds every record past the real archive.
	if err := os.Rename(filepath.Join(dir, archiveDirName, forged), filepath.Join(dir, archiveDirName, last)); err != nil {
		t.Fatal(err)
	}
	j3 := openT(t, dir)
	if got := sequences(t, j3); !slices.Equal(got, want) {
		t.Fatalf("after renaming back: %d records, want %d", len(got), len(want))
	}
}

func TestDeletedMiddleArchiveIsAnErrorOnReadsThatCrossIt(t *testing.T) {
	dir := archivedJournal(t, 2000)
	as := archiveNames(t, dir)
	if len(as) < 3 {
		t.Fatalf("want 3 archives, got %v", as)
	}
	mid := as[1]
	mf, ml, _ := archive.ParseFileName(mid)
	if err := os.Remove(filepath.Join(dir, archiveDirName, mid)); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		var opts []Option
		if ro {
			opts = append(opts, ReadOnly())
		}
		j := openT(t, dir, opts...)
		for _, q := range []Query{{}, {After: mf - 1}, {NewestFirst: true}} {
			q.Limit = -1
			if _, err := j.Query(context.Background(), q); err == nil {
				t.Fatalf("read-only=%v: query %+v crossed the missing archive %d..%d without an error", ro, q, mf, ml)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%d..%d", mf, ml)) || !errors.Is(err, ErrHole) {
				t.Fatalf("want ErrHole naming the missing range %d..%d: %v", mf, ml, err)
			}
		}
		if st, err := j.Stale(mf - 1); !errors.Is(err, ErrHole) || !st.Resync {
			t.Fatalf("read-only=%v: Stale before the hole: %v resync=%v, want ErrHole and resync", ro, err, st.Resync)
		}
		if _, err := j.Stale(ml); err != nil {
			t.Fatalf("read-only=%v: Stale after the hole: %v", ro, err)
		}
		// A read that does not cross the hole still answers.
		res, err := j.Query(context.Background(), Query{After: ml, Limit: -1})
		if err != nil || len(res.Changes) == 0 || res.Changes[0].Sequence != ml+1 {
			t.Fatalf("read-only=%v: a read after the hole: %v %d", ro, err, len(res.Changes))
		}
		j.Close()
	}
	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(rep, ProblemHole, fmt.Sprintf("%d..%d", mf, ml)) {
		t.Fatalf("validate does not report the hole %d..%d: %+v", mf, ml, rep.Problems)
	}
}

// incarnation writes n records with fixed sizes: same event id lengths,
// same times, change types of equal length chosen by kind.
func incarnation(t *testing.T, dir, tag, ctype string, n int) {
	t.Helper()
	j := openT(t, dir, WithSegmentSize(64<<10))
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for i := 0; i < n; i++ {
		c := Change{Source: "runtime.leases", Surface: "runtime_leases", ChangeType: ctype, AggregateType: "lease",
			AggregateID: fmt.Sprintf("l-%04d", i), EventID: fmt.Sprintf("evt-%s-%04d", tag, i), OccurredAt: at}
		if _, err := j.Record(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointFromAnEarlierIncarnationIsRefused(t *testing.T) {
	dir := t.TempDir()
	incarnation(t, dir, "a", "created", 300)
	old, err := os.ReadFile(filepath.Join(dir, stateDirName, checkpointFileName))
	if err != nil {
		t.Fatal(err)
	}
	oldHot := hotNames(t, dir)
	oldSizes := map[string]int64{}
	for _, n := range oldHot {
		fi, _ := os.Stat(filepath.Join(dir, hotDirName, n))
		oldSizes[n] = fi.Size()
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	incarnation(t, dir, "b", "updated", 300)
	for _, n := range hotNames(t, dir) {
		fi, _ := os.Stat(filepath.Join(dir, hotDirName, n))
		if oldSizes[n] != fi.Size() {
			t.Fatalf("the second incarnation's segment %s is %d bytes, the first's %d: the test needs equal sizes", n, fi.Size(), oldSizes[n])
		}
	}
	if err := os.WriteFile(filepath.Join(dir, stateDirName, checkpointFileName), old, 0o644); err != nil {
		t.Fatal(err)
	}
	j := openT(t, dir)
	if n := len(all(t, j, Query{ChangeTypes: []string{"created"}})); n != 0 {
		t.Fatalf("%d records of change type created; this incarnation wrote none", n)
	}
	if n := len(all(t, j, Query{ChangeTypes: []string{"updated"}})); n != 300 {
		t.Fatalf("%d records of change type updated, want 300", n)
	}
	rc, err := j.Record(context.Background(), Change{Source: "runtime.leases", Surface: "runtime_leases", ChangeType: "created",
		AggregateType: "lease", AggregateID: "l-0007", EventID: "evt-a-0007"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Duplicate {
		t.Fatalf("an event id of the earlier incarnation was taken as a duplicate of sequence %d", rc.Sequence)
	}
}

func TestMissingFirstHotSegmentIsReported(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 1500)
	j.Close()
	hs := hotNames(t, dir)
	if len(hs) < 3 {
		t.Fatalf("want 3 hot segments, got %v", hs)
	}
	if err := os.Remove(filepath.Join(dir, hotDirName, hs[0])); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir)
	if err != nil {
		if !strings.Contains(err.Error(), "1..") {
			t.Fatalf("error does not name the lost range: %v", err)
		}
		return
	}
	defer j2.Close()
	if h := j2.Status().Horizon; h != 1 {
		t.Fatalf("the missing segment became the horizon: %d", h)
	}
	lost := fmt.Sprintf("1..%d", segFirst(t, dir)-1)
	if _, err := j2.Query(context.Background(), Query{Limit: -1}); !errors.Is(err, ErrHole) || !strings.Contains(err.Error(), lost) {
		t.Fatalf("a read from the start: %v, want ErrHole naming %s", err, lost)
	}
	if st := j2.Status(); len(st.Holes) != 1 || !strings.Contains(st.Holes[0], lost) {
		t.Fatalf("status holes %v", st.Holes)
	}
	// Reads after the hole answer; writes go on.
	if _, err := j2.Query(context.Background(), Query{After: segFirst(t, dir) - 1, Limit: 5}); err != nil {
		t.Fatal(err)
	}
	fill(t, j2, 5)
	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(rep, ProblemHole, lost) {
		t.Fatalf("validate does not report the hole %s: %+v", lost, rep.Problems)
	}
	j2.Close()
	// Repair fills the range with tombstones and says so.
	rr, err := Repair(context.Background(), dir)
	if err != nil || len(rr.Missing) != 1 || rr.Missing[0].First != 1 {
		t.Fatalf("repair: %+v %v", rr, err)
	}
	j3 := openT(t, dir)
	if _, err := j3.Query(context.Background(), Query{Limit: -1}); err != nil {
		t.Fatalf("after repair: %v", err)
	}
}

func TestRepairOfAMissingMiddleHotSegmentReportsTheLostRange(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 1500)
	j.Close()
	segs, _, _ := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if len(segs) < 3 {
		t.Fatalf("want 3 hot segments, got %d", len(segs))
	}
	lostFirst, lostLast := segs[1].FirstSeq, segs[2].FirstSeq-1
	if err := os.Remove(segs[1].Path); err != nil {
		t.Fatal(err)
	}
	if j, err := Open(dir); err == nil {
		j.Close()
		t.Fatal("open accepted a hot log with a missing middle segment")
	}
	rep, err := Repair(context.Background(), dir)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if len(rep.Missing) != 1 || rep.Missing[0].First != lostFirst || rep.Missing[0].Last != lostLast {
		t.Fatalf("repair reports missing %+v, want %d..%d", rep.Missing, lostFirst, lostLast)
	}
	if _, err := os.Stat(filepath.Join(dir, quarantineDirName, rep.Missing[0].Note)); err != nil {
		t.Fatalf("no quarantine note: %v", err)
	}
	if len(rep.Lost) != int(lostLast-lostFirst+1) || rep.Lost[0] != lostFirst || rep.Lost[len(rep.Lost)-1] != lostLast {
		t.Fatalf("repair reports lost %d sequences (%v...), want %d..%d", len(rep.Lost), rep.Lost[:min(3, len(rep.Lost))], lostFirst, lostLast)
	}
	j2 := openT(t, dir)
	// The lost range reads as tombstones (visible losses, Change.Lost
	// set), never as records; every other record reads as itself.
	var got []uint64
	tombstones := 0
	for _, c := range all(t, j2, Query{}) {
		lost := c.Sequence >= lostFirst && c.Sequence <= lostLast
		switch {
		case lost && c.Lost == nil:
			t.Fatalf("sequence %d of the lost range reads as a record", c.Sequence)
		case lost:
			tombstones++
		case c.Lost != nil:
			t.Fatalf("sequence %d outside the lost range reads as a tombstone", c.Sequence)
		default:
			got = append(got, c.Sequence)
		}
	}
	if tombstones != int(lostLast-lostFirst+1) {
		t.Fatalf("%d tombstones readable after repair, want %d", tombstones, lostLast-lostFirst+1)
	}
	if len(got) != 1500-int(lostLast-lostFirst+1) {
		t.Fatalf("%d records readable after repair, want %d", len(got), 1500-int(lostLast-lostFirst+1))
	}
	vr, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, p := range vr.Problems {
		if p.Kind == ProblemLost {
			lost++
		}
	}
	if lost != int(lostLast-lostFirst+1) {
		t.Fatalf("validate reports %d lost sequences, want %d", lost, lostLast-lostFirst+1)
	}
}

// snapshotFiles maps every file under dir to its contents.
func snapshotFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func TestStep4DirectoryUpgradesInPlace(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/step4-retained-dir", dir)
	want := make([]uint64, 0, 328)
	for s := uint64(293); s <= 620; s++ {
		want = append(want, s)
	}
	before := snapshotFiles(t, dir)
	ro := openT(t, dir, ReadOnly())
	if got := sequences(t, ro); !slices.Equal(got, want) {
		t.Fatalf("read-only open of a step-4 directory: %d records, want 293..620", len(got))
	}
	ro.Close()
	if after := snapshotFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a read-only open of a step-4 directory changed files")
	}
	j := openT(t, dir)
	if got := sequences(t, j); !slices.Equal(got, want) {
		t.Fatalf("writable open of a step-4 directory: %d records, want 293..620", len(got))
	}
	if h := j.Status().Horizon; h != 293 {
		t.Fatalf("horizon %d after the upgrade, want 293", h)
	}
	j.Close()
	id, err := readIdentity(dir)
	if err != nil || id == nil || id.Upgrade == nil || len(id.Upgrade.LegacyArchives) != 3 || id.Upgrade.LegacyHorizon != 293 {
		t.Fatalf("identity after the upgrade: %+v %v", id, err)
	}
	hz, err := readHorizon(dir, id)
	if err != nil || hz.legacy || hz.value != 293 {
		t.Fatalf("horizon after the upgrade: %+v %v (want a version 2 file)", hz, err)
	}
	// Reopen: the v1 archives stay accepted, the new checkpoint is used.
	j = openT(t, dir)
	if !j.fromCheckpoint {
		t.Fatal("the checkpoint written after the upgrade was not used")
	}
	fill(t, j, 10)
	if got := len(sequences(t, j)); got != 338 {
		t.Fatalf("%d records after the upgrade and 10 more, want 338", got)
	}
	j.Close()
	// A version 1 archive that was not there at the upgrade is refused.
	stray := filepath.Join(dir, archiveDirName, archive.FileName(1000, 1139))
	b, err := os.ReadFile("../segment/archive/testdata/v1-golden.sjar")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), filepath.Base(stray)) {
		t.Fatalf("a v1 archive added after the upgrade: %v, want ErrForeign naming it", err)
	}
}

// twoJournals returns two archived journals in separate directories.
func twoJournals(t *testing.T) (string, string) {
	return archivedJournal(t, 1500), archivedJournal(t, 1500)
}

func TestFilesOfAnotherJournalAreRefusedOrRebuilt(t *testing.T) {
	t.Run("an archive of another journal stops the open and nothing is deleted", func(t *testing.T) {
		a, b := twoJournals(t)
		as := archiveNames(t, a)
		victim := as[len(as)-1]
		bs := archiveNames(t, b)
		if !slices.Contains(bs, victim) {
			t.Fatalf("journal b has no %s", victim)
		}
		data, _ := os.ReadFile(filepath.Join(b, archiveDirName, victim))
		if err := os.WriteFile(filepath.Join(a, archiveDirName, victim), data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshotFiles(t, a)
		for _, ro := range []bool{false, true} {
			var opts []Option
			if ro {
				opts = append(opts, ReadOnly())
			}
			_, err := Open(a, opts...)
			if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), victim) {
				t.Fatalf("read-only=%v: %v, want ErrForeign naming %s", ro, err, victim)
			}
		}
		if after := snapshotFiles(t, a); len(after) != len(before) {
			t.Fatal("files changed")
		}
		rep, err := ValidateDir(context.Background(), a, ValidateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range rep.Problems {
			found = found || (p.Kind == ProblemForeign && strings.Contains(p.Segment, victim))
		}
		if !found {
			t.Fatalf("validate does not report the foreign archive: %+v", rep.Problems)
		}
	})
	t.Run("a horizon file of another journal stops the open and nothing is deleted", func(t *testing.T) {
		a, b := twoJournals(t)
		jb := openT(t, b)
		r := DefaultRetention()
		r.MaxRecords = 200
		if _, err := jb.Compact(context.Background(), CompactOptions{Retention: &r}); err != nil {
			t.Fatal(err)
		}
		jb.Close()
		data, err := os.ReadFile(filepath.Join(b, stateDirName, horizonFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a, stateDirName, horizonFileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := archiveNames(t, a)
		_, err = Open(a)
		if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), horizonFileName) {
			t.Fatalf("%v, want ErrForeign naming the horizon file", err)
		}
		if after := archiveNames(t, a); !slices.Equal(before, after) {
			t.Fatalf("archives changed: %v -> %v", before, after)
		}
	})
	t.Run("a checkpoint of another journal is rebuilt", func(t *testing.T) {
		a := t.TempDir()
		incarnation(t, a, "a", "created", 200)
		b := t.TempDir()
		incarnation(t, b, "b", "updated", 200)
		data, _ := os.ReadFile(filepath.Join(b, stateDirName, checkpointFileName))
		if err := os.WriteFile(filepath.Join(a, stateDirName, checkpointFileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		j := openT(t, a)
		if j.fromCheckpoint {
			t.Fatal("the checkpoint of another journal was used")
		}
		if n := len(all(t, j, Query{ChangeTypes: []string{"created"}})); n != 200 {
			t.Fatalf("%d created records, want 200", n)
		}
	})
}

func TestChecksummedHorizonThatNoRetentionWritesIsRefused(t *testing.T) {
	dir := archivedJournal(t, 1500)
	id, err := readIdentity(dir)
	if err != nil || id == nil {
		t.Fatal(err)
	}
	as := archiveNames(t, dir)
	f, l, _ := archive.ParseFileName(as[0])
	hs := hotNames(t, dir)
	_ = hs
	for name, h := range map[string]uint64{"past the head": 999_999, "inside an archive": f + (l-f)/2} {
		t.Run(name, func(t *testing.T) {
			if err := writeHorizonFile(fsx.OS, dir, id, h); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir)
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), horizonFileName) {
				t.Fatalf("horizon %d: %v, want ErrIntegrity naming the file", h, err)
			}
			if after := archiveNames(t, dir); !slices.Equal(as, after) {
				t.Fatalf("archives changed: %v -> %v", as, after)
			}
		})
	}
	// Repair rewrites it from the files, and nothing is lost.
	rep, err := Repair(context.Background(), dir)
	if err != nil || len(rep.Rewritten) != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	j := openT(t, dir)
	if n := len(sequences(t, j)); n != 1500 {
		t.Fatalf("%d records after repair, want 1500", n)
	}
}

func TestMissingIdentityIsRefusedAndRepairRewritesIt(t *testing.T) {
	dir := archivedJournal(t, 1500)
	id, _ := readIdentity(dir)
	if err := os.Remove(filepath.Join(dir, stateDirName, identityFileName)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), identityFileName) || !strings.Contains(err.Error(), id.JournalID) {
		t.Fatalf("%v, want ErrIntegrity naming the identity file and the journal id", err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateDirName, identityFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused open wrote an identity")
	}
	rep, err := Repair(context.Background(), dir)
	if err != nil || len(rep.Rewritten) == 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	nid, err := readIdentity(dir)
	if err != nil || nid.JournalID != id.JournalID {
		t.Fatalf("rewritten identity %+v %v, want journal id %s", nid, err, id.JournalID)
	}
	j := openT(t, dir)
	if n := len(sequences(t, j)); n != 1500 {
		t.Fatalf("%d records after repair, want 1500", n)
	}
}

func hasProblem(rep ValidationReport, kind, text string) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && p.Severity == SeverityError && strings.Contains(p.Message, text) {
			return true
		}
	}
	return false
}

// segFirst is the first sequence of the first hot segment.
func segFirst(t *testing.T, dir string) uint64 {
	t.Helper()
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil || len(segs) == 0 {
		t.Fatal(err)
	}
	return segs[0].FirstSeq
}

// TestInterruptedCompactionCutsOnlyWhatAVerifiedArchiveHolds builds the
// state a crash between writing an archive and cutting the hot log leaves
// (the archive of the first hot segment beside the segment itself), once
// with the true records and once with one record's bytes changed.
func TestInterruptedCompactionCutsOnlyWhatAVerifiedArchiveHolds(t *testing.T) {
	for _, forged := range []bool{false, true} {
		t.Run(fmt.Sprintf("forged=%v", forged), func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(64<<10))
			fill(t, j, 1000)
			j.Close()
			id, err := readIdentity(dir)
			if err != nil {
				t.Fatal(err)
			}
			segs, _, _ := segment.ListHotSegments(filepath.Join(dir, hotDirName))
			first, last := segs[0].FirstSeq, segs[1].FirstSeq-1
			var recs []archive.Record
			if _, err := segment.Scan(segs[0], segment.ScanOptions{}, func(e segment.HotEntry) bool {
				seq, payload := e.Seq, e.Payload
				p := append([]byte(nil), payload...)
				if forged && seq == first+3 {
					p = bytes.Replace(p, []byte(`"ws-`), []byte(`"wz-`), 1)
				}
				c, _ := decodeStored(payload, seq)
				recs = append(recs, archive.Record{Seq: seq, Time: c.OccurredAt.UnixNano(), Label: c.Surface, Payload: p})
				return true
			}); err != nil {
				t.Fatal(err)
			}
			i := 0
			name := archive.FileName(first, last)
			if _, err := archive.Write(filepath.Join(dir, archiveDirName, name), func() (archive.Record, bool, error) {
				if i == len(recs) {
					return archive.Record{}, false, nil
				}
				i++
				return recs[i-1], true, nil
			}, archive.WriterOptions{JournalID: id.id, RangeFirst: first, RangeLast: last}); err != nil {
				t.Fatal(err)
			}
			hotBefore := hotNames(t, dir)
			j2, err := Open(dir)
			if forged {
				if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), name) {
					t.Fatalf("open with a forged overlapping archive: %v, want ErrIntegrity naming %s", err, name)
				}
				if got := hotNames(t, dir); !slices.Equal(got, hotBefore) {
					t.Fatalf("hot segments changed: %v -> %v", hotBefore, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer j2.Close()
			if j2.recovery == nil || !j2.recovery.CompletedCompaction {
				t.Fatal("open did not complete the interrupted compaction")
			}
			got := sequences(t, j2)
			if len(got) != 1000 || got[0] != 1 || got[999] != 1000 {
				t.Fatalf("%d records after completing the compaction, want 1..1000 once", len(got))
			}
		})
	}
}

func TestMissingHorizonFileAfterRetentionIsAHole(t *testing.T) {
	dir := archivedJournal(t, 1500)
	j := openT(t, dir)
	r := DefaultRetention()
	r.MaxRecords = 1000
	rep, err := j.Compact(context.Background(), CompactOptions{Retention: &r})
	if err != nil || len(rep.Removed) == 0 {
		t.Fatalf("retention removed nothing: %+v %v", rep, err)
	}
	horizon := rep.HorizonAfter
	j.Close()
	if err := os.Remove(filepath.Join(dir, stateDirName, horizonFileName)); err != nil {
		t.Fatal(err)
	}
	j2 := openT(t, dir)
	lost := fmt.Sprintf("1..%d", horizon-1)
	if _, err := j2.Query(context.Background(), Query{Limit: -1}); !errors.Is(err, ErrHole) || !strings.Contains(err.Error(), lost) || !strings.Contains(err.Error(), horizonFileName) {
		t.Fatalf("a read from the start without the horizon file: %v, want ErrHole naming %s and the horizon file", err, lost)
	}
	if _, err := j2.Query(context.Background(), Query{After: horizon - 1, Limit: -1}); err != nil {
		t.Fatalf("a read from the old horizon: %v", err)
	}
	j2.Close()
	vr, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || !hasProblem(vr, ProblemHole, lost) {
		t.Fatalf("validate: %v %+v", err, vr.Problems)
	}
	// Repair moves the horizon to the oldest archive and says what is lost;
	// a cursor below it then gets ErrCompacted, never a silent gap.
	rr, err := Repair(context.Background(), dir)
	if err != nil || len(rr.Missing) != 1 || rr.Missing[0].First != 1 || rr.Missing[0].Last != horizon-1 {
		t.Fatalf("repair: %+v %v", rr, err)
	}
	j3 := openT(t, dir)
	if _, err := j3.Query(context.Background(), Query{After: 1, Limit: -1}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("a cursor below the repaired horizon: %v, want ErrCompacted", err)
	}
	if got := sequences(t, j3); len(got) != 1500-int(horizon-1) {
		t.Fatalf("%d records after repair, want %d", len(got), 1500-int(horizon-1))
	}
}

func TestRemovedHotLogIsNotRestartedAtSequenceOne(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 600)
	if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	fill(t, j, 20)
	j.Close()
	if err := os.RemoveAll(filepath.Join(dir, hotDirName)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrHole) || !strings.Contains(err.Error(), "600") {
		t.Fatalf("open without hot/: %v, want ErrHole naming sequence 600", err)
	}
	vr, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || vr.Clean {
		t.Fatalf("validate says clean without hot/: %v %+v", err, vr.Problems)
	}
	rep, err := Repair(context.Background(), dir)
	if err != nil || len(rep.Rewritten) != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	j2 := openT(t, dir)
	rc, err := j2.Record(context.Background(), heartbeat("ws-after"))
	if err != nil || rc.Sequence != 601 {
		t.Fatalf("first record after repair: %+v %v, want sequence 601", rc, err)
	}
	if n := len(sequences(t, j2)); n != 601 {
		t.Fatalf("%d records readable, want 601", n)
	}
}

// FuzzReadMetadataFiles feeds arbitrary bytes to the identity and horizon
// readers: they never panic, and a file they accept is one the writers
// produce (sealed with its checksum) or a recorded version 1 horizon.
func FuzzReadMetadataFiles(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, stateDirName), 0o755)
	id := newIdentity(nil)
	if err := writeIdentity(fsx.OS, dir, id); err != nil {
		f.Fatal(err)
	}
	idBytes, _ := os.ReadFile(filepath.Join(dir, stateDirName, identityFileName))
	if err := writeHorizonFile(fsx.OS, dir, id, 42); err != nil {
		f.Fatal(err)
	}
	hzBytes, _ := os.ReadFile(filepath.Join(dir, stateDirName, horizonFileName))
	for _, seed := range [][]byte{idBytes, hzBytes, []byte(`{"horizon":7,"updated_at":"2026-01-01T00:00:00Z"}`), nil, []byte("{}"), []byte(`{"version":2}`)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, err := parseIdentity(b); err == nil {
			if fsx.CheckSealedJSON(got, &got.CRC) != nil {
				t.Fatalf("accepted an identity that is not sealed: %q", b)
			}
		}
		if h, err := parseHorizon(b, id); err == nil && h.legacy {
			t.Fatalf("accepted a version 1 horizon the identity does not record: %q", b)
		}
	})
}

func TestHotLogEndingBeforeTheCheckpointsDurableRecordsIsAReportedLoss(t *testing.T) {
	for _, damage := range []string{"cut to 0 bytes", "cut in half", "deleted"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(64<<10))
			fill(t, j, 400)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			segs, _, _ := segment.ListHotSegments(filepath.Join(dir, hotDirName))
			tail := segs[len(segs)-1]
			switch damage {
			case "cut to 0 bytes":
				os.Truncate(tail.Path, 0)
			case "cut in half":
				os.Truncate(tail.Path, tail.Size/2)
			case "deleted":
				os.Remove(tail.Path)
			}
			for _, ro := range []bool{true, false} {
				var opts []Option
				if ro {
					opts = append(opts, ReadOnly())
				}
				_, err := Open(dir, opts...)
				if !errors.Is(err, ErrHole) || !strings.Contains(err.Error(), "..400") {
					t.Fatalf("read-only=%v: %v, want ErrHole naming the lost sequences up to 400", ro, err)
				}
			}
			vr, err := ValidateDir(context.Background(), dir, ValidateOptions{})
			if err != nil || !hasProblem(vr, ProblemHole, "..400") {
				t.Fatalf("validate: %v %+v", err, vr.Problems)
			}
			rep, err := Repair(context.Background(), dir)
			if err != nil || len(rep.Missing) != 1 || rep.Missing[0].Last != 400 {
				t.Fatalf("repair: %+v %v", rep, err)
			}
			j2 := openT(t, dir)
			rc, err := j2.Record(context.Background(), heartbeat("ws-after"))
			if err != nil || rc.Sequence != 401 {
				t.Fatalf("after repair: %+v %v, want sequence 401 (lost sequences are never reused)", rc, err)
			}
		})
	}
}

func TestIdentityOfAnotherJournalIsRefusedAndRepairTakesTheArchivesWord(t *testing.T) {
	a, b := twoJournals(t)
	idA, _ := readIdentity(a)
	data, _ := os.ReadFile(filepath.Join(b, stateDirName, identityFileName))
	if err := os.WriteFile(filepath.Join(a, stateDirName, identityFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := archiveNames(t, a)
	if _, err := Open(a); !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), identityFileName) {
		t.Fatalf("open with another journal's identity: %v, want ErrForeign naming the identity file", err)
	}
	if after := archiveNames(t, a); !slices.Equal(before, after) {
		t.Fatalf("archives changed: %v -> %v", before, after)
	}
	rep, err := Repair(context.Background(), a)
	if err != nil || len(rep.Rewritten) == 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if id, err := readIdentity(a); err != nil || id.JournalID != idA.JournalID {
		t.Fatalf("identity after repair: %+v %v, want journal %s", id, err, idA.JournalID)
	}
	j := openT(t, a)
	if n := len(sequences(t, j)); n != 1500 {
		t.Fatalf("%d records after repair, want 1500", n)
	}
}
