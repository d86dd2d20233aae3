package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
)

// surfaceView is the stable JSON shape of one surface in state-surfaces.
type surfaceView struct {
	*registry.Surface
	Live engine.SurfaceStatus `json:"live"`
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
			// Live figures come from the journal when there is one; a
			// registry-only listing works without a data directory.
			if j, err := engine.Open(g.dir, append(opts, engine.ReadOnly())...); err == nil {
				for _, s := range j.Status().Surfaces {
					live[s.ID] = s
				}
				j.Close()
			}
			var out []surfaceView
			for _, s := range reg.Surfaces() {
				l := live[s.ID]
				l.ID = s.ID
				out = append(out, surfaceView{Surface: s, Live: l})
			}
			if g.json {
				return g.printJSON(map[string]any{"registry_digest": reg.Digest(), "surfaces": out})
			}
			tw := g.table()
			fmt.Fprintln(tw, "SURFACE\tOWNER\tTRUTH\tHEALTH\tPANEL\tAUTHORITY\tSNAPSHOT\tJOURNAL\tSTORAGE\tRECORDS\tLAST SEQ\tLAST CHANGE")
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
					last = fmt.Sprintf("%s %s ago", v.Live.LastChangeType, time.Since(*v.Live.LastAt).Round(time.Second))
				}
				lastSeq := "-"
				if v.Live.LastSequence > 0 {
					lastSeq = fmt.Sprint(v.Live.LastSequence)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Owner, truth, yesNo(s.AffectsHealth),
					yesNo(s.AffectsActionPanel), s.Authority, s.SnapshotHint, s.Journal.Mode, storage, v.Live.Records, lastSeq, last)
			}
			return tw.Flush()
		},
	}
}
