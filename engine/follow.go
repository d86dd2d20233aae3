package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// notifyChanged wakes everyone waiting in Wait.
func (j *Journal) notifyChanged() {
	ch := make(chan struct{})
	if old := j.changed.Swap(&ch); old != nil {
		close(*old)
	}
}

// waitChan returns a channel closed at the next change.
func (j *Journal) waitChan() <-chan struct{} {
	for {
		if p := j.changed.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if j.changed.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// Head returns the newest committed sequence (0 when empty).
func (j *Journal) Head() uint64 {
	v := j.view.Load()
	return v.first + uint64(len(v.entries)) - 1
}

// Wait blocks until a record with a sequence greater than after is
// committed, or ctx ends; it returns the head. On a journal opened
// ReadOnly it follows the files another process writes (see Refresh), so
// a CLI can tail a journal without a server.
func (j *Journal) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		ch := j.waitChan()
		if h := j.Head(); h > after {
			return h, nil
		}
		if j.isClosed() {
			return j.Head(), ErrClosed
		}
		if j.opts.readOnly {
			if _, err := j.Refresh(); err != nil {
				return j.Head(), err
			}
			if h := j.Head(); h > after {
				return h, nil
			}
			t := time.NewTimer(followFallback)
			select {
			case <-ctx.Done():
				t.Stop()
				return j.Head(), ctx.Err()
			case <-ch:
			case <-j.fileEvents():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		select {
		case <-ctx.Done():
			return j.Head(), ctx.Err()
		case <-ch:
		}
	}
}

// StaleItem is one snapshot or surface that changed after a cursor.
type StaleItem struct {
	ID           string `json:"id"`
	LastSequence uint64 `json:"last_sequence"`
}

// StaleSet answers Stale: what a consumer holding snapshots as of cursor
// Since must refetch.
type StaleSet struct {
	Since     uint64      `json:"since"`
	Head      uint64      `json:"head"`
	Horizon   uint64      `json:"horizon"`
	Resync    bool        `json:"resync"`
	Snapshots []StaleItem `json:"snapshots"`
	Surfaces  []StaleItem `json:"surfaces"`
}

// Stale returns the snapshot hints and surfaces changed after since, with
// the latest sequence of each. It costs in proportion to the number of
// snapshots and surfaces, never to the journal's size. A cursor below the
// horizon answers Resync (every snapshot listed) and ErrCompacted, and a
// cursor before a hole answers Resync and the *HoleError (ErrHole): the
// consumer must refetch everything.
func (j *Journal) Stale(since uint64) (StaleSet, error) {
	v := j.view.Load()
	st := StaleSet{Since: since, Head: v.first + uint64(len(v.entries)) - 1, Horizon: v.horizon(), Snapshots: []StaleItem{}, Surfaces: []StaleItem{}}
	if since > 0 && since+1 < st.Horizon {
		st.Resync = true
		for _, h := range j.opts.registry.SnapshotIDs() {
			st.Snapshots = append(st.Snapshots, StaleItem{ID: h, LastSequence: st.Head})
		}
		return st, fmt.Errorf("%w: cursor %d, oldest readable sequence %d", types.ErrCompacted, since, st.Horizon)
	}
	for _, h := range holes(v.archives) {
		if h.Last > since {
			// What changed in the missing sequences is unknown: everything
			// may be stale.
			st.Resync = true
			for _, id := range j.opts.registry.SnapshotIDs() {
				st.Snapshots = append(st.Snapshots, StaleItem{ID: id, LastSequence: st.Head})
			}
			return st, fmt.Errorf("stale since %d: %w", since, h)
		}
	}
	for id, last := range v.hintLast {
		if last > since {
			name := j.intern.name(uint16(id))
			if name != registry.SnapshotNone {
				st.Snapshots = append(st.Snapshots, StaleItem{ID: name, LastSequence: last})
			}
		}
	}
	for id := range v.surf {
		if s := v.surf[id]; s.LastSequence > since && uint16(id) != j.lostID {
			st.Surfaces = append(st.Surfaces, StaleItem{ID: j.intern.name(uint16(id)), LastSequence: s.LastSequence})
		}
	}
	return st, nil
}

// Refresh brings a ReadOnly journal up to date with the files: it reads
// the entries appended since the last look and, when a compaction or
// retention changed the segments, reloads. It reports whether anything
// changed. On a writing journal it does nothing. A file that a
// compaction removes between listing and reading it is not an error: it
// looks again and reloads.
func (j *Journal) Refresh() (bool, error) {
	if !j.opts.readOnly {
		return false, nil
	}
	j.refreshMu.Lock()
	defer j.refreshMu.Unlock()
	var changed bool
	err := j.lookAgain(func(attempt int) error {
		var err error
		changed, err = j.refreshLocked(attempt > 0)
		return err
	})
	return changed, err
}

// readRetries bounds how often a read-only reader looks again when the
// files it listed changed under it (a compaction or retention at work).
const readRetries = 20

// lookAgain runs look, a read of files another process may change under
// it, and runs it again when it failed in a way a concurrent compaction or
// retention can cause (readerShouldLookAgain) and the names in hot/,
// archive/ and state/ changed while it looked: the failure came from files
// moving under the look. Every step of a compaction or retention changes a
// name (an archive or segment appears or goes, a temp file is renamed),
// and every state between the steps is one a reader accepts (the
// compaction crash tests open each read-only), so a look over files that
// held still reports its error at once: that is the files' own state. No
// sleeping: each retry follows a change the writer made; readRetries
// bounds them under a writer that never pauses.
func (j *Journal) lookAgain(look func(attempt int) error) error {
	var err error
	for attempt := 0; attempt < readRetries; attempt++ {
		before := j.fileNames()
		if err = look(attempt); err == nil || !readerShouldLookAgain(err) {
			return err
		}
		if slices.Equal(before, j.fileNames()) {
			return err
		}
	}
	return err
}

// fileNames lists the names in the directories a compaction or retention
// changes, for lookAgain to tell whether they changed.
func (j *Journal) fileNames() []string {
	var out []string
	for _, d := range []string{hotDirName, archiveDirName, stateDirName} {
		ents, err := os.ReadDir(filepath.Join(j.dir, d))
		if err != nil {
			out = append(out, d+"/: "+err.Error())
			continue
		}
		for _, e := range ents {
			out = append(out, d+"/"+e.Name())
		}
	}
	return out
}

// errListingRaced marks a disagreement between the hot segments and the
// archives that a reader which listed the hot log before a compaction
// wrote its archive (and cut the hot log) sees: an archive that ends past
// the hot log's last sequence. For the writer, who holds the lock, it is
// damage; a read-only reader looks again and reports it only when it
// persists.
var errListingRaced = errors.New("the files changed while they were listed")

// readerShouldLookAgain reports whether a read-only reader's error may
// come from files a concurrent compaction or retention moved while it
// listed them: a file gone, an archive newer than the hot log it listed,
// archives and a hot log that seem to overlap or leave a hole. A reader
// takes no lock, so it looks again while the files change under it
// (lookAgain) and reports the problem once they hold still and still show
// it; real damage stays.
func readerShouldLookAgain(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, errListingRaced) ||
		errors.Is(err, ErrIntegrity) || errors.Is(err, ErrHole)
}

// refreshLocked is Refresh with refreshMu held; reload forces a full
// reload. It builds the next view from the published one (next, or
// reloaded) and publishes it.
func (j *Journal) refreshLocked(reload bool) (bool, error) {
	v := j.view.Load()
	segs, _, err := segment.ListHotSegments(j.hotDir)
	if err != nil {
		return false, err
	}
	if len(segs) == 0 {
		return false, nil
	}
	archived, _ := os.ReadDir(filepath.Join(j.dir, archiveDirName))
	// A view that skipped hot copies an archive already holds (a
	// compaction between writing an archive and cutting the hot log)
	// reloads too: its entries do not start at its first segment.
	structural := reload || len(v.segs) == 0 || v.first != v.segs[0].first || segs[0].FirstSeq != v.segs[0].first || len(segs) < len(v.segs) ||
		countArchives(archived) != archiveFiles(v.archives)
	for i := 0; !structural && i < len(v.segs); i++ {
		structural = segs[i].FirstSeq != v.segs[i].first
	}
	if !structural && v.ident == nil {
		// A writer upgraded the directory since this view was read: its
		// new entries carry the new identity's tag; reload with it.
		if id, err := readIdentity(j.dir); err != nil {
			return false, err
		} else if id != nil {
			structural = true
		}
	}
	if structural {
		fresh, err := j.loadReadOnlyView()
		if err != nil {
			return false, err
		}
		j.publish(v.reloaded(fresh))
		return true, nil
	}
	nv := v.next() // the appended transition: what the writer added since
	tail := len(v.segs) - 1
	start, seq := int64(0), v.segs[tail].first
	if n := len(v.entries); n > 0 && v.last() >= v.segs[tail].first {
		e := v.entries[n-1]
		start, seq = int64(e.off)+int64(e.length), v.last()+1
	}
	added := 0
	for i := tail; i < len(segs); i++ {
		s := segs[i]
		if i > tail {
			nv.addSegment(openSeg(s.FirstSeq, s.Path))
			start, seq = 0, s.FirstSeq
		}
		if s.FirstSeq != seq && start == 0 && i > tail && nv.first+uint64(len(nv.entries)) != s.FirstSeq {
			return false, fmt.Errorf("follow: segment %s starts at %d, expected %d", s.Path, s.FirstSeq, nv.first+uint64(len(nv.entries)))
		}
		var decErr error
		mtime := fileMtime(s.Path)
		res, err := segment.Scan(s, segment.ScanOptions{From: start, Seq: seq, Newest: i == len(segs)-1}, func(he segment.HotEntry) bool {
			if err := checkHotEntry(nv.ident, s.Path, he.Off, he.Envelope); err != nil {
				decErr = err
				return false
			}
			e, err := j.indexEntry(nv, he, mtime)
			if err != nil {
				decErr = err
				return false
			}
			nv.entries = append(nv.entries, e)
			added++
			return true
		})
		if decErr != nil {
			return false, decErr
		}
		if _, tail := segment.TailDamage(err); err != nil && !tail {
			return false, fmt.Errorf("follow: %w", err)
		}
		// Tail damage in the newest segment is a write in progress (or a
		// crash's leftover the writer cuts at its next open): the view
		// stops before it.
		nv.bytes += res.GoodEnd - start
	}
	if added == 0 && len(nv.segs) == len(v.segs) {
		return false, nil
	}
	j.publish(nv)
	return true, nil
}

func countArchives(ents []os.DirEntry) int {
	n := 0
	for _, e := range ents {
		if _, _, ok := archive.ParseFileName(e.Name()); ok {
			n++
		}
	}
	return n
}

// followFallback bounds how long a read-only follower waits when no file
// event arrives (a file system without inotify, or a missed event).
const followFallback = 250 * time.Millisecond

// fileEvents returns a channel that receives when the hot or archive
// directory changes. The watcher starts on first use and stops at Close.
// Without inotify it returns nil, and Wait falls back to polling.
func (j *Journal) fileEvents() <-chan struct{} {
	j.watchOnce.Do(func() {
		j.closeMu.RLock()
		defer j.closeMu.RUnlock()
		if j.closed {
			return // Close has run (or runs now): no watcher to leak
		}
		w, err := fsnotify.NewWatcher()
		if err != nil {
			j.log.Debug("follow: no file watcher, polling", "err", err)
			return
		}
		for _, d := range []string{j.hotDir, filepath.Join(j.dir, archiveDirName)} {
			if err := w.Add(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				j.log.Debug("follow: cannot watch", "dir", d, "err", err)
			}
		}
		j.watcher = w
		j.watchC = make(chan struct{}, 1)
		go func() {
			for {
				select {
				case _, ok := <-w.Events:
					if !ok {
						return
					}
				case _, ok := <-w.Errors:
					if !ok {
						return
					}
					// An overflow means missed events: wake the follower
					// to rescan, like any other event.
				}
				select {
				case j.watchC <- struct{}{}:
				default:
				}
			}
		}()
	})
	return j.watchC
}

// FollowEvent is one call of a Follow callback: a record that matched,
// or (Change nil) a tick that says the follower is alive and how far it
// has considered the journal.
type FollowEvent struct {
	// Change is the next record that matched, oldest first; nil on a tick.
	Change *Change
	// Cursor is the sequence up to which every record has been
	// considered: a follower that persists it and resumes with
	// Query.After = Cursor misses nothing and sees nothing twice.
	Cursor uint64
	// Head is the newest committed sequence when the record or tick was
	// read, so Head - Cursor is how far the follower lags.
	Head uint64
	// Horizon is the oldest readable sequence at that moment.
	Horizon uint64
	// Drained marks the last record of a read that reached the head as
	// it stood: nothing more matched when it was read. A follower that
	// batches flushes here. (Cursor == Head says the same only when the
	// newest record matched; under a filter it seldom does.)
	Drained bool
}

// FollowOptions tunes Follow.
type FollowOptions struct {
	// Tick is how long Follow may stay silent: when nothing matched for
	// Tick, fn is called with a tick event (Change nil). 0 means no
	// ticks.
	Tick time.Duration
	// Batch is how many records one read fetches (default 1000).
	Batch int
	// Pace, when set, spaces the reads at least this far apart: once
	// caught up, Follow sleeps until Pace after its last read and reads
	// what committed meanwhile, instead of waking at every group commit.
	// For a follower that needs records within a fraction of a second,
	// not within a commit: under a heartbeat storm an unpaced follower of
	// a quiet surface reads once per commit and finds nothing each time.
	Pace time.Duration
}

// Follow calls fn for every record after q.After (a cursor even when 0)
// that matches q, oldest first, and then for each matching record as it
// is committed, until ctx ends (ctx.Err() is returned), fn returns an
// error (returned as it is), or the journal cannot be read. q.NewestFirst
// and q.Limit are ignored. A cursor that falls below the horizon, at the
// start or because compaction overtook a slow follower, returns an error
// matching ErrCompacted; one before a hole, ErrHole. On a journal opened
// ReadOnly it follows the files another process writes (Wait refreshes).
//
// It is the one follow loop of the project: the HTTP follow stream, the
// CLI's -f, the relay and the coverage matcher all stand on it.
func (j *Journal) Follow(ctx context.Context, q Query, opt FollowOptions, fn func(FollowEvent) error) error {
	q.NewestFirst = false
	q.HasAfter = true
	q.Limit = opt.Batch
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	cursor := q.After
	lastSent := time.Now()
	for {
		q.After = cursor
		readAt := time.Now()
		res, err := j.Query(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for i := range res.Changes {
			cursor = res.Changes[i].Sequence
			drained := !res.More && i == len(res.Changes)-1
			if err := fn(FollowEvent{Change: &res.Changes[i], Cursor: cursor, Head: res.Head, Horizon: res.Horizon, Drained: drained}); err != nil {
				return err
			}
		}
		if res.More {
			continue
		}
		// Every record up to the head was considered.
		cursor = max(cursor, res.Head)
		if len(res.Changes) > 0 {
			lastSent = time.Now()
		} else if opt.Tick > 0 && time.Since(lastSent) >= opt.Tick {
			if err := fn(FollowEvent{Cursor: cursor, Head: res.Head, Horizon: res.Horizon}); err != nil {
				return err
			}
			lastSent = time.Now()
		}
		if opt.Pace > 0 {
			t := time.NewTimer(opt.Pace - time.Since(readAt))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		wait := time.Duration(0)
		if opt.Tick > 0 {
			wait = max(opt.Tick-time.Since(lastSent), time.Millisecond)
		}
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if wait > 0 {
			wctx, cancel = context.WithTimeout(ctx, wait)
		}
		_, err = j.Wait(wctx, cursor)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}
