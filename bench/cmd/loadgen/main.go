package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentruntime/statejournal/bench/host"
)

// config is the parsed command line.
type config struct {
	duration time.Duration
	count    int
	smoke    bool
	jsonOut  bool
	jsonFile string
	strict   bool
	keep     bool
	verbose  bool
	settle   bool
	dir      string
	// profDir, when set, gets one CPU profile per child run.
	profDir string
	// noAutoCompact runs the engine without background compaction: a
	// diagnostic, to measure what compaction beside the writers costs.
	noAutoCompact bool
	scenarios     *regexp.Regexp
	targets       *regexp.Regexp
}

// Smoke mode runs every scenario for this long: enough to exercise every
// path, not to measure.
const smokeDuration = time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == childFlag {
		return childMain(args[1:], stderr)
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       config
		scenarioF = fs.String("scenarios", "", "run only scenarios whose name matches this regular expression")
		targetF   = fs.String("targets", "", "run only targets whose name (engine, plain-fsync, plain-group, wal, wal-batch) matches this regular expression")
		list      = fs.Bool("list", false, "list scenarios and targets and exit")
	)
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "how long each scenario runs on each target, per round")
	fs.IntVar(&cfg.count, "count", 3, "rounds per scenario; targets are interleaved and the median round (by records/s) is reported")
	fs.BoolVar(&cfg.smoke, "smoke", false, "run every scenario once for 1s (CI): checks the paths, figures are indicative only")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON document instead of the table")
	fs.StringVar(&cfg.jsonFile, "o", "", "also write the JSON document to this file")
	fs.BoolVar(&cfg.strict, "strict", false, "exit 1 when a performance target is missed")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the data directories of every run")
	fs.BoolVar(&cfg.verbose, "v", false, "pass the children's stderr through")
	fs.BoolVar(&cfg.settle, "settle", true, "commit the file system (syncfs) before each run, so one run's writeback and discards do not stall the next")
	fs.StringVar(&cfg.dir, "dir", os.TempDir(), "directory for the runs' data (use a real disk: fsync on tmpfs is free)")
	fs.BoolVar(&cfg.noAutoCompact, "no-autocompact", false, "diagnostic: run the engine without background compaction (journalctl serve runs with it), to measure its share")
	fs.StringVar(&cfg.profDir, "cpuprofile", "", "write a CPU profile of each run's load phase to this directory (SCENARIO_TARGET-ROUND.pprof; read with go tool pprof -top)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.smoke {
		cfg.duration, cfg.count = smokeDuration, 1
	}
	if cfg.duration <= 0 {
		fmt.Fprintf(stderr, "loadgen: -duration %s must be positive\n", cfg.duration)
		return 2
	}
	if cfg.profDir != "" {
		if err := os.MkdirAll(cfg.profDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "loadgen: -cpuprofile: %v\n", err)
			return 2
		}
	}
	if cfg.count < 1 {
		fmt.Fprintf(stderr, "loadgen: -count %d must be at least 1\n", cfg.count)
		return 2
	}
	var err error
	if cfg.scenarios, err = regexp.Compile(*scenarioF); err != nil {
		fmt.Fprintf(stderr, "loadgen: -scenarios: %v\n", err)
		return 2
	}
	if cfg.targets, err = regexp.Compile(*targetF); err != nil {
		fmt.Fprintf(stderr, "loadgen: -targets: %v\n", err)
		return 2
	}
	if *list {
		printList(stdout)
		return 0
	}
	rep, err := runAll(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	doc, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	doc = append(doc, '\n')
	if cfg.jsonFile != "" {
		if err := os.WriteFile(cfg.jsonFile, doc, 0o644); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	}
	if cfg.jsonOut {
		if _, err := stdout.Write(doc); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	} else {
		printTable(stdout, rep)
	}
	switch {
	case rep.FailedRuns > 0:
		return 1
	case cfg.strict && !rep.Pass:
		return 1
	}
	return 0
}

func printList(w io.Writer) {
	fmt.Fprintln(w, "scenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %s\n", s.Name)
	}
	fmt.Fprintln(w, "targets:")
	for _, t := range targets {
		fmt.Fprintf(w, "  %-12s (%s) %s\n", t.Name, t.Label, t.About)
	}
}

