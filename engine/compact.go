package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tidwall/wal"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// Retention bounds the journal. Zero fields do not bound. The oldest
// archives are removed first; the hot log is never removed, only
// compacted, so retention needs compaction to run.
//
// MaxBytes is what the data directory may hold (hot log and archives).
// The hot log needs HotHeadroom of it for itself (the active segment and
// a sealed one waiting for compaction), so archives are kept within
// MaxBytes minus the larger of HotHeadroom and what the hot log holds
// now. A MaxBytes below MinRetentionBytes (the headroom plus one segment
// of room for archives) is refused with a *RetentionError instead of
// deleting every archive.
type Retention struct {
	MaxBytes   int64         `json:"max_bytes"`   // hot + archive bytes on disk
	MaxAge     time.Duration `json:"max_age"`     // archives whose newest record is older go; JSON: a duration string
	MaxRecords uint64        `json:"max_records"` // readable records
}

// DefaultRetention is what a laptop can live with: 1 GiB, 30 days, ten
// million records.
func DefaultRetention() Retention {
	return Retention{MaxBytes: 1 << 30, MaxAge: 30 * 24 * time.Hour, MaxRecords: 10_000_000}
}

// HotHeadroom is the share of Retention.MaxBytes the hot log keeps for
// itself with hot segments of segmentSize bytes: the active segment, and
// a sealed segment waiting for compaction. Front truncation removes whole
// segment files and needs no space of its own.
func HotHeadroom(segmentSize int) int64 { return 2 * int64(segmentSize) }

// MinRetentionBytes is the smallest Retention.MaxBytes allowed with hot
// segments of segmentSize bytes: the hot log's headroom plus one segment
// of room for archives (an archive is a compressed segment, so that is
// room for several).
func MinRetentionBytes(segmentSize int) int64 { return HotHeadroom(segmentSize) + int64(segmentSize) }

// ErrRetention marks a retention setting the journal refuses (a
// *RetentionError says which and what is allowed).
var ErrRetention = errors.New("retention setting not allowed")

// RetentionError is a MaxBytes too small for the hot log's own headroom:
// under it compaction would delete every archive it writes.
type RetentionError struct {
	Field       string // "max_bytes"
	Value       int64
	Minimum     int64 // MinRetentionBytes(SegmentSize)
	SegmentSize int
}

func (e *RetentionError) Error() string {
	return fmt.Sprintf("%s %d is below the minimum of %d bytes (%s): the hot log keeps two %d-byte segments (%s) for itself "+
		"and archives need room of at least one more segment; raise %s to at least %s or use smaller hot segments",
		e.Field, e.Value, e.Minimum, formatBytes(e.Minimum), e.SegmentSize, formatBytes(HotHeadroom(e.SegmentSize)), e.Field, formatBytes(e.Minimum))
}

// Unwrap returns ErrRetention.
func (e *RetentionError) Unwrap() error { return ErrRetention }

// checkRetention refuses a MaxBytes below the minimum for segmentSize.
func checkRetention(r Retention, segmentSize int) error {
	if r.MaxBytes < 0 || r.MaxAge < 0 {
		return fmt.Errorf("%w: retention limits must not be negative", ErrRetention)
	}
	if min := MinRetentionBytes(segmentSize); r.MaxBytes > 0 && r.MaxBytes < min {
		return &RetentionError{Field: "max_bytes", Value: r.MaxBytes, Minimum: min, SegmentSize: segmentSize}
	}
	return nil
}

