package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play loadgen's child, as loadgen re-executes
// itself with childFlag first.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestChildMeasuresEveryTarget(t *testing.T) {
	type pair struct{ scenario, target string }
	var pairs []pair
	for _, tg := range targets {
		pairs = append(pairs, pair{"writers=8/sync=always", tg.Name})
	}
	pairs = append(pairs, pair{"http=16/sync=always", "engine"}, pair{"batch=1000/writers=4/sync=always", "engine"},
		pair{"http=16/ndjson=100/sync=always", "engine"})
	for _, p := range pairs {
		t.Run(p.target+" in "+p.scenario+" reports records, fsyncs and bytes on disk", func(t *testing.T) {
			res, err := measure(p.scenario, p.target, t.TempDir()+"/data", 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if res.Records == 0 || res.Calls == 0 || res.Fsyncs == 0 || res.BytesOnDisk == 0 {
				t.Fatalf("implausible figures: %+v", res)
			}
			if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
				t.Fatalf("latency quantiles out of order: %+v", res.Latency)
			}
		})
	}
}

func TestParentRunsChildrenAndPrintsJSON(t *testing.T) {
	// A race-enabled child sleeps a second before exiting unless told not to.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out, errOut bytes.Buffer
	code := run([]string{"-duration", "50ms", "-count", "2", "-settle=false", "-dir", t.TempDir(), "-json",
		"-scenarios", "^writers=(8/sync=always|64/sync=interval)$", "-targets", "plain"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, out.String())
	}
	if rep.Schema != reportSchema || len(rep.Scenarios) != 2 {
		t.Fatalf("want 2 scenarios in a %s report, got %d in %q", reportSchema, len(rep.Scenarios), rep.Schema)
	}
	for _, s := range rep.Scenarios {
		if len(s.Results) != 2 {
			t.Fatalf("%s: want the two plain baselines, got %d results", s.Name, len(s.Results))
		}
		for _, r := range s.Results {
			if r.Status != statusOK || r.RecordsPerSecond <= 0 || r.PeakRSSMiB <= 0 || r.CPUUSPerRecord <= 0 {
				t.Fatalf("%s/%s: implausible result %+v", s.Name, r.Target, r)
			}
			if len(r.RoundsRecordsPerSecond) != 2 {
				t.Fatalf("%s/%s: want both rounds' rates, got %v", s.Name, r.Target, r.RoundsRecordsPerSecond)
			}
		}
	}
}

