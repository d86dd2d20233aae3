package engine

import (
	"time"
)

// dedupe remembers recent writer-supplied event ids so a retry with the
// same id and content returns the first receipt and writes nothing, and a
// reuse with other content is a conflict. It is owned by the committer.
//
// The window runs on the journal's clock: an id is remembered for
// `window` after its record's commit time, never after the writer's
// occurred_at (a writer whose clock is days behind must not escape it).
// At most `max` ids are kept, oldest forgotten first, which bounds memory
// (about 150 bytes an id with its map and FIFO slots). It survives restarts: the index checkpoint
// holds it, and when the checkpoint is not used Open rebuilds it from the
// hot log and the archives, covering the whole window. It never outlives
// retention: ids of records removed by retention are forgotten with them.
type dedupe struct {
	window time.Duration
	max    int
	ids    map[string]dedupeEntry
	order  []dedupeItem // FIFO by insertion (commit order)
	head   int
}

// dedupeEntry is what the window keeps of one record: enough for its
// first receipt, and what "same content" compares. It is kept small (56
// bytes; the surface string is the registry's, shared) because the window
// holds up to a million of them.
type dedupeEntry struct {
	seq        uint64
	surface    string
	hash       uint64 // contentHash of the stored encoding after occurred_at
	occurred   int64  // unix nanos
	committed  int64  // unix nanos
	redactions int32
	trimmed    bool
}

// receipt is the first receipt of the record, marked as a duplicate.
// Durable is filled by the committer when it answers.
func (e *dedupeEntry) receipt(id string) Receipt {
	return Receipt{Sequence: e.seq, EventID: id, OccurredAt: time.Unix(0, e.occurred).UTC(), CommittedAt: time.Unix(0, e.committed).UTC(),
		Surface: e.surface, Duplicate: true, Redactions: int(e.redactions), MetadataTrimmed: e.trimmed}
}

// occSupplied reports whether the writer supplied occurred_at: the
// journal stamps an omitted one with the commit time itself.
func (e *dedupeEntry) occSupplied() bool { return e.occurred != e.committed }

type dedupeItem struct {
	id  string
	exp int64 // unix nanos
	seq uint64
}

func newDedupe(window time.Duration, max int) *dedupe {
	if max <= 0 {
		max = DefaultDedupeMax
	}
	return &dedupe{window: window, max: max, ids: make(map[string]dedupeEntry)}
}

func (d *dedupe) get(id string) (dedupeEntry, bool) {
	e, ok := d.ids[id]
	return e, ok
}

// put remembers e under id until its commit time plus the window, as of
// now (unix nanos).
func (d *dedupe) put(id string, e dedupeEntry, now int64) {
	if d.window <= 0 {
		return
	}
	exp := e.committed + int64(d.window)
	if exp < now {
		return
	}
	d.ids[id] = e
	d.order = append(d.order, dedupeItem{id: id, exp: exp, seq: e.seq})
	d.expire(now, 0)
}

// expire forgets ids past their window, beyond the size bound, or whose
// record lies below horizon (removed by retention).
func (d *dedupe) expire(now int64, horizon uint64) {
	for d.head < len(d.order) {
		it := d.order[d.head]
		if len(d.order)-d.head <= d.max && it.exp > now && it.seq >= horizon {
			break
		}
		if e, ok := d.ids[it.id]; ok && e.seq == it.seq {
			delete(d.ids, it.id)
		}
		d.order[d.head] = dedupeItem{}
		d.head++
	}
	if d.head > 4096 && d.head*2 > len(d.order) {
		d.order = append(d.order[:0:0], d.order[d.head:]...)
		d.head = 0
	}
}
