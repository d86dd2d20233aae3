package coverage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FingerprintPrefix starts every content fingerprint: "sha256:" and the
// 64 lowercase hex digits of the SHA-256 of the file's bytes. A record
// that carries the fingerprint of the file it wrote in metadata key
// MetadataKey is matched to that change exactly (docs/record.md).
const FingerprintPrefix = "sha256:"

// Absent is the fingerprint of a path that does not exist: a record of a
// deletion may carry it.
const Absent = "absent"

// DirEntry is the fingerprint of a subdirectory inside a dir-backed
// surface: its appearance and removal are changes, its contents are not
// followed.
const DirEntry = "dir"

// MetadataKey is the record metadata key holding a fingerprint.
const MetadataKey = "fingerprint"

// Fingerprint identifies one version of a file: size and mtime say
// cheaply that it may have changed, the content hash decides. Two
// fingerprints with the same Hash are the same content, whatever their
// mtimes: a touch is not a change.
type Fingerprint struct {
	Size  int64     `json:"size"`
	Mtime time.Time `json:"mtime"`
	// Hash is FingerprintPrefix + hex SHA-256, Absent or DirEntry.
	Hash string `json:"hash"`
}

// FingerprintOf returns the fingerprint of the content b, in the format a
// writer puts in a record's metadata "fingerprint".
func FingerprintOf(b []byte) string {
	s := sha256.Sum256(b)
	return FingerprintPrefix + hex.EncodeToString(s[:])
}

// ValidFingerprint reports whether s is a fingerprint in the documented
// format: sha256:<64 lowercase hex>, absent, or dir.
func ValidFingerprint(s string) bool {
	if s == Absent || s == DirEntry {
		return true
	}
	h, ok := strings.CutPrefix(s, FingerprintPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// fingerprintFile reads path and returns its fingerprint; a missing path
// is Absent (no error). It reads at most maxBytes: a larger file is an
// error, never a partial hash.
func fingerprintFile(path string, maxBytes int64) (Fingerprint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Fingerprint{Hash: Absent}, nil
	}
	if err != nil {
		return Fingerprint{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Fingerprint{}, err
	}
	if fi.IsDir() {
		return Fingerprint{Mtime: fi.ModTime().UTC(), Hash: DirEntry}, nil
	}
	if !fi.Mode().IsRegular() {
		return Fingerprint{}, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > maxBytes {
		return Fingerprint{}, fmt.Errorf("%s is %d bytes, over the %d bytes the coverage watcher hashes", path, fi.Size(), maxBytes)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxBytes+1))
	if err != nil {
		return Fingerprint{}, fmt.Errorf("read %s: %w", path, err)
	}
	if n > maxBytes {
		return Fingerprint{}, fmt.Errorf("%s grew over the %d bytes the coverage watcher hashes", path, maxBytes)
	}
	return Fingerprint{Size: n, Mtime: fi.ModTime().UTC(), Hash: FingerprintPrefix + hex.EncodeToString(h.Sum(nil))}, nil
}

// Ignored reports whether a file name is a temporary file of a writer or
// an editor, never a change of a surface (docs/coverage.md lists the
// patterns):
//
//	*.tmp  *.tmp.*  *.tmp-*  *.temp  *.part  *.swp *.swo *.swx  *~
//	.#*  #*#  4913  .~lock.*#  and every dot file (.name.XXXXXX)
//
// The journal's own temp files (state/*.tmp) match *.tmp.
func Ignored(name string) bool {
	if name == "" || name == "4913" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	if strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#") {
		return true
	}
	for _, suf := range []string{".tmp", ".temp", ".part", ".swp", ".swo", ".swx"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return strings.Contains(name, ".tmp.") || strings.Contains(name, ".tmp-")
}

// listDir returns the entries of a dir-backed surface that count: files
// and subdirectories not Ignored, by name.
func listDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if Ignored(e.Name()) {
			continue
		}
		t := e.Type()
		if t.IsRegular() || t.IsDir() {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	return names, nil
}
