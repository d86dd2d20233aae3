package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidwall/wal"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// request is one hand-off from a writer to the committer: one change
// (Record) or several (RecordBatch), already validated and encoded. A
// batch request is written contiguously and atomically with respect to
// other writers.
type request struct {
	items    []prepared
	enc      []byte // stored encodings of items, back to back
	ends     []int  // ends[i] is the end of item i in enc
	receipts []Receipt
	err      error
	batch    bool // RecordBatch: errors name the change's index
	start    time.Time
	needSync bool
	done     chan struct{}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func getRequest() *request {
	r := requestPool.Get().(*request)
	r.items = r.items[:0]
	r.enc = r.enc[:0]
	r.ends = r.ends[:0]
	r.receipts = r.receipts[:0]
	r.err = nil
	r.needSync = false
	r.batch = false
	return r
}

func putRequest(r *request) {
	if cap(r.enc) > 1<<20 || cap(r.items) > 4096 {
		return // let big batch buffers go
	}
	for i := range r.items {
		r.items[i] = prepared{}
	}
	requestPool.Put(r)
}

// Record validates, redacts and appends one change and returns its
// receipt once the record is committed: under SyncAlways (the default)
// that means fsynced. A *types.FieldError (ErrInvalid, ErrUnknownSurface,
// ErrPolicy) means nothing was written. ErrFailed means the hot log failed
// earlier and the journal must be reopened. A retry with an event_id seen
// inside the dedupe window returns the first receipt with Duplicate set.
func (j *Journal) Record(ctx context.Context, c Change) (Receipt, error) {
	return j.record(ctx, c, false)
}

// recordDirect is Record for the async loop, which keeps submitting while
// Close drains it.
func (j *Journal) recordDirect(ctx context.Context, c Change) (Receipt, error) {
	return j.record(ctx, c, true)
}

func (j *Journal) record(ctx context.Context, c Change, internal bool) (Receipt, error) {
	r := getRequest()
	defer putRequest(r)
	if err := j.add(r, c, -1); err != nil {
		return Receipt{}, err
	}
	if err := j.submit(ctx, r, internal); err != nil {
		return Receipt{}, err
	}
	return r.receipts[0], nil
}

// RecordBatch validates every change first; if any is bad it returns a
// *types.FieldError naming the change's index and writes nothing.
// Otherwise the changes get contiguous sequences, are written with one
// write and one fsync, and their receipts are returned in order.
func (j *Journal) RecordBatch(ctx context.Context, cs []Change) ([]Receipt, error) {
	return j.recordBatch(ctx, cs, false)
}

func (j *Journal) recordBatchDirect(ctx context.Context, cs []Change) ([]Receipt, error) {
	return j.recordBatch(ctx, cs, true)
}

func (j *Journal) recordBatch(ctx context.Context, cs []Change, internal bool) ([]Receipt, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	r := getRequest()
	defer putRequest(r)
	r.batch = true
	for i, c := range cs {
		if err := j.add(r, c, i); err != nil {
			return nil, err
		}
	}
	if err := j.submit(ctx, r, internal); err != nil {
		return nil, err
	}
	return append([]Receipt(nil), r.receipts...), nil
}

// add prepares one change into r.
func (j *Journal) add(r *request, c Change, index int) error {
	if j.opts.readOnly {
		return types.ErrReadOnly
	}
	p, err := j.prepare(c, j.opts.now())
	if err == nil {
		// The index entry is filled here, in the writer's goroutine; the
		// committer only adds its place in the file.
		j.fillEntry(&p.entry, &p.change, p.committed)
		if p.entry.multi != 0 {
			p.also, p.alsoHints = j.alsoOf(&p.change)
		}
	}
	reject := func(err error) error {
		j.countReject(err)
		if fe, ok := err.(*types.FieldError); ok && index >= 0 {
			fe.Index = index
		}
		return err
	}
	if err != nil {
		return reject(err)
	}
	start := len(r.enc)
	enc, err := p.change.AppendJSON(r.enc, false)
	if err != nil {
		return err
	}
	r.enc = enc
	if p.writerID {
		h, ok := newContentHash(enc[start:], len(p.change.EventID))
		if !ok {
			return fmt.Errorf("encode change: event_id %q does not encode canonically", clip(p.change.EventID))
		}
		p.hash = h
		// An id of the journal-generated form may name a stored record:
		// one lookup tells (see eventid.go).
		dup, err := j.generatedRecord(p.change.EventID, p.hash, p.change.OccurredAt.UnixNano(), p.occSupplied)
		if err != nil {
			r.enc = r.enc[:start]
			return reject(err)
		}
		p.dup = dup
	} else if string(enc[start+eventIDOffset:start+eventIDOffset+len(generatedIDPlaceholder)]) != generatedIDPlaceholder {
		return fmt.Errorf("encode change: the event_id placeholder is not where the committer stamps it")
	}
	r.ends = append(r.ends, len(enc))
	r.items = append(r.items, p)
	if p.needSync {
		r.needSync = true
	}
	return nil
}

// CountRejected counts a change refused before it reached the journal
// by a layer above it (the server: a body that does not parse, a wrong
// type, an unknown field, a body over its bound, an unsupported
// encoding) in state_journal_rejected_total, under the error's code.
func (j *Journal) CountRejected(err error) { j.countReject(err) }

func (j *Journal) countReject(err error) {
	if j.metrics != nil {
		j.metrics.rejected.WithLabelValues(types.Code(err)).Inc()
	}
}

// submit hands r to the committer and waits for its answer. The wait is
// not cut short by ctx once the request is queued: the record may already
// be on disk, and the caller must learn its receipt.
func (j *Journal) submit(ctx context.Context, r *request, internal bool) error {
	if err := j.failure(); err != nil {
		j.countReject(err)
		return err
	}
	r.start = time.Now()
	if !internal {
		j.closeMu.RLock()
		if j.closed {
			j.closeMu.RUnlock()
			return types.ErrClosed
		}
	}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		if !internal {
			j.closeMu.RUnlock()
		}
		return ctx.Err()
	}
	if !internal {
		j.closeMu.RUnlock()
	}
	<-r.done
	if r.err != nil {
		if errors.Is(r.err, types.ErrEventIDConflict) {
			j.countReject(r.err)
		}
		return r.err
	}
	if j.metrics != nil {
		// Counted here, in the writer's goroutine, not in the committer.
		j.metrics.appendLat.Observe(time.Since(r.start).Seconds())
		j.observe(r)
	}
	return nil
}

