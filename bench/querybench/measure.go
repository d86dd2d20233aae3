package querybench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// Options says how many times each figure is measured. Zero fields take
// the defaults in brackets.
type Options struct {
	RareRuns   int // newest-50 rare-surface queries [200]
	StaleRuns  int // Stale calls [10,000]
	CursorRuns int // 1,000-record cursor pages [50]
	ScanRuns   int // whole-surface scans [3]
	OpenRuns   int // opens of each kind [3]
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.RareRuns, 200)
	def(&o.StaleRuns, 10_000)
	def(&o.CursorRuns, 50)
	def(&o.ScanRuns, 3)
	def(&o.OpenRuns, 3)
	return o
}

// The queries Measure times.
const (
	// RareLimit is how many of the rare surface's newest records the rare
	// query asks for.
	RareLimit = 50
	// StaleLag is how far behind the head the Stale cursor is.
	StaleLag = 100
	// CursorPage is the cursor query's page: Query{After: head-CursorPage,
	// Limit: CursorPage}.
	CursorPage = 1000
)

// RareQuery is the query a dashboard sends for a rarely changing surface:
// its newest RareLimit records.
func RareQuery() engine.Query {
	return engine.Query{Surfaces: []string{RareSurface}, NewestFirst: true, Limit: RareLimit}
}

// CursorQuery is the query a follower sends after falling CursorPage
// records behind head.
func CursorQuery(head uint64) engine.Query {
	return engine.Query{After: head - min(head, CursorPage), Limit: CursorPage}
}

// ScanQuery reads every record of ScanSurface.
func ScanQuery() engine.Query {
	return engine.Query{Surfaces: []string{ScanSurface}, Limit: -1}
}

