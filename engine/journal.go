package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/tidwall/wal"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// Errors re-exported from the shared types package so that engine callers
// need one import.
var (
	ErrInvalid        = types.ErrInvalid
	ErrUnknownSurface = types.ErrUnknownSurface
	ErrPolicy         = types.ErrPolicy
	ErrCompacted      = types.ErrCompacted
	ErrClosed         = types.ErrClosed
	ErrReadOnly       = types.ErrReadOnly
	ErrFailed         = types.ErrFailed
	ErrQueueFull      = types.ErrQueueFull
	ErrLocked         = types.ErrLocked
	// ErrEventIDConflict: a writer-supplied event_id already names a
	// stored record with other content (a *types.FieldError).
	ErrEventIDConflict = types.ErrEventIDConflict
)

// Subdirectories of a data directory.
const (
	hotDirName        = "hot"
	stateDirName      = "state"
	quarantineDirName = "quarantine"
	recoveryFileName  = "last-recovery.json"
)

// Journal is an open State Change Journal. All methods are safe for
// concurrent use. A Journal opened for writing holds the data directory's
// lock until Close.
type Journal struct {
	dir     string
	hotDir  string
	opts    options
	log     *slog.Logger
	wal     *wal.Log // nil when read-only
	lock    *fsx.Lock
	metrics *metrics
	intern  *interner

	view atomic.Pointer[view]

	// closeMu orders submissions against Close: senders hold it shared,
	// Close takes it exclusively to flip closed.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	reqs chan *request
	// syncq carries written batches to the syncer, which fsyncs them
	// while the committer writes the next batch; unbuffered, so at most
	// one batch is written ahead of the fsync in progress.
	syncq    chan *syncBatch
	syncDone chan struct{}
	inflight atomic.Int64 // batches handed to the syncer and not yet answered
	ctrl     chan func()  // work the committer runs between batches

	// viewMu serialises publish (the syncer, the committer, Refresh);
	// readers never take it.
	viewMu sync.Mutex
	// refreshMu lets one Refresh of a read-only journal run at a time.
	refreshMu sync.Mutex
	// compactMu lets one compaction run at a time.
	compactMu      sync.Mutex
	lastCompaction atomic.Pointer[CompactionSummary]
	// compactFail and checkpointFail hold the last failed compaction and
	// checkpoint until one succeeds (Status reports them).
	compactFail    atomic.Pointer[CompactionFailure]
	checkpointFail atomic.Pointer[CompactionFailure]
	// damagedHot is set when compaction found a damaged hot segment: no
	// checkpoint is written any more, so the next open scans every
	// segment and reports the damage.
	damagedHot atomic.Bool
	autoStop   chan struct{}
	autoDone   chan struct{}
	autoKick   chan struct{}
	stopc      chan struct{}
	donec      chan struct{}
	async      chan Change
	asyncD     chan struct{}

	failErr atomic.Pointer[error] // sticky write failure
	// lockLost is set when the LOCK file was removed or replaced under
	// this writer (a sticky failure of its own kind).
	lockLost atomic.Bool
	lockStop chan struct{}
	lockDone chan struct{}

	fsyncs       atomic.Uint64
	batches      atomic.Uint64
	appended     atomic.Uint64
	asyncDropped atomic.Uint64
	durableSeq   atomic.Uint64
	dedupeIDs    atomic.Int64

	recovery *Recovery // what open repaired, nil when nothing

	// Owned by the committer goroutine.
	c committerState

	selfLists map[string][]string
	seed      []dedupeSeed                  // event ids read at open, consumed by loadDedupe
	changed   atomic.Pointer[chan struct{}] // closed and replaced when the view changes
	watchOnce sync.Once
	watcher   *fsnotify.Watcher // read-only followers: file events of hot/ and archive/
	watchC    chan struct{}
	lostID    uint16        // interned id of lostSurface
	archives  *archiveCache // open archives, bounded
	// fromCheckpoint is true when Open loaded the index checkpoint, whose
	// figures already include the archives.
	fromCheckpoint bool
	skipCheckpoint bool // the checkpoint proved stale at this open
	// ident is the journal identity (state/identity.json); nil only in a
	// directory from before identities until its first writable open
	// writes one, and in a read-only view of such a directory.
	ident *journalIdentity
	// ckptMeta is this journal's checkpoint as loadHot read it, used or
	// not: the records it saw durable must be in the files (lostDurable).
	ckptMeta *checkpointMeta
}

// lostSurface is the index's surface for tombstones left by Repair; it
// can never collide with a registry id (ids start with a letter).
const lostSurface = "!lost"

type dedupeSeed struct {
	id string
	e  dedupeEntry
}

// loadDedupe fills the dedupe window from the records read at open, in
// commit order.
func (j *Journal) loadDedupe() {
	now := j.opts.now().UnixNano()
	for _, s := range j.seed {
		j.c.dedupe.put(s.id, s.e, now)
	}
	j.seed = nil
	// Never past retention: a checkpoint may name ids of records that
	// retention removed after it was written.
	if v := j.view.Load(); v != nil {
		j.c.dedupe.expire(now, v.horizon())
	}
}

// storedSeed describes a stored record with a writer-supplied id for the
// dedupe window.
func (j *Journal) storedSeed(seq uint64, committed int64, surface string, payload []byte) (dedupeSeed, error) {
	st, err := parseStoredIdentity(payload)
	if err != nil {
		return dedupeSeed{}, err
	}
	return dedupeSeed{id: st.id, e: dedupeEntry{seq: seq, surface: j.surfaceName(surface), hash: st.hash, occurred: st.occurred, committed: committed}}, nil
}

