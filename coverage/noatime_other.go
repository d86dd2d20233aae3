//go:build !linux

package coverage

// oNoatime: only Linux has O_NOATIME (noatime_linux.go).
const oNoatime = 0