// committerState is owned by the committer goroutine.
type committerState struct {
	batch    wal.Batch
	scratch  []byte
	pending  []*request
	segSize  int64 // tidwall/wal's segment size
	tailSize int64 // bytes in the tail segment, mirrored from tidwall/wal
	last     uint64
	dirty    bool // written but not fsynced
	lastSync time.Time
	dedupe   *dedupe
	inBatch  map[string]dedupeEntry
	inReq    map[string]dedupeEntry // a request's own writer ids, for the conflict pre-pass
	idRand   *rand.ChaCha8          // random bits of generated event ids
	tip      *view                  // the newest view built, published once durable; others change it only through mutateView
	tail     fsx.File               // read handle of the tail segment, for the syncer's fsync
	tails    []fsx.File             // earlier tail handles the syncer may still use
	tag      uint32                 // the journal tag every envelope carries (segment.JournalTag)
}

func (c *committerState) init(j *Journal, v *view) {
	c.segSize = int64(j.opts.segmentSize)
	c.last = v.last()
	c.lastSync = time.Now()
	c.inBatch = make(map[string]dedupeEntry)
	c.inReq = make(map[string]dedupeEntry)
	c.idRand = newIDRand()
	// Open wrote the identity (reconcileArchives) before the committer
	// starts, so every version 2 entry names this journal.
	c.tag = j.ident.hotTag()
	if len(v.segs) > 0 {
		if fi, err := os.Stat(v.segs[len(v.segs)-1].path); err == nil {
			c.tailSize = fi.Size()
		}
	}
	c.dedupe = newDedupe(j.opts.dedupeWindow, j.opts.dedupeMax)
}

