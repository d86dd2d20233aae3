package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
)

// coverageFlags tune the coverage watcher of serve and state-coverage.
type coverageFlags struct {
	off         bool
	window      time.Duration
	settle      time.Duration
	settleCap   time.Duration
	minObserved time.Duration
	rescan      time.Duration
	minMatched  int
}

func (f *coverageFlags) bind(fl *pflag.FlagSet, serve bool) {
	if serve {
		boolVar(fl, &f.off, "no-coverage", "", false, "run no coverage watcher (the figures in state/coverage.json stay as they are)")
	}
	fl.Var(newDurationFlag(&f.window, coverage.DefaultWindow), "coverage-window", "a record up to this long before or after a file write matches it")
	fl.Var(newDurationFlag(&f.settle, coverage.DefaultSettleIdle), "coverage-settle", "a file quiet for this long has settled and is fingerprinted")
	fl.Var(newDurationFlag(&f.settleCap, coverage.DefaultSettleCap), "coverage-settle-cap", "a file that never goes quiet is fingerprinted at least this often")
	fl.IntVar(&f.minMatched, "coverage-min-matched", coverage.DefaultMinMatched, "N: matched changes with no miss and no gap a surface needs to be proven")
	fl.Var(newDurationFlag(&f.minObserved, coverage.DefaultMinObserved), "coverage-min-observed", "T: watched time with no miss and no gap a surface needs to be proven")
	fl.Var(newDurationFlag(&f.rescan, coverage.DefaultRescan), "coverage-rescan", "interval of the scheduled rescan by content hash")
}

// config checks the flags and returns the watcher's configuration.
func (f *coverageFlags) config() (coverage.Config, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--coverage-window", f.window}, {"--coverage-settle", f.settle}, {"--coverage-settle-cap", f.settleCap},
		{"--coverage-min-observed", f.minObserved}, {"--coverage-rescan", f.rescan}} {
		if d.v <= 0 {
			return coverage.Config{}, usageErr("%s %s: want a positive duration, e.g. 10s", d.name, d.v)
		}
	}
	if f.settleCap < f.settle {
		return coverage.Config{}, usageErr("--coverage-settle-cap %s is below --coverage-settle %s: want a cap at least the settle time", f.settleCap, f.settle)
	}
	if f.minMatched < 1 {
		return coverage.Config{}, usageErr("--coverage-min-matched %d: want 1 or more matched changes", f.minMatched)
	}
	return coverage.Config{Window: f.window, SettleIdle: f.settle, SettleCap: f.settleCap, MinMatched: f.minMatched,
		MinObserved: f.minObserved, Rescan: f.rescan, Logger: slog.Default()}, nil
}

// startCoverage starts serve's coverage watcher: persisted, journaling its
// transitions, its metrics on reg. It returns nil with --no-coverage.
func startCoverage(f *coverageFlags, cfg coverage.Config, j *engine.Journal, reg prometheus.Registerer) (*coverage.Watcher, error) {
	if f.off {
		return nil, nil
	}
	cfg.Persist, cfg.Journal, cfg.Registerer = true, true, reg
	return coverage.Open(j, cfg)
}

// coverageOutput is the stable JSON of state-coverage.
type coverageOutput struct {
	// Source is "state_file" (the figures journalctl serve persisted) or
	// "audit" (a one-off watch of --watch).
	Source string `json:"source"`
	// UpdatedAt is when the server last wrote the figures (state_file).
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	// Watched is the audit's duration.
	Watched string          `json:"watched,omitempty"`
	Report  coverage.Report `json:"report"`
}

