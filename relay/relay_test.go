package relay

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentruntime/statejournal/engine"
)

func openJournal(t testing.TB, dir string, opts ...engine.Option) *engine.Journal {
	t.Helper()
	j, err := engine.Open(dir, append([]engine.Option{engine.WithSync(engine.SyncNone), engine.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestRecordsAreRelayedInOrderWithSubjectsHeadersAndACursor(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	j := openJournal(t, dir)
	writeN(t, j, 300)
	reg := prometheus.NewRegistry()
	r, err := New(j, Config{URL: ns.ClientURL(), Host: "node-a", Registerer: reg, Logger: quietLogger(), Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := runRelay(t, r)
	writeN(t, j, 200) // while it runs
	waitFor(t, "every record shipped", func() bool { return r.Status().Shipped == 500 })
	waitFor(t, "lag measured as zero", func() bool { st := r.Status(); return st.LagRecords == 0 && st.Head == 500 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, ns.ClientURL(), DefaultStream)
	checkExactlyOnce(t, msgs, "node-a", 500)
	if msgs[0].subject != "state.node-a.runtime_work_session.heartbeat" {
		t.Fatalf("subject %q", msgs[0].subject)
	}
	res, _ := j.Query(context.Background(), engine.Query{After: 0, HasAfter: true, Limit: 1})
	if msgs[0].msgID != res.Changes[0].EventID {
		t.Fatalf("Nats-Msg-Id %q, want the event_id %q", msgs[0].msgID, res.Changes[0].EventID)
	}
	c, ok, err := ReadCursor(dir, j.Status().JournalID)
	if err != nil || !ok || c.Sequence != 500 || c.StreamSequence != msgs[len(msgs)-1].seq {
		t.Fatalf("cursor %+v ok=%v err=%v", c, ok, err)
	}
	if v := testutil.ToFloat64(r.m.published); v != 500 {
		t.Fatalf("published_total %v", v)
	}
}
