package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// TestInvalidUTF8IsRefusedOverHTTPNamingTheField posts changes with an
// invalid byte in a field, a changed_surfaces entry and a metadata key:
// 400 invalid_change naming it, nothing written. The client refuses such
// a change before encoding it (encoding/json would rewrite the byte).
func TestInvalidUTF8IsRefusedOverHTTPNamingTheField(t *testing.T) {
	e := start(t, Config{})
	before := e.lastSequence()
	base := `{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session",` +
		`"aggregate_id":"ws-1","changed_surfaces":["runtime_work_session"],"metadata":{"k":"v"}}`
	for _, tc := range []struct{ from, to, field string }{
		{`"ws-1"`, "\"ws-\xff\"", "aggregate_id"},
		{`["runtime_work_session"]`, "[\"runtime_work_session\",\"rt\xc3\"]", "changed_surfaces[1]"},
		{`{"k":"v"}`, "{\"k\xff\":\"v\"}", "metadata"},
		{`"ws-1"`, `"ws-\udc01"`, "aggregate_id"},
	} {
		body := strings.Replace(base, tc.from, tc.to, 1)
		for _, b := range []string{body, "[" + body + "]", body + "\n" + body + "\n"} {
			a := e.post("/v1/changes", "application/json", []byte(b))
			if a.status != http.StatusBadRequest {
				t.Fatalf("%s: status %d %s", tc.field, a.status, a.raw)
			}
			if eb := a.errorBody(t); eb.Code != "invalid_change" || eb.Field != tc.field || !strings.Contains(eb.Problem, "UTF-8") {
				t.Fatalf("%s: error %+v", tc.field, eb)
			}
		}
	}
	if got := e.lastSequence(); got != before {
		t.Fatalf("last sequence %d, want %d", got, before)
	}
	c := Dial(e.srv.SocketPath(), "", "")
	defer c.Close()
	_, err := c.Record(context.Background(), []engine.Change{{Source: "runtime.work_session", Surface: "runtime_work_session",
		ChangeType: "heartbeat", AggregateType: "work_session", AggregateID: "ws-\xff"}})
	var fe *types.FieldError
	if !errors.As(err, &fe) || fe.Field != "aggregate_id" {
		t.Fatalf("client: %v", err)
	}
}

// TestAfterZeroIsACursorOverHTTP: after=0 lists the backlog oldest first,
// and once retention removed records it is 410 compacted, never a silent
// start at the horizon.
func TestAfterZeroIsACursorOverHTTP(t *testing.T) {
	e := start(t, Config{})
	for _, id := range []string{"ws-1", "ws-2", "ws-3"} {
		if a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat(id))); a.status != http.StatusCreated {
			t.Fatalf("seed: %d %s", a.status, a.raw)
		}
	}
	b := e.changes("after=0")
	if len(b.Changes) != 3 || b.Changes[0].Sequence != 1 || b.Order != "oldest" {
		t.Fatalf("after=0: %+v", b)
	}
	if _, err := e.j.Compact(context.Background(), engine.CompactOptions{SealActive: true, Retention: &engine.Retention{MaxRecords: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Record(context.Background(), engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session",
		ChangeType: "heartbeat", AggregateType: "work_session", AggregateID: "ws-4"}); err != nil {
		t.Fatal(err)
	}
	if h := e.j.Status().Horizon; h <= 1 {
		t.Fatalf("retention removed nothing: horizon %d", h)
	}
	a := e.get("/v1/changes?after=0")
	if a.status != http.StatusGone || a.errorBody(t).Code != "compacted" {
		t.Fatalf("after=0 below the horizon: %d %s", a.status, a.raw)
	}
}
