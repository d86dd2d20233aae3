package coverage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
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

// Gap reasons, the label of state_journal_coverage_gaps_total.
const (
	gapOverflow = "overflow"
	gapWatch    = "watch"
	gapRestart  = "restart"
	gapRescan   = "rescan"
)

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
	pause      sync.Mutex // test seam: held while the reader is paused
	closed     error

	mu sync.Mutex // guards every field below
	// targets in registry order; byID indexes the observable ones.
	targets    []*target
	byID       map[string]*target
	dirs       map[string][]*target // watched directory -> its targets
	watched    map[string]bool      // directories with a watch in place
	settling   map[settleKey]*settle
	fsw        *fsnotify.Watcher
	started    time.Time
	stateAt    time.Time // when the loaded figures were written
	stateReset string
	lastRescan time.Time
	limits     InotifyLimits
	dirty      bool
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
	why        string
	files      map[string]Fingerprint
	complete   bool
	baseline   bool // files came from the state file
	gap        *Gap
	pending    []*change
	records    []*rec
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
		if t.notWhy = notObservedWhy(s); t.notWhy != "" {
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
	fsw, err := fsnotify.NewWatcher()
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
	w.m.unjournaled.WithLabelValues(id)
	w.m.overflows.WithLabelValues(id)
	w.m.observed.WithLabelValues(id)
	w.m.matched.WithLabelValues(id)
	w.m.unattributable.WithLabelValues(id)
	w.m.proven.WithLabelValues(id).Set(0)
	w.m.ratio.WithLabelValues(id).Set(math.NaN())
}

