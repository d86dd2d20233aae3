package coverage

import (
	"fmt"
	"time"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/types"
)

// Verdicts of a surface: what the evidence says.
const (
	// VerdictProven: the current streak holds at least N matched changes
	// over at least T of watched time, with no miss and no gap. The
	// surface's file watcher can be retired.
	VerdictProven = "proven"
	// VerdictObserving: watched, no open gap, the streak is not long
	// enough yet.
	VerdictObserving = "observing"
	// VerdictGap: a coverage gap is open (overflow, a watch that could not
	// be added or was lost, a watcher restart) until a rescan closes it.
	VerdictGap = "gap"
	// VerdictNotObserved: nothing to watch (journal mode disabled, or
	// storage in memory or a database).
	VerdictNotObserved = "not_observed"
)

// Miss is one unjournaled change: a settled change of a surface's file
// that no record of the surface matched within the window.
type Miss struct {
	// Path is the file, relative to the runtime root when inside it.
	Path string `json:"path"`
	// At is when the file was written (its mtime, or the event time for a
	// deletion).
	At time.Time `json:"at"`
	// Fingerprint is the content the file had then (docs/record.md).
	Fingerprint string `json:"fingerprint"`
}

// Gap is an interval the watcher could not vouch for.
type Gap struct {
	From time.Time `json:"from"`
	// To is zero while the gap is open.
	To     time.Time `json:"to,omitzero"`
	Reason string    `json:"reason"`
	// Unattributable counts the changes the closing rescan found.
	Unattributable uint64 `json:"unattributable"`
}

// Streak is the evidence since a surface's last miss or gap: every
// change in it matched, so its ratio is 1.0 by construction.
type Streak struct {
	Since           time.Time `json:"since,omitzero"`
	Matched         uint64    `json:"matched"`
	ObservedSeconds float64   `json:"observed_seconds"`
}

// Figures are the persisted evidence of one surface. Counters are
// cumulative since the figures began (FirstObserved).
type Figures struct {
	// Observed counts settled changes the watcher saw and decided:
	// Matched + Unjournaled.
	Observed uint64 `json:"observed"`
	Matched  uint64 `json:"matched"`
	// Exact counts matches by a record's fingerprint (part of Matched).
	Exact       uint64 `json:"exact"`
	Unjournaled uint64 `json:"unjournaled"`
	// Unattributable counts changes a rescan found after a gap: the
	// watcher cannot say whether a record covered them, so they count
	// neither for nor against the ratio.
	Unattributable uint64 `json:"unattributable"`
	Gaps           uint64 `json:"gaps"`
	Overflows      uint64 `json:"overflows"`
	// ObservedSeconds is watched time outside gaps (the observation
	// span); time while the server is down or a gap is open is not in it.
	ObservedSeconds float64    `json:"observed_seconds"`
	FirstObserved   *time.Time `json:"first_observed,omitempty"`
	LastChange      *time.Time `json:"last_change,omitempty"`
	Streak          Streak     `json:"streak"`
	// Misses are the most recent unjournaled changes, oldest first.
	Misses  []Miss `json:"misses"`
	LastGap *Gap   `json:"last_gap,omitempty"`
	// Verdict is the verdict last computed (persisted so that a restart
	// is not taken for a transition).
	Verdict string `json:"verdict"`
}

// Ratio is Matched / (Matched + Unjournaled), or nil before any change
// was decided.
func (f *Figures) Ratio() *float64 {
	r, ok := f.ratio()
	if !ok {
		return nil
	}
	return &r
}

func (f *Figures) ratio() (float64, bool) {
	n := f.Matched + f.Unjournaled
	if n == 0 {
		return 0, false
	}
	return float64(f.Matched) / float64(n), true
}

// SurfaceReport is the coverage of one surface as status shows it.
type SurfaceReport struct {
	ID string `json:"id"`
	// Mode is the registry's journal.mode: the operator's declaration.
	Mode        string `json:"mode"`
	StorageKind string `json:"storage_kind"`
	// Path is the storage path as declared; Watched is the directory the
	// watcher watches for it.
	Path    string `json:"path,omitempty"`
	Watched string `json:"watched_dir,omitempty"`
	// Watching is true while the watch is in place.
	Watching bool `json:"watching"`
	Figures
	Ratio *float64 `json:"ratio"`
	// Pending counts changes waiting for a record (up to the window).
	Pending int `json:"pending"`
	// Untracked counts entries of a dir-backed surface over MaxFiles.
	Untracked int `json:"untracked,omitempty"`
	// Retire says whether the surface's file watcher can be retired
	// (verdict proven), and Why says why or why not.
	Retire bool   `json:"retire"`
	Why    string `json:"why"`
	// Disagreement is set when the registry declares the surface proven
	// and the evidence does not.
	Disagreement string `json:"disagreement,omitempty"`
}

// InotifyLimits are the kernel's inotify limits (-1: unknown, e.g. not
// Linux).
type InotifyLimits struct {
	MaxUserWatches   int64 `json:"max_user_watches"`
	MaxQueuedEvents  int64 `json:"max_queued_events"`
	MaxUserInstances int64 `json:"max_user_instances"`
}

