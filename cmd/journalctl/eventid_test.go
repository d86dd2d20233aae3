package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// --since selects by the journal's commit time: records committed two
// hours ago are outside "10m" even though their writers dated them now,
// and records committed now are inside it though dated hours ago.
func TestStateJournalSinceSelectsByCommitTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	j, err := engine.Open(dir, engine.WithClock(past))
	if err != nil {
		t.Fatal(err)
	}
	for _, agg := range []string{"ws-1", "ws-2"} {
		c := engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
			AggregateType: "work_session", AggregateID: agg, OccurredAt: time.Now()}
		if _, err := j.Record(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339Nano)
	for _, agg := range []string{"ws-3", "ws-4"} {
		mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
			"--aggregate-id", agg, "--occurred-at", old, "--json")
	}
	if got := seqsOf(t, list(t, dir, "--since", "10m").Changes); !slices.Equal(got, []uint64{4, 3}) {
		t.Fatalf("--since 10m: sequences %v, want [4 3] (committed now)", got)
	}
	if got := seqsOf(t, list(t, dir, "--since", "3h").Changes); !slices.Equal(got, []uint64{4, 3, 2, 1}) {
		t.Fatalf("--since 3h: sequences %v, want all four", got)
	}
	l := list(t, dir, "-n", "1")
	if _, ok := l.Changes[0]["committed_at"]; !ok {
		t.Fatalf("state-journal --json has no committed_at: %v", l.Changes[0])
	}
}

// An event_id reused with other content is refused with exit 1 and code
// event_id_conflict, directly and through a server; the same content is
// the first receipt with duplicate: true.
func TestRecordAReusedEventIDWithOtherContentExitsOne(t *testing.T) {
	t.Parallel()
	for _, viaServer := range []bool{false, true} {
		dir := shortDir(t)
		if viaServer {
			startServer(t, dir)
		}
		rec := func(agg string) result {
			return jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
				"--aggregate-id", agg, "--event-id", "job-7", "--json")
		}
		first := rec("ws-1")
		if first.code != 0 {
			t.Fatalf("server %v: first record: %s", viaServer, first)
		}
		again := rec("ws-1")
		if rcs := receiptLines(t, again); again.code != 0 || len(rcs) != 1 || !rcs[0].Duplicate || rcs[0].Sequence != 1 {
			t.Fatalf("server %v: retry with the same content: %s", viaServer, again)
		}
		r := rec("ws-2")
		var body struct {
			Error struct {
				Code  string `json:"code"`
				Field string `json:"field"`
			} `json:"error"`
		}
		decode(t, r, &body)
		if r.code != 1 || body.Error.Code != "event_id_conflict" || body.Error.Field != "event_id" {
			t.Fatalf("server %v: reuse with other content: want exit 1 and code event_id_conflict, got %s", viaServer, r)
		}
		if l := list(t, dir, "-n", "0"); len(l.Changes) != 1 {
			t.Fatalf("server %v: %d records, want 1", viaServer, len(l.Changes))
		}
	}
}