func newCoverageCmd(g *globals) *cobra.Command {
	var (
		f     coverageFlags
		watch time.Duration
	)
	cmd := &cobra.Command{
		Use:   "state-coverage",
		Short: "Show the coverage proof per surface: can its file watcher be retired, and why (--watch: a one-off audit)",
		Long: `Show the coverage proof of every surface (docs/coverage.md): the changes the
coverage watcher of journalctl serve saw in the surface's file or directory,
how many a journal record matched, the unjournaled ones with their paths and
times, gaps, the ratio, the observation span, the verdict, and whether the
surface's file watcher can be retired.

Without --watch it reads the figures the server persists in
<dir>/state/coverage.json (it changes no file). With --watch DURATION it
runs a one-off audit: it watches the surfaces' files for DURATION (or until
interrupted), matches what changes against the journal, and reports figures
of that run only, without writing anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("watch") && watch <= 0 {
				return usageErr("--watch %s: want a positive duration, e.g. 30s", watch)
			}
			j, err := g.openRead()
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer j.Close()
			var out coverageOutput
			if watch > 0 {
				w, err := coverage.Open(j, cfg)
				if err != nil {
					return g.fail(exitProblems, err)
				}
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
				t := time.NewTimer(watch)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
				stop()
				out = coverageOutput{Source: "audit", Watched: humanDuration(watch), Report: w.Report()}
				if err := w.Close(); err != nil {
					return g.fail(exitProblems, err)
				}
			} else {
				p, err := coverage.ReadPersisted(j.Dir(), j.Status().JournalID)
				if err != nil {
					return g.fail(exitProblems, fmt.Errorf("coverage figures: %w", err))
				}
				if p == nil {
					return g.fail(exitProblems, fmt.Errorf("no coverage figures in %s/state/%s: journalctl serve writes them while it runs (unless --no-coverage); run state-coverage --watch 1m for a one-off audit", j.Dir(), coverage.StateFileName))
				}
				at := p.UpdatedAt
				out = coverageOutput{Source: "state_file", UpdatedAt: &at, Report: p.Report}
			}
			if g.json {
				return g.printJSON(out)
			}
			head := "Figures of a one-off audit of " + out.Watched + " (nothing persisted)"
			if out.UpdatedAt != nil {
				head = "Figures persisted by journalctl serve at " + humanTime(*out.UpdatedAt)
				if held, _ := engine.LockHolder(j.Dir()); !held {
					head += " (no server runs now: nothing is being watched)"
				}
			}
			fmt.Fprintln(g.out, head)
			return g.printCoverage(&out.Report, true)
		},
	}
	fl := cmd.Flags()
	fl.Var(newDurationFlag(&watch, 0), "watch", "run a one-off audit for this long instead of reading the server's figures, e.g. 30s, 10m")
	f.bind(fl, false)
	return cmd
}

// readCoverage returns the figures the server persisted for j, nil when
// there are none; a file that is not believed is reported as problem.
func readCoverage(j *engine.Journal) (rep *coverage.Report, updated *time.Time, problem string) {
	p, err := coverage.ReadPersisted(j.Dir(), j.Status().JournalID)
	if err != nil {
		return nil, nil, err.Error()
	}
	if p == nil {
		return nil, nil, ""
	}
	return &p.Report, &p.UpdatedAt, ""
}

// printCoverage prints the coverage table and, per surface, whether its
// file watcher can be retired; details adds gaps and the misses.
func (g *globals) printCoverage(r *coverage.Report, details bool) error {
	fmt.Fprintf(g.out, "Proven needs: %d matched changes and %s of watched time, with no miss and no gap\n", r.MinMatched, r.MinTime)
	fmt.Fprintf(g.out, "Watcher: %s, window ±%s, rescan every %s\n", plural(r.Watches, "directory", "directories"), r.Window, r.Rescan)
	fmt.Fprintf(g.out, "inotify: max_user_watches %d, max_queued_events %d\n", r.Limits.MaxUserWatches, r.Limits.MaxQueuedEvents)
	if r.StateReset != "" {
		fmt.Fprintf(g.out, "Figures reset: %s\n", r.StateReset)
	}
	t := g.newTable(column{title: "SURFACE", shrink: 1, min: 16}, column{title: "MODE"}, column{title: "VERDICT"},
		column{title: "OBSERVED"}, column{title: "MATCHED"}, column{title: "UNJOURNALED"}, column{title: "UNATTRIBUTABLE", drop: 2},
		column{title: "GAPS", drop: 1}, column{title: "RATIO"}, column{title: "SPAN", drop: 3}, column{title: "WAITING", drop: 4})
	for _, s := range r.Surfaces {
		if s.Verdict == coverage.VerdictNotObserved {
			t.add(s.ID, s.Mode, s.Verdict, "-", "-", "-", "-", "-", "-", "-", "-")
			continue
		}
		t.add(s.ID, s.Mode, s.Verdict, fmt.Sprint(s.Observed), fmt.Sprint(s.Matched), fmt.Sprint(s.Unjournaled),
			fmt.Sprint(s.Unattributable), fmt.Sprint(s.Gaps), ratioText(s.Ratio), humanDuration(time.Duration(s.ObservedSeconds)*time.Second),
			fmt.Sprint(s.Pending))
	}
	if err := t.print(g.out); err != nil {
		return err
	}
	fmt.Fprintln(g.out)
	for _, s := range r.Surfaces {
		fmt.Fprintf(g.out, "%s: file watcher can be retired: %s\n", s.ID, s.RetireText())
		if s.Disagreement != "" {
			fmt.Fprintf(g.out, "  FLAGGED: %s\n", s.Disagreement)
		}
		if !details {
			continue
		}
		if s.LastGap != nil {
			to := "open"
			if !s.LastGap.To.IsZero() {
				to = humanTime(s.LastGap.To)
			}
			fmt.Fprintf(g.out, "  last gap: %s to %s, %d unattributable: %s\n", humanTime(s.LastGap.From), to, s.LastGap.Unattributable, s.LastGap.Reason)
		}
		for _, m := range s.Misses {
			fmt.Fprintf(g.out, "  unjournaled: %s at %s (%s)\n", m.Path, humanTime(m.At), m.Fingerprint)
		}
	}
	return nil
}

func ratioText(r *float64) string {
	if r == nil {
		return "-"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", *r), "0"), ".")
}

// closeCoverage stops serve's coverage watcher (nil: none) and persists
// its figures.
func closeCoverage(w *coverage.Watcher) error {
	if w == nil {
		return nil
	}
	return w.Close()
}
