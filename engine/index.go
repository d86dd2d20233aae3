package engine

import (
	"sync"
)

// hotEntry is the in-memory index entry of one record in the hot log. It
// holds what filters need, so a query reads from disk only the records it
// returns. Entries are stored in sequence order; entry i has sequence
// view.first + i.
type hotEntry struct {
	off     uint32 // offset of the wal frame in its segment file
	length  uint32 // length of the wal frame (uvarint + envelope)
	unix    int64  // committed_at (the journal's clock), unix nanos
	surface uint16 // interned surface id
	ctype   uint8  // record.ChangeTypeCode (a fixed code)
	sev     uint8  // record.SeverityCode (a fixed code, the rank)
	hint    uint16 // interned snapshot hint
	// multi is 1 when the record lists surfaces besides its own in
	// changed_surfaces (view.also holds them); it sits in what was
	// padding before agg, so an entry stays 32 bytes.
	multi uint8
	agg   uint32 // hash of aggregate_type/aggregate_id
	corr  uint32 // hash of correlation_id (0 when none)
}

// alsoRec is a hot record that lists surfaces besides its own in
// changed_surfaces: it is indexed (postings, per-surface figures, Stale)
// under each of them.
type alsoRec struct {
	seq  uint64
	surf []uint16 // interned ids, in the record's order
}

// surfaceStat is the live per-surface figure the state engine reports.
type surfaceStat struct {
	Records        uint64
	LastSequence   uint64
	LastUnix       int64
	LastChangeType uint8
	LastSeverity   uint8
}

// interner maps surface ids and snapshot hints to small integers. It
// only grows; the committer adds under mu, readers look up under mu.
type interner struct {
	mu    sync.RWMutex
	ids   map[string]uint16
	names []string
}

func newInterner() *interner { return &interner{ids: map[string]uint16{}} }

func (in *interner) id(s string) uint16 {
	in.mu.RLock()
	id, ok := in.ids[s]
	in.mu.RUnlock()
	if ok {
		return id
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if id, ok := in.ids[s]; ok {
		return id
	}
	id = uint16(len(in.names))
	in.ids[s] = id
	in.names = append(in.names, s)
	return id
}

func (in *interner) lookup(s string) (uint16, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	id, ok := in.ids[s]
	return id, ok
}

func (in *interner) name(id uint16) string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if int(id) < len(in.names) {
		return in.names[id]
	}
	return ""
}

// fnv32 is FNV-1a. The hashes are persisted in the index checkpoint, so
// they must not depend on the process (maphash seeds do).
func fnv32(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

const fnvOffset = 2166136261

// aggHash hashes an aggregate for the index; 0 is reserved for "none".
func aggHash(typ, id string) uint32 {
	h := fnv32(fnv32(fnvOffset, typ)^0xff, id)
	if h == 0 {
		h = 1
	}
	return h
}

// corrHash hashes a correlation id; 0 means none.
func corrHash(id string) uint32 {
	if id == "" {
		return 0
	}
	h := fnv32(fnvOffset, id)
	if h == 0 {
		h = 1
	}
	return h
}
