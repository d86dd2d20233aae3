package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

const (
	archiveDirName  = "archive"
	horizonFileName = "horizon.json"
	compactFileName = "last-compaction.json"
)

// archiveSeg is one archive file as the engine knows it. The range
// [first, last] is what the archive accounts for: stored records plus
// records dropped by coalescing. The file name states it, and a version 2
// footer states it too; the two must agree (loadArchives refuses the
// archive otherwise). Its footer stays in memory so queries skip whole
// archives, and the open archive keeps its block index so scans skip
// blocks without touching the file.
//
// A hole (a run of sequences no file holds) is an archiveSeg with hole
// set and err a *HoleError: it sits in the view's archive list where the
// missing file would be, so every read that reaches it fails.
type archiveSeg struct {
	path    string
	name    string
	first   uint64
	last    uint64
	bytes   int64
	footer  archive.Footer
	err     error // non-nil when the archive could not be opened or was refused
	refused bool  // err is a refusal (another journal, name and footer disagree), not damage
	hole    bool  // a placeholder for missing sequences, not a file
}

// labelsFor returns the archive's labels that name any of surfaces: a
// record's label is its surface, or, when it lists other surfaces in
// changed_surfaces, its surface and those joined by '+' (archiveLabel).
func (a *archiveSeg) labelsFor(surfaces []string) []string {
	var out []string
	for label, n := range a.footer.LabelCounts {
		if n > 0 && labelNamesAny(label, surfaces) {
			out = append(out, label)
		}
	}
	return out
}

// labelNamesAny reports whether label names one of surfaces, without
// allocating.
func labelNamesAny(label string, surfaces []string) bool {
	for {
		s, rest, more := strings.Cut(label, labelSep)
		if slices.Contains(surfaces, s) {
			return true
		}
		if !more {
			return false
		}
		label = rest
	}
}

// labelSep joins the surfaces of a multi-surface record's archive label;
// it cannot occur in a surface id.
const labelSep = "+"

// archiveLabel is the archive label of a record of surface that also
// lists others.
func archiveLabel(surface string, others []string) string {
	if len(others) == 0 {
		return surface
	}
	return surface + labelSep + strings.Join(others, labelSep)
}

// labelSurfaces splits an archive label into the surfaces it names, its
// record's own first.
func labelSurfaces(label string) []string {
	if !strings.Contains(label, labelSep) {
		return []string{label}
	}
	return strings.Split(label, labelSep)
}

// loadArchives lists and opens the archives in dir (footer and index
// only) and checks each against the journal identity id and its name.
// A damaged archive stays in the list with err set, so the rest stays
// readable and queries that need it fail loudly instead of skipping it.
// A refused one (another journal's, a version 1 archive the identity does
// not list, a name that disagrees with the footer) stays in the list with
// err and refused set: open fails on it, validate reports it.
func loadArchives(dir string, id *journalIdentity) ([]*archiveSeg, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*archiveSeg
	for _, e := range ents {
		first, last, ok := archive.ParseFileName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		a := &archiveSeg{path: filepath.Join(dir, e.Name()), name: e.Name(), first: first, last: last}
		if fi, err := e.Info(); err == nil {
			a.bytes = fi.Size()
		}
		ar, err := archive.Open(a.path)
		if err != nil {
			a.err = err
		} else {
			a.footer = ar.Footer()
			ar.Close() // reopened on demand through the archive cache
			if err := checkArchive(a, id); err != nil {
				a.err, a.refused = err, true
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].first < out[k].first })
	return out, nil
}

// newestCommit is the commit time of the archive's newest record as
// retention and the dedupe window count it: the footer's MaxTime, which
// this build fills from commit times. An archive of an earlier release
// holds occurred_at there; a value in the future (a writer's clock gone
// wrong) is capped at the file's modification time, the latest moment
// its records can have been committed, so it cannot pin age retention.
func (a *archiveSeg) newestCommit(now int64) int64 {
	t := a.footer.MaxTime
	if t > now {
		if m := fileMtime(a.path); m > 0 && m < t {
			t = m
		}
	}
	return t
}

