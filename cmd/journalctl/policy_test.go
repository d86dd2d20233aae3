package main

import (
	"strings"
	"testing"
)

// TestAfterZeroListsTheWholeBacklogOldestFirst: a consumer that starts at
// cursor 0 gets every record, oldest first (before, --after 0 was read as
// no cursor and listed the newest first).
func TestAfterZeroListsTheWholeBacklogOldestFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 5)
	l := list(t, dir, "--after", "0")
	if got := seqsOf(t, l.Changes); len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("--after 0 listed %v, want 1..5 oldest first", got)
	}
	l = list(t, dir, "--after", "0", "-n", "2")
	if got := seqsOf(t, l.Changes); len(got) != 2 || got[0] != 1 || got[1] != 2 || !l.More {
		t.Fatalf("--after 0 -n 2 listed %v (more %t), want [1 2] and more", got, l.More)
	}
	if got := seqsOf(t, list(t, dir, "-n", "2").Changes); len(got) != 2 || got[0] != 5 {
		t.Fatalf("without --after: %v, want the newest first", got)
	}
	// Once retention removed records, cursor 0 is below the horizon: the
	// consumer is told to resync, not silently started at the horizon.
	mustOK(t, dir, "state-journal-compact", "--max-records", "1")
	seed(t, dir, "late", 1)
	r := jc(t, dir, "state-journal", "--after", "0", "--json")
	var eb struct {
		Error struct {
			Code        string  `json:"code"`
			ResumeAfter *uint64 `json:"resume_after"`
		} `json:"error"`
	}
	if r.code != 1 {
		t.Fatalf("--after 0 below the horizon: want exit 1, got %s", r)
	}
	decode(t, r, &eb)
	if eb.Error.Code != "compacted" || eb.Error.ResumeAfter == nil || *eb.Error.ResumeAfter != 5 {
		t.Fatalf("--after 0 below the horizon: want code compacted resuming after 5, got %s", r)
	}
}

// TestInvalidUTF8IsRefusedByTheCLINamingTheField gives the record command
// invalid UTF-8 in a flag and in a --stdin line: each is refused naming
// the field, and nothing is written. A flag value the record contract
// refuses is a bad flag value (exit 2); a refused --stdin line is refused
// input (exit 1).
func TestInvalidUTF8IsRefusedByTheCLINamingTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	r := jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--aggregate-id", "ws-\xff")
	if r.code != 2 || !strings.Contains(r.stderr, "aggregate_id") || !strings.Contains(r.stderr, "UTF-8") {
		t.Fatalf("invalid UTF-8 in --aggregate-id: want exit 2 (a bad flag value) naming aggregate_id, got %s", r)
	}
	line := `{"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.work_session","aggregate_type":"work_session","aggregate_id":"ws-1","correlation_id":"c-` + "\xfe" + `"}`
	r = jcIn(t, dir, line+"\n", "state-journal-record", "--stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "line 1") || !strings.Contains(r.stderr, "correlation_id") || !strings.Contains(r.stderr, "UTF-8") {
		t.Fatalf("invalid UTF-8 on a --stdin line: want exit 1 naming line 1 and correlation_id, got %s", r)
	}
	if st := status(t, dir); st.LastSequence != 1 {
		t.Fatalf("last sequence %d, want 1: a refused record was written", st.LastSequence)
	}
}

// TestHumanReceiptSaysMetadataWasTrimmed: a record whose metadata went
// over a bound prints metadata_trimmed=true in its human receipt.
func TestHumanReceiptSaysMetadataWasTrimmed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--aggregate-id", "ws-1",
		"--metadata", "note="+strings.Repeat("x", 400))
	if !strings.Contains(r.stdout, "metadata_trimmed=true") {
		t.Fatalf("the receipt does not say the metadata was trimmed: %s", r)
	}
	r = mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--aggregate-id", "ws-1",
		"--metadata", "note=short")
	if strings.Contains(r.stdout, "trimmed") {
		t.Fatalf("an untrimmed receipt says trimmed: %s", r)
	}
}
