package coverage

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/agentruntime/statejournal/engine"
)

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
// force), yielding before each (see yield).
func (w *Watcher) settleDueLocked(now time.Time, force bool) {
	for k, s := range w.settling {
		if force || now.Sub(s.last) >= w.cfg.SettleIdle || now.Sub(s.first) >= w.cfg.SettleCap {
			delete(w.settling, k)
			yield()
			w.settledLocked(s.t, k.path, s.first, now)
		}
	}
}

// settledLocked fingerprints a settled path and, when its content
// changed, decides the change or waits for its record.
func (w *Watcher) settledLocked(t *target, path string, first, now time.Time) {
	fp, err := w.hash.file(path, w.cfg.MaxFileBytes)
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
	t.forgetRecords() // the backfill brings them again
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
	for _, r := range t.exact[c.fp] {
		if !r.used && absDur(r.at.Sub(c.at)) <= window {
			return r
		}
	}
	return nil
}

// addRecord keeps a followed record for matching: by fingerprint when it
// carries one, else in commit-time order.
func (t *target) addRecord(r *rec) {
	if r.fp != "" {
		if t.exact == nil {
			t.exact = map[string][]*rec{}
		}
		t.exact[r.fp] = append(t.exact[r.fp], r)
		t.exactOrder = append(t.exactOrder, r)
		if len(t.exactOrder) > maxRecordsPerSurface {
			t.forgetExact(len(t.exactOrder) - maxRecordsPerSurface*3/4) // the oldest quarter at once
		}
		return
	}
	// Records come in commit order, so this is nearly always an append.
	if n := len(t.records); n == 0 || !t.records[n-1].at.After(r.at) {
		t.records = append(t.records, r)
	} else {
		k := sort.Search(n, func(k int) bool { return t.records[k].at.After(r.at) })
		t.records = slices.Insert(t.records, k, r)
	}
	if len(t.records) > maxRecordsPerSurface {
		// Forget the oldest quarter at once, not one per record.
		t.records = slices.Delete(t.records, 0, len(t.records)-maxRecordsPerSurface*3/4)
	}
}

// forgetExact forgets the n oldest records with a fingerprint.
func (t *target) forgetExact(n int) {
	for _, r := range t.exactOrder[:n] {
		rs := t.exact[r.fp]
		if i := slices.Index(rs, r); i >= 0 {
			rs = slices.Delete(rs, i, i+1)
		}
		if len(rs) == 0 {
			delete(t.exact, r.fp)
		} else {
			t.exact[r.fp] = rs
		}
	}
	t.exactOrder = slices.Delete(t.exactOrder, 0, n)
}

// expireRecords forgets the records committed before keep.
func (t *target) expireRecords(keep time.Time) {
	n := 0
	for n < len(t.records) && t.records[n].at.Before(keep) {
		n++
	}
	if n > 0 {
		t.records = slices.Delete(t.records, 0, n)
	}
	n = 0
	for n < len(t.exactOrder) && t.exactOrder[n].at.Before(keep) {
		n++
	}
	if n > 0 {
		t.forgetExact(n)
	}
}

// forgetRecords drops every followed record.
func (t *target) forgetRecords() {
	t.records, t.exact, t.exactOrder = nil, nil, nil
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
		for l >= 0 && t.records[l].used {
			l--
		}
		for r < len(t.records) && t.records[r].used {
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
	w.recordOfLocked(c.Surface, fp, c.CommittedAt)
	for i, id := range c.ChangedSurfaces {
		if id != c.Surface && slices.Index(c.ChangedSurfaces, id) == i { // each surface once
			w.recordOfLocked(id, fp, c.CommittedAt)
		}
	}
}

// recordOfLocked takes a record for surface id, when it is observed.
func (w *Watcher) recordOfLocked(id, fp string, at time.Time) {
	t := w.byID[id]
	if t == nil {
		return
	}
	if fp != "" {
		if k := slices.IndexFunc(t.pending, func(pc *change) bool { return pc.fp == fp && absDur(pc.at.Sub(at)) <= w.cfg.Window }); k >= 0 {
			pc := t.pending[k]
			t.pending = slices.Delete(t.pending, k, k+1)
			w.matchedLocked(t, pc, true)
			return
		}
	}
	t.addRecord(&rec{at: at, fp: fp})
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
		t.expireRecords(keep)
		if t.active && len(t.pending) == 0 && now.After(t.activeUntil) {
			t.active = false
			t.forgetRecords()
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
	t.mx.observed.Inc()
	t.mx.matched.Inc()
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
	t.mx.observed.Inc()
	t.mx.unjournaled.Inc()
	w.log.Warn("coverage: unjournaled change", "surface", t.s.ID, "path", miss.Path, "at", at, "fingerprint", c.fp, "window", w.cfg.Window)
	w.dirty, w.urgent = true, true
	w.reverdictLocked(t)
}
