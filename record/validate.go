package record

import (
	"fmt"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/types"
)

// Bounds of the contract's fields.
const (
	MaxSourceBytes   = 128  // source
	MaxTypeBytes     = 128  // aggregate_type
	MaxIDBytes       = 256  // aggregate_id, event_id, correlation_id, causation_id
	MaxArtifactBytes = 1024 // artifact_ref
	// MaxChangedSurfaces bounds the entries of changed_surfaces.
	MaxChangedSurfaces = 64
	// MaxChangedSurfacesBytes bounds changed_surfaces joined by '+': an
	// archive indexes the record under that label (it equals
	// segment.MaxArchiveLabelSize, which a test holds it to).
	MaxChangedSurfacesBytes = 1024
)

// MaxOccurredAtAhead bounds how far past the journal's clock a writer's
// occurred_at may lie. A writer's clock may be wrong by days, and nothing
// the journal decides depends on occurred_at, so the bound is loose; it
// refuses only values no clock error explains (a year 2100 record), which
// would otherwise sit in every time-ordered view as "newest" forever. Any
// past time from 1970 on is accepted (backfills are legitimate).
const MaxOccurredAtAhead = 30 * 24 * time.Hour

// The occurred_at range: nanoseconds since 1970 fit an int64 until 2262.
var (
	minOccurredAt = time.Unix(0, 0).UTC()
	maxOccurredAt = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate holds c, as a writer gave it, to the contract: schema_version,
// the required fields, the identifier and text rules and bounds of each
// field, the change type and severity enums, the shape of
// changed_surfaces (at most MaxChangedSurfaces distinct entries including
// surface, MaxChangedSurfacesBytes joined) and the occurred_at range
// (from 1970, before 2262, and when now is not zero at most
// MaxOccurredAtAhead past now). Fields the journal fills (schema_version,
// event_id, occurred_at, changed_surfaces, severity, snapshot_hint) may
// be empty; the journal assigns sequence, committed_at and lost, and a
// writer may not set lost.
//
// What a registry decides (a surface is declared, a snapshot id exists,
// the migration policy admits the record) is not the contract: the
// journal checks it after Validate (engine/registry's Admit). UTF-8 is
// checked by CheckUTF8, which the journal runs before redaction, ahead of
// Validate. The error is a *types.FieldError (types.ErrInvalid) naming
// the field, the value's problem and what is allowed.
func Validate(c *Change, now time.Time) error {
	if c.SchemaVersion != "" && c.SchemaVersion != SchemaVersion {
		return fieldErr("schema_version", c.SchemaVersion, "is not supported", SchemaVersion)
	}
	if c.Lost != nil {
		return fieldErr("lost", "", "is set by the journal on tombstones of lost records; a writer cannot set it")
	}
	if c.Surface == "" {
		return fieldErr("surface", "", "is required: name a registered surface id")
	}
	if err := checkToken("source", c.Source, MaxSourceBytes, "the emitting module, e.g. runtime.work_session"); err != nil {
		return err
	}
	if c.ChangeType == "" {
		return fieldErr("change_type", "", "is required", ChangeTypes()...)
	}
	if _, err := ChangeTypeOf("change_type", c.ChangeType); err != nil {
		return err
	}
	if err := checkToken("aggregate_type", c.AggregateType, MaxTypeBytes, "e.g. work_session"); err != nil {
		return err
	}
	if err := checkText("aggregate_id", c.AggregateID, MaxIDBytes, true); err != nil {
		return err
	}
	if c.Severity != "" {
		if _, err := SeverityOf("severity", c.Severity); err != nil {
			return err
		}
	}
	if len(c.ChangedSurfaces) != 1 || c.ChangedSurfaces[0] != c.Surface {
		if err := checkChangedSurfaces(c); err != nil {
			return err
		}
	}
	if err := checkText("artifact_ref", c.ArtifactRef, MaxArtifactBytes, false); err != nil {
		return err
	}
	if err := checkText("correlation_id", c.CorrelationID, MaxIDBytes, false); err != nil {
		return err
	}
	if err := checkText("causation_id", c.CausationID, MaxIDBytes, false); err != nil {
		return err
	}
	if c.EventID != "" {
		if err := checkToken("event_id", c.EventID, MaxIDBytes, "a UUIDv7 or another idempotency key of letters, digits and . _ : -"); err != nil {
			return err
		}
	}
	if !c.OccurredAt.IsZero() {
		return checkOccurredAt(c.OccurredAt.UTC(), now)
	}
	return nil
}

// ValidateStored holds a stored record to the contract: Validate, and
// every field the journal fills must be there.
func ValidateStored(c *Change) error {
	for _, f := range [...]struct{ name, v string }{
		{"schema_version", c.SchemaVersion}, {"event_id", c.EventID}, {"severity", c.Severity}, {"snapshot_hint", c.SnapshotHint},
	} {
		if f.v == "" {
			return fieldErr(f.name, "", "is missing; the journal fills it on every record it stores")
		}
	}
	if c.OccurredAt.IsZero() {
		return fieldErr("occurred_at", "", "is missing; the journal fills it on every record it stores")
	}
	if len(c.ChangedSurfaces) == 0 {
		return fieldErr("changed_surfaces", "", "is missing; the journal fills it on every record it stores")
	}
	return Validate(c, time.Time{})
}

// checkOccurredAt bounds occurred_at (UTC): from 1970, before 2262, and
// when now is not zero at most MaxOccurredAtAhead past now.
func checkOccurredAt(t, now time.Time) error {
	if t.Before(minOccurredAt) || !t.Before(maxOccurredAt) {
		return fieldErr("occurred_at", t.Format(TimeLayout),
			"is out of range: it must be from 1970-01-01T00:00:00Z up to, not including, 2262-01-01T00:00:00Z")
	}
	if now.IsZero() {
		return nil
	}
	if ahead := t.Sub(now); ahead > MaxOccurredAtAhead {
		return fieldErr("occurred_at", t.Format(TimeLayout),
			fmt.Sprintf("is %s ahead of the journal's clock (%s); at most %s ahead is accepted (a writer's clock may be off by days, not more); leave occurred_at out to use the commit time",
				ahead.Round(time.Second), now.UTC().Format(time.RFC3339), MaxOccurredAtAhead))
	}
	return nil
}

// checkChangedSurfaces holds the shape of a changed_surfaces other than
// the usual [surface]: at most MaxChangedSurfaces entries, including
// surface, each listed once, at most MaxChangedSurfacesBytes joined by
// '+'. Whether each entry is a registered surface that admits the record
// is the registry's to say.
func checkChangedSurfaces(c *Change) error {
	if len(c.ChangedSurfaces) == 0 {
		return nil // the journal fills [surface]
	}
	if len(c.ChangedSurfaces) > MaxChangedSurfaces {
		return fieldErr("changed_surfaces", "", fmt.Sprintf("has %d entries, at most %d are allowed", len(c.ChangedSurfaces), MaxChangedSurfaces))
	}
	if !slices.Contains(c.ChangedSurfaces, c.Surface) {
		return fieldErr("changed_surfaces", Clip(fmt.Sprint(c.ChangedSurfaces)), "must include the record's surface "+c.Surface)
	}
	joined := -1
	for i, cs := range c.ChangedSurfaces {
		joined += len(cs) + 1
		if slices.Contains(c.ChangedSurfaces[:i], cs) {
			return fieldErr(fmt.Sprintf("changed_surfaces[%d]", i), cs, "repeats an earlier entry; list each surface once")
		}
	}
	if joined > MaxChangedSurfacesBytes {
		return fieldErr("changed_surfaces", "", fmt.Sprintf("is %d bytes joined by '+', at most %d are allowed", joined, MaxChangedSurfacesBytes))
	}
	return nil
}

// checkToken requires a non-empty identifier-like value: letters, digits
// and . _ : - / only, at most max bytes.
func checkToken(field, v string, max int, hint string) error {
	if v == "" {
		return fieldErr(field, "", "is required: "+hint)
	}
	if len(v) > max {
		return fieldErr(field, Clip(v), fmt.Sprintf("is %d bytes, at most %d are allowed", len(v), max))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' {
			continue
		}
		return fieldErr(field, Clip(v), fmt.Sprintf("has the character %q at byte %d; allowed are letters, digits and . _ : - /", c, i))
	}
	return nil
}

// checkText bounds a free-text value and forbids control characters.
func checkText(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return fieldErr(field, "", "is required")
		}
		return nil
	}
	if len(v) > max {
		return fieldErr(field, Clip(v), fmt.Sprintf("is %d bytes, at most %d are allowed", len(v), max))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return fieldErr(field, Clip(v), fmt.Sprintf("has a control character at byte %d", i))
		}
	}
	return nil
}

// Clip shortens a value echoed in an error message to at most 80 bytes,
// cut on a UTF-8 boundary and marked with "…" (types.Clip).
func Clip(s string) string { return types.Clip(s, 80) }
