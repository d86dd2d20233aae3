// Command coveragebench prints what the coverage watcher costs the write
// path: append p99 at 64 writers while 1,000 files a second change, with
// and without the watcher, and their ratio (make bench runs it; make
// bench-smoke runs -smoke).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/bench/coveragebench"
	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/engine"
)

func main() {
	writers := flag.Int("writers", 64, "concurrent writers")
	rate := flag.Int("rate", 1000, "file changes per second (each recorded)")
	dur := flag.Duration("duration", time.Second, "length of each round")
	lead := flag.Duration("lead", 500*time.Millisecond, "how long the files change before each round's writers start, in every mode (the watcher past its start)")
	rounds := flag.Int("rounds", 24, "rounds of each mode (without, with, and the control without), interleaved after a warm-up round; the p99 of all rounds of a mode is reported")
	smoke := flag.Bool("smoke", false, "one short round of each mode, for CI")
	asJSON := flag.Bool("json", false, "print JSON")
	strict := flag.Bool("strict", false, "exit 1 when the target is missed")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	syncFlag := flag.String("sync", "always", "the journal's sync policy: always, interval or none (the watcher's cost where fsync does not dominate)")
	flag.Parse()
	sync, err := engine.ParseSyncPolicy(*syncFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coveragebench: -sync:", err)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *smoke {
		*dur, *rounds, *lead = 500*time.Millisecond, 1, 200*time.Millisecond
	}
	dir, err := os.MkdirTemp("", "coveragebench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	load0 := loadAvg()
	r, err := coveragebench.Run(coveragebench.Config{Writers: *writers, Rate: *rate, Duration: *dur, Rounds: *rounds, Lead: *lead, Warmup: !*smoke, Dir: dir, Sync: sync})
	if err != nil {
		fmt.Fprintln(os.Stderr, "coveragebench:", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"result": r, "check": r.Check()})
	} else {
		fmt.Printf("append latency, %d writers, sync=%s, files changing at %.0f/s (each recorded), %d round(s) of %s each:\n",
			*writers, sync, r.ChangeRate, *rounds, *dur)
		for _, x := range r.Rounds {
			mode := "without watcher"
			if x.Control {
				mode = "without watcher (control)"
			}
			if x.Watcher {
				mode = fmt.Sprintf("with watcher   (%d changes, %d records dropped; observed %d, %d matched, %d waiting)", x.Changes, x.Dropped, x.Observed, x.Matched, x.Pending)
			}
			fmt.Printf("  p50 %-10s p99 %-10s %7d records  cpu %.2f/s  alloc %5.1f MiB/s %3d GCs  %s\n", x.P50, x.P99, x.Records, x.CPU, x.Alloc, x.GCs, mode)
		}
		fmt.Println("  " + r.Check())
		fmt.Printf("  the rest of the distribution, with ÷ without: p50 %s ÷ %s, p90 %s ÷ %s, p99.9 %s ÷ %s\n",
			r.On.P50, r.Off.P50, r.On.P90, r.Off.P90, r.On.P999, r.Off.P999)
		fmt.Printf("  noise: the two sets of rounds without the watcher differ by %.3fx; median of the rounds' own ratios %.3fx\n", r.Noise, r.MedianRatio)
		fmt.Printf("  process CPU %.2f/s with the watcher, %.2f/s without\n", r.CPUOn, r.CPUOff)
		fmt.Printf("  load average %s at start, %s at end (%d CPUs): above half the CPUs, other work skewed the figures (the interleaved ratio less so)\n", load0, loadAvg(), runtime.NumCPU())
	}
	if *strict && r.Ratio >= coveragebench.TargetP99Ratio {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	if v, ok := host.LoadAvg(); ok {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return "?"
}