// surfaceName returns the registry's copy of a surface id, so the dedupe
// window shares one string per surface.
func (j *Journal) surfaceName(s string) string {
	if sf, ok := j.opts.registry.Lookup(s); ok {
		return sf.ID
	}
	return s
}

// seedFromArchives adds to the dedupe seeds, before those of the hot log,
// the writer-supplied ids of archived records committed inside the
// window, newest first up to the window's count bound. Open calls it
// whenever the index checkpoint (which holds the window) is not used, so
// a retry of an archived record is still a duplicate after a crash
// between a compaction and its checkpoint, or with the checkpoint lost.
// Archives carry no writer-id flag: an id is taken as journal-generated,
// and skipped, when it names its own record (eventid.go).
func (j *Journal) seedFromArchives(v *view) {
	window := j.opts.dedupeWindow
	max := j.opts.dedupeMax
	if max <= 0 {
		max = DefaultDedupeMax
	}
	budget := max - len(j.seed)
	if window <= 0 || budget <= 0 {
		return
	}
	now := j.opts.now().UnixNano()
	cutoff := now - int64(window)
	floor := v.horizon()
	var got []dedupeSeed // newest first
	// An archive that cannot be read leaves a hole in the window, not a
	// journal that cannot open: the hole is logged with the archive's
	// name (its records' retries may be stored again), and the archive's
	// damage is reported by every read that reaches it and by validate.
	incomplete := func(a *archiveSeg, err error) {
		j.log.Warn("dedupe window incomplete: the ids of an unreadable archive are not remembered; retries of its records may be stored again",
			"archive", a.name, "first", a.first, "last", a.last, "err", err)
	}
	for i := len(v.archives) - 1; i >= 0 && len(got) < budget; i-- {
		a := v.archives[i]
		if a.err != nil {
			incomplete(a, a.err)
			continue
		}
		if a.footer.Records == 0 {
			continue
		}
		if a.newestCommit(now) < cutoff {
			break // older archives hold older records
		}
		ar, release, err := j.archives.get(a.path)
		if err != nil {
			incomplete(a, err)
			continue
		}
		var bad error
		err = ar.ScanReverse(0, nil, func(r archive.Record) bool {
			if r.Seq < floor {
				return false
			}
			if r.Time < cutoff || isTombstone(r.Payload) {
				return true
			}
			if id, ok := canonicalEventID(r.Payload); ok && isGeneratedFor(id, r.Seq, r.Time) {
				return true // most records: skipped before parsing the rest
			}
			s, err := j.storedSeed(r.Seq, r.Time, r.Label, r.Payload)
			if err != nil {
				bad = fmt.Errorf("record %d: %w", r.Seq, err)
				return true
			}
			got = append(got, s)
			return len(got) < budget
		})
		release()
		if err == nil {
			err = bad
		}
		if err != nil {
			incomplete(a, err)
		}
	}
	if len(got) == 0 {
		return
	}
	slices.Reverse(got)
	j.seed = append(got, j.seed...)
	j.log.Info("rebuilt the dedupe window from the archives", "ids", len(got), "window", window.String())
}

// Recovery describes what Open repaired. It is logged, kept in
// state/last-recovery.json, reported by Status and counted in metrics.
type Recovery struct {
	At              time.Time     `json:"at"`
	Cuts            []segment.Cut `json:"cuts"`
	CompletedTrunc  int           `json:"completed_truncation_steps,omitempty"`
	SweptTempFiles  []string      `json:"swept_temp_files,omitempty"`
	RecordsAfterCut uint64        `json:"last_sequence_after_cut"`
	// RemovedBelowHorizon counts archives an interrupted retention run
	// left below the persisted horizon, removed at open.
	RemovedBelowHorizon int `json:"removed_below_horizon,omitempty"`
	// CompletedCompaction is true when an archive was written but the
	// hot log not yet cut; open cut it.
	CompletedCompaction bool `json:"completed_compaction,omitempty"`
}

// dropBelow returns the archives that hold sequences at or above floor.
func dropBelow(as []*archiveSeg, floor uint64) []*archiveSeg {
	for len(as) > 0 && as[0].last < floor {
		as = as[1:]
	}
	return as
}

// missingIdentity reports a directory without an identity whose version 2
// archives say it had one.
func missingIdentity(archives []*archiveSeg, id *journalIdentity) error {
	if id != nil {
		return nil
	}
	for _, a := range archives {
		if a.err == nil && a.footer.Version != archive.FormatV1 {
			return &IntegrityError{File: relPath(stateDirName, identityFileName), Err: ErrIntegrity, Problem: fmt.Sprintf(
				"is missing, but %s was written by journal %s: restore the identity file (its journal_id must be %s), or run state-journal-validate --repair to rewrite it from the archives",
				a.name, journalIDString(a.footer.JournalID), journalIDString(a.footer.JournalID))}
		}
	}
	return nil
}

// identityFirst is called when the hot scan refused an entry as another
// journal's (err): when the archives show that the identity file itself
// is the stranger, or is missing, that is the error to report (every hot
// entry disagrees with a replaced identity); otherwise err stands.
func (j *Journal) identityFirst(err error) error {
	var ce *segment.CorruptionError
	if !errors.As(err, &ce) || ce.Cause != segment.CauseForeign {
		return err
	}
	archives, aerr := loadArchives(filepath.Join(j.dir, archiveDirName), j.ident)
	if aerr != nil {
		return err
	}
	if ierr := strangerIdentity(archives, j.ident); ierr != nil {
		return ierr
	}
	if ierr := missingIdentity(archives, j.ident); ierr != nil {
		return ierr
	}
	return err
}

