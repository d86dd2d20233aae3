package coverage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/engine"
)

// A verdict transition is journaled even when its reason is long and
// not ASCII (a watched directory named in another script): the reason is
// cut on a rune boundary, so the record stays valid UTF-8 and the journal
// takes it. Two names one byte apart put the cut inside a rune for one
// of them, whatever the length of the text before the name.
func TestALongNonASCIIReasonIsJournaledCutOnARuneBoundary(t *testing.T) {
	name := strings.Repeat("é", 100) // 200 bytes: a reason over 200 bytes
	dirs := []string{".tmp/" + name, ".tmp/a" + name}
	reg := `version: 1
surfaces:
  - id: runtime_one
    owner: runtime.one
    storage: {kind: dir, path: ` + dirs[0] + `/}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_two
    owner: runtime.two
    storage: {kind: dir, path: ` + dirs[1] + `/}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_state_engine
    owner: runtime.state_engine
    storage: {kind: memory}
    truth: canonical
    change_types: [transitioned]
    journal: {mode: dual}
`
	root := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, root: root, dir: filepath.Join(root, "journal"), cfg: testConfig(), logs: &syncBuf{}, reg: reg}
	e.open()
	e.waitFor("both directories watched", func(r Report) bool {
		return surf(r, "runtime_one").Verdict == VerdictObserving && surf(r, "runtime_two").Verdict == VerdictObserving
	})
	for _, d := range dirs {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	r := e.waitFor("both directories lost", func(r Report) bool {
		return surf(r, "runtime_one").Verdict == VerdictGap && surf(r, "runtime_two").Verdict == VerdictGap
	})
	for _, id := range []string{"runtime_one", "runtime_two"} {
		if why := surf(r, id).Why; len(why) <= 200 {
			t.Fatalf("%s: the reason %q is not over 200 bytes; the test proves nothing", id, why)
		}
	}
	want := map[string]bool{"runtime_one": true, "runtime_two": true}
	deadline := time.Now().Add(10 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		res, err := e.j.Query(context.Background(), engine.Query{Surfaces: []string{StateEngineSurface}, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Changes {
			if c.Metadata["to"] != VerdictGap {
				continue
			}
			reason, _ := c.Metadata["reason"].(string)
			if !utf8.ValidString(reason) || len(reason) > 200 || !strings.HasPrefix(reason, "coverage gap open since") {
				t.Errorf("%s: the journaled reason %q is not a valid UTF-8 prefix of at most 200 bytes", c.AggregateID, reason)
			}
			delete(want, c.AggregateID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(want) > 0 {
		t.Fatalf("the transitions to gap of %v were not journaled; logs:\n%s", want, e.logs.String())
	}
}
