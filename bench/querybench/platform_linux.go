//go:build linux

package querybench

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// evictDir drops the clean page-cache pages of every file under dir
// (posix_fadvise DONTNEED), so the next read comes from the disk. It
// touches only these files, never the machine's whole cache.
func evictDir(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
}

// RSS returns the process's resident set size in bytes (0 when unknown).
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// InMemoryFS reports whether dir is on tmpfs or ramfs, where a "cold"
// open reads memory all the same.
func InMemoryFS(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return uint64(st.Type) == unix.TMPFS_MAGIC || uint64(st.Type) == unix.RAMFS_MAGIC
}