// checkedArchives checks the archives loadArchives returned and the
// horizon file against the identity and against each other: refused archives
// (another journal, name and footer disagree), overlapping archives, a
// damaged or foreign horizon file, a horizon that no retention run could
// have written, and, without an identity, a file that says one existed.
// Any of these fails the open; nothing is changed on disk.
func (j *Journal) checkedArchives(archives []*archiveSeg, hotFirst uint64) ([]*archiveSeg, horizonRead, error) {
	if err := strangerIdentity(archives, j.ident); err != nil {
		return nil, horizonRead{}, err
	}
	if err := refusedArchive(archives); err != nil {
		return nil, horizonRead{}, err
	}
	if err := checkArchiveOverlaps(archives); err != nil {
		return nil, horizonRead{}, err
	}
	if err := missingIdentity(archives, j.ident); err != nil {
		return nil, horizonRead{}, err
	}
	hz, err := readHorizon(j.dir, j.ident)
	if err != nil {
		return nil, horizonRead{}, err
	}
	if err := checkHorizon(hz, archives, hotFirst); err != nil {
		return nil, horizonRead{}, err
	}
	return archives, hz, nil
}

// overlapWithHot checks the one case where the hot log may start inside
// the archives: a compaction wrote the newest archive and a crash came
// before it cut the hot log. That archive decides what is cut only when
// it is verified against the hot records (verifyArchiveAgainstHot); it
// returns the archive's last sequence, or 0 when nothing overlaps.
func overlapWithHot(archives []*archiveSeg, v *view) (uint64, error) {
	n := len(archives)
	if n == 0 || len(v.entries) == 0 || v.first > archives[n-1].last {
		return 0, nil
	}
	a := archives[n-1]
	if n > 1 && v.first <= archives[n-2].last {
		return 0, &IntegrityError{File: relPath(archiveDirName, archives[n-2].name), Err: ErrIntegrity, Problem: fmt.Sprintf(
			"the hot log starts at %d, inside this archive and the next: an interrupted compaction leaves at most one archive overlapping the hot log; nothing was cut", v.first)}
	}
	if a.err != nil {
		return 0, &IntegrityError{File: relPath(archiveDirName, a.name), Err: ErrIntegrity, Problem: fmt.Sprintf(
			"overlaps hot sequences %d..%d but cannot be read (%v): the hot log still holds them, so nothing was cut; move the archive out of archive/ and reopen", v.first, a.last, a.err)}
	}
	if a.last > v.last() {
		return 0, fmt.Errorf("archive %s ends at sequence %d, past the hot log's last %d: %w: %w", a.name, a.last, v.last(), errListingRaced, segment.ErrCorrupt)
	}
	if err := verifyArchiveAgainstHot(a, v); err != nil {
		return 0, err
	}
	return a.last, nil
}

// reportHoles logs every hole: open succeeds (reads that do not cross a
// hole still answer, writes go on), every read that crosses one fails.
func (j *Journal) reportHoles(as []*archiveSeg) {
	for _, h := range holes(as) {
		j.log.Error("sequences are missing from the journal; reads that cross them fail", "first", h.First, "last", h.Last, "err", h.Error())
	}
}

