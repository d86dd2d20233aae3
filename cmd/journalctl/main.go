// Command journalctl inspects, validates, compacts and writes the State
// Change Journal, and runs its server. Its commands carry the runtime's
// names (state-surfaces, state-journal, ...) and are also reachable as
// `journalctl runtime <command>`, so the runtime's scripts only swap the
// program name. Every command takes --json.
//
// Exit codes, the same for every command and the runtime-prefixed forms:
// 0 success; 1 refused input, problems found or a failure; 2 usage (an
// unknown or missing command, an unknown flag, a missing or bad flag
// value — a value given on the command line that the record contract
// refuses, such as --severity loud, is a bad flag value). Under --json
// every error, usage errors included, is one JSON object on one line of
// standard output, {"error": {"code": ..., "message": ...}}, with a
// stable code from types.CodeTable; without --json the message goes to
// standard error.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/types"
)

// Exit codes (types.ExitOK, ...).
const (
	exitOK       = types.ExitOK
	exitProblems = types.ExitFailure
	exitUsage    = types.ExitUsage
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a command-line mistake. It matches types.ErrUsage and
// whatever it wraps, so a bad flag value that the record contract
// refuses keeps that code (invalid_change, unknown_surface) in JSON.
type usageError struct{ err error }

func (e *usageError) Error() string   { return e.err.Error() }
func (e *usageError) Unwrap() []error { return []error{e.err, types.ErrUsage} }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: &usageError{err: fmt.Errorf(format, a...)}}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root, g := newRootCmd()
	g.out, g.errOut = stdout, stderr
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Errors that no RunE returned are cobra's own: unknown command,
		// unknown flag, bad flag value, wrong arguments.
		ee = &exitError{code: exitUsage, err: &usageError{err: err}}
	}
	if errors.Is(ee.err, errReported) {
		return ee.code
	}
	// The flags may not have been parsed when the error came (an unknown
	// flag before --json): look at the command line itself.
	if g.json || jsonRequested(args) {
		printJSONLine(stdout, map[string]any{"error": errorBody(ee)})
		return ee.code
	}
	fmt.Fprintln(stderr, "journalctl:", ee.err)
	return ee.code
}

// jsonRequested reports whether args ask for --json (the last --json or
// --json=BOOL before a "--" wins), for errors raised before the flags
// were parsed.
func jsonRequested(args []string) bool {
	on := false
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" {
			on = true
		} else if v, ok := strings.CutPrefix(a, "--json="); ok {
			on, _ = parse.Bool(v)
		}
	}
	return on
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"encode output"}}`)
	}
	w.Write(append(b, '\n'))
}

// errReported marks an error whose message was already printed.
var errReported = errors.New("reported")

// commandNames are the journal's commands under c (the root or runtime),
// for "a command is required" and "unknown command" errors: read from
// the commands registered, so a new command is never left out.
func commandNames(c *cobra.Command) string {
	var names []string
	for _, sub := range c.Commands() {
		switch sub.Name() {
		case "help", "completion", "runtime":
			continue
		}
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return strings.Join(names, ", ")
}

func newRootCmd() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:   "journalctl",
		Short: "State Change Journal and Runtime State Engine",
		Long: `journalctl inspects, validates, compacts and writes the State Change Journal,
and runs its server (journalctl serve).

The journal records that a runtime surface changed (runtime-state-change-v1
records); it is a notification aid, never the source of truth.

Exit codes, for every command: 0 success; 1 refused input, problems found or
a failure; 2 usage (unknown command or flag, missing or bad flag value).
Under --json every error is one JSON object on standard output:
{"error": {"code": "...", "message": "..."}}.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		Args:          commandArgs("journalctl"),
		RunE:          noCommand,
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
			newCoverageCmd(g),
			newRelayCmd(g),
		}
	}
	root.AddCommand(cmds()...)
	rt := &cobra.Command{
		Use:   "runtime",
		Short: "The same commands under the runtime's prefix (journalctl runtime state-journal ...)",
		Args:  commandArgs("journalctl runtime"),
		RunE:  noCommand,
	}
	rt.AddCommand(cmds()...)
	root.AddCommand(rt)
	registerCompletions(g, root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (see %s --help)", err, c.CommandPath())
	})
	wrapRunE(root)
	return root, g
}

// commandArgs refuses an unknown command after a command group (cobra
// itself checks only the root, and without this `journalctl runtime
// typo` would print help and exit 0).
func commandArgs(path string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], path)
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageErr("%s; commands: %s (see %s --help)", msg, commandNames(cmd), path)
	}
}

// noCommand is the RunE of the root and of `runtime`: a command is
// required. The help goes to standard error so that --json output stays
// one JSON object.
func noCommand(cmd *cobra.Command, args []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Help()
	return usageErr("a command is required: one of %s", commandNames(cmd))
}

// wrapRunE gives every command's error its exit code: an error a command
// returns without one gets the code its error code has in types.CodeTable
// (1, or 2 for bad_registry and invalid_query).
func wrapRunE(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if err == nil {
				return nil
			}
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			return &exitError{code: types.ExitCode(types.Code(err)), err: err}
		}
	}
	for _, sub := range c.Commands() {
		wrapRunE(sub)
	}
}
