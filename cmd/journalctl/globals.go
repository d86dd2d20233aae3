package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// globals are the flags every command shares.
type globals struct {
	dir      string
	surfaces string
	root     string
	json     bool
	logLevel string
	// tokenFile names the file holding the server's bearer token: serve
	// guards its API with it, the other commands send it when they talk
	// to a server.
	tokenFile string
	out       io.Writer
	errOut    io.Writer
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (g *globals) bind(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&g.dir, "dir", envOr("STATE_JOURNAL_DIR", engine.DefaultDir), "journal data directory (env STATE_JOURNAL_DIR)")
	pf.StringVar(&g.surfaces, "surfaces", os.Getenv("STATE_JOURNAL_SURFACES"), "surface registry file, YAML or JSON (env STATE_JOURNAL_SURFACES; default: the embedded catalog)")
	pf.StringVar(&g.root, "root", "", "runtime root that relative storage paths resolve against (default: the working directory)")
	boolVar(pf, &g.json, "json", "", false, "print stable JSON instead of tables")
	pf.StringVar(&g.tokenFile, "token-file", os.Getenv("STATE_JOURNAL_TOKEN_FILE"), "file holding the server's bearer token, one line, chmod 600 (env STATE_JOURNAL_TOKEN_FILE); serve requires it on every endpoint but /healthz and /readyz, other commands send it to the server")
	pf.StringVar(&g.logLevel, "log-level", envOr("STATE_JOURNAL_LOG_LEVEL", "warn"), "log level: debug, info, warn, error")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		g.out = cmd.OutOrStdout()
		g.errOut = cmd.ErrOrStderr()
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
			return usageErr("--log-level %q is not one of: debug, info, warn, error", g.logLevel)
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
		return nil
	}
}

// registry loads the surface registry the flags name.
func (g *globals) registry() (*registry.Registry, error) {
	if g.surfaces == "" {
		return registry.Default(), nil
	}
	r, err := registry.Load(g.surfaces)
	if err != nil {
		return nil, usageErr("--surfaces %s: %w", g.surfaces, err)
	}
	return r, nil
}

// engineOptions returns the options shared by every Open.
func (g *globals) engineOptions() ([]engine.Option, error) {
	reg, err := g.registry()
	if err != nil {
		return nil, err
	}
	opts := []engine.Option{engine.WithRegistry(reg), engine.WithLogger(slog.Default())}
	if g.root != "" {
		opts = append(opts, engine.WithRoot(g.root))
	}
	return opts, nil
}

// openRead opens the journal read-only: no lock, no file changed, so it
// works beside a running server. A data directory that does not exist is
// types.ErrNoJournal (code no_journal), not an internal error.
func (g *globals) openRead() (*engine.Journal, error) {
	if err := g.checkJournalDir(); err != nil {
		return nil, err
	}
	opts, err := g.engineOptions()
	if err != nil {
		return nil, err
	}
	return engine.Open(g.dir, append(opts, engine.ReadOnly())...)
}

// token returns the bearer token of --token-file, or "" when none is
// named. A token in the environment (the retired STATE_JOURNAL_TOKEN) is
// refused rather than ignored, so an old setup fails loudly instead of
// answering 401 later.
func (g *globals) token() (string, error) {
	if os.Getenv("STATE_JOURNAL_TOKEN") != "" {
		return "", usageErr("STATE_JOURNAL_TOKEN is no longer read: write the token to a file (chmod 600) and set STATE_JOURNAL_TOKEN_FILE or pass --token-file")
	}
	if g.tokenFile == "" {
		return "", nil
	}
	tok, err := server.ReadTokenFile(g.tokenFile)
	if err != nil {
		return "", usageErr("--token-file: %v", err)
	}
	return tok, nil
}

// dial returns a client of the server that holds the data directory,
// sending the token of --token-file.
func (g *globals) dial(h *engine.Holder) (*server.Client, error) {
	tok, err := g.token()
	if err != nil {
		return nil, err
	}
	return server.Dial(h.Socket, h.Address, tok), nil
}

// checkJournalDir refuses, with types.ErrNoJournal, a data directory
// that does not exist or is not a directory: reading commands never
// create one.
func (g *globals) checkJournalDir() error {
	fi, err := os.Stat(g.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &noJournalError{dir: g.dir, reason: "the directory does not exist (set --dir or STATE_JOURNAL_DIR, or write a record first)"}
	case err != nil:
		return &noJournalError{dir: g.dir, reason: err.Error()}
	case !fi.IsDir():
		return &noJournalError{dir: g.dir, reason: "it is not a directory (set --dir or STATE_JOURNAL_DIR)"}
	}
	return nil
}

// checkWritableDir refuses a data directory path that names something
// other than a directory; a missing one is created by the writer.
func (g *globals) checkWritableDir() error {
	if fi, err := os.Stat(g.dir); err == nil && !fi.IsDir() {
		return &noJournalError{dir: g.dir, reason: "it is not a directory (set --dir or STATE_JOURNAL_DIR)"}
	}
	return nil
}

// noJournalError is a data directory a reading command cannot read. It
// matches types.ErrNoJournal (code no_journal).
type noJournalError struct{ dir, reason string }

func (e *noJournalError) Error() string { return fmt.Sprintf("no journal at %s: %s", e.dir, e.reason) }
func (e *noJournalError) Unwrap() error { return types.ErrNoJournal }

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns an aligned table writer; call Flush when done.
func (g *globals) table() *tabwriter.Writer {
	return tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
}

// fail returns err with exit code code; run prints it (as one JSON
// object on standard output with --json, else on standard error). A
// usage error (exit 2) stays one, whoever reports it.
func (g *globals) fail(code int, err error) error {
	var inner *exitError
	if errors.As(err, &inner) {
		return inner
	}
	if types.ExitCode(types.Code(err)) == exitUsage {
		code = exitUsage // bad_registry, invalid_query: the command line was wrong
	}
	return &exitError{code: code, err: err}
}

// errorBody is the stable JSON shape of an error: code (types.CodeTable),
// message, and for a field error field, value, problem, allowed,
// suggestion and index.
func errorBody(err error) map[string]any {
	code := types.Code(err)
	var ee *exitError
	if code == types.CodeInternal && errors.As(err, &ee) && ee.code == exitUsage {
		code = types.CodeUsage
	}
	b := map[string]any{"code": code, "message": strings.TrimPrefix(err.Error(), "journalctl: ")}
	var ce *server.CompactedError
	if errors.As(err, &ce) {
		// The cursor vocabulary of the HTTP answer (server.CompactedError).
		b["after"], b["horizon"], b["resume_after"] = ce.After, ce.Horizon, ce.ResumeAfter()
	}
	var fe *types.FieldError
	if errors.As(err, &fe) {
		b["field"] = fe.Field
		if fe.Value != "" {
			b["value"] = fe.Value
		}
		b["problem"] = fe.Problem
		if len(fe.Allowed) > 0 {
			b["allowed"] = fe.Allowed
		}
		if fe.Suggestion != "" {
			b["suggestion"] = fe.Suggestion
		}
		if fe.Index >= 0 {
			b["index"] = fe.Index
		}
	}
	return b
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