// reconcileArchives loads and checks the archives and the horizon file
// (checkedArchives), then finishes what a crash interrupted: archives
// below the persisted horizon are removed, and a hot log that still holds
// records a verified archive already has is cut. Sequences no file holds
// become holes in the view. A directory without an identity gets one
// here (a new journal, or an upgrade from before identities).
func (j *Journal) reconcileArchives(v *view, rec *Recovery) (*view, error) {
	dir := filepath.Join(j.dir, archiveDirName)
	hadData := v.last() >= v.first
	archives, err := loadArchives(dir, j.ident)
	if err != nil {
		return nil, err
	}
	archives, hz, err := j.checkedArchives(archives, v.first)
	if err != nil {
		return nil, err
	}
	hadData = hadData || len(archives) > 0 || hz.present
	floor := hz.value
	for len(archives) > 0 && archives[0].last < floor {
		if err := j.opts.fs.Remove(archives[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if j.fromCheckpoint {
			// The checkpoint still counted these records.
			v.surf = subtractArchived(v.surf, archives[:1], j.intern)
		}
		rec.RemovedBelowHorizon++
		archives = archives[1:]
	}
	if rec.RemovedBelowHorizon > 0 {
		if err := j.opts.fs.SyncDir(dir); err != nil {
			return nil, err
		}
	}
	upto, err := overlapWithHot(archives, v)
	if err != nil {
		return nil, err
	}
	if upto > 0 {
		j.log.Warn("completing an interrupted compaction: cutting hot records a verified archive holds", "archive", archives[len(archives)-1].name, "sequence", upto)
		if err := j.wal.TruncateFront(upto + 1); err != nil {
			return nil, fmt.Errorf("complete compaction: truncate hot log: %w", err)
		}
		if err := fsx.SyncDir(j.hotDir); err != nil {
			return nil, err
		}
		nv := v.compacted(upto, nil, j.hotDir) // the archive is in the list already
		closeDroppedSegs(v, nv)                // not published: open releases the handles itself
		v = nv
		rec.CompletedCompaction = true
	}
	if j.ident == nil {
		if err := j.initIdentity(hadData, archives, hz, v.last()+1); err != nil {
			return nil, err
		}
		v.ident = j.ident
	}
	if hz.legacy {
		// The identity records this version 1 horizon; rewrite it as
		// version 2 (a crash before this leaves the recorded v1 file).
		if err := j.writeHorizon(hz.value); err != nil {
			return nil, fmt.Errorf("rewrite the version 1 horizon file: %w", err)
		}
	}
	archives = findHoles(archives, floor, v.first, hz.present, filepath.Base(v.segs[0].path))
	j.reportHoles(archives)
	v.archives, v.horizonFloor = archives, floor
	j.addArchiveStats(v)
	j.lastCompaction.Store(readCompaction(filepath.Join(j.dir, stateDirName)))
	return v, nil
}

// initIdentity writes the identity of a directory that has none: a new
// journal, or (hadData) one from before identities, whose version 1
// archives and horizon it records so that only those stay accepted
// without a journal id, and hotNext, the hot log's next sequence (its
// version 1 entries are the ones below it).
func (j *Journal) initIdentity(hadData bool, archives []*archiveSeg, hz horizonRead, hotNext uint64) error {
	var up *identityUpgrade
	if hadData {
		up = &identityUpgrade{At: time.Now().UTC(), LegacyArchives: legacyArchives(archives), LegacyHotNext: hotNext}
		if hz.legacy {
			up.LegacyHorizon = hz.value
		}
	}
	id := newIdentity(up)
	if err := writeIdentity(j.opts.fs, j.dir, id); err != nil {
		return err
	}
	j.ident = id
	if up != nil {
		j.log.Warn("upgraded a data directory from before journal identities: wrote state/identity.json",
			"journal_id", id.JournalID, "legacy_archives", len(up.LegacyArchives), "legacy_horizon", up.LegacyHorizon, "legacy_hot_next", up.LegacyHotNext)
	} else {
		j.log.Info("new journal: wrote state/identity.json", "journal_id", id.JournalID)
	}
	return nil
}

// addArchiveStats adds the archives' records to the per-surface figures;
// a surface with no hot record takes its last change from the newest
// archive that holds it.
func (j *Journal) addArchiveStats(v *view) {
	if j.fromCheckpoint {
		return
	}
	grow := func(id uint16) {
		for int(id) >= len(v.surf) {
			v.surf = append(v.surf, surfaceStat{})
		}
	}
	for _, a := range v.archives {
		for label, n := range a.footer.LabelCounts {
			// A record that lists other surfaces counts for each of them.
			for _, s := range labelSurfaces(label) {
				id := j.intern.id(s)
				grow(id)
				v.surf[id].Records += n
			}
		}
	}
	for i := len(v.archives) - 1; i >= 0; i-- {
		a := v.archives[i]
		if a.err != nil {
			continue
		}
		seen := map[string]bool{}
		for label := range a.footer.LabelCounts {
			for _, name := range labelSurfaces(label) {
				id := j.intern.id(name)
				grow(id)
				if v.surf[id].LastSequence != 0 || seen[name] {
					continue
				}
				seen[name] = true
				ar, err := archive.Open(a.path)
				if err != nil {
					continue
				}
				_ = ar.ScanReverse(0, a.labelsFor([]string{name}), func(r archive.Record) bool {
					if c, err := decodeStored(r.Payload, r.Seq); err == nil {
						var e hotEntry
						j.fillEntry(&e, &c, r.Time)
						s := &v.surf[id]
						s.LastSequence, s.LastUnix, s.LastChangeType, s.LastSeverity = r.Seq, e.unix, e.ctype, e.sev
						v.noteHint(e.hint, r.Seq)
						if name != c.Surface {
							hint := registry.SnapshotNone
							if rs, ok := j.opts.registry.Lookup(name); ok {
								hint = rs.SnapshotHint
							}
							v.noteHint(j.intern.id(hint), r.Seq)
						}
					}
					return false
				})
				ar.Close()
			}
		}
	}
}

// Open opens (creating if needed) the journal in dir. Opened for writing,
// it takes the directory lock (a second writer gets a *fsx.LockedError
// matching ErrLocked), completes interrupted truncations, cuts a torn or
// zero-filled tail into a quarantine file, and refuses to open on interior
// damage (a *segment.CorruptionError matching segment.ErrCorrupt) which
// only Repair fixes. Opened ReadOnly, it changes nothing on disk.
func Open(dir string, opts ...Option) (*Journal, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		dir:      abs,
		hotDir:   filepath.Join(abs, hotDirName),
		opts:     o,
		log:      o.logger.With("dir", abs),
		intern:   newInterner(),
		archives: newArchiveCache(defaultOpenArchives),
	}
	j.selfLists = make(map[string][]string)
	for _, s := range o.registry.Surfaces() {
		j.intern.id(s.ID)
		j.selfLists[s.ID] = []string{s.ID}
	}
	for _, h := range o.registry.SnapshotIDs() {
		j.intern.id(h)
	}
	j.intern.id(registry.SnapshotNone)
	j.lostID = j.intern.id(lostSurface)
	if o.readOnly {
		if err := j.openReadOnly(); err != nil {
			return nil, err
		}
	} else if err := j.openWriter(); err != nil {
		return nil, err
	}
	if o.reg != nil {
		m, err := newMetrics(j, o.reg)
		if err != nil {
			j.shutdown()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		j.metrics = m
		if j.recovery != nil {
			for _, c := range j.recovery.Cuts {
				m.recoveryCuts.WithLabelValues(string(c.Cause)).Inc()
				m.recoveryCutB.WithLabelValues(string(c.Cause)).Add(float64(c.Bytes))
			}
		}
	}
	if !o.readOnly {
		j.startCommitter()
		j.startAuto()
	}
	return j, nil
}

func (j *Journal) openReadOnly() error {
	fi, err := os.Stat(j.dir)
	if err != nil {
		return fmt.Errorf("open journal read-only: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("open journal read-only: %s is not a directory", j.dir)
	}
	v, err := j.loadReadOnlyView()
	if err != nil {
		return err
	}
	j.publish(v)
	j.recovery = readRecovery(filepath.Join(j.dir, stateDirName))
	j.lastCompaction.Store(readCompaction(filepath.Join(j.dir, stateDirName)))
	return nil
}

// loadReadOnlyView reads the journal's files into a view without
// changing any of them. It makes the same checks as a writer's open
// (checkedArchives, overlapWithHot, holes) and fails where it fails. A
// file a compaction removes while it reads (a hot segment cut, an archive
// past retention) makes it look again (lookAgain).
func (j *Journal) loadReadOnlyView() (*view, error) {
	var v *view
	err := j.lookAgain(func(int) error {
		var err error
		v, err = j.loadReadOnlyViewOnce()
		return err
	})
	return v, err
}

func (j *Journal) loadReadOnlyViewOnce() (*view, error) {
	id, err := readIdentity(j.dir)
	if err != nil {
		return nil, err
	}
	j.ident = id
	segs, _, err := segment.ListHotSegments(j.hotDir)
	if err != nil {
		return nil, err
	}
	v, _, err := j.loadHot(segs, true)
	if err != nil {
		return nil, j.identityFirst(err)
	}
	archives, err := loadArchives(filepath.Join(j.dir, archiveDirName), id)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		// No hot log yet: an empty view that starts after the archives.
		v.first = 1
		if n := len(archives); n > 0 {
			v.first = archives[n-1].last + 1
		}
	}
	archives, hz, err := j.checkedArchives(archives, v.first)
	if err != nil {
		return nil, err
	}
	floor := hz.value
	archives = dropBelow(archives, floor)
	upto, err := overlapWithHot(archives, v)
	if err != nil {
		return nil, err
	}
	if upto > 0 {
		// A compaction wrote the archive but had not cut the hot log yet:
		// the verified archive is authoritative, the hot copies are skipped.
		v.skipArchived(upto)
	}
	firstHot := ""
	if len(segs) > 0 {
		firstHot = filepath.Base(segs[0].Path)
	}
	v.archives, v.horizonFloor = findHoles(archives, floor, v.first, hz.present, firstHot), floor
	j.addArchiveStats(v)
	return v, nil
}

func (j *Journal) openWriter() (err error) {
	if err := fsx.MkdirAllDurable(j.dir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	holder := fsx.Holder{PID: os.Getpid(), Command: j.opts.holder, StartedAt: time.Now().UTC()}
	holder.Hostname, _ = os.Hostname()
	lock, err := fsx.AcquireLock(j.dir, holder)
	if err != nil {
		return err
	}
	j.lock = lock
	defer func() {
		if err != nil {
			j.shutdown()
		}
	}()
	for _, d := range []string{j.hotDir, filepath.Join(j.dir, stateDirName), filepath.Join(j.dir, archiveDirName)} {
		if err := fsx.MkdirAllDurable(d, 0o755); err != nil {
			return err
		}
	}
	rec := &Recovery{At: time.Now().UTC()}
	swept, err := fsx.SweepTempFS(j.opts.fs, filepath.Join(j.dir, stateDirName))
	if err != nil {
		return err
	}
	rec.SweptTempFiles = append(rec.SweptTempFiles, swept...)
	swept, err = fsx.SweepTempFS(j.opts.fs, filepath.Join(j.dir, archiveDirName))
	if err != nil {
		return err
	}
	rec.SweptTempFiles = append(rec.SweptTempFiles, swept...)
	// The identity decides which checkpoint, horizon and archives belong
	// here; read it before any of them.
	if j.ident, err = readIdentity(j.dir); err != nil {
		return err
	}
	if s, err := sweepWALTemp(j.hotDir); err != nil {
		return err
	} else {
		rec.SweptTempFiles = append(rec.SweptTempFiles, s...)
	}
	segs, fix, err := segment.ListHotSegments(j.hotDir)
	if err != nil {
		return err
	}
	if len(fix) > 0 {
		j.log.Warn("completing an interrupted hot-log truncation", "steps", len(fix))
		if err := segment.ApplyHotFixups(j.hotDir, fix); err != nil {
			return err
		}
		rec.CompletedTrunc = len(fix)
		if segs, _, err = segment.ListHotSegments(j.hotDir); err != nil {
			return err
		}
	}
	if len(segs) == 0 {
		if err := missingHotLog(j.dir, j.ident); err != nil {
			return err
		}
	}
	v, cuts, err := j.loadHot(segs, false)
	if err != nil {
		return j.identityFirst(err)
	}
	defer func() {
		if err != nil {
			closeDroppedSegs(v, &view{}) // the open failed: release every handle
		}
	}()
	rec.Cuts = cuts
	w, err := wal.Open(j.hotDir, walOptions(j.opts.segmentSize))
	if err != nil {
		return fmt.Errorf("open hot log: %w", err)
	}
	j.wal = w
	if err := fsx.SyncDir(j.hotDir); err != nil {
		return err
	}
	last, err := w.LastIndex()
	if err != nil {
		return fmt.Errorf("open hot log: %w", err)
	}
	if last != v.last() {
		return fmt.Errorf("open hot log: tidwall/wal sees last index %d, the scan saw %d: %w", last, v.last(), segment.ErrCorrupt)
	}
	if len(v.segs) == 0 {
		// A new log: tidwall/wal created its first segment.
		v.segs = []hotSegInfo{openSeg(1, filepath.Join(j.hotDir, segment.HotSegmentName(1)))}
		v.first = 1
	}
	rv, err := j.reconcileArchives(v, rec)
	if err != nil {
		return err // the deferred cleanup releases v's handles
	}
	v = rv
	if !j.fromCheckpoint {
		// The checkpoint holds the dedupe window; without it the window
		// is rebuilt from the hot log (seeded by loadHot) and the
		// archives.
		j.seedFromArchives(v)
	}
	j.publish(v)
	j.durableSeq.Store(v.last())
	j.c.init(j, v)
	if len(rec.Cuts) > 0 || rec.CompletedTrunc > 0 || len(rec.SweptTempFiles) > 0 || rec.RemovedBelowHorizon > 0 || rec.CompletedCompaction {
		rec.RecordsAfterCut = v.last()
		j.recovery = rec
		if err := writeRecovery(j.opts.fs, filepath.Join(j.dir, stateDirName), rec); err != nil {
			return err
		}
	} else {
		j.recovery = readRecovery(filepath.Join(j.dir, stateDirName))
	}
	return nil
}

// walOptions are the tidwall/wal options of the hot log (Open and every
// reopen of the committer use them).
func walOptions(segmentSize int) *wal.Options {
	return &wal.Options{
		NoSync:           true, // the committer fsyncs once per batch
		SegmentSize:      segmentSize,
		LogFormat:        wal.Binary,
		SegmentCacheSize: 1,
		NoCopy:           true,
		AllowEmpty:       true,
		DirPerms:         0o755,
		FilePerms:        0o640,
	}
}

// sweepWALTemp removes tidwall/wal's "*.TEMP" files: a crash inside its
// atomic write leaves them, and it never reads them.
func sweepWALTemp(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".TEMP") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return out, err
			}
			out = append(out, e.Name())
		}
	}
	if len(out) > 0 {
		return out, fsx.SyncDir(dir)
	}
	return nil, nil
}

