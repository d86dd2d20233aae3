package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// Query selects records. Zero fields do not filter.
type Query struct {
	// After is a cursor: only records with a sequence greater than After.
	// A cursor below the horizon (records after it were compacted away)
	// gets ErrCompacted.
	After uint64
	// HasAfter says After is a cursor even when it is 0: a consumer that
	// starts from the beginning gets ErrCompacted once records were
	// removed, instead of silently starting at the horizon. Any After > 0
	// is a cursor whatever HasAfter says.
	HasAfter bool
	// Since and Until select by commit time (the journal's clock, never
	// the writer's occurred_at): inclusive Since, exclusive Until.
	Since, Until  time.Time
	Surfaces      []string
	ChangeTypes   []string
	AggregateType string
	AggregateID   string
	CorrelationID string
	MinSeverity   string
	// Limit caps the records returned; 0 means DefaultQueryLimit, a
	// negative value means no limit.
	Limit       int
	NewestFirst bool
}

// DefaultQueryLimit is the Limit used when a Query leaves it 0.
const DefaultQueryLimit = 100

// Result is the answer to a Query.
type Result struct {
	Changes []Change `json:"changes"`
	// Head is the newest committed sequence when the query ran.
	Head uint64 `json:"head"`
	// Horizon is the oldest readable sequence.
	Horizon uint64 `json:"horizon"`
	// More is true when the limit cut the answer short.
	More bool `json:"more"`
}

// compiled is a Query turned into index terms.
type compiled struct {
	q        Query
	surfaces []uint16
	anySurf  bool // a named surface is unknown to the index: no match
	lost     uint16
	ctypes   []uint8
	minSev   uint8
	agg      uint32
	corr     uint32
	since    int64
	until    int64
}

func (j *Journal) compile(q Query) (compiled, error) {
	c := compiled{q: q, lost: j.lostID}
	for _, s := range q.Surfaces {
		id, ok := j.intern.lookup(s)
		if !ok {
			if _, reg := j.opts.registry.Lookup(s); !reg {
				fe := &types.FieldError{Kind: types.ErrUnknownSurface, Field: "surface", Value: s, Problem: "is not a registered surface", Index: -1}
				fe.Suggestion = j.opts.registry.Suggest(s)
				return c, fe
			}
			continue
		}
		c.surfaces = append(c.surfaces, id)
	}
	if len(q.Surfaces) > 0 && len(c.surfaces) == 0 {
		c.anySurf = true
	}
	var err error
	if c.ctypes, c.minSev, err = filterTerms(q); err != nil {
		return c, err
	}
	if q.AggregateID != "" {
		c.agg = aggHash(q.AggregateType, q.AggregateID)
	}
	c.corr = corrHash(q.CorrelationID)
	if !q.Since.IsZero() {
		c.since = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		c.until = q.Until.UnixNano()
	}
	return c, nil
}

// match applies the index-level filters. Aggregate and correlation
// matches are by hash and are confirmed on the decoded record. A
// tombstone matches every query: the record it stands for is unknown and
// might have matched, so a reader must learn of the loss.
func (c *compiled) match(e *hotEntry) bool {
	if e.surface == c.lost {
		return true
	}
	if c.anySurf {
		return false
	}
	if len(c.surfaces) > 0 && e.multi == 0 && !slices.Contains(c.surfaces, e.surface) {
		return false
	}
	if len(c.ctypes) > 0 && !slices.Contains(c.ctypes, e.ctype) {
		return false
	}
	if e.sev < c.minSev {
		return false
	}
	if c.agg != 0 && e.agg != c.agg {
		return false
	}
	if c.corr != 0 && e.corr != c.corr {
		return false
	}
	if c.since != 0 && e.unix < c.since {
		return false
	}
	if c.until != 0 && e.unix >= c.until {
		return false
	}
	return true
}

func (c *compiled) confirm(ch *Change) bool {
	if ch.Lost != nil {
		return true
	}
	if len(c.q.Surfaces) > 0 && !slices.Contains(c.q.Surfaces, ch.Surface) {
		// A record listing several surfaces matches a query by any of
		// them.
		listed := false
		for _, s := range ch.ChangedSurfaces {
			if slices.Contains(c.q.Surfaces, s) {
				listed = true
				break
			}
		}
		if !listed {
			return false
		}
	}
	if c.agg != 0 && (ch.AggregateType != c.q.AggregateType || ch.AggregateID != c.q.AggregateID) {
		return false
	}
	if c.corr != 0 && ch.CorrelationID != c.q.CorrelationID {
		return false
	}
	return true
}

