package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/redact"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

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

	// The contract first (record.Validate), then what the registry and
	// the migration policy decide.
	if err := record.Validate(&c, now); err != nil {
		return p, err
	}
	if c.SchemaVersion == "" {
		c.SchemaVersion = SchemaVersion
	}
	reg := j.opts.registry
	s, ok := reg.Lookup(c.Surface)
	if !ok {
		return p, unknownSurface(reg, "surface", c.Surface)
	}
	p.surface = s
	if len(c.ChangedSurfaces) == 0 {
		// A shared one-element list per surface: no allocation per record.
		c.ChangedSurfaces = j.selfLists[c.Surface]
	}
	if c.Severity == "" {
		c.Severity = record.SeverityInfo
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
	p.writerID = c.EventID != ""
	if c.EventID == "" {
		c.EventID = generatedIDPlaceholder
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
	c.OccurredAt = c.OccurredAt.UTC() // in range: record.Validate checked it
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
	p.needSync = c.Severity == record.SeverityCritical || c.MutatesAuthorityState
	p.change = c
	return p, nil
}

// checkChangedSurfaces holds every entry of changed_surfaces to the
// registry rules of surface itself (record.Validate has checked the
// list's shape): a registered id (with a did-you-mean), admitted by that
// surface's migration policy (journal mode, authority-adjacent owner
// sources and mutation path, mutates_authority_state, change types), so
// a record cannot reach a surface by listing it that it could not write
// directly.
func (j *Journal) checkChangedSurfaces(c *Change) error {
	reg := j.opts.registry
	for i, cs := range c.ChangedSurfaces {
		field := fmt.Sprintf("changed_surfaces[%d]", i)
		ls, ok := reg.Lookup(cs)
		if !ok {
			return unknownSurface(reg, field, cs)
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
	return nil
}

// unknownSurface is the error for a surface id the registry does not
// declare, with the closest id or the list of ids.
func unknownSurface(reg *registry.Registry, field, id string) error {
	fe := fieldErr(types.ErrUnknownSurface, field, clip(id), "is not a registered surface")
	fe.Suggestion = reg.Suggest(id)
	if fe.Suggestion == "" {
		fe.Allowed = reg.IDs()
	}
	return fe
}