// run is the watcher's one owner loop: events, records, settling,
// expiry, rescans and persistence all happen here.
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
		w.pause.Lock()
		w.pause.Unlock() //nolint:staticcheck // an empty critical section: wait while a test pauses the reader
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
			w.mu.Lock()
			if !ok {
				w.restartLocked("its event channel closed")
			} else {
				w.eventLocked(ev, time.Now())
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
			w.mu.Lock()
			for i := range cs {
				w.recordLocked(cs[i])
			}
			w.mu.Unlock()
		case <-settleT.C:
			w.mu.Lock()
			now := time.Now()
			w.settleDueLocked(now, false)
			w.expireLocked(now)
			w.mu.Unlock()
		case <-flushT.C:
			w.mu.Lock()
			w.accrueLocked(time.Now())
			if err := w.flushLocked(); err != nil && err.Error() != w.flushErr {
				w.flushErr = err.Error()
				w.log.Warn("coverage: figures not persisted", "file", w.statePath, "err", err)
			}
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

// follow feeds the run loop the records of the active surfaces (those
// with a file change inside the matching window), through the journal's
// one Follow. A surface that becomes active is first backfilled from a
// window before its change (a record may precede the write), then the
// Follow restarts with the new set from the cursor it had reached, so no
// record is handed over twice or missed. Records of surfaces whose files
// do not change are never decoded: a heartbeat storm on a surface whose
// file is quiet costs the watcher nothing.
func (w *Watcher) follow(ctx context.Context) {
	cursor := w.j.Head() // every record up to it considered for the current set
	for ctx.Err() == nil {
		w.mu.Lock()
		var set []string
		type fill struct {
			id   string
			from time.Time
		}
		var fills []fill
		for _, t := range w.targets {
			if !t.active {
				continue
			}
			set = append(set, t.s.ID)
			if !t.backfillFrom.IsZero() {
				fills = append(fills, fill{t.s.ID, t.backfillFrom})
				t.backfillFrom = time.Time{}
			}
		}
		w.mu.Unlock()
		for _, f := range fills {
			if err := w.backfill(ctx, f.id, f.from, cursor); err != nil && ctx.Err() == nil {
				w.log.Warn("coverage: reading a surface's recent records failed; its changes may be called unjournaled", "surface", f.id, "err", err)
			}
		}
		if len(set) == 0 {
			cursor = w.j.Head()
			select {
			case <-ctx.Done():
				return
			case <-w.followWake:
			}
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		woken := make(chan struct{})
		go func() {
			select {
			case <-w.followWake:
				close(woken)
				cancel()
			case <-fctx.Done():
			}
		}()
		var batch []engine.Change
		seen := cursor
		flush := func(c context.Context) error {
			if len(batch) > 0 {
				select {
				case w.recs <- batch:
					batch = nil
				case <-c.Done():
					return c.Err()
				}
			}
			cursor = seen
			return nil
		}
		err := w.j.Follow(fctx, engine.Query{After: cursor, Surfaces: set}, engine.FollowOptions{Tick: time.Second}, func(ev engine.FollowEvent) error {
			if ev.Change != nil {
				batch = append(batch, *ev.Change)
			}
			seen = ev.Cursor
			caughtUp := ev.Cursor >= ev.Head
			if len(batch) < followBatch && !caughtUp {
				return nil
			}
			if err := flush(fctx); err != nil {
				return err
			}
			if caughtUp {
				// Let commits gather: one look every followPace instead of
				// one per group commit keeps the follower off the write
				// path's CPU; matching works in seconds.
				t := time.NewTimer(followPace)
				defer t.Stop()
				select {
				case <-t.C:
				case <-fctx.Done():
					return fctx.Err()
				}
			}
			return nil
		})
		cancel()
		if flush(ctx) != nil || ctx.Err() != nil {
			return
		}
		select {
		case <-woken:
			continue // the set changed
		default:
		}
		w.log.Warn("coverage: following the journal stopped; following again in 1s", "after", cursor, "err", err)
		if errors.Is(err, engine.ErrCompacted) {
			cursor = w.j.Head() // retention overtook the follower: start again at the head
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// backfill hands over the records of surface id committed since from
// and up to sequence upTo: the ones a change that just activated the
// surface may match, which the Follow of the previous set skipped.
func (w *Watcher) backfill(ctx context.Context, id string, from time.Time, upTo uint64) error {
	after := uint64(0)
	if h := w.j.Status().FirstSequence; h > 0 {
		after = h - 1
	}
	for {
		res, err := w.j.Query(ctx, engine.Query{After: after, HasAfter: true, Since: from, Surfaces: []string{id}, Limit: followBatch})
		if err != nil {
			return err
		}
		var batch []engine.Change
		for _, c := range res.Changes {
			if c.Sequence > upTo {
				break
			}
			batch = append(batch, c)
			after = c.Sequence
		}
		if len(batch) > 0 {
			select {
			case w.recs <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !res.More || len(batch) < len(res.Changes) {
			return nil
		}
	}
}

// followBatch bounds the records handed to the run loop at once, and
// followPace is how long the follower rests once it has caught up.
const (
	followBatch = 1024
	followPace  = 50 * time.Millisecond
)

// grace is how long after the window a change waits for its record:
// the time a committed record takes to reach the matcher.
func (w *Watcher) grace() time.Duration { return max(w.cfg.SettleCap, time.Second) }

// eventLocked handles one fsnotify event.
func (w *Watcher) eventLocked(ev fsnotify.Event, now time.Time) {
	name := filepath.Clean(ev.Name)
	if ts, ok := w.dirs[name]; ok && w.watched[name] && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
		// The watched directory itself went away, and its watch with it.
		w.watched[name] = false
		_ = w.fsw.Remove(name)
		w.setWatchesLocked()
		w.openGapLocked(ts, gapWatch, fmt.Sprintf("watched directory %s was removed or renamed", w.rel(name)), now)
		return
	}
	dir, base := filepath.Dir(name), filepath.Base(name)
	for _, t := range w.dirs[dir] {
		if t.base != "" && base != t.base || t.base == "" && Ignored(base) {
			continue
		}
		k := settleKey{name, t.s.ID}
		if s := w.settling[k]; s != nil {
			s.last = now
		} else {
			w.settling[k] = &settle{t: t, first: now, last: now}
		}
	}
}

// settleDueLocked fingerprints the paths that settled (all of them with
// force).
func (w *Watcher) settleDueLocked(now time.Time, force bool) {
	for k, s := range w.settling {
		if force || now.Sub(s.last) >= w.cfg.SettleIdle || now.Sub(s.first) >= w.cfg.SettleCap {
			delete(w.settling, k)
			w.settledLocked(s.t, k.path, s.first, now)
		}
	}
}

// settledLocked fingerprints a settled path and, when its content
// changed, decides the change or waits for its record.
func (w *Watcher) settledLocked(t *target, path string, first, now time.Time) {
	fp, err := fingerprintFile(path, w.cfg.MaxFileBytes)
	if err != nil {
		w.log.Warn("coverage: cannot fingerprint a changed file", "surface", t.s.ID, "path", w.rel(path), "err", err)
		return
	}
	old, known := t.files[path]
	switch {
	case known && old.Hash == fp.Hash:
		t.files[path] = fp // a touch: same content
		return
	case !known && fp.Hash == Absent:
		return // came and went inside one burst
	case fp.Hash == Absent:
		delete(t.files, path)
	case known || len(t.files) < w.cfg.MaxFiles:
		t.files[path] = fp
	default:
		t.untracked++
		if t.complete {
			w.log.Warn("coverage: surface holds more entries than the watcher keeps; the extra ones are not followed", "surface", t.s.ID, "max_files", w.cfg.MaxFiles)
		}
		t.complete = false
		return
	}
	at := first
	if fp.Hash != Absent && absDur(fp.Mtime.Sub(now)) <= w.cfg.Window+w.cfg.SettleCap {
		at = fp.Mtime // the write's own time, more precise than the event's
	}
	c := &change{path: path, at: at, fp: fp.Hash, deadline: at.Add(w.cfg.Window + w.grace())}
	w.activateLocked(t, c, now)
	if r := t.exactRecord(c, w.cfg.Window); r != nil {
		r.used = true
		w.matchedLocked(t, c, true)
		return
	}
	t.insertPending(c)
}

// activateLocked makes t's records followed while c can still be
// matched (and a little beyond, for the next change), backfilled from
// c's window when t was not followed.
func (w *Watcher) activateLocked(t *target, c *change, now time.Time) {
	until := now.Add(2*w.cfg.Window + w.grace() + w.cfg.SettleCap + time.Minute)
	if until.After(t.activeUntil) {
		t.activeUntil = until
	}
	if t.active {
		return
	}
	t.active = true
	t.backfillFrom = c.at.Add(-w.cfg.Window - w.cfg.SettleCap)
	t.records = t.records[:0] // the backfill brings them again
	select {
	case w.followWake <- struct{}{}:
	default:
	}
}

// insertPending adds c to the waiting changes, kept in time order (so the
// first one is the first whose window closes).
func (t *target) insertPending(c *change) {
	i := sort.Search(len(t.pending), func(i int) bool { return t.pending[i].at.After(c.at) })
	t.pending = slices.Insert(t.pending, i, c)
}

// exactRecord returns an unused record in c's window that carries c's
// fingerprint: an exact match, decided at once.
func (t *target) exactRecord(c *change, window time.Duration) *rec {
	lo := sort.Search(len(t.records), func(i int) bool { return !t.records[i].at.Before(c.at.Add(-window)) })
	for _, r := range t.records[lo:] {
		if r.at.After(c.at.Add(window)) {
			break
		}
		if !r.used && r.fp != "" && r.fp == c.fp {
			return r
		}
	}
	return nil
}

// nearestRecord returns the record that accounts for c once c's window
// has closed (every record that could match it has arrived): the unused
// record without a fingerprint nearest to c in time, unless a waiting
// change is nearer to that record — then the record is that change's,
// and the next nearest is considered. So a write that forgot its record
// does not take its neighbour's, whether records precede or follow their
// writes.
func (t *target) nearestRecord(c *change, window time.Duration) *rec {
	i := sort.Search(len(t.records), func(i int) bool { return !t.records[i].at.Before(c.at) })
	l, r := i-1, i
	for {
		for l >= 0 && (t.records[l].used || t.records[l].fp != "") {
			l--
		}
		for r < len(t.records) && (t.records[r].used || t.records[r].fp != "") {
			r++
		}
		var cand *rec
		switch {
		case l >= 0 && r < len(t.records):
			if c.at.Sub(t.records[l].at) <= t.records[r].at.Sub(c.at) {
				cand, l = t.records[l], l-1
			} else {
				cand, r = t.records[r], r+1
			}
		case l >= 0:
			cand, l = t.records[l], l-1
		case r < len(t.records):
			cand, r = t.records[r], r+1
		default:
			return nil
		}
		d := absDur(cand.at.Sub(c.at))
		if d > window {
			return nil // candidates come nearest first: the rest are farther
		}
		if !t.pendingNearer(cand.at, d) {
			return cand
		}
	}
}

// pendingNearer reports whether a waiting change lies strictly nearer
// than d to time at.
func (t *target) pendingNearer(at time.Time, d time.Duration) bool {
	i := sort.Search(len(t.pending), func(i int) bool { return !t.pending[i].at.Before(at) })
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(t.pending) && absDur(t.pending[j].at.Sub(at)) < d {
			return true
		}
	}
	return false
}

// recordLocked takes one followed record of each surface it lists: an
// exact record matches its waiting change at once; any other waits for
// the windows of the changes around it to close.
func (w *Watcher) recordLocked(c engine.Change) {
	fp, _ := c.Metadata[MetadataKey].(string)
	if !ValidFingerprint(fp) {
		fp = ""
	}
	at := c.CommittedAt
	ids := c.ChangedSurfaces
	if !slices.Contains(ids, c.Surface) {
		ids = append(slices.Clone(ids), c.Surface)
	}
	for i, id := range ids {
		t := w.byID[id]
		if t == nil || slices.Index(ids, id) != i {
			continue // not observed, or listed twice
		}
		r := &rec{at: at, fp: fp}
		if fp != "" {
			if k := slices.IndexFunc(t.pending, func(pc *change) bool { return pc.fp == fp && absDur(pc.at.Sub(at)) <= w.cfg.Window }); k >= 0 {
				pc := t.pending[k]
				t.pending = slices.Delete(t.pending, k, k+1)
				w.matchedLocked(t, pc, true)
				continue
			}
		}
		// Kept in commit-time order for the binary searches; records come
		// in commit order, so this is nearly always an append.
		if n := len(t.records); n == 0 || !t.records[n-1].at.After(at) {
			t.records = append(t.records, r)
		} else {
			k := sort.Search(n, func(k int) bool { return t.records[k].at.After(at) })
			t.records = slices.Insert(t.records, k, r)
		}
		if len(t.records) > maxRecordsPerSurface {
			// Forget the oldest quarter at once, not one per record.
			t.records = slices.Delete(t.records, 0, len(t.records)-maxRecordsPerSurface*3/4)
		}
	}
}

// expireLocked decides the changes whose window closed, oldest first:
// matched to their nearest record, or unjournaled; and forgets records
// too old to match anything.
func (w *Watcher) expireLocked(now time.Time) {
	// Records are kept a minute beyond the window's reach, so a change
	// whose event comes late (a busy reader) still finds its record.
	keep := now.Add(-(2*w.cfg.Window + w.cfg.SettleCap + w.grace() + time.Minute))
	for _, t := range w.byID {
		for len(t.pending) > 0 && now.After(t.pending[0].deadline) {
			c := t.pending[0]
			t.pending = t.pending[1:]
			if r := t.nearestRecord(c, w.cfg.Window); r != nil {
				r.used = true
				w.matchedLocked(t, c, false)
			} else {
				w.unjournaledLocked(t, c, now)
			}
		}
		n := 0
		for n < len(t.records) && (t.records[n].at.Before(keep)) {
			n++
		}
		if n > 0 {
			t.records = slices.Delete(t.records, 0, n)
		}
		if t.active && len(t.pending) == 0 && now.After(t.activeUntil) {
			t.active, t.records = false, nil
			select {
			case w.followWake <- struct{}{}:
			default:
			}
		}
	}
}

func (w *Watcher) matchedLocked(t *target, c *change, exact bool) {
	f := &t.fig
	f.Observed++
	f.Matched++
	if exact {
		f.Exact++
	}
	if f.Streak.Since.IsZero() {
		f.Streak.Since = c.at.UTC()
	}
	f.Streak.Matched++
	at := c.at.UTC()
	f.LastChange = &at
	w.m.observed.WithLabelValues(t.s.ID).Inc()
	w.m.matched.WithLabelValues(t.s.ID).Inc()
	w.dirty = true
	w.reverdictLocked(t)
}

func (w *Watcher) unjournaledLocked(t *target, c *change, now time.Time) {
	f := &t.fig
	f.Observed++
	f.Unjournaled++
	at := c.at.UTC()
	f.LastChange = &at
	miss := Miss{Path: w.rel(c.path), At: at, Fingerprint: c.fp}
	f.Misses = append(f.Misses, miss)
	if len(f.Misses) > w.cfg.KeepMisses {
		f.Misses = slices.Delete(f.Misses, 0, len(f.Misses)-w.cfg.KeepMisses)
	}
	f.Streak = Streak{Since: now.UTC()}
	w.m.observed.WithLabelValues(t.s.ID).Inc()
	w.m.unjournaled.WithLabelValues(t.s.ID).Inc()
	w.log.Warn("coverage: unjournaled change", "surface", t.s.ID, "path", miss.Path, "at", at, "fingerprint", c.fp, "window", w.cfg.Window)
	w.dirty = true
	w.reverdictLocked(t)
}

// openGapLocked opens a gap on each target that has none.
func (w *Watcher) openGapLocked(ts []*target, reason, text string, now time.Time) {
	for _, t := range ts {
		if reason == gapOverflow {
			t.fig.Overflows++
			w.m.overflows.WithLabelValues(t.s.ID).Inc()
		}
		if t.gap != nil {
			continue
		}
		t.gap = &Gap{From: now.UTC(), Reason: text}
		g := *t.gap
		t.fig.LastGap = &g
		t.fig.Gaps++
		t.fig.Streak = Streak{}
		w.m.gaps.WithLabelValues(t.s.ID, reason).Inc()
		w.log.Warn("coverage: gap opened", "surface", t.s.ID, "reason", reason, "detail", text)
		w.dirty = true
		w.reverdictLocked(t)
	}
}

// closeGapLocked closes t's open gap with the n changes its rescan found.
func (w *Watcher) closeGapLocked(t *target, n int, now time.Time) {
	if t.gap == nil {
		return
	}
	t.gap.To = now.UTC()
	t.gap.Unattributable += uint64(n)
	g := *t.gap
	t.fig.LastGap = &g
	t.fig.Unattributable += uint64(n)
	w.m.unattributable.WithLabelValues(t.s.ID).Add(float64(n))
	t.gap = nil
	t.fig.Streak = Streak{Since: now.UTC()}
	t.lastAccrue = now
	w.log.Info("coverage: gap closed by a rescan", "surface", t.s.ID, "unattributable", n, "from", g.From, "reason", g.Reason)
	w.dirty = true
	w.reverdictLocked(t)
}

// overflowLocked handles a watcher overflow: every watched surface gets a
// gap, the paths in flight are forgotten (their events are incomplete),
// and a rescan by content hash closes the gap.
func (w *Watcher) overflowLocked() {
	now := time.Now()
	var ts []*target
	for _, t := range w.targets {
		if t.observable {
			ts = append(ts, t)
		}
	}
	w.openGapLocked(ts, gapOverflow, fmt.Sprintf("the kernel's event queue overflowed (inotify max_queued_events %d): events were dropped", w.limits.MaxQueuedEvents), now)
	clear(w.settling)
	w.rescanGapsLocked(ts)
}

// rescanGapsLocked rescans the watched targets among ts and closes their
// gaps; the changes found are unattributable.
func (w *Watcher) rescanGapsLocked(ts []*target) {
	for _, t := range ts {
		if !w.watched[t.dir] {
			continue
		}
		for k := range w.settling {
			if k.surface == t.s.ID {
				delete(w.settling, k)
			}
		}
		n := w.rescanLocked(t, nil)
		w.closeGapLocked(t, n, time.Now())
	}
	w.lastRescan = time.Now()
}

// rescanLocked compares t's files with their fingerprints, updates them
// and returns how many differ. skip, when set, leaves a path alone.
func (w *Watcher) rescanLocked(t *target, skip func(path string, fp Fingerprint) bool) int {
	var paths []string
	if t.base != "" {
		paths = []string{t.path}
	} else {
		var err error
		if paths, err = listDir(t.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("coverage: rescan cannot list a surface's directory", "surface", t.s.ID, "path", w.rel(t.path), "err", err)
			return 0
		}
	}
	n := 0
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		seen[p] = true
		fp, err := fingerprintFile(p, w.cfg.MaxFileBytes)
		if err != nil {
			w.log.Warn("coverage: rescan cannot fingerprint a file", "surface", t.s.ID, "path", w.rel(p), "err", err)
			continue
		}
		if skip != nil && skip(p, fp) {
			continue
		}
		old, known := t.files[p]
		switch {
		case known && old.Hash == fp.Hash:
			t.files[p] = fp
		case fp.Hash == Absent:
			if known {
				delete(t.files, p)
				n++
			}
		case known || len(t.files) < w.cfg.MaxFiles:
			t.files[p] = fp
			n++
		default:
			t.untracked++
			t.complete = false
		}
	}
	for p := range t.files {
		if !seen[p] && (skip == nil || !skip(p, Fingerprint{Hash: Absent})) {
			delete(t.files, p)
			n++
		}
	}
	return n
}

// startupRescanLocked compares the files with the fingerprints the state
// file kept: what changed while nobody watched is a gap (from the last
// write of the figures to now) with unattributable changes. A surface
// without persisted fingerprints takes the files as its baseline.
func (w *Watcher) startupRescanLocked() {
	now := time.Now()
	for _, t := range w.targets {
		if !t.observable || !w.watched[t.dir] {
			continue
		}
		n := w.rescanLocked(t, nil)
		switch {
		case t.gap != nil:
			// A gap left open at the last stop closes here, with what
			// changed meanwhile.
			w.closeGapLocked(t, n, now)
		case t.baseline && n > 0:
			from := w.stateAt
			if from.IsZero() {
				from = now
			}
			w.openGapLocked([]*target{t}, gapRestart, fmt.Sprintf("%d change(s) while the watcher was not running", n), from)
			w.closeGapLocked(t, n, now)
		}
	}
	w.lastRescan = now
}

// scheduledRescanLocked rescans every watched surface by content hash: a
// difference the watcher never reported (some platforms drop events
// without an overflow) opens and closes a gap. Paths with events in
// flight, settling, or written within the settle cap are left to their
// events.
func (w *Watcher) scheduledRescanLocked() {
	now := time.Now()
	w.drainLocked(now)
	for _, t := range w.targets {
		if !t.observable || !w.watched[t.dir] || t.gap != nil {
			continue
		}
		n := w.rescanLocked(t, func(p string, fp Fingerprint) bool {
			if w.settling[settleKey{p, t.s.ID}] != nil {
				return true
			}
			if fp.Hash != Absent && absDur(now.Sub(fp.Mtime)) < w.cfg.SettleCap+w.cfg.SettleIdle {
				return true
			}
			return false
		})
		if n > 0 {
			w.openGapLocked([]*target{t}, gapRescan, fmt.Sprintf("the scheduled rescan found %d change(s) the watcher did not report", n), now)
			w.closeGapLocked(t, n, now)
		}
	}
	w.lastRescan = now
}

// drainLocked takes the events already queued, so a rescan does not
// count a change whose event is on its way.
func (w *Watcher) drainLocked(now time.Time) {
	if w.fsw == nil {
		return
	}
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.eventLocked(ev, now)
		default:
			return
		}
	}
}

// addWatchesLocked adds a watch on every directory without one; a failure
// opens a gap on its surfaces (retried every RetryAdd).
func (w *Watcher) addWatchesLocked() {
	now := time.Now()
	for _, dir := range w.sortedDirs() {
		if w.watched[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			text := fmt.Sprintf("cannot watch %s: %v", w.rel(dir), err)
			if errors.Is(err, fs.ErrNotExist) {
				text = fmt.Sprintf("cannot watch %s: the directory does not exist", w.rel(dir))
			}
			w.openGapLocked(w.dirs[dir], gapWatch, text, now)
			continue
		}
		w.watched[dir] = true
	}
	w.setWatchesLocked()
}

// retryAddsLocked retries the failed watches; each that succeeds is
// rescanned, which closes its surfaces' gaps.
func (w *Watcher) retryAddsLocked() {
	for _, dir := range w.sortedDirs() {
		if w.watched[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			continue
		}
		w.watched[dir] = true
		w.log.Info("coverage: watching again", "dir", w.rel(dir))
		w.rescanGapsLocked(w.dirs[dir])
	}
	w.setWatchesLocked()
}

// restartLocked replaces a failed fsnotify watcher: every surface gets a
// gap until its directory is watched again and rescanned.
func (w *Watcher) restartLocked(why string) {
	now := time.Now()
	w.log.Warn("coverage: restarting the file watcher", "reason", why)
	if w.fsw != nil {
		_ = w.fsw.Close()
		w.fsw = nil
	}
	clear(w.watched)
	clear(w.settling)
	var ts []*target
	for _, t := range w.targets {
		if t.observable {
			ts = append(ts, t)
		}
	}
	w.openGapLocked(ts, gapRestart, "watcher restart: "+why, now)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		w.log.Warn("coverage: cannot create a file watcher; retrying", "err", err, "retry", w.cfg.RetryAdd)
		w.setWatchesLocked()
		return
	}
	w.fsw = fsw
	w.addWatchesLocked()
	w.rescanGapsLocked(ts)
}

func (w *Watcher) sortedDirs() []string {
	dirs := make([]string, 0, len(w.dirs))
	for d := range w.dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

func (w *Watcher) setWatchesLocked() {
	n := 0
	for _, ok := range w.watched {
		if ok {
			n++
		}
	}
	w.m.watches.Set(float64(n))
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
	v, why := judge(&t.fig, t.gap, w.watched[t.dir], w.cfg.MinMatched, w.cfg.MinObserved)
	t.why = why
	if r := t.fig.Ratio(); r != nil {
		w.m.ratio.WithLabelValues(t.s.ID).Set(*r)
	}
	proven := 0.0
	if v == VerdictProven {
		proven = 1
	}
	w.m.proven.WithLabelValues(t.s.ID).Set(proven)
	from := t.fig.Verdict
	if v == from {
		return
	}
	t.fig.Verdict = v
	w.dirty = true
	if from == "" {
		return // the first verdict of a new surface is no transition
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
		Metadata: map[string]any{"surface": t.s.ID, "from": from, "to": v, "reason": truncate(why, 200), "declared_mode": t.s.Journal.Mode},
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
	if reason != "" {
		w.stateReset = reason
		w.log.Warn("coverage: persisted figures reset", "file", w.statePath, "reason", reason)
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
// every accrueFlush when only the observed time grew.
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
	w.dirty = false
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
		Window: w.cfg.Window.String(), SettleIdle: w.cfg.SettleIdle.String(), SettleCap: w.cfg.SettleCap.String(),
		MinMatched: w.cfg.MinMatched, MinTime: w.cfg.MinObserved.String(), Rescan: w.cfg.Rescan.String(),
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
			sr.Why = t.why
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// pauseReader stops the event reader (a test seam): the kernel's queue
// fills while it is paused. resumeReader lets it go on.
func (w *Watcher) pauseReader()  { w.pause.Lock() }
func (w *Watcher) resumeReader() { w.pause.Unlock() }
