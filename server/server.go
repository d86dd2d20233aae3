package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// Defaults of Config.
const (
	DefaultListen       = "127.0.0.1:7766"
	DefaultSocketName   = "journal.sock"
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxBatch     = 10000
	DefaultDrainTimeout = 10 * time.Second
	// MaxQueryLimit is the largest limit GET /v1/changes accepts.
	MaxQueryLimit = 10000
)

// Disabled, as Config.Listen or Config.Socket, turns that transport off.
const Disabled = "-"

// Sentinel errors of the server and its client.
var (
	// ErrInsecure is returned by New when the server would listen beyond
	// loopback without a token.
	ErrInsecure = errors.New("server: refusing to listen beyond loopback without a token")
	// ErrSocketInUse is returned by New when a live server answers on the
	// socket path.
	ErrSocketInUse = errors.New("server: another server answers on the socket")
	// ErrUnauthorized matches a 401 answer on the client side.
	ErrUnauthorized = types.ErrUnauthorized
	// ErrTooLarge matches a 413 answer on the client side.
	ErrTooLarge = types.ErrTooLarge
	// ErrServeCalled is returned by a second call to Serve.
	ErrServeCalled = errors.New("server: Serve already called")
)

// Config configures a Server. Zero fields take the defaults.
type Config struct {
	// Listen is the TCP address, default DefaultListen; Disabled ("-")
	// serves on the socket only. A port of 0 picks a free port (see Addr).
	Listen string
	// Listener, when set, is the bound TCP listener to serve on instead of
	// binding Listen (Starting.Handoff returns one); its address replaces
	// Listen. New takes it over: on error it is closed.
	Listener net.Listener
	// Socket is the Unix socket path: "" means <data dir>/journal.sock,
	// Disabled ("-") serves on TCP only.
	Socket string
	// Token is the bearer token. Once set, every endpoint over TCP but
	// /healthz and /readyz needs it (and /metrics unless MetricsOpen).
	// It is mandatory when Listen is beyond loopback. The CLI reads it
	// from a file (ReadTokenFile); this package reads no environment.
	Token string
	// MetricsOpen leaves GET /metrics open without the token, for a
	// scraper that cannot send one.
	MetricsOpen bool
	// MaxBodyBytes bounds a request body, default 8 MiB.
	MaxBodyBytes int64
	// MaxBatch bounds the changes in one POST /v1/changes, default 10000.
	MaxBatch int
	// DrainTimeout bounds how long Serve waits for in-flight requests
	// after its context is cancelled, default 10 s.
	DrainTimeout time.Duration
	// Logger receives request logs (debug) and lifecycle events, default
	// slog.Default().
	Logger *slog.Logger
	// Registry is the Prometheus registry the engine's metrics are on;
	// /metrics exposes it. The server adds the Go and process collectors
	// when they are absent, and its own HTTP metrics. Nil means a fresh
	// registry holding only those.
	Registry *prometheus.Registry
	// FollowProgress is how often a quiet follow stream (GET
	// /v1/changes?follow=1) sends a progress line, default
	// DefaultFollowProgress.
	FollowProgress time.Duration
	// Invalidations tunes GET /v1/invalidations; zero fields take the
	// defaults of DefaultInvalidations.
	Invalidations InvalidationConfig
	// RateLimit is the write rate each source (the records' source field)
	// may sustain, in records per second; 0 (the default) is no limit. A
	// body with a source over its rate is refused whole with 429
	// rate_limited and Retry-After.
	RateLimit float64
	// RateBurst is how many records a source may send at once above its
	// rate, default max(1, ceil(RateLimit)). A body holding more records
	// of one source than the burst is refused with too_large.
	RateBurst int
	// MaxRateSources bounds the sources the limiter remembers, default
	// DefaultMaxRateSources; the least recently seen is forgotten first.
	MaxRateSources int
	// StreamBuffer bounds, in bytes, what the server holds for one stream
	// client (follow and invalidations) beyond what the kernel's socket
	// buffers take, default DefaultStreamBuffer.
	StreamBuffer int
	// StreamStall is how long a stream's full buffer may stay full before
	// the client is an overflow: its queued lines are dropped, it is sent
	// a resync and disconnected. Default DefaultStreamStall.
	StreamStall time.Duration
	// StreamFinalWrite bounds how long the server waits for a client to
	// take a stream's last line (resync or shutdown) before it closes the
	// connection, default DefaultStreamFinalWrite.
	StreamFinalWrite time.Duration
	// Coverage, when set, adds the coverage proof to GET /v1/status and
	// GET /v1/surfaces (cmd/journalctl passes its *coverage.Watcher).
	Coverage CoverageReporter
	// RelayStatus, when set, adds the NATS relay's state to GET
	// /v1/status as "relay" (omitted when it returns nil).
	RelayStatus func() any
}