// checkArchive checks an opened archive's footer against the journal
// identity and against the range its name claims.
func checkArchive(a *archiveSeg, id *journalIdentity) error {
	f := a.footer
	rel := relPath(archiveDirName, a.name)
	if f.Version == archive.FormatV1 {
		if !id.acceptsLegacyArchive(a.name, f.Checksum) {
			return &IntegrityError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf(
				"a version 1 archive (no journal id) that was not here when this directory got its identity (journal %s); it may come from another journal: move it out of archive/", id.idString())}
		}
	} else {
		if id != nil && f.JournalID != id.id {
			return &IntegrityError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf(
				"written by journal %s, this directory is journal %s: move it out of archive/ (nothing was deleted); if every archive names that journal, state/identity.json is the stranger and state-journal-validate --repair rewrites it from the archives",
				journalIDString(f.JournalID), id.JournalID)}
		}
		if f.RangeFirst != a.first || f.RangeLast != a.last {
			return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(
				"the name claims sequences %d..%d but the footer accounts for %d..%d: rename it to %s or move it out of archive/ (nothing was cut or deleted)",
				a.first, a.last, f.RangeFirst, f.RangeLast, archive.FileName(f.RangeFirst, f.RangeLast))}
		}
	}
	if err := checkArchiveRange(a); err != nil {
		return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: err.Error() + " (nothing was cut or deleted)"}
	}
	return nil
}

// checkArchiveRange checks the footer's records against the range the
// name claims: every sequence of it is stored or coalesced.
func checkArchiveRange(a *archiveSeg) error {
	f := a.footer
	span := a.last - a.first + 1
	lastOK := f.LastSeq == a.last || f.Version != archive.FormatV1 // v2 states its range; v1 only its records'
	if f.Records+f.Coalesced != span || (f.Records > 0 && (f.FirstSeq < a.first || f.LastSeq > a.last || !lastOK)) {
		return fmt.Errorf("%w: archive %s names sequences %d..%d but its footer holds %d records (%d..%d) and %d coalesced",
			archive.ErrCorrupt, a.name, a.first, a.last, f.Records, f.FirstSeq, f.LastSeq, f.Coalesced)
	}
	return nil
}

// refusedArchive returns the first archive loadArchives refused.
func refusedArchive(as []*archiveSeg) error {
	for _, a := range as {
		if a.refused {
			return a.err
		}
	}
	return nil
}

// checkArchiveOverlaps returns an error naming two archives whose ranges
// overlap: compaction never writes them, so neither is believed.
func checkArchiveOverlaps(as []*archiveSeg) error {
	for i := 1; i < len(as); i++ {
		if as[i].first <= as[i-1].last {
			return &IntegrityError{File: relPath(archiveDirName, as[i].name), Err: types.ErrIntegrity, Problem: fmt.Sprintf(
				"sequences %d..%d overlap %s (%d..%d): compaction never writes overlapping archives; move the wrong one out of archive/ (nothing was deleted)",
				as[i].first, as[i].last, as[i-1].name, as[i-1].first, as[i-1].last)}
		}
	}
	return nil
}

// legacyArchives lists the version 1 archives of as, for the identity
// an upgrade writes.
func legacyArchives(as []*archiveSeg) []legacyArchive {
	out := []legacyArchive{}
	for _, a := range as {
		if a.err == nil && a.footer.Version == archive.FormatV1 {
			out = append(out, legacyArchive{Name: a.name, Checksum: a.footer.Checksum})
		}
	}
	return out
}

