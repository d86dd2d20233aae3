package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/relay"
	"github.com/agentruntime/statejournal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen      string
		socket      string
		sync        string
		token       string
		metricsOpen bool
		rateLimit   float64
		rateBurst   int
		rf          retentionFlags
		noAuto      bool
		segSz       string
		cov         coverageFlags
		rly         relayFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the journal server: HTTP on loopback and a Unix socket in the data directory",
		Long: `Run the journal daemon. It takes the data directory's writer lock, recovers
the journal and loads its index (meanwhile --listen answers /healthz 200 and
/readyz 503 "starting"), then serves the HTTP API on --listen and on a Unix
socket (mode 0600) in the data directory:

  POST /v1/changes        record one change, a JSON array, or NDJSON (receipts)
  GET  /v1/changes        query with the filters of state-journal; follow=true streams NDJSON
  GET  /v1/surfaces       the registry's surfaces with live figures
  GET  /v1/status         the journal's status
  GET  /v1/stale          which snapshots to refetch since a cursor (resync below the horizon)
  GET  /v1/invalidations  Server-Sent Events of snapshots to refetch
  POST /v1/validate       check the data directory
  POST /v1/compact        compact and apply retention (dry_run to preview)
  GET  /metrics           Prometheus metrics
  GET  /healthz           liveness: 200 while the journal accepts writes
  GET  /readyz            readiness: 200 once recovery and the index load are done

On SIGTERM or SIGINT it ends its streams with a final "shutdown" event, drains
in-flight requests, commits and fsyncs what was accepted, and releases the lock.

Sealed hot segments are compacted into zstd archives in the background and
retention (--max-bytes, --max-age, --max-records) keeps the journal bounded.

Access: with --token-file (env STATE_JOURNAL_TOKEN_FILE) every TCP request but
/healthz and /readyz needs "Authorization: Bearer <token>", /metrics too unless
--metrics-open. A token is mandatory when --listen is beyond loopback. The Unix
socket is trusted (its mode admits only the owner). A token is never taken on
the command line, where ps would show it.

Writers: --rate-limit N caps each source (the records' source field) at N
records per second with bursts of --rate-burst records (default: off). A body
from a source over its rate is refused whole with 429 rate_limited and a
Retry-After header; nothing of it is written.

Streams (follow=true and /v1/invalidations) hold at most a bounded buffer per
client: a client that stops reading gets a resync (reason "overflow") as its
last line or event and is disconnected, so it cannot grow the server's memory.

Coverage proof (docs/coverage.md): a coverage watcher watches the file or
directory of every file- and dir-backed surface whose journal mode is not
disabled, matches each change to a journal record within --coverage-window,
and keeps per surface the evidence (state/coverage.json, GET /v1/status,
state-coverage) that says whether the surface's file watcher can be
retired. --no-coverage turns it off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("token") {
				return usageErr("--token is removed: a token on the command line is visible to every user in ps; write it to a file (chmod 600) and pass --token-file FILE or set STATE_JOURNAL_TOKEN_FILE")
			}
			token, err := g.token()
			if err != nil {
				return err
			}
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
			seg, err := segmentSizeFlag(segSz)
			if err != nil {
				return err
			}
			covCfg, err := cov.config()
			if err != nil {
				return err
			}
			if err := g.checkWritableDir(); err != nil {
				return g.fail(exitProblems, err)
			}
			if rateLimit < 0 || math.IsNaN(rateLimit) || math.IsInf(rateLimit, 0) {
				return usageErr("--rate-limit %v: want records per second per source, 0 (no limit) or more", rateLimit)
			}
			if rateBurst < 0 {
				return usageErr("--rate-burst %d: want records, 0 (the default: the rate rounded up) or more", rateBurst)
			}
			if err := server.CheckListen(listen, token); err != nil {
				return g.fail(exitUsage, err)
			}
			if token != "" {
				if err := server.CheckToken(token); err != nil {
					return usageErr("--token-file: %v", err)
				}
			}
			// While the journal opens (recovery, index load) the TCP
			// address already answers the probes: /healthz "starting"
			// (alive), /readyz 503. When another process holds the lock,
			// Open's error names it; binding first would only say the
			// port is busy.
			var starting *server.Starting
			if held, _ := engine.LockHolder(g.dir); !held && listen != server.Disabled {
				if starting, err = server.ListenStarting(listen); err != nil {
					return g.fail(exitProblems, err)
				}
			}
			var rcfg relay.Config
			if rly.url != "" {
				if rcfg, err = rly.config(); err != nil {
					return err
				}
			}
			preg := prometheus.NewRegistry()
			guard, floor, err := relayGuard(g, preg)
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer guard.Close()
			j, err := engine.Open(g.dir, append(opts, floor, engine.WithSync(p), engine.WithRegisterer(preg), engine.WithSegmentSize(seg),
				engine.WithHolder("journalctl serve"), engine.WithRetention(ret),
				engine.WithAutoCompact(engine.AutoCompact{Enabled: !noAuto, Coalesce: window}))...)
			if errors.Is(err, engine.ErrRetention) {
				return g.fail(exitUsage, fmt.Errorf("--max-bytes: %w", err))
			}
			if err != nil {
				if starting != nil {
					starting.Close()
				}
				return g.fail(exitProblems, err)
			}
			watcher, err := startCoverage(&cov, covCfg, j, preg)
			if err != nil {
				if starting != nil {
					starting.Close()
				}
				j.Close()
				return g.fail(exitProblems, err)
			}
			var rl *relay.Relay
			if rly.url != "" {
				rcfg.Registerer = preg
				if rl, err = relay.New(j, rcfg); err != nil {
					if starting != nil {
						starting.Close()
					}
					closeCoverage(watcher)
					j.Close()
					return g.fail(exitProblems, err)
				}
				defer rl.Close()
			}
			cfg := server.Config{Listen: listen, Socket: socket, Token: token, MetricsOpen: metricsOpen, Logger: slog.Default(), Registry: preg,
				RateLimit: rateLimit, RateBurst: rateBurst,
				RelayStatus: func() any {
					if rl != nil {
						return rl.Status()
					}
					if st, _ := relay.Describe(j); st != nil {
						return st
					}
					return nil
				}}
			if starting != nil {
				cfg.Listener = starting.Handoff()
			}
			if watcher != nil {
				cfg.Coverage = watcher
			}
			srv, err := server.New(j, cfg)
			if err != nil {
				closeCoverage(watcher)
				j.Close()
				return g.fail(exitUsage, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			fmt.Fprintf(g.errOut, "journalctl serve: data %s, %s (sync=%s, %s)\n", j.Dir(), listening(srv), p, access(token, metricsOpen))
			relayDone := make(chan error, 1)
			if rl != nil {
				go func() {
					err := rl.Run(ctx)
					if err != nil {
						slog.Error("relay stopped; the server goes on without it (see GET /v1/status, relay.last_error)", "err", err)
					}
					relayDone <- err
				}()
				fmt.Fprintf(g.errOut, "journalctl serve: relaying as host %s to stream %s on %s\n", rl.Status().Host, rcfg.Stream.Name, rcfg.URL)
			} else {
				relayDone <- nil
			}
			serr := srv.Serve(ctx)
			// The relay stops with the server (same signal): it waits for
			// its publishes in flight and persists its cursor first.
			stop()
			<-relayDone
			werr := closeCoverage(watcher)
			cerr := errors.Join(werr, j.Close())
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
	fl.StringVar(&token, "token", "", "removed: use --token-file")
	_ = fl.MarkHidden("token")
	boolVar(fl, &metricsOpen, "metrics-open", "", false, "with a token, leave GET /metrics open to scrapers without it")
	fl.Float64Var(&rateLimit, "rate-limit", 0, "records per second each source may write; 0 for no limit (over it: 429 rate_limited with Retry-After)")
	fl.IntVar(&rateBurst, "rate-burst", 0, "records a source may write at once above --rate-limit (default: the rate rounded up)")
	boolVar(fl, &noAuto, "no-auto-compact", "", false, "do not compact sealed hot segments in the background (retention then applies only on state-journal-compact)")
	fl.StringVar(&segSz, "segment-size", envOr("STATE_JOURNAL_SEGMENT_SIZE", "4MiB"), "size of a hot segment, 64KiB to 1GiB, e.g. 64KiB, 4MiB; smaller segments compact sooner and bound the writer's memory (env STATE_JOURNAL_SEGMENT_SIZE)")
	rf.bind(cmd)
	cov.bind(fl, true)
	rly.bind(fl, "relay-")
	return cmd
}

// listening says where the server answers, naming only the transports it
// has.
func listening(srv *server.Server) string {
	var on []string
	if a := srv.Addr(); a != "" {
		on = append(on, a)
	}
	if p := srv.SocketPath(); p != "" {
		on = append(on, "unix:"+p)
	}
	return "listening on " + strings.Join(on, " and ")
}

// access says which token rules apply.
func access(token string, metricsOpen bool) string {
	switch {
	case token == "":
		return "no token: every endpoint is open on loopback"
	case metricsOpen:
		return "token required but for /healthz, /readyz and /metrics"
	}
	return "token required but for /healthz and /readyz"
}

// segmentSizeFlag parses --segment-size: a size from 64KiB to 1GiB.
func segmentSizeFlag(s string) (int, error) {
	n, err := parse.Size(s)
	if err != nil {
		return 0, usageErr("--segment-size %v", err)
	}
	if n < 64<<10 || n > 1<<30 {
		return 0, usageErr("--segment-size %s is out of range: a hot segment is 64KiB to 1GiB", s)
	}
	return int(n), nil
}
