package coverage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config; docs/coverage.md gives the reasoning.
const (
	// DefaultWindow: a record up to 10 s before or after a write matches
	// it. A writer records right before or right after its write; 10 s
	// absorbs a busy group commit and a slow disk without letting a
	// heartbeat every minute cover unrelated writes.
	DefaultWindow = 10 * time.Second
	// DefaultSettleIdle: a path quiet for 100 ms has settled.
	DefaultSettleIdle = 100 * time.Millisecond
	// DefaultSettleCap: a path that never goes quiet is fingerprinted at
	// least once a second, so a file rewritten continuously is still seen.
	DefaultSettleCap = time.Second
	// DefaultMinMatched: 300 matched changes with no miss bound the miss
	// rate below about 1 % at 95 % confidence (rule of three: 3/N).
	DefaultMinMatched = 300
	// DefaultMinObserved: 24 hours of watched time, so daily jobs and
	// rarely taken mutation paths have run at least once.
	DefaultMinObserved = 24 * time.Hour
	// DefaultRescan: a full rescan by content hash every 5 minutes finds
	// changes a watcher lost without reporting an overflow.
	DefaultRescan = 5 * time.Minute
	// DefaultKeepMisses: the last 50 unjournaled changes of each surface
	// are kept with their paths and times.
	DefaultKeepMisses = 50
	// DefaultFlush: matched changes and observed time are written to
	// state/coverage.json at most every 10 s (and at Close); a crash
	// loses at most that much of them, from a proof that takes a day.
	// What an operator must not lose — a miss, a gap, a verdict change —
	// is written at once (within half the settle idle time). Each write
	// is two fsyncs on the disk the journal fsyncs, which a write a
	// second would spend for nothing.
	DefaultFlush = 10 * time.Second
	// DefaultMaxFileBytes: files over 64 MiB are not hashed (an error of
	// that path, reported, never a partial hash).
	DefaultMaxFileBytes = 64 << 20
	// DefaultMaxFiles bounds the fingerprints kept per surface (and
	// persisted): a dir-backed surface with more entries is reported and
	// its extra entries are not followed.
	DefaultMaxFiles = 10000
)

// Config tunes a Watcher. Zero fields take the defaults.
type Config struct {
	// Window is the half-width of the symmetric matching window: a
	// change at t matches a record committed in [t-Window, t+Window].
	Window time.Duration
	// SettleIdle and SettleCap settle bursts per path: a path is
	// fingerprinted once no event came for SettleIdle, or SettleCap after
	// its first unsettled event.
	SettleIdle, SettleCap time.Duration
	// MinMatched (N) and MinObserved (T): a surface is proven when its
	// current streak (since its last miss or gap) holds at least N
	// matched changes over at least T of watched time.
	MinMatched  int
	MinObserved time.Duration
	// Rescan is the interval of the scheduled rescan by content hash;
	// failed watches are retried at every rescan and every RetryAdd.
	Rescan time.Duration
	// RetryAdd is how often a watch that could not be added is retried,
	// default min(Rescan, 5s).
	RetryAdd time.Duration
	// KeepMisses bounds the unjournaled changes kept per surface.
	KeepMisses int
	// Flush is how often changed counts are persisted; a miss, a gap or
	// a verdict change is persisted at once.
	Flush time.Duration
	// MaxFileBytes bounds the size of a file that is hashed.
	MaxFileBytes int64
	// MaxFiles bounds the fingerprints kept per surface.
	MaxFiles int
	// Persist writes figures to <data dir>/state/coverage.json and reads
	// them at start. An audit (state-coverage --watch) leaves it false:
	// it changes no file.
	Persist bool
	// Journal, when true, records every verdict transition on the
	// runtime_state_engine surface (needs a writable journal).
	Journal bool
	// Logger receives lifecycle logs and transitions, default
	// slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the coverage metrics; Close
	// unregisters them.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Window, DefaultWindow)
	def(&c.SettleIdle, DefaultSettleIdle)
	def(&c.SettleCap, DefaultSettleCap)
	def(&c.MinObserved, DefaultMinObserved)
	def(&c.Rescan, DefaultRescan)
	def(&c.RetryAdd, min(c.Rescan, 5*time.Second))
	def(&c.Flush, DefaultFlush)
	if c.MinMatched == 0 {
		c.MinMatched = DefaultMinMatched
	}
	if c.KeepMisses == 0 {
		c.KeepMisses = DefaultKeepMisses
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"window", c.Window}, {"settle idle", c.SettleIdle}, {"settle cap", c.SettleCap}, {"minimum observed time", c.MinObserved},
		{"rescan interval", c.Rescan}, {"add retry interval", c.RetryAdd}, {"flush interval", c.Flush}} {
		if d.v < 0 {
			return c, fmt.Errorf("coverage: %s %s is negative; want a positive duration", d.name, d.v)
		}
	}
	if c.SettleCap < c.SettleIdle {
		return c, fmt.Errorf("coverage: settle cap %s is below settle idle %s; want cap >= idle", c.SettleCap, c.SettleIdle)
	}
	if c.MinMatched < 1 || c.KeepMisses < 1 || c.MaxFiles < 1 || c.MaxFileBytes < 1 {
		return c, fmt.Errorf("coverage: minimum matched changes, kept misses, max files and max file bytes must be at least 1")
	}
	return c, nil
}