// formatBytes renders n in binary units, exactly when it is a whole
// number of them (4MiB, 12MiB, 1536KiB).
func formatBytes(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// CompactOptions configures one compaction.
type CompactOptions struct {
	// DryRun reports what would be compacted, coalesced and removed, and
	// changes nothing. It runs the same planner as the real run and
	// encodes every archive (into no file) to measure it, so on an idle
	// journal its report equals the real run's, sizes included.
	DryRun bool
	// SealActive compacts the active (tail) segment too, so everything
	// written before the call is covered. Automatic compaction leaves it.
	SealActive bool
	// Coalesce keeps only the newest heartbeat per surface and aggregate
	// in each window of this length (0: no coalescing). Other change types
	// are never coalesced.
	Coalesce time.Duration
	// Retention overrides the journal's retention for this run.
	Retention *Retention
	// Progress, when set, is called with input bytes done and total.
	Progress func(done, total int64)
}

// CompactReport says what a compaction did (or, dry, would do). Every
// input sequence is accounted for: Records (archived, tombstones
// included) + Coalesced is the number of sequences compacted.
type CompactReport struct {
	DryRun        bool             `json:"dry_run"`
	Archives      []ArchiveReport  `json:"archives"`
	Records       uint64           `json:"records"`
	Coalesced     uint64           `json:"coalesced"`
	Tombstones    uint64           `json:"tombstones"`
	InputBytes    int64            `json:"input_bytes"`
	OutputBytes   int64            `json:"output_bytes"`
	Ratio         float64          `json:"ratio"`
	Removed       []RemovedArchive `json:"removed"`
	HorizonBefore uint64           `json:"horizon_before"`
	HorizonAfter  uint64           `json:"horizon_after"`
	Duration      time.Duration    `json:"duration"` // written as a duration string (jsonformat.go)
	Message       string           `json:"message"`
}

// ArchiveReport is one archive a compaction wrote. Records counts what
// the archive holds (tombstones included); Coalesced the heartbeats
// coalescing dropped; Records + Coalesced = LastSequence -
// FirstSequence + 1.
type ArchiveReport struct {
	Name          string `json:"name"`
	FirstSequence uint64 `json:"first_sequence"`
	LastSequence  uint64 `json:"last_sequence"`
	Records       uint64 `json:"records"`
	Coalesced     uint64 `json:"coalesced"`
	Tombstones    uint64 `json:"tombstones"`
	InputBytes    int64  `json:"input_bytes"`
	OutputBytes   int64  `json:"output_bytes"`
}

// RemovedArchive is one archive retention removed.
type RemovedArchive struct {
	Name          string `json:"name"`
	FirstSequence uint64 `json:"first_sequence"`
	LastSequence  uint64 `json:"last_sequence"`
	Records       uint64 `json:"records"`
	Bytes         int64  `json:"bytes"`
	Reason        string `json:"reason"`
	// Unshipped counts the records above the retention floor (see
	// RetentionFloor) the archive held: only max_bytes removes them.
	Unshipped uint64 `json:"unshipped,omitempty"`
}

// CompactionFailure describes the last failed compaction or checkpoint
// (Status reports it until one succeeds). Reason is no_space (the disk
// or file system is full), damaged_input (a hot segment failed its
// checks: nothing was compacted, cut or removed; run
// state-journal-validate --repair) or error.
type CompactionFailure struct {
	At     time.Time `json:"at"`
	Stage  string    `json:"stage"` // compact or checkpoint
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	// RetryAt is when automatic compaction tries again (zero when it is
	// off).
	RetryAt *time.Time `json:"retry_at,omitempty"`
}

// Reasons of a CompactionFailure.
const (
	FailureNoSpace      = "no_space"
	FailureDamagedInput = "damaged_input"
	FailureError        = "error"
)

// failureReason classifies a compaction or checkpoint error.
func failureReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG):
		return FailureNoSpace
	case errors.Is(err, segment.ErrCorrupt) || errors.Is(err, errAccounting):
		return FailureDamagedInput
	}
	return FailureError
}

// errAccounting marks a compaction whose output would not account for
// every sequence of its input.
var errAccounting = errors.New("compaction does not account for every sequence")

// compactStep is a step of a compaction that has just completed: the
// points where crash tests kill a child process (compactHook), in the
// order a compaction passes them.
type compactStep uint8

const (
	// stepArchiveWritten: an archive is durable and verified; the hot log
	// still holds its records.
	stepArchiveWritten compactStep = iota + 1
	// stepHotLogClosed: inside the hot log's front cut, tidwall/wal is
	// closed (and, when the active segment goes too, the empty segment
	// after it created); no segment file is removed yet.
	stepHotLogClosed
	// stepHotTruncated: the hot log's front is cut and the compacted view
	// published.
	stepHotTruncated
	// stepHorizonWritten: retention persisted the new horizon; no archive
	// is removed yet.
	stepHorizonWritten
	// stepArchiveRemoved: retention removed the first of its archives.
	stepArchiveRemoved
)

var compactStepNames = [...]string{
	stepArchiveWritten: "archive-written",
	stepHotLogClosed:   "hot-log-closed",
	stepHotTruncated:   "hot-truncated",
	stepHorizonWritten: "horizon-written",
	stepArchiveRemoved: "archive-removed",
}

// String returns the step's name ("archive-written").
func (s compactStep) String() string {
	if int(s) < len(compactStepNames) && compactStepNames[s] != "" {
		return compactStepNames[s]
	}
	return "compactStep(" + strconv.Itoa(int(s)) + ")"
}

// parseCompactStep returns the step named name (as String writes it).
func parseCompactStep(name string) (compactStep, bool) {
	for s, n := range compactStepNames {
		if n != "" && n == name {
			return compactStep(s), true
		}
	}
	return 0, false
}

// compactHook, when set (by crash tests in a child process), is called
// after each step of a compaction.
var compactHook func(step compactStep)

func hook(step compactStep) {
	if compactHook != nil {
		compactHook(step)
	}
}

// Compact moves hot segments into zstd archives and applies retention.
// Each hot segment becomes one archive, written atomically (temp file,
// fsync, rename, directory fsync) before the hot log's front is cut, so a
// crash at any step leaves a journal that opens with every promised
// record exactly once. Every sequence of a segment is accounted for
// (archived, coalesced under an explicit window, or a tombstone kept);
// a segment that fails its checks (every frame's checksum is verified,
// whatever the index checkpoint says) is not compacted: Compact returns
// an error naming the segment, offset and sequence, and nothing is cut or
// removed. A failure (no space, damage) never stops the hot log: it is
// logged, counted in state_journal_compaction_failures_total{reason} and
// reported by Status until a compaction succeeds. Writers are not stalled
// except for the moment the front of the hot log is cut. Only one
// compaction runs at a time.
func (j *Journal) Compact(ctx context.Context, o CompactOptions) (CompactReport, error) {
	if j.opts.readOnly && !o.DryRun {
		return CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}, types.ErrReadOnly
	}
	if err := j.failure(); err != nil {
		return CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}, err
	}
	ret := j.opts.retention
	if o.Retention != nil {
		ret = *o.Retention
	}
	if err := checkRetention(ret, j.opts.segmentSize); err != nil {
		return CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}, err
	}
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.isClosed() {
		return CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}, types.ErrClosed
	}
	rep, err := j.compactLocked(ctx, o, ret)
	if o.DryRun {
		return rep, err
	}
	switch {
	case err == nil:
		j.compactFail.Store(nil)
	case ctx.Err() != nil || errors.Is(err, types.ErrClosed) || errors.Is(err, types.ErrFailed):
	default:
		j.noteFailure("compact", err)
	}
	return rep, err
}

