package coverage

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"
)

// Gap reasons, the label of state_journal_coverage_gaps_total.
const (
	gapOverflow = "overflow"
	gapWatch    = "watch"
	gapRestart  = "restart"
	gapRescan   = "rescan"
)

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
		w.dirty, w.urgent = true, true
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
	w.dirty, w.urgent = true, true
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
		fp, err := w.hash.file(p, w.cfg.MaxFileBytes)
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
	fsw, err := newFSWatcher()
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
