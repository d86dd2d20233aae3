package coverage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/types"
)

// Surface and source of the records that journal verdict transitions.
const (
	StateEngineSurface = "runtime_state_engine"
	StateEngineSource  = "runtime.state_engine"
)

// maxRecordsPerSurface bounds the recent records kept per surface for
// matching: beyond it the oldest go first (they could only match a change
// that came long after them).
const maxRecordsPerSurface = 1 << 16

// Watcher is the coverage watcher of one journal: it watches the storage
// of every file- and dir-backed surface whose journal mode is not
// disabled, matches each settled change to a record, and keeps the
// figures of the coverage proof. Create it with Open; Close stops it.
// Report is safe for concurrent use.
type Watcher struct {
	cfg       Config
	j         *engine.Journal
	root      string
	log       *slog.Logger
	m         *metrics
	statePath string
	journalID string

	recs chan []engine.Change
	// followWake tells the follower that the set of active surfaces
	// changed.
	followWake chan struct{}
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	once       sync.Once
	pause      atomic.Pointer[chan struct{}] // test seam: while set, the reader waits for the channel to close
	closed     error

	mu sync.Mutex // guards every field below
	// targets in registry order; byID indexes the observable ones.
	targets    []*target
	byID       map[string]*target
	dirs       map[string][]*target // watched directory -> its targets
	watched    map[string]bool      // directories with a watch in place
	settling   map[settleKey]*settle
	hash       hasher // fingerprints settled paths (one buffer, reused)
	fsw        *fsnotify.Watcher
	started    time.Time
	stateAt    time.Time // when the loaded figures were written
	stateReset string
	lastRescan time.Time
	limits     InotifyLimits
	dirty      bool
	urgent     bool // a miss, gap or verdict change not yet persisted
	flushErr   string
	lastWrite  time.Time
}

// target is one observable surface.
type target struct {
	s          *registry.Surface
	observable bool
	notWhy     string
	path       string // resolved storage path
	dir        string // the watched directory
	base       string // file surfaces: the file's name in dir; "" for dir surfaces
	fig        Figures
	mx         surfaceMetrics
	files      map[string]Fingerprint
	complete   bool
	baseline   bool // files came from the state file
	gap        *Gap
	pending    []*change
	// The followed records: those without a fingerprint in commit-time
	// order (matched by nearness once a change's window closes), those
	// with one by fingerprint (an exact match is one map look-up, not a
	// walk over the window's thousands of records), and the latter in
	// arrival order too, for forgetting the oldest.
	records    []*rec
	exact      map[string][]*rec
	exactOrder []*rec
	lastAccrue time.Time
	untracked  int
	// active: a change of the surface is inside the matching window, so
	// its records are followed (until activeUntil); backfillFrom, when
	// set, asks the follower for its records since then.
	active       bool
	activeUntil  time.Time
	backfillFrom time.Time
}

type change struct {
	path     string
	at       time.Time
	fp       string
	deadline time.Time
}

type rec struct {
	at   time.Time
	fp   string
	used bool
}

type settleKey struct{ path, surface string }

type settle struct {
	t           *target
	first, last time.Time
}

