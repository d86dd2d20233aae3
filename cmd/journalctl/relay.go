package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/relay"
)

// relayFlags configure a relay: journalctl relay binds them bare
// (--nats, --host, ...), serve with the prefix relay- (--relay-nats, ...).
type relayFlags struct {
	prefix      string
	url         string
	host        string
	stream      string
	subjects    []string
	replicas    int
	maxAge      string
	duplicates  string
	maxBytes    string
	maxMsgs     int64
	maxInFlight int
}

func (f *relayFlags) bind(fl *pflag.FlagSet, prefix string) {
	f.prefix = prefix
	fl.StringVar(&f.url, prefix+"nats", "", "NATS server URL to relay the journal to, e.g. nats://127.0.0.1:4222 (comma-separated for a cluster)")
	fl.StringVar(&f.host, prefix+"host", "", "host name in the subjects state.<host>.<surface>.<change_type>: letters, digits, - and _ (default: this machine's host name, dots as dashes)")
	fl.StringVar(&f.stream, prefix+"stream", relay.DefaultStream, "JetStream stream the records go to (created when missing)")
	fl.StringSliceVar(&f.subjects, prefix+"stream-subjects", nil, "subjects of the stream when the relay creates it, or to add to it (default "+relay.DefaultSubjects+"); must take state.<host>.>")
	fl.IntVar(&f.replicas, prefix+"stream-replicas", 0, "replicas of the stream: 1, or 3 on a three-node cluster (default: 1 on create, an existing stream keeps its own)")
	fl.StringVar(&f.maxAge, prefix+"stream-max-age", "", "the stream's own retention by age, e.g. 7d (default: no limit on create)")
	fl.StringVar(&f.duplicates, prefix+"stream-duplicates", "", "the stream's dedupe window, at most --"+prefix+"stream-max-age, e.g. 2m (default 2m on create); exactly-once does not depend on it")
	fl.StringVar(&f.maxBytes, prefix+"stream-max-bytes", "", "the stream's byte limit, e.g. 10GiB (default: no limit on create)")
	fl.Int64Var(&f.maxMsgs, prefix+"stream-max-msgs", 0, "the stream's message limit (default: no limit on create)")
	fl.IntVar(&f.maxInFlight, prefix+"max-in-flight", relay.DefaultMaxInFlight, "publishes awaiting JetStream's acknowledgement at once")
}

// config returns the relay configuration the flags describe.
func (f *relayFlags) config() (relay.Config, error) {
	flag := func(name string) string { return "--" + f.prefix + name }
	cfg := relay.Config{URL: f.url, Host: f.host, MaxInFlight: f.maxInFlight, Logger: slog.Default(),
		Stream: relay.StreamConfig{Name: f.stream, Subjects: splitList(f.subjects), Replicas: f.replicas, MaxMsgs: f.maxMsgs}}
	if f.host != "" {
		if err := relay.CheckHost(f.host); err != nil {
			return cfg, usageErr("%s %v", flag("host"), err)
		}
	}
	if f.maxInFlight < 1 {
		return cfg, usageErr("%s %d: want 1 or more", flag("max-in-flight"), f.maxInFlight)
	}
	if f.replicas < 0 || f.replicas > 5 {
		return cfg, usageErr("%s %d: allowed 1 to 5 (1, or 3 on a three-node cluster)", flag("stream-replicas"), f.replicas)
	}
	if f.maxMsgs < 0 {
		return cfg, usageErr("%s %d: want 0 (no limit) or more", flag("stream-max-msgs"), f.maxMsgs)
	}
	var err error
	if f.maxAge != "" {
		if cfg.Stream.MaxAge, err = parse.Duration(f.maxAge); err != nil {
			return cfg, usageErr("%s %v", flag("stream-max-age"), err)
		}
	}
	if f.duplicates != "" {
		if cfg.Stream.Duplicates, err = parse.Duration(f.duplicates); err != nil {
			return cfg, usageErr("%s %v", flag("stream-duplicates"), err)
		}
	}
	if f.maxBytes != "" {
		if cfg.Stream.MaxBytes, err = parse.Size(f.maxBytes); err != nil {
			return cfg, usageErr("%s %v", flag("stream-max-bytes"), err)
		}
	}
	if cfg.Stream.MaxAge > 0 && cfg.Stream.Duplicates > cfg.Stream.MaxAge {
		return cfg, usageErr("%s %s is longer than %s %s: JetStream needs the dedupe window within the max age", flag("stream-duplicates"), f.duplicates, flag("stream-max-age"), f.maxAge)
	}
	return cfg, nil
}

