package main

import (
	"strings"
	"testing"
)

// What an operator reads before any server ran: a surface the coverage
// watcher never watches says why, instead of promising figures that no
// server run will bring.
func TestStateSurfacesSaysWhyASurfaceIsNeverObservedBeforeAnyFigures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	r := mustOK(t, dir, "state-surfaces")
	rows := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	for id, want := range map[string]string{
		"runtime_rate_limits":      "not_observed",          // storage kind memory
		"runtime_tool_invocations": "not_observed",          // storage kind db
		"runtime_action_timeline":  "journal mode disabled", // never recorded
		"runtime_work_session":     "no coverage figures yet (journalctl serve writes them)",
	} {
		row, ok := rows[id]
		if !ok {
			t.Fatalf("no row for %s:\n%s", id, r.stdout)
		}
		if !strings.Contains(row, want) {
			t.Errorf("%s: row %q does not say %q", id, row, want)
		}
	}
	if row := rows["runtime_rate_limits"]; !strings.Contains(row, "storage kind memory") {
		t.Errorf("runtime_rate_limits: row %q does not say its storage is memory", row)
	}
	if row := rows["runtime_work_session"]; strings.Contains(row, "not_observed") {
		t.Errorf("a watched surface without figures is called not observed: %q", row)
	}
}
