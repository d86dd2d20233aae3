// Command journalctl inspects, validates, compacts and writes the State
// Change Journal, and runs its server. Its commands carry the runtime's
// names (state-surfaces, state-journal, ...) and are also reachable as
// `journalctl runtime <command>`, so the runtime's scripts only swap the
// program name. Every command takes --json.
//
// Exit codes: 0 success, 1 failure or problems found, 2 usage error.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK       = 0
	exitProblems = 1
	exitUsage    = 2
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root, g := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Cobra's own flag and argument errors are usage errors.
		ee = &exitError{code: exitUsage, err: err}
	}
	if g.json && g.out != nil && !errors.Is(ee.err, errReported) {
		// Under --json every error is a JSON object with a stable code.
		_ = g.printJSON(map[string]any{"error": errorBody(ee)})
		return ee.code
	}
	if ee.err != nil && !errors.Is(ee.err, errReported) {
		fmt.Fprintln(os.Stderr, "journalctl:", ee.err)
	}
	return ee.code
}

// errReported marks an error whose message was already printed.
var errReported = errors.New("reported")

func newRootCmd() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:   "journalctl",
		Short: "State Change Journal and Runtime State Engine",
		Long: `journalctl inspects, validates, compacts and writes the State Change Journal,
and runs its server (journalctl serve).

The journal records that a runtime surface changed (runtime-state-change-v1
records); it is a notification aid, never the source of truth.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("journalctl {{.Version}}\n")
	g.bind(root)
	cmds := func() []*cobra.Command {
		return []*cobra.Command{
			newSurfacesCmd(g),
			newJournalCmd(g),
			newStatusCmd(g),
			newRecordCmd(g),
			newValidateCmd(g),
			newCompactCmd(g),
			newServeCmd(g),
		}
	}
	root.AddCommand(cmds()...)
	rt := &cobra.Command{
		Use:   "runtime",
		Short: "The same commands under the runtime's prefix (journalctl runtime state-journal ...)",
	}
	rt.AddCommand(cmds()...)
	root.AddCommand(rt)
	registerCompletions(g, root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (see %s --help)", err, c.CommandPath())
	})
	return root, g
}
