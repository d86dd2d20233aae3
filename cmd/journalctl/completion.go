package main

import (
	"strings"

	"github.com/agentruntime/statejournal/record"
	"github.com/spf13/cobra"
)

// completeJournalFlags registers the value completions of state-journal's
// own flags.
func completeJournalFlags(g *globals, cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("output", fixedValues(outputFormats...))
}

// registerCompletions gives every command's enumerated flags their values
// in shell completion: --surface the surface ids of the registry the
// flags name (--surfaces, else the embedded catalog), --change-type the
// record contract's change types, --severity and --min-severity the
// severities, --sync the sync policies. It walks the whole tree, so the
// runtime-prefixed commands complete alike.
func registerCompletions(g *globals, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		fl := c.LocalNonPersistentFlags()
		reg := func(name string, fn cobra.CompletionFunc) {
			if fl.Lookup(name) != nil {
				if _, ok := c.GetFlagCompletionFunc(name); !ok {
					_ = c.RegisterFlagCompletionFunc(name, fn)
				}
			}
		}
		reg("surface", g.completeSurfaces)
		reg("change-type", listValues(record.ChangeTypes()...))
		reg("severity", fixedValues(record.Severities()...))
		reg("min-severity", fixedValues(record.Severities()...))
		reg("sync", fixedValues("always", "interval", "none"))
		reg("output", fixedValues(outputFormats...))
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeSurfaces offers the registry's surface ids; the flag takes a
// comma-separated list, so it completes the item after the last comma.
func (g *globals) completeSurfaces(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	reg, err := g.registry()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var ids []string
	for _, s := range reg.Surfaces() {
		ids = append(ids, s.ID)
	}
	return listValues(ids...)(cmd, args, toComplete)
}

// fixedValues completes one of vals.
func fixedValues(vals ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return vals, cobra.ShellCompDirectiveNoFileComp
	}
}

// listValues completes the item after the last comma of a
// comma-separated list of vals.
func listValues(vals ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		prefix := ""
		if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
			prefix = toComplete[:i+1]
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			if strings.HasPrefix(prefix+v, toComplete) {
				out = append(out, prefix+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}