// Report is the coverage proof as status shows it.
type Report struct {
	// Persisted says the figures are kept in StateFile; false in an audit.
	Persisted bool   `json:"persisted"`
	StateFile string `json:"state_file,omitempty"`
	// StateReset says why figures found on disk were not believed (another
	// journal's file, a bad checksum, ...) and were started afresh.
	StateReset string        `json:"state_reset,omitempty"`
	Root       string        `json:"root"`
	Started    time.Time     `json:"started"`
	Window     string        `json:"window"`
	SettleIdle string        `json:"settle_idle"`
	SettleCap  string        `json:"settle_cap"`
	MinMatched int           `json:"min_matched"`
	MinTime    string        `json:"min_observed"`
	Rescan     string        `json:"rescan"`
	Limits     InotifyLimits `json:"inotify"`
	// Watches is how many directories are watched.
	Watches    int             `json:"watches"`
	LastRescan *time.Time      `json:"last_rescan,omitempty"`
	Surfaces   []SurfaceReport `json:"surfaces"`
}

// Surface returns the report of surface id, or nil.
func (r *Report) Surface(id string) *SurfaceReport {
	for i := range r.Surfaces {
		if r.Surfaces[i].ID == id {
			return &r.Surfaces[i]
		}
	}
	return nil
}

// RetireText is the one-line answer to "can the file watcher of this
// surface be retired": "yes — why" or "no — why".
func (s *SurfaceReport) RetireText() string {
	if s.Retire {
		return "yes — " + s.Why
	}
	return "no — " + s.Why
}

// judge computes the verdict of a watched surface and its reason.
func judge(f *Figures, gap *Gap, watching bool, minMatched int, minTime time.Duration) (string, string) {
	v := verdictOf(f, gap, watching, minMatched, minTime)
	switch {
	case gap != nil:
		return v, fmt.Sprintf("coverage gap open since %s: %s", f.LastGapFrom(), gap.Reason)
	case !watching:
		return v, "not watching"
	}
	need := minTime.Seconds()
	switch {
	case v == VerdictProven:
		return v, fmt.Sprintf("%d matched changes over %s of watched time with no miss and no gap", f.Streak.Matched, human(f.Streak.ObservedSeconds))
	case f.Streak.Matched < uint64(minMatched) && f.Streak.ObservedSeconds < need:
		return v, fmt.Sprintf("%d of %d matched changes and %s of %s watched since %s", f.Streak.Matched, minMatched,
			human(f.Streak.ObservedSeconds), human(need), sinceWhat(f))
	case f.Streak.Matched < uint64(minMatched):
		return v, fmt.Sprintf("%d of %d matched changes since %s", f.Streak.Matched, minMatched, sinceWhat(f))
	}
	return v, fmt.Sprintf("%s of %s watched since %s", human(f.Streak.ObservedSeconds), human(need), sinceWhat(f))
}

// verdictOf is judge's verdict without its reason: what the matcher
// computes for every matched change (the reason is written only when a
// report or a transition needs it).
func verdictOf(f *Figures, gap *Gap, watching bool, minMatched int, minTime time.Duration) string {
	switch {
	case gap != nil || !watching:
		return VerdictGap
	case f.Streak.Matched >= uint64(minMatched) && f.Streak.ObservedSeconds >= minTime.Seconds():
		return VerdictProven
	}
	return VerdictObserving
}

// LastGapFrom says when the last gap opened.
func (f *Figures) LastGapFrom() string {
	if f.LastGap == nil {
		return "-"
	}
	return f.LastGap.From.UTC().Format(time.RFC3339)
}

func sinceWhat(f *Figures) string {
	switch {
	case len(f.Misses) > 0 && (f.LastGap == nil || f.Misses[len(f.Misses)-1].At.After(f.LastGap.From)) && f.Unjournaled > 0:
		m := f.Misses[len(f.Misses)-1]
		return fmt.Sprintf("the last unjournaled change (%s at %s)", m.Path, m.At.UTC().Format(time.RFC3339))
	case f.LastGap != nil:
		return "the last gap (" + f.LastGap.Reason + ")"
	}
	return "observation began"
}

func human(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	if d >= time.Minute {
		d = d.Round(time.Second)
	} else {
		d = d.Round(time.Millisecond)
	}
	return types.FormatDuration(d)
}

// NotObservedWhy says why the coverage watcher never watches s (its
// journal mode is disabled, or its storage is memory, a database or has no
// path), or "" when it does. A reader with no persisted figures uses it to
// tell such a surface from one that simply has no figures yet.
func NotObservedWhy(s *registry.Surface) string {
	switch {
	case s.Journal.Mode == registry.ModeDisabled:
		return "journal mode disabled: records are rejected, so there is no coverage to prove; the file watcher stays"
	case s.Storage.Kind == registry.StorageMemory:
		return "storage kind memory: nothing on disk to observe, so coverage cannot be measured"
	case s.Storage.Kind == registry.StorageDB:
		return "storage kind db: a database is not observed file by file, so coverage cannot be measured"
	case s.Storage.Resolved == "":
		return "no storage path to observe"
	}
	return ""
}
