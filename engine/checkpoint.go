package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// The index checkpoint lets Open skip decoding the hot log: it holds the
// hot index, the per-surface and per-snapshot figures (hot and archived)
// and the dedupe window as of a point in the log, and Open replays only
// the records after that point. It is written at clean shutdown and after
// every compaction, atomically (temp file, fsync, rename, directory
// fsync). A checkpoint that is missing, damaged, of another version, of
// another journal or incarnation, stale, or taken under another registry
// is never an error: Open logs a *CheckpointError saying why and rebuilds
// from the log.
//
// The byte layout (version 4: magic, version, flags, meta JSON, 32-byte
// entries, CRC32C) is specified in docs/format/checkpoint.md; the golden
// file testdata/step5-dir/state/index.ckpt pins it
// (TestCheckpointGoldenFileIsVersion4AsDocumented).
const (
	checkpointFileName = "index.ckpt"
	checkpointMagic    = "SJCK"
	// checkpointVersion 3: entries' time is the commit time, dedupe ids
	// carry their content hash (both since version 2 of step5-time), and
	// meta "also" lists the extra surfaces of hot records that list
	// several in changed_surfaces. 4: the meta carries the journal id, the
	// last durable sequence and per-segment fingerprints. An older
	// checkpoint cannot say these, so it is not used: Open says so,
	// rebuilds the index from the log and archives, and writes a current
	// checkpoint at the next compaction or shutdown.
	checkpointVersion = 4
	entryDiskSize     = 32
)

// checkpointMeta is the JSON part of a checkpoint.
type checkpointMeta struct {
	First    uint64        `json:"first"`
	Last     uint64        `json:"last"` // first-1 when the hot log is empty
	Segments []ckptSegment `json:"segments"`
	Archives []string      `json:"archives"`
	Names    []string      `json:"names"` // interned ids → names
	Surfaces []ckptSurface `json:"surfaces"`
	Hints    []ckptHint    `json:"hints"`
	Dedupe   []ckptDedupe  `json:"dedupe"`
	Bytes    int64         `json:"bytes"`
	At       time.Time     `json:"at"`
	// Registry is the Digest of the surface registry the journal ran
	// under: the per-snapshot figures (Hints) depend on it, so a
	// checkpoint taken under another registry is rebuilt.
	Registry string `json:"registry_digest"`
	Journal  string `json:"journal_id"`
	// Durable is the last sequence that was fsynced when the checkpoint
	// was written: the files must hold at least that much.
	Durable uint64     `json:"durable"`
	Also    []ckptAlso `json:"also,omitempty"`
}

// ckptAlso is a hot record indexed under the other surfaces it lists.
type ckptAlso struct {
	Seq      uint64   `json:"seq"`
	Surfaces []string `json:"surfaces"`
}

type ckptSegment struct {
	First uint64 `json:"first"`
	Name  string `json:"name"`
	Size  int64  `json:"size"` // bytes covered
	// Fingerprint is segmentFingerprint of the covered bytes.
	Fingerprint uint32 `json:"fingerprint"`
}

// fingerprintWindow is how many bytes at each end of a segment's covered
// part its fingerprint reads.
const fingerprintWindow = 4096

// segmentFingerprint is the CRC32C of the first and the last (up to)
// 4 KiB of path's first size bytes: records carry random event ids and
// times, so another incarnation's segment of the same name and size has
// another fingerprint.
func segmentFingerprint(path string, size int64) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, min(size, fingerprintWindow))
	if _, err := f.ReadAt(head, 0); err != nil {
		return 0, fmt.Errorf("fingerprint %s: %w", filepath.Base(path), err)
	}
	crc := crc32.Checksum(head, castagnoli)
	if size > fingerprintWindow {
		tail := make([]byte, min(size-fingerprintWindow, fingerprintWindow))
		if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
			return 0, fmt.Errorf("fingerprint %s: %w", filepath.Base(path), err)
		}
		crc = crc32.Update(crc, castagnoli, tail)
	}
	return crc, nil
}

