package coverage

import (
	"os"
	"path/filepath"
	"runtime"
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
	var x hasher
	fp, err := x.file(p, 1<<20)
	// The SHA-256 of "test", as sha256sum prints it.
	if err != nil || fp.Hash != "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" || fp.Size != 4 || fp.Hash != FingerprintOf([]byte("test")) {
		t.Fatalf("fingerprint %+v, %v", fp, err)
	}
	if fp, err := x.file(filepath.Join(dir, "gone"), 1<<20); err != nil || fp.Hash != Absent {
		t.Fatalf("a missing file: %+v, %v", fp, err)
	}
	if fp, err := x.file(dir, 1<<20); err != nil || fp.Hash != DirEntry {
		t.Fatalf("a directory: %+v, %v", fp, err)
	}
	if _, err := x.file(p, 3); err == nil || !strings.Contains(err.Error(), "over the 3 bytes") {
		t.Fatalf("a file over the bound was hashed: %v", err)
	}
	// The reused digest and buffer start afresh for each file: a larger
	// file, then the first again, hash as their contents alone.
	big := filepath.Join(dir, "big.json")
	bigContent := []byte(strings.Repeat("0123456789abcdef", 5000)) // over one read buffer
	if err := os.WriteFile(big, bigContent, 0o644); err != nil {
		t.Fatal(err)
	}
	if fp, err := x.file(big, 1<<20); err != nil || fp.Hash != FingerprintOf(bigContent) || fp.Size != int64(len(bigContent)) {
		t.Fatalf("a file over one read buffer: %+v, %v", fp, err)
	}
	if fp, err := x.file(p, 1<<20); err != nil || fp.Hash != FingerprintOf([]byte("test")) {
		t.Fatalf("the first file again after a larger one: %+v, %v", fp, err)
	}
	// Hashing reuses its buffer and digest: a thousand settled changes a
	// second must not make 32 KiB of garbage each.
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 100 {
		x.file(p, 1<<20)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / 100; per > 2<<10 {
		t.Errorf("fingerprinting a 4-byte file allocates %d bytes, want under 2 KiB (the open file, its name and the hex string)", per)
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
