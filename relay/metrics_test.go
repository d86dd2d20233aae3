package relay

import (
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The relay's and the guard's metrics pass `promtool check metrics`
// (CI installs promtool; elsewhere the test is skipped without it), and
// Close unregisters them so a restarted relay registers again.
func TestRelayMetricsPassPromtoolAndUnregisterOnClose(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	j := openJournal(t, dir)
	writeN(t, j, 10)
	reg := prometheus.NewRegistry()
	g, err := NewGuard(dir, reg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r, err := New(j, Config{URL: ns.ClientURL(), Host: "m", Registerer: reg, Logger: quietLogger(), Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, r)
	waitFor(t, "10 shipped", func() bool { return r.Status().Shipped == 10 })
	stop()
	r.m.errors.WithLabelValues("timeout") // a child, so the vector is checked too
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.Bytes()
	for _, name := range []string{"state_journal_relay_lag_records", "state_journal_relay_lag_seconds", "state_journal_relay_published_total",
		"state_journal_relay_dropped_unshipped_total", "state_journal_relay_publish_errors_total"} {
		if !bytes.Contains(body, []byte(name)) {
			t.Fatalf("/metrics lacks %s:\n%s", name, body)
		}
	}
	r.Close()
	r2, err := New(j, Config{URL: ns.ClientURL(), Host: "m", Registerer: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("a second relay on the same registry after Close: %v", err)
	}
	r2.Close()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed; .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