// Server serves one open journal over HTTP. Create it with New and run it
// with Serve.
type Server struct {
	j       *engine.Journal
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	http    *http.Server
	// metricsHandler serves GET /metrics; set by routes.
	metricsHandler http.Handler

	tcp        net.Listener // nil when disabled
	unix       *net.UnixListener
	socketPath string // "" when disabled
	socketInfo fs.FileInfo
	loopback   bool // the TCP listener is on loopback
	tokenSum   [32]byte

	metrics  *httpMetrics
	limiter  *rateLimiter // nil: no rate limit
	draining atomic.Bool
	drainc   chan struct{} // closed when draining starts: streams end
	served   atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg, binds the TCP listener and the Unix socket and
// registers the server's metrics. It refuses (ErrInsecure) to listen
// beyond loopback without a token, and (ErrSocketInUse) to replace a
// socket a live server answers on. Call Serve to run the server, or Close
// to release what New took without serving.
func New(j *engine.Journal, cfg Config) (_ *Server, err error) {
	if cfg.Listener != nil {
		// New owns a given listener: it is the server's or closed.
		defer func() {
			if err != nil {
				cfg.Listener.Close()
			}
		}()
	}
	if j == nil {
		return nil, errors.New("server: nil journal")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.FollowProgress <= 0 {
		cfg.FollowProgress = DefaultFollowProgress
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RateLimit < 0 || math.IsNaN(cfg.RateLimit) || math.IsInf(cfg.RateLimit, 0) {
		return nil, fmt.Errorf("server: rate limit %v is not a number of records per second; want 0 (no limit) or more", cfg.RateLimit)
	}
	if cfg.RateBurst < 0 {
		return nil, fmt.Errorf("server: rate burst %d is negative; want 0 (the default) or more records", cfg.RateBurst)
	}
	if cfg.StreamBuffer <= 0 {
		cfg.StreamBuffer = DefaultStreamBuffer
	}
	if cfg.StreamStall <= 0 {
		cfg.StreamStall = DefaultStreamStall
	}
	if cfg.StreamFinalWrite <= 0 {
		cfg.StreamFinalWrite = DefaultStreamFinalWrite
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	switch cfg.Socket {
	case "":
		cfg.Socket = defaultSocketPath(j.Dir())
	case Disabled:
		cfg.Socket = ""
	}
	if cfg.Listener != nil {
		cfg.Listen = cfg.Listener.Addr().String()
	}
	if cfg.Listen == Disabled && cfg.Socket == "" {
		return nil, errors.New("server: both TCP (Listen) and the Unix socket (Socket) are disabled; enable at least one")
	}
	s := &Server{j: j, cfg: cfg, log: cfg.Logger, drainc: make(chan struct{}),
		limiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.MaxRateSources)}
	if cfg.Token != "" {
		if err := CheckToken(cfg.Token); err != nil {
			return nil, err
		}
		s.tokenSum = tokenDigest(cfg.Token)
	}
	if cfg.Listen != Disabled {
		if err := CheckListen(cfg.Listen, cfg.Token); err != nil {
			return nil, err
		}
		s.loopback, _ = isLoopback(cfg.Listen)
	}
	m, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	m.retentionMaxBytes.Set(float64(j.Status().Retention.MaxBytes))
	s.handler = s.routes()
	switch {
	case cfg.Listener != nil:
		s.tcp = cfg.Listener
	case cfg.Listen != Disabled:
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			s.metrics.unregister()
			return nil, fmt.Errorf("server: listen on %s: %w", cfg.Listen, err)
		}
		s.tcp = l
	}
	if cfg.Socket != "" {
		ul, fi, err := listenSocket(cfg.Socket)
		if err != nil {
			if s.tcp != nil {
				s.tcp.Close()
			}
			s.metrics.unregister()
			return nil, err
		}
		s.unix = ul
		s.socketPath = cfg.Socket
		s.socketInfo = fi
	}
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		// Requests must outlive Serve's context so that a cancelled
		// context drains them instead of cutting them short.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*net.UnixConn); ok {
				return context.WithValue(ctx, transportKey{}, transportUnix)
			}
			return context.WithValue(ctx, transportKey{}, transportTCP)
		},
	}
	return s, nil
}