// verifyArchiveAgainstHot checks, before open cuts hot records that a
// (the newest archive) also holds, that a is whole and holds those very
// records: every block is read and checked, every archived record in
// the overlap has the hot record's bytes, and the hot records it lacks
// are no more than its coalesced count.
func verifyArchiveAgainstHot(a *archiveSeg, v *view) error {
	rel := relPath(archiveDirName, a.name)
	fail := func(format string, args ...any) error {
		return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(format, args...) +
			fmt.Sprintf("; the hot log still holds sequences %d..%d, so nothing was cut: move the archive out of archive/ and reopen", v.first, a.last), Cause: causeOf(args)}
	}
	ar, err := archive.Open(a.path)
	if err != nil {
		return fail("cannot be opened: %v", err)
	}
	defer ar.Close()
	if errs := ar.Verify(); len(errs) > 0 {
		return fail("is damaged: %v", errs[0])
	}
	hot := make(map[uint64]uint32, a.last-v.first+1)
	for _, s := range v.segs {
		if s.first > a.last {
			break
		}
		_, err := segment.Scan(segment.HotSegment{Path: s.path, FirstSeq: s.first}, segment.ScanOptions{}, func(e segment.HotEntry) bool {
			if e.Seq > a.last {
				return false
			}
			if e.Seq >= v.first {
				hot[e.Seq] = crc32.Checksum(e.Payload, castagnoli)
			}
			return true
		})
		if damage := (*segment.CorruptionError)(nil); errors.As(err, &damage) && damage.Sequence > a.last {
			// Damage past the overlap (a write in progress, or a tail the
			// writer cuts) does not touch the records compared here.
			err = nil
		}
		if errors.Is(err, os.ErrNotExist) {
			// A read-only view raced the writer's front truncation: the
			// caller retries on a fresh listing.
			return err
		}
		if err != nil {
			return fail("cannot be compared with hot segment %s: %v", filepath.Base(s.path), err)
		}
	}
	var matched uint64
	var bad error
	err = ar.Scan(v.first, nil, func(r archive.Record) bool {
		if r.Seq > a.last {
			return false
		}
		c, ok := hot[r.Seq]
		if !ok || c != crc32.Checksum(r.Payload, castagnoli) {
			bad = fmt.Errorf("sequence %d differs from the hot log's record", r.Seq)
			return false
		}
		matched++
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return fail("does not hold the hot records it would replace: %v", err)
	}
	if missing := uint64(len(hot)) - matched; missing > a.footer.Coalesced || uint64(len(hot)) != a.last-v.first+1 {
		return fail("accounts for %d of the %d hot sequences %d..%d it overlaps (%d coalesced)", matched, a.last-v.first+1, v.first, a.last, a.footer.Coalesced)
	}
	return nil
}

// horizonState is persisted in state/horizon.json: the oldest sequence
// retention still promises. It only moves forward, and it is written
// before the archives below it are removed. Version 2 carries the journal
// id and a CRC32C; version 1 (step 4: {"horizon":N,"updated_at":...})
// is read only during an upgrade.
type horizonState struct {
	Version   int       `json:"version,omitempty"` // 2; absent in version 1
	JournalID string    `json:"journal_id,omitempty"`
	Horizon   uint64    `json:"horizon"`
	UpdatedAt time.Time `json:"updated_at"`
	CRC       string    `json:"crc32c,omitempty"`
}

const horizonVersion = 2

// horizonRead is what readHorizon found.
type horizonRead struct {
	value   uint64
	present bool
	legacy  bool // a version 1 file
}

// readHorizon reads and verifies state/horizon.json: its checksum, its
// journal id against id, its version. A missing file is not an error
// here (present false); a damaged, foreign or unknown one is an
// *IntegrityError, never a silent 0.
func readHorizon(dir string, id *journalIdentity) (horizonRead, error) {
	rel := relPath(stateDirName, horizonFileName)
	b, err := os.ReadFile(filepath.Join(dir, stateDirName, horizonFileName))
	if errors.Is(err, os.ErrNotExist) {
		return horizonRead{}, nil
	}
	if err != nil {
		return horizonRead{}, &IntegrityError{File: rel, Problem: "cannot be read: " + err.Error(), Err: types.ErrIntegrity}
	}
	return parseHorizon(b, id)
}