type ckptSurface struct {
	Name string      `json:"name"`
	Stat surfaceStat `json:"stat"`
}

type ckptHint struct {
	Name string `json:"name"`
	Last uint64 `json:"last"`
}

// ckptDedupe is one id of the dedupe window (version 2: At is the commit
// time, Occurred and Hash describe the content, see identity).
type ckptDedupe struct {
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	At       int64  `json:"at"`       // commit time, unix nanos
	Occurred int64  `json:"occurred"` // occurred_at, unix nanos
	Hash     uint64 `json:"hash"`     // contentHash
	Srf      string `json:"surface"`
}

// writeCheckpoint writes the checkpoint of view v with dedupe items d.
func (j *Journal) writeCheckpoint(v *view, d []ckptDedupe) error {
	if len(v.segs) == 0 || j.ident == nil {
		return nil
	}
	meta := checkpointMeta{First: v.first, Last: v.first + uint64(len(v.entries)) - 1, Bytes: v.bytes, At: time.Now().UTC(),
		Registry: j.opts.registry.Digest(), Dedupe: d, Journal: j.ident.JournalID}
	meta.Durable = min(j.durableSeq.Load(), meta.Last)
	// Bytes covered per segment, from the entries.
	for i, s := range v.segs {
		cs := ckptSegment{First: s.first, Name: filepath.Base(s.path)}
		end := v.first + uint64(len(v.entries)) // one past the last
		if i+1 < len(v.segs) {
			end = v.segs[i+1].first
		}
		if end > s.first && end-1 >= v.first && len(v.entries) > 0 {
			e := v.entries[end-1-v.first]
			cs.Size = int64(e.off) + int64(e.length)
		}
		fp, err := segmentFingerprint(s.path, cs.Size)
		if err != nil {
			return err
		}
		cs.Fingerprint = fp
		meta.Segments = append(meta.Segments, cs)
	}
	for _, a := range v.archives {
		if !a.hole {
			meta.Archives = append(meta.Archives, a.name)
		}
	}
	j.intern.mu.RLock()
	meta.Names = slices.Clone(j.intern.names)
	j.intern.mu.RUnlock()
	for id, s := range v.surf {
		if s.Records > 0 || s.LastSequence > 0 {
			meta.Surfaces = append(meta.Surfaces, ckptSurface{Name: meta.Names[id], Stat: s})
		}
	}
	for id, last := range v.hintLast {
		if last > 0 {
			meta.Hints = append(meta.Hints, ckptHint{Name: meta.Names[id], Last: last})
		}
	}
	for _, a := range v.also {
		ca := ckptAlso{Seq: a.seq}
		for _, id := range a.surf {
			ca.Surfaces = append(ca.Surfaces, meta.Names[id])
		}
		meta.Also = append(meta.Also, ca)
	}
	buf, err := encodeCheckpoint(&meta, v.entries)
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomicFS(j.opts.fs, filepath.Join(j.dir, stateDirName, checkpointFileName), buf, 0o644)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeCheckpoint lays out a checkpoint file (docs/format/checkpoint.md):
// header, meta, entries, CRC32C.
func encodeCheckpoint(meta *checkpointMeta, entries []hotEntry) ([]byte, error) {
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 16+len(mb)+len(entries)*entryDiskSize+4)
	buf = append(buf, checkpointMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, checkpointVersion)
	buf = binary.LittleEndian.AppendUint16(buf, 0)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(mb)))
	buf = append(buf, mb...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(entries)))
	for i := range entries {
		buf = appendEntry(buf, &entries[i])
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli)), nil
}

func appendEntry(b []byte, e *hotEntry) []byte {
	b = binary.LittleEndian.AppendUint32(b, e.off)
	b = binary.LittleEndian.AppendUint32(b, e.length)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.unix))
	b = binary.LittleEndian.AppendUint16(b, e.surface)
	b = append(b, e.ctype, e.sev)
	b = binary.LittleEndian.AppendUint16(b, e.hint)
	b = append(b, e.multi, 0)
	b = binary.LittleEndian.AppendUint32(b, e.agg)
	b = binary.LittleEndian.AppendUint32(b, e.corr)
	return b
}

