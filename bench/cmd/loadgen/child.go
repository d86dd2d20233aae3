package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/agentruntime/statejournal/bench/baseline"
	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/bench/latency"
	"github.com/agentruntime/statejournal/bench/workload"
)

// childResult is what a child process prints on stdout: the figures of one
// (scenario, target) run. Durations are nanoseconds.
type childResult struct {
	Target        string         `json:"target"`
	Records       uint64         `json:"records"`
	Calls         uint64         `json:"calls"`
	ElapsedNS     int64          `json:"elapsed_ns"`
	Latency       latencySummary `json:"latency_ns"`
	Fsyncs        uint64         `json:"fsyncs"`
	BytesOnDisk   int64          `json:"bytes_on_disk"`
	BytesApparent int64          `json:"bytes_apparent"`
	CPUNS         int64          `json:"cpu_ns"`
	Error         string         `json:"error,omitempty"`
}

// latencySummary holds the quantiles of one run's per-call latency.
type latencySummary struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
	Mean int64 `json:"mean"`
}

func summarize(h *latency.Histogram) latencySummary {
	return latencySummary{
		P50:  int64(h.Quantile(0.50)),
		P90:  int64(h.Quantile(0.90)),
		P99:  int64(h.Quantile(0.99)),
		P999: int64(h.Quantile(0.999)),
		Max:  int64(h.Max()),
		Mean: int64(h.Mean()),
	}
}

// openTarget opens the named target for scenario s in a fresh dir.
func openTarget(name, dir string, s scenario) (workload.Target, error) {
	opts := baseline.Options{Sync: s.Sync}
	switch name {
	case "engine":
		return openEngine(dir, s)
	case "plain-fsync":
		return baseline.OpenPlainFsync(dir, opts)
	case "plain-group":
		return baseline.OpenPlainGroupCommit(dir, opts)
	case "wal":
		return baseline.OpenRawWAL(dir, opts)
	case "wal-batch":
		return baseline.OpenRawWALBatch(dir, opts)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// childFlag, as the first argument, makes loadgen a child that runs one
// (scenario, target) pair. It is not in -help: only the parent passes it.
const childFlag = "-child"

// childMain parses a child's flags and runs it.
func childMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen -child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scn := fs.String("scenario", "", "scenario name")
	tgt := fs.String("target", "", "target name")
	d := fs.Duration("duration", time.Second, "load duration")
	dir := fs.String("dir", "", "fresh data directory")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
	noAuto := fs.Bool("no-autocompact", false, "run the engine without background compaction")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "loadgen -child: -dir is required")
		return 2
	}
	noAutoCompact = *noAuto
	return runChild(*scn, *tgt, *dir, *prof, *d)
}

// runChild runs one (scenario, target) pair in this process and prints its
// childResult as JSON on stdout. It returns the process exit code.
func runChild(scenarioName, targetName, dir, prof string, d time.Duration) int {
	res, err := measureProfiled(scenarioName, targetName, dir, prof, d)
	if err != nil {
		res.Error = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen child:", err)
		return 1
	}
	if res.Error != "" {
		return 1
	}
	return 0
}

func measure(scenarioName, targetName, dir string, d time.Duration) (childResult, error) {
	return measureProfiled(scenarioName, targetName, dir, "", d)
}

// measureProfiled is measure with a CPU profile of the load phase written
// to prof when it is not empty.
func measureProfiled(scenarioName, targetName, dir, prof string, d time.Duration) (childResult, error) {
	res := childResult{Target: targetName}
	s, ok := findScenario(scenarioName)
	if !ok {
		return res, fmt.Errorf("unknown scenario %q", scenarioName)
	}
	t, err := openTarget(targetName, dir, s)
	if err != nil {
		return res, err
	}
	var (
		profFile *os.File
		profErr  error
	)
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return res, errors.Join(fmt.Errorf("cpu profile: %w", err), t.Close())
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, errors.Join(fmt.Errorf("cpu profile: %w", err), f.Close(), t.Close())
		}
		profFile = f
	}
	cpu0 := host.CPUTime()
	run, runErr := workload.Run(context.Background(), t, workload.Spec{Writers: s.Writers, Batch: s.Batch, Duration: d})
	res.CPUNS = int64(host.CPUTime() - cpu0)
	if profFile != nil {
		pprof.StopCPUProfile()
		profErr = profFile.Close()
	}
	res.Fsyncs = t.Fsyncs()
	closeErr := t.Close()
	if run != nil {
		res.Records, res.Calls, res.ElapsedNS = run.Records, run.Calls, int64(run.Elapsed)
		res.Latency = summarize(&run.Latency)
	}
	var duErr error
	res.BytesOnDisk, res.BytesApparent, duErr = diskUsage(t.Dir())
	return res, errors.Join(runErr, closeErr, duErr, profErr)
}

// diskUsage returns the bytes allocated on disk (as du counts them) and the
// apparent size of the regular files under dir.
func diskUsage(dir string) (allocated, apparent int64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		} else {
			allocated += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measure disk usage: %w", err)
	}
	return allocated, apparent, nil
}