// Query returns the records that match q, oldest first unless
// q.NewestFirst. It reads archives and the hot log as one sequence, reads
// the published index without blocking writers, skips archives and
// archive blocks that cannot match, and reads from the hot log only the
// records it returns. A cursor below the horizon gets ErrCompacted.
func (j *Journal) Query(ctx context.Context, q Query) (Result, error) {
	c, err := j.compile(q)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = j.readPinned(func(rd *hotReader) error {
		res, err = j.queryView(ctx, rd, &c)
		return err
	})
	return res, err
}

// readPinned runs read on a pinned reader of the published view (pinView).
// The hot segments it names cannot close under it, even once a compaction
// removed their files; an archive can go (retention removes it) and, on a
// read-only journal, a file the view never opened can (the writer is
// another process). Such a read fails with a file gone (fileMoved), and
// read runs once more on the view that moved the file, which reads the
// records from their new place or puts them below its horizon: retention
// publishes that view before it removes a file, and a read-only journal
// reads it from the files (Refresh). There is no sleeping and no polling:
// each retry needs a newer view, and a read with no newer view to go to
// returns its error. moveRetries bounds the retries under a writer that
// compacts without pause.
func (j *Journal) readPinned(read func(rd *hotReader) error) error {
	rd, err := j.pinView()
	if err != nil {
		return err
	}
	for moves := 0; ; moves++ {
		err := read(rd)
		v := rd.v
		rd.close()
		if err == nil || !fileMoved(err) || moves == moveRetries {
			return err
		}
		next, nerr := j.newerView(v)
		if nerr != nil {
			return nerr
		}
		if next == nil {
			return err
		}
		rd = next
	}
}

// moveRetries bounds how often one read follows its files to a newer
// view (readPinned).
const moveRetries = 10

// fileMoved reports an error of a read whose file a compaction or
// retention removed after the reader's view was published.
func fileMoved(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrClosed) || errors.Is(err, archive.ErrClosed)
}

// pinView returns a reader of the published view with the read handle of
// every hot segment it names pinned. publish drops a handle only after it
// stored a view without it, so a pin that fails means a newer view is
// published: pinView takes that one. A view whose handles are gone with
// nothing newer is a closed journal (Close drops every handle).
func (j *Journal) pinView() (*hotReader, error) {
	for {
		v := j.view.Load()
		rd := newHotReader(v)
		if rd.pinAll() {
			return rd, nil
		}
		rd.close()
		if j.view.Load() == v {
			return nil, fmt.Errorf("read: %w", types.ErrClosed)
		}
	}
}

// newerView returns a pinned reader of a view newer than v, or nil when
// there is none. A read-only journal first reads the files again.
func (j *Journal) newerView(v *view) (*hotReader, error) {
	if j.opts.readOnly {
		if _, err := j.Refresh(); err != nil {
			return nil, err
		}
	}
	rd, err := j.pinView()
	if err != nil {
		return nil, err
	}
	if rd.v == v {
		rd.close()
		return nil, nil
	}
	return rd, nil
}

// queryView answers c from the view rd pinned.
func (j *Journal) queryView(ctx context.Context, rd *hotReader, c *compiled) (Result, error) {
	q := c.q
	v := rd.v
	res := Result{Horizon: v.horizon(), Head: v.first - 1}
	if len(v.entries) > 0 {
		res.Head = v.last()
	}
	if (q.After > 0 || q.HasAfter) && q.After+1 < res.Horizon {
		return res, fmt.Errorf("%w: cursor %d, oldest readable sequence %d", types.ErrCompacted, q.After, res.Horizon)
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultQueryLimit
	}
	// add appends a match; it returns false when the limit is reached.
	add := func(ch Change) bool {
		if limit > 0 && len(res.Changes) == limit {
			res.More = true
			return false
		}
		res.Changes = append(res.Changes, ch)
		return true
	}
	if q.NewestFirst {
		more, err := j.queryHot(ctx, v, rd, c, add)
		if err != nil || !more {
			return res, err
		}
		for i := len(v.archives) - 1; i >= 0; i-- {
			more, err := j.queryArchive(ctx, v.archives[i], c, add)
			if err != nil || !more {
				return res, err
			}
		}
		return res, nil
	}
	for _, a := range v.archives {
		more, err := j.queryArchive(ctx, a, c, add)
		if err != nil || !more {
			return res, err
		}
	}
	_, err := j.queryHot(ctx, v, rd, c, add)
	return res, err
}

