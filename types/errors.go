package types

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors shared across the journal's layers.
var (
	// ErrInvalid marks a change that breaks the record contract
	// (runtime-state-change-v1). The error is a *FieldError.
	ErrInvalid = errors.New("invalid change")
	// ErrUnknownSurface marks a change naming a surface the registry does
	// not declare. The error is a *FieldError with a suggestion.
	ErrUnknownSurface = errors.New("unknown surface")
	// ErrPolicy marks a change the migration policy refuses (journal
	// disabled for the surface, a source that does not own an
	// authority-adjacent surface, mutates_authority_state where it is not
	// allowed). The error is a *FieldError.
	ErrPolicy = errors.New("rejected by migration policy")
	// ErrCompacted is returned for a cursor below the horizon: the records
	// after it are no longer all readable. The consumer must resync from a
	// snapshot.
	ErrCompacted = errors.New("cursor is below the compaction horizon; resync from a snapshot")
	// ErrClosed is returned by calls on a closed journal.
	ErrClosed = errors.New("journal closed")
	// ErrReadOnly is returned by writing calls on a journal opened
	// read-only.
	ErrReadOnly = errors.New("journal opened read-only")
	// ErrFailed is returned by every write after a write or fsync of the
	// hot log failed: the failure is sticky until the journal is closed and
	// reopened, because the state of the file after a failed write or
	// fsync is unknown.
	ErrFailed = errors.New("journal write path failed; reopen the journal to recover")
	// ErrQueueFull is returned by RecordAsync when its bounded queue is
	// full; the change was dropped and counted.
	ErrQueueFull = errors.New("async record queue full")
	// ErrLocked is returned when another process holds the data
	// directory's writer lock.
	ErrLocked = errors.New("data directory is locked by another writer")
	// ErrEventIDConflict marks a change whose writer-supplied event_id
	// already names a stored record with other content. An event_id names
	// one record: a retry must send the same change, a new change needs a
	// new id. The error is a *FieldError naming the stored sequence.
	ErrEventIDConflict = errors.New("event_id already names a record with other content")
	// ErrBadRegistry marks a surface registry file that does not validate.
	ErrBadRegistry = errors.New("invalid surface registry")
)

// FieldError names the field of a change (or registry entry) that is
// wrong, what is wrong with its value, and what is allowed. It matches its
// Kind sentinel with errors.Is.
type FieldError struct {
	Kind       error    // ErrInvalid, ErrUnknownSurface, ErrPolicy, ErrEventIDConflict or ErrBadRegistry
	Field      string   // JSON field name, e.g. "change_type"
	Value      string   // the offending value, already redacted where needed
	Problem    string   // what is wrong, e.g. "is not one of the allowed values"
	Allowed    []string // allowed values, when the set is small
	Suggestion string   // a "did you mean" value, when there is one
	Index      int      // position in a batch, -1 when not in a batch
}

// Error renders the error in one line: field, value, problem, allowed.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Index >= 0 && e.Kind != ErrBadRegistry {
		// Registry errors carry the surface's position in Field already.
		fmt.Fprintf(&b, "record %d: ", e.Index)
	}
	b.WriteString(e.Field)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(" ")
	b.WriteString(e.Problem)
	if e.Suggestion != "" {
		fmt.Fprintf(&b, " (did you mean %q?)", e.Suggestion)
	}
	if len(e.Allowed) > 0 {
		b.WriteString("; allowed: ")
		b.WriteString(strings.Join(e.Allowed, ", "))
	}
	return b.String()
}

// Unwrap returns the error's kind sentinel.
func (e *FieldError) Unwrap() error { return e.Kind }

// Code is the stable machine-readable code of the error's kind, used in
// HTTP error bodies and CLI --json output.
func (e *FieldError) Code() string { return Code(e) }

// Code maps an error to a stable machine-readable code.
func Code(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUnknownSurface):
		return "unknown_surface"
	case errors.Is(err, ErrPolicy):
		return "policy_violation"
	case errors.Is(err, ErrInvalid):
		return "invalid_change"
	case errors.Is(err, ErrEventIDConflict):
		return "event_id_conflict"
	case errors.Is(err, ErrCompacted):
		return "compacted"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrReadOnly):
		return "read_only"
	case errors.Is(err, ErrFailed):
		return "journal_failed"
	case errors.Is(err, ErrQueueFull):
		return "queue_full"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.Is(err, ErrBadRegistry):
		return "bad_registry"
	}
	return "internal"
}