func (j *Journal) compactLocked(ctx context.Context, o CompactOptions, ret Retention) (CompactReport, error) {
	start := time.Now()
	rep := CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}
	v := j.view.Load()
	rep.HorizonBefore = v.horizon()
	units := j.compactionUnits(v, o.SealActive)
	var total int64
	for _, u := range units {
		total += u.bytes
	}
	// A dry run plans retention on the state the real run would reach:
	// the view's archives plus the ones it measured, the hot log minus
	// the compacted segments.
	sim := retentionStateOf(v, j.opts.now().UnixNano())
	cutoff := int64(0)
	if ret.MaxAge > 0 {
		cutoff = j.opts.now().Add(-ret.MaxAge).UnixNano()
	}
	var done int64
	for k, u := range units {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ar, footer, err := j.compactUnit(u, o, func(n int64) {
			if o.Progress != nil {
				o.Progress(done+n, total)
			}
		})
		if err != nil {
			return rep, err
		}
		done += u.bytes
		rep.Archives = append(rep.Archives, ar)
		rep.Records += ar.Records
		rep.Coalesced += ar.Coalesced
		rep.Tombstones += ar.Tombstones
		rep.InputBytes += ar.InputBytes
		rep.OutputBytes += ar.OutputBytes
		// Retention after every archive, not only at the end: under a
		// backlog this frees space as soon as it can. The segments still
		// to compact count as compacted already, so a backlog does not
		// remove archives the end state has room for.
		var pending int64
		for _, p := range units[k+1:] {
			pending += p.bytes
		}
		if o.DryRun {
			sim.archives = append(sim.archives, retArchive{name: ar.Name, first: u.first, last: u.last, bytes: footer.FileBytes,
				records: footer.Records, maxTime: min(footer.MaxTime, j.opts.now().UnixNano()), ok: true})
			sim.hotBytes -= u.bytes
			sim.hotRecords -= u.last - u.first + 1
			mid := sim
			mid.hotBytes -= pending
			removed, _ := j.planRetention(mid, ret, cutoff)
			sim.archives = sim.archives[len(removed):]
			rep.Removed = append(rep.Removed, removed...)
			continue
		}
		removed, _, err := j.applyRetention(ret, cutoff, pending)
		rep.Removed = append(rep.Removed, removed...)
		if err != nil {
			return rep, err
		}
	}
	var horizon uint64
	if o.DryRun {
		removed, h := j.planRetention(sim, ret, cutoff)
		rep.Removed = append(rep.Removed, removed...)
		horizon = h
		if horizon == 0 {
			horizon = rep.HorizonBefore
			if len(rep.Removed) > 0 {
				horizon = max(horizon, rep.Removed[len(rep.Removed)-1].LastSequence+1)
			}
		}
	} else {
		removed, h, err := j.applyRetention(ret, cutoff, 0)
		rep.Removed = append(rep.Removed, removed...)
		if err != nil {
			return rep, err
		}
		horizon = h
	}
	rep.HorizonAfter = horizon
	if rep.OutputBytes > 0 {
		rep.Ratio = float64(rep.InputBytes) / float64(rep.OutputBytes)
	}
	rep.Duration = time.Since(start)
	removed := rep.Removed
	switch {
	case len(units) == 0 && len(removed) == 0:
		rep.Message = "nothing to compact: no sealed hot segment" + map[bool]string{true: "", false: " (pass SealActive to compact the active one)"}[o.SealActive] + " and nothing past retention"
	case o.DryRun:
		rep.Message = fmt.Sprintf("would compact %d segment(s) into %d archive(s) of %d bytes: %d records (%d tombstones), %d coalesced; would remove %d archive(s)",
			len(units), len(rep.Archives), rep.OutputBytes, rep.Records, rep.Tombstones, rep.Coalesced, len(removed))
	default:
		rep.Message = fmt.Sprintf("compacted %d segment(s) into %d archive(s): %d records (%d tombstones), %d coalesced, %.1fx; removed %d archive(s)",
			len(units), len(rep.Archives), rep.Records, rep.Tombstones, rep.Coalesced, rep.Ratio, len(removed))
	}
	if !o.DryRun && (len(units) > 0 || len(removed) > 0) {
		j.noteCompaction(rep)
		j.saveCheckpoint()
	}
	return rep, nil
}

// unit is a run of hot records compacted into one archive: one segment.
type unit struct {
	first, last uint64
	seg         hotSegInfo
	bytes       int64
}

