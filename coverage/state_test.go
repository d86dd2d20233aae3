package coverage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	p := filepath.Join(dir, StateFileName)
	if err := os.WriteFile(p, golden, 0o644); err != nil {
		t.Fatal(err)
	}
	s, reason, err := readState(p, goldenJournal)
	if err != nil || reason != "" {
		t.Fatalf("the golden file is not read: %v %s", err, reason)
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
	}{
		{"another journal's file", func(b []byte) []byte { return b }, "0193ffff-0000-7000-8000-000000000000", "belongs to journal"},
		{"a flipped figure", func(b []byte) []byte { return bytes.Replace(b, []byte(`"matched":2`), []byte(`"matched":3`), 1) }, goldenJournal, "checksum"},
		{"an unknown version", func(b []byte) []byte { return bytes.Replace(b, []byte(`"version":1`), []byte(`"version":2`), 1) }, goldenJournal, "version 2"},
		{"a torn file", func(b []byte) []byte { return b[:len(b)/2] }, goldenJournal, "not a coverage file"},
		{"an unknown field", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`{"version"`), []byte(`{"extra":1,"version"`), 1)
		}, goldenJournal, "not a coverage file"},
	} {
		if err := os.WriteFile(p, tc.mutate(bytes.Clone(golden)), 0o644); err != nil {
			t.Fatal(err)
		}
		s, reason, err := readState(p, tc.id)
		if err != nil || s != nil || !strings.Contains(reason, tc.want) {
			t.Errorf("%s: believed %v, reason %q, err %v", tc.name, s != nil, reason, err)
		}
	}
}
