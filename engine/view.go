package engine

import (
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/agentruntime/statejournal/segment"
)

// hotSegInfo is one hot segment as readers see it. f is a read handle
// opened when the segment entered a view and shared by every view that
// holds the segment: a reader with an older view keeps reading the inode
// it knew even after a compaction removed or replaced the name. The
// handle is reference-counted, not left to a finalizer: publish drops the
// handles of segments the new view no longer holds, and each closes when
// the last reader pinning it (hotReader) lets go.
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

// publish makes v the view readers load. It is the one place that stores
// the view: it wakes everyone in Wait, and drops the read handles of the
// hot segments the replaced view held and v does not (each closes when
// the last reader pinning it lets go). The gauges derived from the view
// (hot and archive bytes and files, horizon, last sequence) read the
// published view when scraped. A view not newer than the published one is
// ignored: the syncer publishes the view of the newest batch it synced,
// and under sync=interval the committer may have published a newer one.
//
// Publishers: the syncer and the committer (a batch), the committer for
// a compaction or retention (mutateView), Refresh on a read-only journal,
// and Open (the first view).
func (j *Journal) publish(v *view) {
	j.viewMu.Lock()
	cur := j.view.Load()
	if cur != nil && v.version <= cur.version {
		j.viewMu.Unlock()
		return
	}
	j.view.Store(v)
	j.viewMu.Unlock()
	if cur != nil && len(cur.segs) > 0 && (len(v.segs) == 0 || cur.segs[0] != v.segs[0]) {
		// Only a front cut or a reload replaces segments; an append
		// keeps every one, so the common batch skips the comparison.
		closeDroppedSegs(cur, v)
	}
	j.notifyChanged()
}

// closeDroppedSegs drops the read handles of old that next no longer
// holds (segments compacted away, or replaced by tidwall/wal's front
// truncation), so deleted files do not stay open: each closes once no
// reader pins it. publish calls it for the view it replaces; open calls
// it for views it built and did not publish. A reader that loaded old
// and had not pinned it yet fails to pin and takes next (pinView).
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

// view is the immutable state readers use: the hot log's index, its
// segments, the archives and the horizon. Once published (publish, the
// one place that stores it) a view never changes. A new view is made from
// the one before by a named transition (next and add, compacted,
// retained, reloaded; see doc.go for who calls which), and only the view
// being built is written to. Views share backing arrays (entries, also,
// posting lists) with their successors, which only append past the
// older view's lengths, so a view never sees an element written after it
// was published.
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

// compacted is the transition of a compaction that cut the hot log's
// front up to and including upto (and of open completing an interrupted
// one): v as the files are then, entries up to upto gone, the segment
// holding upto+1 renamed to start there with its offsets shifted (what
// tidwall/wal's TruncateFront leaves, and what removing whole segments
// leaves too). a, when not nil, is the archive that now holds the cut
// records; it joins the archives.
func (v *view) compacted(upto uint64, a *archiveSeg, hotDir string) *view {
	nv := v.frontCut(upto, hotDir)
	if a != nil {
		nv.archives = append(append([]*archiveSeg(nil), v.archives...), a)
	}
	nv.version = v.version + 1
	return nv
}

// frontCut returns v without its hot records up to upto.
func (v *view) frontCut(upto uint64, hotDir string) *view {
	nv := *v
	if upto < v.first {
		return &nv
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
	return &nv
}

// retained is the transition of a retention run that removes the n
// oldest archives and persisted horizon: their records leave the
// per-surface counts, and the horizon floor rises.
func (v *view) retained(n int, horizon uint64, in *interner) *view {
	nv := *v
	nv.archives = append([]*archiveSeg(nil), v.archives[n:]...)
	nv.horizonFloor = horizon
	nv.surf = subtractArchived(v.surf, v.archives[:n], in)
	nv.version = v.version + 1
	return &nv
}

// reloaded is the transition of a read-only journal that read its view
// anew from the files (Refresh, after another process compacted): fresh
// replaces v whole, one version newer.
func (v *view) reloaded(fresh *view) *view {
	fresh.version = v.version + 1
	return fresh
}

// skipArchived drops, from a view being built at open, the hot entries up
// to upto that a verified archive also holds (a compaction wrote the
// archive and had not cut the hot log yet); the files stay as they are.
func (v *view) skipArchived(upto uint64) {
	k := int(min(upto+1-v.first, uint64(len(v.entries))))
	v.entries = v.entries[k:]
	v.first = upto + 1
	v.rebuildPostings()
}

// next starts the successor of v that an append transition fills (the
// committer's batch, a read-only Refresh that reads new entries): one
// version newer, with its own headers of the slices add edits (surf,
// post, hintLast) so that nothing written to it shows in v. Entries,
// posting lists and also are appended to in place: v never reads past
// its own lengths.
func (v *view) next() *view {
	nv := *v
	nv.version = v.version + 1
	nv.surf = append(make([]surfaceStat, 0, len(v.surf)+1), v.surf...)
	nv.post = append(make([][]uint64, 0, len(v.post)+1), v.post...)
	nv.hintLast = append(make([]uint64, 0, len(v.hintLast)+1), v.hintLast...)
	return &nv
}

// add appends hot record seq with index entry e to a view from next:
// the entry, its postings, its surface's figures, and, when it lists
// other surfaces, their ids (also) and snapshot hints.
func (v *view) add(seq uint64, e hotEntry, also, hints []uint16) {
	v.entries = append(v.entries, e)
	v.noteSurface(e, seq)
	v.notePost(e, seq)
	if also != nil {
		v.noteAlso(e, seq, also, hints)
	}
	v.bytes += int64(e.length)
}

// addSegment appends a hot segment to a view from next; the segment list
// is copied, never shared with v. A segment without a handle gets one
// from openSegments once its file exists.
func (v *view) addSegment(s hotSegInfo) {
	v.segs = append(v.segs[:len(v.segs):len(v.segs)], s)
}

// openSegments opens the handles of the segments addSegment added without
// one. Only for a view whose segment list addSegment copied.
func (v *view) openSegments() {
	for i := range v.segs {
		if v.segs[i].f == nil {
			v.segs[i] = openSeg(v.segs[i].first, v.segs[i].path)
		}
	}
}

// tail is the view's newest hot segment.
func (v *view) tail() hotSegInfo {
	if len(v.segs) == 0 {
		return hotSegInfo{}
	}
	return v.segs[len(v.segs)-1]
}

// tailBytes is the size of the tail segment as the view knows it: the end
// of its last entry when that entry is in the tail, 0 for an empty tail.
func (v *view) tailBytes() int64 {
	n := len(v.entries)
	if n == 0 || len(v.segs) == 0 || v.last() < v.tail().first {
		return 0
	}
	e := v.entries[n-1]
	return int64(e.off) + int64(e.length)
}

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
