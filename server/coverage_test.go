package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
)

// openCoverage starts a coverage watcher on j with its metrics on reg, as
// journalctl serve does; cleanup closes it.
func openCoverage(t *testing.T, j *engine.Journal, reg prometheus.Registerer) *coverage.Watcher {
	t.Helper()
	w, err := coverage.Open(j, coverage.Config{Registerer: reg, Persist: true, Journal: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open coverage watcher: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close coverage watcher: %v", err)
		}
	})
	return w
}

func TestStatusAndSurfacesCarryTheCoverageProof(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".tmp", "runtime"), 0o755); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	j, err := engine.Open(filepath.Join(root, "journal"), engine.WithRegisterer(reg), engine.WithRoot(root), engine.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	w := openCoverage(t, j, reg)
	srv, err := New(j, Config{Listen: "127.0.0.1:0", Socket: Disabled, Registry: reg, Logger: quietLogger(), Coverage: w})
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, srv)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	defer c.CloseIdleConnections()
	base := "http://" + srv.Addr()

	var st StatusBody
	do(t, c, http.MethodGet, base+"/v1/status", "", nil, nil).decode(t, &st)
	if st.Coverage == nil || st.LastSequence != 0 || st.Coverage.Limits.MaxQueuedEvents == 0 {
		t.Fatalf("GET /v1/status without the coverage report or the journal's fields: %+v", st)
	}
	ws := st.Coverage.Surface("runtime_work_session")
	if ws == nil || !ws.Watching || ws.Verdict != coverage.VerdictObserving || ws.Retire || ws.Why == "" {
		t.Fatalf("runtime_work_session in status: %+v", ws)
	}
	// The default registry's surface declared proven has no evidence yet:
	// it is flagged.
	if q := st.Coverage.Surface("runtime_dispatcher_queue"); q == nil || q.Disagreement == "" {
		t.Fatalf("a surface declared proven without evidence is not flagged: %+v", q)
	}
	if tl := st.Coverage.Surface("runtime_action_timeline"); tl == nil || tl.Verdict != coverage.VerdictNotObserved {
		t.Fatalf("the disabled audit surface: %+v", tl)
	}

	var sb SurfacesBody
	do(t, c, http.MethodGet, base+"/v1/surfaces", "", nil, nil).decode(t, &sb)
	found := false
	for _, s := range sb.Surfaces {
		if s.Coverage == nil || s.Coverage.ID != s.ID {
			t.Fatalf("GET /v1/surfaces: %s has coverage %+v", s.ID, s.Coverage)
		}
		found = found || s.ID == "runtime_work_session" && s.Coverage.Watching
	}
	if !found {
		t.Fatal("GET /v1/surfaces: runtime_work_session is not watched")
	}

	// The metrics pass promtool.
	a := do(t, c, http.MethodGet, base+"/metrics", "", nil, nil)
	for _, name := range []string{"state_journal_coverage_ratio", "state_journal_coverage_proven", "state_journal_unjournaled_changes_total", "state_journal_watcher_overflows_total"} {
		if !bytes.Contains(a.raw, []byte("\n"+name+"{surface=\"runtime_work_session\"}")) {
			t.Errorf("/metrics lacks %s for runtime_work_session", name)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.CommandContext(context.Background(), promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(a.raw)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	}

	// Without a watcher there is no coverage field.
	e := start(t, Config{})
	var plain map[string]any
	e.get("/v1/status").decode(t, &plain)
	if _, ok := plain["coverage"]; ok || plain["last_sequence"] == nil {
		t.Fatalf("GET /v1/status without a watcher: %v", plain)
	}
}