func (j *Journal) startCommitter() {
	j.reqs = make(chan *request, 1024)
	j.ctrl = make(chan func())
	j.stopc = make(chan struct{})
	j.donec = make(chan struct{})
	// Unbuffered: the committer hands a written batch over only when the
	// syncer is free to fsync it, and meanwhile leaves new requests queued
	// in reqs, so the next batch holds everything that arrived during the
	// fsync. With a buffer the committer wrote each request as it came
	// (1.4 records per write at 64 writers, a write syscall and a view per
	// request) while the syncer fsynced; now one write and one view per
	// fsync (26 records per write), and still one batch written while the
	// previous one is fsynced.
	j.syncq = make(chan *syncBatch)
	j.syncDone = make(chan struct{})
	j.loadDedupe()
	j.dedupeIDs.Store(int64(len(j.c.dedupe.ids)))
	j.c.tip = j.view.Load()
	j.c.openTail(j, j.c.tip)
	go j.syncLoop()
	go j.commitLoop()
	j.lockStop = make(chan struct{})
	j.lockDone = make(chan struct{})
	go j.watchLock()
	if j.opts.asyncQueue > 0 {
		j.async = make(chan Change, j.opts.asyncQueue)
		j.asyncD = make(chan struct{})
		go j.asyncLoop()
	}
}

// syncBatch is a written batch handed from the committer to the syncer:
// the syncer fsyncs it (together with whatever else is queued), then
// publishes its view and answers its writers. Meanwhile the committer
// writes the next batch, so the disk is never idle between fsyncs.
type syncBatch struct {
	reqs    []*request
	view    *view      // the view after this batch, published once durable
	last    uint64     // last sequence written
	tail    fsx.File   // the tail segment to fsync
	retired []fsx.File // earlier tail handles, closed once this batch is synced
	cycled  bool       // a segment was created: fsync the directory too
	barrier chan struct{}
}

var syncBatchPool = sync.Pool{New: func() any { return &syncBatch{} }}

// syncLoop is the syncer: it takes every queued batch, fsyncs once,
// publishes the newest view and answers all their writers.
func (j *Journal) syncLoop() {
	defer close(j.syncDone)
	var group []*syncBatch
	for b := range j.syncq {
		group = append(group[:0], b)
	more:
		for {
			select {
			case nb, ok := <-j.syncq:
				if !ok {
					break more
				}
				group = append(group, nb)
			default:
				break more
			}
		}
		j.syncGroup(group)
	}
}

