// Package coveragebench measures what the coverage watcher costs the
// write path: append p99 at N writers while the runtime's files change at
// a given rate, with and without the watcher, in one run (rounds
// interleaved, so load from elsewhere hits both alike). The headline is
// the ratio of the two p99s (issue 12's target: under 1.05).
package coveragebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/bench/compactbench"
	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/bench/latency"
	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
)

// TargetP99Ratio is the bound on p99 with the watcher ÷ without.
const TargetP99Ratio = 1.05

// Config is one benchmark run.
type Config struct {
	Writers int
	// Rate is file changes per second, each with its record.
	Rate     int
	Duration time.Duration
	Rounds   int
	// Warmup runs one uncounted round of each mode first.
	Warmup bool
	// Lead is how long the files change before each round's writers
	// start, in every mode: the watcher's start (its first scan, the
	// gaps it persists at once, the first backfill of a surface that
	// becomes active) is what a server pays once, not while it runs for
	// days at the rate, so a round measures the watcher after it.
	Lead time.Duration
	Dir  string
	// Sync is the journal's sync policy (default always).
	Sync engine.SyncPolicy
}

// Round is one measurement of one mode.
type Round struct {
	Watcher bool `json:"watcher"`
	// Control marks the second set of rounds without the watcher.
	Control bool          `json:"control,omitempty"`
	Records uint64        `json:"records"`
	P50     time.Duration `json:"append_p50_ns"`
	P99     time.Duration `json:"append_p99_ns"`
	// Changes is the file changes made while the writers ran; Observed
	// and Matched what the watcher decided meanwhile, Pending what waits
	// for its window at the end (0 without the watcher).
	Changes  uint64 `json:"file_changes"`
	Observed uint64 `json:"observed"`
	Matched  uint64 `json:"matched"`
	Pending  int    `json:"pending"`
	// Dropped counts change records RecordAsync dropped (queue full).
	Dropped uint64 `json:"records_dropped"`
	// CPU is the process's CPU time (user+system) over the round, in
	// CPU-seconds per second of wall time: what the watcher costs shows
	// as the difference between the modes.
	CPU float64 `json:"cpu_per_second"`
	// Alloc is the heap allocated over the round in MiB per second, GCs
	// the garbage collections it took: garbage the watcher makes costs
	// the writers in collections and mark assists.
	Alloc float64 `json:"alloc_mib_per_second"`
	GCs   uint32  `json:"gcs"`

	hist *latency.Histogram
}

// Result is the run: every round, each mode pooled, and their ratios.
type Result struct {
	Config Config  `json:"config"`
	Rounds []Round `json:"rounds"`
	// Off and On are the append latency of every round of each mode (the
	// rounds' histograms merged): one round's p99 rests on its slowest
	// 1%, which a single compaction or fsync stall moves by tens of
	// percent; the pooled p99 rests on every round's. Ratio is On.P99 ÷
	// Off.P99; the other quantiles are there to read it against.
	Off   Quantiles `json:"without_watcher"`
	On    Quantiles `json:"with_watcher"`
	Ratio float64   `json:"p99_ratio"`
	// Low and High bound the 90% confidence interval of Ratio: the
	// ratio recomputed over resamples of the run's rounds (a bootstrap,
	// each resample drawing whole rounds, with replacement).
	Low  float64 `json:"p99_ratio_low"`
	High float64 `json:"p99_ratio_high"`
	// Noise is the control: the rounds without the watcher are two sets
	// run alike (A and B, interleaved with the watcher's rounds), and
	// Noise is B's pooled p99 ÷ A's, how far two identical modes differ
	// in this run.
	Noise float64 `json:"control_p99_ratio"`
	// MedianRatio is the median of the rounds' own p99 ratios (round i
	// with ÷ round i's two without), a second view of the same run.
	MedianRatio float64 `json:"median_round_p99_ratio"`
	// CPUOff and CPUOn are the mean CPU-seconds per second of each mode.
	CPUOff     float64 `json:"cpu_per_second_without_watcher"`
	CPUOn      float64 `json:"cpu_per_second_with_watcher"`
	ChangeRate float64 `json:"file_changes_per_second"`
}

// Quantiles are one mode's pooled append latency.
type Quantiles struct {
	P50  time.Duration `json:"append_p50_ns"`
	P90  time.Duration `json:"append_p90_ns"`
	P99  time.Duration `json:"append_p99_ns"`
	P999 time.Duration `json:"append_p999_ns"`
}

func quantilesOf(h *latency.Histogram) Quantiles {
	return Quantiles{P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), P999: h.Quantile(0.999)}
}

