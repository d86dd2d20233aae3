package coverage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/types"
)

const goldenJournal = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

// testdata/coverage-v1.json is a version 1 coverage file as this build
// writes it: a format change must be deliberate (a new version and a new
// golden file), never an accident.
func TestTheVersion1CoverageFileReadsBackAndIsWrittenTheSame(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "coverage-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "state", StateFileName) // as in a data directory
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, golden, 0o644); err != nil {
		t.Fatal(err)
	}
	s, reason, err := readState(p, goldenJournal)
	if err != nil || reason != nil {
		t.Fatalf("the golden file is not read: %v %v", err, reason)
	}
	sr := s.Report.Surface("runtime_notifications")
	if sr == nil || sr.Matched != 2 || sr.Unjournaled != 1 || len(sr.Misses) != 1 || sr.LastGap == nil || sr.LastGap.Unattributable != 1 ||
		s.Files["runtime_notifications"][".tmp/runtime/notifications.json"] != FingerprintOf([]byte("{}")) {
		t.Fatalf("golden figures: %+v", sr)
	}
	if again := s.seal(); !bytes.Equal(again, golden) {
		t.Fatalf("written again, the file differs:\n%s\n%s", again, golden)
	}
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
		id     string
		want   string
		kind   error // what ReadPersisted's error matches (nil: no code of its own)
	}{
		{"another journal's file", func(b []byte) []byte { return b }, "0193ffff-0000-7000-8000-000000000000", "belongs to journal", types.ErrForeign},
		{"a flipped figure", func(b []byte) []byte { return bytes.Replace(b, []byte(`"matched":2`), []byte(`"matched":3`), 1) }, goldenJournal, "checksum", types.ErrIntegrity},
		{"an unknown version", func(b []byte) []byte { return bytes.Replace(b, []byte(`"version":1`), []byte(`"version":2`), 1) }, goldenJournal, "version 2", nil},
		{"a torn file", func(b []byte) []byte { return b[:len(b)/2] }, goldenJournal, "not a coverage file", types.ErrIntegrity},
		{"an unknown field", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`{"version"`), []byte(`{"extra":1,"version"`), 1)
		}, goldenJournal, "not a coverage file", types.ErrIntegrity},
	} {
		if err := os.WriteFile(p, tc.mutate(bytes.Clone(golden)), 0o644); err != nil {
			t.Fatal(err)
		}
		s, reason, err := readState(p, tc.id)
		if err != nil || s != nil || reason == nil || !strings.Contains(reason.text, tc.want) {
			t.Errorf("%s: believed %v, reason %v, err %v", tc.name, s != nil, reason, err)
		}
		// A reader (state-coverage, state-journal-status) gets an error
		// with the code of its kind: integrity or foreign_file.
		_, rerr := ReadPersisted(dir, tc.id)
		if rerr == nil || !strings.Contains(rerr.Error(), tc.want) {
			t.Errorf("%s: ReadPersisted says %v", tc.name, rerr)
		} else if tc.kind != nil && !errors.Is(rerr, tc.kind) {
			t.Errorf("%s: ReadPersisted's error %v does not match %v", tc.name, rerr, tc.kind)
		} else if tc.kind == nil && (errors.Is(rerr, types.ErrIntegrity) || errors.Is(rerr, types.ErrForeign)) {
			t.Errorf("%s: an unknown version is called damage or foreign: %v", tc.name, rerr)
		}
	}
}