// parseHorizon decodes and verifies the bytes of a horizon file for the
// journal identity id.
func parseHorizon(b []byte, id *journalIdentity) (horizonRead, error) {
	rel := relPath(stateDirName, horizonFileName)
	bad := func(format string, a ...any) error {
		return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(format, a...) +
			"; the horizon decides which archives retention removes, so nothing was opened or deleted: restore the file, or run state-journal-validate --repair to rewrite it from the archives and the hot log", Cause: causeOf(a)}
	}
	if len(b) == 0 {
		return horizonRead{}, bad("is empty")
	}
	var h horizonState
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return horizonRead{}, bad("is not a horizon file: %v", err)
	}
	if d.More() {
		return horizonRead{}, bad("has bytes after its JSON object")
	}
	switch h.Version {
	case 0: // version 1
		if h.JournalID != "" || h.CRC != "" {
			return horizonRead{}, bad("has no version but a journal id or checksum")
		}
		if id != nil && (id.Upgrade == nil || id.Upgrade.LegacyHorizon != h.Horizon) {
			return horizonRead{}, &IntegrityError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf(
				"a version 1 horizon file (no journal id, no checksum) in journal %s, which writes version %d; it is not the one the upgrade found, so it is not believed: restore the file, or run state-journal-validate --repair to rewrite it", id.JournalID, horizonVersion)}
		}
		return horizonRead{value: h.Horizon, present: true, legacy: true}, nil
	case horizonVersion:
	default:
		return horizonRead{}, &IntegrityError{File: rel, Err: segment.ErrUnsupportedVersion, Problem: fmt.Sprintf("horizon file version %d, this build reads 1 and %d", h.Version, horizonVersion)}
	}
	if err := fsx.CheckSealedJSON(&h, &h.CRC); err != nil {
		return horizonRead{}, bad("%v", err)
	}
	if id == nil {
		return horizonRead{}, &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(
			"names journal %s but state/identity.json is missing: restore the identity file (its journal_id must be %s), or run state-journal-validate --repair to rewrite it", h.JournalID, h.JournalID)}
	}
	if h.JournalID != id.JournalID {
		return horizonRead{}, &IntegrityError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf(
			"written by journal %s, this directory is journal %s: it is not believed and nothing was deleted; restore this journal's horizon file, or run state-journal-validate --repair to rewrite it", h.JournalID, id.JournalID)}
	}
	if h.Horizon == 0 {
		return horizonRead{}, bad("horizon 0 is not a sequence")
	}
	return horizonRead{value: h.Horizon, present: true}, nil
}

// writeHorizonFile persists horizon h for journal id atomically.
func writeHorizonFile(fsys fsx.FS, dir string, id *journalIdentity, h uint64) error {
	if id == nil {
		return fmt.Errorf("write horizon %d: the journal has no identity", h)
	}
	st := horizonState{Version: horizonVersion, JournalID: id.JournalID, Horizon: h, UpdatedAt: time.Now().UTC()}
	return fsx.WriteFileAtomicFS(fsys, filepath.Join(dir, stateDirName, horizonFileName), fsx.SealJSON(&st, &st.CRC), 0o644)
}

// writeHorizon persists the journal's new horizon h (retention calls it
// before it removes any archive below h).
func (j *Journal) writeHorizon(h uint64) error { return writeHorizonFile(j.opts.fs, j.dir, j.ident, h) }