// compactionUnits lists the hot segments to compact: every sealed one,
// and the active one when sealActive.
func (j *Journal) compactionUnits(v *view, sealActive bool) []unit {
	var us []unit
	last := v.last()
	if len(v.entries) == 0 {
		return nil
	}
	for i, s := range v.segs {
		end := last
		if i+1 < len(v.segs) {
			end = v.segs[i+1].first - 1
		} else if !sealActive {
			break
		}
		first := max(s.first, v.first)
		if end < first {
			continue
		}
		var n int64
		for seq := first; seq <= end; seq++ {
			n += int64(v.entries[seq-v.first].length)
		}
		us = append(us, unit{first: first, last: end, seg: s, bytes: n})
	}
	return us
}

// compactUnit archives one unit and cuts the hot log past it (dry: only
// measures the archive it would write).
func (j *Journal) compactUnit(u unit, o CompactOptions, progress func(int64)) (ArchiveReport, archive.Footer, error) {
	ar := ArchiveReport{Name: archive.FileName(u.first, u.last), FirstSequence: u.first, LastSequence: u.last}
	ur, err := j.readUnit(u, o.Coalesce, progress)
	if err != nil {
		return ar, archive.Footer{}, err
	}
	ar.Records, ar.Coalesced, ar.Tombstones, ar.InputBytes = uint64(len(ur.recs)), ur.coalesced, ur.tombstones, ur.in
	i := 0
	next := func() (archive.Record, bool, error) {
		if i == len(ur.recs) {
			return archive.Record{}, false, nil
		}
		i++
		return ur.recs[i-1], true, nil
	}
	if o.DryRun {
		footer, err := archive.Measure(next, j.archiveWriterOptions(u.first, u.last, ur.coalesced))
		if err != nil {
			return ar, footer, fmt.Errorf("measure archive %s: %w", ar.Name, err)
		}
		ar.OutputBytes = footer.FileBytes
		return ar, footer, nil
	}
	dir := filepath.Join(j.dir, archiveDirName)
	if err := fsx.MkdirAllDurableFS(j.opts.fs, dir, 0o755); err != nil {
		return ar, archive.Footer{}, err
	}
	path := filepath.Join(dir, ar.Name)
	start := time.Now()
	footer, err := archive.Write(path, next, j.archiveWriterOptions(u.first, u.last, ur.coalesced))
	if err != nil {
		return ar, footer, fmt.Errorf("write archive %s: %w", ar.Name, err)
	}
	hook(stepArchiveWritten)
	ar.OutputBytes = footer.FileBytes
	a := &archiveSeg{path: path, name: ar.Name, first: u.first, last: u.last, bytes: footer.FileBytes, footer: footer}
	// The archive must pass the checks every open applies to it before
	// the hot log gives up its records.
	if ao, err := archive.Open(path); err == nil {
		a.footer = ao.Footer()
		ao.Close() // it opens; queries reopen it through the cache
	} else {
		j.dropArchive(path)
		return ar, footer, fmt.Errorf("reopen archive %s: %w", ar.Name, err)
	}
	if err := checkArchiveRange(a); err != nil {
		j.dropArchive(path)
		return ar, footer, fmt.Errorf("%w: %w", errAccounting, err)
	}
	// The archive is durable; now the hot log gives up the same records.
	if err := j.truncateHot(u.last, a); err != nil {
		if j.failure() == nil {
			// The hot log still holds the records: the archive is a copy,
			// and removing it gives its space back.
			j.dropArchive(path)
		}
		return ar, footer, err
	}
	hook(stepHotTruncated)
	if j.metrics != nil {
		j.metrics.compactions.Inc()
		j.metrics.compactSeconds.Observe(time.Since(start).Seconds())
		j.metrics.compactIn.Add(float64(ur.in))
		j.metrics.compactOut.Add(float64(footer.FileBytes))
		j.metrics.coalesced.Add(float64(ur.coalesced))
	}
	return ar, footer, nil
}

// dropArchive removes an archive compaction wrote but did not hand over
// (the hot log still holds its records).
func (j *Journal) dropArchive(path string) {
	if err := j.opts.fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		j.log.Warn("could not remove an archive the hot log still duplicates; the next open uses it", "archive", filepath.Base(path), "err", err)
		return
	}
	_ = j.opts.fs.SyncDir(filepath.Dir(path))
}

// unitRecords is what readUnit read from a unit.
type unitRecords struct {
	recs       []archive.Record // to archive, tombstones included
	coalesced  uint64
	tombstones uint64
	in         int64
}

