package relay

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentruntime/statejournal/engine"
)

// Retention by record count stops at the relay's cursor; the byte budget
// passes it and that is counted, recorded for status, and seen by the
// relay, which resumes at the horizon and says how much it skipped.
func TestRetentionKeepsUnshippedRecordsUntilTheByteBudgetForcesThemOut(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	g, err := NewGuard(dir, reg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	seg := 64 << 10
	j := openJournal(t, dir, engine.WithSegmentSize(seg), engine.WithRetention(engine.Retention{MaxRecords: 1000}), engine.WithRetentionFloor(g.Floor()))
	writeN(t, j, 500)
	cfg := Config{URL: ns.ClientURL(), Host: "h", Logger: quietLogger(), Tick: 20 * time.Millisecond}
	r, _ := New(j, cfg)
	stop := runRelay(t, r)
	waitFor(t, "500 shipped", func() bool { return r.Status().Shipped == 500 })
	stop()
	r.Close()
	writeN(t, j, 4000) // unshipped
	rep, err := j.Compact(context.Background(), engine.CompactOptions{SealActive: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rep.Removed {
		if a.LastSequence > 500 {
			t.Fatalf("max_records removed %+v above the relay's cursor 500", a)
		}
	}
	if h := j.Status().Horizon; h > 501 {
		t.Fatalf("horizon %d passed the relay's cursor", h)
	}
	// The byte budget forces the unshipped records out.
	tight := engine.Retention{MaxBytes: engine.MinRetentionBytes(seg)}
	writeN(t, j, 6000)
	rep, err = j.Compact(context.Background(), engine.CompactOptions{SealActive: true, Retention: &tight})
	if err != nil {
		t.Fatal(err)
	}
	var unshipped uint64
	for _, a := range rep.Removed {
		unshipped += a.Unshipped
	}
	if unshipped == 0 {
		t.Fatalf("the byte budget removed no unshipped record: %+v", rep.Removed)
	}
	if v := testutil.ToFloat64(g.dropped); v != float64(unshipped) {
		t.Fatalf("state_journal_relay_dropped_unshipped_total %v, the report says %d", v, unshipped)
	}
	st, err := Describe(j)
	if err != nil || st == nil || st.Dropped == nil || st.Dropped.Records != unshipped || st.Shipped != 500 || st.LagRecords != j.Head()-500 {
		t.Fatalf("status from the files: %+v %v", st, err)
	}
	// The relay resumes at the horizon and reports what it skipped.
	horizon := j.Status().Horizon
	r2, _ := New(j, cfg)
	defer r2.Close()
	stop2 := runRelay(t, r2)
	waitFor(t, "the rest shipped", func() bool { return r2.Status().Shipped == j.Head() })
	stop2()
	s2 := r2.Status()
	if s2.SkippedUnshipped != horizon-1-500 || s2.Dropped == nil {
		t.Fatalf("relay status %+v: want %d skipped and the drop record", s2, horizon-1-500)
	}
	if v := testutil.ToFloat64(r2.m.skipped); v != float64(horizon-1-500) {
		t.Fatalf("state_journal_relay_skipped_unshipped_total %v", v)
	}
}