// Open starts a coverage watcher on j's registry (its storage paths
// resolved against its root). With cfg.Persist it reads the figures of
// <dir>/state/coverage.json first (a file of another journal, damaged or
// of an unknown version is not believed: the figures start afresh and
// Report.StateReset says why). Directories that cannot be watched open a
// gap and are retried; only a bad Config, a watcher that cannot be
// created or metrics that cannot be registered fail Open.
func Open(j *engine.Journal, cfg Config) (*Watcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	reg := j.Registry()
	w := &Watcher{
		cfg: cfg, j: j, root: reg.Root(), log: cfg.Logger,
		statePath: filepath.Join(j.Dir(), "state", StateFileName),
		journalID: j.Status().JournalID,
		recs:      make(chan []engine.Change, 16), followWake: make(chan struct{}, 1),
		byID: map[string]*target{}, dirs: map[string][]*target{}, watched: map[string]bool{},
		settling: map[settleKey]*settle{}, started: time.Now(), limits: readInotifyLimits(),
	}
	if w.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	for _, s := range reg.Surfaces() {
		t := &target{s: s, files: map[string]Fingerprint{}, complete: true}
		w.targets = append(w.targets, t)
		if t.notWhy = NotObservedWhy(s); t.notWhy != "" {
			t.fig.Verdict = VerdictNotObserved
			continue
		}
		t.observable = true
		t.path = s.Storage.Resolved
		if s.Storage.Kind == registry.StorageDir {
			t.dir = filepath.Clean(t.path)
		} else {
			t.dir, t.base = filepath.Dir(t.path), filepath.Base(t.path)
		}
		w.byID[s.ID] = t
		w.dirs[t.dir] = append(w.dirs[t.dir], t)
	}
	if cfg.Persist {
		if err := w.load(); err != nil {
			w.m.unregister()
			return nil, err
		}
	}
	fsw, err := newFSWatcher()
	if err != nil {
		w.m.unregister()
		return nil, fmt.Errorf("coverage: create a file watcher: %w", err)
	}
	for _, l := range []struct {
		name string
		v    int64
	}{{"max_user_watches", w.limits.MaxUserWatches}, {"max_queued_events", w.limits.MaxQueuedEvents}, {"max_user_instances", w.limits.MaxUserInstances}} {
		w.m.limits.WithLabelValues(l.name).Set(float64(l.v))
	}
	for _, t := range w.targets {
		if t.observable {
			w.initMetrics(t)
		}
	}
	w.mu.Lock()
	w.fsw = fsw
	now := time.Now()
	for _, t := range w.targets {
		t.lastAccrue = now
	}
	w.addWatchesLocked()
	w.startupRescanLocked()
	for _, t := range w.targets {
		w.reverdictLocked(t)
	}
	w.dirty = true
	for _, sr := range w.reportLocked().Surfaces {
		if sr.Disagreement != "" {
			w.log.Warn("coverage: declared proven without the evidence", "surface", sr.ID, "verdict", sr.Verdict, "reason", sr.Why)
		}
	}
	w.mu.Unlock()
	w.log.Info("coverage watcher started", "root", w.root, "watches", len(w.watched), "surfaces", len(w.byID),
		"inotify_max_user_watches", w.limits.MaxUserWatches, "inotify_max_queued_events", w.limits.MaxQueuedEvents,
		"inotify_max_user_instances", w.limits.MaxUserInstances, "window", cfg.Window, "min_matched", cfg.MinMatched,
		"min_observed", cfg.MinObserved, "persist", cfg.Persist)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(2)
	go func() { defer w.wg.Done(); w.follow(ctx) }()
	go func() { defer w.wg.Done(); w.run(ctx) }()
	return w, nil
}

// Close stops the watcher, persists the figures (with Persist) and
// unregisters the metrics. Changes still waiting for a record are not
// counted. It is safe to call more than once.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.accrueLocked(time.Now())
		w.dirty = true
		err := w.flushLocked()
		if w.fsw != nil {
			err = errors.Join(err, w.fsw.Close())
			w.fsw = nil
		}
		w.m.unregister()
		w.closed = err
	})
	return w.closed
}

func (w *Watcher) initMetrics(t *target) {
	id := t.s.ID
	w.m.overflows.WithLabelValues(id)
	w.m.unattributable.WithLabelValues(id)
	t.mx = surfaceMetrics{observed: w.m.observed.WithLabelValues(id), matched: w.m.matched.WithLabelValues(id),
		unjournaled: w.m.unjournaled.WithLabelValues(id), ratio: w.m.ratio.WithLabelValues(id), proven: w.m.proven.WithLabelValues(id)}
	t.mx.proven.Set(0)
	t.mx.ratio.Set(math.NaN())
}

// surfaceMetrics are a surface's series the matcher moves at every
// change, looked up once.
type surfaceMetrics struct {
	observed, matched, unjournaled prometheus.Counter
	ratio, proven                  prometheus.Gauge
}

// yield lets the goroutines that are ready to run go first. The watcher
// shares the process with the journal's writers, and they run in bursts:
// a group commit wakes all of its writers at once, and on a machine of
// two cores their burst is most of the time between two fsyncs. A CPU
// the watcher holds during a burst is one the writers wait for, and a
// writer that misses the next commit waits a whole fsync more. So the
// watcher yields before each unit of work (a wake-up, a file it hashes, a
// handful of events or records) and does its work between the bursts,
// where the CPUs wait on the disk. Measured at 64 writers and 1,000
// changes a second (bench/README.md): without the yields the writers
// made 7–9% fewer records with the watcher than without it, and its
// append p99 was 1.18×; with them 3–6% and 1.07–1.18×. It loses nothing
// by waiting: its events are buffered and its windows are seconds long.
func yield() { runtime.Gosched() }