// readUnit reads the unit's records from its hot segment, verifying every
// frame (checksum and sequence) whatever the index checkpoint says, and
// coalesces heartbeats when a window is set. Labels and times come from
// the index, so the payloads are not decoded (only heartbeats are, when
// coalescing). It fails, naming the segment, offset and sequence, when
// the segment cannot be read whole, and refuses a result that does not
// account for every sequence of the unit.
func (j *Journal) readUnit(u unit, window time.Duration, progress func(int64)) (unitRecords, error) {
	v := j.view.Load()
	var ur unitRecords
	var bad error
	expect := u.first
	var prevTime int64
	arena := make([]byte, 0, u.bytes) // one allocation for every payload
	_, err := segment.Scan(segment.HotSegment{Path: u.seg.path, FirstSeq: u.seg.first}, segment.ScanOptions{}, func(he segment.HotEntry) bool {
		seq, payload, off := he.Seq, he.Payload, he.Off
		if seq < u.first {
			return true
		}
		if seq > u.last {
			return false
		}
		if err := checkHotEntry(v.ident, u.seg.path, he.Off, he.Envelope); err != nil {
			// Another journal's records must not be archived as this
			// journal's (the archive would carry this journal's id).
			bad = fmt.Errorf("compact: %w", err)
			return false
		}
		if seq != expect {
			bad = fmt.Errorf("%w: hot segment %s holds sequence %d at offset %d where %d was due", errAccounting, u.seg.path, seq, off, expect)
			return false
		}
		expect = seq + 1
		ur.in += int64(len(payload)) + int64(he.HeaderSize())
		start := len(arena)
		arena = append(arena, payload...)
		kept := arena[start:len(arena):len(arena)]
		if isTombstone(payload) {
			// A repaired loss stays a visible loss: the archive keeps the
			// tombstone.
			ur.recs = append(ur.recs, tombstoneArchiveRecord(seq, kept, prevTime))
			ur.tombstones++
			return true
		}
		var label string
		var unix int64
		if seq >= v.first && seq <= v.last() && v.entries[seq-v.first].surface != j.lostID {
			e := &v.entries[seq-v.first]
			label, unix = j.intern.name(e.surface), e.unix
			if e.multi != 0 {
				var others []string
				for _, id := range v.alsoOf(seq) {
					others = append(others, j.intern.name(id))
				}
				label = archiveLabel(label, others)
			}
		} else {
			f, err := peekFields(payload)
			if err != nil {
				bad = &segment.CorruptionError{Segment: u.seg.path, Offset: off, Sequence: seq, Cause: segment.CauseBadChecksum,
					Err: fmt.Errorf("%w: record does not decode: %w", segment.ErrCorrupt, err)}
				return false
			}
			label, unix = archiveLabel(f.surface, f.others), f.unix
		}
		prevTime = unix
		ur.recs = append(ur.recs, archive.Record{Seq: seq, Time: unix, Label: label, Payload: kept})
		if progress != nil && len(ur.recs)%4096 == 0 {
			progress(ur.in)
		}
		return true
	})
	// A reader never ignores its scanner's verdict: damage inside the
	// unit means the unit cannot be read whole. (Damage past it, in the
	// active segment, is a write in progress.)
	var damage *segment.CorruptionError
	switch {
	case errors.As(err, &damage) && damage.Sequence <= u.last:
		return ur, fmt.Errorf("compact sequences %d..%d: %w; nothing was compacted, cut or removed; run state-journal-validate --repair to quarantine the damage",
			u.first, u.last, damage)
	case err != nil && damage == nil:
		return ur, fmt.Errorf("compact hot segment %s: %w", u.seg.path, err)
	}
	if bad != nil {
		return ur, fmt.Errorf("compact sequences %d..%d: %w; nothing was compacted, cut or removed", u.first, u.last, bad)
	}
	if expect != u.last+1 {
		return ur, fmt.Errorf("compact sequences %d..%d: %w: hot segment %s ends at sequence %d; nothing was compacted, cut or removed",
			u.first, u.last, errAccounting, u.seg.path, expect-1)
	}
	if window > 0 {
		ur.recs = coalesceHeartbeats(ur.recs, window)
	}
	span := u.last - u.first + 1
	ur.coalesced = span - uint64(len(ur.recs))
	if window == 0 && ur.coalesced != 0 {
		return ur, fmt.Errorf("compact sequences %d..%d: %w: %d of %d sequences would be dropped with no coalescing window",
			u.first, u.last, errAccounting, ur.coalesced, span)
	}
	var kept, tombs uint64
	for i := range ur.recs {
		if ur.recs[i].Label == lostSurface {
			tombs++
		} else {
			kept++
		}
	}
	if kept+tombs+ur.coalesced != span || tombs != ur.tombstones {
		return ur, fmt.Errorf("compact sequences %d..%d: %w: %d archived + %d tombstones + %d coalesced != %d",
			u.first, u.last, errAccounting, kept, tombs, ur.coalesced, span)
	}
	return ur, nil
}

func coalesceHeartbeats(recs []archive.Record, window time.Duration) []archive.Record {
	newest := make(map[string]uint64)
	key := func(r *archive.Record, f *peeked) string {
		return r.Label + "\x00" + f.aggType + "\x00" + f.aggID + "\x00" + strconv.FormatInt(r.Time/int64(window), 10)
	}
	for i := range recs {
		if recs[i].Label == lostSurface {
			continue
		}
		f, err := peekFields(recs[i].Payload)
		if err != nil || f.changeType != "heartbeat" {
			continue
		}
		newest[key(&recs[i], &f)] = recs[i].Seq
	}
	out := recs[:0]
	for i := range recs {
		if recs[i].Label == lostSurface {
			out = append(out, recs[i]) // a tombstone is never coalesced
			continue
		}
		f, err := peekFields(recs[i].Payload)
		if err == nil && f.changeType == "heartbeat" && newest[key(&recs[i], &f)] != recs[i].Seq {
			continue
		}
		out = append(out, recs[i])
	}
	return out
}

