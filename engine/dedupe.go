package engine

import (
	"time"
)

// dedupe remembers recent event ids so a retry with the same id returns
// the first receipt and writes nothing. It is owned by the committer.
//
// The window: an id is remembered for `window` after the record's
// occurred_at and at most `max` ids are kept (oldest forgotten first). It
// survives restarts because Open rebuilds it from the records still in
// the journal, and it never outlives retention: ids of records removed by
// retention are forgotten with them.
type dedupe struct {
	window time.Duration
	max    int
	ids    map[string]Receipt
	order  []dedupeItem // FIFO by insertion
	head   int
}

type dedupeItem struct {
	id  string
	exp int64 // unix nanos
	seq uint64
}

func newDedupe(window time.Duration, max int) *dedupe {
	if max <= 0 {
		max = DefaultDedupeMax
	}
	return &dedupe{window: window, max: max, ids: make(map[string]Receipt)}
}

func (d *dedupe) get(id string) (Receipt, bool) {
	rc, ok := d.ids[id]
	return rc, ok
}

func (d *dedupe) put(id string, rc Receipt, occurred time.Time) {
	if d.window <= 0 {
		return
	}
	exp := occurred.Add(d.window).UnixNano()
	if exp < time.Now().UnixNano() {
		return
	}
	d.ids[id] = rc
	d.order = append(d.order, dedupeItem{id: id, exp: exp, seq: rc.Sequence})
	d.expire(time.Now().UnixNano(), 0)
}

// expire forgets ids past their window, beyond the size bound, or whose
// record lies below horizon (removed by retention).
func (d *dedupe) expire(now int64, horizon uint64) {
	for d.head < len(d.order) {
		it := d.order[d.head]
		if len(d.order)-d.head <= d.max && it.exp > now && it.seq >= horizon {
			break
		}
		if rc, ok := d.ids[it.id]; ok && rc.Sequence == it.seq {
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