// queryHot visits the hot log's matches in the query's order; it returns
// false when add said stop. With a surface filter it walks only those
// surfaces' posting lists.
func (j *Journal) queryHot(ctx context.Context, v *view, rd *hotReader, c *compiled, add func(Change) bool) (bool, error) {
	q := c.q
	n := len(v.entries)
	lo := v.first
	if q.After >= lo {
		lo = q.After + 1
	}
	var it seqIter
	if c.anySurf || len(c.surfaces) > 0 {
		// The surfaces' postings and the tombstones'.
		it = newPostingIter(v, append(slices.Clone(c.surfaces), c.lost), lo, q.NewestFirst)
	} else {
		it = &rangeIter{lo: lo, hi: v.first + uint64(n), rev: q.NewestFirst}
		it.(*rangeIter).init()
	}
	for k := 0; ; k++ {
		seq, ok := it.next()
		if !ok {
			return true, nil
		}
		if k&1023 == 0 && ctx.Err() != nil {
			return false, ctx.Err()
		}
		e := &v.entries[seq-v.first]
		if !c.match(e) {
			continue
		}
		ch, err := rd.read(seq, e)
		if err != nil {
			return false, err
		}
		if !c.confirm(&ch) {
			continue
		}
		if !add(ch) {
			return false, nil
		}
	}
}

// seqIter yields hot sequences in the query's order.
type seqIter interface{ next() (uint64, bool) }

// rangeIter yields every sequence in [lo, hi).
type rangeIter struct {
	lo, hi, cur uint64
	rev         bool
}

func (r *rangeIter) init() {
	if r.rev {
		r.cur = r.hi
	} else {
		r.cur = r.lo
	}
}

func (r *rangeIter) next() (uint64, bool) {
	if r.rev {
		if r.cur <= r.lo {
			return 0, false
		}
		r.cur--
		return r.cur, true
	}
	if r.cur >= r.hi {
		return 0, false
	}
	r.cur++
	return r.cur - 1, true
}

// postingIter merges the posting lists of several surfaces.
type postingIter struct {
	lists [][]uint64
	pos   []int
	rev   bool
	// last is the sequence returned before: a record listed under
	// several of the queried surfaces is in several lists.
	last    uint64
	started bool
}

func newPostingIter(v *view, surfaces []uint16, lo uint64, rev bool) *postingIter {
	p := &postingIter{rev: rev}
	for _, s := range surfaces {
		if int(s) >= len(v.post) {
			continue
		}
		l := v.post[s]
		// Only sequences >= lo, within the view.
		i := sort.Search(len(l), func(i int) bool { return l[i] >= lo })
		l = l[i:]
		if len(l) == 0 {
			continue
		}
		p.lists = append(p.lists, l)
		if rev {
			p.pos = append(p.pos, len(l)-1)
		} else {
			p.pos = append(p.pos, 0)
		}
	}
	return p
}

func (p *postingIter) next() (uint64, bool) {
	for {
		seq, ok := p.next1()
		if !ok || !p.started || seq != p.last {
			p.last, p.started = seq, true
			return seq, ok
		}
	}
}

func (p *postingIter) next1() (uint64, bool) {
	best := -1
	var bv uint64
	for i, l := range p.lists {
		k := p.pos[i]
		if k < 0 || k >= len(l) {
			continue
		}
		if best < 0 || (!p.rev && l[k] < bv) || (p.rev && l[k] > bv) {
			best, bv = i, l[k]
		}
	}
	if best < 0 {
		return 0, false
	}
	if p.rev {
		p.pos[best]--
	} else {
		p.pos[best]++
	}
	return bv, true
}

