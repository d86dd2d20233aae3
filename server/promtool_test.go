package server

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The metrics must pass `promtool check metrics` (Prometheus naming and
// help conventions). CI installs promtool (Debian's prometheus package);
// elsewhere the test is skipped when promtool is not installed.
func TestMetricsPassPromtoolCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed; .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed")
	}
	e := start(t, Config{})
	// Traffic first, so every vector has children to check.
	e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-1")))
	e.post("/v1/changes", "application/json", mustJSON(t, map[string]any{"surface": "nope"}))
	a := e.get("/metrics")
	if a.status != 200 {
		t.Fatalf("/metrics answered %d", a.status)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(a.raw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	if !bytes.Contains(a.raw, []byte("state_journal_append_duration_seconds_bucket")) {
		t.Fatal("the append latency histogram is missing")
	}
}
