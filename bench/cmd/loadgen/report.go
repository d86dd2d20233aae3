package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/bench/host"
)

// reportSchema names the JSON document's layout; bump it when a field changes
// meaning so comparisons across commits do not mix layouts.
const reportSchema = "statejournal-loadgen/v1"

// Result statuses.
const (
	statusOK    = "ok"
	statusError = "error"
	statusNA    = "n/a"
)

// Check verdicts.
const (
	verdictPass = "PASS"
	verdictMiss = "MISS"
	verdictNA   = "n/a"
)

// report is the whole run: what the table prints and -json encodes.
type report struct {
	Schema     string    `json:"schema"`
	StartedAt  time.Time `json:"started_at"`
	Go         string    `json:"go"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	CPUs       int       `json:"cpus"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	Smoke      bool      `json:"smoke"`
	// NoAutoCompact marks a diagnostic run of the engine without
	// background compaction (-no-autocompact).
	NoAutoCompact   bool    `json:"no_autocompact,omitempty"`
	DurationSeconds float64 `json:"duration_s"`
	Rounds          int     `json:"rounds"`
	Dir             string  `json:"dir"`
	Filesystem      string  `json:"filesystem"`
	// LoadAvg is the 1-minute load average when the run started and
	// ended (Linux only): other work on the machine skews every figure.
	LoadAvg   []float64        `json:"load_avg_1m,omitempty"`
	Targets   []targetInfo     `json:"targets"`
	Scenarios []scenarioReport `json:"scenarios"`
	Checks    []check          `json:"checks"`
	// HotPath is the hot-path target table of issue 10 (see hotPath).
	HotPath []hotTarget `json:"hot_path_targets"`
	// Pass is true when no evaluated check or hot-path target missed.
	Pass bool `json:"pass"`
	// FailedRuns counts (scenario, target) runs that ended in an error.
	FailedRuns int `json:"failed_runs"`
}

// scenarioReport is one scenario's results, the engine first.
type scenarioReport struct {
	Name    string   `json:"name"`
	Writers int      `json:"writers"`
	Batch   int      `json:"batch,omitempty"`
	Sync    string   `json:"sync"`
	HTTP    bool     `json:"http,omitempty"`
	Results []result `json:"results"`
}

// result is one target's figures in one scenario. Latencies are per call
// (per RecordBatch call in batch scenarios), call to return.
type result struct {
	Target           string    `json:"target"`
	Label            string    `json:"label"`
	Status           string    `json:"status"`
	Note             string    `json:"note,omitempty"`
	Records          uint64    `json:"records"`
	Calls            uint64    `json:"calls"`
	ElapsedSeconds   float64   `json:"elapsed_s"`
	RecordsPerSecond float64   `json:"records_per_s"`
	LatencyUS        latencyUS `json:"latency_us"`
	Fsyncs           uint64    `json:"fsyncs"`
	FsyncsPer1k      float64   `json:"fsyncs_per_1k_records"`
	BytesOnDisk      int64     `json:"bytes_on_disk"`
	BytesPerRecord   float64   `json:"bytes_per_record"`
	CPUUSPerRecord   float64   `json:"cpu_us_per_record"`
	PeakRSSMiB       float64   `json:"peak_rss_mib"`
	// RoundsRecordsPerSecond holds every round's rate, in run order, when
	// there was more than one; the other figures are the median round's.
	RoundsRecordsPerSecond []float64 `json:"rounds_records_per_s,omitempty"`
	// RoundsP99US, RoundsCPUUSPerRecord and RoundsPeakRSSMiB are every
	// round's p99, CPU per record and peak RSS, likewise.
	RoundsP99US          []float64  `json:"rounds_p99_us,omitempty"`
	RoundsCPUUSPerRecord []float64  `json:"rounds_cpu_us_per_record,omitempty"`
	RoundsPeakRSSMiB     []float64  `json:"rounds_peak_rss_mib,omitempty"`
	EngineRatio          *ratioPair `json:"engine_ratio,omitempty"`
}

// latencyUS is a latency summary in microseconds.
type latencyUS struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ratioPair compares the engine with a baseline in the same scenario:
// RecordsPerSecond is engine ÷ baseline (above 1: the engine is faster), P99
// is engine ÷ baseline (below 1: the engine's tail is lower).
type ratioPair struct {
	RecordsPerSecond float64 `json:"records_per_s"`
	P99              float64 `json:"p99"`
}

