package engine

import (
	"slices"

	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// Filter is a Query's record filters (surfaces, change types, minimum
// severity, aggregate, correlation id, commit-time range) applied to
// decoded records, for a reader of records that did not come from this
// journal's index: the NATS follower reads them from the stream. A record
// matches a surface it names in surface or in changed_surfaces, and a
// tombstone matches every filter, exactly as Query answers.
type Filter struct {
	q      Query
	ctypes []uint8
	minSev uint8
}

// NewFilter checks q's filters as Query does (the same errors: a
// *types.FieldError naming change_type, min_severity or aggregate) and
// returns the filter. Cursor, limit and order are not filters and are
// ignored.
func NewFilter(q Query) (*Filter, error) {
	f := &Filter{q: q}
	var err error
	f.ctypes, f.minSev, err = filterTerms(q)
	return f, err
}

// filterTerms checks and encodes the filters both Query and Filter apply
// by code: the change types, the minimum severity, and the aggregate pair
// (both fields or neither).
func filterTerms(q Query) (ctypes []uint8, minSev uint8, err error) {
	for _, t := range q.ChangeTypes {
		i, err := record.ChangeTypeOf("change_type", t)
		if err != nil {
			return nil, 0, err
		}
		ctypes = append(ctypes, i)
	}
	if q.MinSeverity != "" {
		if minSev, err = record.SeverityOf("min_severity", q.MinSeverity); err != nil {
			return nil, 0, err
		}
	}
	if (q.AggregateID == "") != (q.AggregateType == "") {
		return nil, 0, &types.FieldError{Kind: types.ErrInvalid, Field: "aggregate", Problem: "needs both aggregate_type and aggregate_id", Index: -1}
	}
	return ctypes, minSev, nil
}

// Match reports whether c passes every filter of the query.
func (f *Filter) Match(c *Change) bool {
	if c.Lost != nil {
		return true
	}
	q := &f.q
	if len(q.Surfaces) > 0 && !slices.Contains(q.Surfaces, c.Surface) && !slices.ContainsFunc(c.ChangedSurfaces, func(s string) bool { return slices.Contains(q.Surfaces, s) }) {
		return false
	}
	if len(f.ctypes) > 0 {
		code, ok := record.ChangeTypeCode(c.ChangeType)
		if !ok || !slices.Contains(f.ctypes, code) {
			return false
		}
	}
	if sev, ok := record.SeverityCode(c.Severity); !ok || sev < f.minSev {
		return false
	}
	if q.AggregateType != "" && (c.AggregateType != q.AggregateType || c.AggregateID != q.AggregateID) {
		return false
	}
	if q.CorrelationID != "" && c.CorrelationID != q.CorrelationID {
		return false
	}
	if !q.Since.IsZero() && c.CommittedAt.Before(q.Since) || !q.Until.IsZero() && !c.CommittedAt.Before(q.Until) {
		return false
	}
	return true
}
