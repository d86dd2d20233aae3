package engine

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentruntime/statejournal/segment"
)

// writeJournal writes n records into a fresh journal in dir, closes it and
// returns the path of its (single) hot segment and each record's end
// offset in it.
func writeJournal(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c := heartbeat("ws-1")
		c.Metadata = map[string]any{"i": i}
		if _, err := j.Record(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Callers cut or damage the tail as a crash in the middle of a write
	// leaves it. Such a crash leaves no checkpoint that saw the cut
	// records durable, so the one Close wrote goes; a hot log that ends
	// before its checkpoint's durable records is a reported loss instead
	// (TestHotLogEndingBeforeTheCheckpointsDurableRecordsIsAReportedLoss).
	if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, hotDirName, segment.HotSegmentName(1))
	var ends []int64
	_, err = segment.Scan(segment.HotSegment{Path: seg, FirstSeq: 1}, segment.ScanOptions{}, func(e segment.HotEntry) bool {
		ends = append(ends, e.Off+int64(segment.FrameSize(e.HeaderSize()+len(e.Payload))))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return seg, ends
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTailCutAtRandomOffsetsIsRepairedAtOpen(t *testing.T) {
	base := t.TempDir()
	seg, ends := writeJournal(t, base, 40)
	size := ends[len(ends)-1]
	rel, _ := filepath.Rel(base, seg)
	offsets := []int64{0, 1, size - 1}
	for i := 0; i < 40; i++ {
		offsets = append(offsets, rand.Int64N(size))
	}
	for _, off := range offsets {
		dir := t.TempDir()
		copyDir(t, base, dir)
		if err := os.Truncate(filepath.Join(dir, rel), off); err != nil {
			t.Fatal(err)
		}
		whole := 0
		for _, e := range ends {
			if e <= off {
				whole++
			}
		}
		j, err := Open(dir)
		if err != nil {
			t.Fatalf("cut at %d: open: %v", off, err)
		}
		st := j.Status()
		if st.LastSequence != uint64(whole) {
			t.Fatalf("cut at %d: last sequence %d, want %d", off, st.LastSequence, whole)
		}
		torn := whole == 0 && off > 0 || whole > 0 && ends[whole-1] != off
		if torn {
			if st.LastRecovery == nil || len(st.LastRecovery.Cuts) != 1 || st.LastRecovery.Cuts[0].Cause != segment.CauseTornTail {
				t.Fatalf("cut at %d: recovery not reported: %+v", off, st.LastRecovery)
			}
			q, err := os.ReadFile(st.LastRecovery.Cuts[0].Quarantine)
			if err != nil || int64(len(q)) != st.LastRecovery.Cuts[0].Bytes {
				t.Fatalf("cut at %d: quarantine file: %v (%d bytes)", off, err, len(q))
			}
		}
		if _, err := j.Record(context.Background(), heartbeat("ws-2")); err != nil {
			t.Fatalf("cut at %d: record after recovery: %v", off, err)
		}
		j.Close()
		rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
		if err != nil || !rep.Clean || rep.Records != uint64(whole+1) {
			t.Fatalf("cut at %d: validate %v clean=%v records=%d problems=%+v", off, err, rep.Clean, rep.Records, rep.Problems)
		}
	}
}

func TestZeroFilledTailIsCutAndNamedAsSuch(t *testing.T) {
	dir := t.TempDir()
	seg, ends := writeJournal(t, dir, 10)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 4096))
	f.Close()
	j := openT(t, dir)
	st := j.Status()
	if st.LastSequence != 10 || st.LastRecovery == nil || st.LastRecovery.Cuts[0].Cause != segment.CauseZeroTail || st.LastRecovery.Cuts[0].Offset != ends[9] {
		t.Fatalf("zero tail: last=%d recovery=%+v", st.LastSequence, st.LastRecovery)
	}
}

func TestFlippedByteAnywhereIsReportedNeverSkipped(t *testing.T) {
	base := t.TempDir()
	seg, ends := writeJournal(t, base, 12)
	rel, _ := filepath.Rel(base, seg)
	size := ends[len(ends)-1]
	for off := int64(0); off < size; off += 1 + rand.Int64N(41) {
		dir := t.TempDir()
		copyDir(t, base, dir)
		p := filepath.Join(dir, rel)
		b, _ := os.ReadFile(p)
		b[off] ^= byte(1 << rand.IntN(8))
		os.WriteFile(p, b, 0o640)

		rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Clean {
			t.Fatalf("flip at %d: validate reports clean", off)
		}
		j, err := Open(dir)
		if err == nil {
			// Open may only succeed by cutting a torn-looking tail, and
			// then it must say so; it never drops records silently.
			st := j.Status()
			j.Close()
			if st.LastRecovery == nil || len(st.LastRecovery.Cuts) == 0 {
				t.Fatalf("flip at %d: open succeeded silently with %d records", off, st.LastSequence)
			}
			t.Fatalf("flip at %d: a flipped byte was cut as a crash artefact (%s), losing acknowledged records",
				off, st.LastRecovery.Cuts[0].Cause)
		}
		if !errors.Is(err, segment.ErrCorrupt) && !errors.Is(err, segment.ErrUnsupportedVersion) {
			t.Fatalf("flip at %d: open error %v does not match ErrCorrupt", off, err)
		}
	}
}
