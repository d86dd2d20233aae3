package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/redact"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// Bounds of the free-text fields of a change.
const (
	MaxSourceBytes    = 128
	MaxTypeBytes      = 128
	MaxIDBytes        = 256 // aggregate_id, event_id, correlation_id, causation_id
	MaxArtifactBytes  = 1024
	MaxChangedSurface = 64
)

// The occurred_at range: nanoseconds since 1970 fit an int64 until 2262.
var (
	minOccurredAt = time.Unix(0, 0).UTC()
	maxOccurredAt = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// MaxOccurredAtAhead bounds how far past the journal's clock a writer's
// occurred_at may lie. A writer's clock may be wrong by days, and nothing
// the journal decides depends on occurred_at, so the bound is loose; it
// refuses only values no clock error explains (a year 2100 record), which
// would otherwise sit in every time-ordered view as "newest" forever. Any
// past time from 1970 on is accepted (backfills are legitimate).
const MaxOccurredAtAhead = 30 * 24 * time.Hour

// prepared is a validated, defaulted, redacted change ready for the
// committer: its stored encoding plus what the index and receipt need.
type prepared struct {
	change     Change
	surface    *registry.Surface
	redactions int
	kinds      map[redact.Kind]int
	trimmed    bool
	needSync   bool
	// writerID is true when the writer supplied event_id as an
	// idempotency key; only those ids enter the dedupe window. Otherwise
	// the encoding holds generatedIDPlaceholder, which the committer
	// replaces with the id that names the record's sequence.
	writerID bool
	// committed is the commit time (unix nanos): the journal's clock when
	// it accepted the change.
	committed int64
	// hash and occSupplied describe a writer-id record's content for the
	// dedupe window (see identity).
	hash        uint64
	occSupplied bool
	// dup, when set, is the receipt of a stored record this change
	// repeats: nothing is written for it.
	dup *Receipt
	// entry is the record's index entry without its file position.
	entry hotEntry
	// also and alsoHints are the interned ids of the surfaces the record
	// lists in changed_surfaces besides its own, and of their snapshot
	// hints; nil for the usual record that lists only its surface.
	also, alsoHints []uint16
}

func fieldErr(kind error, field, value, problem string, allowed ...string) *types.FieldError {
	return &types.FieldError{Kind: kind, Field: field, Value: value, Problem: problem, Allowed: allowed, Index: -1}
}

// redactField applies the secret rules to one free-text field in place.
func (p *prepared) redactField(v *string) {
	if *v == "" {
		return
	}
	out, kind, ok := redact.String(*v)
	if !ok {
		return
	}
	*v = out
	p.redactions++
	if p.kinds == nil {
		p.kinds = make(map[redact.Kind]int, 1)
	}
	p.kinds[kind]++
}

// prepare validates c against the record contract, the registry and the
// migration policy, fills its defaults and redacts it. Redaction runs
// before validation so that an error message never echoes a secret. It
// returns a *types.FieldError on bad input.
func (j *Journal) prepare(c Change, now time.Time) (prepared, error) {
	p := prepared{}
	if err := c.CheckUTF8(); err != nil {
		return p, err
	}
	// Module and type names are checked by the same rules: a secret there
	// is replaced by its marker, which the identifier checks below then
	// reject, so the error names the field without echoing the secret.
	// event_id is left alone: random idempotency keys look like secrets.
	p.redactField(&c.Source)
	p.redactField(&c.AggregateType)
	p.redactField(&c.AggregateID)
	p.redactField(&c.ArtifactRef)
	p.redactField(&c.CorrelationID)
	p.redactField(&c.CausationID)

	if c.SchemaVersion == "" {
		c.SchemaVersion = SchemaVersion
	} else if c.SchemaVersion != SchemaVersion {
		return p, fieldErr(types.ErrInvalid, "schema_version", c.SchemaVersion, "is not supported", SchemaVersion)
	}
	if c.Lost != nil {
		return p, fieldErr(types.ErrInvalid, "lost", "", "is set by the journal on tombstones of lost records; a writer cannot set it")
	}
	if c.Surface == "" {
		return p, fieldErr(types.ErrInvalid, "surface", "", "is required: name a registered surface id")
	}
	reg := j.opts.registry
	s, ok := reg.Lookup(c.Surface)
	if !ok {
		fe := fieldErr(types.ErrUnknownSurface, "surface", clip(c.Surface), "is not a registered surface")
		fe.Suggestion = reg.Suggest(c.Surface)
		if fe.Suggestion == "" {
			fe.Allowed = reg.IDs()
		}
		return p, fe
	}
	p.surface = s
	if err := checkToken("source", c.Source, MaxSourceBytes, "the emitting module, e.g. runtime.work_session"); err != nil {
		return p, err
	}
	if c.ChangeType == "" {
		return p, fieldErr(types.ErrInvalid, "change_type", "", "is required", registry.ChangeTypes...)
	}
	if !slices.Contains(registry.ChangeTypes, c.ChangeType) {
		return p, fieldErr(types.ErrInvalid, "change_type", clip(c.ChangeType), "is not a change type", registry.ChangeTypes...)
	}
	if err := checkToken("aggregate_type", c.AggregateType, MaxTypeBytes, "e.g. work_session"); err != nil {
		return p, err
	}
	if err := checkText("aggregate_id", c.AggregateID, MaxIDBytes, true); err != nil {
		return p, err
	}
	if len(c.ChangedSurfaces) == 0 {
		// A shared one-element list per surface: no allocation per record.
		c.ChangedSurfaces = j.selfLists[c.Surface]
	}
	if c.Severity == "" {
		c.Severity = "info"
	} else if _, ok := registry.SeverityRank(c.Severity); !ok {
		return p, fieldErr(types.ErrInvalid, "severity", clip(c.Severity), "is not a severity", registry.Severities...)
	}
	if c.SnapshotHint == "" {
		c.SnapshotHint = s.SnapshotHint
	} else if c.SnapshotHint != registry.SnapshotNone && !slices.Contains(reg.SnapshotIDs(), c.SnapshotHint) {
		return p, fieldErr(types.ErrInvalid, "snapshot_hint", clip(c.SnapshotHint), "is not a snapshot id", append(reg.SnapshotIDs(), registry.SnapshotNone)...)
	}
	if err := s.Admit(c.Source, c.ChangeType, c.MutatesAuthorityState); err != nil {
		return p, err
	}
	if len(c.ChangedSurfaces) != 1 || c.ChangedSurfaces[0] != c.Surface {
		if err := j.checkChangedSurfaces(&c); err != nil {
			return p, err
		}
	}
	if err := checkText("artifact_ref", c.ArtifactRef, MaxArtifactBytes, false); err != nil {
		return p, err
	}
	if err := checkText("correlation_id", c.CorrelationID, MaxIDBytes, false); err != nil {
		return p, err
	}
	if err := checkText("causation_id", c.CausationID, MaxIDBytes, false); err != nil {
		return p, err
	}
	p.writerID = c.EventID != ""
	if c.EventID == "" {
		c.EventID = generatedIDPlaceholder
	} else if err := checkToken("event_id", c.EventID, MaxIDBytes, "a UUIDv7 or another idempotency key of letters, digits and . _ : -"); err != nil {
		return p, err
	}
	now = now.UTC()
	p.committed = now.UnixNano()
	c.CommittedAt = time.Time{} // the journal's, filled on the way out
	p.occSupplied = !c.OccurredAt.IsZero()
	if c.OccurredAt.IsZero() {
		// Exactly the commit time: that is how a stored record says its
		// occurred_at was stamped by the journal.
		c.OccurredAt = now
	}
	c.OccurredAt = c.OccurredAt.UTC()
	if c.OccurredAt.Before(minOccurredAt) || !c.OccurredAt.Before(maxOccurredAt) {
		return p, fieldErr(types.ErrInvalid, "occurred_at", c.OccurredAt.Format(TimeLayout),
			"is out of range: it must be from 1970-01-01T00:00:00Z up to, not including, 2262-01-01T00:00:00Z")
	}
	if ahead := c.OccurredAt.Sub(now); ahead > MaxOccurredAtAhead {
		return p, fieldErr(types.ErrInvalid, "occurred_at", c.OccurredAt.Format(TimeLayout),
			fmt.Sprintf("is %s ahead of the journal's clock (%s); at most %s ahead is accepted (a writer's clock may be off by days, not more); leave occurred_at out to use the commit time",
				ahead.Round(time.Second), now.Format(time.RFC3339), MaxOccurredAtAhead))
	}
	if p.occSupplied && c.OccurredAt.UnixNano() == p.committed {
		// A writer's claim equal to the commit time to the nanosecond
		// would read back as stamped by the journal; it is the same
		// instant either way, so it is stored as such.
		p.occSupplied = false
	}
	if len(c.Metadata) > 0 {
		m, rep := redact.Metadata(c.Metadata, j.opts.limits)
		c.Metadata = m
		p.trimmed = rep.Trimmed
		if rep.Redactions > 0 {
			p.redactions += rep.Redactions
			if p.kinds == nil {
				p.kinds = make(map[redact.Kind]int, len(rep.Kinds))
			}
			for k, n := range rep.Kinds {
				p.kinds[k] += n
			}
		}
	}
	c.Sequence = 0
	p.needSync = c.Severity == "critical" || c.MutatesAuthorityState
	p.change = c
	return p, nil
}

// checkChangedSurfaces holds every entry of changed_surfaces to the rules
// of surface itself: a registered id (with a did-you-mean), listed once,
// and admitted by that surface's migration policy (journal mode,
// authority-adjacent owner sources and mutation path,
// mutates_authority_state, change types), so a record cannot reach a
// surface by listing it that it could not write directly. The list must
// include surface, and joined by '+' it must fit an archive label (the
// archive indexes the record under each listed surface).
func (j *Journal) checkChangedSurfaces(c *Change) error {
	reg := j.opts.registry
	if len(c.ChangedSurfaces) > MaxChangedSurface {
		return fieldErr(types.ErrInvalid, "changed_surfaces", "", fmt.Sprintf("has %d entries, at most %d are allowed", len(c.ChangedSurfaces), MaxChangedSurface))
	}
	if !slices.Contains(c.ChangedSurfaces, c.Surface) {
		return fieldErr(types.ErrInvalid, "changed_surfaces", clip(fmt.Sprint(c.ChangedSurfaces)), "must include the record's surface "+c.Surface)
	}
	joined := -1
	for i, cs := range c.ChangedSurfaces {
		field := fmt.Sprintf("changed_surfaces[%d]", i)
		joined += len(cs) + 1
		ls, ok := reg.Lookup(cs)
		if !ok {
			fe := fieldErr(types.ErrUnknownSurface, field, clip(cs), "is not a registered surface")
			fe.Suggestion = reg.Suggest(cs)
			if fe.Suggestion == "" {
				fe.Allowed = reg.IDs()
			}
			return fe
		}
		if slices.Contains(c.ChangedSurfaces[:i], cs) {
			return fieldErr(types.ErrInvalid, field, cs, "repeats an earlier entry; list each surface once")
		}
		if cs == c.Surface {
			continue // surface itself is admitted with the record
		}
		if err := ls.Admit(c.Source, c.ChangeType, c.MutatesAuthorityState); err != nil {
			if fe, ok := err.(*types.FieldError); ok {
				// Name the entry; say which of the record's fields the
				// listed surface refuses.
				problem := "refuses this record: it " + fe.Problem
				if fe.Field != "surface" {
					problem = fmt.Sprintf("refuses this record: %s %q %s", fe.Field, fe.Value, fe.Problem)
				}
				fe.Problem = problem
				fe.Field, fe.Value = field, cs
				return fe
			}
			return err
		}
	}
	if joined > archive.MaxLabelSize {
		return fieldErr(types.ErrInvalid, "changed_surfaces", "", fmt.Sprintf("is %d bytes joined by '+', at most %d are allowed", joined, archive.MaxLabelSize))
	}
	return nil
}

// checkToken requires a non-empty identifier-like value: letters, digits
// and . _ : - / only, at most max bytes.
func checkToken(field, v string, max int, hint string) error {
	if v == "" {
		return fieldErr(types.ErrInvalid, field, "", "is required: "+hint)
	}
	if len(v) > max {
		return fieldErr(types.ErrInvalid, field, clip(v), fmt.Sprintf("is %d bytes, at most %d are allowed", len(v), max))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' {
			continue
		}
		return fieldErr(types.ErrInvalid, field, clip(v), fmt.Sprintf("has the character %q at byte %d; allowed are letters, digits and . _ : - /", c, i))
	}
	return nil
}

// checkText bounds a free-text value and forbids control characters.
func checkText(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return fieldErr(types.ErrInvalid, field, "", "is required")
		}
		return nil
	}
	if len(v) > max {
		return fieldErr(types.ErrInvalid, field, clip(v), fmt.Sprintf("is %d bytes, at most %d are allowed", len(v), max))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return fieldErr(types.ErrInvalid, field, clip(v), fmt.Sprintf("has a control character at byte %d", i))
		}
	}
	return nil
}

// clip shortens a value echoed in an error message, on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return clipUTF8(s, 77) + "..."
}
