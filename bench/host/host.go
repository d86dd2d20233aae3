// Package host holds what the benchmarks ask of the machine they run on:
// the process's CPU time, the load average (other work skews figures), the
// file system's name (an fsync on tmpfs is free, and the figures say so)
// and a settle between runs, so one run's writeback does not land on the
// next. One copy each, for every benchmark tool.
package host

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUTime is this process's user + system CPU time so far (0 when it
// cannot be read).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LoadAvg is the machine's 1-minute load average; ok is false when it
// cannot be read (no /proc/loadavg).
func LoadAvg() (avg float64, ok bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}
