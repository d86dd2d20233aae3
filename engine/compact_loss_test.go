package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/segment"
)

// hotSegmentPaths lists dir's hot segment files, oldest first.
func hotSegmentPaths(t *testing.T, dir string) []segment.HotSegment {
	t.Helper()
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// flipInSegment flips one byte in the middle of a record of seg (a
// payload byte, so the frame's checksum fails) and returns its offset.
func flipInSegment(t *testing.T, seg segment.HotSegment) int64 {
	return flipSegmentAt(t, seg, -1)
}

// flipAt flips a payload byte at offset at of seg (-1: the middle).
func flipSegmentAt(t *testing.T, seg segment.HotSegment, at int64) int64 {
	t.Helper()
	b, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(b) / 2)
	if at >= 0 {
		off = at
	}
	for b[off] == '"' || b[off] == ':' || b[off] == ',' {
		off++
	}
	b[off] ^= 0x20
	if err := os.WriteFile(seg.Path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return off
}

func TestCompactingADamagedSealedSegmentFailsNamingItAndCutsNothing(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 3000)
	if err := j.Close(); err != nil { // writes the checkpoint Open trusts
		t.Fatal(err)
	}
	segs := hotSegmentPaths(t, dir)
	if len(segs) < 4 {
		t.Fatalf("want at least 4 hot segments, have %d", len(segs))
	}
	victim := segs[1] // the first sealed segment compacts; the second is damaged
	flipInSegment(t, victim)

	reg := prometheus.NewRegistry()
	j2, err := Open(dir, WithSegmentSize(64<<10), WithRegisterer(reg))
	if err != nil {
		t.Fatalf("open with the checkpoint: %v", err)
	}
	defer j2.Close()
	before := j2.Status()
	rep, err := j2.Compact(context.Background(), CompactOptions{})
	var ce *segment.CorruptionError
	if err == nil || !errors.As(err, &ce) || !errors.Is(err, segment.ErrCorrupt) {
		t.Fatalf("compaction of a damaged sealed segment: %v (report %+v); want a *segment.CorruptionError", err, rep)
	}
	if ce.Segment != victim.Path || ce.Sequence < victim.FirstSeq || ce.Sequence >= segs[2].FirstSeq || ce.Offset <= 0 {
		t.Fatalf("the error names %s offset %d sequence %d; want %s, a sequence in %d..%d", ce.Segment, ce.Offset, ce.Sequence, victim.Path, victim.FirstSeq, segs[2].FirstSeq-1)
	}
	if !strings.Contains(err.Error(), filepath.Base(victim.Path)) {
		t.Fatalf("the message does not name the segment: %v", err)
	}
	t.Logf("compaction refused: %v", err)
	st := j2.Status()
	if rep.Coalesced != 0 || st.Coalesced != 0 {
		t.Fatalf("records counted coalesced without a window: report %d, status %d", rep.Coalesced, st.Coalesced)
	}
	// The segment before the damage was archived and cut; nothing from
	// the damaged segment on was cut or removed.
	if st.ArchiveSegments != 1 || st.ArchiveRecords != victim.FirstSeq-1 || st.Horizon != 1 || st.FirstSequence != 1 {
		t.Fatalf("archives %d with %d records, horizon %d; want the one archive of 1..%d", st.ArchiveSegments, st.ArchiveRecords, st.Horizon, victim.FirstSeq-1)
	}
	if st.HotRecords != before.HotRecords-(victim.FirstSeq-1) || hotSegmentPaths(t, dir)[0].Path != victim.Path {
		t.Fatalf("hot records %d -> %d; the hot log was cut past the damage", before.HotRecords, st.HotRecords)
	}
	if st.CompactionFailure == nil || st.CompactionFailure.Reason != FailureDamagedInput || !strings.Contains(st.CompactionFailure.Error, filepath.Base(victim.Path)) {
		t.Fatalf("Status().CompactionFailure = %+v", st.CompactionFailure)
	}
	if got := faultGatherLabel(t, reg, "state_journal_compaction_failures_total", "reason", FailureDamagedInput); got != 1 {
		t.Fatalf("state_journal_compaction_failures_total{reason=damaged_input} = %v", got)
	}
	if st.Failed != "" {
		t.Fatalf("the hot log is failed: %s", st.Failed)
	}
	if _, err := j2.Record(context.Background(), heartbeat("ws-after")); err != nil {
		t.Fatalf("record after the refused compaction: %v", err)
	}
	// A second try refuses the same way (nothing drifted).
	if _, err := j2.Compact(context.Background(), CompactOptions{}); !errors.As(err, &ce) || ce.Segment != victim.Path {
		t.Fatalf("second compaction: %v", err)
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	// The archive is intact, validate names the damage, and the next
	// open scans instead of trusting the checkpoint, so it refuses too.
	rv, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, p := range rv.Problems {
		if p.Kind == ProblemArchive {
			t.Fatalf("validate finds the archive damaged: %+v", p)
		}
		if p.Kind == ProblemFrame && p.Segment == filepath.Base(victim.Path) {
			named = true
		}
	}
	if rv.Clean || !named {
		t.Fatalf("validate does not name the damaged segment: %+v", rv.Problems)
	}
	if _, err := Open(dir, WithSegmentSize(64<<10)); !errors.As(err, &ce) || ce.Segment != victim.Path {
		t.Fatalf("reopen after the refused compaction: %v, want the damage named", err)
	}
}

// faultGatherLabel returns the value of the series of name whose label
// key is value.
func faultGatherLabel(t *testing.T, reg *prometheus.Registry, name, key, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == key && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} is not registered", name, key, value)
	return 0
}