// runAll runs every selected (scenario, target) pair, one child process at a
// time, and builds the report.
func runAll(cfg config, progress io.Writer) (*report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create -dir: %w", err)
	}
	runDir, err := os.MkdirTemp(cfg.dir, "loadgen-")
	if err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	if !cfg.keep {
		defer os.RemoveAll(runDir)
	}
	rep := newReport(cfg, runDir)
	if rep.Filesystem == "tmpfs" || rep.Filesystem == "ramfs" {
		fmt.Fprintf(progress, "loadgen: warning: %s is on %s, where fsync costs nothing; ratios will not mean what they say\n", cfg.dir, rep.Filesystem)
	}
	for _, s := range scenarios {
		if !cfg.scenarios.MatchString(s.Name) {
			continue
		}
		sr := scenarioReport{Name: s.Name, Writers: s.Writers, Batch: s.Batch, Sync: s.Sync.String(), HTTP: s.HTTP}
		var selected []targetInfo
		for _, t := range targets {
			if cfg.targets.MatchString(t.Name) {
				selected = append(selected, t)
			}
		}
		// Rounds interleave the targets (engine, a, b, c, d, engine, a,
		// ...) so that a burst of load from elsewhere on the machine hits
		// every target alike; the median round is reported.
		runs := make([][]result, len(selected))
		for round := 1; round <= cfg.count; round++ {
			for i, t := range selected {
				r := runPair(cfg, self, runDir, s, t, round)
				fmt.Fprintf(progress, "%-34s %-12s %s\n", s.Name, t.Name, r.progressLine())
				runs[i] = append(runs[i], r)
			}
		}
		for _, rs := range runs {
			sr.Results = append(sr.Results, median(rs))
		}
		if len(sr.Results) > 0 {
			rep.Scenarios = append(rep.Scenarios, sr)
		}
	}
	rep.finish()
	return rep, nil
}

// runPair runs one (scenario, target) pair in a child process.
func runPair(cfg config, self, runDir string, s scenario, t targetInfo, round int) result {
	r := result{Target: t.Name, Label: t.Label}
	dir := filepath.Join(runDir, strings.NewReplacer("/", "_", "=", "-").Replace(s.Name), t.Name+"-"+strconv.Itoa(round))
	// Start from a quiet file system: what earlier runs left dirty or
	// queued for discard must not stall this run's fsyncs.
	if cfg.settle {
		if err := host.Settle(runDir); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: settle file system:", err)
		}
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(dir + ".root")
	}
	// A run that takes far longer than asked is hung, not slow.
	ctx, cancel := context.WithTimeout(context.Background(), 3*cfg.duration+2*time.Minute)
	defer cancel()
	args := []string{childFlag, "-scenario", s.Name, "-target", t.Name,
		"-duration", cfg.duration.String(), "-dir", dir}
	if cfg.noAutoCompact {
		args = append(args, "-no-autocompact")
	}
	if cfg.profDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(cfg.profDir, filepath.Base(filepath.Dir(dir))+"_"+filepath.Base(dir)+".pprof"))
	}
	cmd := exec.CommandContext(ctx, self, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if cfg.verbose {
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	runErr := cmd.Run()

	var cr childResult
	decErr := json.Unmarshal(stdout.Bytes(), &cr)
	switch {
	case decErr == nil && cr.Error == "" && runErr == nil:
		r.Status = statusOK
	case decErr == nil && cr.Error != "":
		r.Status, r.Note = statusError, cr.Error
	default:
		r.Status = statusError
		r.Note = strings.TrimSpace(errors.Join(runErr, decErr).Error() + ": " + lastLine(stderr.String()))
	}
	if decErr == nil {
		r.fill(&cr)
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.PeakRSSMiB = maxRSSMiB(ru.Maxrss)
		}
	}
	return r
}

// median returns the round with the median records/s (the lower middle for
// an even count), with every round's rate attached; a failed round wins, so
// failures are never hidden by the median.
func median(rs []result) result {
	rates := make([]float64, 0, len(rs))
	for _, r := range rs {
		if r.Status != statusOK {
			r.RoundsRecordsPerSecond = nil
			return r
		}
		rates = append(rates, r.RecordsPerSecond)
	}
	sorted := append([]result(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].RecordsPerSecond < sorted[j].RecordsPerSecond })
	m := sorted[(len(sorted)-1)/2]
	if len(rs) > 1 {
		m.RoundsRecordsPerSecond = rates
		m.RoundsP99US, m.RoundsCPUUSPerRecord, m.RoundsPeakRSSMiB = nil, nil, nil
		for _, r := range rs {
			m.RoundsP99US = append(m.RoundsP99US, r.LatencyUS.P99)
			m.RoundsCPUUSPerRecord = append(m.RoundsCPUUSPerRecord, r.CPUUSPerRecord)
			m.RoundsPeakRSSMiB = append(m.RoundsPeakRSSMiB, r.PeakRSSMiB)
		}
	}
	return m
}

// maxRSSMiB converts rusage's ru_maxrss (KiB on Linux, bytes on macOS) to MiB.
func maxRSSMiB(v int64) float64 {
	if runtime.GOOS == "darwin" {
		return float64(v) / (1 << 20)
	}
	return float64(v) / 1024
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