func readEntry(b []byte) hotEntry {
	return hotEntry{
		off: binary.LittleEndian.Uint32(b[0:]), length: binary.LittleEndian.Uint32(b[4:]),
		unix: int64(binary.LittleEndian.Uint64(b[8:])), surface: binary.LittleEndian.Uint16(b[16:]),
		ctype: b[18], sev: b[19], hint: binary.LittleEndian.Uint16(b[20:]), multi: b[22],
		agg: binary.LittleEndian.Uint32(b[24:]), corr: binary.LittleEndian.Uint32(b[28:]),
	}
}

// ErrCheckpoint matches every *CheckpointError: the index checkpoint was
// not used. It is never a failure of the journal: Open logs the
// CheckpointError and rebuilds the index from the log and the archives.
var ErrCheckpoint = errors.New("index checkpoint not used")

// errStaleCheckpoint says a checkpoint does not match the files.
var errStaleCheckpoint = errors.New("checkpoint does not match the files")

// errRegistryChanged says a checkpoint was taken under another registry.
var errRegistryChanged = errors.New("checkpoint taken under another surface registry")

// CheckpointReason says why an index checkpoint was not used. The values
// are stable: Open logs them under the key "reason".
type CheckpointReason string

// Why a checkpoint was not used.
const (
	// CheckpointMissing: there is no checkpoint (a new or crashed journal).
	CheckpointMissing CheckpointReason = "missing"
	// CheckpointUnreadable: reading the file failed (Err is the I/O error).
	CheckpointUnreadable CheckpointReason = "unreadable"
	// CheckpointDamaged: bad magic, checksum, length, meta or entries (Err
	// matches segment.ErrCorrupt).
	CheckpointDamaged CheckpointReason = "damaged"
	// CheckpointUnsupported: a version this build does not read (Err
	// matches segment.ErrUnsupportedVersion).
	CheckpointUnsupported CheckpointReason = "unsupported_version"
	// CheckpointForeign: written by another journal, or by an earlier
	// incarnation of this directory (Err matches types.ErrForeign).
	CheckpointForeign CheckpointReason = "foreign"
	// CheckpointStale: the files changed since it was written, or the log
	// ends before it does.
	CheckpointStale CheckpointReason = "stale"
	// CheckpointRegistry: taken under another surface registry, whose
	// snapshot hints the per-snapshot figures it holds were derived from.
	CheckpointRegistry CheckpointReason = "registry_changed"
)

// CheckpointError says why the index checkpoint at Path was not used. It
// matches ErrCheckpoint and its cause Err (segment.ErrCorrupt for
// damage, segment.ErrUnsupportedVersion, types.ErrForeign, os.ErrNotExist
// for a missing file), so the checkpoint's damage is never mistaken for
// the hot log's.
type CheckpointError struct {
	Path   string // state/index.ckpt, relative to the data directory
	Reason CheckpointReason
	Err    error
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("index checkpoint %s not used (%s): %v", e.Path, e.Reason, e.Err)
}

// Unwrap returns ErrCheckpoint and the cause.
func (e *CheckpointError) Unwrap() []error { return []error{ErrCheckpoint, e.Err} }

// logCheckpointNotUsed logs why the checkpoint was not used: the
// *CheckpointError's reason under "reason", its text under "err".
func (j *Journal) logCheckpointNotUsed(err error) {
	ce := checkpointErr(err)
	j.log.Warn("index checkpoint not used; rebuilding the index from the log", "checkpoint", ce.Path, "reason", string(ce.Reason), "err", ce.Error())
}

