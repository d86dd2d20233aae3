package coverage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
)

const testRegistry = `version: 1
surfaces:
  - id: runtime_sessions
    owner: runtime.sessions
    storage: {kind: file, path: .tmp/runtime/sessions.json}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_items
    owner: runtime.items
    storage: {kind: dir, path: .tmp/runtime/items/}
    truth: canonical
    journal: {mode: proven}
  - id: runtime_state_engine
    owner: runtime.state_engine
    storage: {kind: memory}
    truth: canonical
    change_types: [transitioned]
    journal: {mode: dual}
  - id: runtime_timeline
    owner: runtime.timeline
    storage: {kind: file, path: .tmp/runtime/timeline.jsonl}
    truth: canonical
    journal: {mode: disabled}
`

// syncBuf collects log lines while the watcher writes them.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a runtime root with a journal and a coverage watcher on it.
type env struct {
	t    *testing.T
	root string
	dir  string
	j    *engine.Journal
	w    *Watcher
	preg *prometheus.Registry
	logs *syncBuf
	cfg  Config
	reg  string // the registry's YAML; testRegistry when empty
}

func testConfig() Config {
	return Config{Window: time.Second, SettleIdle: 20 * time.Millisecond, SettleCap: 200 * time.Millisecond,
		MinMatched: 3, MinObserved: 300 * time.Millisecond, Flush: 50 * time.Millisecond, Rescan: time.Hour,
		RetryAdd: 50 * time.Millisecond, Persist: true, Journal: true}
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{".tmp/runtime/items"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, root: root, dir: filepath.Join(root, "journal"), cfg: cfg, logs: &syncBuf{}}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	src := e.reg
	if src == "" {
		src = testRegistry
	}
	reg, err := registry.Parse([]byte(src), "test", "yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	e.preg = prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.j, err = engine.Open(e.dir, engine.WithRegistry(reg), engine.WithRoot(e.root), engine.WithLogger(log)); err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Logger, cfg.Registerer = log, e.preg
	if e.w, err = Open(e.j, cfg); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.close)
}

func (e *env) close() {
	if e.w != nil {
		if err := e.w.Close(); err != nil {
			e.t.Errorf("close watcher: %v", err)
		}
		e.w = nil
	}
	if e.j != nil {
		if err := e.j.Close(); err != nil {
			e.t.Errorf("close journal: %v", err)
		}
		e.j = nil
	}
}

func (e *env) path(rel string) string { return filepath.Join(e.root, filepath.FromSlash(rel)) }

// writeAtomic replaces rel by a temp file renamed over it, as the
// runtime's stores do.
func (e *env) writeAtomic(rel string, v any) []byte {
	e.t.Helper()
	b, _ := json.Marshal(v)
	p := e.path(rel)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) record(surface, aggregate string, meta map[string]any) {
	e.t.Helper()
	if _, err := e.j.Record(context.Background(), engine.Change{Source: "runtime.test", Surface: surface, ChangeType: "updated",
		AggregateType: "test", AggregateID: aggregate, Metadata: meta}); err != nil {
		e.t.Fatal(err)
	}
}

// waitFor polls the report until ok holds (a wait, not a timing claim:
// the bound only turns a hang into a failure).
func (e *env) waitFor(what string, ok func(r Report) bool) Report {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.w.Report()
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(r, "", "  ")
			e.t.Fatalf("waited 60s for %s; report:\n%s\nlogs:\n%s", what, b, e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func surf(r Report, id string) SurfaceReport {
	if s := r.Surface(id); s != nil {
		return *s
	}
	return SurfaceReport{}
}

// prove writes and records changes of runtime_sessions until it is proven.
func (e *env) proveSessions() {
	e.t.Helper()
	base := surf(e.w.Report(), "runtime_sessions").Matched
	for i := 1; i <= e.cfg.MinMatched; i++ {
		e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"session": "ws-1", "beat": i})
		e.record("runtime_sessions", "ws-1", nil)
		// Apart by more than the settle time: each write is its own change.
		time.Sleep(3 * e.cfg.SettleIdle)
	}
	r := e.waitFor("the recorded writes of runtime_sessions matched", func(r Report) bool {
		s := surf(r, "runtime_sessions")
		return s.Matched+s.Unjournaled >= base+uint64(e.cfg.MinMatched)
	})
	if s := surf(r, "runtime_sessions"); s.Matched != base+uint64(e.cfg.MinMatched) || s.Unjournaled != 0 {
		e.t.Fatalf("after %d recorded writes: matched %d, unjournaled %d", e.cfg.MinMatched, s.Matched-base, s.Unjournaled)
	}
	e.waitFor("runtime_sessions proven", func(r Report) bool { return surf(r, "runtime_sessions").Verdict == VerdictProven })
}