func TestChecks(t *testing.T) {
	ok := func(target string, rps, p99us, rss float64) result {
		return result{Target: target, Status: statusOK, RecordsPerSecond: rps, LatencyUS: latencyUS{P99: p99us}, PeakRSSMiB: rss}
	}
	tests := []struct {
		name    string
		results []result
		want    map[string]string // check name -> verdict
	}{
		{
			name: "an engine 20x faster than plain fsync and as fast as group commit passes every target",
			results: []result{
				ok("engine", 100_000, 2000, 40), ok("plain-fsync", 5_000, 50_000, 8), ok("plain-group", 100_000, 1500, 9),
			},
			want: map[string]string{
				"engine records/s ÷ baseline a": verdictPass,
				"engine records/s ÷ baseline b": verdictPass,
				"engine p99 append latency":     verdictPass,
				"engine peak RSS":               verdictPass,
			},
		},
		{
			name: "an engine at 80% of group commit with a 4 ms p99 and 200 MiB misses three targets",
			results: []result{
				ok("engine", 80_000, 4000, 200), ok("plain-fsync", 5_000, 50_000, 8), ok("plain-group", 100_000, 1500, 9),
			},
			want: map[string]string{
				"engine records/s ÷ baseline a": verdictPass,
				"engine records/s ÷ baseline b": verdictMiss,
				"engine p99 append latency":     verdictMiss,
				"engine peak RSS":               verdictMiss,
			},
		},
		{
			name: "a baseline that was not measured leaves its ratio check n/a",
			results: []result{
				ok("engine", 100_000, 2000, 40),
			},
			want: map[string]string{
				"engine records/s ÷ baseline a": verdictNA,
				"engine records/s ÷ baseline b": verdictNA,
			},
		},
		{
			name: "an engine that failed misses its targets",
			results: []result{
				{Target: "engine", Status: statusError, Note: "boom"}, ok("plain-fsync", 5_000, 50_000, 8), ok("plain-group", 100_000, 1500, 9),
			},
			want: map[string]string{
				"engine records/s ÷ baseline a": verdictMiss,
				"engine p99 append latency":     verdictMiss,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &report{Scenarios: []scenarioReport{{Name: "writers=64/sync=always", Writers: 64, Sync: "always", Results: tt.results}}}
			rep.finish()
			got := map[string]string{}
			for _, c := range rep.Checks {
				got[c.Name] = c.Verdict
			}
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s: got %q, want %q (all: %v)", name, got[name], want, got)
				}
			}
			var buf bytes.Buffer
			printTable(&buf, rep)
			if !strings.Contains(buf.String(), "writers=64/sync=always") {
				t.Errorf("table lacks the scenario row:\n%s", buf.String())
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"rates get thousands separators", thousands(1234567.4), "1,234,567"},
		{"small rates stay plain", thousands(999), "999"},
		{"sub-millisecond latency is in microseconds", fmtUS(312.4), "312µs"},
		{"millisecond latency keeps two decimals", fmtUS(2345), "2.35ms"},
		{"large ratios drop decimals", fmtRatio(151.7), "152×"},
		{"ratios near one keep two decimals", fmtRatio(0.874), "0.87×"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestHotPathTargets(t *testing.T) {
	res := func(target string, rps, p99, cpu, rss []float64) result {
		return result{Target: target, Status: statusOK, RecordsPerSecond: rps[0], RoundsRecordsPerSecond: rps,
			RoundsP99US: p99, RoundsCPUUSPerRecord: cpu, RoundsPeakRSSMiB: rss}
	}
	three := func(v float64) []float64 { return []float64{v, v, v} }
	rep := &report{Scenarios: []scenarioReport{
		{Name: scnWriters64, Results: []result{
			// Round by round 0.9, 0.5, 0.95: the median of the rounds'
			// ratios is 0.9; the round where load hit one side is outvoted.
			res("engine", []float64{90_000, 50_000, 95_000}, []float64{2000, 2000, 9000}, three(10), three(40)),
			res("plain-group", []float64{100_000, 100_000, 100_000}, []float64{1000, 1000, 1000}, three(5), three(20)),
		}},
		{Name: scnHTTPSingle, Results: []result{res("engine", three(10_000), three(1000), []float64{70, 50, 55}, three(30))}},
		{Name: scnHTTPNDJSON, Results: []result{res("engine", three(120_000), three(1000), three(8), three(200))}},
	}}
	rep.finish()
	got := map[string]hotTarget{}
	for _, h := range rep.HotPath {
		got[h.Row] = h
	}
	for row, want := range map[string]struct {
		verdict, shown, explain string
	}{
		"64 writers, sync=always: ÷ b (plain group commit)":                  {verdictPass, "0.90×", ""},
		"64 writers: p99 ÷ b's p99":                                          {verdictPass, "2.00×", ""},
		"256 writers: ÷ b":                                                   {verdictNA, "not measured", ""},
		"HTTP, 16 connections, one record per POST: CPU µs per record":       {verdictPass, "55.0 µs", ""},
		"HTTP, 16 connections, NDJSON 100 per POST: records/s":               {verdictPass, "120,000/s", ""},
		"HTTP NDJSON 100 per POST ÷ in-process batch (batch=100/writers=16)": {verdictNA, "not measured", ""},
		"peak RSS, every scenario":                                           {verdictMiss, "200.0 MiB (" + scnHTTPNDJSON + ")", hotReadme + "miss-rss"},
	} {
		h, ok := got[row]
		if !ok {
			t.Errorf("no row %q", row)
			continue
		}
		if h.Verdict != want.verdict || h.Shown != want.shown || h.Explain != want.explain {
			t.Errorf("%s: got %s %q %q, want %s %q %q", row, h.Verdict, h.Shown, h.Explain, want.verdict, want.shown, want.explain)
		}
	}
	if rep.Pass {
		t.Error("a missed hot-path target must fail the run under -strict")
	}
	var buf bytes.Buffer
	printTable(&buf, rep)
	if !strings.Contains(buf.String(), "MISS — why: bench/README.md#miss-rss") {
		t.Errorf("the table does not point a MISS at its explanation:\n%s", buf.String())
	}
}
