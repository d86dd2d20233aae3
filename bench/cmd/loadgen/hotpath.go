package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
)

// hotTarget is one row of issue 10's hot-path table, evaluated on this run.
// Ratios are the median of the rounds' own ratios: round i of the engine
// against round i of the baseline, run back to back, so load from
// elsewhere on the machine hits both sides of each ratio alike.
type hotTarget struct {
	Row      string  `json:"row"`
	Got      float64 `json:"got"`
	Shown    string  `json:"shown"`
	Want     string  `json:"want"`
	Verdict  string  `json:"verdict"`
	Explain  string  `json:"explain,omitempty"` // where bench/README.md explains a MISS
	Scenario string  `json:"scenario"`
}

// The hot-path targets of issue 10.
const (
	hotMinVsB64      = 0.85
	hotMaxP99VsB64   = 2.0
	hotMinVsB256     = 0.75
	hotMinBatchVsB   = 0.6
	hotMinBatchVsD   = 0.8
	hotMaxHTTPCPUUS  = 60
	hotMinNDJSONRate = 100_000
	hotMinNDJSONVsIn = 0.7
	hotMaxPeakRSSMiB = 128
	hotReadme        = "bench/README.md#"
	scnHTTPSingle    = "http=16/sync=always"
	scnHTTPNDJSON    = "http=16/ndjson=100/sync=always"
	scnInProcessTwin = "batch=100/writers=16/sync=always"
	scnWriters64     = "writers=64/sync=always"
	scnWriters256    = "writers=256/sync=always"
	scnBatch1000     = "batch=1000/writers=4/sync=always"
	ratioUnit        = "×"
)

// rounds returns a result's per-round values of one figure: the rounds'
// own when there were several, else the one value.
func rounds(r *result, many []float64, one float64) []float64 {
	if len(many) > 0 {
		return many
	}
	return []float64{one}
}

func rpsRounds(r *result) []float64 { return rounds(r, r.RoundsRecordsPerSecond, r.RecordsPerSecond) }
func p99Rounds(r *result) []float64 { return rounds(r, r.RoundsP99US, r.LatencyUS.P99) }
func cpuRounds(r *result) []float64 { return rounds(r, r.RoundsCPUUSPerRecord, r.CPUUSPerRecord) }
func rssRounds(r *result) []float64 { return rounds(r, r.RoundsPeakRSSMiB, r.PeakRSSMiB) }

// medianOf returns the median (the lower middle for an even count).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}

// roundRatios divides a's rounds by b's, round by round.
func roundRatios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, safeDiv(a[i], b[i]))
	}
	return out
}

func (rep *report) scenario(name string) *scenarioReport {
	for i := range rep.Scenarios {
		if rep.Scenarios[i].Name == name {
			return &rep.Scenarios[i]
		}
	}
	return nil
}

// okResult returns the named target's result in the named scenario when
// it ran and succeeded; failed is set when it ran and failed.
func (rep *report) okResult(scn, target string) (r *result, failed bool) {
	s := rep.scenario(scn)
	if s == nil {
		return nil, false
	}
	r = s.find(target)
	if r == nil {
		return nil, false
	}
	if r.Status != statusOK {
		return nil, true
	}
	return r, false
}

