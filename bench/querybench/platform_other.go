//go:build !linux

package querybench

import "errors"

// evictDir is Linux-only (posix_fadvise); elsewhere cold opens are not
// measured.
func evictDir(string) error { return errors.New("querybench: evicting the page cache needs Linux") }

// RSS is not measured outside Linux: it returns 0.
func RSS() int64 { return 0 }

// InMemoryFS reports false outside Linux: it cannot tell.
func InMemoryFS(string) bool { return false }
