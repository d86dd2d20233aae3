package server

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/agentruntime/statejournal/engine"
)

// compactedEnv is a served journal whose retention moved the horizon.
func compactedEnv(t *testing.T) *env {
	t.Helper()
	e := start(t, Config{})
	record(t, e.j, 50)
	if _, err := e.j.Compact(context.Background(), engine.CompactOptions{SealActive: true, Retention: &engine.Retention{MaxRecords: 10}}); err != nil {
		t.Fatal(err)
	}
	record(t, e.j, 5) // readable records above the horizon
	if h := e.j.Status().Horizon; h <= 3 || h > e.j.Head() {
		t.Fatalf("retention left the horizon at %d; the test needs it moved", h)
	}
	return e
}

func TestStaleBelowTheHorizonAnswersResyncNotAnError(t *testing.T) {
	e := compactedEnv(t)
	st := e.j.Status()
	a := e.get("/v1/stale?since=1")
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/stale below the horizon: %d %s", a.status, a.raw)
	}
	var b StaleBody
	a.decode(t, &b)
	if !b.Resync || b.Horizon != st.Horizon || b.Head != st.LastSequence || b.ResumeAfter != st.LastSequence || len(b.Snapshots) == 0 {
		t.Fatalf("stale below the horizon: %s", a.raw)
	}
	// Above the horizon: no resync, and the same vocabulary.
	a = e.get("/v1/stale?since=" + itoa(st.LastSequence-1))
	b = StaleBody{}
	a.decode(t, &b)
	if a.status != 200 || b.Resync || b.ResumeAfter != st.LastSequence || len(b.Surfaces) != 1 {
		t.Fatalf("stale above the horizon: %d %s", a.status, a.raw)
	}
}

func TestACompactedCursorNamesAfterHorizonAndResumeAfter(t *testing.T) {
	e := compactedEnv(t)
	h := e.j.Status().Horizon
	a := e.get("/v1/changes?after=1")
	if a.status != http.StatusGone {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	ae := a.errorBody(t)
	if ae.Code != "compacted" || ae.Horizon != h || ae.After == nil || *ae.After != 1 || ae.ResumeAfter == nil || *ae.ResumeAfter != h-1 {
		t.Fatalf("compacted answer: %s", a.raw)
	}
	// resume_after reads from the horizon on.
	b := e.changes("after=" + itoa(*ae.ResumeAfter) + "&limit=1")
	if len(b.Changes) != 1 || b.Changes[0].Sequence != h {
		t.Fatalf("resuming after %d: %+v", *ae.ResumeAfter, b)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