// peeked is what compaction needs from a stored record.
type peeked struct {
	surface, changeType, aggType, aggID string
	others                              []string // changed_surfaces besides surface
	unix                                int64
}

// peekFields decodes the few fields compaction needs (record.DecodeKey).
func peekFields(payload []byte) (peeked, error) {
	w, err := record.DecodeKey(payload)
	if err != nil {
		return peeked{}, err
	}
	p := peeked{surface: w.Surface, changeType: w.ChangeType, aggType: w.AggregateType, aggID: w.AggregateID, unix: w.OccurredAt.UnixNano()}
	for _, s := range w.ChangedSurfaces {
		if s != w.Surface {
			p.others = append(p.others, s)
		}
	}
	return p, nil
}

// truncateHot cuts the hot log's front up to and including upto, in the
// committer goroutine (the only owner of the hot log), and publishes the
// compacted view, which reads those records from archive a instead. A
// failure that leaves the hot log whole and writable is returned as it
// is; only a hot log that can no longer be written (its reopen failed) is
// sticky.
func (j *Journal) truncateHot(upto uint64, a *archiveSeg) error {
	return j.mutateView(func(tip *view) (*view, error) {
		first, err := j.cutFront(tip, upto)
		if first <= tip.first {
			return nil, err // nothing was cut
		}
		if first-1 != upto {
			a = nil // cut short: the hot log still holds part of a
		}
		return tip.compacted(first-1, a, j.hotDir), err
	})
}

// cutFront removes the hot log's records up to upto and returns the
// first sequence the hot log holds afterwards (old.first when nothing was
// cut), with the error that stopped it, if any. It runs in the committer.
//
// Compaction cuts at segment boundaries, so cutFront removes whole
// segment files, oldest first, with tidwall/wal closed, and reopens it:
// unlike tidwall/wal's TruncateFront, which copies the surviving segment
// into a new file, this needs no free space, so a full disk cannot fail
// it. When everything goes (the active segment was compacted too), an
// empty segment named upto+1 is created first, which is what
// TruncateFront would leave. A crash at any point leaves segments that
// the archive duplicates, which the next open cuts. tidwall/wal is always
// reopened on what the directory holds, so its state never drifts from
// the files; only a failed reopen (or the fsync its close makes) is
// sticky.
func (j *Journal) cutFront(old *view, upto uint64) (uint64, error) {
	next := upto + 1
	idx := -1
	for i, s := range old.segs {
		if s.first == next {
			idx = i
		}
	}
	everything := idx < 0 && upto == old.last()
	if idx < 0 && !everything {
		return j.truncateFrontWAL(old, next)
	}
	drop := old.segs
	if !everything {
		drop = old.segs[:idx]
	}
	empty := ""
	if everything {
		empty = filepath.Join(j.hotDir, segment.HotSegmentName(next))
		if err := createEmptyFile(j.opts.fs, empty); err != nil {
			return old.first, fmt.Errorf("truncate hot log front to %d: create %s: %w", next, empty, err)
		}
	}
	if err := j.wal.Close(); err != nil {
		// Close fsyncs the tail: that is a failed hot-log fsync.
		return old.first, j.fail(fmt.Errorf("close hot log to truncate its front: %w", err))
	}
	hook(stepHotLogClosed)
	var cutErr error
	removed := 0
	for _, s := range drop {
		err := j.opts.fs.Remove(s.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			cutErr = fmt.Errorf("truncate hot log front to %d: remove %s: %w", next, filepath.Base(s.path), err)
			break
		}
		removed++
	}
	if cutErr != nil && everything && removed < len(drop) {
		// The old tail stays: the empty segment after it must go, or
		// tidwall/wal would append to it.
		if err := j.opts.fs.Remove(empty); err != nil && !errors.Is(err, os.ErrNotExist) {
			return old.first, j.fail(fmt.Errorf("%w; and remove %s: %w", cutErr, empty, err))
		}
	}
	if err := j.opts.fs.SyncDir(j.hotDir); err != nil && cutErr == nil {
		cutErr = fmt.Errorf("truncate hot log front to %d: %w", next, err)
	}
	w, err := wal.Open(j.hotDir, walOptions(j.opts.segmentSize))
	if err != nil {
		j.wal = nil
		return old.first, j.fail(errors.Join(cutErr, fmt.Errorf("reopen hot log after truncating its front: %w", err)))
	}
	j.wal = w
	want := old.segs[0].first // the first sequence the remaining files start at
	if removed == len(old.segs) {
		want = next
	} else if removed > 0 {
		want = old.segs[removed].first
	}
	first, ferr := w.FirstIndex()
	last, lerr := w.LastIndex()
	if ferr != nil || lerr != nil || last != old.last() || first != want {
		return old.first, j.fail(errors.Join(cutErr, fmt.Errorf("reopen hot log after truncating its front: tidwall/wal sees %d..%d (%v, %v), the journal expects %d..%d: %w",
			first, last, ferr, lerr, old.first, old.last(), segment.ErrCorrupt)))
	}
	return first, cutErr
}

