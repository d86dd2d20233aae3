package main

// The coverage proof end to end: journalctl serve watches a runtime root
// while real processes (this test binary re-executed as runtime modules)
// mutate JSON files under .tmp/ and record their changes through the
// server, as the runtime does.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/internal/testproc"
)

// coverageRoles are the runtime modules of the coverage test, each a
// role of the re-executed test binary (testproc).
var coverageRoles = []string{"sessions", "queue", "items"}

// coverageRegistry declares the three surfaces the modules write, each
// stored as the runtime stores its state.
const coverageRegistry = `version: 1
surfaces:
  - id: runtime_sessions
    owner: runtime.sessions
    storage: {kind: file, path: .tmp/runtime/sessions.json}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_queue
    owner: runtime.queue
    storage: {kind: file, path: .tmp/runtime/queue.jsonl}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_items
    owner: runtime.items
    storage: {kind: dir, path: .tmp/runtime/items/}
    truth: canonical
    journal: {mode: fallback}
  - id: runtime_state_engine
    owner: runtime.state_engine
    storage: {kind: memory}
    truth: canonical
    change_types: [transitioned]
    journal: {mode: dual}
`

// coverageOps is how many mutations each module makes.
const coverageOps = 8

// coverageMiss is a mutation a module made without recording it.
type coverageMiss struct {
	Path string    `json:"path"`
	At   time.Time `json:"at"`
}

// coverageChild is one runtime module: it mutates its surface's files
// under $ROOT/.tmp and records through the server at $ADDR.
//
//	sessions  rewrites sessions.json atomically (temp file, rename) and
//	          records after each write
//	queue     appends to queue.jsonl and records, but its compaction path
//	          rewrites the file in place without recording (the deliberate
//	          miss); it writes each miss to $OUT
//	items     writes one file per item, recording before the write (half
//	          of the records carry the content's fingerprint)
func coverageChild(role string) int {
	root, addr := os.Getenv("COVERAGE_ROOT"), os.Getenv("COVERAGE_ADDR")
	rt := filepath.Join(root, ".tmp", "runtime")
	fail := func(err error) int { fmt.Fprintf(os.Stderr, "%s: %v\n", role, err); return 1 }
	record := func(surface, aggregate string, meta map[string]any) error {
		b, _ := json.Marshal(map[string]any{"source": "runtime." + role, "surface": surface, "change_type": "updated",
			"aggregate_type": role, "aggregate_id": aggregate, "metadata": meta})
		resp, err := http.Post("http://"+addr+"/v1/changes", "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /v1/changes answered %d", resp.StatusCode)
		}
		return nil
	}
	var misses []coverageMiss
	for i := 0; i < coverageOps; i++ {
		var err error
		switch role {
		case "sessions":
			p := filepath.Join(rt, "sessions.json")
			b, _ := json.Marshal(map[string]any{"sessions": []any{map[string]any{"id": "ws-1", "beat": i}}})
			if err = os.WriteFile(p+".tmp", b, 0o644); err == nil {
				if err = os.Rename(p+".tmp", p); err == nil {
					err = record("runtime_sessions", "ws-1", nil)
				}
			}
		case "queue":
			p := filepath.Join(rt, "queue.jsonl")
			if i%4 == 2 {
				// The compaction path: rewrites in place, records nothing.
				if err = os.WriteFile(p, []byte(fmt.Sprintf("{\"compacted_at\":%d}\n", i)), 0o644); err == nil {
					var fi os.FileInfo
					if fi, err = os.Stat(p); err == nil {
						misses = append(misses, coverageMiss{Path: ".tmp/runtime/queue.jsonl", At: fi.ModTime().UTC()})
					}
				}
				break
			}
			var f *os.File
			if f, err = os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				_, err = fmt.Fprintf(f, "{\"item\":%d}\n", i)
				f.Close()
				if err == nil {
					err = record("runtime_queue", fmt.Sprint(i), nil)
				}
			}
		case "items":
			p := filepath.Join(rt, "items", fmt.Sprintf("item-%d.json", i))
			b, _ := json.Marshal(map[string]any{"item": i, "state": "pending"})
			var meta map[string]any
			if i%2 == 0 {
				meta = map[string]any{"fingerprint": coverage.FingerprintOf(b)}
			}
			if err = record("runtime_items", fmt.Sprint(i), meta); err == nil {
				if err = os.WriteFile(p+".tmp", b, 0o644); err == nil {
					err = os.Rename(p+".tmp", p)
				}
			}
		default:
			err = fmt.Errorf("unknown role")
		}
		if err != nil {
			return fail(err)
		}
		// Apart by more than the settle time, so each mutation is a change.
		time.Sleep(120 * time.Millisecond)
	}
	if out := os.Getenv("COVERAGE_OUT"); out != "" && role == "queue" {
		b, _ := json.Marshal(misses)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return fail(err)
		}
	}
	return 0
}