func TestRepairedTombstonesSurviveCompactionAndReadersSeeThem(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 3000)
	j.Close()
	segs := hotSegmentPaths(t, dir)
	// The last record of a sealed segment: its tombstone ends the
	// segment, which is where an archive that dropped tombstones broke
	// its own range check.
	flipSegmentAt(t, segs[1], segs[1].Size-30)
	rr, err := Repair(context.Background(), dir)
	if err != nil || len(rr.Lost) == 0 {
		t.Fatalf("repair: %v, lost %v", err, rr.Lost)
	}
	lost := rr.Lost[0]
	if lost != segs[2].FirstSeq-1 {
		t.Fatalf("repair lost %v, want the last sequence of the segment, %d", rr.Lost, segs[2].FirstSeq-1)
	}
	ctx := context.Background()

	checkTombstones := func(who string, j *Journal) {
		t.Helper()
		// A cursor reader just before the loss sees it first.
		res, err := j.Query(ctx, Query{After: lost - 1, Limit: 3})
		if err != nil {
			t.Fatalf("%s: cursor query: %v", who, err)
		}
		if len(res.Changes) == 0 || res.Changes[0].Sequence != lost || res.Changes[0].Lost == nil || res.Changes[0].Lost.Cause == "" {
			t.Fatalf("%s: a cursor read after %d starts with %+v, want the tombstone of %d", who, lost-1, res.Changes, lost)
		}
		b, _ := json.Marshal(res.Changes[0])
		if !strings.Contains(string(b), `"lost":{"cause":`) {
			t.Fatalf("%s: the tombstone's JSON does not say it is lost: %s", who, b)
		}
		// Every lost sequence answers a full read and a filtered one.
		seen := map[uint64]bool{}
		for _, c := range all(t, j, Query{}) {
			if c.Lost != nil {
				seen[c.Sequence] = true
			}
		}
		for _, c := range all(t, j, Query{Surfaces: []string{"runtime_leases"}, NewestFirst: true}) {
			if c.Lost != nil && !seen[c.Sequence] {
				t.Fatalf("%s: a filtered read returns tombstone %d a full read does not", who, c.Sequence)
			}
			delete(seen, c.Sequence)
		}
		for _, s := range rr.Lost {
			if !seen[s] && !slicesContains(rr.Lost, s) {
				t.Fatalf("%s: lost sequence %d is not a tombstone in a full read", who, s)
			}
		}
		if len(seen) != 0 {
			t.Fatalf("%s: tombstones %v missing from a surface-filtered read", who, seen)
		}
	}

	j2 := openT(t, dir, WithSegmentSize(64<<10))
	checkTombstones("in the hot log", j2)
	rep, err := j2.Compact(ctx, CompactOptions{SealActive: true})
	if err != nil {
		t.Fatalf("compaction after repair: %v", err)
	}
	if rep.Tombstones != uint64(len(rr.Lost)) || rep.Coalesced != 0 || rep.Records != 3000 {
		t.Fatalf("report: %d records, %d tombstones, %d coalesced; want 3000, %d, 0", rep.Records, rep.Tombstones, rep.Coalesced, len(rr.Lost))
	}
	checkTombstones("archived", j2)
	if st := j2.Status(); len(st.DamagedArchives) != 0 {
		t.Fatalf("the engine rejects its own archive: %v", st.DamagedArchives)
	}
	j2.Close()
	rv, err := ValidateDir(ctx, dir, ValidateOptions{})
	if err != nil || !rv.Clean {
		t.Fatalf("validate after compacting tombstones: %v %+v", err, rv.Problems)
	}
	j3 := openT(t, dir, WithSegmentSize(64<<10))
	checkTombstones("after reopen", j3)
}