// checkpointErr returns a *CheckpointError for the cause err, whose
// reason follows from what err matches.
func checkpointErr(err error) *CheckpointError {
	var ce *CheckpointError
	if errors.As(err, &ce) {
		return ce
	}
	ce = &CheckpointError{Path: relPath(stateDirName, checkpointFileName), Err: err}
	switch {
	case errors.Is(err, os.ErrNotExist):
		ce.Reason = CheckpointMissing
	case errors.Is(err, segment.ErrUnsupportedVersion):
		ce.Reason = CheckpointUnsupported
	case errors.Is(err, segment.ErrCorrupt):
		ce.Reason = CheckpointDamaged
	case errors.Is(err, types.ErrForeign):
		ce.Reason = CheckpointForeign
	case errors.Is(err, errRegistryChanged):
		ce.Reason = CheckpointRegistry
	case errors.Is(err, errStaleCheckpoint):
		ce.Reason = CheckpointStale
	default:
		ce.Reason = CheckpointUnreadable
	}
	return ce
}

// loadedCheckpoint is a checkpoint turned into a view prefix.
type loadedCheckpoint struct {
	v      *view
	segIdx int    // index in segs of the segment the replay starts in
	off    int64  // replay offset in it
	seq    uint64 // sequence at off
	dedupe []ckptDedupe
}

// loadCheckpoint reads the checkpoint and checks it against segs and the
// archive directory. It returns nil and the reason when it cannot be used.
// readCheckpointFile reads state/index.ckpt and checks its magic,
// checksum, version and shape. It returns the meta and the entry section
// (count first).
func readCheckpointFile(dir string) (checkpointMeta, []byte, error) {
	meta, rest, err := decodeCheckpointFile(dir)
	if err != nil {
		return meta, nil, checkpointErr(err)
	}
	return meta, rest, nil
}

func decodeCheckpointFile(dir string) (checkpointMeta, []byte, error) {
	var meta checkpointMeta
	b, err := os.ReadFile(filepath.Join(dir, stateDirName, checkpointFileName))
	if err != nil {
		return meta, nil, err
	}
	if len(b) < 16 || string(b[:4]) != checkpointMagic {
		return meta, nil, fmt.Errorf("%w: bad magic", segment.ErrCorrupt)
	}
	if got := crc32.Checksum(b[:len(b)-4], castagnoli); got != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return meta, nil, fmt.Errorf("%w: checksum mismatch", segment.ErrCorrupt)
	}
	if ver := binary.LittleEndian.Uint16(b[4:]); ver != checkpointVersion {
		return meta, nil, fmt.Errorf("%w: checkpoint version %d, this build reads %d", segment.ErrUnsupportedVersion, ver, checkpointVersion)
	}
	ml := int(binary.LittleEndian.Uint32(b[8:]))
	if ml > len(b)-16 {
		return meta, nil, fmt.Errorf("%w: meta length %d past the file", segment.ErrCorrupt, ml)
	}
	if err := json.Unmarshal(b[12:12+ml], &meta); err != nil {
		return meta, nil, fmt.Errorf("%w: meta: %w", segment.ErrCorrupt, err)
	}
	rest := b[12+ml : len(b)-4]
	if len(rest) < 4 {
		return meta, nil, fmt.Errorf("%w: no entry count", segment.ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint32(rest))
	if n*entryDiskSize != len(rest)-4 || uint64(n) != meta.Last+1-meta.First {
		return meta, nil, fmt.Errorf("%w: %d entries for %d bytes, sequences %d..%d", segment.ErrCorrupt, n, len(rest)-4, meta.First, meta.Last)
	}
	return meta, rest, nil
}

