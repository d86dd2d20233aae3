package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// Fault tests through the fsx seam: an in-process *fsx.Faulty fails one
// call of the journal's own file operations (no real limit fails a rename
// with EIO, or the fsync of one archive, on demand). The real-OS campaigns
// (fault_test.go: a full tmpfs, RLIMIT_FSIZE, a read-only directory) stay
// beside them.

// dirFiles returns the names and sizes of the files directly in dir.
func dirFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// writableAfter checks that j still takes a write after a fault.
func writableAfter(t *testing.T, j *Journal, what string) {
	t.Helper()
	if _, err := j.Record(context.Background(), heartbeat("ws-after-fault")); err != nil {
		t.Fatalf("after %s the journal refuses writes: %v", what, err)
	}
	if st := j.Status(); st.Failed != "" {
		t.Fatalf("after %s the journal reports itself failed: %s", what, st.Failed)
	}
}

func TestNoSpaceForTheCheckpointLeavesTheJournalWritableAndIsReported(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(64<<10))
	fill(t, j, 1500)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, stateDirName, checkpointFileName)
	old, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatalf("a clean close wrote no checkpoint: %v", err)
	}

	// The disk fills in the middle of the checkpoint's write.
	fault := fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpWrite, Path: checkpointFileName + fsx.TempSuffix, Short: 100, Err: syscall.ENOSPC})
	j, err = Open(dir, WithSegmentSize(64<<10), WithRetention(Retention{}), withFS(fault))
	if err != nil {
		t.Fatal(err)
	}
	fill(t, j, 1500)
	if _, err := j.Compact(context.Background(), CompactOptions{}); err != nil {
		t.Fatalf("compaction whose checkpoint failed: %v (the checkpoint is not the compaction's result)", err)
	}
	if fault.Fired() == 0 {
		t.Fatal("the compaction wrote no checkpoint: the fault was never reached")
	}
	f := j.Status().CheckpointFailure
	if f == nil || !strings.Contains(f.Error, "no space left on device") || f.Stage != "checkpoint" {
		t.Fatalf("Status().CheckpointFailure = %+v, want the checkpoint stage naming ENOSPC", f)
	}
	writableAfter(t, j, "a checkpoint that found no space")
	if got, _ := os.ReadFile(ckpt); !bytes.Equal(got, old) {
		t.Fatal("the failed write changed state/index.ckpt: a checkpoint is replaced whole or not at all")
	}
	if _, err := os.Stat(ckpt + fsx.TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed write left %s%s behind: %v", checkpointFileName, fsx.TempSuffix, err)
	}
	want := all(t, j, Query{})
	j.Close() // its checkpoint fails too: the fault is still there

	// The next open does not believe the old checkpoint (the files moved
	// on) and rebuilds the same index from the log and the archives.
	j2 := openT(t, dir, WithSegmentSize(64<<10))
	if j2.fromCheckpoint {
		t.Fatal("the open used a checkpoint older than the compaction")
	}
	if got := all(t, j2, Query{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the rebuild: %d records, want the %d the journal held", len(got), len(want))
	}
}

func TestAnEIOOnTheHorizonRenameStopsRetentionWithoutDeletingAnything(t *testing.T) {
	dir := t.TempDir()
	fault := fsx.NewFaulty(fsx.OS)
	j := openT(t, dir, WithSegmentSize(64<<10), WithRetention(Retention{}), withFS(fault))
	fill(t, j, 3000)
	ctx := context.Background()
	if rep, err := j.Compact(ctx, CompactOptions{}); err != nil || len(rep.Archives) < 2 {
		t.Fatalf("compaction without retention: %d archives, %v", len(rep.Archives), err)
	}
	archives := dirFiles(t, filepath.Join(dir, archiveDirName))
	horizonFile := filepath.Join(dir, stateDirName, horizonFileName)
	oldHorizon, _ := os.ReadFile(horizonFile)
	before := all(t, j, Query{})
	horizon := j.Status().Horizon

	fault.Add(fsx.Fault{Op: fsx.OpRename, Path: filepath.Join(stateDirName, horizonFileName), Err: syscall.EIO})
	_, err := j.Compact(ctx, CompactOptions{Retention: &Retention{MaxRecords: 500}})
	if !errors.Is(err, syscall.EIO) || fault.Fired() != 1 {
		t.Fatalf("retention whose horizon rename failed: %v (fault fired %d times), want an error matching EIO", err, fault.Fired())
	}
	if got := dirFiles(t, filepath.Join(dir, archiveDirName)); !reflect.DeepEqual(got, archives) {
		t.Fatalf("archives after the failed horizon write: %v, want them all kept: %v", got, archives)
	}
	if got, _ := os.ReadFile(horizonFile); !bytes.Equal(got, oldHorizon) {
		t.Fatal("state/horizon.json changed though its rename failed")
	}
	if _, err := os.Stat(horizonFile + fsx.TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed write left horizon.json.tmp behind: %v", err)
	}
	if st := j.Status(); st.Horizon != horizon || st.CompactionFailure == nil {
		t.Fatalf("status after the failed retention: horizon %d (was %d), failure %+v; want the horizon kept and the failure reported", st.Horizon, horizon, st.CompactionFailure)
	}
	if got := all(t, j, Query{}); !reflect.DeepEqual(got, before) {
		t.Fatalf("queries after the failed retention: %d records, want the %d kept", len(got), len(before))
	}
	writableAfter(t, j, "a failed horizon rename")

	// Without the fault the same retention runs.
	fault.Reset()
	rep, err := j.Compact(ctx, CompactOptions{Retention: &Retention{MaxRecords: 500}})
	if err != nil || len(rep.Removed) == 0 || rep.HorizonAfter <= horizon {
		t.Fatalf("retention after the fault was removed: removed %d, horizon %d -> %d, %v", len(rep.Removed), horizon, rep.HorizonAfter, err)
	}
}