// hotPath evaluates issue 10's table on the scenarios that ran.
func (rep *report) hotPath() []hotTarget {
	var out []hotTarget
	// ratio adds a row comparing a figure of the engine with a baseline's
	// (or another scenario's engine) in the same run.
	ratio := func(row, anchor, scnA, tgtA, scnB, tgtB string, fig func(*result) []float64, want float64, atLeast bool) {
		t := hotTarget{Row: row, Scenario: scnA, Want: wantString(want, atLeast, ratioUnit)}
		a, aFailed := rep.okResult(scnA, tgtA)
		b, bFailed := rep.okResult(scnB, tgtB)
		switch {
		case aFailed:
			t.Verdict, t.Shown = verdictMiss, "engine failed"
		case a == nil || b == nil || bFailed:
			t.Verdict, t.Shown = verdictNA, "not measured"
		default:
			t.Got = medianOf(roundRatios(fig(a), fig(b)))
			t.Shown = fmtRatio(t.Got)
			t.Verdict = verdictOf(t.Got, want, atLeast)
		}
		if t.Verdict == verdictMiss {
			t.Explain = hotReadme + anchor
		}
		out = append(out, t)
	}
	value := func(row, anchor, scn string, fig func(*result) []float64, want float64, atLeast bool, unit string, show func(float64) string) {
		t := hotTarget{Row: row, Scenario: scn, Want: wantString(want, atLeast, unit)}
		e, failed := rep.okResult(scn, "engine")
		switch {
		case failed:
			t.Verdict, t.Shown = verdictMiss, "engine failed"
		case e == nil:
			t.Verdict, t.Shown = verdictNA, "not measured"
		default:
			t.Got = medianOf(fig(e))
			t.Shown = show(t.Got)
			t.Verdict = verdictOf(t.Got, want, atLeast)
		}
		if t.Verdict == verdictMiss {
			t.Explain = hotReadme + anchor
		}
		out = append(out, t)
	}
	ratio("64 writers, sync=always: ÷ b (plain group commit)", "miss-64-writers", scnWriters64, "engine", scnWriters64, "plain-group", rpsRounds, hotMinVsB64, true)
	ratio("64 writers: p99 ÷ b's p99", "miss-64-writers-p99", scnWriters64, "engine", scnWriters64, "plain-group", p99Rounds, hotMaxP99VsB64, false)
	ratio("256 writers: ÷ b", "miss-256-writers", scnWriters256, "engine", scnWriters256, "plain-group", rpsRounds, hotMinVsB256, true)
	ratio("batch=1000: ÷ b", "miss-batch", scnBatch1000, "engine", scnBatch1000, "plain-group", rpsRounds, hotMinBatchVsB, true)
	ratio("batch=1000: ÷ d (raw tidwall, same group commit)", "miss-batch", scnBatch1000, "engine", scnBatch1000, "wal-batch", rpsRounds, hotMinBatchVsD, true)
	value("HTTP, 16 connections, one record per POST: CPU µs per record", "miss-http-single", scnHTTPSingle, cpuRounds, hotMaxHTTPCPUUS, false, " µs",
		func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " µs" })
	value("HTTP, 16 connections, NDJSON 100 per POST: records/s", "miss-http-ndjson", scnHTTPNDJSON, rpsRounds, hotMinNDJSONRate, true, "",
		func(v float64) string { return thousands(v) + "/s" })
	ratio("HTTP NDJSON 100 per POST ÷ in-process batch (batch=100/writers=16)", "miss-http-ndjson", scnHTTPNDJSON, "engine", scnInProcessTwin, "engine", rpsRounds, hotMinNDJSONVsIn, true)
	out = append(out, rep.peakRSS())
	return out
}

// peakRSS is the largest peak RSS of any engine round in any scenario.
func (rep *report) peakRSS() hotTarget {
	t := hotTarget{Row: "peak RSS, every scenario", Scenario: "every scenario", Want: wantString(hotMaxPeakRSSMiB, false, " MiB")}
	seen := false
	for i := range rep.Scenarios {
		e := rep.Scenarios[i].find("engine")
		if e == nil || e.Status != statusOK {
			continue
		}
		for _, v := range rssRounds(e) {
			if !seen || v > t.Got {
				t.Got, t.Scenario = v, rep.Scenarios[i].Name
			}
			seen = true
		}
	}
	if !seen {
		t.Verdict, t.Shown = verdictNA, "not measured"
		return t
	}
	t.Shown = strconv.FormatFloat(t.Got, 'f', 1, 64) + " MiB (" + t.Scenario + ")"
	t.Verdict = verdictOf(t.Got, hotMaxPeakRSSMiB, false)
	if t.Verdict == verdictMiss {
		t.Explain = hotReadme + "miss-rss"
	}
	return t
}

func verdictOf(got, want float64, atLeast bool) string {
	if atLeast && got >= want || !atLeast && got <= want {
		return verdictPass
	}
	return verdictMiss
}

func wantString(v float64, atLeast bool, unit string) string {
	op := "≤ "
	if atLeast {
		op = "≥ "
	}
	if v >= 1000 {
		return op + thousands(v) + "/s"
	}
	return op + strconv.FormatFloat(v, 'f', -1, 64) + unit
}

// printHotPath prints the hot-path table under the main table.
func printHotPath(w io.Writer, rep *report) {
	if len(rep.HotPath) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "hot-path targets (issue 10): ratios are the median of the rounds' own ratios (engine round i ÷ baseline round i, run back to back)")
	rows := [][]string{{"target", "measured", "want", "verdict"}}
	for _, t := range rep.HotPath {
		v := t.Verdict
		if t.Explain != "" {
			v += " — why: " + t.Explain
		}
		rows = append(rows, []string{t.Row, t.Shown, t.Want, v})
	}
	writeAligned(w, rows, map[int]bool{1: true})
	var pass, miss, na int
	for _, t := range rep.HotPath {
		switch t.Verdict {
		case verdictPass:
			pass++
		case verdictMiss:
			miss++
		default:
			na++
		}
	}
	fmt.Fprintf(w, "hot-path targets: %d PASS, %d MISS, %d n/a\n", pass, miss, na)
}