// Addr returns the TCP address the server listens on (with the port
// resolved when Config.Listen asked for port 0), or "" when TCP is
// disabled.
func (s *Server) Addr() string {
	if s.tcp == nil {
		return ""
	}
	return s.tcp.Addr().String()
}

// SocketPath returns the Unix socket path, or "" when the socket is
// disabled.
func (s *Server) SocketPath() string { return s.socketPath }

// Handler returns the server's HTTP handler, for embedding and tests. A
// request that did not arrive through the server's own listeners is
// treated as TCP: the token and Host rules apply.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve records the server's addresses in the journal's lock file and
// serves until ctx is cancelled or a listener fails. Then it drains: it
// stops accepting, waits up to Config.DrainTimeout for in-flight requests
// (closing what is left after that), removes the socket file and
// unregisters its metrics. It returns nil after a drain caused by ctx,
// otherwise the listener's error. It does not close the journal.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return ErrServeCalled
	}
	if err := s.j.SetHolderAddress(s.Addr(), s.socketPath); err != nil {
		if !errors.Is(err, engine.ErrReadOnly) {
			s.Close()
			return fmt.Errorf("server: record address in lock file: %w", err)
		}
		// A read-only journal has no lock file: serve reads, refuse writes.
		s.log.Warn("serving a read-only journal: writes answer 409 read_only")
	}
	s.log.Info("journal server listening", "addr", s.Addr(), "socket", s.socketPath, "dir", s.j.Dir(),
		"token", s.cfg.Token != "", "loopback", s.loopback)
	errc := make(chan error, 2)
	n := 0
	if s.tcp != nil {
		n++
		go func() { errc <- s.http.Serve(s.tcp) }()
	}
	if s.unix != nil {
		n++
		go func() { errc <- s.http.Serve(s.unix) }()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		n--
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("server: %w", err)
		}
	}
	s.draining.Store(true)
	close(s.drainc)
	s.log.Info("journal server draining", "timeout", s.cfg.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	err := s.http.Shutdown(dctx)
	cancel()
	if err != nil {
		s.log.Warn("drain timed out; closing the remaining connections", "err", err)
		s.http.Close()
	}
	for ; n > 0; n-- {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = fmt.Errorf("server: %w", err)
		}
	}
	if err := s.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	if err := s.j.SetHolderAddress("", ""); err != nil && !errors.Is(err, engine.ErrClosed) {
		s.log.Debug("clear address in lock file", "err", err)
	}
	s.log.Info("journal server stopped")
	return serveErr
}

// Close releases what New took — the listeners, the socket file and the
// server's metrics — without draining. Serve calls it on its way out; call
// it yourself only when Serve is never called. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.tcp != nil {
			if err := s.tcp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if s.unix != nil {
			if err := s.unix.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
			if err := removeSocket(s.socketPath, s.socketInfo); err != nil {
				errs = append(errs, err)
			}
		}
		s.metrics.unregister()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// CheckListen refuses what New would refuse about a TCP address and a
// token — a malformed address, one beyond loopback without a token — so
// that a caller can check before it opens the journal.
func CheckListen(listen, token string) error {
	if listen == Disabled {
		return nil
	}
	lb, err := isLoopback(listen)
	if err != nil {
		return err
	}
	if !lb && token == "" {
		return fmt.Errorf("%w: %s is not a loopback address; put a token in a file (chmod 600) and pass --token-file or STATE_JOURNAL_TOKEN_FILE, or listen on 127.0.0.1", ErrInsecure, listen)
	}
	return nil
}

// isLoopback reports whether a listen address binds loopback only. An
// empty host (all interfaces) is not loopback; "localhost" is.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("server: listen address %q: %w (want host:port, e.g. %s)", addr, err, DefaultListen)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

type transportKey struct{}

const (
	transportTCP  = "tcp"
	transportUnix = "unix"
)

func transportOf(r *http.Request) string {
	if t, ok := r.Context().Value(transportKey{}).(string); ok {
		return t
	}
	return transportTCP
}
