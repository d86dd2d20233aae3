package engine

import (
	"os"
	"sort"
	"sync"
	"time"
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

// hotSegInfo is one hot segment as readers see it. f is a read handle
// opened when the segment entered a view and shared by every view that
// holds the segment: a reader with an older view keeps reading the inode
// it knew even after a compaction removed or replaced the name. Handles of
// segments no view holds any more are closed by os.File's finalizer.
type hotSegInfo struct {
	first uint64
	path  string
	f     *segFile // nil when the open failed; readers then open path
}

// segFile is a read handle shared by views and pinned by readers: when a
// view that drops the segment is published, the handle closes as soon as
// the last reader still using it lets go, so a long query finishes on the
// file it started with and a deleted file is not held open for long.
type segFile struct {
	mu      sync.Mutex
	f       *os.File
	refs    int  // guarded by mu
	dropped bool // guarded by mu
}

// acquire pins the handle; false when it is already closed.
func (s *segFile) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped && s.refs == 0 {
		return false
	}
	s.refs++
	return true
}

func (s *segFile) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.dropped && s.refs == 0 {
		s.f.Close()
	}
}

// drop closes the handle once no reader holds it.
func (s *segFile) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		return
	}
	s.dropped = true
	if s.refs == 0 {
		s.f.Close()
	}
}

// closeDroppedSegs closes the read handles of old that next no longer
// holds (segments compacted away, or replaced by tidwall/wal's front
// truncation), so deleted files do not stay pinned. A reader still on old
// gets os.ErrClosed and retries on the newer view.
func closeDroppedSegs(old, next *view) {
	keep := make(map[*segFile]bool, len(next.segs))
	for _, s := range next.segs {
		keep[s.f] = true
	}
	for _, s := range old.segs {
		if s.f != nil && !keep[s.f] {
			s.f.drop()
		}
	}
}

// openSeg describes a hot segment and opens its read handle.
func openSeg(first uint64, path string) hotSegInfo {
	f, err := os.Open(path)
	if err != nil {
		return hotSegInfo{first: first, path: path}
	}
	return hotSegInfo{first: first, path: path, f: &segFile{f: f}}
}

// view is the immutable state readers use. The committer publishes a new
// view after every batch; entries may share a backing array with later
// views but a view never sees an element written after it was published.
type view struct {
	first   uint64 // sequence of entries[0]; last+1 when empty
	entries []hotEntry
	segs    []hotSegInfo
	bytes   int64 // hot log bytes on disk
	surf    []surfaceStat
	intern  *interner
	// version orders views: a view replaces the published one only if
	// it is newer.
	version uint64
	// archives hold the records before first, oldest first.
	archives []*archiveSeg
	// horizonFloor is the persisted horizon: retention promised nothing
	// below it.
	horizonFloor uint64
	// post[surface] lists the hot sequences of that surface, ascending,
	// so a surface query touches only its own records.
	post [][]uint64
	// hintLast[hint] is the last sequence (hot or archived) that named
	// that snapshot hint: the answer to Stale.
	hintLast []uint64
	// ident is the journal identity the view's hot entries were checked
	// against (nil in a directory without one yet); readers check every
	// entry they decode against it (hottag.go).
	ident *journalIdentity
	// also lists the hot records with more than one changed surface,
	// ascending by sequence; appended to like entries.
	also []alsoRec
}

// noteAlso indexes a record under the other surfaces it lists: their
// postings, their per-surface figures, and (for Stale) the snapshot hint
// of each listed surface, since a consumer of that snapshot must refetch
// it too. hints[i] is the interned snapshot hint of surf[i].
func (v *view) noteAlso(e hotEntry, seq uint64, surf, hints []uint16) {
	v.also = append(v.also, alsoRec{seq: seq, surf: surf})
	for i, s := range surf {
		x := e
		x.surface = s
		v.noteSurface(x, seq)
		for int(s) >= len(v.post) {
			v.post = append(v.post, nil)
		}
		v.post[s] = append(v.post[s], seq)
		if i < len(hints) {
			v.noteHint(hints[i], seq)
		}
	}
}

// alsoOf returns the other surfaces hot record seq lists, nil when none.
func (v *view) alsoOf(seq uint64) []uint16 {
	i := sort.Search(len(v.also), func(i int) bool { return v.also[i].seq >= seq })
	if i < len(v.also) && v.also[i].seq == seq {
		return v.also[i].surf
	}
	return nil
}

// notePost records seq under its surface and hint.
func (v *view) notePost(e hotEntry, seq uint64) {
	for int(e.surface) >= len(v.post) {
		v.post = append(v.post, nil)
	}
	v.post[e.surface] = append(v.post[e.surface], seq)
	v.noteHint(e.hint, seq)
}

func (v *view) noteHint(hint uint16, seq uint64) {
	for int(hint) >= len(v.hintLast) {
		v.hintLast = append(v.hintLast, 0)
	}
	if seq > v.hintLast[hint] {
		v.hintLast[hint] = seq
	}
}

// rebuildPostings recomputes the surface postings from the entries
// (after the front of the hot log was cut).
func (v *view) rebuildPostings() {
	// Records below the hot log's first sequence left with their entries.
	k := sort.Search(len(v.also), func(i int) bool { return v.also[i].seq >= v.first })
	v.also = v.also[k:len(v.also):len(v.also)] // appends copy, never touch the older view's
	post := make([][]uint64, len(v.post))
	add := func(s uint16, seq uint64) {
		for int(s) >= len(post) {
			post = append(post, nil)
		}
		post[s] = append(post[s], seq)
	}
	a := 0
	for i := range v.entries {
		e := &v.entries[i]
		seq := v.first + uint64(i)
		add(e.surface, seq)
		if e.multi == 0 {
			continue
		}
		for a < len(v.also) && v.also[a].seq < seq {
			a++
		}
		if a < len(v.also) && v.also[a].seq == seq {
			for _, s := range v.also[a].surf {
				add(s, seq)
			}
		}
	}
	v.post = post
}

func (v *view) last() uint64 { return v.first + uint64(len(v.entries)) - 1 }

// horizon is the oldest readable sequence.
func (v *view) horizon() uint64 {
	h := v.first
	if len(v.archives) > 0 {
		h = v.archives[0].first
	}
	return max(h, v.horizonFloor)
}

// segFor returns the segment holding seq.
func (v *view) segFor(seq uint64) hotSegInfo {
	i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].first > seq })
	return v.segs[i-1]
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

func unixOf(t time.Time) int64 { return t.UnixNano() }