type coverageStatus struct {
	Coverage *coverage.Report `json:"coverage"`
}

func (s *serverProc) coverage(t *testing.T) coverage.Report {
	t.Helper()
	code, b := s.get(t, "/v1/status")
	var st coverageStatus
	if code != http.StatusOK || json.Unmarshal(b, &st) != nil || st.Coverage == nil {
		t.Fatalf("GET /v1/status: %d %s", code, b)
	}
	return *st.Coverage
}

func TestCoverageOfARealRuntimeIsProvenWhereJournaledAndShowsEachMissAndSurvivesARestart(t *testing.T) {
	dir := shortDir(t)
	root := filepath.Dir(dir)
	for _, d := range []string{".tmp/runtime/items"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reg := filepath.Join(root, "surfaces.yaml")
	if err := os.WriteFile(reg, []byte(coverageRegistry), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--root", root, "--surfaces", reg, "--coverage-min-matched", "5", "--coverage-min-observed", "2s",
		"--coverage-window", "1s", "--coverage-settle", "30ms", "--coverage-settle-cap", "300ms"}
	srv := startServer(t, dir, args...)

	// Three modules, three processes, at the same time.
	var children []*testproc.Proc
	out := filepath.Join(root, "queue-misses.json")
	for _, role := range coverageRoles {
		children = append(children, testproc.Start(t, testproc.Options{Role: role, BaseEnv: cleanEnv(),
			Env: []string{"COVERAGE_ROOT=" + root, "COVERAGE_ADDR=" + srv.addr, "COVERAGE_OUT=" + out}, Stderr: os.Stderr}))
	}
	for _, c := range children {
		if err := c.Wait(); err != nil {
			t.Fatalf("a module failed: %v\n%s", err, c.Stderr())
		}
	}
	var want []coverageMiss
	if b, err := os.ReadFile(out); err != nil || json.Unmarshal(b, &want) != nil || len(want) != 2 {
		t.Fatalf("the queue module's misses: %v %v", want, err)
	}

	deadline := time.Now().Add(60 * time.Second)
	var rep coverage.Report
	for {
		rep = srv.coverage(t)
		done := true
		for _, id := range []string{"runtime_sessions", "runtime_queue", "runtime_items"} {
			s := rep.Surface(id)
			done = done && s.Observed == coverageOps && s.Pending == 0
		}
		if done && rep.Surface("runtime_sessions").Verdict == coverage.VerdictProven && rep.Surface("runtime_items").Verdict == coverage.VerdictProven {
			break
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(rep, "", "  ")
			t.Fatalf("waited 60s for the verdicts:\n%s\n%s", b, srv.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range []string{"runtime_sessions", "runtime_items"} {
		s := rep.Surface(id)
		if s.Matched != coverageOps || s.Unjournaled != 0 || s.Gaps != 0 || !s.Retire || *s.Ratio != 1 {
			t.Errorf("%s: %+v", id, s.Figures)
		}
	}
	if items := rep.Surface("runtime_items"); items.Exact != coverageOps/2 {
		t.Errorf("runtime_items: %d exact matches, want the %d records with a fingerprint", items.Exact, coverageOps/2)
	}
	q := rep.Surface("runtime_queue")
	if q.Matched != coverageOps-2 || q.Unjournaled != 2 || q.Retire || q.Verdict == coverage.VerdictProven {
		t.Fatalf("runtime_queue: %+v", q.Figures)
	}
	for i, m := range q.Misses {
		if m.Path != want[i].Path || !m.At.Equal(want[i].At) {
			t.Errorf("miss %d is %s at %s, want %s at %s", i, m.Path, m.At, want[i].Path, want[i].At)
		}
	}
	if !strings.HasPrefix(q.RetireText(), "no — ") || !strings.HasPrefix(rep.Surface("runtime_sessions").RetireText(), "yes — ") {
		t.Errorf("retire: queue %q, sessions %q", q.RetireText(), rep.Surface("runtime_sessions").RetireText())
	}
	// The fallback-declared surface proven by evidence is not flagged; only
	// a declared proven one could be.
	if d := rep.Surface("runtime_items").Disagreement; d != "" {
		t.Errorf("runtime_items flagged: %s", d)
	}

	// Restart: every figure is kept.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, srv.stderr.String())
	}
	persisted := mustOK(t, dir, "--root", root, "--surfaces", reg, "state-coverage", "--json")
	var po coverageOutput
	decode(t, persisted, &po)
	srv = startServer(t, dir, args...)
	after := srv.coverage(t)
	for _, id := range []string{"runtime_sessions", "runtime_queue", "runtime_items"} {
		b, a, p := *rep.Surface(id), *after.Surface(id), *po.Report.Surface(id)
		if a.ObservedSeconds < b.ObservedSeconds || a.Streak.ObservedSeconds < b.Streak.ObservedSeconds {
			t.Errorf("%s: observed time went back: %v -> %v", id, b.ObservedSeconds, a.ObservedSeconds)
		}
		for _, s := range []*coverage.SurfaceReport{&b, &a, &p} {
			s.ObservedSeconds, s.Streak.ObservedSeconds, s.Why, s.Watching = 0, 0, "", false
		}
		if !reflect.DeepEqual(b.Figures, a.Figures) || !reflect.DeepEqual(b.Figures, p.Figures) || a.Retire != b.Retire {
			t.Errorf("%s: figures changed across the restart:\n before %+v\n file   %+v\n after  %+v", id, b.Figures, p.Figures, a.Figures)
		}
	}

	// Everywhere an operator looks.
	st := mustOK(t, dir, "--root", root, "--surfaces", reg, "state-journal-status")
	if !strings.Contains(st.stdout, "runtime_sessions: file watcher can be retired: yes — ") ||
		!strings.Contains(st.stdout, "runtime_queue: file watcher can be retired: no — ") {
		t.Errorf("state-journal-status:\n%s", st.stdout)
	}
	sf := mustOK(t, dir, "--root", root, "--surfaces", reg, "state-surfaces", "--json")
	var sv struct {
		Surfaces []surfaceView `json:"surfaces"`
	}
	decode(t, sf, &sv)
	for _, s := range sv.Surfaces {
		if s.ID == "runtime_queue" && (s.Coverage == nil || s.Coverage.Unjournaled != 2 || s.Coverage.Retire) {
			t.Errorf("state-surfaces --json runtime_queue coverage: %+v", s.Coverage)
		}
	}
	full := mustOK(t, dir, "--root", root, "--surfaces", reg, "state-coverage")
	t.Logf("state-coverage:\n%s", full.stdout)
	for _, m := range want {
		if !strings.Contains(full.stdout, "unjournaled: .tmp/runtime/queue.jsonl at "+humanTime(m.At)) {
			t.Errorf("state-coverage does not list the miss at %s:\n%s", humanTime(m.At), full.stdout)
		}
	}
}