func newRelayCmd(g *globals) *cobra.Command {
	var (
		rf            relayFlags
		metricsListen string
	)
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Relay the journal's records to NATS JetStream, exactly once, until SIGTERM",
		Long: `Relay every record of the journal to a NATS JetStream stream (docs/relay.md),
from the durable cursor state/relay.json: subject state.<host>.<surface>.<change_type>,
Nats-Msg-Id = event_id, the record's JSON as body. It reads the files (no
lock: it runs beside journalctl serve, or use serve --relay-nats instead).

At start it creates the stream (file storage, --stream-* settings) or checks
it and changes the settings given that differ, and says what it did. Each
record is in the stream exactly once, also across kills and beyond the
stream's dedupe window: the cursor is reconciled with the stream's last
messages of this host at every start. While NATS is down it retries with
backoff; the lag (state_journal_relay_lag_records, _lag_seconds, and
state-journal-status) grows and recovers.

SIGTERM or SIGINT waits for the publishes in flight, persists the cursor
and exits 0. Exit 1 on a damaged or foreign cursor, a host name another
journal uses in the stream (code relay_conflict), or a second relay of the
same journal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rf.url == "" {
				return usageErr("--nats is required: the NATS server URL, e.g. nats://127.0.0.1:4222")
			}
			cfg, err := rf.config()
			if err != nil {
				return err
			}
			j, err := g.openRead()
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer j.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			cfg.Registerer = reg
			r, err := relay.New(j, cfg)
			if err != nil {
				return g.fail(exitProblems, err)
			}
			defer r.Close()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if metricsListen != "" {
				l, err := net.Listen("tcp", metricsListen)
				if err != nil {
					return g.fail(exitUsage, fmt.Errorf("--metrics-listen: %w", err))
				}
				srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
				go srv.Serve(l)
				defer srv.Close()
				fmt.Fprintf(g.errOut, "journalctl relay: metrics on http://%s/metrics\n", l.Addr())
			}
			fmt.Fprintf(g.errOut, "journalctl relay: %s as host %s to stream %s on %s\n", j.Dir(), r.Status().Host, cfg.Stream.Name, cfg.URL)
			go reportStream(ctx, g, r)
			if err := r.Run(ctx); err != nil {
				return g.fail(exitProblems, err)
			}
			st := r.Status()
			fmt.Fprintf(g.errOut, "journalctl relay: stopped; shipped through sequence %d (cursor persisted)\n", st.Shipped)
			return nil
		},
	}
	rf.bind(cmd.Flags(), "")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve the relay's Prometheus metrics on this address at /metrics, e.g. 127.0.0.1:9466 (default: none)")
	return cmd
}

// reportStream prints, once, what the relay found or did to the stream.
func reportStream(ctx context.Context, g *globals, r *relay.Relay) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rep := r.Status().StreamReport; rep != nil {
			fmt.Fprintln(g.errOut, "journalctl relay: "+describeStream(rep))
			return
		}
	}
}

func describeStream(rep *relay.StreamReport) string {
	what := "stream %s checked, unchanged"
	switch {
	case rep.Created:
		what = "created stream %s"
	case len(rep.Changed) > 0:
		what = "changed stream %s (" + fmt.Sprint(rep.Changed) + ")"
	}
	return fmt.Sprintf(what+": subjects %v, file storage, %d replica(s), max age %s, duplicates %s, max bytes %d, max msgs %d",
		rep.Name, rep.Subjects, rep.Replicas, rep.MaxAge, rep.Dupes, rep.MaxBytes, rep.MaxMsgs)
}

// relayGuard returns the retention guard every compacting open installs
// (serve, state-journal-compact): retention keeps what the relay's cursor
// has not shipped.
func relayGuard(g *globals, reg prometheus.Registerer) (*relay.Guard, engine.Option, error) {
	gd, err := relay.NewGuard(g.dir, reg, slog.Default())
	if err != nil {
		return nil, nil, err
	}
	return gd, engine.WithRetentionFloor(gd.Floor()), nil
}

// relayStatus is the relay part of state-journal-status, from the files
// (nil when the journal was never relayed).
func relayStatus(j *engine.Journal) (*relay.Status, error) { return relay.Describe(j) }
