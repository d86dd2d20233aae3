package relay

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

// Guard holds the journal's retention back from the records the relay
// has not shipped: engine.WithRetentionFloor(g.Floor()) makes retention
// read the relay cursor (state/relay.json) before it removes an archive.
// Age and record-count retention stop below the cursor; only the byte
// budget passes it, and then the Guard says so: the engine logs a
// warning, the Guard counts state_journal_relay_dropped_unshipped_total
// and adds to state/relay-dropped.json, which status reports.
//
// The process that compacts installs it (journalctl serve,
// state-journal-compact), whether the relay runs inside it or in another
// process: the cursor file is the one place both read. Without a cursor
// file nothing is held.
type Guard struct {
	dir     string
	log     *slog.Logger
	reg     prometheus.Registerer
	dropped prometheus.Counter
}

// NewGuard returns a guard for data directory dir, its counter
// registered on reg (nil: none).
func NewGuard(dir string, reg prometheus.Registerer, log *slog.Logger) (*Guard, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Guard{dir: dir, log: log, reg: reg, dropped: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_relay_dropped_unshipped_total",
		Help: "Records retention removed, forced by its byte budget, before the relay shipped them.",
	})}
	if reg != nil {
		if err := reg.Register(g.dropped); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Close unregisters the counter.
func (g *Guard) Close() {
	if g.reg != nil {
		g.reg.Unregister(g.dropped)
	}
}

// Floor is the engine hook.
func (g *Guard) Floor() engine.RetentionFloor {
	var last string // the journal id retention last named, for Dropped
	var mu sync.Mutex
	return engine.RetentionFloor{Name: "relay",
		Shipped: func(id string) (uint64, error) {
			mu.Lock()
			last = id
			mu.Unlock()
			return g.shipped(id)
		},
		Dropped: func(a engine.RemovedArchive) {
			mu.Lock()
			id := last
			mu.Unlock()
			g.onDropped(id, a)
		}}
}

func (g *Guard) shipped(id string) (uint64, error) {
	c, ok, err := ReadCursor(g.dir, id)
	if err != nil {
		return 0, err
	}
	if !ok {
		return math.MaxUint64, nil // no relay: nothing to hold
	}
	return c.Sequence, nil
}

func (g *Guard) onDropped(id string, a engine.RemovedArchive) {
	g.dropped.Add(float64(a.Unshipped))
	d, _, err := ReadDropped(g.dir, id)
	if err != nil {
		g.log.Warn("relay: the drop record is not believed; starting it again", "err", err)
		d = Dropped{}
	}
	d.JournalID = id
	d.Records += a.Unshipped
	d.LastArchive, d.LastFirst, d.LastLast, d.LastAt = a.Name, a.FirstSequence, a.LastSequence, time.Now().UTC()
	if err := writeDropped(g.dir, d); err != nil {
		g.log.Error("relay: cannot record the unshipped records retention removed", "err", err, "records", a.Unshipped)
	}
}

// Describe reports the relay's state from the files alone (for
// state-journal-status in another process than the relay): the cursor,
// the lag against the journal j, and what retention removed unshipped.
// It returns nil, nil when this journal was never relayed.
func Describe(j *engine.Journal) (*Status, error) {
	id := j.Status().JournalID
	if id == "" {
		return nil, nil
	}
	c, ok, err := ReadCursor(j.Dir(), id)
	if err != nil {
		return nil, err
	}
	d, dok, err := ReadDropped(j.Dir(), id)
	if err != nil {
		return nil, err
	}
	if !ok && !dok {
		return nil, nil
	}
	st := &Status{Host: c.Host, Stream: c.Stream, Shipped: c.Sequence, StreamSequence: c.StreamSequence, Head: j.Head()}
	if dok {
		st.Dropped = &d
	}
	if st.Head > st.Shipped {
		st.LagRecords = st.Head - st.Shipped
		// The oldest unshipped record's age; below the horizon the
		// relay will skip (and report) what retention removed.
		res, err := j.Query(context.Background(), engine.Query{After: c.Sequence, HasAfter: true, Limit: 1})
		if err == nil && len(res.Changes) > 0 {
			st.LagSeconds = max(time.Since(res.Changes[0].CommittedAt).Seconds(), 0)
		}
	}
	return st, nil
}
