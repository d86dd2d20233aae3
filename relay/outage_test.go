package relay

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// While the NATS server is down the relay keeps its cursor, the lag grows
// in status and metrics, and when the server is back it ships the rest,
// each record once, although the outage outlasted the stream's dedupe
// window (200 ms) and the relay was restarted during it.
func TestAnOutageLongerThanTheDedupeWindowGrowsTheLagAndLeavesNoDuplicate(t *testing.T) {
	store := t.TempDir()
	ns := startNATS(t, store, 0)
	url := ns.ClientURL()
	dir := t.TempDir()
	j := openJournal(t, dir)
	cfg := Config{URL: url, Host: "node-a", Logger: quietLogger(), Tick: 20 * time.Millisecond, AckTimeout: 300 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, MaxInFlight: 16,
		Stream: StreamConfig{Duplicates: 200 * time.Millisecond, MaxAge: time.Hour}}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	r, err := New(j, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, r)
	writeN(t, j, 100)
	waitFor(t, "the first 100 shipped", func() bool { return r.Status().Shipped == 100 })
	tcpPort := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()
	writeN(t, j, 200)
	// The client learns of the lost connection on its own reader (a
	// moment after the server is gone), so the status converges: wait for
	// it, then nothing more may have shipped.
	waitFor(t, "the lag to reach 200 records, disconnected", func() bool {
		st := r.Status()
		return st.LagRecords == 200 && st.LagSeconds > 0 && !st.Connected
	})
	if st := r.Status(); st.Shipped != 100 || st.Connected {
		t.Fatalf("during the outage: %+v", st)
	}
	if v := testutil.ToFloat64(r.m.lagRecords); v != 200 {
		t.Fatalf("state_journal_relay_lag_records %v during the outage, want 200", v)
	}
	// Restart the relay during the outage, and outlast the dedupe window.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	time.Sleep(300 * time.Millisecond)
	r2, err := New(j, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	runRelay(t, r2)
	writeN(t, j, 50)
	startNATS(t, store, tcpPort)
	waitFor(t, "every record shipped after the outage", func() bool { return r2.Status().Shipped == 350 })
	waitFor(t, "the lag back to zero", func() bool { st := r2.Status(); return st.LagRecords == 0 && st.LagSeconds == 0 })
	checkExactlyOnce(t, readStream(t, url, DefaultStream), "node-a", 350)
}
