// Command compactbench prints the compaction benchmark: compression ratio
// and throughput on a heartbeat-heavy journal, and append p99 with and
// without a concurrent compaction (make bench runs it).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/bench/compactbench"
)

func main() {
	records := flag.Int("records", 500_000, "records to compact")
	writers := flag.Int("writers", 64, "concurrent writers for the latency runs")
	dur := flag.Duration("duration", 4*time.Second, "length of each latency run")
	smoke := flag.Bool("smoke", false, "small and short, for CI")
	asJSON := flag.Bool("json", false, "print JSON")
	strict := flag.Bool("strict", false, "exit 1 when a target is missed")
	flag.Parse()
	if *smoke {
		*records, *dur = 20_000, 500*time.Millisecond
	}
	dir, err := compactbench.TempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	r, err := compactbench.MeasureCompaction(dir+"/ratio", *records)
	if err == nil {
		err = compactbench.MeasureAppendLatency(dir+"/latency", *writers, *dur, &r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compactbench:", err)
		os.Exit(1)
	}
	checks := r.Checks()
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"result": r, "checks": checks})
	} else {
		fmt.Printf("compaction of %d heartbeat-heavy records (%.1f MB in, %.1f MB out) in %s wall, %s CPU\n",
			r.Records, float64(r.InputBytes)/1e6, float64(r.OutputBytes)/1e6, r.CompactWall.Round(time.Millisecond), r.CompactCPU.Round(time.Millisecond))
		fmt.Printf("append latency, %d writers, sync=always: quiet p50 %s p99 %s (%d records); compacting p50 %s p99 %s (%d records)\n",
			*writers, r.P50Quiet, r.P99Quiet, r.RecordsQuiet, r.P50Compacting, r.P99Compacting, r.RecordsLoaded)
		for _, c := range checks {
			fmt.Println("  " + c)
		}
	}
	if *strict {
		for _, c := range checks {
			if strings.HasSuffix(c, "MISS") {
				os.Exit(1)
			}
		}
	}
}