// loadHot scans every hot segment, checks it and builds the index.
// Writers cut tail damage of the last segment into quarantine; readers
// stop at it. Interior damage fails either way.
func (j *Journal) loadHot(segs []segment.HotSegment, readOnly bool) (*view, []segment.Cut, error) {
	v := &view{intern: j.intern}
	v.surf = make([]surfaceStat, 0, 64)
	startIdx, startOff, startSeq := 0, int64(0), uint64(0)
	fromCk := false
	if !j.skipCheckpoint {
		j.ckptMeta = nil
	}
	if len(segs) > 0 && !j.skipCheckpoint {
		ck, err := j.loadCheckpoint(segs)
		switch {
		case err == nil:
			v, startIdx, startOff, startSeq, fromCk = ck.v, ck.segIdx, ck.off, ck.seq, true
			if !readOnly {
				for _, d := range ck.dedupe {
					j.seed = append(j.seed, dedupeSeed{id: d.ID, e: dedupeEntry{seq: d.Seq, surface: j.surfaceName(d.Srf), hash: d.Hash, occurred: d.Occurred, committed: d.At}})
				}
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			j.logCheckpointNotUsed(err)
		}
	}
	j.fromCheckpoint = fromCk
	// The segments before startIdx are not scanned: the checkpoint's
	// fingerprint (CRC32C of each segment's first and last bytes, which
	// hold journal-tagged envelopes) vouches for them; another journal's
	// file fails it and the index is rebuilt by the scan below.
	var cuts []segment.Cut
	expect := startSeq
	for i := startIdx; i < len(segs); i++ {
		s := segs[i]
		off, seq := int64(0), s.FirstSeq
		skipBelow := uint64(0) // sequences the checkpoint already indexed
		if fromCk && i == startIdx {
			off, seq = startOff, startSeq
			if i == len(segs)-1 {
				// tidwall/wal parses the tail segment itself without
				// checksums; check every frame of it here so damage is
				// reported with its place, not as a bare "log corrupt".
				off, seq, skipBelow = 0, s.FirstSeq, startSeq
			}
		} else {
			if i == 0 {
				v.first = s.FirstSeq
				expect = s.FirstSeq
			}
			if s.FirstSeq != expect {
				return nil, nil, &segment.CorruptionError{Segment: s.Path, Offset: 0, Sequence: expect, Cause: segment.CauseBadSequence,
					Err: fmt.Errorf("%w: segment starts at sequence %d, the previous one ends at %d", segment.ErrCorrupt, s.FirstSeq, expect-1)}
			}
			v.segs = append(v.segs, openSeg(s.FirstSeq, s.Path))
		}
		var decErr error
		mtime := fileMtime(s.Path)
		last := i == len(segs)-1
		res, err := segment.Scan(s, segment.ScanOptions{From: off, Seq: seq, Newest: last}, func(he segment.HotEntry) bool {
			if err := checkHotEntry(j.ident, s.Path, he.Off, he.Envelope); err != nil {
				decErr = err
				return false
			}
			if he.Seq < skipBelow {
				return true
			}
			e, err := j.indexEntry(v, he, mtime)
			if err != nil {
				decErr = &segment.CorruptionError{Segment: s.Path, Offset: he.Off, Sequence: he.Seq, Cause: segment.CauseBadChecksum, Err: fmt.Errorf("%w: %w", segment.ErrCorrupt, err)}
				return false
			}
			v.entries = append(v.entries, e)
			return true
		})
		if decErr != nil {
			return nil, nil, decErr
		}
		expect = res.NextSeq
		size := res.Size
		if err != nil {
			tail, isTail := segment.TailDamage(err)
			var damage *segment.CorruptionError
			switch {
			case !errors.As(err, &damage):
				return nil, nil, err
			case readOnly && isTail:
				// A writer may be in the middle of this entry, or a crash
				// left it; either way it was never acknowledged.
				size = res.GoodEnd
			case !readOnly && isTail:
				cut, err := segment.RecoverTail(j.opts.fs, tail, filepath.Join(j.dir, quarantineDirName))
				if err != nil {
					return nil, nil, err
				}
				cuts = append(cuts, cut)
				size = res.GoodEnd
				// Say so now: if the open fails later, the cut is still
				// logged and recorded (Open rewrites the record when it
				// completes).
				j.log.Warn("hot log recovered: cut a damaged tail", "segment", cut.Segment, "offset", cut.Offset,
					"bytes", cut.Bytes, "cause", string(cut.Cause), "sequence", cut.Sequence, "quarantine", cut.Quarantine)
				if err := writeRecovery(j.opts.fs, filepath.Join(j.dir, stateDirName), &Recovery{At: cut.At, Cuts: cuts}); err != nil {
					return nil, nil, err
				}
			default:
				return nil, nil, fmt.Errorf("%w; run `journalctl state-journal-validate --repair` to quarantine the damage", damage)
			}
		}
		if skipBelow > 0 {
			v.bytes += size - startOff
		} else {
			v.bytes += size - off
		}
	}
	if fromCk && expect < startSeq {
		// The files end before the checkpoint does (records it covered
		// were never durable, and a crash took them): rebuild.
		j.logCheckpointNotUsed(&CheckpointError{Path: relPath(stateDirName, checkpointFileName), Reason: CheckpointStale, Err: fmt.Errorf(
			"%w: it covers records up to sequence %d, the log ends before sequence %d (records it covered were never durable)", errStaleCheckpoint, startSeq-1, expect)})
		closeDroppedSegs(v, &view{})
		j.seed = nil
		j.skipCheckpoint = true
		v2, cuts2, err := j.loadHot(segs, readOnly)
		return v2, append(cuts, cuts2...), err
	}
	if len(segs) == 0 {
		v.first = 1
	} else if err := lostDurable(j.ckptMeta, expect-1); err != nil {
		return nil, nil, err
	}
	v.ident = j.ident
	return v, cuts, nil
}

// indexEntry decodes the fields the index needs from a stored entry of
// a segment last modified at segMtime (unix nanos; it caps the commit
// time of entries that do not carry one).
func (j *Journal) indexEntry(v *view, he segment.HotEntry, segMtime int64) (hotEntry, error) {
	seq, payload := he.Seq, he.Payload
	if isTombstone(payload) {
		// Tombstones have a posting list of their own: every query
		// returns them.
		for int(j.lostID) >= len(v.post) {
			v.post = append(v.post, nil)
		}
		v.post[j.lostID] = append(v.post[j.lostID], seq)
		// Repair writes tombstones without a commit time; the segment's
		// last write bounds it.
		unix := he.Committed
		if unix <= 0 {
			unix = segMtime
		}
		return hotEntry{off: uint32(he.Off), length: uint32(he.FrameLen), unix: unix,
			surface: j.intern.id(lostSurface), ctype: record.CodeNoChangeType}, nil
	}
	c, err := decodeStored(payload, seq)
	if err != nil {
		return hotEntry{}, err
	}
	e := hotEntry{off: uint32(he.Off), length: uint32(he.FrameLen)}
	committed := commitTimeOf(he.Envelope, c.OccurredAt, segMtime)
	j.fillEntry(&e, &c, committed)
	v.noteSurface(e, seq)
	v.notePost(e, seq)
	if e.multi != 0 {
		surf, hints := j.alsoOf(&c)
		v.noteAlso(e, seq, surf, hints)
	}
	if !j.opts.readOnly && he.Flags&segment.FlagWriterEventID != 0 {
		s, err := j.storedSeed(seq, committed, c.Surface, payload)
		if err != nil {
			return hotEntry{}, err
		}
		j.seed = append(j.seed, s)
	}
	return e, nil
}

// fillEntry fills the index entry of c, committed at committed (unix
// nanos): the time every journal decision on the record runs on.
func (j *Journal) fillEntry(e *hotEntry, c *Change, committed int64) {
	e.unix = committed
	e.surface = j.intern.id(c.Surface)
	e.ctype, _ = record.ChangeTypeCode(c.ChangeType)
	e.sev, _ = record.SeverityCode(c.Severity)
	e.hint = j.intern.id(c.SnapshotHint)
	e.agg = aggHash(c.AggregateType, c.AggregateID)
	e.corr = corrHash(c.CorrelationID)
	e.multi = 0
	if len(c.ChangedSurfaces) > 1 || len(c.ChangedSurfaces) == 1 && c.ChangedSurfaces[0] != c.Surface {
		e.multi = 1
	}
}

// alsoOf returns the interned ids of the surfaces c lists in
// changed_surfaces besides its own, and of each one's snapshot hint from
// the registry ("none" for a surface the registry no longer has).
func (j *Journal) alsoOf(c *Change) (surf, hints []uint16) {
	for _, cs := range c.ChangedSurfaces {
		if cs == c.Surface {
			continue
		}
		surf = append(surf, j.intern.id(cs))
		hint := registry.SnapshotNone
		if s, ok := j.opts.registry.Lookup(cs); ok {
			hint = s.SnapshotHint
		}
		hints = append(hints, j.intern.id(hint))
	}
	return surf, hints
}

func (v *view) noteSurface(e hotEntry, seq uint64) {
	for int(e.surface) >= len(v.surf) {
		v.surf = append(v.surf, surfaceStat{})
	}
	s := &v.surf[e.surface]
	s.Records++
	s.LastSequence = seq
	s.LastUnix = e.unix
	s.LastChangeType = e.ctype
	s.LastSeverity = e.sev
}

// Dir returns the journal's absolute data directory.
func (j *Journal) Dir() string { return j.dir }

// Registry returns the surface registry the journal checks changes
// against.
func (j *Journal) Registry() *registry.Registry { return j.opts.registry }

// SetHolderAddress records the address a server listens on in the lock
// file, so a second writer's error names it and CLI writes can find it.
func (j *Journal) SetHolderAddress(addr, socket string) error {
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	if j.closed {
		return types.ErrClosed
	}
	if j.lock == nil {
		return types.ErrReadOnly
	}
	h := fsx.Holder{PID: os.Getpid(), Command: j.opts.holder, Address: addr, Socket: socket, StartedAt: time.Now().UTC()}
	h.Hostname, _ = os.Hostname()
	return j.lock.SetHolder(h)
}

// Close stops accepting changes, commits and fsyncs everything already
// submitted, closes the hot log and releases the lock. It is safe to call
// more than once.
func (j *Journal) Close() error {
	j.closeMu.Lock()
	if j.closed {
		j.closeMu.Unlock()
		return nil
	}
	j.closed = true
	w := j.watcher
	j.closeMu.Unlock()
	j.notifyChanged() // wake waiters: Wait returns ErrClosed
	if w != nil {
		w.Close()
	}
	if j.asyncD != nil {
		close(j.async)
		<-j.asyncD
	}
	if j.autoStop != nil {
		close(j.autoStop)
		<-j.autoDone
	}
	if j.lockStop != nil {
		close(j.lockStop)
		<-j.lockDone
	}
	// Wait for a compaction a caller is running; Compact refuses to start
	// once closed is set.
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.stopc != nil {
		close(j.stopc)
		<-j.donec
		if j.failure() == nil && !j.damagedHot.Load() {
			// The committer has stopped: the view and the dedupe window are
			// final and consistent with the files.
			if err := j.writeCheckpoint(j.view.Load(), j.c.checkpointDedupe()); err != nil {
				j.log.Warn("could not write the index checkpoint", "err", err)
			}
		}
	}
	return j.shutdown()
}

func (j *Journal) shutdown() error {
	var errs []error
	j.archives.close()
	j.c.closeTails()
	if v := j.view.Load(); v != nil {
		// Readers still pinning a handle finish; nothing newer is
		// published, so later reads say ErrClosed (pinView).
		closeDroppedSegs(v, &view{})
	}

	if j.wal != nil {
		if j.failure() == nil {
			if err := j.wal.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("final fsync: %w", err))
			}
		}
		if err := j.wal.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
			errs = append(errs, fmt.Errorf("close hot log: %w", err))
		}
		j.wal = nil
	}
	j.metrics.unregister()
	if j.lock != nil {
		if err := j.lock.Release(); err != nil {
			errs = append(errs, err)
		}
		j.lock = nil
	}
	return errors.Join(errs...)
}