func (j *Journal) syncGroup(group []*syncBatch) {
	var last *syncBatch
	cycled := false
	for _, b := range group {
		if b.view != nil {
			last = b
		}
		cycled = cycled || b.cycled
	}
	err := j.failure()
	if err == nil && last != nil {
		t := time.Now()
		if serr := last.tail.Sync(); serr != nil {
			err = j.fail(fmt.Errorf("fsync hot log: %w", serr))
		} else {
			if j.metrics != nil {
				j.metrics.fsyncLat.Observe(time.Since(t).Seconds())
			}
			j.fsyncs.Add(1)
		}
		if err == nil && cycled {
			// tidwall/wal does not fsync the directory after creating a
			// segment; without this a crash could lose the new name.
			if derr := j.opts.fs.SyncDir(j.hotDir); derr != nil {
				err = j.fail(derr)
			}
		}
		if err == nil {
			// And once more before acknowledging: a batch whose lock was
			// lost meanwhile is answered failed (outcome unknown).
			if lerr := j.lock.Check(); lerr != nil {
				err = j.loseLock(lerr)
			}
		}
		if err == nil {
			j.durableSeq.Store(last.last)
			j.publish(last.view)
			if cycled {
				// After the publish, so the compactor sees the sealed
				// segment as sealed.
				j.kickAuto()
			}
		}
	}
	if err != nil {
		err = outcomeUnknown(err)
	}
	for _, b := range group {
		for _, r := range b.reqs {
			if r.err != nil {
				// Refused before anything of it was written (a conflict):
				// that answer stands.
			} else if err != nil {
				r.err = err
			} else {
				for i := range r.receipts {
					if !r.receipts[i].Duplicate {
						r.receipts[i].Durable = true
					} else {
						r.receipts[i].Durable = r.receipts[i].Sequence <= j.durableSeq.Load()
					}
				}
			}
			r.done <- struct{}{}
		}
		for _, f := range b.retired {
			f.Close() // every batch that named it is synced by now
		}
		j.inflight.Add(-1)
		if b.barrier != nil {
			close(b.barrier)
		}
		*b = syncBatch{reqs: b.reqs[:0]}
		syncBatchPool.Put(b)
	}
}

// flushSyncer waits until every batch handed to the syncer is synced and
// answered. Called in the committer before work that replaces files.
func (j *Journal) flushSyncer() {
	b := syncBatchPool.Get().(*syncBatch)
	b.barrier = make(chan struct{})
	done := b.barrier
	j.inflight.Add(1)
	j.syncq <- b
	<-done
}

// mutateView is how the other parts of a writing journal (compaction,
// retention) change the view, as raft-wal's mutateStateLocked: f runs in
// the committer goroutine between batches, with the syncer idle, on the
// committer's newest view (the tip, which is then the published one), and
// returns the transition's result (or nil when nothing changed). That view
// becomes the tip, the committer adopts its tail segment, and it is
// published at once. f's error is returned either way; f does not run
// once the hot log has failed (the tip may hold records whose writers got
// ErrFailed).
func (j *Journal) mutateView(f func(tip *view) (*view, error)) error {
	return j.inCommitter(func() error {
		if err := j.failure(); err != nil {
			return err
		}
		nv, err := f(j.c.tip)
		if nv != nil {
			j.c.adopt(j, nv)
			j.publish(nv)
		}
		return err
	})
}

// adopt makes nv, built from the tip by another part of the journal, the
// committer's tip. When nv names another tail segment (a front cut
// reached it), the committer's mirror of its size is taken from nv and the
// handle the syncer fsyncs is reopened; the syncer is idle, so no batch
// names a retired handle and they all close now. Committer only.
func (c *committerState) adopt(j *Journal, nv *view) {
	old := c.tip
	c.tip = nv
	if nv.tail() == old.tail() {
		return
	}
	c.tailSize = nv.tailBytes()
	c.openTail(j, nv)
	for _, f := range c.tails {
		f.Close()
	}
	c.tails = nil
}

// closeTails closes the committer's tail handles once it has stopped (or
// never started).
func (c *committerState) closeTails() {
	for _, f := range append(c.tails, c.tail) {
		if f != nil {
			f.Close()
		}
	}
	c.tail, c.tails = nil, nil
}

// durableState returns the published view and the dedupe window once
// everything the committer wrote is fsynced: under sync=interval or none
// the tip may hold records not yet durable, and a checkpoint must never
// cover more than the files will hold after a crash.
func (j *Journal) durableState() (*view, []ckptDedupe, error) {
	var v *view
	var d []ckptDedupe
	err := j.inCommitter(func() error {
		if j.c.dirty {
			j.handOff(nil, false, true)
			j.flushSyncer()
		}
		if err := j.failure(); err != nil {
			return err
		}
		v = j.view.Load()
		d = j.c.checkpointDedupe()
		return nil
	})
	return v, d, err
}