// Summary describes repeated timings of one operation.
type Summary struct {
	Runs   int           `json:"runs"`
	Median time.Duration `json:"median_ns"`
	P99    time.Duration `json:"p99_ns"`
	Min    time.Duration `json:"min_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Summarize sorts d (in place) and returns its median, p99 (nearest
// rank), minimum and maximum.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	rank := (len(d)*99 + 99) / 100 // ceil(0.99 n)
	return Summary{Runs: len(d), Median: d[len(d)/2], P99: d[rank-1], Min: d[0], Max: d[len(d)-1]}
}

// OpenMode is one of the ways Measure opens a dataset.
type OpenMode int

const (
	// WithoutCheckpoint deletes the index checkpoint first: Open rebuilds
	// the index from the hot log and the archives' footers.
	WithoutCheckpoint OpenMode = iota
	// WithCheckpoint opens with the checkpoint the previous Close wrote,
	// files in the page cache.
	WithCheckpoint
	// ColdWithCheckpoint opens with the checkpoint after evicting the
	// dataset's files from the page cache: a restart after the files
	// left memory.
	ColdWithCheckpoint
)

// String names the mode as benchmark names spell it.
func (m OpenMode) String() string {
	switch m {
	case WithoutCheckpoint:
		return "without"
	case WithCheckpoint:
		return "with"
	case ColdWithCheckpoint:
		return "with-cold"
	}
	return fmt.Sprintf("OpenMode(%d)", int(m))
}

// PrepareOpen readies ds for an Open in mode m: it deletes the checkpoint
// (WithoutCheckpoint), or makes sure one exists (by opening and closing
// once) and, for ColdWithCheckpoint, evicts the dataset's files from the
// page cache. Every journal on ds must be closed.
func PrepareOpen(ds *Dataset, m OpenMode) error {
	if m == WithoutCheckpoint {
		if err := os.Remove(ds.CheckpointPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if _, err := os.Stat(ds.CheckpointPath()); errors.Is(err, os.ErrNotExist) {
		j, err := ds.Open()
		if err != nil {
			return err
		}
		if err := j.Close(); err != nil {
			return err
		}
		if _, err := os.Stat(ds.CheckpointPath()); err != nil {
			return fmt.Errorf("close wrote no index checkpoint: %w", err)
		}
	}
	if m == ColdWithCheckpoint {
		return evictDir(ds.Dir)
	}
	return nil
}

// OpenFigures are the figures of repeated opens of one mode.
type OpenFigures struct {
	Time Summary `json:"time"`
	// RSSGrowth is the largest growth of the process's resident set across
	// one Open, after a GC that returned free memory to the OS.
	RSSGrowth int64 `json:"rss_growth_bytes"`
	// Heap is the live heap the open journal holds (after a GC), the
	// largest over the runs.
	Heap int64  `json:"heap_bytes"`
	Err  string `json:"error,omitempty"`
}

// MeasureOpen opens and closes ds runs times in mode m and times Open.
// Close (which writes the checkpoint) is not timed.
func MeasureOpen(ds *Dataset, m OpenMode, runs int) (OpenFigures, error) {
	var f OpenFigures
	times := make([]time.Duration, 0, runs)
	for i := 0; i < runs; i++ {
		if err := PrepareOpen(ds, m); err != nil {
			return f, fmt.Errorf("prepare open %s checkpoint: %w", m, err)
		}
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap0, rss0 := ms.HeapAlloc, RSS()
		t0 := time.Now()
		j, err := ds.Open()
		dt := time.Since(t0)
		if err != nil {
			return f, fmt.Errorf("open %s checkpoint: %w", m, err)
		}
		times = append(times, dt)
		f.RSSGrowth = max(f.RSSGrowth, RSS()-rss0)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		f.Heap = max(f.Heap, int64(ms.HeapAlloc)-int64(heap0))
		if h := j.Head(); h != ds.Head {
			j.Close()
			return f, fmt.Errorf("open %s checkpoint: head %d, want %d", m, h, ds.Head)
		}
		if err := j.Close(); err != nil {
			return f, fmt.Errorf("close after open %s checkpoint: %w", m, err)
		}
	}
	f.Time = Summarize(times)
	return f, nil
}

// Result holds every figure of one dataset.
type Result struct {
	Records      uint64        `json:"records"`
	Archives     int           `json:"archives"`
	ArchiveBytes int64         `json:"archive_bytes"`
	HotRecords   int           `json:"hot_records"`
	Surfaces     int           `json:"surfaces"`
	BuildTime    time.Duration `json:"build_ns"`

	Rare         Summary `json:"rare_newest_50"`
	RareReturned int     `json:"rare_returned"`
	Stale        Summary `json:"stale"`
	StaleItems   int     `json:"stale_items"`
	Cursor       Summary `json:"cursor_1000"`
	Scan         Summary `json:"surface_scan"`
	ScanReturned int     `json:"surface_scan_returned"`

	OpenWithout OpenFigures `json:"open_without_checkpoint"`
	OpenWith    OpenFigures `json:"open_with_checkpoint"`
	OpenCold    OpenFigures `json:"open_with_checkpoint_cold"`
}

// Measure times the queries and opens on ds (which no journal may hold
// open) and checks every answer against what the generator wrote. A wrong
// answer is an error: a fast wrong query proves nothing.
func Measure(ctx context.Context, ds *Dataset, o Options) (Result, error) {
	o = o.withDefaults()
	r := Result{
		Records: ds.Head, Archives: ds.Archives, ArchiveBytes: ds.ArchiveBytes, HotRecords: ds.Config.HotRecords,
		Surfaces: ds.Registry.Len(), BuildTime: ds.ArchiveTime + ds.HotTime,
	}
	var err error
	if r.OpenWithout, err = MeasureOpen(ds, WithoutCheckpoint, o.OpenRuns); err != nil {
		return r, err
	}
	if r.OpenWith, err = MeasureOpen(ds, WithCheckpoint, o.OpenRuns); err != nil {
		return r, err
	}
	if r.OpenCold, err = MeasureOpen(ds, ColdWithCheckpoint, o.OpenRuns); err != nil {
		// Not every platform can evict; the other figures still stand.
		r.OpenCold = OpenFigures{Err: err.Error()}
	}

	j, err := ds.Open()
	if err != nil {
		return r, err
	}
	defer j.Close()
	head := j.Head()

	rare := RareQuery()
	want := ds.NewestRare(RareLimit)
	check := func(res engine.Result) error {
		if len(res.Changes) != len(want) {
			return fmt.Errorf("rare query returned %d records, want %d", len(res.Changes), len(want))
		}
		for i, c := range res.Changes {
			if c.Sequence != want[i] || c.Surface != RareSurface {
				return fmt.Errorf("rare query record %d is %s #%d, want %s #%d", i, c.Surface, c.Sequence, RareSurface, want[i])
			}
		}
		return nil
	}
	if r.Rare, err = timeRuns(o.RareRuns, func() error {
		res, err := j.Query(ctx, rare)
		if err == nil {
			r.RareReturned = len(res.Changes)
			err = check(res)
		}
		return err
	}); err != nil {
		return r, err
	}

	since := head - min(head, StaleLag)
	if r.Stale, err = timeRuns(o.StaleRuns, func() error {
		st, err := j.Stale(since)
		if err == nil {
			r.StaleItems = len(st.Snapshots) + len(st.Surfaces)
			if st.Head != head || len(st.Surfaces) == 0 {
				err = fmt.Errorf("stale since %d: head %d (want %d), %d surfaces", since, st.Head, head, len(st.Surfaces))
			}
		}
		return err
	}); err != nil {
		return r, err
	}

	cq := CursorQuery(head)
	if r.Cursor, err = timeRuns(o.CursorRuns, func() error {
		res, err := j.Query(ctx, cq)
		if err == nil && (len(res.Changes) != CursorPage || res.Changes[0].Sequence != cq.After+1) {
			err = fmt.Errorf("cursor query after %d returned %d records", cq.After, len(res.Changes))
		}
		return err
	}); err != nil {
		return r, err
	}

	sq := ScanQuery()
	if r.Scan, err = timeRuns(o.ScanRuns, func() error {
		res, err := j.Query(ctx, sq)
		if err == nil {
			r.ScanReturned = len(res.Changes)
			if uint64(len(res.Changes)) != ds.Counts[ScanSurface] {
				err = fmt.Errorf("scan of %s returned %d records, the generator wrote %d", ScanSurface, len(res.Changes), ds.Counts[ScanSurface])
			}
		}
		return err
	}); err != nil {
		return r, err
	}
	return r, j.Close()
}

// timeRuns calls f once to warm up, then runs times, timing each call.
func timeRuns(runs int, f func() error) (Summary, error) {
	if err := f(); err != nil {
		return Summary{}, err
	}
	d := make([]time.Duration, runs)
	for i := range d {
		t0 := time.Now()
		err := f()
		d[i] = time.Since(t0)
		if err != nil {
			return Summary{}, err
		}
	}
	return Summarize(d), nil
}