// check is one performance target from the issue, evaluated on this run.
type check struct {
	Scenario string `json:"scenario"`
	// Target is the row the check is printed on.
	Target  string `json:"target"`
	Name    string `json:"name"`
	Want    string `json:"want"`
	Got     string `json:"got"`
	Verdict string `json:"verdict"`
	short   string
}

func newReport(cfg config, runDir string) *report {
	return &report{
		Schema:          reportSchema,
		StartedAt:       time.Now().UTC(),
		Go:              runtime.Version(),
		OS:              runtime.GOOS,
		Arch:            runtime.GOARCH,
		CPUs:            runtime.NumCPU(),
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		Smoke:           cfg.smoke,
		NoAutoCompact:   cfg.noAutoCompact,
		DurationSeconds: cfg.duration.Seconds(),
		Rounds:          cfg.count,
		Dir:             cfg.dir,
		Filesystem:      filesystemName(runDir),
		LoadAvg:         loadAvg(nil),
		Targets:         targets,
	}
}

func us(ns int64) float64 { return float64(ns) / 1e3 }

// fill derives the per-record figures from a child's raw figures.
func (r *result) fill(cr *childResult) {
	r.Records, r.Calls, r.Fsyncs, r.BytesOnDisk = cr.Records, cr.Calls, cr.Fsyncs, cr.BytesOnDisk
	r.ElapsedSeconds = time.Duration(cr.ElapsedNS).Seconds()
	r.LatencyUS = latencyUS{
		P50: us(cr.Latency.P50), P90: us(cr.Latency.P90), P99: us(cr.Latency.P99),
		P999: us(cr.Latency.P999), Max: us(cr.Latency.Max), Mean: us(cr.Latency.Mean),
	}
	if r.ElapsedSeconds > 0 {
		r.RecordsPerSecond = float64(cr.Records) / r.ElapsedSeconds
	}
	if cr.Records > 0 {
		n := float64(cr.Records)
		r.FsyncsPer1k = float64(cr.Fsyncs) * 1000 / n
		r.BytesPerRecord = float64(cr.BytesOnDisk) / n
		r.CPUUSPerRecord = float64(cr.CPUNS) / 1e3 / n
	}
}

func (r *result) progressLine() string {
	if r.Status != statusOK {
		return r.Status + ": " + r.Note
	}
	return fmt.Sprintf("%s rec/s  p99 %s  %.1f fsyncs/1k  %s MiB", thousands(r.RecordsPerSecond), fmtUS(r.LatencyUS.P99), r.FsyncsPer1k, strconv.FormatFloat(r.PeakRSSMiB, 'f', 1, 64))
}

func (s *scenarioReport) find(target string) *result {
	for i := range s.Results {
		if s.Results[i].Target == target {
			return &s.Results[i]
		}
	}
	return nil
}

// finish computes the ratios and checks and the overall verdict.
func (rep *report) finish() {
	if rep.LoadAvg != nil {
		rep.LoadAvg = loadAvg(rep.LoadAvg)
	}
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		e := s.find("engine")
		for j := range s.Results {
			r := &s.Results[j]
			if r.Status == statusError {
				rep.FailedRuns++
			}
			if r.Target == "engine" || e == nil || e.Status != statusOK || r.Status != statusOK {
				continue
			}
			r.EngineRatio = &ratioPair{
				RecordsPerSecond: safeDiv(e.RecordsPerSecond, r.RecordsPerSecond),
				P99:              safeDiv(e.LatencyUS.P99, r.LatencyUS.P99),
			}
		}
	}
	rep.Checks = rep.evaluate()
	rep.HotPath = rep.hotPath()
	rep.Pass = true
	for _, c := range rep.Checks {
		if c.Verdict == verdictMiss {
			rep.Pass = false
		}
	}
	for _, t := range rep.HotPath {
		if t.Verdict == verdictMiss {
			rep.Pass = false
		}
	}
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// The targets.
const (
	minRatioVsPlainFsync = 15.0
	minRatioVsPlainGroup = 0.85
	maxP99At64           = 3 * time.Millisecond
	minRateAt256         = 150_000
	minBatchRate         = 400_000
	maxPeakRSSMiB        = 128
)

