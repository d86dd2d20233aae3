package archive

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// The crash tests re-execute the test binary as a child that writes an
// archive and stops at a chosen point; the parent kills it there with
// SIGKILL and checks what a restart would find.
const (
	archiveCrashDirEnv   = "SEGMENT_ARCHIVE_CRASH_DIR"
	archiveCrashStageEnv = "SEGMENT_ARCHIVE_CRASH_STAGE"
)

// archiveCrashRecords are 1000 records of 1000 random bytes each: they do
// not compress, so the child's write buffer reaches the file well before
// the mid-write crash point.
func archiveCrashRecords() []Record {
	rng := rand.New(rand.NewPCG(9, 9))
	recs := make([]Record, 1000)
	for i := range recs {
		p := make([]byte, 1000)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		recs[i] = Record{Seq: uint64(i + 1), Time: int64(i), Label: "l", Payload: p}
	}
	return recs
}

func TestArchiveCrashChild(t *testing.T) {
	dir := os.Getenv(archiveCrashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestArchiveCrashLeavesNoPartialArchive")
	}
	stop := func() {
		os.WriteFile(filepath.Join(dir, "stopped"), nil, 0o644)
		select {} // wait here for SIGKILL
	}
	recs := archiveCrashRecords()
	i := 0
	next := func() (Record, bool, error) {
		if i == len(recs) {
			return Record{}, false, nil
		}
		if i == 600 && os.Getenv(archiveCrashStageEnv) == "mid-write" {
			stop() // blocks and buffers up to here are on disk, no trailer
		}
		i++
		return recs[i-1], true, nil
	}
	if os.Getenv(archiveCrashStageEnv) == "before-rename" {
		archiveBeforeCommit = func(string) { stop() }
	}
	if _, err := Write(filepath.Join(dir, FileName(1, 1000)), next, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Fatal("the write finished; the parent should have killed it")
}

func TestArchiveCrashLeavesNoPartialArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	tests := []struct {
		name, stage string
	}{
		{"a crash in the middle of writing blocks leaves only an unreadable temp file", "mid-write"},
		{"a crash after the temp file is complete but before the rename leaves only the temp file", "before-rename"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestArchiveCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), archiveCrashDirEnv+"="+dir, archiveCrashStageEnv+"="+tt.stage)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// Wait for the child to reach the crash point; the deadline only
			// keeps a broken child from hanging the suite.
			deadline := time.Now().Add(2 * time.Minute)
			for {
				if _, err := os.Stat(filepath.Join(dir, "stopped")); err == nil {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("child exited before the crash point: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("child never reached the crash point")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cmd.Process.Kill()
			<-done
			os.Remove(filepath.Join(dir, "stopped"))

			final := filepath.Join(dir, FileName(1, 1000))
			if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("an archive exists under its final name after the crash: %v", err)
			}
			tmp := final + fsx.TempSuffix
			fi, err := os.Stat(tmp)
			if err != nil || fi.Size() == 0 {
				t.Fatalf("want a non-empty temp file, got %v, %v", fi, err)
			}
			// A directory listing never takes the temp file for an archive.
			if _, _, ok := ParseFileName(tmp); ok {
				t.Fatalf("ParseFileName accepted %s", tmp)
			}
			if tt.stage == "mid-write" {
				if a, err := Open(tmp); err == nil {
					a.Close()
					t.Fatal("a half-written temp file opened as an archive")
				} else {
					archiveAsCorruption(t, err)
				}
			}
			// Open sweeps it, and the write can simply be done again.
			removed, err := fsx.SweepTemp(dir)
			if err != nil || len(removed) != 1 {
				t.Fatalf("SweepTemp removed %v: %v", removed, err)
			}
			recs := archiveCrashRecords()
			if _, err := Write(final, archiveIter(recs), WriterOptions{}); err != nil {
				t.Fatal(err)
			}
			a := archiveOpen(t, final)
			if errs := a.Verify(); errs != nil || a.Footer().Records != 1000 {
				t.Fatalf("rewritten archive: %v, %+v", errs, a.Footer())
			}
		})
	}
}
