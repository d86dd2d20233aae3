package baseline

import (
	"errors"
	"time"

	"github.com/agentruntime/statejournal/bench/workload"
)

// Options configure a baseline.
type Options struct {
	// Sync is the durability policy; the zero value is SyncAlways.
	Sync workload.SyncMode
	// Interval is the background fsync period under SyncInterval; zero means
	// DefaultInterval.
	Interval time.Duration
}

// DefaultInterval is the background fsync period under SyncInterval when
// Options.Interval is zero.
const DefaultInterval = 100 * time.Millisecond

// ErrClosed is returned by Record and RecordBatch after Close.
var ErrClosed = errors.New("baseline: closed")

// dataFileName is the plain-file baselines' single data file inside their
// directory.
const dataFileName = "journal.ndjson"

func (o Options) interval() time.Duration {
	if o.Interval <= 0 {
		return DefaultInterval
	}
	return o.Interval
}
