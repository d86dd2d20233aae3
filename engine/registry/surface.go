package registry

import (
	"fmt"
	"slices"

	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// Journal modes: how far a surface's changes are covered by the journal.
const (
	// ModeDisabled: the surface is not migrated; records aimed at it are
	// rejected.
	ModeDisabled = "disabled"
	// ModeFallback: records are accepted, and file watchers remain the
	// primary change signal.
	ModeFallback = "fallback"
	// ModeDual: records are accepted and compared against file-watcher
	// observations to build the coverage proof.
	ModeDual = "dual"
	// ModeProven: coverage is proven; the surface's file watcher can be
	// retired.
	ModeProven = "proven"
)

// Truth and authority values.
const (
	// TruthCanonical marks a surface that is the source of truth for its state.
	TruthCanonical = "canonical"
	// TruthDerived marks a projection computed from the surfaces in derived_from.
	TruthDerived = "derived"
	// AuthorityNone marks a surface whose changes do not touch authority state.
	AuthorityNone = "none"
	// AuthorityAdjacent marks a surface next to authority (approvals, leases,
	// dispatcher results, lifecycle transitions): only its owner sources may
	// write it, and only when a mutation path is declared.
	AuthorityAdjacent = "adjacent"
)

// Snapshot ids every registry knows, and the hint meaning "no snapshot".
const (
	// SnapshotHealth is the Runtime Health snapshot.
	SnapshotHealth = "runtime_health"
	// SnapshotActionPanel is the Runtime Action Panel snapshot.
	SnapshotActionPanel = "runtime_action_panel"
	// SnapshotNone is the hint for a change that invalidates no snapshot. It
	// is always allowed as a hint but is not a snapshot id.
	SnapshotNone = "none"
)

// Storage kinds.
const (
	// StorageFile is a single file, e.g. .tmp/runtime/work-sessions.json.
	StorageFile = "file"
	// StorageDir is a directory of files, e.g. one file per approval.
	StorageDir = "dir"
	// StorageMemory is process memory; nothing on disk to watch.
	StorageMemory = "memory"
	// StorageDB is a database; path names an embedded database file or, when
	// it contains "://", a connection URL.
	StorageDB = "db"
)

var (
	modes          = []string{ModeDisabled, ModeFallback, ModeDual, ModeProven}
	truths         = []string{TruthCanonical, TruthDerived}
	authorities    = []string{AuthorityNone, AuthorityAdjacent}
	storageKinds   = []string{StorageFile, StorageDir, StorageMemory, StorageDB}
	builtinSnaps   = []string{SnapshotHealth, SnapshotActionPanel}
	changeTypeList = record.ChangeTypes() // the contract's, in its order
)

// Modes lists the journal modes in order of increasing coverage. Callers
// must not modify it.
var Modes = slices.Clone(modes)

// StorageKinds lists the storage kinds. Callers must not modify it.
var StorageKinds = slices.Clone(storageKinds)

// Storage says where a surface is physically kept. The path is an
// attribute for operators and for the coverage watcher, never the API.
type Storage struct {
	// Kind is file, dir, memory or db.
	Kind string `yaml:"kind" json:"kind"`
	// Path is the storage path as declared; relative paths are relative to
	// the runtime's root directory. Required for file and dir.
	Path string `yaml:"path" json:"path"`
	// Resolved is Path made absolute against the root given to
	// Registry.WithRoot; empty for memory storage, for a db URL and before
	// WithRoot is called. It is never read from a registry file.
	Resolved string `yaml:"-" json:"resolved_path,omitempty"`
}

// JournalPolicy is a surface's migration state and write policy.
type JournalPolicy struct {
	// Mode is disabled, fallback, dual or proven.
	Mode string `yaml:"mode" json:"mode"`
	// OwnerSources lists the record sources allowed to write an
	// authority-adjacent surface. Only authority-adjacent surfaces declare it.
	OwnerSources []string `yaml:"owner_sources" json:"owner_sources"`
	// MutationPath names the code path that mutates the authority state
	// behind an authority-adjacent surface (e.g.
	// "runtime/approvals.Store.Apply"). Without it the surface admits no
	// records.
	MutationPath string `yaml:"mutation_path" json:"mutation_path,omitempty"`
}

// Surface is one registry entry. After Load or Parse its SnapshotHint,
// Authority and ChangeTypes hold effective values (see the package doc);
// slices are never nil. A Surface obtained from a Registry is shared and
// must not be modified.
type Surface struct {
	// ID is the surface id, e.g. runtime_work_session.
	ID string `yaml:"id" json:"id"`
	// Description says what the surface holds, for operators.
	Description string `yaml:"description" json:"description"`
	// Owner is the module that owns the surface, e.g. runtime.work_session.
	Owner string `yaml:"owner" json:"owner"`
	// Storage is where the surface is physically kept.
	Storage Storage `yaml:"storage" json:"storage"`
	// Truth is canonical or derived.
	Truth string `yaml:"truth" json:"truth"`
	// DerivedFrom lists the surfaces a derived surface projects.
	DerivedFrom []string `yaml:"derived_from" json:"derived_from"`
	// AffectsHealth says whether changes feed the Runtime Health snapshot.
	AffectsHealth bool `yaml:"affects_health" json:"affects_health"`
	// AffectsActionPanel says whether changes feed the Runtime Action Panel.
	AffectsActionPanel bool `yaml:"affects_action_panel" json:"affects_action_panel"`
	// Authority is none or adjacent.
	Authority string `yaml:"authority" json:"authority"`
	// SnapshotHint is the snapshot a change to this surface invalidates by
	// default (a snapshot id or none).
	SnapshotHint string `yaml:"snapshot_hint" json:"snapshot_hint"`
	// ChangeTypes lists the change types the surface accepts.
	ChangeTypes []string `yaml:"change_types" json:"change_types"`
	// Journal is the surface's journal policy.
	Journal JournalPolicy `yaml:"journal" json:"journal"`
}

// DefaultSnapshotHint returns the hint a record on s gets when it names
// none: s.SnapshotHint if set, else runtime_health if the surface affects
// health, else runtime_action_panel if it affects the action panel, else
// none.
func (s *Surface) DefaultSnapshotHint() string {
	switch {
	case s.SnapshotHint != "":
		return s.SnapshotHint
	case s.AffectsHealth:
		return SnapshotHealth
	case s.AffectsActionPanel:
		return SnapshotActionPanel
	}
	return SnapshotNone
}

// AllowedChangeTypes returns the change types s accepts: its ChangeTypes,
// or every change type when the list is empty. The result is shared; do not
// modify it.
func (s *Surface) AllowedChangeTypes() []string {
	if len(s.ChangeTypes) == 0 {
		return changeTypeList
	}
	return s.ChangeTypes
}

// IsAuthorityAdjacent reports whether s is authority-adjacent.
func (s *Surface) IsAuthorityAdjacent() bool { return s.Authority == AuthorityAdjacent }

// Admit applies the migration policy (SPEC section 4) to one change aimed
// at s, written by source with the given change type. It returns nil when
// the change is admitted, else a *types.FieldError with Index -1:
//
//   - journal mode disabled: Kind types.ErrPolicy, field "surface";
//   - authority-adjacent without a mutation_path: types.ErrPolicy, field
//     "surface";
//   - authority-adjacent and source not an owner source: types.ErrPolicy,
//     field "source", Allowed the owner sources;
//   - mutatesAuthority on a surface that is not authority-adjacent:
//     types.ErrPolicy, field "mutates_authority_state";
//   - a change type the surface does not accept: types.ErrInvalid, field
//     "change_type", Allowed the surface's change types.
//
// The checks run in that order and the first failing one is returned.
// Admit does not allocate when the change is admitted.
func (s *Surface) Admit(source, changeType string, mutatesAuthority bool) error {
	if s.Journal.Mode == ModeDisabled {
		return &types.FieldError{
			Kind:    types.ErrPolicy,
			Field:   "surface",
			Value:   s.ID,
			Problem: "has journal mode disabled (not migrated to the journal yet); records are rejected",
			Index:   -1,
		}
	}
	if s.Authority == AuthorityAdjacent {
		if s.Journal.MutationPath == "" {
			return &types.FieldError{
				Kind:    types.ErrPolicy,
				Field:   "surface",
				Value:   s.ID,
				Problem: "is authority-adjacent and its registry entry declares no journal.mutation_path; records are rejected until one is declared",
				Index:   -1,
			}
		}
		if !slices.Contains(s.Journal.OwnerSources, source) {
			problem := fmt.Sprintf("is not an owner source of authority-adjacent surface %q; only its owner sources may write it", s.ID)
			if source == "" {
				problem = fmt.Sprintf("is required on authority-adjacent surface %q; only its owner sources may write it", s.ID)
			}
			return &types.FieldError{
				Kind:       types.ErrPolicy,
				Field:      "source",
				Value:      source,
				Problem:    problem,
				Allowed:    slices.Clone(s.Journal.OwnerSources),
				Suggestion: closest(source, s.Journal.OwnerSources),
				Index:      -1,
			}
		}
	}
	if mutatesAuthority && s.Authority != AuthorityAdjacent {
		return &types.FieldError{
			Kind:    types.ErrPolicy,
			Field:   "mutates_authority_state",
			Value:   "true",
			Problem: fmt.Sprintf("is set on surface %q, which is not authority-adjacent; only authority-adjacent surfaces written by their owner sources may set it", s.ID),
			Index:   -1,
		}
	}
	allowed := s.AllowedChangeTypes()
	if !slices.Contains(allowed, changeType) {
		problem := fmt.Sprintf("is not allowed on surface %q", s.ID)
		if changeType == "" {
			problem = "is required"
		}
		return &types.FieldError{
			Kind:       types.ErrInvalid,
			Field:      "change_type",
			Value:      changeType,
			Problem:    problem,
			Allowed:    slices.Clone(allowed),
			Suggestion: closest(changeType, allowed),
			Index:      -1,
		}
	}
	return nil
}