func (j *Journal) isClosed() bool {
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	return j.closed
}

func (j *Journal) failure() error {
	if p := j.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail makes a write-path failure sticky.
func (j *Journal) fail(err error) error {
	wrapped := fmt.Errorf("%w: %w", types.ErrFailed, err)
	if j.failErr.CompareAndSwap(nil, &wrapped) {
		j.log.Error("hot log write failed; refusing writes until reopened", "err", err)
		if j.metrics != nil {
			j.metrics.writeErrors.Inc()
		}
	}
	return j.failure()
}

// loseLock makes the loss of the writer lock a sticky failure. The error
// matches both ErrFailed and fsx.ErrLockLost.
func (j *Journal) loseLock(err error) error {
	wrapped := fmt.Errorf("%w: %w", types.ErrFailed, err)
	first := !j.lockLost.Swap(true)
	j.failErr.CompareAndSwap(nil, &wrapped)
	if first {
		j.log.Error("writer lock lost; refusing writes until reopened", "err", err)
		if j.metrics != nil {
			j.metrics.writeErrors.Inc()
		}
	}
	return j.failure()
}

// watchLock checks the writer lock every lockCheckInterval, so an idle
// writer notices a removed or replaced LOCK too (a busy one notices at its
// next batch). Once lost, it waits until neither the committer nor a
// compaction can write any more, then releases the directory lock so that
// a new writer can start: two writers never write the directory at the
// same time.
func (j *Journal) watchLock() {
	defer close(j.lockDone)
	t := time.NewTicker(j.opts.lockCheck)
	defer t.Stop()
	for {
		select {
		case <-j.lockStop:
			return
		case <-t.C:
		}
		err := j.lock.Check()
		if err == nil {
			continue
		}
		j.loseLock(err)
		j.compactMu.Lock()
		_ = j.inCommitter(func() error { return nil }) // the committer is between batches and failed
		j.lock.Release()
		j.compactMu.Unlock()
		j.log.Error("released the data directory after losing the writer lock; this journal writes nothing more", "dir", j.dir)
		return
	}
}

// Holder describes the process holding a data directory's writer lock.
type Holder = fsx.Holder

// LockHolder reports whether a live process holds dir's writer lock and
// who it is (pid, command, server address and socket). It takes no lock
// and changes nothing.
func LockHolder(dir string) (bool, *Holder) { return fsx.HeldBy(dir) }