// expireDedupe forgets the writer ids of records below horizon, which
// retention removed.
func (j *Journal) expireDedupe(horizon uint64) {
	_ = j.inCommitter(func() error {
		j.c.dedupe.expire(j.opts.now().UnixNano(), horizon)
		return nil
	})
}

// commitLoop is the single owner of the hot log. It blocks for the first
// request, drains what is queued up to the batch limits, writes once and
// hands the batch to the syncer, which fsyncs it while the next batch is
// written.
func (j *Journal) commitLoop() {
	defer close(j.donec)
	defer func() {
		close(j.syncq)
		<-j.syncDone
	}()
	c := &j.c
	var tick <-chan time.Time
	if j.opts.sync == SyncInterval {
		t := time.NewTicker(j.opts.syncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-j.reqs:
			c.pending = append(c.pending[:0], r)
			j.drain()
			j.commit()
		case f := <-j.ctrl:
			j.flushSyncer()
			f()
		case <-tick:
			if c.dirty && j.failure() == nil {
				j.handOff(nil, false, true)
			}
		case <-j.stopc:
			for {
				select {
				case r := <-j.reqs:
					c.pending = append(c.pending[:0], r)
					j.drain()
					j.commit()
					continue
				default:
				}
				break
			}
			if c.dirty && j.failure() == nil {
				j.handOff(nil, false, true)
			}
			j.flushSyncer()
			return
		}
	}
}

// handOff gives the syncer the pending requests (nil for a timed sync)
// with the committer's current view.
func (j *Journal) handOff(reqs []*request, cycled, sync bool) {
	c := &j.c
	b := syncBatchPool.Get().(*syncBatch)
	b.reqs = append(b.reqs[:0], reqs...)
	if sync {
		b.view, b.last, b.tail, b.cycled = c.tip, c.last, c.tail, cycled
		b.retired, c.tails = c.tails, nil
		c.dirty = false
	}
	j.inflight.Add(1)
	j.syncq <- b
}

// drain adds queued requests to the pending batch up to the limits.
func (j *Journal) drain() {
	c := &j.c
	n, size := len(c.pending[0].items), len(c.pending[0].enc)
	for n < j.opts.maxBatchCount && size < j.opts.maxBatchBytes {
		select {
		case r := <-j.reqs:
			c.pending = append(c.pending, r)
			n += len(r.items)
			size += len(r.enc)
		default:
			return
		}
	}
}

