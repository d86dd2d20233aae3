package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// Retention bounds the journal. Zero fields do not bound. The oldest
// archives are removed first; the hot log is never removed, only
// compacted, so retention needs compaction to run.
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

// CompactOptions configures one compaction.
type CompactOptions struct {
	// DryRun reports what would be compacted, coalesced and removed, and
	// changes nothing.
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

// CompactReport says what a compaction did (or, dry, would do).
type CompactReport struct {
	DryRun        bool             `json:"dry_run"`
	Archives      []ArchiveReport  `json:"archives"`
	Records       uint64           `json:"records"`
	Coalesced     uint64           `json:"coalesced"`
	InputBytes    int64            `json:"input_bytes"`
	OutputBytes   int64            `json:"output_bytes"`
	Ratio         float64          `json:"ratio"`
	Removed       []RemovedArchive `json:"removed"`
	HorizonBefore uint64           `json:"horizon_before"`
	HorizonAfter  uint64           `json:"horizon_after"`
	Duration      time.Duration    `json:"duration"` // written as a duration string (jsonformat.go)
	Message       string           `json:"message"`
}

// ArchiveReport is one archive a compaction wrote.
type ArchiveReport struct {
	Name          string `json:"name"`
	FirstSequence uint64 `json:"first_sequence"`
	LastSequence  uint64 `json:"last_sequence"`
	Records       uint64 `json:"records"`
	Coalesced     uint64 `json:"coalesced"`
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
}

// compactHook, when set (by crash tests in a child process), is called at
// each named step of a compaction.
var compactHook func(step string)

func hook(step string) {
	if compactHook != nil {
		compactHook(step)
	}
}

// Compact moves hot segments into zstd archives and applies retention.
// Each hot segment becomes one archive, written atomically (temp file,
// fsync, rename, directory fsync) before the hot log's front is truncated,
// so a crash at any step leaves a journal that opens with every promised
// record exactly once. Writers are not stalled except for the moment the
// front of the hot log is cut. Only one compaction runs at a time.
func (j *Journal) Compact(ctx context.Context, o CompactOptions) (CompactReport, error) {
	start := time.Now()
	rep := CompactReport{DryRun: o.DryRun, Archives: []ArchiveReport{}, Removed: []RemovedArchive{}}
	if j.opts.readOnly && !o.DryRun {
		return rep, types.ErrReadOnly
	}
	if err := j.failure(); err != nil {
		return rep, err
	}
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.isClosed() {
		return rep, types.ErrClosed
	}
	ret := j.opts.retention
	if o.Retention != nil {
		ret = *o.Retention
	}
	v := j.view.Load()
	rep.HorizonBefore = v.horizon()
	units := j.compactionUnits(v, o.SealActive)
	var total int64
	for _, u := range units {
		total += u.bytes
	}
	var done int64
	for _, u := range units {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ar, err := j.compactUnit(u, o, func(n int64) {
			if o.Progress != nil {
				o.Progress(done+n, total)
			}
		})
		if err != nil {
			return rep, err
		}
		done += u.bytes
		if !o.DryRun {
			// Retention after every archive, not only at the end: under a
			// backlog this frees space as soon as it can.
			removed, _, err := j.applyRetention(ret, false, nil)
			if err != nil {
				return rep, err
			}
			rep.Removed = append(rep.Removed, removed...)
		}
		rep.Archives = append(rep.Archives, ar)
		rep.Records += ar.Records
		rep.Coalesced += ar.Coalesced
		rep.InputBytes += ar.InputBytes
		rep.OutputBytes += ar.OutputBytes
	}
	removed, horizon, err := j.applyRetention(ret, o.DryRun, units)
	if err != nil {
		return rep, err
	}
	rep.Removed = append(rep.Removed, removed...)
	removed = rep.Removed
	rep.HorizonAfter = horizon
	if rep.OutputBytes > 0 {
		rep.Ratio = float64(rep.InputBytes) / float64(rep.OutputBytes)
	}
	rep.Duration = time.Since(start)
	switch {
	case len(units) == 0 && len(removed) == 0:
		rep.Message = "nothing to compact: no sealed hot segment" + map[bool]string{true: "", false: " (pass SealActive to compact the active one)"}[o.SealActive] + " and nothing past retention"
	case o.DryRun:
		rep.Message = fmt.Sprintf("would compact %d segment(s) (%d records, %d coalesced) and remove %d archive(s)", len(units), rep.Records, rep.Coalesced, len(removed))
	default:
		rep.Message = fmt.Sprintf("compacted %d segment(s) into %d archive(s): %d records, %d coalesced, %.1fx; removed %d archive(s)",
			len(units), len(rep.Archives), rep.Records, rep.Coalesced, rep.Ratio, len(removed))
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

// compactUnit archives one unit and truncates the hot log past it.
func (j *Journal) compactUnit(u unit, o CompactOptions, progress func(int64)) (ArchiveReport, error) {
	ar := ArchiveReport{Name: segment.ArchiveFileName(u.first, u.last), FirstSequence: u.first, LastSequence: u.last}
	recs, coalesced, in, err := j.readUnit(u, o.Coalesce, progress)
	if err != nil {
		return ar, err
	}
	ar.Records, ar.Coalesced, ar.InputBytes = uint64(len(recs)), coalesced, in
	if o.DryRun {
		ar.OutputBytes = in / 10 // an estimate; heartbeat-heavy journals compress about 10x
		return ar, nil
	}
	dir := filepath.Join(j.dir, archiveDirName)
	if err := fsx.MkdirAllDurable(dir, 0o755); err != nil {
		return ar, err
	}
	i := 0
	path := filepath.Join(dir, ar.Name)
	start := time.Now()
	footer, err := segment.WriteArchive(path, func() (segment.ArchiveRecord, bool, error) {
		if i == len(recs) {
			return segment.ArchiveRecord{}, false, nil
		}
		i++
		return recs[i-1], true, nil
	}, j.archiveWriterOptions(u.first, u.last, coalesced))
	if err != nil {
		return ar, fmt.Errorf("write archive %s: %w", ar.Name, err)
	}
	hook("archive-written")
	ar.OutputBytes = footer.FileBytes
	a := &archiveSeg{path: path, name: ar.Name, first: u.first, last: u.last, bytes: footer.FileBytes, footer: footer}
	if ao, err := segment.OpenArchive(path); err == nil {
		ao.Close() // it opens; queries reopen it through the cache
	} else {
		return ar, fmt.Errorf("reopen archive %s: %w", ar.Name, err)
	}
	// The archive is durable; now the hot log gives up the same records.
	if err := j.truncateHot(u.last, a); err != nil {
		return ar, err
	}
	hook("hot-truncated")
	if j.metrics != nil {
		j.metrics.compactions.Inc()
		j.metrics.compactSeconds.Observe(time.Since(start).Seconds())
		j.metrics.compactIn.Add(float64(in))
		j.metrics.compactOut.Add(float64(footer.FileBytes))
		j.metrics.coalesced.Add(float64(coalesced))
	}
	return ar, nil
}

// readUnit reads the unit's records from its hot segment and coalesces
// heartbeats. Labels and times come from the index, so the payloads are
// not decoded (only heartbeats are, when coalescing). It returns the
// records to archive, the number coalesced and the input bytes.
func (j *Journal) readUnit(u unit, window time.Duration, progress func(int64)) ([]segment.ArchiveRecord, uint64, int64, error) {
	v := j.view.Load()
	var recs []segment.ArchiveRecord
	var in int64
	var bad error
	arena := make([]byte, 0, u.bytes) // one allocation for every payload
	_, err := segment.ScanHotSegmentEntries(segment.HotSegment{Path: u.seg.path, FirstSeq: u.seg.first}, 0, u.seg.first, func(he segment.HotEntry) bool {
		seq, payload := he.Seq, he.Payload
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
		in += int64(len(payload)) + int64(he.HeaderSize())
		if isTombstone(payload) {
			// A repaired loss stays a loss; the archive's coalesced count
			// accounts for the gap.
			return true
		}
		var label string
		var unix int64
		if seq >= v.first && seq <= v.last() {
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
				bad = fmt.Errorf("compact: record %d does not decode: %w", seq, err)
				return false
			}
			label, unix = archiveLabel(f.surface, f.others), f.unix
		}
		start := len(arena)
		arena = append(arena, payload...)
		recs = append(recs, segment.ArchiveRecord{Seq: seq, Time: unix, Label: label, Payload: arena[start:len(arena):len(arena)]})
		if progress != nil && len(recs)%4096 == 0 {
			progress(in)
		}
		return true
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if bad != nil {
		return nil, 0, 0, bad
	}
	if window > 0 {
		recs = coalesceHeartbeats(recs, window)
	}
	coalesced := (u.last - u.first + 1) - uint64(len(recs))
	return recs, coalesced, in, nil
}

// coalesceHeartbeats keeps, for heartbeat records, only the newest per
// surface, aggregate and window. Other records are kept as they are.
func coalesceHeartbeats(recs []segment.ArchiveRecord, window time.Duration) []segment.ArchiveRecord {
	newest := make(map[string]uint64)
	key := func(r *segment.ArchiveRecord, f *peeked) string {
		return r.Label + "\x00" + f.aggType + "\x00" + f.aggID + "\x00" + strconv.FormatInt(r.Time/int64(window), 10)
	}
	for i := range recs {
		f, err := peekFields(recs[i].Payload)
		if err != nil || f.changeType != "heartbeat" {
			continue
		}
		newest[key(&recs[i], &f)] = recs[i].Seq
	}
	out := recs[:0]
	for i := range recs {
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

// peekFields decodes the few fields compaction needs. It is a full JSON
// decode of just those fields.
func peekFields(payload []byte) (peeked, error) {
	var w struct {
		OccurredAt    time.Time `json:"occurred_at"`
		Surface       string    `json:"surface"`
		ChangeType    string    `json:"change_type"`
		AggregateType string    `json:"aggregate_type"`
		AggregateID   string    `json:"aggregate_id"`
		Changed       []string  `json:"changed_surfaces"`
	}
	if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&w); err != nil {
		return peeked{}, err
	}
	p := peeked{surface: w.Surface, changeType: w.ChangeType, aggType: w.AggregateType, aggID: w.AggregateID, unix: w.OccurredAt.UnixNano()}
	for _, s := range w.Changed {
		if s != w.Surface {
			p.others = append(p.others, s)
		}
	}
	return p, nil
}

// truncateHot cuts the hot log's front up to and including upto, in the
// committer goroutine (the only owner of the hot log), and publishes a
// view that reads those records from archive a instead.
func (j *Journal) truncateHot(upto uint64, a *archiveSeg) error {
	return j.inCommitter(func() error {
		if err := j.failure(); err != nil {
			return err
		}
		if err := j.wal.TruncateFront(upto + 1); err != nil {
			return j.fail(fmt.Errorf("truncate hot log front to %d: %w", upto+1, err))
		}
		if err := fsx.SyncDir(j.hotDir); err != nil {
			return j.fail(err)
		}
		// The syncer is idle (inCommitter flushed it): the tip is the
		// published view.
		old := j.c.tip
		nv, tailDelta := truncatedView(old, upto, j.hotDir)
		nv.archives = append(append([]*archiveSeg(nil), old.archives...), a)
		nv.version = old.version + 1
		if tailDelta >= 0 {
			j.c.tailSize -= tailDelta
			if j.c.tailSize < 0 {
				j.c.tailSize = 0
			}
		}
		j.c.tip = nv
		j.c.openTail(j, nv) // the tail may be a new file now
		for _, f := range j.c.tails {
			f.Close() // the syncer is idle: no batch names a retired tail
		}
		j.c.tails = nil
		j.publish(nv)
		closeDroppedSegs(old, nv)
		return nil
	})
}

// truncatedView returns v as tidwall/wal's TruncateFront(upto+1) leaves
// the files: entries up to upto gone, the segment holding upto+1 renamed
// to start there with its offsets shifted. tailDelta is the number of
// bytes cut from the tail segment, or -1 when the tail was not touched.
func truncatedView(v *view, upto uint64, hotDir string) (*view, int64) {
	nv := *v
	if upto < v.first {
		return &nv, -1
	}
	k := int(min(upto+1-v.first, uint64(len(v.entries))))
	next := upto + 1
	// The segment that holds next (the tail when every entry goes).
	idx := len(v.segs) - 1
	for i := range v.segs {
		if v.segs[i].first > next {
			idx = i - 1
			break
		}
	}
	seg := v.segs[idx]
	segEnd := uint64(0) // first sequence past seg, 0 for the tail
	if idx+1 < len(v.segs) {
		segEnd = v.segs[idx+1].first
	}
	var delta int64
	if seg.first < next {
		// Bytes of seg's entries before next are cut.
		for seq := seg.first; seq < next && seq <= v.last() && seq >= v.first; seq++ {
			delta += int64(v.entries[seq-v.first].length)
		}
	}
	entries := make([]hotEntry, len(v.entries)-k, max(len(v.entries)-k, 64))
	copy(entries, v.entries[k:])
	if delta > 0 {
		for i := range entries {
			seq := next + uint64(i)
			if segEnd != 0 && seq >= segEnd {
				break
			}
			entries[i].off -= uint32(delta)
		}
	}
	nv.entries = entries
	nv.first = next
	nv.rebuildPostings()
	nv.segs = append([]hotSegInfo{openSeg(next, filepath.Join(hotDir, segment.HotSegmentName(next)))}, v.segs[idx+1:]...)
	var b int64
	for i := range entries {
		b += int64(entries[i].length)
	}
	nv.bytes = b
	tailDelta := int64(-1)
	if idx == len(v.segs)-1 {
		tailDelta = delta
	}
	return &nv, tailDelta
}

// applyRetention removes the oldest archives past the limits. The new
// horizon is persisted before any file is removed, so a crash in between
// leaves archives below the horizon, which the next open removes.
func (j *Journal) applyRetention(r Retention, dry bool, pending []unit) ([]RemovedArchive, uint64, error) {
	v := j.view.Load()
	as := v.archives
	hot := diskBytes(v.bytes)
	var records uint64 = uint64(len(v.entries)) + archiveRecords(as)
	total := hot
	for _, a := range as {
		total += diskBytes(a.bytes)
	}
	if dry {
		// Pending units would move into archives about 10x smaller.
		for _, u := range pending {
			total -= u.bytes - u.bytes/10
		}
	}
	// Keep two segments of headroom: the hot log fills its next segment
	// before the next compaction, and tidwall/wal's front truncation
	// briefly holds a copy of one segment. So the directory stays within
	// MaxBytes plus at most one segment, sampled at any moment.
	budget := r.MaxBytes
	if budget > 0 {
		budget -= 2 * int64(j.opts.segmentSize)
		if budget < 0 {
			budget = 0
		}
	}
	cutoff := int64(0)
	if r.MaxAge > 0 {
		cutoff = j.opts.now().Add(-r.MaxAge).UnixNano()
	}
	var removed []RemovedArchive
	n := 0
	for n < len(as) {
		a := as[n]
		if a.err != nil {
			// A damaged or missing archive never decides what is removed
			// (nor moves the horizon past it): it waits for the operator.
			break
		}
		reason := ""
		switch {
		case r.MaxBytes > 0 && total > budget:
			reason = "max_bytes"
		case r.MaxRecords > 0 && records > r.MaxRecords:
			reason = "max_records"
		case cutoff != 0 && a.err == nil && a.newestCommit(j.opts.now().UnixNano()) < cutoff:
			reason = "max_age"
		}
		if reason == "" {
			break
		}
		removed = append(removed, RemovedArchive{Name: a.name, FirstSequence: a.first, LastSequence: a.last, Records: a.footer.Records, Bytes: a.bytes, Reason: reason})
		total -= diskBytes(a.bytes)
		records -= a.footer.Records
		n++
	}
	horizon := v.horizon()
	if n == 0 {
		return removed, horizon, nil
	}
	horizon = as[n-1].last + 1
	if dry {
		return removed, horizon, nil
	}
	if err := j.writeHorizon(horizon); err != nil {
		return nil, 0, fmt.Errorf("persist horizon %d: %w", horizon, err)
	}
	hook("horizon-written")
	// Readers switch to a view without the archives before the files go.
	if err := j.inCommitter(func() error {
		if err := j.failure(); err != nil {
			return err // the tip may hold records whose writers got ErrFailed
		}
		cur := j.c.tip
		nv := *cur
		nv.archives = append([]*archiveSeg(nil), cur.archives[n:]...)
		nv.horizonFloor = horizon
		nv.surf = subtractArchived(cur.surf, as[:n], j.intern)
		nv.version = cur.version + 1
		j.c.tip = &nv
		j.publish(&nv)
		return nil
	}); err != nil {
		return removed, horizon, err
	}
	for i, a := range as[:n] {
		if err := os.Remove(a.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, horizon, fmt.Errorf("remove archive %s: %w", a.name, err)
		}
		j.archives.forget(a.path) // after the remove, so no reader re-caches it
		if i == 0 {
			hook("archive-removed")
		}
		if j.metrics != nil {
			j.metrics.retentionRemoved.WithLabelValues(removed[i].Reason).Inc()
		}
	}
	if err := fsx.SyncDir(filepath.Join(j.dir, archiveDirName)); err != nil {
		return removed, horizon, err
	}
	_ = j.inCommitter(func() error {
		j.c.dedupe.expire(j.opts.now().UnixNano(), horizon)
		return nil
	})
	return removed, horizon, nil
}

// diskBytes rounds a file size up to the 4 KiB blocks it occupies.
func diskBytes(n int64) int64 { return (n + 4095) &^ 4095 }

// subtractArchived removes the removed archives' records from the
// per-surface counts.
func subtractArchived(surf []surfaceStat, gone []*archiveSeg, in *interner) []surfaceStat {
	out := append([]surfaceStat(nil), surf...)
	for _, a := range gone {
		for label, n := range a.footer.LabelCounts {
			for _, s := range labelSurfaces(label) {
				id, ok := in.lookup(s)
				if !ok || int(id) >= len(out) {
					continue
				}
				if out[id].Records >= n {
					out[id].Records -= n
				} else {
					out[id].Records = 0
				}
			}
		}
	}
	return out
}

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
	if err := fsx.WriteFileAtomic(filepath.Join(j.dir, stateDirName, compactFileName), append(b, '\n'), 0o644); err != nil {
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