// run is the watcher's one owner loop: events, records, settling,
// expiry, rescans and persistence all happen here. It yields before each
// unit of work (see yield).
func (w *Watcher) run(ctx context.Context) {
	settleEvery := max(w.cfg.SettleIdle/2, 5*time.Millisecond)
	settleT := time.NewTicker(settleEvery)
	flushT := time.NewTicker(w.cfg.Flush)
	rescanT := time.NewTicker(w.cfg.Rescan)
	retryT := time.NewTicker(w.cfg.RetryAdd)
	defer settleT.Stop()
	defer flushT.Stop()
	defer rescanT.Stop()
	defer retryT.Stop()
	for {
		// Wait while a test pauses the reader (an overflow test lets the
		// kernel's queue overflow).
		if g := w.pause.Load(); g != nil {
			select {
			case <-*g:
			case <-ctx.Done():
				return
			}
		}
		var events chan fsnotify.Event
		var errs chan error
		w.mu.Lock()
		if w.fsw != nil {
			events, errs = w.fsw.Events, w.fsw.Errors
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			yield()
			w.mu.Lock()
			if !ok {
				w.restartLocked("its event channel closed")
			} else {
				// Take what else is buffered under the same lock and
				// clock reading: one wake-up for a burst, not one each.
				now := time.Now()
				w.eventLocked(ev, now)
			drain:
				for k := range eventBuffer {
					if k%eventsPerYield == eventsPerYield-1 {
						yield()
					}
					select {
					case ev, ok := <-events:
						if !ok {
							break drain // the next select sees the close
						}
						w.eventLocked(ev, now)
					default:
						break drain
					}
				}
			}
			w.mu.Unlock()
		case err, ok := <-errs:
			w.mu.Lock()
			switch {
			case !ok:
				w.restartLocked("its error channel closed")
			case errors.Is(err, fsnotify.ErrEventOverflow):
				w.overflowLocked()
			default:
				w.restartLocked(err.Error())
			}
			w.mu.Unlock()
		case cs := <-w.recs:
			yield()
			w.mu.Lock()
			for i := range cs {
				if i%recordsPerYield == recordsPerYield-1 {
					yield()
				}
				w.recordLocked(cs[i])
			}
			w.mu.Unlock()
		case <-settleT.C:
			yield()
			w.mu.Lock()
			now := time.Now()
			w.settleDueLocked(now, false)
			w.expireLocked(now)
			if w.urgent {
				w.persistLocked(now)
			}
			w.mu.Unlock()
		case <-flushT.C:
			w.mu.Lock()
			w.persistLocked(time.Now())
			w.mu.Unlock()
		case <-rescanT.C:
			w.mu.Lock()
			w.scheduledRescanLocked()
			w.mu.Unlock()
		case <-retryT.C:
			w.mu.Lock()
			if w.fsw == nil {
				w.restartLocked("the previous watcher could not be created")
			} else {
				w.retryAddsLocked()
			}
			w.mu.Unlock()
		}
	}
}

// persistLocked accrues the watched time and writes the figures; a
// failure is logged once per distinct error (and retried at the next
// flush: the figures stay dirty).
func (w *Watcher) persistLocked(now time.Time) {
	w.accrueLocked(now)
	if err := w.flushLocked(); err != nil {
		w.urgent = false // retried at the next Flush, not every settle tick
		if err.Error() != w.flushErr {
			w.flushErr = err.Error()
			w.log.Warn("coverage: figures not persisted", "file", w.statePath, "err", err)
		}
	}
}

// accrueLocked adds the watched time since the last call to every
// watched surface without a gap.
func (w *Watcher) accrueLocked(now time.Time) {
	for _, t := range w.targets {
		if !t.observable {
			continue
		}
		if dt := now.Sub(t.lastAccrue).Seconds(); dt > 0 && t.gap == nil && w.watched[t.dir] {
			t.fig.ObservedSeconds += dt
			t.fig.Streak.ObservedSeconds += dt
			if t.fig.FirstObserved == nil {
				f := t.lastAccrue.UTC()
				t.fig.FirstObserved = &f
			}
			if t.fig.Streak.Since.IsZero() {
				t.fig.Streak.Since = t.lastAccrue.UTC()
			}
		}
		t.lastAccrue = now
		w.reverdictLocked(t)
	}
}

