package coverage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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

// hasher fingerprints files with one reused read buffer and digest. The
// run loop hashes every settled change (a thousand a second on a busy
// runtime); a fresh 32 KiB copy buffer for each would be garbage that the
// writers pay for in collections and mark assists. Not safe for
// concurrent use: the watcher's run loop owns it (under Watcher.mu).
type hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// file reads path and returns its fingerprint; a missing path is Absent
// (no error). It reads at most maxBytes: a larger file is an error, never
// a partial hash.
func (x *hasher) file(path string, maxBytes int64) (Fingerprint, error) {
	f, err := openForHash(path)
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
	if x.h == nil {
		x.h, x.buf = sha256.New(), make([]byte, 32<<10)
	}
	x.h.Reset()
	// Read to the end, not to the size Stat gave: a file still growing
	// is hashed as read, or refused past the bound.
	var n int64
	for {
		k, err := f.Read(x.buf)
		x.h.Write(x.buf[:k])
		if n += int64(k); n > maxBytes {
			return Fingerprint{}, fmt.Errorf("%s grew over the %d bytes the coverage watcher hashes", path, maxBytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Fingerprint{}, fmt.Errorf("read %s: %w", path, err)
		}
	}
	x.h.Sum(x.sum[:0])
	var hx [len(FingerprintPrefix) + 2*sha256.Size]byte
	copy(hx[:], FingerprintPrefix)
	hex.Encode(hx[len(FingerprintPrefix):], x.sum[:])
	return Fingerprint{Size: n, Mtime: fi.ModTime().UTC(), Hash: string(hx[:])}, nil
}

// openForHash opens path to read it without touching its access time
// where the system allows (oNoatime): the watcher observes the disk, it
// does not add writes to it.
func openForHash(path string) (*os.File, error) {
	if oNoatime != 0 {
		f, err := os.OpenFile(path, os.O_RDONLY|oNoatime, 0)
		if !errors.Is(err, fs.ErrPermission) {
			return f, err
		}
		// Not the file's owner: O_NOATIME is refused, a plain read is not.
	}
	return os.Open(path)
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