func TestAFailedArchiveFsyncNeverCutsTheHotLog(t *testing.T) {
	dir := t.TempDir()
	fault := fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpSync, Path: ".sjar" + fsx.TempSuffix, Err: syscall.EIO})
	j := openT(t, dir, WithSegmentSize(64<<10), WithRetention(Retention{}), withFS(fault))
	fill(t, j, 3000)
	hot := dirFiles(t, filepath.Join(dir, hotDirName))
	before := all(t, j, Query{})
	ctx := context.Background()

	rep, err := j.Compact(ctx, CompactOptions{})
	if !errors.Is(err, syscall.EIO) || fault.Fired() != 1 {
		t.Fatalf("compaction whose archive fsync failed: %v (fault fired %d times), want an error matching EIO", err, fault.Fired())
	}
	if len(rep.Archives) != 0 {
		t.Fatalf("the report lists archives %+v that were never made durable", rep.Archives)
	}
	if got := dirFiles(t, filepath.Join(dir, archiveDirName)); len(got) != 0 {
		t.Fatalf("archive/ holds %v after the failed fsync, want nothing (no archive, no temp file)", got)
	}
	if got := dirFiles(t, filepath.Join(dir, hotDirName)); !reflect.DeepEqual(got, hot) {
		t.Fatalf("the hot log changed after the failed archive fsync: %v, was %v", got, hot)
	}
	if st := j.Status(); st.CompactionFailure == nil || !strings.Contains(st.CompactionFailure.Error, "input/output error") {
		t.Fatalf("Status().CompactionFailure = %+v, want the EIO", st.CompactionFailure)
	}
	if got := all(t, j, Query{}); !reflect.DeepEqual(got, before) {
		t.Fatalf("queries after the failed compaction: %d records, want the %d kept", len(got), len(before))
	}
	writableAfter(t, j, "a failed archive fsync")

	// The next compaction, with the disk healthy again, archives.
	fault.Reset()
	if rep, err := j.Compact(ctx, CompactOptions{}); err != nil || len(rep.Archives) == 0 {
		t.Fatalf("compaction after the fault: %d archives, %v", len(rep.Archives), err)
	}
	if got := all(t, j, Query{}); !reflect.DeepEqual(got[:len(before)], before) {
		t.Fatal("records changed across the compaction after the fault")
	}
}

func TestNoSpaceForTheQuarantineCopyFailsTheOpenAndCutsNothing(t *testing.T) {
	dir := t.TempDir()
	seg, ends := writeJournal(t, dir, 20)
	// A crash in the middle of the last record's write.
	if err := os.Truncate(seg, ends[len(ends)-1]-3); err != nil {
		t.Fatal(err)
	}
	torn, _ := os.ReadFile(seg)

	fault := fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpWrite, Path: quarantineDirName + "/", Err: syscall.ENOSPC})
	if j, err := Open(dir, withFS(fault)); !errors.Is(err, syscall.ENOSPC) {
		if j != nil {
			j.Close()
		}
		t.Fatalf("open whose quarantine copy found no space: %v, want an error matching ENOSPC", err)
	}
	if got, _ := os.ReadFile(seg); !bytes.Equal(got, torn) {
		t.Fatalf("the segment was cut (%d -> %d bytes) though its cut bytes were never saved", len(torn), len(got))
	}
	if got := dirFiles(t, filepath.Join(dir, quarantineDirName)); len(got) != 0 {
		t.Fatalf("quarantine/ holds %v after the failed copy, want nothing", got)
	}

	// With room again the open cuts the torn record and keeps its bytes.
	j := openT(t, dir)
	if st := j.Status(); st.LastSequence != 19 {
		t.Fatalf("after the recovery the journal ends at %d, want 19", st.LastSequence)
	}
	if got := dirFiles(t, filepath.Join(dir, quarantineDirName)); len(got) != 1 {
		t.Fatalf("quarantine/ holds %v, want the one cut tail", got)
	}
}