// truncateFrontWAL cuts the front with tidwall/wal's TruncateFront, for a
// cut inside a segment. TruncateFront copies the rest of that segment to
// a new file first; when that fails nothing changed and tidwall/wal is
// intact. When a later step fails it marks itself corrupt: it is reopened,
// which completes the truncation from the files.
func (j *Journal) truncateFrontWAL(old *view, next uint64) (uint64, error) {
	err := j.wal.TruncateFront(next)
	if err == nil {
		if err := j.opts.fs.SyncDir(j.hotDir); err != nil {
			return next, fmt.Errorf("truncate hot log front to %d: %w", next, err)
		}
		return next, nil
	}
	cutErr := fmt.Errorf("truncate hot log front to %d: %w", next, err)
	if _, ierr := j.wal.FirstIndex(); ierr == nil {
		return old.first, cutErr // tidwall/wal is intact: nothing changed
	}
	j.wal.Close()
	_, fix, lerr := segment.ListHotSegments(j.hotDir)
	if lerr == nil {
		lerr = segment.ApplyHotFixups(j.hotDir, fix)
	}
	if lerr == nil {
		lerr = fsx.SyncDir(j.hotDir)
	}
	var w *wal.Log
	if lerr == nil {
		w, lerr = wal.Open(j.hotDir, walOptions(j.opts.segmentSize))
	}
	if lerr != nil {
		j.wal = nil
		return old.first, j.fail(errors.Join(cutErr, fmt.Errorf("reopen hot log: %w", lerr)))
	}
	j.wal = w
	first, ferr := w.FirstIndex()
	last, lerr2 := w.LastIndex()
	if ferr != nil || lerr2 != nil || last != old.last() || (first != old.first && first != next) {
		return old.first, j.fail(errors.Join(cutErr, fmt.Errorf("reopen hot log: tidwall/wal sees %d..%d, the journal expects %d..%d: %w",
			first, last, old.first, old.last(), segment.ErrCorrupt)))
	}
	return first, cutErr
}

// createEmptyFile creates path (which must not exist) empty and durable.
func createEmptyFile(fsys fsx.FS, path string) error {
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		fsys.Remove(path)
		return err
	}
	return f.Close()
}

// applyRetention removes the oldest archives past the limits. The new
// horizon is persisted before any file is removed, so a crash in between
// leaves archives below the horizon, which the next open removes.

// retArchive is what retention needs to know of one archive.
type retArchive struct {
	name        string
	first, last uint64
	bytes       int64
	records     uint64
	maxTime     int64
	ok          bool // the archive passed its checks (its footer is known)
}

// retentionState is what retention decides on: the archives, oldest
// first, and the hot log. The real run takes it from the published view;
// the dry run builds the same state from the view and what it measured.
type retentionState struct {
	archives   []retArchive
	hotBytes   int64
	hotRecords uint64
	horizon    uint64
}

// retentionStateOf takes the state from view v; an archive's age is its
// newest commit as of now (see archiveSeg.newestCommit).
func retentionStateOf(v *view, now int64) retentionState {
	st := retentionState{hotBytes: v.bytes, hotRecords: uint64(len(v.entries)), horizon: v.horizon()}
	for _, a := range v.archives {
		st.archives = append(st.archives, retArchive{name: a.name, first: a.first, last: a.last, bytes: a.bytes,
			records: a.footer.Records, maxTime: a.newestCommit(now), ok: a.err == nil})
	}
	return st
}

// planRetention decides which of the oldest archives go, and the horizon
// after them (0 when none goes). It is the one planner of the real and
// the dry run. Bytes are counted in the 4 KiB blocks files occupy. The
// archives may hold MaxBytes minus what the hot log needs: its headroom
// (HotHeadroom) or, when compaction has fallen behind, what it holds now.
func (j *Journal) planRetention(st retentionState, r Retention, cutoff int64) ([]RemovedArchive, uint64) {
	records := st.hotRecords
	var archived int64
	for _, a := range st.archives {
		archived += diskBytes(a.bytes)
		records += a.records
	}
	budget := int64(0)
	if r.MaxBytes > 0 {
		budget = r.MaxBytes - max(HotHeadroom(j.opts.segmentSize), diskBytes(st.hotBytes))
	}
	shipped, held := j.retentionFloor()
	var removed []RemovedArchive
	for _, a := range st.archives {
		if !a.ok {
			// A damaged or missing archive never decides what is removed
			// (nor moves the horizon past it): it waits for the operator.
			break
		}
		reason := ""
		switch {
		case r.MaxBytes > 0 && archived > budget:
			reason = "max_bytes"
		case r.MaxRecords > 0 && records > r.MaxRecords:
			reason = "max_records"
		case cutoff != 0 && a.ok && a.maxTime < cutoff:
			reason = "max_age"
		}
		unshipped := unshippedIn(a, shipped, held)
		if reason == "" || (unshipped > 0 && reason != "max_bytes") {
			break // within the limits, or held back by the floor
		}
		removed = append(removed, RemovedArchive{Name: a.name, FirstSequence: a.first, LastSequence: a.last, Records: a.records, Bytes: a.bytes, Reason: reason, Unshipped: unshipped})
		archived -= diskBytes(a.bytes)
		records -= a.records
	}
	if len(removed) == 0 {
		return nil, 0
	}
	return removed, removed[len(removed)-1].LastSequence + 1
}

