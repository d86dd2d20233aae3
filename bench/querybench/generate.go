package querybench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// Defaults of Config.
const (
	DefaultArchiveRecords = 65_536
	// DefaultHotRecords is about one full 8 MiB hot segment of this
	// workload: what automatic compaction leaves in the hot log.
	DefaultHotRecords = 25_000
	DefaultRareEvery  = 20_000
	DefaultSurfaces   = 44
	DefaultAggregates = 1_000
	DefaultInterval   = time.Millisecond
)

// ErrConfig matches a Config that cannot be generated.
var ErrConfig = errors.New("querybench: bad config")

// Config describes the journal Generate builds. Zero fields take the
// defaults above.
type Config struct {
	// Records is the journal's size: archived records plus the hot tail.
	Records int
	// ArchiveRecords is the number of records per archive (the last one
	// may hold fewer).
	ArchiveRecords int
	// HotRecords is how many of the newest records go through the engine's
	// write path into the hot log; negative means none. It is clipped to
	// Records.
	HotRecords int
	// RareEvery: the rare surface holds the records whose sequence is a
	// multiple of RareEvery.
	RareEvery int
	// Surfaces is the number of registered surfaces (at least 6): four hot
	// heartbeat surfaces, the rare one, and ordinary ones.
	Surfaces int
	// Aggregates is the number of aggregates per hot surface.
	Aggregates int
	// Workers is how many archives are written at once (default
	// GOMAXPROCS).
	Workers int
	// Seed varies the content; the same Seed gives the same records.
	Seed uint64
	// Interval is the occurred_at distance between consecutive records;
	// the newest record is stamped with the time Generate starts.
	Interval time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Records <= 0 {
		return c, fmt.Errorf("%w: Records %d must be positive", ErrConfig, c.Records)
	}
	if c.ArchiveRecords == 0 {
		c.ArchiveRecords = DefaultArchiveRecords
	}
	switch {
	case c.HotRecords == 0:
		c.HotRecords = DefaultHotRecords
	case c.HotRecords < 0:
		c.HotRecords = 0
	}
	c.HotRecords = min(c.HotRecords, c.Records)
	if c.RareEvery == 0 {
		c.RareEvery = DefaultRareEvery
	}
	if c.Surfaces == 0 {
		c.Surfaces = DefaultSurfaces
	}
	if c.Aggregates == 0 {
		c.Aggregates = DefaultAggregates
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	switch {
	case c.ArchiveRecords < 1:
		return c, fmt.Errorf("%w: ArchiveRecords %d must be positive", ErrConfig, c.ArchiveRecords)
	case c.RareEvery < 2:
		return c, fmt.Errorf("%w: RareEvery %d must be at least 2", ErrConfig, c.RareEvery)
	case c.Surfaces < 6:
		return c, fmt.Errorf("%w: Surfaces %d must be at least 6", ErrConfig, c.Surfaces)
	case c.Aggregates < 1:
		return c, fmt.Errorf("%w: Aggregates %d must be positive", ErrConfig, c.Aggregates)
	}
	return c, nil
}

// Dataset is a generated journal on disk.
type Dataset struct {
	// Dir is the journal's data directory.
	Dir string
	// Root is the runtime root; it holds surfaces.yaml.
	Root string
	// Config is the configuration it was built with, defaults filled in.
	Config Config
	// Registry is the registry the records name (loaded from
	// Root/surfaces.yaml); every Open must use it.
	Registry *registry.Registry
	// Head is the newest sequence (= Config.Records).
	Head uint64
	// Archives is the number of archive files, ArchiveBytes their size.
	Archives     int
	ArchiveBytes int64
	// Counts is the number of records per surface.
	Counts map[string]uint64
	// ArchiveTime is the wall time spent writing the archives, HotTime
	// the time spent writing the hot tail through the engine.
	ArchiveTime, HotTime time.Duration
}

// Open opens the dataset's journal for writing with its registry and
// root; extra options are applied after those.
func (d *Dataset) Open(extra ...engine.Option) (*engine.Journal, error) {
	opts := append([]engine.Option{
		engine.WithRegistry(d.Registry),
		engine.WithRoot(d.Root),
		engine.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}, extra...)
	return engine.Open(d.Dir, opts...)
}

// CheckpointPath is where the engine keeps the index checkpoint.
func (d *Dataset) CheckpointPath() string {
	return filepath.Join(d.Dir, "state", "index.ckpt")
}

// NewestRare returns the sequences of the newest n records of RareSurface,
// newest first: the answer a newest-first rare query must give.
func (d *Dataset) NewestRare(n int) []uint64 {
	every := uint64(d.Config.RareEvery)
	var out []uint64
	for s := d.Head / every * every; s > 0 && len(out) < n; s -= every {
		out = append(out, s)
	}
	return out
}

// Generate builds a journal of cfg.Records records in dir (created if
// needed; it must hold no journal yet) and its registry in root. See the
// package documentation for the layout and the workload.
func Generate(dir, root string, cfg Config) (*Dataset, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := newGenerator(cfg, time.Now())
	archDir := filepath.Join(dir, "archive")
	for _, d := range []string{archDir, filepath.Join(dir, "hot"), filepath.Join(dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if len(ents) > 0 {
			return nil, fmt.Errorf("%w: %s already holds a journal (%s is not empty)", ErrConfig, dir, d)
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	// The archives carry the journal id, as compaction's do.
	if g.journalID, err = engine.InitDir(dir); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	regPath := filepath.Join(root, "surfaces.yaml")
	if err := os.WriteFile(regPath, registryYAML(g.specs), 0o644); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	reg, err := registry.Load(regPath)
	if err != nil {
		return nil, fmt.Errorf("generate: load the generated registry: %w", err)
	}
	ds := &Dataset{Dir: dir, Root: root, Config: cfg, Registry: reg, Head: uint64(cfg.Records), Counts: map[string]uint64{}}

	archived := uint64(cfg.Records - cfg.HotRecords)
	t0 := time.Now()
	counts, bytes, n, err := g.writeArchives(archDir, archived)
	if err != nil {
		return nil, err
	}
	ds.ArchiveTime = time.Since(t0)
	ds.Archives, ds.ArchiveBytes = n, bytes

	// The hot log continues after the archives: tidwall/wal takes the
	// first index from the first segment's name.
	seg := filepath.Join(dir, "hot", segment.HotSegmentName(archived+1))
	if err := os.WriteFile(seg, nil, 0o640); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	t0 = time.Now()
	hotCounts, err := g.writeHot(ds, archived+1)
	if err != nil {
		return nil, err
	}
	ds.HotTime = time.Since(t0)
	for i, s := range g.specs {
		if c := counts[i] + hotCounts[i]; c > 0 {
			ds.Counts[s.id] = c
		}
	}
	return ds, nil
}

// writeArchives writes sequences 1..archived as archives of
// ArchiveRecords, Workers at a time. It returns the records per surface
// (indexed like g.specs), the bytes written and the number of archives.
func (g *generator) writeArchives(dir string, archived uint64) ([]uint64, int64, int, error) {
	per := uint64(g.cfg.ArchiveRecords)
	n := int((archived + per - 1) / per)
	jobs := make(chan int)
	type result struct {
		counts []uint64
		bytes  int64
		err    error
	}
	results := make(chan result, g.cfg.Workers)
	var wg sync.WaitGroup
	for w := 0; w < g.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{counts: make([]uint64, len(g.specs))}
			for k := range jobs {
				if r.err != nil {
					continue
				}
				first := uint64(k)*per + 1
				last := min(first+per-1, archived)
				f, err := g.writeArchive(filepath.Join(dir, archive.FileName(first, last)), first, last, r.counts)
				r.bytes += f.FileBytes
				r.err = err
			}
			results <- r
		}()
	}
	for k := 0; k < n; k++ {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	close(results)
	counts := make([]uint64, len(g.specs))
	var bytes int64
	var errs []error
	for r := range results {
		for i, c := range r.counts {
			counts[i] += c
		}
		bytes += r.bytes
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, 0, fmt.Errorf("generate archives: %w", err)
	}
	return counts, bytes, n, nil
}

// writeArchive writes sequences first..last to one archive, adding each
// record to counts.
func (g *generator) writeArchive(path string, first, last uint64, counts []uint64) (archive.Footer, error) {
	seq := first - 1
	var buf []byte
	var firstErr error
	return archive.Write(path, func() (archive.Record, bool, error) {
		if seq == last {
			return archive.Record{}, false, firstErr
		}
		seq++
		r := g.record(seq)
		counts[r.spec]++
		var err error
		buf, err = r.change.AppendJSON(buf[:0], false)
		if err != nil {
			return archive.Record{}, false, err
		}
		if r.heartbeat {
			buf = appendHeartbeatMetadata(buf[:len(buf)-1], r.pid)
		}
		return archive.Record{Seq: seq, Time: r.change.OccurredAt.UnixNano(), Label: r.change.Surface, Payload: buf}, true, nil
	}, archive.WriterOptions{JournalID: g.journalID, RangeFirst: first, RangeLast: last})
}

// writeHot writes the hot tail, sequences from..Head, through the
// engine's RecordBatch and closes the journal (which writes the index
// checkpoint). It returns the records per surface.
func (g *generator) writeHot(ds *Dataset, from uint64) ([]uint64, error) {
	counts := make([]uint64, len(g.specs))
	if from > ds.Head {
		return counts, nil
	}
	j, err := ds.Open(engine.WithSync(engine.SyncNone))
	if err != nil {
		return nil, fmt.Errorf("generate hot tail: open: %w", err)
	}
	if h := j.Head(); h != from-1 {
		j.Close()
		return nil, fmt.Errorf("generate hot tail: the journal opened at head %d, want %d", h, from-1)
	}
	const batch = 1000
	cs := make([]engine.Change, 0, batch)
	ctx := context.Background()
	for seq := from; seq <= ds.Head; {
		cs = cs[:0]
		start := seq
		for ; seq <= ds.Head && len(cs) < batch; seq++ {
			r := g.record(seq)
			counts[r.spec]++
			if r.heartbeat {
				r.change.Metadata = heartbeatMetadata(r.pid)
			}
			r.change.EventID = "" // the journal assigns it, as for any writer
			cs = append(cs, r.change)
		}
		rcs, err := j.RecordBatch(ctx, cs)
		if err == nil && (len(rcs) != len(cs) || rcs[0].Sequence != start) {
			err = fmt.Errorf("a batch of %d records from sequence %d got %d receipts", len(cs), start, len(rcs))
			if len(rcs) > 0 {
				err = fmt.Errorf("%w, the first with sequence %d", err, rcs[0].Sequence)
			}
		}
		if err != nil {
			j.Close()
			return nil, fmt.Errorf("generate hot tail: %w", err)
		}
	}
	if err := j.Close(); err != nil {
		return nil, fmt.Errorf("generate hot tail: close: %w", err)
	}
	return counts, nil
}

// heartbeatMetadata is the metadata of a heartbeat, as bench/workload's
// heartbeat carries it.
func heartbeatMetadata(pid int) map[string]any {
	return map[string]any{"host": "bench-host-01", "pid": pid, "state": "running"}
}

// appendHeartbeatMetadata appends the stored form of heartbeatMetadata(pid)
// and the closing brace: byte for byte what AppendJSON writes for it
// (encoding/json sorts map keys), without a map and reflection per record.
func appendHeartbeatMetadata(dst []byte, pid int) []byte {
	dst = append(dst, `,"metadata":{"host":"bench-host-01","pid":`...)
	dst = strconv.AppendInt(dst, int64(pid), 10)
	return append(dst, `,"state":"running"}}`...)
}