func TestAProvenSurfaceThatMissesOneChangeFallsBackVisibly(t *testing.T) {
	e := newEnv(t, testConfig())
	e.proveSessions()
	if s := surf(e.w.Report(), "runtime_sessions"); !s.Retire || !strings.HasPrefix(s.RetireText(), "yes — ") {
		t.Fatalf("a proven surface says its watcher cannot be retired: %q", s.RetireText())
	}
	if v := testutil.ToFloat64(e.w.m.proven.WithLabelValues("runtime_sessions")); v != 1 {
		t.Fatalf("state_journal_coverage_proven = %v while proven", v)
	}

	// A mutation path that forgets to record.
	e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"session": "ws-1", "beat": "forgotten"})
	mtime := mustStat(t, e.path(".tmp/runtime/sessions.json")).ModTime()
	r := e.waitFor("the forgotten write unjournaled", func(r Report) bool { return surf(r, "runtime_sessions").Unjournaled == 1 })
	s := surf(r, "runtime_sessions")

	// Status.
	if s.Verdict != VerdictObserving || s.Retire || !strings.HasPrefix(s.RetireText(), "no — ") {
		t.Fatalf("after a miss: verdict %s, retire %q", s.Verdict, s.RetireText())
	}
	if len(s.Misses) != 1 || s.Misses[0].Path != ".tmp/runtime/sessions.json" || !s.Misses[0].At.Equal(mtime.UTC()) {
		t.Fatalf("the miss is not kept with its path and write time %s: %+v", mtime.UTC(), s.Misses)
	}
	if s.Ratio == nil || *s.Ratio >= 1 || s.Streak.Matched != 0 {
		t.Fatalf("after a miss: ratio %v, streak %+v", s.Ratio, s.Streak)
	}
	// Metrics.
	for name, got := range map[string]float64{
		"proven":                 testutil.ToFloat64(e.w.m.proven.WithLabelValues("runtime_sessions")),
		"unjournaled_total":      testutil.ToFloat64(e.w.m.unjournaled.WithLabelValues("runtime_sessions")),
		"transitions{proven}":    testutil.ToFloat64(e.w.m.transitions.WithLabelValues("runtime_sessions", VerdictProven)),
		"transitions{observing}": testutil.ToFloat64(e.w.m.transitions.WithLabelValues("runtime_sessions", VerdictObserving)),
	} {
		want := map[string]float64{"proven": 0, "unjournaled_total": 1, "transitions{proven}": 1, "transitions{observing}": 1}[name]
		if got != want {
			t.Errorf("metric %s = %v, want %v", name, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(e.preg, "state_journal_coverage_ratio"); err != nil || n == 0 {
		t.Errorf("state_journal_coverage_ratio not gathered: %d, %v", n, err)
	}
	// Logs.
	logs := e.logs.String()
	if !strings.Contains(logs, `level=WARN msg="coverage: verdict changed" surface=runtime_sessions from=proven to=observing`) {
		t.Errorf("the fall back is not logged with stable keys:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="coverage: unjournaled change" surface=runtime_sessions path=.tmp/runtime/sessions.json`) {
		t.Errorf("the unjournaled change is not logged:\n%s", logs)
	}
	// The journal.
	var got []engine.Change
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		res, err := e.j.Query(context.Background(), engine.Query{Surfaces: []string{StateEngineSurface}, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		got = res.Changes
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Fatalf("want the transitions to proven and back journaled, got %d records", len(got))
	}
	last := got[1]
	if last.AggregateID != "runtime_sessions" || last.ChangeType != "transitioned" || last.Metadata["from"] != VerdictProven ||
		last.Metadata["to"] != VerdictObserving || last.Severity != "warning" || last.Source != StateEngineSource {
		t.Fatalf("the fall back journaled as %+v", last)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestAnOverflowIsAGapThatARescanClosesWithUnattributableChangesAndBlocksProven(t *testing.T) {
	lim := readInotifyLimits()
	if lim.MaxQueuedEvents <= 0 || lim.MaxQueuedEvents > 1<<17 {
		t.Skipf("inotify max_queued_events is %d: no overflow to induce here", lim.MaxQueuedEvents)
	}
	cfg := testConfig()
	// The burst takes a while to write and longer to read back: a wide
	// window lets its records match whatever the events report.
	cfg.Window, cfg.MaxFiles = time.Minute, 1<<17
	e := newEnv(t, cfg)
	// runtime_items becomes proven first: the overflow must take it back.
	// Records carry the fingerprint of their write: exact matches are
	// decided at once, not when the (wide) window closes.
	for i := 0; i < e.cfg.MinMatched; i++ {
		b := e.writeAtomic(fmt.Sprintf(".tmp/runtime/items/item-%d.json", i), map[string]any{"item": i})
		e.record("runtime_items", fmt.Sprint(i), map[string]any{MetadataKey: FingerprintOf(b)})
		e.waitFor("item matched", func(r Report) bool { return surf(r, "runtime_items").Matched == uint64(i+1) })
	}
	e.waitFor("runtime_items proven", func(r Report) bool { return surf(r, "runtime_items").Verdict == VerdictProven })
	if d := surf(e.w.Report(), "runtime_items").Disagreement; d != "" {
		t.Fatalf("declared proven and proven, yet flagged: %s", d)
	}

	// Every burst file is journaled before it is written, so whatever the
	// watcher judges from its events is matched: an unjournaled change
	// could only come from calling a rescan's finding a miss.
	// Each new file is two events (create, modify) that the kernel cannot
	// merge, so half the queue's length in files fills it.
	n := int(lim.MaxQueuedEvents)/2 + 2000 + eventBuffer // two events a file; the channel holds eventBuffer more
	batch := make([]engine.Change, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, engine.Change{Source: "runtime.test", Surface: "runtime_items", ChangeType: "created", AggregateType: "item",
			AggregateID: fmt.Sprintf("burst-%d", i), Metadata: map[string]any{MetadataKey: FingerprintOf(burstContent(i))}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := e.j.RecordBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// The reader stops; a burst far beyond the kernel's queue follows.
	e.w.pauseReader()
	for i := 0; i < n; i++ {
		if err := os.WriteFile(e.path(fmt.Sprintf(".tmp/runtime/items/burst-%06d.json", i)), burstContent(i), 0o644); err != nil {
			e.w.resumeReader()
			t.Fatal(err)
		}
	}
	e.w.resumeReader()
	r := e.waitFor("the overflow gap closed by its rescan", func(r Report) bool {
		s := surf(r, "runtime_items")
		return s.Overflows >= 1 && s.LastGap != nil && !s.LastGap.To.IsZero() && s.Pending == 0
	})
	s := surf(r, "runtime_items")
	seen := s.Matched - uint64(e.cfg.MinMatched) // burst changes the events reported before the overflow
	if s.Gaps != 1 || s.Unjournaled != 0 || seen+s.Unattributable != uint64(n) || s.Unattributable == 0 {
		t.Fatalf("after the overflow of a %d-file burst: gaps %d, matched from events %d, unattributable %d, unjournaled %d", n, s.Gaps, seen, s.Unattributable, s.Unjournaled)
	}
	t.Logf("burst of %d files: %d reported by events and matched, %d found by the rescan", n, seen, s.Unattributable)
	if s.Verdict == VerdictProven || s.Streak.Matched != 0 {
		t.Fatalf("a gap must block proven: verdict %s, streak %+v", s.Verdict, s.Streak)
	}
	if s.Disagreement == "" {
		t.Fatal("declared proven with a gap in the evidence, yet not flagged")
	}
	if got := testutil.ToFloat64(e.w.m.overflows.WithLabelValues("runtime_items")); got != 1 {
		t.Fatalf("state_journal_watcher_overflows_total = %v", got)
	}
	if !strings.Contains(e.logs.String(), `msg="coverage: gap opened" surface=runtime_items reason=overflow`) {
		t.Fatalf("the gap is not logged:\n%s", e.logs.String())
	}
	// Nothing settles into an unjournaled change after the gap either: a
	// recorded change after it is matched and the burst stays out.
	b := e.writeAtomic(".tmp/runtime/items/after.json", map[string]any{"after": true})
	e.record("runtime_items", "after", map[string]any{MetadataKey: FingerprintOf(b)})
	r = e.waitFor("the change after the gap matched", func(r Report) bool { return surf(r, "runtime_items").Matched == s.Matched+1 })
	if s2 := surf(r, "runtime_items"); s2.Unjournaled != 0 || s2.Unattributable != s.Unattributable || s2.Streak.Matched != 1 {
		t.Fatalf("after the gap: unjournaled %d, unattributable %d, streak %+v", s2.Unjournaled, s2.Unattributable, s2.Streak)
	}
}

func burstContent(i int) []byte { return []byte(fmt.Sprintf(`{"burst":%d}`, i)) }

func TestATouchOrATempFileIsNoChangeAndRecordsMayPrecedeTheWriteOrCarryItsFingerprint(t *testing.T) {
	e := newEnv(t, testConfig())
	// A record that precedes its write, with the write's fingerprint.
	b, _ := json.Marshal(map[string]any{"item": 1})
	e.record("runtime_items", "1", map[string]any{MetadataKey: FingerprintOf(b)})
	e.writeAtomic(".tmp/runtime/items/one.json", map[string]any{"item": 1})
	r := e.waitFor("the first item matched", func(r Report) bool { return surf(r, "runtime_items").Matched == 1 })
	if s := surf(r, "runtime_items"); s.Exact != 1 {
		t.Fatalf("a record with the write's fingerprint matched, but not exactly: %+v", s.Figures)
	}
	// A touch, editors' and writers' temp files: none is a change.
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(e.path(".tmp/runtime/items/one.json"), now, now); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".one.json.swp", "one.json~", "#one.json#", "one.json.tmp", "one.json.tmp.123", ".one.json.a8Fk2", "4913"} {
		if err := os.WriteFile(e.path(".tmp/runtime/items/"+name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A barrier: a real change, recorded after its write.
	e.writeAtomic(".tmp/runtime/items/two.json", map[string]any{"item": 2})
	e.record("runtime_items", "2", nil)
	r = e.waitFor("the second item matched", func(r Report) bool { return surf(r, "runtime_items").Matched == 2 })
	if s := surf(r, "runtime_items"); s.Observed != 2 || s.Unjournaled != 0 || s.Pending != 0 {
		t.Fatalf("a touch or a temp file counted as a change: %+v", s.Figures)
	}
	// A record with another content's fingerprint matches nothing.
	e.record("runtime_items", "3", map[string]any{MetadataKey: FingerprintOf([]byte("something else"))})
	e.writeAtomic(".tmp/runtime/items/three.json", map[string]any{"item": 3})
	r = e.waitFor("the third item unjournaled", func(r Report) bool { return surf(r, "runtime_items").Unjournaled == 1 })
	if s := surf(r, "runtime_items"); s.Misses[0].Path != ".tmp/runtime/items/three.json" || s.Misses[0].Fingerprint == "" {
		t.Fatalf("miss: %+v", s.Misses)
	}
	// Not observed: a disabled surface and a memory one, each with why.
	for _, id := range []string{"runtime_timeline", StateEngineSurface} {
		if s := surf(r, id); s.Verdict != VerdictNotObserved || s.Retire || s.Why == "" {
			t.Errorf("%s: verdict %s, retire %v, why %q", id, s.Verdict, s.Retire, s.Why)
		}
	}
}

func TestTheFiguresSurviveARestartAndWhatChangedMeanwhileIsUnattributable(t *testing.T) {
	e := newEnv(t, testConfig())
	e.proveSessions()
	before := surf(e.w.Report(), "runtime_sessions")
	e.close()

	// Nothing changed while down: the proof holds.
	e.open()
	after := surf(e.w.Report(), "runtime_sessions")
	if after.Verdict != VerdictProven || after.Matched != before.Matched || after.Observed != before.Observed || after.Gaps != 0 ||
		after.ObservedSeconds < before.ObservedSeconds || after.Streak.Matched != before.Streak.Matched {
		t.Fatalf("figures after a restart:\n before %+v\n after  %+v", before.Figures, after.Figures)
	}
	e.close()

	// A write while down: a gap, its change unattributable, the proof gone.
	e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"while": "down"})
	e.open()
	s := surf(e.w.Report(), "runtime_sessions")
	if s.Gaps != 1 || s.Unattributable != 1 || s.Unjournaled != 0 || s.Verdict == VerdictProven || s.LastGap == nil || s.LastGap.To.IsZero() {
		t.Fatalf("after a write while down: %+v", s.Figures)
	}
	e.close()

	// Another journal's figures are not believed: reset, with the reason.
	p := filepath.Join(e.dir, "state", StateFileName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	sf.JournalID = "0190aaaa-0000-7000-8000-000000000000"
	if err := os.WriteFile(p, sf.seal(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.open()
	r := e.w.Report()
	if !strings.Contains(r.StateReset, "belongs to journal") || surf(r, "runtime_sessions").Matched != 0 {
		t.Fatalf("a foreign coverage file was believed: reset %q, matched %d", r.StateReset, surf(r, "runtime_sessions").Matched)
	}
	e.close()

	// A damaged one neither.
	b, _ = os.ReadFile(p)
	b = bytes.Replace(b, []byte(`"matched":`), []byte(`"matched":1`), 1)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPersisted(e.dir, e.journalID(t)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a damaged coverage file read back: %v", err)
	}
}

func (e *env) journalID(t *testing.T) string {
	j, err := engine.Open(e.dir, engine.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	return j.Status().JournalID
}

func TestAWriteThatForgotItsRecordIsTheMissNotItsNeighbour(t *testing.T) {
	for _, tc := range []struct {
		name        string
		recordFirst bool
	}{{"records follow their writes", false}, {"records precede their writes", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig())
			var missAt time.Time
			for i := 0; i < 5; i++ {
				forgot := i == 2
				if tc.recordFirst && !forgot {
					e.record("runtime_sessions", "ws-1", nil)
				}
				e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"beat": i})
				if forgot {
					missAt = mustStat(t, e.path(".tmp/runtime/sessions.json")).ModTime().UTC()
				}
				if !tc.recordFirst && !forgot {
					e.record("runtime_sessions", "ws-1", nil)
				}
				time.Sleep(3 * e.cfg.SettleIdle)
			}
			r := e.waitFor("five changes decided", func(r Report) bool { return surf(r, "runtime_sessions").Observed == 5 })
			s := surf(r, "runtime_sessions")
			if s.Matched != 4 || s.Unjournaled != 1 || len(s.Misses) != 1 || !s.Misses[0].At.Equal(missAt) {
				t.Fatalf("want the third write (at %s) as the one miss: matched %d, misses %+v", missAt, s.Matched, s.Misses)
			}
		})
	}
}

func TestADirectoryThatCannotBeWatchedIsAGapUntilItCanAndAcrossARestart(t *testing.T) {
	e := newEnv(t, testConfig())
	e.close()
	items := e.path(".tmp/runtime/items")
	if err := os.RemoveAll(items); err != nil {
		t.Fatal(err)
	}
	e.open()
	s := surf(e.w.Report(), "runtime_items")
	if s.Verdict != VerdictGap || s.Watching || s.Gaps != 1 || !strings.Contains(s.Why, "does not exist") {
		t.Fatalf("a missing directory: %+v %q", s.Figures, s.Why)
	}
	// It appears, with a file in it: the retry watches it, the rescan
	// closes the gap and the file is unattributable.
	if err := os.MkdirAll(items, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(items, "early.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.waitFor("the gap closed", func(r Report) bool { return surf(r, "runtime_items").Watching })
	s = surf(r, "runtime_items")
	if s.Verdict != VerdictObserving || s.Gaps != 1 || s.Unattributable != 1 || s.LastGap.To.IsZero() || s.Unjournaled != 0 {
		t.Fatalf("after the directory appeared: %+v", s.Figures)
	}
	// Gone while the server runs: a watch lost is a gap.
	if err := os.RemoveAll(items); err != nil {
		t.Fatal(err)
	}
	r = e.waitFor("the lost watch", func(r Report) bool { return surf(r, "runtime_items").Gaps == 2 })
	if s := surf(r, "runtime_items"); s.Verdict != VerdictGap || s.Watching {
		t.Fatalf("after the directory went: %+v", s.Figures)
	}
	e.close()
	// The open gap is persisted and closes at the next start.
	if err := os.MkdirAll(items, 0o755); err != nil {
		t.Fatal(err)
	}
	e.open()
	s = surf(e.w.Report(), "runtime_items")
	if s.Gaps != 2 || s.Verdict != VerdictObserving || s.LastGap == nil || s.LastGap.To.IsZero() || !s.Watching {
		t.Fatalf("a gap open at the last stop did not close at start: %+v", s.Figures)
	}
}

func TestTheScheduledRescanFindsAChangeNoEventReportedAndCallsItAGap(t *testing.T) {
	cfg := testConfig()
	cfg.Rescan = 100 * time.Millisecond
	e := newEnv(t, cfg)
	e.proveSessions()
	// The kernel stops reporting the directory (as kqueue may, with no
	// overflow): the watch is gone, the watcher does not know.
	dir := e.path(".tmp/runtime")
	e.w.mu.Lock()
	err := e.w.fsw.Remove(dir)
	e.w.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"unseen": true})
	r := e.waitFor("the rescan's gap", func(r Report) bool { return surf(r, "runtime_sessions").Gaps == 1 })
	s := surf(r, "runtime_sessions")
	if s.Unattributable != 1 || s.Unjournaled != 0 || s.Verdict == VerdictProven || s.LastGap == nil ||
		!strings.Contains(s.LastGap.Reason, "scheduled rescan found 1 change") || s.LastGap.To.IsZero() {
		t.Fatalf("after an unreported change: %+v", s.Figures)
	}
	if got := testutil.ToFloat64(e.w.m.gaps.WithLabelValues("runtime_sessions", gapRescan)); got != 1 {
		t.Fatalf("state_journal_coverage_gaps_total{reason=rescan} = %v", got)
	}
}

// Matched changes are persisted every Flush, but a miss is what an
// operator must not lose to a crash: it is on disk within moments, even
// when the next routine flush is an hour away.
func TestAMissIsPersistedAtOnceNotAtTheNextFlush(t *testing.T) {
	cfg := testConfig()
	cfg.Flush = time.Hour
	e := newEnv(t, cfg)
	id := e.journalID(t)
	e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"session": "ws-1", "beat": "forgotten"})
	e.waitFor("the forgotten write unjournaled", func(r Report) bool { return surf(r, "runtime_sessions").Unjournaled == 1 })
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Read the file as a restart after a crash would (the watcher is
		// still running: nothing was flushed by a Close).
		r, err := ReadPersisted(e.dir, id)
		if err == nil && r != nil {
			if s := surf(r.Report, "runtime_sessions"); s.Unjournaled == 1 && len(s.Misses) == 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the miss, state/coverage.json does not hold it (flush interval %s): %+v, %v", cfg.Flush, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A surface whose records are never the newest in the journal — other
// surfaces commit after each — is still matched as it changes: the
// follower hands each read's records over at its end, not when the last
// one happens to be the head (which under a busy journal never came, and
// changes recorded more often than once a second waited for 1,024
// records: past their windows, they were called unjournaled).
func TestRecordsFollowedByOtherSurfacesReachTheMatcherEachRead(t *testing.T) {
	e := newEnv(t, testConfig())
	const n = 20
	ctx := context.Background()
	for i := range n {
		e.writeAtomic(".tmp/runtime/sessions.json", map[string]any{"session": "ws-1", "beat": i})
		e.record("runtime_sessions", "ws-1", nil)
		if _, err := e.j.Record(ctx, engine.Change{Source: StateEngineSource, Surface: StateEngineSurface, ChangeType: "transitioned",
			AggregateType: "test", AggregateID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * e.cfg.SettleIdle) // each write its own change; the surface's records under a second apart
	}
	r := e.waitFor("every change decided", func(r Report) bool {
		s := surf(r, "runtime_sessions")
		return s.Matched+s.Unjournaled >= n
	})
	if s := surf(r, "runtime_sessions"); s.Matched != n || s.Unjournaled != 0 {
		t.Fatalf("%d recorded changes, each followed by another surface's record: matched %d, unjournaled %d (misses %+v)", n, s.Matched, s.Unjournaled, s.Misses)
	}
}
