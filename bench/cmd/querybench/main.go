package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/bench/querybench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("querybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sizes    = fs.String("sizes", "1M,2M,5M,10M", "journal sizes in records, comma-separated (200k, 10M, ...)")
		smoke    = fs.Bool("smoke", false, "few runs of each figure, on one 200k-record journal unless -sizes is given: a few seconds, for CI")
		dir      = fs.String("dir", querybench.DefaultDir(), "where the journals are built (removed at the end unless -keep); env "+querybench.DirEnv)
		keep     = fs.Bool("keep", false, "keep the generated journals")
		asJSON   = fs.Bool("json", false, "print the figures as JSON instead of the table")
		outFile  = fs.String("o", "", "also write the JSON figures to this file")
		strict   = fs.Bool("strict", false, "exit 1 when a target is missed")
		hot      = fs.Int("hot", querybench.DefaultHotRecords, "records in the hot log (the rest are archived); -1 for none")
		workers  = fs.Int("workers", 0, "archives written at once (default GOMAXPROCS)")
		rareRuns = fs.Int("rare-runs", 200, "timed rare-surface queries per size")
		openRuns = fs.Int("open-runs", 3, "timed opens per size and mode")
		cpuprof  = fs.String("cpuprofile", "", "write a CPU profile of the measurements (not of the generation) to this file")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	list, err := querybench.ParseSizes(*sizes)
	opts := querybench.Options{RareRuns: *rareRuns, OpenRuns: *openRuns}
	if *smoke {
		sizesSet := false
		fs.Visit(func(f *flag.Flag) { sizesSet = sizesSet || f.Name == "sizes" })
		if !sizesSet {
			list, err = []int{200_000}, nil
		}
		opts = querybench.Options{RareRuns: 50, StaleRuns: 2000, CursorRuns: 10, ScanRuns: 1, OpenRuns: 1}
	}
	if err != nil {
		fmt.Fprintln(stderr, "querybench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cache, err := querybench.NewCache(*dir, querybench.Config{HotRecords: *hot, Workers: *workers})
	if err != nil {
		fmt.Fprintln(stderr, "querybench:", err)
		return 1
	}
	defer func() {
		if *keep {
			fmt.Fprintln(stderr, "querybench: kept the journals in", cache.Root())
			return
		}
		if err := cache.Remove(); err != nil {
			fmt.Fprintln(stderr, "querybench:", err)
		}
	}()
	load0, _ := host.LoadAvg()
	fmt.Fprintf(stderr, "querybench: %s, GOMAXPROCS %d, data in %s\n", runtime.Version(), runtime.GOMAXPROCS(0), cache.Root())
	if querybench.InMemoryFS(cache.Root()) {
		fmt.Fprintln(stderr, "querybench: warning: the data directory is on tmpfs; cold opens read memory (use -dir on a real disk)")
	}

	var prof *os.File
	if *cpuprof != "" {
		if prof, err = os.Create(*cpuprof); err != nil {
			fmt.Fprintln(stderr, "querybench:", err)
			return 1
		}
		defer prof.Close()
	}
	var results []querybench.Result
	for _, n := range list {
		fmt.Fprintf(stderr, "querybench: building %s records ... ", querybench.SizeName(n))
		ds, err := cache.Get(n)
		if err != nil {
			fmt.Fprintln(stderr, "\nquerybench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "%d archives in %s, hot tail in %s; measuring ...\n", ds.Archives, ds.ArchiveTime.Round(time.Millisecond), ds.HotTime.Round(time.Millisecond))
		if prof != nil {
			if err := pprof.StartCPUProfile(prof); err != nil {
				fmt.Fprintln(stderr, "querybench:", err)
				return 1
			}
		}
		r, err := querybench.Measure(ctx, ds, opts)
		if prof != nil {
			pprof.StopCPUProfile()
			prof = nil // one profile per file: the first size only
		}
		if err != nil {
			fmt.Fprintf(stderr, "querybench: %s records: %v\n", querybench.SizeName(n), err)
			return 1
		}
		results = append(results, r)
		if !*keep {
			if err := cache.Drop(n); err != nil {
				fmt.Fprintln(stderr, "querybench:", err)
			}
		}
	}

	targets := querybench.DefaultTargets()
	load1, _ := host.LoadAvg()
	doc := report{
		Go: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadAvg: [2]float64{load0, load1},
		Smoke: *smoke, Results: results, Checks: targets.Checks(results),
	}
	if *outFile != "" {
		b, _ := json.MarshalIndent(doc, "", "  ")
		if err := os.WriteFile(*outFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "querybench:", err)
			return 1
		}
	}
	misses := 0
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(doc)
		for _, c := range doc.Checks {
			if !c.Pass {
				misses++
			}
		}
	} else {
		fmt.Fprintf(stdout, "state-engine queries: %d surfaces, 1 rare record in %d, %d in the hot log; load average %.2f → %.2f on %d CPUs\n",
			results[0].Surfaces, querybench.DefaultRareEvery, results[0].HotRecords, doc.LoadAvg[0], doc.LoadAvg[1], runtime.NumCPU())
		misses = querybench.WriteTable(stdout, results, targets)
		if *smoke {
			fmt.Fprintln(stdout, "(smoke run: one small journal, few runs — read the checks as smoke)")
		}
	}
	if *strict && misses > 0 {
		return 1
	}
	return 0
}

// report is the JSON document -json and -o write.
type report struct {
	Go         string              `json:"go"`
	GOMAXPROCS int                 `json:"gomaxprocs"`
	LoadAvg    [2]float64          `json:"load_average_start_end"`
	Smoke      bool                `json:"smoke"`
	Results    []querybench.Result `json:"results"`
	Checks     []querybench.Check  `json:"checks"`
}