// checkHorizon cross-checks a horizon read from disk against the files:
// it must name an archive's first sequence, the first hot sequence
// (hotFirst; head+1 when the hot log is empty), or a sequence no file
// holds below them (a hole, reported as such). A horizon past hotFirst or
// inside an archive's range is what no retention run writes: it is
// refused, and nothing is deleted.
func checkHorizon(h horizonRead, as []*archiveSeg, hotFirst uint64) error {
	if !h.present {
		return nil
	}
	rel := relPath(stateDirName, horizonFileName)
	if h.value > hotFirst {
		return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(
			"horizon %d lies past the hot log's first sequence %d: retention never removes hot records, so the file is not believed and nothing was deleted; restore it, or run state-journal-validate --repair to rewrite it from the archives and the hot log", h.value, hotFirst)}
	}
	for _, a := range as {
		if a.hole {
			continue
		}
		if h.value > a.first && h.value <= a.last {
			return &IntegrityError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(
				"horizon %d lies inside %s (%d..%d): retention removes whole archives, so the file is not believed and nothing was deleted; restore it, or run state-journal-validate --repair to rewrite it", h.value, a.name, a.first, a.last)}
		}
	}
	return nil
}

// findHoles returns the archive list with a hole placeholder wherever
// sequences from the horizon floor (1 without a horizon file) to the hot
// log's first sequence hotFirst are held by no file. as must hold only
// archives at or above floor, sorted, without overlaps.
func findHoles(as []*archiveSeg, floor, hotFirst uint64, horizonPresent bool, firstHot string) []*archiveSeg {
	expect := max(floor, 1)
	prev := ""
	cause := func(beforeHot bool) string {
		why := "the file that held them is missing"
		switch {
		case prev == "" && !horizonPresent:
			why = "the file that held them is missing, or state/horizon.json is (retention writes the horizon before it removes anything)"
		case prev == "":
			why = fmt.Sprintf("the file that held them is missing, or state/horizon.json (which says %d) is stale", floor)
		}
		switch {
		case beforeHot:
			return why + "; restore it from a backup, or run state-journal-validate --repair to record the loss with tombstones"
		case prev == "":
			return why + "; restore it from a backup, or run state-journal-validate --repair to move the horizon past them (cursors below get ErrCompacted)"
		}
		return why + "; restore it from a backup (until then every read that crosses them fails)"
	}
	var out []*archiveSeg
	for _, a := range as {
		if a.first > expect {
			out = append(out, &archiveSeg{first: expect, last: a.first - 1, hole: true,
				err: &HoleError{First: expect, Last: a.first - 1, After: prev, Before: a.name, Cause: cause(false)}})
		}
		out = append(out, a)
		expect, prev = a.last+1, a.name
	}
	if hotFirst > expect {
		out = append(out, &archiveSeg{first: expect, last: hotFirst - 1, hole: true,
			err: &HoleError{First: expect, Last: hotFirst - 1, After: prev, Before: firstHot, Cause: cause(true)}})
	}
	return out
}

// holes returns the hole placeholders of as.
func holes(as []*archiveSeg) []*HoleError {
	var out []*HoleError
	for _, a := range as {
		if a.hole {
			out = append(out, a.err.(*HoleError))
		}
	}
	return out
}

// archiveBytes sums the archives' file sizes.
func archiveBytes(as []*archiveSeg) int64 {
	var n int64
	for _, a := range as {
		n += a.bytes
	}
	return n
}

// archiveFiles counts the archives of as that are files (not holes).
func archiveFiles(as []*archiveSeg) int {
	n := 0
	for _, a := range as {
		if !a.hole {
			n++
		}
	}
	return n
}

// archiveWriterOptions are the options compaction writes an archive of
// sequences first..last with: this journal's id and the covered range in
// the footer, so the footer, not the file name, says what the archive
// holds.
func (j *Journal) archiveWriterOptions(first, last, coalesced uint64) archive.WriterOptions {
	o := archive.WriterOptions{Coalesced: coalesced, RangeFirst: first, RangeLast: last, FS: j.opts.fs}
	if j.ident != nil {
		o.JournalID = j.ident.id
	}
	return o
}