// evaluate checks the targets on the scenarios that ran.
func (rep *report) evaluate() []check {
	var out []check
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		e := s.find("engine")
		if e == nil {
			continue
		}
		switch {
		case s.Name == "writers=64/sync=always":
			out = append(out,
				ratioCheck(s, e, "plain-fsync", "a", minRatioVsPlainFsync),
				ratioCheck(s, e, "plain-group", "b", minRatioVsPlainGroup),
				thresholdCheck(s, e, "p99 append latency", "p99<3ms", "< 3 ms",
					fmtUS(e.LatencyUS.P99), e.LatencyUS.P99 < float64(maxP99At64.Microseconds())),
			)
		case s.Name == "writers=256/sync=always":
			out = append(out, thresholdCheck(s, e, "records/s", "≥150k/s", "≥ 150,000",
				thousands(e.RecordsPerSecond), e.RecordsPerSecond >= minRateAt256))
		case s.Name == scnBatch1000:
			out = append(out, thresholdCheck(s, e, "durable records/s through the batch API", "≥400k/s", "≥ 400,000",
				thousands(e.RecordsPerSecond), e.RecordsPerSecond >= minBatchRate))
		}
		if e.Status == statusOK {
			out = append(out, thresholdCheck(s, e, "peak RSS", "RSS<128MiB", "< 128 MiB",
				strconv.FormatFloat(e.PeakRSSMiB, 'f', 1, 64)+" MiB", e.PeakRSSMiB < maxPeakRSSMiB))
		}
	}
	return out
}

func thresholdCheck(s *scenarioReport, e *result, name, short, want, got string, ok bool) check {
	c := check{Scenario: s.Name, Target: "engine", Name: "engine " + name, Want: want, Got: got, short: short}
	switch {
	case e.Status != statusOK:
		c.Verdict, c.Got = verdictMiss, e.Status
	case ok:
		c.Verdict = verdictPass
	default:
		c.Verdict = verdictMiss
	}
	return c
}

func ratioCheck(s *scenarioReport, e *result, baseline, label string, min float64) check {
	want := "≥ " + strconv.FormatFloat(min, 'f', -1, 64) + "×"
	c := check{
		Scenario: s.Name, Target: baseline,
		Name:  "engine records/s ÷ baseline " + label,
		Want:  want,
		short: "≥" + strconv.FormatFloat(min, 'f', -1, 64) + "×" + label,
	}
	b := s.find(baseline)
	switch {
	case b == nil || b.Status != statusOK:
		c.Verdict, c.Got = verdictNA, "baseline not measured"
	case e.Status != statusOK:
		c.Verdict, c.Got = verdictMiss, "engine "+e.Status
	default:
		ratio := b.EngineRatio.RecordsPerSecond
		c.Got = fmtRatio(ratio)
		c.Verdict = verdictMiss
		if ratio >= min {
			c.Verdict = verdictPass
		}
	}
	return c
}

