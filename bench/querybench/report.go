package querybench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets are the limits the issue sets for the query benchmark.
type Targets struct {
	Rare           time.Duration // median newest-50 rare-surface query
	Stale          time.Duration // median Stale(head-100)
	OpenCheckpoint time.Duration // median Open with the checkpoint (page cache warm)
	// Flatness bounds the rare query's median at the largest size as a
	// multiple of its median at the smallest.
	Flatness float64
}

// DefaultTargets returns the targets: 5 ms, 100 µs, 1 s, 2×.
func DefaultTargets() Targets {
	return Targets{Rare: 5 * time.Millisecond, Stale: 100 * time.Microsecond, OpenCheckpoint: time.Second, Flatness: 2}
}

// Check is one target checked against one figure.
type Check struct {
	Name    string `json:"name"`
	Records uint64 `json:"records,omitempty"` // 0 for checks across sizes
	Got     string `json:"got"`
	Limit   string `json:"limit"`
	Pass    bool   `json:"pass"`
}

// Verdict returns "PASS" or "MISS".
func (c Check) Verdict() string {
	if c.Pass {
		return "PASS"
	}
	return "MISS"
}

// Checks checks every result against t, and the rare query's flatness
// from the smallest to the largest result when there are two sizes or
// more.
func (t Targets) Checks(results []Result) []Check {
	var out []Check
	for _, r := range results {
		out = append(out,
			Check{Name: "rare", Records: r.Records, Got: fmtDur(r.Rare.Median), Limit: "< " + fmtDur(t.Rare), Pass: r.Rare.Median < t.Rare},
			Check{Name: "stale", Records: r.Records, Got: fmtDur(r.Stale.Median), Limit: "< " + fmtDur(t.Stale), Pass: r.Stale.Median < t.Stale},
			Check{Name: "open", Records: r.Records, Got: fmtDur(r.OpenWith.Time.Median), Limit: "< " + fmtDur(t.OpenCheckpoint), Pass: r.OpenWith.Time.Median < t.OpenCheckpoint},
		)
	}
	if lo, hi, ok := extremes(results); ok {
		ratio := float64(hi.Rare.Median) / float64(lo.Rare.Median)
		out = append(out, Check{
			Name:  fmt.Sprintf("flat %s→%s", SizeName(int(lo.Records)), SizeName(int(hi.Records))),
			Got:   fmt.Sprintf("%.2f×", ratio),
			Limit: fmt.Sprintf("≤ %g×", t.Flatness),
			Pass:  ratio <= t.Flatness,
		})
	}
	return out
}

// extremes returns the smallest and the largest result by records.
func extremes(results []Result) (lo, hi Result, ok bool) {
	if len(results) < 2 {
		return lo, hi, false
	}
	lo, hi = results[0], results[0]
	for _, r := range results[1:] {
		if r.Records < lo.Records {
			lo = r
		}
		if r.Records > hi.Records {
			hi = r
		}
	}
	return lo, hi, lo.Records < hi.Records && lo.Rare.Median > 0
}

// WriteTable prints one line per result and the checks, and returns the
// number of missed targets.
func WriteTable(w io.Writer, results []Result, t Targets) int {
	checks := t.Checks(results)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "records\tarchives\tMiB\tbuild\trare-50 p50\tp99\tstale p50\tcursor-1k p50\tscan p50\t(records)\topen no-ckpt\topen ckpt\tckpt cold\tRSS+ MiB\tchecks\t")
	for _, r := range results {
		var marks []string
		for _, c := range checks {
			if c.Records == r.Records {
				marks = append(marks, c.Name+" "+c.Verdict())
			}
		}
		cold := fmtDur(r.OpenCold.Time.Median)
		if r.OpenCold.Err != "" {
			cold = "n/a"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
			SizeName(int(r.Records)), r.Archives, float64(r.ArchiveBytes)/(1<<20), fmtDur(r.BuildTime),
			fmtDur(r.Rare.Median), fmtDur(r.Rare.P99), fmtDur(r.Stale.Median), fmtDur(r.Cursor.Median),
			fmtDur(r.Scan.Median), r.ScanReturned,
			fmtDur(r.OpenWithout.Time.Median), fmtDur(r.OpenWith.Time.Median), cold,
			fmt.Sprintf("%.0f/%.0f", float64(r.OpenWithout.RSSGrowth)/(1<<20), float64(r.OpenWith.RSSGrowth)/(1<<20)),
			strings.Join(marks, ", "))
	}
	tw.Flush()
	misses := 0
	var missed []string
	for _, c := range checks {
		if c.Records == 0 {
			fmt.Fprintf(w, "flatness: rare-50 p50 grows %s from %s (target %s): %s\n", c.Got, strings.TrimPrefix(c.Name, "flat "), c.Limit, c.Verdict())
		}
		if !c.Pass {
			misses++
			at := ""
			if c.Records > 0 {
				at = " at " + SizeName(int(c.Records))
			}
			missed = append(missed, fmt.Sprintf("%s%s: %s, target %s", c.Name, at, c.Got, c.Limit))
		}
	}
	fmt.Fprintf(w, "targets: %d PASS, %d MISS (rare-50 p50 < %s, stale p50 < %s, open with checkpoint p50 < %s, flatness ≤ %g×)\n",
		len(checks)-misses, misses, fmtDur(t.Rare), fmtDur(t.Stale), fmtDur(t.OpenCheckpoint), t.Flatness)
	for _, m := range missed {
		fmt.Fprintf(w, "  MISS %s\n", m)
	}
	return misses
}

// fmtDur prints a duration with three significant digits in a fitting
// unit.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