// commit writes the pending batch and hands it on.
func (j *Journal) commit() {
	c := &j.c
	defer func() {
		for i := range c.pending {
			c.pending[i] = nil
		}
		c.pending = c.pending[:0]
	}()
	if err := j.failure(); err != nil {
		j.answerAll(err)
		return
	}
	nv := c.tip.next() // the appended transition: this batch's records
	newSegs := false
	newSeg := func(first uint64) {
		nv.addSegment(hotSegInfo{first: first, path: filepath.Join(j.hotDir, segment.HotSegmentName(first))})
		newSegs = true
	}
	c.batch.Clear()
	clear(c.inBatch)
	seq := c.last
	cycled := false
	// tidwall/wal starts a new segment before writing a batch when the
	// tail is over size; only when something is written, so the mirror
	// applies the rule at the first written record.
	rotateFirst := c.tailSize > c.segSize
	needSync := false
	written := 0
	for _, r := range c.pending {
		if r.needSync {
			needSync = true
		}
		if err := j.conflictLocked(r); err != nil {
			// All or nothing: a request with a conflicting id writes none
			// of its changes.
			r.err = err
			continue
		}
		start := 0
		for i := range r.items {
			it := &r.items[i]
			payload := r.enc[start:r.ends[i]]
			start = r.ends[i]
			id := it.change.EventID
			var flags byte
			if it.dup != nil {
				r.receipts = append(r.receipts, *it.dup)
				continue
			}
			if it.writerID {
				if e, ok := c.dedupe.get(id); ok {
					r.receipts = append(r.receipts, e.receipt(id))
					continue
				}
				if e, ok := c.inBatch[id]; ok {
					r.receipts = append(r.receipts, e.receipt(id))
					continue
				}
				flags = segment.FlagWriterEventID
			}
			if rotateFirst {
				newSeg(seq + 1)
				c.tailSize = 0
				cycled = true
				rotateFirst = false
			}
			seq++
			if !it.writerID {
				// The id that names this record: its sequence and commit
				// millisecond (eventid.go), stamped over the placeholder.
				appendGeneratedID(payload[eventIDOffset:eventIDOffset], seq, it.committed, uint32(c.idRand.Uint64()))
				id = string(payload[eventIDOffset : eventIDOffset+len(generatedIDPlaceholder)])
			}
			c.scratch = segment.AppendEnvelopeTime(c.scratch[:0], seq, flags, it.committed, c.tag, payload)
			c.batch.Write(seq, c.scratch)
			frame := int64(segment.FrameSize(len(c.scratch)))
			e := it.entry
			e.off, e.length = uint32(c.tailSize), uint32(frame)
			nv.add(seq, e, it.also, it.alsoHints)
			c.tailSize += frame
			written++
			if c.tailSize >= c.segSize {
				newSeg(seq + 1)
				c.tailSize = 0
				cycled = true
			}
			rc := Receipt{Sequence: seq, EventID: id, OccurredAt: it.change.OccurredAt, CommittedAt: time.Unix(0, it.committed).UTC(),
				Surface: it.change.Surface, Redactions: it.redactions, MetadataTrimmed: it.trimmed}
			if it.writerID {
				e := dedupeEntry{seq: seq, surface: it.surface.ID, hash: it.hash, occurred: it.change.OccurredAt.UnixNano(), committed: it.committed,
					redactions: int32(min(it.redactions, 1<<31-1)), trimmed: it.trimmed}
				c.inBatch[id] = e
				c.dedupe.put(id, e, j.opts.now().UnixNano())
			}
			r.receipts = append(r.receipts, rc)
		}
	}
	if written > 0 {
		// The writer lock is re-checked right before every write: a LOCK
		// removed or replaced under us stops the writer before its next
		// batch can land on another writer's records.
		if err := j.lock.Check(); err != nil {
			j.answerAll(j.loseLock(err))
			return
		}
		if err := j.wal.WriteBatch(&c.batch); err != nil {
			j.answerAll(outcomeUnknown(j.fail(fmt.Errorf("write batch ending at sequence %d: %w", seq, err))))
			return
		}
		c.dirty = true
		c.last = seq
		if newSegs {
			// tidwall/wal created the new segments during the write.
			nv.openSegments()
			c.openTail(j, nv) // the new tail, not the view before this batch
		}
	}
	c.tip = nv
	j.batches.Add(1)
	j.appended.Add(uint64(written))
	j.dedupeIDs.Store(int64(len(c.dedupe.ids)))
	if j.metrics != nil && written > 0 {
		j.metrics.batchSize.Observe(float64(written))
	}
	sync := false
	switch j.opts.sync {
	case SyncAlways:
		sync = true
	case SyncInterval:
		sync = needSync || time.Since(c.lastSync) >= j.opts.syncInterval
	}
	if sync {
		c.lastSync = time.Now()
		j.handOff(c.pending, cycled, true)
		return
	}
	// Not synced now: visible at once, durable at the next sync.
	if len(c.tails) > 0 && j.inflight.Load() == 0 {
		// No batch in the syncer can name a retired tail handle.
		for _, f := range c.tails {
			f.Close()
		}
		c.tails = nil
	}
	if cycled {
		if err := j.opts.fs.SyncDir(j.hotDir); err != nil {
			j.answerAll(outcomeUnknown(j.fail(err)))
			return
		}
	}
	j.publish(nv)
	if cycled {
		j.kickAuto()
	}
	for _, r := range c.pending {
		for i := range r.receipts {
			r.receipts[i].Durable = r.receipts[i].Sequence <= j.durableSeq.Load()
		}
		r.done <- struct{}{}
	}
}

