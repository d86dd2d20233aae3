package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// state-journal-validate checks the state files of the packages above the
// engine with their own readers, as the relay and the coverage watcher
// would at their next start: a relay cursor it does not believe is an
// error (the relay would not start), coverage figures it does not believe
// a warning (the proof would start afresh). Before, validate said clean
// with either damaged.
func TestValidateChecksTheStateFilesAboveTheEngine(t *testing.T) {
	dir := shortDir(t)
	seed(t, dir, "ws", 3)
	srv := startServer(t, dir) // writes state/coverage.json when it stops
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	cov := filepath.Join(dir, "state", "coverage.json")
	if _, err := os.Stat(cov); err != nil {
		t.Fatalf("the server left no coverage figures: %v", err)
	}
	var v validation
	decode(t, mustOK(t, dir, "state-journal-validate", "--json"), &v)
	if !v.Clean || len(v.Problems) != 0 {
		t.Fatalf("with the server's own state files validate should be clean: %+v", v)
	}

	flipMiddleByte(t, cov)
	relayCursor := filepath.Join(dir, "state", "relay.json")
	if err := os.WriteFile(relayCursor, []byte(`{"version":1,"journal_id":"`), 0o640); err != nil { // cut short
		t.Fatal(err)
	}
	r := jc(t, dir, "state-journal-validate", "--json")
	if r.code != 1 {
		t.Fatalf("validate with damaged state files: want exit 1, got %s", r)
	}
	v = validation{}
	decode(t, r, &v)
	want := map[string]string{"state/coverage.json": "warning", "state/relay.json": "error"}
	for _, p := range v.Problems {
		if sev, ok := want[p.Segment]; ok && p.Kind == "state" && p.Severity == sev && strings.Contains(p.Message, p.Segment) {
			delete(want, p.Segment)
		}
	}
	if v.Clean || len(want) != 0 {
		t.Fatalf("validate did not report %v as state problems naming the file: %s", want, r)
	}
	if r := jc(t, dir, "state-journal-validate"); r.code != 1 || !strings.Contains(r.stdout, "state/relay.json") {
		t.Errorf("the table does not name the damaged relay cursor: %s", r)
	}
}