// lostDurable checks the hot log's last sequence against the records a
// checkpoint of this journal saw durable: a checkpoint marks durable only
// records that were fsynced before it was written, so files that end
// before them lost acknowledged records (a truncated, deleted or older
// copy of a hot segment). It returns an *IntegrityError naming the
// segment and the sequences, or nil.
func lostDurable(meta *checkpointMeta, last uint64) error {
	if meta == nil || meta.Durable <= last {
		return nil
	}
	seg := ""
	for _, cs := range meta.Segments {
		if cs.First <= last+1 {
			seg = cs.Name
		}
	}
	return &IntegrityError{File: relPath(hotDirName, seg), Err: ErrHole, Problem: fmt.Sprintf(
		"the hot log ends at sequence %d, but the index checkpoint (written %s) saw sequences up to %d fsynced: acknowledged records %d..%d are missing from this segment or after it; "+
			"restore the segment from a backup, or run state-journal-validate --repair to record the loss (tombstones for %d..%d, so their sequences are never reused); "+
			"if state/index.ckpt is not this directory's own, remove it instead",
		last, meta.At.Format(time.RFC3339), meta.Durable, last+1, meta.Durable, last+1, meta.Durable)}
}

// checkpointOfJournal returns the meta of the checkpoint in dir when it
// verifies and belongs to journal id, else nil.
func checkpointOfJournal(dir string, id *journalIdentity) *checkpointMeta {
	if id == nil {
		return nil
	}
	meta, _, err := readCheckpointFile(dir)
	if err != nil || meta.Journal != id.JournalID {
		return nil
	}
	return &meta
}

// loadCheckpoint reads the checkpoint and checks it against this journal,
// its registry, segs and the archive directory. When it cannot be used it
// returns a *CheckpointError saying why.
func (j *Journal) loadCheckpoint(segs []segment.HotSegment) (*loadedCheckpoint, error) {
	lc, err := j.loadCheckpointFile(segs)
	if err != nil {
		return nil, checkpointErr(err)
	}
	return lc, nil
}