// printTable prints the report as one aligned table and a verdict line.
func printTable(w io.Writer, rep *report) {
	mode := ""
	if rep.Smoke {
		mode = " (smoke: figures indicative only)"
	}
	if rep.NoAutoCompact {
		mode += " (diagnostic: engine WITHOUT background compaction)"
	}
	fmt.Fprintf(w, "loadgen %s per run, median of %d interleaved rounds%s · %s %s/%s · %d CPUs (GOMAXPROCS %d) · data in %s (%s)\n",
		time.Duration(rep.DurationSeconds*float64(time.Second)), rep.Rounds, mode, rep.Go, rep.OS, rep.Arch,
		rep.CPUs, rep.GOMAXPROCS, rep.Dir, rep.Filesystem)
	if len(rep.LoadAvg) == 2 {
		fmt.Fprintf(w, "load average (1 min) %.2f at start, %.2f at end", rep.LoadAvg[0], rep.LoadAvg[1])
		if max(rep.LoadAvg[0], rep.LoadAvg[1]) > float64(rep.CPUs)/2 {
			fmt.Fprint(w, " — the machine was busy: figures are skewed, ratios less so")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "targets: engine; baselines a=plain-fsync b=plain-group c=wal d=wal-batch. eng÷ = engine ÷ baseline (records/s: >1 engine faster; p99: <1 engine lower). Latency is per call.")
	fmt.Fprintln(w)

	header := []string{"scenario", "target", "records/s", "eng÷", "p50", "p99", "eng÷p99", "fsync/1k", "B/rec", "CPU µs/rec", "RSS MiB", "checks"}
	rightAligned := map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true}
	rows := [][]string{header}
	checksFor := func(scn, target string) string {
		var parts []string
		for _, c := range rep.Checks {
			if c.Scenario == scn && c.Target == target {
				parts = append(parts, c.short+" "+c.Verdict)
			}
		}
		return strings.Join(parts, ", ")
	}
	for _, s := range rep.Scenarios {
		for i, r := range s.Results {
			name := ""
			if i == 0 {
				name = s.Name
			}
			target := r.Label
			if r.Label != r.Target {
				target = r.Label + ":" + r.Target
			}
			row := []string{name, target}
			if r.Status != statusOK {
				row = append(row, "—", "", "", "", "", "", "", "", "", r.Note)
				if c := checksFor(s.Name, r.Target); c != "" {
					row[len(row)-1] = c + "; " + r.Note
				}
				rows = append(rows, row)
				continue
			}
			ratio, ratioP99 := "", ""
			if r.EngineRatio != nil {
				ratio, ratioP99 = fmtRatio(r.EngineRatio.RecordsPerSecond), fmtRatio(r.EngineRatio.P99)
			}
			row = append(row,
				thousands(r.RecordsPerSecond), ratio,
				fmtUS(r.LatencyUS.P50), fmtUS(r.LatencyUS.P99), ratioP99,
				strconv.FormatFloat(r.FsyncsPer1k, 'f', 1, 64),
				strconv.FormatFloat(r.BytesPerRecord, 'f', 0, 64),
				strconv.FormatFloat(r.CPUUSPerRecord, 'f', 1, 64),
				strconv.FormatFloat(r.PeakRSSMiB, 'f', 1, 64),
				checksFor(s.Name, r.Target),
			)
			rows = append(rows, row)
		}
	}
	writeAligned(w, rows, rightAligned)
	fmt.Fprintln(w)

	var pass, miss, na int
	var misses []string
	for _, c := range rep.Checks {
		switch c.Verdict {
		case verdictPass:
			pass++
		case verdictMiss:
			miss++
			misses = append(misses, fmt.Sprintf("%s %s: want %s, got %s", c.Scenario, c.Name, c.Want, c.Got))
		default:
			na++
		}
	}
	fmt.Fprintf(w, "targets: %d PASS, %d MISS, %d n/a", pass, miss, na)
	if rep.FailedRuns > 0 {
		fmt.Fprintf(w, "; %d run(s) FAILED", rep.FailedRuns)
	}
	fmt.Fprintln(w)
	for _, m := range misses {
		fmt.Fprintln(w, "  MISS", m)
	}
	printHotPath(w, rep)
}

// writeAligned prints rows as columns separated by two spaces, padding to
// the widest cell (counted in runes); the last column is not padded.
func writeAligned(w io.Writer, rows [][]string, right map[int]bool) {
	widths := map[int]int{}
	for _, row := range rows {
		for i, cell := range row {
			if n := len([]rune(cell)); n > widths[i] {
				widths[i] = n
			}
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := widths[i] - len([]rune(cell))
			last := i == len(row)-1
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case right[i]:
				b.WriteString(strings.Repeat(" ", pad))
				b.WriteString(cell)
			case last:
				b.WriteString(cell)
			default:
				b.WriteString(cell)
				b.WriteString(strings.Repeat(" ", pad))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// thousands formats a rate as an integer with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtUS formats microseconds with a unit that keeps three significant digits.
func fmtUS(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 2, 64) + "ms"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "µs"
	default:
		return strconv.FormatFloat(v, 'f', 1, 64) + "µs"
	}
}

func fmtRatio(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "×"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "×"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + "×"
	}
}

// loadAvg appends the 1-minute load average to into, or returns nil when
// it cannot be read.
func loadAvg(into []float64) []float64 {
	v, ok := host.LoadAvg()
	if !ok {
		return nil
	}
	return append(into, v)
}

// filesystemName names the file system holding dir, so a run on tmpfs (where
// fsync costs nothing) is visible in its report.
func filesystemName(dir string) string {
	name, err := host.FSName(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: file system of", dir+":", err)
		return "unknown"
	}
	return name
}
