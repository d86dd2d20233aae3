package server

import (
	"errors"
	"net/http"
	"testing"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// An event_id reused with other content is 409 event_id_conflict naming
// the field (and, in a batch, the change); nothing of the batch is
// written; the same content is the first receipt with duplicate: true.
func TestAReusedEventIDWithOtherContentIs409(t *testing.T) {
	e := start(t, Config{})
	first := e.post("/v1/changes", "application/json", mustJSON(t, with(heartbeat("ws-1"), "event_id", "job-1")))
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.raw)
	}
	var rb ReceiptsBody
	first.decode(t, &rb)
	if rb.Receipts[0].CommittedAt.IsZero() {
		t.Fatalf("receipt without committed_at: %s", first.raw)
	}
	again := e.post("/v1/changes", "application/json", mustJSON(t, with(heartbeat("ws-1"), "event_id", "job-1")))
	var rb2 ReceiptsBody
	again.decode(t, &rb2)
	if again.status != http.StatusCreated || !rb2.Receipts[0].Duplicate || rb2.Receipts[0].Sequence != rb.Receipts[0].Sequence {
		t.Fatalf("same content: %d %s", again.status, again.raw)
	}
	a := e.post("/v1/changes", "application/json", mustJSON(t, with(heartbeat("ws-2"), "event_id", "job-1")))
	ae := a.errorBody(t)
	if a.status != http.StatusConflict || ae.Code != "event_id_conflict" || ae.Field != "event_id" || ae.Value != "job-1" {
		t.Fatalf("other content: %d %s", a.status, a.raw)
	}
	batch := []any{with(heartbeat("ws-3"), "event_id", "job-2"), with(heartbeat("ws-9"), "event_id", "job-1")}
	a = e.post("/v1/changes", "application/json", mustJSON(t, batch))
	ae = a.errorBody(t)
	if a.status != http.StatusConflict || ae.Code != "event_id_conflict" || ae.Index == nil || *ae.Index != 1 {
		t.Fatalf("batch: %d %s", a.status, a.raw)
	}
	if n := e.lastSequence(); n != 1 {
		t.Fatalf("last sequence %d, want 1: a refused batch wrote something", n)
	}
	// The client turns the answer back into the engine's error.
	err := decodeError(a.status, a.raw)
	var fe *types.FieldError
	if !errors.Is(err, engine.ErrEventIDConflict) || !errors.As(err, &fe) || fe.Index != 1 {
		t.Fatalf("client error %#v", err)
	}
}

// since= selects by commit time: a record its writer dated a year ago,
// committed now, is inside since=10m.
func TestSinceSelectsByCommitTime(t *testing.T) {
	e := start(t, Config{})
	a := e.post("/v1/changes", "application/json", mustJSON(t, with(heartbeat("ws-1"), "occurred_at", "2025-01-01T00:00:00Z")))
	if a.status != http.StatusCreated {
		t.Fatalf("record: %d %s", a.status, a.raw)
	}
	if got := e.changes("since=10m"); len(got.Changes) != 1 || got.Changes[0].CommittedAt.IsZero() {
		t.Fatalf("since=10m: %+v", got.Changes)
	}
	if got := e.changes("until=10m"); len(got.Changes) != 0 {
		t.Fatalf("until=10m (committed before ten minutes ago): %+v", got.Changes)
	}
}
