package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/segment"
)

// TestRepairOfAMissingHotSegmentSaysWhatIsLost deletes a middle hot
// segment: validate --repair names the lost sequence range, fills it with
// tombstones, and the journal opens and validates clean (with the loss
// reported as lost sequences) afterwards.
func TestRepairOfAMissingHotSegmentSaysWhatIsLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := engine.Open(dir, engine.WithSegmentSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]engine.Change, 0, 500)
	for i := 0; i < 1500; i++ {
		batch = append(batch, engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
			AggregateType: "work_session", AggregateID: fmt.Sprintf("ws-%d", i%7), Metadata: map[string]any{"i": i}})
		if len(batch) == cap(batch) {
			if _, err := j.RecordBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _, err := segment.ListHotSegments(dir + "/hot")
	if err != nil || len(segs) < 3 {
		t.Fatalf("want 3 hot segments: %d %v", len(segs), err)
	}
	first, last := segs[1].FirstSeq, segs[2].FirstSeq-1
	if err := os.Remove(segs[1].Path); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("sequences %d..%d were held by no file and are lost", first, last)
	r := jc(t, dir, "state-journal-validate", "--repair")
	if r.code != 1 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "quarantine/") {
		t.Fatalf("validate --repair: want exit 1 saying %q, got %s", want, r)
	}
	r = mustOK(t, dir, "state-journal-validate", "--json")
	var v validation
	decode(t, r, &v)
	lost := 0
	for _, p := range v.Problems {
		if p.Kind == "lost" {
			lost++
		}
	}
	if !v.Clean || lost != int(last-first+1) {
		t.Fatalf("after repair: want clean with %d lost sequences, got %d: %s", last-first+1, lost, r.stdout)
	}
}