func slicesContains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestWritersCannotForgeATombstone(t *testing.T) {
	j := openT(t, t.TempDir())
	c := heartbeat("ws-1")
	c.Lost = &LostRecord{Cause: "bad_checksum"}
	if _, err := j.Record(context.Background(), c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("a change with lost set: %v", err)
	}
}

func TestMaxBytesBelowTheHotLogsHeadroomIsRefusedAndKeepsArchives(t *testing.T) {
	dir := t.TempDir()
	// The finding: 8MiB with the default 4 MiB segments left no budget.
	var re *RetentionError
	if _, err := Open(dir, WithRetention(Retention{MaxBytes: 8 << 20})); !errors.As(err, &re) || !errors.Is(err, ErrRetention) ||
		re.Minimum != MinRetentionBytes(DefaultSegmentSize) || !strings.Contains(err.Error(), "12MiB") {
		t.Fatalf("open with max_bytes 8MiB: %v; want a *RetentionError naming the 12MiB minimum", err)
	}
	j := openT(t, dir)
	fill(t, j, 3000)
	if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	fill(t, j, 100)
	before := j.Status()
	if before.ArchiveSegments != 1 {
		t.Fatalf("%d archives", before.ArchiveSegments)
	}
	for _, dry := range []bool{true, false} {
		rep, err := j.Compact(context.Background(), CompactOptions{DryRun: dry, Retention: &Retention{MaxBytes: 8 << 20}})
		if !errors.As(err, &re) || re.Field != "max_bytes" || re.Value != 8<<20 {
			t.Fatalf("compact (dry %v) with max_bytes 8MiB: %v %+v", dry, err, rep)
		}
	}
	if st := j.Status(); st.ArchiveSegments != 1 || st.Horizon != 1 {
		t.Fatalf("a refused setting removed archives: %d archives, horizon %d", st.ArchiveSegments, st.Horizon)
	}
	// At the minimum, a small journal keeps its archive.
	rep, err := j.Compact(context.Background(), CompactOptions{Retention: &Retention{MaxBytes: MinRetentionBytes(DefaultSegmentSize)}})
	if err != nil || len(rep.Removed) != 0 || j.Status().ArchiveSegments != 1 {
		t.Fatalf("compact at the minimum: %v, removed %+v", err, rep.Removed)
	}
}

// reportShape is a report without what only a real run can know (time).
func reportShape(r CompactReport) CompactReport {
	r.DryRun, r.Duration, r.Message = false, 0, ""
	return r
}

func TestDryRunReportsExactlyWhatTheRealRunDoes(t *testing.T) {
	for _, tc := range []struct {
		name string
		ret  Retention
		o    CompactOptions
	}{
		{"max_records removes archives", Retention{MaxRecords: 2500}, CompactOptions{}},
		{"max_bytes removes archives", Retention{MaxBytes: 3 * (64 << 10)}, CompactOptions{SealActive: true}},
		{"coalescing and age", Retention{MaxAge: time.Hour}, CompactOptions{SealActive: true, Coalesce: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(64<<10), WithRetention(Retention{}))
			for round := 0; round < 2; round++ {
				fillRandom(t, j, 1500)
				o := tc.o
				o.Retention = &tc.ret
				o.DryRun = true
				dry, err := j.Compact(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				o.DryRun = false
				real, err := j.Compact(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(reportShape(dry), reportShape(real)) {
					t.Fatalf("round %d:\ndry  %+v\nreal %+v", round, reportShape(dry), reportShape(real))
				}
				if len(real.Archives) == 0 {
					t.Fatalf("round %d compacted nothing", round)
				}
				if round == 1 && tc.ret.MaxAge == 0 && len(real.Removed) == 0 {
					t.Fatalf("retention removed nothing: the test proves nothing about removals")
				}
				t.Logf("round %d: %s", round, real.Message)
			}
		})
	}
}

// fillRandom writes n records whose metadata compresses poorly, so
// archives are big enough for byte retention to bite.
func fillRandom(t *testing.T, j *Journal, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		batch := make([]Change, 0, 100)
		for k := 0; k < 100 && i+k < n; k++ {
			c := heartbeat("ws-" + string(rune('a'+(i+k)%5)))
			c.Metadata = map[string]any{"pad": randomPad(120)}
			batch = append(batch, c)
		}
		if _, err := j.RecordBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}