// Run measures cfg.Rounds rounds of three modes (without the watcher,
// with it, and without it again as the control), the order rotating from
// round to round so neither mode always follows the other, and reports
// the pooled p99 of each and their ratios.
func Run(cfg Config) (Result, error) {
	res := Result{Config: cfg}
	var offA, offB, on latency.Histogram
	var ratios []float64
	var cpuOff, cpuOn float64
	var changes uint64
	var wall time.Duration
	if cfg.Warmup {
		// One round of each mode first, not counted: page cache, file
		// system journal and CPU frequency settle.
		for _, w := range []bool{false, true} {
			if _, _, err := round(filepath.Join(cfg.Dir, fmt.Sprintf("warmup-%v", w)), cfg, w); err != nil {
				return res, err
			}
		}
	}
	const modeA, modeOn, modeB = 0, 1, 2
	hists := make([][3]*latency.Histogram, cfg.Rounds)
	for i := 0; i < cfg.Rounds; i++ {
		var p99 [3]time.Duration
		for k := range 3 {
			mode := (i + k) % 3
			r, d, err := round(filepath.Join(cfg.Dir, fmt.Sprintf("r%d-%d", i, mode)), cfg, mode == modeOn)
			if err != nil {
				return res, err
			}
			r.Control = mode == modeB
			res.Rounds = append(res.Rounds, r)
			changes += r.Changes
			wall += d
			p99[mode] = r.P99
			hists[i][mode] = r.hist
			switch mode {
			case modeOn:
				on.Merge(r.hist)
				cpuOn += r.CPU
			case modeA:
				offA.Merge(r.hist)
				cpuOff += r.CPU / 2
			case modeB:
				offB.Merge(r.hist)
				cpuOff += r.CPU / 2
			}
		}
		ratios = append(ratios, 2*float64(p99[modeOn])/float64(max(p99[modeA]+p99[modeB], 1)))
	}
	off := offA
	off.Merge(&offB)
	res.Off, res.On = quantilesOf(&off), quantilesOf(&on)
	res.Ratio = float64(res.On.P99) / float64(max(res.Off.P99, 1))
	res.Noise = float64(offB.Quantile(0.99)) / float64(max(offA.Quantile(0.99), 1))
	res.Low, res.High = bootstrap(hists, modeOn)
	sort.Float64s(ratios)
	if len(ratios) > 0 {
		res.MedianRatio = ratios[len(ratios)/2]
		res.CPUOff, res.CPUOn = cpuOff/float64(cfg.Rounds), cpuOn/float64(cfg.Rounds)
	}
	res.ChangeRate = float64(changes) / wall.Seconds()
	return res, nil
}

// bootstrap returns the 5th and 95th percentiles of the p99 ratio (the
// watcher's mode ÷ the two others pooled) over resamples of whole
// rounds: how far the ratio moves with which rounds the run happened to
// get. The resampling is seeded, so a run's interval is reproducible
// from its rounds.
func bootstrap(hists [][3]*latency.Histogram, on int) (lo, hi float64) {
	const n = 400
	if len(hists) < 2 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(hists))))
	ratios := make([]float64, n)
	var a, b latency.Histogram
	for k := range ratios {
		a, b = latency.Histogram{}, latency.Histogram{}
		for range hists {
			h := hists[rng.IntN(len(hists))]
			for m := range h {
				if m == on {
					a.Merge(h[m])
				} else {
					b.Merge(h[m])
				}
			}
		}
		ratios[k] = float64(a.Quantile(0.99)) / float64(max(b.Quantile(0.99), 1))
	}
	sort.Float64s(ratios)
	return ratios[n*5/100], ratios[n*95/100-1]
}

// Check is the verdict line of the ratio.
func (r Result) Check() string {
	v := "PASS"
	if r.Ratio >= TargetP99Ratio {
		v = "MISS"
	}
	ci := ""
	if r.High > 0 {
		ci = fmt.Sprintf(", 90%% interval %.3f–%.3f", r.Low, r.High)
	}
	return fmt.Sprintf("append p99 with the coverage watcher %s, without %s: %.3fx%s (target < %.2fx): %s", r.On.P99, r.Off.P99, r.Ratio, ci, TargetP99Ratio, v)
}

