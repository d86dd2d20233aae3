package coverage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTempFilesOfWritersAndEditorsAreIgnoredByName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ignored bool
	}{
		{"approval-42.json", false},
		{"queue.jsonl", false},
		{"tmp-item.json", false},
		{"item.tmp.json", true}, // *.tmp.* (documented): a real name like this is taken for a temp file
		{"approval-42.json.tmp", true},
		{"approval-42.json.tmp.8812", true},
		{"approval-42.json.tmp-8812", true},
		{"approval-42.json.temp", true},
		{"download.part", true},
		{".approval-42.json.swp", true},
		{"approval-42.json.swo", true},
		{"approval-42.json.swx", true},
		{"approval-42.json~", true},
		{"#approval-42.json#", true},
		{".#approval-42.json", true},
		{".~lock.approval-42.json#", true},
		{".approval-42.json.Xy7aB2", true},
		{"4913", true},
		{"", true},
	} {
		if got := Ignored(tc.name); got != tc.ignored {
			t.Errorf("Ignored(%q) = %v, want %v", tc.name, got, tc.ignored)
		}
	}
}

func TestAFingerprintIsTheContentsHashAndOnlyTheDocumentedFormsAreValid(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := os.WriteFile(p, []byte("test"), 0o644); err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprintFile(p, 1<<20)
	// The SHA-256 of "test", as sha256sum prints it.
	if err != nil || fp.Hash != "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" || fp.Size != 4 || fp.Hash != FingerprintOf([]byte("test")) {
		t.Fatalf("fingerprint %+v, %v", fp, err)
	}
	if fp, err := fingerprintFile(filepath.Join(dir, "gone"), 1<<20); err != nil || fp.Hash != Absent {
		t.Fatalf("a missing file: %+v, %v", fp, err)
	}
	if fp, err := fingerprintFile(dir, 1<<20); err != nil || fp.Hash != DirEntry {
		t.Fatalf("a directory: %+v, %v", fp, err)
	}
	if _, err := fingerprintFile(p, 3); err == nil || !strings.Contains(err.Error(), "over the 3 bytes") {
		t.Fatalf("a file over the bound was hashed: %v", err)
	}
	for s, ok := range map[string]bool{
		FingerprintOf(nil): true, Absent: true, DirEntry: true,
		"sha256:" + strings.Repeat("A", 64): false, "sha256:" + strings.Repeat("a", 63): false,
		strings.Repeat("a", 64): false, "md5:d41d8cd98f00b204e9800998ecf8427e": false, "": false,
	} {
		if ValidFingerprint(s) != ok {
			t.Errorf("ValidFingerprint(%q) = %v, want %v", s, !ok, ok)
		}
	}
}