// reverdictLocked computes t's verdict; a change is a transition: logged,
// counted and (with Config.Journal) journaled.
func (w *Watcher) reverdictLocked(t *target) {
	if !t.observable {
		return
	}
	v := verdictOf(&t.fig, t.gap, w.watched[t.dir], w.cfg.MinMatched, w.cfg.MinObserved)
	if r, ok := t.fig.ratio(); ok {
		t.mx.ratio.Set(r)
	}
	proven := 0.0
	if v == VerdictProven {
		proven = 1
	}
	t.mx.proven.Set(proven)
	from := t.fig.Verdict
	if v == from {
		return
	}
	_, why := judge(&t.fig, t.gap, w.watched[t.dir], w.cfg.MinMatched, w.cfg.MinObserved)
	t.fig.Verdict = v
	w.dirty = true
	if from == "" {
		return // the first verdict of a new surface is no transition
	}
	w.urgent = true
	if t.s.Journal.Mode == registry.ModeProven && from == VerdictProven {
		w.log.Warn("coverage: declared proven without the evidence", "surface", t.s.ID, "verdict", v, "reason", why)
	}
	w.m.transitions.WithLabelValues(t.s.ID, v).Inc()
	lvl := slog.LevelInfo
	if from == VerdictProven {
		lvl = slog.LevelWarn
	}
	w.log.Log(context.Background(), lvl, "coverage: verdict changed", "surface", t.s.ID, "from", from, "to", v, "reason", why,
		"declared_mode", t.s.Journal.Mode)
	if !w.cfg.Journal {
		return
	}
	sev := "notice"
	if from == VerdictProven {
		sev = "warning"
	}
	err := w.j.RecordAsync(engine.Change{
		Source: StateEngineSource, Surface: StateEngineSurface, ChangeType: "transitioned",
		AggregateType: "coverage_verdict", AggregateID: t.s.ID, Severity: sev,
		Metadata: map[string]any{"surface": t.s.ID, "from": from, "to": v, "reason": types.CutUTF8(why, 200), "declared_mode": t.s.Journal.Mode},
	})
	if err != nil {
		w.log.Warn("coverage: verdict transition not journaled", "surface", t.s.ID, "to", v, "err", err)
	}
}

// load reads the persisted figures.
func (w *Watcher) load() error {
	s, reason, err := readState(w.statePath, w.journalID)
	if err != nil {
		return fmt.Errorf("coverage: %w", err)
	}
	if reason != nil {
		w.stateReset = reason.text
		w.log.Warn("coverage: persisted figures reset", "file", w.statePath, "reason", reason.text)
		return nil
	}
	if s == nil {
		return nil
	}
	w.stateAt = s.UpdatedAt
	for _, sr := range s.Report.Surfaces {
		t := w.byID[sr.ID]
		if t == nil {
			continue // no longer observed: its figures are dropped at the next write
		}
		t.fig = sr.Figures
		if t.fig.Misses == nil {
			t.fig.Misses = []Miss{}
		}
		if t.fig.LastGap != nil && t.fig.LastGap.To.IsZero() {
			// A gap open at the last write stays open: it closes with the
			// startup rescan, or when its watch is back.
			g := *t.fig.LastGap
			t.gap = &g
		}
		files, ok := s.Files[sr.ID]
		if !ok {
			continue
		}
		for rel, h := range files {
			t.files[w.abs(rel)] = Fingerprint{Hash: h}
		}
		t.complete = !slices.Contains(s.Incomplete, sr.ID)
		t.baseline = true
	}
	return nil
}

// flushLocked persists the figures when a count or verdict changed, and
// every accrueFlush when only the observed time grew. The run loop calls
// it every Flush, and at the next settle tick after an urgent change.
func (w *Watcher) flushLocked() error {
	if !w.cfg.Persist || !w.dirty && time.Since(w.lastWrite) < accrueFlush {
		return nil
	}
	s := &stateFile{Version: stateVersion, JournalID: w.journalID, UpdatedAt: time.Now().UTC(), Report: w.reportLocked(),
		Files: map[string]map[string]string{}}
	for _, t := range w.targets {
		if !t.observable {
			continue
		}
		files := make(map[string]string, len(t.files))
		for p, fp := range t.files {
			files[w.rel(p)] = fp.Hash
		}
		s.Files[t.s.ID] = files
		if !t.complete {
			s.Incomplete = append(s.Incomplete, t.s.ID)
		}
	}
	if err := writeState(w.statePath, s); err != nil {
		return err
	}
	w.dirty, w.urgent = false, false
	w.flushErr = ""
	w.lastWrite = time.Now()
	return nil
}

