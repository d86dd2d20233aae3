package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
)

const (
	archiveDirName  = "archive"
	horizonFileName = "horizon.json"
	compactFileName = "last-compaction.json"
)

// archiveSeg is one archive file as the engine knows it. The range
// [first, last] comes from the file name and includes records dropped by
// coalescing; the footer says how many were kept and how many coalesced.
// Its footer stays in memory so queries skip whole archives, and the open
// archive keeps its block index so scans skip blocks without touching the
// file.
type archiveSeg struct {
	path   string
	name   string
	first  uint64
	last   uint64
	bytes  int64
	footer segment.ArchiveFooter
	err    error // non-nil when the archive could not be opened
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
// only). A damaged archive stays in the list with err set, so the rest
// stays readable and queries that need it fail loudly instead of
// skipping it.
func loadArchives(dir string) ([]*archiveSeg, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*archiveSeg
	for _, e := range ents {
		first, last, ok := segment.ParseArchiveFileName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		a := &archiveSeg{path: filepath.Join(dir, e.Name()), name: e.Name(), first: first, last: last}
		if fi, err := e.Info(); err == nil {
			a.bytes = fi.Size()
		}
		ar, err := segment.OpenArchive(a.path)
		if err != nil {
			a.err = err
		} else {
			a.footer = ar.Footer()
			ar.Close() // reopened on demand through the archive cache
			if err := checkArchiveRange(a); err != nil {
				a.err = err
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

// checkArchiveRange checks the footer against the range the name claims.
func checkArchiveRange(a *archiveSeg) error {
	f := a.footer
	span := a.last - a.first + 1
	if f.Records+f.Coalesced != span || (f.Records > 0 && (f.FirstSeq < a.first || f.LastSeq != a.last)) {
		return fmt.Errorf("%w: archive %s names sequences %d..%d but its footer holds %d records (%d..%d) and %d coalesced",
			segment.ErrArchiveCorrupt, a.name, a.first, a.last, f.Records, f.FirstSeq, f.LastSeq, f.Coalesced)
	}
	return nil
}

// horizonState is persisted in state/horizon.json: the oldest sequence
// retention still promises. It only moves forward, and it is written
// before the archives below it are removed.
type horizonState struct {
	Horizon   uint64    `json:"horizon"`
	UpdatedAt time.Time `json:"updated_at"`
}

func readHorizon(stateDir string) uint64 {
	b, err := os.ReadFile(filepath.Join(stateDir, horizonFileName))
	if err != nil {
		return 0
	}
	var h horizonState
	if json.Unmarshal(b, &h) != nil {
		return 0
	}
	return h.Horizon
}

func writeHorizon(stateDir string, h uint64) error {
	b, _ := json.Marshal(horizonState{Horizon: h, UpdatedAt: time.Now().UTC()})
	return fsx.WriteFileAtomic(filepath.Join(stateDir, horizonFileName), append(b, '\n'), 0o644)
}

// archiveBytes sums the archives' file sizes.
func archiveBytes(as []*archiveSeg) int64 {
	var n int64
	for _, a := range as {
		n += a.bytes
	}
	return n
}

func archiveRecords(as []*archiveSeg) uint64 {
	var n uint64
	for _, a := range as {
		n += a.footer.Records
	}
	return n
}
