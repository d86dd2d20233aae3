package server

import (
	"errors"
	"fmt"
	"slices"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// The cursor vocabulary, the same in every answer of the HTTP API and in
// the CLI's JSON:
//
//	after         the cursor a request gave: only records with a greater sequence
//	head          the newest committed sequence when the answer was made
//	horizon       the oldest readable sequence; older ones were compacted away
//	resume_after  the cursor to send as `after` next: every record up to it
//	              was considered (or, below the horizon, what to resume from
//	              once the snapshots are refetched)

// CompactedError is a cursor below the horizon: the records after it were
// compacted away. The consumer refetches its snapshots and resumes with
// after=ResumeAfter(). It matches types.ErrCompacted.
type CompactedError struct {
	After   uint64 // the cursor asked for
	Horizon uint64 // the oldest readable sequence
}

// ResumeAfter is the cursor that reads from the horizon on.
func (e *CompactedError) ResumeAfter() uint64 {
	if e.Horizon == 0 {
		return 0
	}
	return e.Horizon - 1
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("cursor %d is below the horizon %d: the records after it were compacted away; resync: refetch your snapshots, then resume with after=%d",
		e.After, e.Horizon, e.ResumeAfter())
}

// Unwrap returns types.ErrCompacted.
func (e *CompactedError) Unwrap() error { return types.ErrCompacted }

// APIError returns the error as the body of a 410 answer.
func (e *CompactedError) APIError() APIError {
	r := e.ResumeAfter()
	return APIError{Code: "compacted", Message: e.Error(), Horizon: e.Horizon, After: &e.After, ResumeAfter: &r}
}

// AsCompacted returns err as a *CompactedError when it reports a cursor
// below the horizon: an engine error (with the horizon of the result or
// status the caller passes) or a client's rebuilt 410 answer.
func AsCompacted(err error, after, horizon uint64) (*CompactedError, bool) {
	var ce *CompactedError
	if errors.As(err, &ce) {
		return ce, true
	}
	var se *Error
	if errors.As(err, &se) && se.Code == "compacted" {
		ce := &CompactedError{After: after, Horizon: se.Horizon}
		if se.After != nil {
			ce.After = *se.After
		}
		return ce, true
	}
	if errors.Is(err, types.ErrCompacted) {
		return &CompactedError{After: after, Horizon: horizon}, true
	}
	return nil, false
}

// Orders of a list answer.
const (
	OrderNewest = "newest"
	OrderOldest = "oldest"
)

// List is the answer to a list query — GET /v1/changes and the CLI's
// state-journal --json alike: the records, the cursor vocabulary and the
// order they are printed in.
type List struct {
	Changes     []engine.Change `json:"changes"`
	Order       string          `json:"order"`
	After       *uint64         `json:"after,omitempty"`
	Head        uint64          `json:"head"`
	Horizon     uint64          `json:"horizon"`
	More        bool            `json:"more"`
	ResumeAfter uint64          `json:"resume_after"`
}

// ListQuery is how a list query selects and prints records. Without a
// cursor the limit keeps the newest records, as journalctl -n does,
// whatever the printing order; with one it pages forward from the
// cursor (or, newest first, keeps the newest after it).
type ListQuery struct {
	engine.Query
	// Cursor is true when the caller gave a cursor (Query.After, which
	// may be 0).
	Cursor bool
	// OldestFirst prints oldest first.
	OldestFirst bool
}

// Engine returns the engine query that selects the records.
func (lq ListQuery) Engine() engine.Query {
	q := lq.Query
	q.NewestFirst = !lq.Cursor || !lq.OldestFirst
	q.HasAfter = q.HasAfter || lq.Cursor // a cursor of 0 is a cursor: ErrCompacted below the horizon
	return q
}

// NewList builds the answer from the engine's result for lq.
func NewList(lq ListQuery, res engine.Result) List {
	l := List{Changes: res.Changes, Head: res.Head, Horizon: res.Horizon, More: res.More, Order: OrderNewest}
	if l.Changes == nil {
		l.Changes = []engine.Change{}
	}
	if lq.Cursor {
		a := lq.After
		l.After = &a
	}
	selectedNewest := lq.Engine().NewestFirst
	if lq.OldestFirst {
		l.Order = OrderOldest
		if selectedNewest {
			slices.Reverse(l.Changes)
		}
	}
	// Paging forward from a cursor, a cut answer resumes after its last
	// record; otherwise every record up to the head was considered.
	l.ResumeAfter = max(lq.After, res.Head)
	if lq.Cursor && !selectedNewest && res.More && len(l.Changes) > 0 {
		l.ResumeAfter = l.Changes[len(l.Changes)-1].Sequence
	}
	return l
}

// StaleBody is the answer to GET /v1/stale: the engine's StaleSet and
// the cursor to resume from once the listed snapshots are refetched.
type StaleBody struct {
	engine.StaleSet
	ResumeAfter uint64 `json:"resume_after"`
}