// round runs the writers for cfg.Duration on a fresh journal while a
// changer rewrites agent files (the runtime_agent_registry directory, one
// file per agent, atomic rename) and records each change, as the runtime
// does; with watcher the coverage watcher runs beside them.
func round(dir string, cfg Config, watcher bool) (Round, time.Duration, error) {
	r := Round{Watcher: watcher}
	root := dir
	agents := filepath.Join(root, ".tmp", "runtime", "agents")
	if err := os.MkdirAll(agents, 0o755); err != nil {
		return r, 0, err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Sync == "" {
		cfg.Sync = engine.SyncAlways
	}
	j, err := engine.Open(filepath.Join(dir, "journal"), engine.WithRoot(root), engine.WithLogger(log), engine.WithSync(cfg.Sync))
	if err != nil {
		return r, 0, err
	}
	defer j.Close()
	var w *coverage.Watcher
	if watcher {
		if w, err = coverage.Open(j, coverage.Config{Persist: true, Journal: true, Logger: log, Registerer: prometheus.NewRegistry()}); err != nil {
			return r, 0, err
		}
		defer w.Close()
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var changes atomic.Uint64
	var cwg sync.WaitGroup
	var changeErr atomic.Value
	var dropped atomic.Uint64
	// The runtime's modules change files at the rate, paced in ticks of
	// 1 ms (a thousand agents heartbeat at their own moments, not in
	// bursts), and record each change with RecordAsync (the non-blocking
	// path a runtime takes beside its own mutation), so the rate holds
	// whatever an fsync costs; a change whose record was dropped is
	// counted and shows as unjournaled.
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		began, n := time.Now(), 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// As many as the rate owes since the start: a late tick
			// catches up.
			for due := int(time.Since(began).Seconds() * float64(cfg.Rate)); n < due; {
				id := fmt.Sprintf("agent-%03d", n%200)
				b, _ := json.Marshal(map[string]any{"id": id, "beat": n, "capabilities": []string{"code", "review"}})
				p := filepath.Join(agents, id+".json")
				if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
					changeErr.CompareAndSwap(nil, err)
					return
				}
				if err := os.Rename(p+".tmp", p); err != nil {
					changeErr.CompareAndSwap(nil, err)
					return
				}
				if err := j.RecordAsync(engine.Change{Source: "runtime.agents", Surface: "runtime_agent_registry", ChangeType: "heartbeat",
					AggregateType: "agent", AggregateID: id, Metadata: map[string]any{coverage.MetadataKey: coverage.FingerprintOf(b)}}); err != nil {
					dropped.Add(1)
				}
				changes.Add(1)
				n++
			}
		}
	}()
	// The files change for Lead before the writers start (the watcher
	// past its start, see Config.Lead). Then the heap is collected, so a
	// round does not pay for the garbage of the one before (without it
	// the rounds after the watcher's ran 5% faster than the others
	// without it), and the file system is committed: the previous
	// round's writeback, the discards of its deleted journal and the
	// watcher's start-up writes would otherwise stall this round's
	// fsyncs.
	time.Sleep(cfg.Lead)
	runtime.GC()
	if err := host.Settle(dir); err != nil {
		close(stop)
		cwg.Wait()
		return r, 0, err
	}
	changes0, dropped0 := changes.Load(), dropped.Load()
	var obs0, matched0 uint64
	if w != nil {
		rep := w.Report()
		if s := rep.Surface("runtime_agent_registry"); s != nil {
			obs0, matched0 = s.Observed, s.Matched
		}
	}
	hs := make([]latency.Histogram, cfg.Writers)
	var wg sync.WaitGroup
	var errOnce atomic.Value
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start, cpu0 := time.Now(), host.CPUTime()
	deadline := start.Add(cfg.Duration)
	for i := 0; i < cfg.Writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := i; time.Now().Before(deadline); k += cfg.Writers {
				t := time.Now()
				if _, err := j.Record(ctx, compactbench.Heartbeat(k)); err != nil {
					errOnce.CompareAndSwap(nil, err)
					return
				}
				hs[i].Record(time.Since(t))
			}
		}(i)
	}
	wg.Wait()
	wall, cpu := time.Since(start), host.CPUTime()-cpu0
	runtime.ReadMemStats(&ms1)
	r.Alloc, r.GCs = float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20)/wall.Seconds(), ms1.NumGC-ms0.NumGC
	close(stop)
	cwg.Wait()
	if e := errOnce.Load(); e != nil {
		return r, 0, e.(error)
	}
	if e := changeErr.Load(); e != nil {
		return r, 0, e.(error)
	}
	all := new(latency.Histogram)
	for i := range hs {
		all.Merge(&hs[i])
	}
	r.hist, r.CPU = all, cpu.Seconds()/wall.Seconds()
	r.Records, r.P50, r.P99, r.Changes, r.Dropped = all.Count(), all.Quantile(0.5), all.Quantile(0.99), changes.Load()-changes0, dropped.Load()-dropped0
	if w != nil {
		rep := w.Report()
		if s := rep.Surface("runtime_agent_registry"); s != nil {
			r.Observed, r.Matched, r.Pending = s.Observed-obs0, s.Matched-matched0, s.Pending
		}
	}
	return r, wall, nil
}
