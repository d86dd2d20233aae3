package engine

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/redact"
)

// SyncPolicy says when the hot log is fsynced.
type SyncPolicy string

const (
	// SyncAlways fsyncs every batch before any of its records is
	// acknowledged: an acknowledged record survives power loss. Default.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs at most every SyncInterval. Records acknowledged
	// in between are in the OS page cache only and can be lost on power
	// loss (not on a process crash). Records with severity critical or
	// with mutates_authority_state are still fsynced before they are
	// acknowledged.
	SyncInterval SyncPolicy = "interval"
	// SyncNone never fsyncs on the write path (only at Close). For tests
	// and throwaway journals.
	SyncNone SyncPolicy = "none"
)

// ParseSyncPolicy parses "always", "interval" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch SyncPolicy(s) {
	case SyncAlways, SyncInterval, SyncNone:
		return SyncPolicy(s), nil
	}
	return "", fmt.Errorf("sync policy %q is not one of: always, interval, none", s)
}

// Defaults.
const (
	DefaultSegmentSize  = 4 << 20
	DefaultSyncInterval = 100 * time.Millisecond
	// DefaultLockCheckInterval is how often an idle writer re-checks that
	// its LOCK file is still the file it locked (a writing one checks
	// before every batch and before acknowledging it).
	DefaultLockCheckInterval = 250 * time.Millisecond
	DefaultDedupeWindow      = 24 * time.Hour
	DefaultDedupeMax         = 1 << 20
	DefaultAsyncQueue        = 4096
	DefaultMaxBatchBytes     = 4 << 20
	DefaultMaxBatchCount     = 8192
	// DefaultDir is the data directory used when none is given.
	DefaultDir = ".tmp/state-journal"
)

type options struct {
	lockCheck     time.Duration // how often an idle writer checks its lock file
	readOnly      bool
	sync          SyncPolicy
	syncInterval  time.Duration
	segmentSize   int
	registry      *registry.Registry
	root          string
	reg           prometheus.Registerer
	logger        *slog.Logger
	limits        redact.Limits
	dedupeWindow  time.Duration
	dedupeMax     int
	asyncQueue    int
	maxBatchBytes int
	maxBatchCount int
	holder        string
	now           func() time.Time
	fs            fsx.FS // the journal's own files; fsx.OS unless a test injects faults
	retention     Retention
	auto          AutoCompact
	floor         *RetentionFloor // retention keeps what it has not taken
}

// AutoCompact configures compaction in the background (the server turns
// it on). A compaction runs when a hot segment is sealed, and every
// Interval to apply age-based retention.
type AutoCompact struct {
	Enabled  bool
	Interval time.Duration // default 1 minute
	Coalesce time.Duration // heartbeat coalescing window, 0 for none
}

// Option configures Open.
type Option func(*options)

// ReadOnly opens the journal for reading only: no lock is taken, no file
// is created, changed or removed, and a torn or in-progress tail is read
// up to its last whole entry. Writing calls return ErrReadOnly.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithSync sets the sync policy (default SyncAlways).
func WithSync(p SyncPolicy) Option { return func(o *options) { o.sync = p } }

// WithSyncInterval sets the fsync period under SyncInterval.
func WithSyncInterval(d time.Duration) Option { return func(o *options) { o.syncInterval = d } }

// WithSegmentSize sets the hot segment size in bytes. tidwall/wal keeps
// the whole tail segment in memory, so this bounds the writer's memory.
func WithSegmentSize(n int) Option { return func(o *options) { o.segmentSize = n } }

// WithRegistry sets the surface registry (default: the embedded catalog).
func WithRegistry(r *registry.Registry) Option { return func(o *options) { o.registry = r } }

// WithRoot sets the runtime root that relative storage paths resolve
// against (default: the working directory).
func WithRoot(dir string) Option { return func(o *options) { o.root = dir } }

// WithRegisterer registers the journal's metrics on r (unregistered at
// Close). Without it no metrics are registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithLogger sets the structured logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetadataLimits sets the metadata bounds.
func WithMetadataLimits(l redact.Limits) Option { return func(o *options) { o.limits = l } }

// WithDedupeWindow sets how long an event_id is remembered for idempotent
// retries (default 24h, never longer than the records are retained), and
// the most ids remembered.
func WithDedupeWindow(d time.Duration, maxIDs int) Option {
	return func(o *options) { o.dedupeWindow, o.dedupeMax = d, maxIDs }
}

// WithAsyncQueue sets the RecordAsync queue length.
func WithAsyncQueue(n int) Option { return func(o *options) { o.asyncQueue = n } }

// WithBatchLimits bounds one group commit.
func WithBatchLimits(maxBytes, maxCount int) Option {
	return func(o *options) { o.maxBatchBytes, o.maxBatchCount = maxBytes, maxCount }
}

// WithHolder names this process in the lock file (e.g. "journalctl serve
// on 127.0.0.1:7766").
func WithHolder(desc string) Option { return func(o *options) { o.holder = desc } }

// WithRetention sets the retention limits compaction applies (default
// DefaultRetention).
func WithRetention(r Retention) Option { return func(o *options) { o.retention = r } }

// WithClock sets the journal's clock (default time.Now): the commit time
// of every record, and the "now" of retention by age and of the dedupe
// window. Tests and simulations use it; a production journal keeps the
// host's clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithAutoCompact turns on background compaction.
func WithAutoCompact(a AutoCompact) Option { return func(o *options) { o.auto = a } }

// withFS makes the journal's own file operations (checkpoint, horizon,
// identity, archives, quarantine, recovery notes, the hot directory's
// creates, removes and directory fsyncs, and the syncer's fsync of the
// tail segment) go through fsys. Only tests use it, with an *fsx.Faulty,
// to fail a call no real limit fails on demand; tidwall/wal's own writes
// do not pass through it.
func withFS(fsys fsx.FS) Option {
	return func(o *options) { o.fs = fsys }
}

func buildOptions(opts []Option) (options, error) {
	o := options{
		lockCheck:     DefaultLockCheckInterval,
		sync:          SyncAlways,
		syncInterval:  DefaultSyncInterval,
		segmentSize:   DefaultSegmentSize,
		dedupeWindow:  DefaultDedupeWindow,
		dedupeMax:     DefaultDedupeMax,
		asyncQueue:    DefaultAsyncQueue,
		maxBatchBytes: DefaultMaxBatchBytes,
		maxBatchCount: DefaultMaxBatchCount,
		limits:        redact.DefaultLimits(),
		now:           time.Now,
		retention:     DefaultRetention(),
	}
	for _, f := range opts {
		f(&o)
	}
	o.fs = fsx.Or(o.fs)
	if _, err := ParseSyncPolicy(string(o.sync)); err != nil {
		return o, err
	}
	if o.segmentSize < 64<<10 {
		return o, fmt.Errorf("segment size %d is below the minimum of 64 KiB", o.segmentSize)
	}
	if o.syncInterval <= 0 {
		return o, fmt.Errorf("sync interval %s must be positive", o.syncInterval)
	}
	if o.auto.Interval <= 0 {
		o.auto.Interval = time.Minute
	}
	if err := checkRetention(o.retention, o.segmentSize); err != nil {
		return o, err
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.registry == nil {
		o.registry = registry.Default()
	}
	if o.root != "" {
		o.registry = o.registry.WithRoot(o.root)
	} else {
		o.registry = o.registry.WithRoot(".")
	}
	return o, nil
}
