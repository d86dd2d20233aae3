package querybench

import (
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// generator turns a sequence into its record. It is immutable after
// newGenerator and used by many goroutines at once.
type generator struct {
	cfg     Config
	specs   []*surfaceSpec
	hot     []int // indexes of the hot surfaces in specs
	hotCum  []int // cumulative heartbeat weights of hot, ending at 100
	nonRare []int // indexes of every surface but the rare one
	rare    int
	aggIDs  [][]string // per surface, the aggregate ids it uses
	start   time.Time  // occurred_at of sequence 0
	// journalID is the id of the journal the archives belong to
	// (engine.InitDir).
	journalID engine.JournalID
}

// otherAggregates is the number of aggregates per ordinary surface.
const otherAggregates = 200

func newGenerator(cfg Config, newest time.Time) *generator {
	g := &generator{cfg: cfg, specs: buildSurfaces(cfg.Surfaces - 5)}
	g.start = newest.UTC().Add(-time.Duration(cfg.Records) * cfg.Interval)
	sum := 0
	for i, s := range g.specs {
		n := otherAggregates
		switch s.kind {
		case kindHot:
			g.hot = append(g.hot, i)
			sum += s.hbWeight
			g.hotCum = append(g.hotCum, sum)
			n = cfg.Aggregates
		case kindRare:
			g.rare = i
			n = 0
		}
		if s.kind != kindRare {
			g.nonRare = append(g.nonRare, i)
		}
		ids := make([]string, n)
		for k := range ids {
			ids[k] = s.aggPrefix + strconv.Itoa(k)
		}
		g.aggIDs = append(g.aggIDs, ids)
	}
	return g
}

// genRecord is one generated record.
type genRecord struct {
	change    engine.Change
	spec      int  // index of its surface in generator.specs
	heartbeat bool // it carries heartbeatMetadata(pid), left out of change
	pid       int
}

// record returns the record with sequence seq. It depends only on seq,
// Config and the generator's start time.
func (g *generator) record(seq uint64) genRecord {
	d := draws{s: g.cfg.Seed*0x9e3779b97f4a7c15 ^ seq*0xd1b54a32d192ed03}
	at := g.start.Add(time.Duration(seq) * g.cfg.Interval)
	r := genRecord{change: engine.Change{
		SchemaVersion: engine.SchemaVersion,
		EventID:       uuidV7(at, &d),
		OccurredAt:    at,
		Severity:      "info",
	}}
	c := &r.change
	var s *surfaceSpec
	switch {
	case seq%uint64(g.cfg.RareEvery) == 0:
		r.spec = g.rare
		s = g.specs[r.spec]
		n := seq / uint64(g.cfg.RareEvery)
		c.ChangeType = s.changeTypes[n%uint64(len(s.changeTypes))]
		c.AggregateID = s.aggPrefix + strconv.FormatUint(n, 10)
		c.Severity = "warning"
		c.CorrelationID = "incident-" + strconv.FormatUint(n, 10)
	case d.intn(100) < 90:
		w := d.intn(100)
		k := 0
		for g.hotCum[k] <= w {
			k++
		}
		r.spec = g.hot[k]
		s = g.specs[r.spec]
		agg := d.intn(g.cfg.Aggregates)
		c.ChangeType = "heartbeat"
		c.AggregateID = g.aggIDs[r.spec][agg]
		r.heartbeat, r.pid = true, 10000+agg
	default:
		r.spec = g.nonRare[d.intn(len(g.nonRare))]
		s = g.specs[r.spec]
		c.ChangeType = s.changeTypes[d.intn(len(s.changeTypes))]
		ids := g.aggIDs[r.spec]
		c.AggregateID = ids[d.intn(len(ids))]
		switch v := d.intn(100); {
		case v < 2:
			c.Severity = "error"
		case v < 8:
			c.Severity = "warning"
		}
		if d.intn(10) < 3 {
			c.CorrelationID = "req-" + strconv.FormatUint(d.next()>>24, 36)
		}
	}
	c.Source = s.owner
	c.Surface = s.id
	c.AggregateType = s.aggType
	c.ChangedSurfaces = s.selfList
	c.SnapshotHint = s.hintName
	return r
}

// draws is a splitmix64 stream: cheap, and seeded per record so that a
// record depends on its sequence only, whichever goroutine builds it.
type draws struct{ s uint64 }

func (d *draws) next() uint64 {
	d.s += 0x9e3779b97f4a7c15
	z := d.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (d *draws) intn(n int) int { return int(d.next() % uint64(n)) }

// uuidV7 formats a UUIDv7 for time at with random bits from d, as the
// journal would assign it.
func uuidV7(at time.Time, d *draws) string {
	var u [16]byte
	ms := uint64(at.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	r1, r2 := d.next(), d.next()
	for i := 6; i < 16; i++ {
		if i < 8 {
			u[i] = byte(r1 >> (8 * i))
		} else {
			u[i] = byte(r2 >> (8 * (i - 8)))
		}
	}
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	const hex = "0123456789abcdef"
	k := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[k] = '-'
			k++
		}
		out[k], out[k+1] = hex[b>>4], hex[b&0xf]
		k += 2
	}
	return string(out[:])
}
