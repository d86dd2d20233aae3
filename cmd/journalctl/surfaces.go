package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
)

// surfaceView is the stable JSON shape of one surface in state-surfaces.
type surfaceView struct {
	*registry.Surface
	Live engine.SurfaceStatus `json:"live"`
	// Coverage is the surface's coverage proof as journalctl serve last
	// persisted it; absent when there are no figures.
	Coverage *coverage.SurfaceReport `json:"coverage,omitempty"`
}

func newSurfacesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state-surfaces",
		Short: "List the registered surfaces with their registry attributes and live journal figures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := g.registry()
			if err != nil {
				return g.fail(exitUsage, err)
			}
			opts, err := g.engineOptions()
			if err != nil {
				return g.fail(exitUsage, err)
			}
			if g.root != "" {
				reg = reg.WithRoot(g.root)
			} else {
				reg = reg.WithRoot(".")
			}
			live := map[string]engine.SurfaceStatus{}
			var cov *coverage.Report
			// Live figures come from the journal when there is one; a
			// registry-only listing works without a data directory.
			if j, err := engine.Open(g.dir, append(opts, engine.ReadOnly())...); err == nil {
				for _, s := range j.Status().Surfaces {
					live[s.ID] = s
				}
				cov, _, _ = readCoverage(j)
				j.Close()
			}
			var out []surfaceView
			for _, s := range reg.Surfaces() {
				l := live[s.ID]
				l.ID = s.ID
				v := surfaceView{Surface: s, Live: l}
				if cov != nil {
					v.Coverage = cov.Surface(s.ID)
				}
				out = append(out, v)
			}
			if g.json {
				return g.printJSON(map[string]any{"registry_digest": reg.Digest(), "surfaces": out})
			}
			t := g.newTable(
				// The first to give up width are the least read columns.
				// The first to give up width, then to be left out, are the
				// least read columns; --json has them all.
				column{title: "SURFACE", shrink: 1, min: 20}, column{title: "OWNER", shrink: 5, min: 8, drop: 6},
				column{title: "TRUTH", shrink: 6, min: 9, drop: 5}, column{title: "HEALTH", drop: 3}, column{title: "PANEL", drop: 4},
				column{title: "AUTHORITY", shrink: 2, min: 9, drop: 2}, column{title: "SNAPSHOT", shrink: 3, min: 10},
				column{title: "JOURNAL"}, column{title: "STORAGE", shrink: 7, min: 8, drop: 7}, column{title: "RECORDS"},
				column{title: "LAST SEQ", drop: 1}, column{title: "LAST CHANGE", shrink: 4, min: 12},
				column{title: "COVERAGE", drop: 9}, column{title: "RETIRE", shrink: 8, min: 6, drop: 8})
			for _, v := range out {
				s := v.Surface
				storage := s.Storage.Kind
				if s.Storage.Path != "" {
					storage += ":" + s.Storage.Path
				}
				truth := s.Truth
				if len(s.DerivedFrom) > 0 {
					truth += "(" + strings.Join(s.DerivedFrom, ",") + ")"
				}
				last := "-"
				if v.Live.LastAt != nil {
					last = fmt.Sprintf("%s %s ago", v.Live.LastChangeType, humanDuration(time.Since(*v.Live.LastAt).Round(time.Second)))
				}
				lastSeq := "-"
				if v.Live.LastSequence > 0 {
					lastSeq = fmt.Sprint(v.Live.LastSequence)
				}
				verdict, retire := "-", "no — no coverage figures yet (journalctl serve writes them)"
				if why := coverage.NotObservedWhy(s); v.Coverage == nil && why != "" {
					// Never watched: no server run would bring figures.
					verdict, retire = coverage.VerdictNotObserved, "no — "+why
				}
				if v.Coverage != nil {
					verdict, retire = v.Coverage.Verdict, v.Coverage.RetireText()
					if v.Coverage.Verdict != coverage.VerdictNotObserved {
						verdict += fmt.Sprintf(" %d/%d %s", v.Coverage.Matched, v.Coverage.Observed, ratioText(v.Coverage.Ratio))
					}
					if v.Coverage.Disagreement != "" {
						retire = "FLAGGED " + retire
					}
				}
				t.add(s.ID, s.Owner, truth, yesNo(s.AffectsHealth), yesNo(s.AffectsActionPanel), s.Authority, s.SnapshotHint,
					string(s.Journal.Mode), storage, fmt.Sprint(v.Live.Records), lastSeq, last, verdict, retire)
			}
			return t.print(g.out)
		},
	}
}