// applyRetention removes the oldest archives past the limits. The new
// horizon is persisted before any file is removed, so a crash in between
// leaves archives below the horizon, which the next open removes. It
// returns the removed archives and the horizon after them. pending is
// the hot bytes this compaction has yet to archive.
func (j *Journal) applyRetention(r Retention, cutoff int64, pending int64) ([]RemovedArchive, uint64, error) {
	v := j.view.Load()
	as := v.archives
	st := retentionStateOf(v, j.opts.now().UnixNano())
	st.hotBytes -= pending
	removed, horizon := j.planRetention(st, r, cutoff)
	n := len(removed)
	if n == 0 {
		return nil, v.horizon(), nil
	}
	if err := j.writeHorizon(horizon); err != nil {
		return nil, v.horizon(), fmt.Errorf("persist horizon %d: %w", horizon, err)
	}
	hook(stepHorizonWritten)
	// Readers switch to a view without the archives before the files go.
	if err := j.mutateView(func(tip *view) (*view, error) {
		return tip.retained(n, horizon, j.intern), nil
	}); err != nil {
		return removed, horizon, err
	}
	for i, a := range as[:n] {
		if err := j.opts.fs.Remove(a.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, horizon, fmt.Errorf("remove archive %s: %w", a.name, err)
		}
		j.archives.forget(a.path) // after the remove, so no reader re-caches it
		if i == 0 {
			hook(stepArchiveRemoved)
		}
		if j.metrics != nil {
			j.metrics.retentionRemoved.WithLabelValues(removed[i].Reason).Inc()
		}
		j.reportUnshipped(removed[i])
	}
	if err := j.opts.fs.SyncDir(filepath.Join(j.dir, archiveDirName)); err != nil {
		return removed, horizon, err
	}
	j.expireDedupe(horizon)
	return removed, horizon, nil
}

// diskBytes rounds a file size up to the 4 KiB blocks it occupies.
func diskBytes(n int64) int64 { return (n + 4095) &^ 4095 }

// CompactionSummary describes the last compaction; it is persisted in
// state/last-compaction.json.
type CompactionSummary struct {
	At        time.Time `json:"at"`
	Archives  int       `json:"archives"`
	Records   uint64    `json:"records"`
	Coalesced uint64    `json:"coalesced"`
	Ratio     float64   `json:"ratio"`
	Removed   int       `json:"removed"`
	Horizon   uint64    `json:"horizon"`
	Duration  string    `json:"duration"`
}

func (j *Journal) noteCompaction(rep CompactReport) {
	st := CompactionSummary{At: time.Now().UTC(), Archives: len(rep.Archives), Records: rep.Records, Coalesced: rep.Coalesced,
		Ratio: rep.Ratio, Removed: len(rep.Removed), Horizon: rep.HorizonAfter, Duration: types.FormatDuration(rep.Duration)}
	b, _ := json.Marshal(st)
	if err := fsx.WriteFileAtomicFS(j.opts.fs, filepath.Join(j.dir, stateDirName, compactFileName), append(b, '\n'), 0o644); err != nil {
		j.log.Warn("could not record last compaction", "err", err)
	}
	j.lastCompaction.Store(&st)
}

func readCompaction(stateDir string) *CompactionSummary {
	b, err := os.ReadFile(filepath.Join(stateDir, compactFileName))
	if err != nil {
		return nil
	}
	var st CompactionSummary
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

// inCommitter runs f in the committer goroutine, between batches, and
// returns its error.
func (j *Journal) inCommitter(f func() error) error {
	done := make(chan error, 1)
	select {
	case j.ctrl <- func() { done <- f() }:
	case <-j.donec:
		return types.ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-j.donec:
		return types.ErrClosed
	}
}

// noteFailure reports a failed compaction or checkpoint: a log line, the
// failure metric by reason, and Status until the next success. Damage
// found in a hot segment also retires the index checkpoint, so the next
// open scans every segment and reports the damage by name instead of
// trusting the checkpoint over it.
func (j *Journal) noteFailure(stage string, err error) {
	f := &CompactionFailure{At: time.Now().UTC(), Stage: stage, Reason: failureReason(err), Error: err.Error()}
	j.log.Error(stage+" failed; the hot log stays writable", "reason", f.Reason, "err", err)
	if f.Reason == FailureDamagedInput {
		j.damagedHot.Store(true)
		ck := filepath.Join(j.dir, stateDirName, checkpointFileName)
		if rerr := j.opts.fs.Remove(ck); rerr == nil {
			j.log.Warn("removed the index checkpoint: the next open scans every hot segment and reports the damage", "checkpoint", ck)
		}
	}
	if j.metrics != nil {
		if stage == "checkpoint" {
			j.metrics.checkpointFailures.WithLabelValues(f.Reason).Inc()
		} else {
			j.metrics.compactFailures.WithLabelValues(f.Reason).Inc()
		}
	}
	if stage == "checkpoint" {
		j.checkpointFail.Store(f)
	} else {
		j.compactFail.Store(f)
	}
}
