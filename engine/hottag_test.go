package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// twinJournals builds two journals the same way (same code, same records,
// same segment size): their hot segments have the same names, sizes and
// sequences, and differ only in what names their journal (and in the
// event ids and times the journal generated). It returns both
// directories and the hot segment names, oldest first.
const twinRecords = 800

func twinJournals(t *testing.T) (a, b string, names []string) {
	t.Helper()
	a, b = t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		j := openT(t, dir, WithSegmentSize(64<<10))
		fill(t, j, twinRecords)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	segsA, _, err := segment.ListHotSegments(filepath.Join(a, hotDirName))
	if err != nil {
		t.Fatal(err)
	}
	segsB, _, err := segment.ListHotSegments(filepath.Join(b, hotDirName))
	if err != nil {
		t.Fatal(err)
	}
	if len(segsA) < 3 || len(segsA) != len(segsB) {
		t.Fatalf("twin journals: %d and %d hot segments, want the same number, at least 3", len(segsA), len(segsB))
	}
	for i := range segsA {
		if filepath.Base(segsA[i].Path) != filepath.Base(segsB[i].Path) || segsA[i].Size != segsB[i].Size {
			t.Fatalf("twin journals differ in segment %d: %s (%d bytes) and %s (%d bytes)", i,
				segsA[i].Path, segsA[i].Size, segsB[i].Path, segsB[i].Size)
		}
		names = append(names, filepath.Base(segsA[i].Path))
	}
	return a, b, names
}

// replaceHot writes journal b's hot segment name over journal a's, in
// place (the same inode, as a copy over an open file would).
func replaceHot(t *testing.T, a, b, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b, hotDirName, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, hotDirName, name), data, 0o640); err != nil {
		t.Fatal(err)
	}
	return data
}

// wantForeignHot checks that err refuses segment name as another
// journal's, naming the file, an offset and a sequence.
func wantForeignHot(t *testing.T, what string, err error, name string) {
	t.Helper()
	var ce *segment.CorruptionError
	if err == nil || !errors.Is(err, types.ErrForeign) || !errors.As(err, &ce) || ce.Cause != segment.CauseForeign ||
		filepath.Base(ce.Segment) != name || ce.Sequence == 0 || !strings.Contains(err.Error(), "another journal") {
		t.Fatalf("%s: %v, want ErrForeign naming hot segment %s as another journal's", what, err, name)
	}
}

func TestAHotSegmentOfAnotherJournalIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		pick func(names []string) string
	}{
		{"sealed", func(n []string) string { return n[1] }},
		{"first-sealed", func(n []string) string { return n[0] }},
		{"active", func(n []string) string { return n[len(n)-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, names := twinJournals(t)
			name := tc.pick(names)
			foreign := replaceHot(t, a, b, name)

			_, err := Open(a, ReadOnly())
			wantForeignHot(t, "read-only open", err, name)
			_, err = Open(a)
			wantForeignHot(t, "writer open", err, name)

			rep, err := ValidateDir(context.Background(), a, ValidateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				if p.Kind == ProblemForeign && p.Segment == name && p.Severity == SeverityError && p.Sequence > 0 &&
					strings.Contains(p.Message, "another journal") {
					found = true
				}
			}
			if found == rep.Clean || !found {
				t.Fatalf("validate: clean %v, problems %+v; want a foreign problem naming %s", rep.Clean, rep.Problems, name)
			}
			// Nothing cut it: the file is still journal B's, byte for byte.
			if got, _ := os.ReadFile(filepath.Join(a, hotDirName, name)); !bytes.Equal(got, foreign) {
				t.Fatalf("%s was changed (%d bytes, was %d): a foreign segment must be refused, not repaired", name, len(got), len(foreign))
			}
		})
	}
}

// A segment replaced under a running writer is refused by the readers
// that believe hot entries: queries and compaction.
func TestQueriesAndCompactionRefuseAHotSegmentReplacedWhileOpen(t *testing.T) {
	a, b, names := twinJournals(t)
	j := openT(t, a, WithSegmentSize(64<<10))
	if n := len(all(t, j, Query{})); n != twinRecords {
		t.Fatalf("clean journal: %d records, want %d", n, twinRecords)
	}
	name := names[0]
	replaceHot(t, a, b, name)
	_, err := j.Query(context.Background(), Query{Limit: -1})
	wantForeignHot(t, "query", err, name)
	_, err = j.Compact(context.Background(), CompactOptions{})
	wantForeignHot(t, "compact", err, name)
	if as, _ := os.ReadDir(filepath.Join(a, archiveDirName)); len(as) > 0 {
		t.Fatalf("compaction archived another journal's records: %d archive files", len(as))
	}
}

// Version 1 entries name no journal: a new journal (which never wrote
// any) refuses them, and an upgraded step-4 directory believes them only
// below the sequence its hot log had reached at the upgrade.
func TestVersion1HotEntriesAreBelievedOnlyWhereTheUpgradeRecordsThem(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "step4-dir"), dir)
	j := openT(t, dir)
	fill(t, j, 10)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	id, err := readIdentity(dir)
	if err != nil || id == nil || id.Upgrade == nil || id.Upgrade.LegacyHotNext != 41 {
		t.Fatalf("upgraded identity %+v, %v: want an upgrade record with legacy_hot_next 41", id, err)
	}
	j = openT(t, dir, ReadOnly())
	if n := len(all(t, j, Query{})); n != 50 {
		t.Fatalf("upgraded step-4 directory: %d records, want 50", n)
	}
	j.Close()
	if rep, err := ValidateDir(context.Background(), dir, ValidateOptions{}); err != nil || !rep.Clean {
		t.Fatalf("validate of the upgraded directory: %v %+v", err, rep.Problems)
	}

	// A new journal's segment rewritten as version 1 entries (what an
	// earlier release would have written): same sequences, flags and
	// payloads, no journal tag.
	fresh := t.TempDir()
	j = openT(t, fresh)
	fill(t, j, 40)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _, err := segment.ListHotSegments(filepath.Join(fresh, hotDirName))
	if err != nil || len(segs) != 1 {
		t.Fatalf("new journal: %v %v", segs, err)
	}
	var v1 []byte
	if _, err := segment.Scan(segs[0], segment.ScanOptions{}, func(he segment.HotEntry) bool {
		v1 = segment.AppendWALEntry(v1, segment.AppendEnvelopeV1(nil, he.Seq, he.Flags, he.Payload))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(segs[0].Path)
	if err := os.WriteFile(segs[0].Path, v1, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = Open(fresh, ReadOnly())
	wantForeignHot(t, "read-only open of a new journal holding version 1 entries", err, name)
	if !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("the refusal does not say the entry is version 1: %v", err)
	}
	_, err = Open(fresh)
	wantForeignHot(t, "writer open of a new journal holding version 1 entries", err, name)
}