// queryArchive visits one archive's matches in the query's order,
// skipping it whole when its footer rules it out.
func (j *Journal) queryArchive(ctx context.Context, a *archiveSeg, c *compiled, add func(Change) bool) (bool, error) {
	q := c.q
	if a.last <= q.After {
		return true, nil
	}
	if a.err == nil {
		f := a.footer
		lost := f.LabelCounts[lostSurface] > 0 // tombstones answer every query
		if f.Records == 0 || !lost && ((c.since != 0 && f.MaxTime < c.since) || (c.until != 0 && f.MinTime >= c.until)) {
			return true, nil
		}
		if len(q.Surfaces) > 0 && !lost && len(a.labelsFor(q.Surfaces)) == 0 {
			return true, nil
		}
	} else if a.hole {
		return false, fmt.Errorf("read: %w", a.err)
	} else {
		return false, fmt.Errorf("read archive %s: %w", a.name, a.err)
	}
	ar, release, err := j.archives.get(a.path)
	if err != nil {
		return false, err
	}
	defer release()
	var labels []string
	if len(q.Surfaces) > 0 {
		// Every label of the archive that names a queried surface: the
		// surface's own and those of records that list it; and the
		// tombstones'.
		labels = append(a.labelsFor(q.Surfaces), lostSurface)
	}
	more := true
	var scanErr error
	visit := func(r archive.Record) bool {
		if ctx.Err() != nil {
			scanErr = ctx.Err()
			return false
		}
		if r.Seq <= q.After {
			return true
		}
		if r.Label == lostSurface {
			if !add(tombstoneChange(r.Payload, r.Seq)) {
				more = false
				return false
			}
			return true
		}
		if c.since != 0 && r.Time < c.since || c.until != 0 && r.Time >= c.until {
			return true
		}
		ch, err := decodeStored(r.Payload, r.Seq)
		if err != nil {
			scanErr = fmt.Errorf("archive %s: %w", a.name, err)
			return false
		}
		// The archive record's time is the commit time (for archives
		// of earlier releases, occurred_at: the same fallback as v1
		// envelopes).
		ch.CommittedAt = time.Unix(0, r.Time).UTC()
		var e hotEntry
		j.fillEntry(&e, &ch, r.Time)
		if !c.match(&e) || !c.confirm(&ch) {
			return true
		}
		if !add(ch) {
			more = false
			return false
		}
		return true
	}
	if q.NewestFirst {
		err = ar.ScanReverse(0, labels, visit)
	} else {
		err = ar.Scan(q.After+1, labels, visit)
	}
	if scanErr != nil {
		return false, scanErr
	}
	if err != nil {
		return false, err
	}
	return more, nil
}

// hotReader reads records by index entry from the view it pinned
// (pinView): every hot segment's shared handle is held until close, so a
// compaction that cuts the hot log meanwhile does not close a file under
// it. A segment without a shared handle (its open failed) is opened by
// path.
type hotReader struct {
	v      *view
	files  map[uint64]*os.File
	pinned []*segFile // shared handles this reader holds
	buf    []byte
}

func newHotReader(v *view) *hotReader { return &hotReader{v: v, files: map[uint64]*os.File{}} }

func (r *hotReader) read(seq uint64, e *hotEntry) (Change, error) {
	env, err := r.readEnvelope(seq, e)
	if err != nil {
		return Change{}, err
	}
	c, err := decodeRecord(env.Payload, seq)
	if err == nil {
		// The index holds the commit time (the envelope's, or the
		// fallback for an envelope without one).
		c.CommittedAt = time.Unix(0, e.unix).UTC()
	}
	return c, err
}

// readEnvelope reads and checks the envelope of seq; its payload aliases
// the reader's buffer until the next read.
func (r *hotReader) readEnvelope(seq uint64, e *hotEntry) (segment.Envelope, error) {
	seg := r.v.segFor(seq)
	f, ok := r.files[seg.first]
	if !ok {
		var err error
		if f, err = os.Open(seg.path); err != nil {
			return segment.Envelope{}, fmt.Errorf("read sequence %d: %w", seq, err)
		}
		r.files[seg.first] = f
	}
	he, buf, err := segment.ReadEntryAt(f, seg.path, int64(e.off), int64(e.length), seq, r.buf)
	r.buf = buf
	if err != nil {
		return segment.Envelope{}, err
	}
	if err := checkHotEntry(r.v.ident, seg.path, he.Off, he.Envelope); err != nil {
		return segment.Envelope{}, err
	}
	return he.Envelope, nil
}

// pinAll pins the shared handle of every segment of the view; false
// when one is already closed (a newer view exists).
func (r *hotReader) pinAll() bool {
	for _, seg := range r.v.segs {
		if seg.f == nil {
			continue
		}
		if !seg.f.acquire() {
			return false
		}
		r.pinned = append(r.pinned, seg.f)
		r.files[seg.first] = seg.f.f
	}
	return true
}

func (r *hotReader) close() {
	shared := make(map[*os.File]bool, len(r.pinned))
	for _, p := range r.pinned {
		shared[p.f] = true
		p.release()
	}
	for _, f := range r.files {
		if !shared[f] {
			f.Close() // opened by this reader itself
		}
	}
}
