package workload

import (
	"context"
	"fmt"
	"strconv"
)

// SyncMode says when a Target makes a record durable.
type SyncMode int

const (
	// SyncAlways makes every record durable before its call returns.
	SyncAlways SyncMode = iota
	// SyncInterval writes records at once and fsyncs on a timer; a call
	// returns before its record is durable.
	SyncInterval
	// SyncNone never fsyncs on the write path.
	SyncNone
)

// String returns the policy name as scenarios spell it: always, interval, none.
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return "SyncMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseSyncMode is the inverse of SyncMode.String.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("sync mode %q: want always, interval or none", s)
}

// Record is the benchmark's heartbeat: the fields a runtime work-session
// heartbeat carries. Targets turn it into their own record (the engine into a
// Change, the baselines into an equivalent runtime-state-change-v1 JSON line).
type Record struct {
	Source        string
	Surface       string
	ChangeType    string
	AggregateType string
	AggregateID   string
	Metadata      map[string]any
}

// Heartbeat returns writer w's heartbeat record. Each writer gets its own
// aggregate id and metadata map; Targets must not keep or mutate the map
// after their call returns.
func Heartbeat(w int) Record {
	return Record{
		Source:        "runtime.work_session",
		Surface:       "runtime_work_session",
		ChangeType:    "heartbeat",
		AggregateType: "work_session",
		AggregateID:   "ws-" + strconv.Itoa(w),
		Metadata: map[string]any{
			"pid":   10000 + w,
			"state": "running",
			"host":  "bench-host-01",
		},
	}
}

// Target is one system under measurement. Record and RecordBatch are called
// concurrently by many writers; under SyncAlways each must return only after
// its records are durable. Fsyncs counts the fsyncs the Target issued on its
// log since it was opened. Dir is the directory holding everything the Target
// wrote, measured for bytes on disk after Close.
type Target interface {
	Name() string
	Record(ctx context.Context, rec Record) error
	RecordBatch(ctx context.Context, recs []Record) error
	Fsyncs() uint64
	Close() error
	Dir() string
}