// accrueFlush bounds how long observed time alone waits to be persisted:
// a crash loses at most this much of it (and at most Flush of counts).
const accrueFlush = 30 * time.Second

// Report returns the coverage of every surface of the registry, in
// registry order, with the figures as of now.
func (w *Watcher) Report() Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.accrueLocked(time.Now())
	return w.reportLocked()
}

func (w *Watcher) reportLocked() Report {
	r := Report{
		Persisted: w.cfg.Persist, StateReset: w.stateReset, Root: w.root, Started: w.started.UTC(),
		Window: types.FormatDuration(w.cfg.Window), SettleIdle: types.FormatDuration(w.cfg.SettleIdle), SettleCap: types.FormatDuration(w.cfg.SettleCap),
		MinMatched: w.cfg.MinMatched, MinTime: types.FormatDuration(w.cfg.MinObserved), Rescan: types.FormatDuration(w.cfg.Rescan),
		Limits: w.limits, Surfaces: make([]SurfaceReport, 0, len(w.targets)),
	}
	if w.cfg.Persist {
		r.StateFile = w.statePath
	}
	for _, ok := range w.watched {
		if ok {
			r.Watches++
		}
	}
	if !w.lastRescan.IsZero() {
		at := w.lastRescan.UTC()
		r.LastRescan = &at
	}
	for _, t := range w.targets {
		sr := SurfaceReport{ID: t.s.ID, Mode: t.s.Journal.Mode, StorageKind: t.s.Storage.Kind, Path: t.s.Storage.Path, Figures: t.fig}
		sr.Misses = slices.Clone(t.fig.Misses)
		if sr.Misses == nil {
			sr.Misses = []Miss{}
		}
		if t.fig.LastGap != nil {
			g := *t.fig.LastGap
			sr.LastGap = &g
		}
		if !t.observable {
			sr.Verdict, sr.Why = VerdictNotObserved, t.notWhy
		} else {
			sr.Watched = w.rel(t.dir)
			sr.Watching = w.watched[t.dir]
			sr.Ratio = t.fig.Ratio()
			sr.Pending = len(t.pending)
			sr.Untracked = t.untracked
			sr.Retire = t.fig.Verdict == VerdictProven
			_, sr.Why = judge(&t.fig, t.gap, w.watched[t.dir], w.cfg.MinMatched, w.cfg.MinObserved)
			if sr.Retire && t.s.Journal.Mode != registry.ModeProven {
				sr.Why += fmt.Sprintf("; the registry still declares %s: journal.mode can move to proven", t.s.Journal.Mode)
			}
		}
		if t.s.Journal.Mode == registry.ModeProven && sr.Verdict != VerdictProven {
			sr.Disagreement = fmt.Sprintf("the registry declares journal mode proven, but the evidence says %s: %s", sr.Verdict, sr.Why)
		}
		r.Surfaces = append(r.Surfaces, sr)
	}
	return r
}

// rel names path relative to the root when it is inside it.
func (w *Watcher) rel(path string) string {
	if r, err := filepath.Rel(w.root, path); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(r)
	}
	return path
}

func (w *Watcher) abs(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// readInotifyLimits reads the kernel's inotify limits; -1 when unknown.
func readInotifyLimits() InotifyLimits {
	read := func(name string) int64 {
		b, err := os.ReadFile("/proc/sys/fs/inotify/" + name)
		if err != nil {
			return -1
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return InotifyLimits{MaxUserWatches: read("max_user_watches"), MaxQueuedEvents: read("max_queued_events"), MaxUserInstances: read("max_user_instances")}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// eventBuffer is the capacity of the file watcher's event channel: the
// kernel's events of one read are handed over without a goroutine switch
// each, and the run loop takes them in one go.
const eventBuffer = 1024

// eventsPerYield and recordsPerYield are the units of work between two
// yields (see yield): tens of microseconds each.
const (
	eventsPerYield  = 16
	recordsPerYield = 64
)

func newFSWatcher() (*fsnotify.Watcher, error) { return fsnotify.NewBufferedWatcher(eventBuffer) }

// pauseReader stops the event reader (a test seam): the kernel's queue
// fills while it is paused. resumeReader lets it go on.
func (w *Watcher) pauseReader() {
	g := make(chan struct{})
	w.pause.Store(&g)
}

func (w *Watcher) resumeReader() {
	if g := w.pause.Swap(nil); g != nil {
		close(*g)
	}
}