func (j *Journal) loadCheckpointFile(segs []segment.HotSegment) (*loadedCheckpoint, error) {
	meta, rest, err := readCheckpointFile(j.dir)
	if err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	switch {
	case j.ident == nil:
		return nil, fmt.Errorf("%w: the directory has no journal identity yet, so the checkpoint cannot be tied to it", errStaleCheckpoint)
	case meta.Journal != j.ident.JournalID:
		return nil, fmt.Errorf("%w: written by journal %q, this directory is journal %s", types.ErrForeign, meta.Journal, j.ident.JournalID)
	}
	// This journal's checkpoint: the records it saw durable must still be
	// in the files (loadHot checks once it has scanned them).
	j.ckptMeta = &meta
	// The files must still be what the checkpoint saw, grown at most.
	if len(meta.Segments) == 0 || len(segs) < len(meta.Segments) {
		return nil, fmt.Errorf("%w: %d hot segments, checkpoint saw %d", errStaleCheckpoint, len(segs), len(meta.Segments))
	}
	for i, cs := range meta.Segments {
		s := segs[i]
		if s.FirstSeq != cs.First || filepath.Base(s.Path) != cs.Name || s.Size < cs.Size {
			return nil, fmt.Errorf("%w: segment %s (first %d, %d bytes), checkpoint saw %s (first %d, %d bytes)",
				errStaleCheckpoint, filepath.Base(s.Path), s.FirstSeq, s.Size, cs.Name, cs.First, cs.Size)
		}
		if fp, err := segmentFingerprint(s.Path, cs.Size); err != nil || fp != cs.Fingerprint {
			return nil, fmt.Errorf("%w: segment %s does not hold the bytes the checkpoint saw (fingerprint %08x, checkpoint %08x): an earlier incarnation of the directory?",
				types.ErrForeign, filepath.Base(s.Path), fp, cs.Fingerprint)
		}
	}
	// The per-snapshot figures (hints) count records under the snapshot
	// hints the registry gave the surfaces they list in changed_surfaces;
	// under another registry a rebuild counts them differently.
	if meta.Registry != j.opts.registry.Digest() {
		return nil, fmt.Errorf("%w: registry digest %.12s, this journal runs %.12s", errRegistryChanged, meta.Registry, j.opts.registry.Digest())
	}
	ents, _ := os.ReadDir(filepath.Join(j.dir, archiveDirName))
	var names []string
	for _, e := range ents {
		if _, _, ok := archive.ParseFileName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	ck := slices.Clone(meta.Archives)
	slices.Sort(ck)
	if !slices.Equal(names, ck) {
		return nil, fmt.Errorf("%w: the archives changed since it was written", errStaleCheckpoint)
	}
	// Remap interned ids by name.
	remap := make([]uint16, len(meta.Names))
	for i, name := range meta.Names {
		remap[i] = j.intern.id(name)
	}
	v := &view{intern: j.intern, first: meta.First, bytes: 0}
	v.entries = make([]hotEntry, n, n+n/4+64)
	for i := 0; i < n; i++ {
		e := readEntry(rest[i*entryDiskSize:])
		if int(e.surface) >= len(remap) || int(e.hint) >= len(remap) {
			return nil, fmt.Errorf("%w: entry %d names id %d of %d", segment.ErrCorrupt, i, e.surface, len(remap))
		}
		e.surface, e.hint = remap[e.surface], remap[e.hint]
		v.entries[i] = e
		v.bytes += int64(e.length)
	}
	for _, a := range meta.Also {
		if a.Seq < meta.First || a.Seq > meta.Last || len(a.Surfaces) == 0 ||
			(len(v.also) > 0 && a.Seq <= v.also[len(v.also)-1].seq) || v.entries[a.Seq-meta.First].multi == 0 {
			return nil, fmt.Errorf("%w: also entry for sequence %d does not match the entries", segment.ErrCorrupt, a.Seq)
		}
		ar := alsoRec{seq: a.Seq}
		for _, name := range a.Surfaces {
			ar.surf = append(ar.surf, j.intern.id(name))
		}
		v.also = append(v.also, ar)
	}
	for i := range v.entries {
		if v.entries[i].multi != 0 && v.alsoOf(meta.First+uint64(i)) == nil {
			return nil, fmt.Errorf("%w: entry %d lists several surfaces, the checkpoint does not say which", segment.ErrCorrupt, meta.First+uint64(i))
		}
	}
	for _, s := range meta.Surfaces {
		id := j.intern.id(s.Name)
		for int(id) >= len(v.surf) {
			v.surf = append(v.surf, surfaceStat{})
		}
		v.surf[id] = s.Stat
	}
	for _, h := range meta.Hints {
		v.noteHint(j.intern.id(h.Name), h.Last)
	}
	for _, cs := range meta.Segments {
		v.segs = append(v.segs, openSeg(cs.First, filepath.Join(j.hotDir, cs.Name)))
	}
	v.rebuildPostings()
	last := len(meta.Segments) - 1
	return &loadedCheckpoint{v: v, segIdx: last, off: meta.Segments[last].Size, seq: meta.Last + 1, dedupe: meta.Dedupe}, nil
}

// checkpointDedupe copies the dedupe window for a checkpoint. It must run
// in the committer goroutine or after it stopped.
func (c *committerState) checkpointDedupe() []ckptDedupe {
	if c.dedupe == nil {
		return nil
	}
	out := make([]ckptDedupe, 0, len(c.dedupe.ids))
	for _, it := range c.dedupe.order[c.dedupe.head:] {
		e, ok := c.dedupe.ids[it.id]
		if !ok || e.seq != it.seq {
			continue
		}
		out = append(out, ckptDedupe{ID: it.id, Seq: e.seq, At: e.committed, Occurred: e.occurred, Hash: e.hash, Srf: e.surface})
	}
	return out
}

// saveCheckpoint writes a checkpoint of the current view from outside the
// committer (after a compaction).
func (j *Journal) saveCheckpoint() {
	if j.damagedHot.Load() {
		return // the next open must scan the damaged segment
	}
	v, d, err := j.durableState()
	if err != nil {
		return
	}
	if err := j.writeCheckpoint(v, d); err != nil {
		// Not sticky: the hot log is whole, and the next open rebuilds
		// the index from it.
		j.noteFailure("checkpoint", fmt.Errorf("write the index checkpoint: %w", err))
		return
	}
	j.checkpointFail.Store(nil)
}
