package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	pf.BoolVar(&g.json, "json", false, "print stable JSON instead of tables")
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
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--surfaces %s: %w", g.surfaces, err)}
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
// works beside a running server.
func (g *globals) openRead() (*engine.Journal, error) {
	if _, err := os.Stat(g.dir); err != nil {
		return nil, fmt.Errorf("no journal at %s (set --dir or STATE_JOURNAL_DIR): %w", g.dir, err)
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

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns an aligned table writer; call Flush when done.
func (g *globals) table() *tabwriter.Writer {
	return tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
}

// fail reports err (as JSON on stdout with --json, else on stderr) and
// returns an exitError with code.
func (g *globals) fail(code int, err error) error {
	var inner *exitError
	if errors.As(err, &inner) {
		// A usage error (exit 2) stays one, whoever reports it.
		code = inner.code
		if errors.Is(inner.err, errReported) {
			return inner
		}
	}
	if g.json {
		_ = g.printJSON(map[string]any{"error": errorBody(err)})
		return &exitError{code: code, err: errReported}
	}
	return &exitError{code: code, err: err}
}

// errorBody is the stable JSON shape of an error.
func errorBody(err error) map[string]any {
	code := types.Code(err)
	var ee *exitError
	if code == "internal" && errors.As(err, &ee) && ee.code == exitUsage {
		code = "usage"
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
