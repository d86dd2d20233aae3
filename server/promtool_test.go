package server

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The metrics must pass `promtool check metrics` (Prometheus naming and
// help conventions). CI installs promtool (Debian's prometheus package);
// elsewhere the test is skipped when promtool is not installed.
func TestMetricsPassPromtoolCheck(t *testing.T) {
	promtool := promtoolOrSkip(t)
	e := start(t, Config{})
	openCoverage(t, e.j, e.reg) // journalctl serve runs one by default
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

// promtoolOrSkip finds promtool, failing under CI (where .ci/run installs
// it) and skipping elsewhere.
func promtoolOrSkip(t *testing.T) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed; .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (Debian's prometheus package provides it); the alert rules are not checked")
	}
	return promtool
}

// The alert rules of docs/operations pass `promtool check rules`, and
// `promtool test rules` shows each alert firing on a synthetic series.
func TestAlertRulesPassPromtoolCheckAndTest(t *testing.T) {
	promtool := promtoolOrSkip(t)
	dir := filepath.Join("..", "docs", "operations")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a test, and a section in the README.
	rules, _ := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	tests, _ := os.ReadFile(filepath.Join(dir, "alerts_test.yml"))
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllSubmatch(rules, -1) {
		name := string(m[1])
		if !bytes.Contains(tests, []byte("alertname: "+name+"\n")) {
			t.Errorf("alert %s has no promtool test in alerts_test.yml", name)
		}
		if !bytes.Contains(readme, []byte("### "+name+"\n")) {
			t.Errorf("alert %s has no section in docs/operations/README.md", name)
		}
	}
}

// The alert rules and the Grafana dashboard name only metrics the
// server really exports.
func TestOperationsDocsNameExportedMetrics(t *testing.T) {
	e := start(t, Config{})
	openCoverage(t, e.j, e.reg) // journalctl serve runs one by default
	e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-1")))
	e.post("/v1/changes", "application/json", mustJSON(t, map[string]any{"surface": "nope"}))
	a := e.get("/metrics")
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\w+) `).FindAllSubmatch(a.raw, -1) {
		exported[string(m[1])] = true
	}
	dir := filepath.Join("..", "docs", "operations")
	for _, f := range []string{"alerts.yml", "grafana-dashboard.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "grafana-dashboard.json" && !json.Valid(b) {
			t.Errorf("%s is not valid JSON", f)
		}
		for _, m := range regexp.MustCompile(`state_journal_\w+`).FindAll(b, -1) {
			name := string(m)
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			if !exported[name] && !exported[base] && !exported[strings.TrimSuffix(name, "_total")] {
				t.Errorf("%s names %s, which /metrics does not export", f, name)
			}
		}
	}
}
