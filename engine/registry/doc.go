// Package registry is the surface registry: the catalog of the runtime's
// state surfaces (work sessions, leases, approvals, the health snapshot, ...)
// that every journal record names, and the migration policy that decides
// which records a surface admits.
//
// # What a surface declares
//
// Each surface has an id (the only name the API and CLI speak in), the module
// that owns it, where it is physically stored (storage.kind file, dir, memory
// or db, and a path such as .tmp/runtime/work-sessions.json; the path is an
// attribute, never the API), whether it is canonical truth or a projection
// derived from other surfaces, whether it feeds Runtime Health or the Runtime
// Action Panel, whether it is authority-adjacent, its default snapshot hint,
// the change types it may carry and its journal policy (mode disabled,
// fallback, dual or proven; owner sources; mutation path).
//
// # File format
//
// A registry file is YAML (or JSON, which is read with encoding/json when the
// file name ends in .json):
//
//	version: 1                  # required; any other version is refused
//	snapshots: [runtime_budget] # optional snapshot ids beyond runtime_health
//	                            # and runtime_action_panel
//	surfaces:
//	  - id: runtime_work_session
//	    owner: runtime.work_session
//	    storage: {kind: file, path: .tmp/runtime/work-sessions.json}
//	    truth: canonical
//	    affects_health: true
//	    change_types: [created, updated, heartbeat, transitioned, expired, deleted]
//	    journal: {mode: dual}
//
// The embedded default catalog (surfaces.yaml, see Default) is the reference
// example.
//
// # Validation
//
// Load and Parse validate the whole file and report every problem at once,
// as a *LoadError whose problems are *types.FieldError values (Kind
// types.ErrBadRegistry) naming the field path ("surfaces[3].journal.mode"),
// the offending value, what is wrong, what is allowed and, where one is
// close, a did-you-mean suggestion; each problem carries its line in the
// file. Unknown keys and keys set twice are errors, in YAML and JSON alike
// (JSON keys are matched exactly, not case-insensitively as encoding/json's
// struct decoding would). A file of an unknown version is refused without
// judging the rest. The decoder walks the parsed document against the schema
// itself rather than relying on yaml.v3's KnownFields or encoding/json's
// DisallowUnknownFields, because those stop at the first problem and cannot
// say which surface or line it is in; tests check that a file this package
// accepts decodes to the same surfaces through those strict decoders.
//
// Decisions the SPEC leaves open:
//
//   - authority defaults to none; truth, owner, storage.kind and journal.mode
//     are required, because they are the decisions a registry exists to record.
//   - An authority-adjacent surface whose journal mode is not disabled must
//     list owner_sources (otherwise no one could ever write it). A missing
//     mutation_path loads, because it is the documented state of a surface
//     registered before its mutation path is wired: Surface.Admit rejects its
//     records with an error that says so.
//   - owner_sources and mutation_path are only meaningful on authority-adjacent
//     surfaces and are refused elsewhere, so nobody believes they are enforced
//     where they are not.
//   - After loading, every surface's SnapshotHint, Authority and ChangeTypes
//     hold effective values: the hint defaults as DefaultSnapshotHint says,
//     authority to none, and an empty change_types list becomes every change
//     type.
//
// # Concurrency
//
// A *Registry is immutable after it is built; all its methods are safe for
// concurrent use. The *Surface values it hands out are shared and must be
// treated as read-only.
package registry
