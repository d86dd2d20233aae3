package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen string
		socket string
		sync   string
		token  string
		rf     retentionFlags
		noAuto bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the journal server: HTTP on loopback and a Unix socket in the data directory",
		Long: `Run the journal daemon. It takes the data directory's writer lock, serves the
HTTP API (POST/GET /v1/changes, /v1/surfaces, /v1/status, /v1/validate,
/v1/compact, /healthz, /metrics) on --listen and on a Unix socket (mode 0600) in the data
directory, and on SIGTERM or SIGINT drains in-flight requests, commits and
fsyncs what was accepted, and releases the lock.

Sealed hot segments are compacted into zstd archives in the background and
retention (--max-bytes, --max-age, --max-records) keeps the journal bounded.

Listening beyond loopback needs a bearer token (--token or STATE_JOURNAL_TOKEN)
for writes and admin calls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := engine.ParseSyncPolicy(sync)
			if err != nil {
				return usageErr("--sync: %v", err)
			}
			opts, err := g.engineOptions()
			if err != nil {
				return err
			}
			ret, err := rf.retention()
			if err != nil {
				return err
			}
			window, err := rf.coalesceWindow()
			if err != nil {
				return err
			}
			preg := prometheus.NewRegistry()
			j, err := engine.Open(g.dir, append(opts, engine.WithSync(p), engine.WithRegisterer(preg),
				engine.WithHolder("journalctl serve"), engine.WithRetention(ret),
				engine.WithAutoCompact(engine.AutoCompact{Enabled: !noAuto, Coalesce: window}))...)
			if err != nil {
				return g.fail(exitProblems, err)
			}
			srv, err := server.New(j, server.Config{Listen: listen, Socket: socket, Token: token, Logger: slog.Default(), Registry: preg})
			if err != nil {
				j.Close()
				return g.fail(exitUsage, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			fmt.Fprintf(g.errOut, "journalctl serve: data %s, listening on %s and %s (sync=%s)\n", j.Dir(), srv.Addr(), srv.SocketPath(), p)
			serr := srv.Serve(ctx)
			cerr := j.Close()
			if err := errors.Join(serr, cerr); err != nil {
				return g.fail(exitProblems, err)
			}
			fmt.Fprintln(g.errOut, "journalctl serve: drained, synced and stopped")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", envOr("STATE_JOURNAL_LISTEN", "127.0.0.1:7766"), "HTTP listen address (env STATE_JOURNAL_LISTEN)")
	fl.StringVar(&socket, "socket", "", "Unix socket path (default <dir>/journal.sock; - to disable)")
	fl.StringVar(&sync, "sync", envOr("STATE_JOURNAL_SYNC", "always"), "sync policy: always (fsync before acknowledging), interval, none (env STATE_JOURNAL_SYNC)")
	fl.StringVar(&token, "token", os.Getenv("STATE_JOURNAL_TOKEN"), "bearer token for writes and admin calls (env STATE_JOURNAL_TOKEN)")
	fl.BoolVar(&noAuto, "no-auto-compact", false, "do not compact sealed hot segments in the background (retention then applies only on state-journal-compact)")
	rf.bind(cmd)
	return cmd
}