// outcomeUnknown wraps the sticky failure for the writers whose changes
// were written, or being synced, when it struck: their records may or may
// not be on disk, and the answer says how to retry exactly once.
func outcomeUnknown(err error) error {
	return fmt.Errorf("%w; the outcome of this write is unknown: some or all of its changes may be on disk. "+
		"Reopen the journal (restart the server), then retry every change with the same event_id: the journal records each exactly once "+
		"(a change sent without an event_id may be recorded twice)", err)
}

// conflictLocked checks the writer-supplied ids of r against the dedupe
// window, the batch so far and r's own earlier changes, before anything
// of r is written. It returns an ErrEventIDConflict error naming the
// first change whose id names a record with other content. Committer
// only.
func (j *Journal) conflictLocked(r *request) error {
	c := &j.c
	clear(c.inReq)
	for i := range r.items {
		it := &r.items[i]
		if !it.writerID || it.dup != nil {
			continue
		}
		id := it.change.EventID
		occ := it.change.OccurredAt.UnixNano()
		e, ok := c.dedupe.get(id)
		if !ok {
			e, ok = c.inBatch[id]
		}
		if !ok {
			if e, ok = c.inReq[id]; ok {
				// Two changes of one request with one id: the second is a
				// retry of the first (same content) or a conflict.
				if !e.sameContent(it.hash, occ, it.occSupplied) {
					fe := conflictError(id, 0)
					fe.Problem = fmt.Sprintf("is given to change %d of this batch too, with other content; an event_id names one record", e.seq)
					if r.batch {
						fe.Index = i
					}
					return fe
				}
				continue
			}
			stamp := it.committed
			if !it.occSupplied {
				occ = stamp
			}
			c.inReq[id] = dedupeEntry{seq: uint64(i), hash: it.hash, occurred: occ, committed: stamp}
			continue
		}
		if !e.sameContent(it.hash, occ, it.occSupplied) {
			fe := conflictError(id, e.seq)
			if r.batch {
				fe.Index = i
			}
			return fe
		}
	}
	return nil
}

// openTail (re)opens the read-only handle the syncer fsyncs: an fsync on
// any descriptor of the file flushes it, and this one needs no lock of
// tidwall/wal, so the next batch can be written while it runs.
func (c *committerState) openTail(j *Journal, v *view) {
	if len(v.segs) == 0 {
		return
	}
	f, err := j.opts.fs.OpenFile(v.segs[len(v.segs)-1].path, os.O_RDONLY, 0)
	if err != nil {
		j.fail(fmt.Errorf("open tail segment for fsync: %w", err))
		return
	}
	if c.tail != nil {
		// A batch handed to the syncer may still name it: it is closed
		// by the syncer after the next fsync it makes.
		c.tails = append(c.tails, c.tail)
	}
	c.tail = f
}

func (j *Journal) observe(r *request) {
	m := j.metrics
	if m == nil {
		return
	}
	for i := range r.items {
		it := &r.items[i]
		rc := r.receipts[i]
		if rc.Duplicate {
			m.duplicates.Inc()
			continue
		}
		m.recordCounter(it.entry.surface, it.entry.ctype, it.change.Surface, it.change.ChangeType).Inc()
		for k, n := range it.kinds {
			m.redacted.WithLabelValues(string(k)).Add(float64(n))
		}
		if it.trimmed {
			m.trimmed.Inc()
		}
	}
}

func (j *Journal) answerAll(err error) {
	for _, r := range j.c.pending {
		if r.err == nil { // a request refused before writing keeps its answer
			r.err = err
		}
		r.done <- struct{}{}
	}
}
