package archive

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/testproc"
)

// The crash tests re-execute the test binary as a child (the
// "archive-writer" role, internal/testproc) that writes an archive and
// stops at a chosen point, saying "stopped"; the parent kills it there
// with SIGKILL and checks what a restart would find.
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

func TestMain(m *testing.M) {
	testproc.Main(m, testproc.Roles{"archive-writer": archiveCrashChild})
}

func archiveCrashChild() int {
	dir := os.Getenv(archiveCrashDirEnv)
	stop := func() {
		fmt.Println("stopped")
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
		fmt.Fprintln(os.Stderr, "write archive:", err)
		return 3
	}
	fmt.Fprintln(os.Stderr, "the write finished; the parent should have killed it")
	return 3
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
			p := testproc.Start(t, testproc.Options{Role: "archive-writer", Env: []string{archiveCrashDirEnv + "=" + dir, archiveCrashStageEnv + "=" + tt.stage}})
			if _, ok := p.WaitFor(func(l string) bool { return l == "stopped" }); !ok {
				t.Fatalf("child exited before the crash point:\n%s", p.Stderr())
			}
			p.Kill()
			p.MustBeKilled("archive writer")

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
