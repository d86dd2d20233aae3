package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const requestIDHeader = "X-Request-Id"

// access is who may call a route.
type access int

const (
	accessProbe   access = iota // /healthz, /readyz: never need the token
	accessMetrics               // /metrics: needs the token unless Config.MetricsOpen
	accessAPI                   // every /v1 endpoint: needs the token whenever one is set
)

// Route is one endpoint of the HTTP API: a method and an exact path.
type Route struct {
	Method string
	Path   string
}

// endpoint is a Route with who may call it and the method that serves it.
type endpoint struct {
	Route
	access access
	serve  func(*Server, http.ResponseWriter, *http.Request)
}

// endpoints is the HTTP API. The router serves exactly these and Routes
// lists them, so a list of the API (the docs test) cannot drift from
// what the server answers.
var endpoints = []endpoint{
	{Route{http.MethodPost, "/v1/changes"}, accessAPI, (*Server).postChanges},
	{Route{http.MethodGet, "/v1/changes"}, accessAPI, (*Server).getChanges},
	{Route{http.MethodGet, "/v1/surfaces"}, accessAPI, (*Server).getSurfaces},
	{Route{http.MethodGet, "/v1/status"}, accessAPI, (*Server).getStatus},
	{Route{http.MethodPost, "/v1/validate"}, accessAPI, (*Server).postValidate},
	{Route{http.MethodPost, "/v1/compact"}, accessAPI, (*Server).postCompact},
	{Route{http.MethodGet, "/v1/stale"}, accessAPI, (*Server).getStale},
	{Route{http.MethodGet, "/v1/invalidations"}, accessAPI, (*Server).getInvalidations},
	{Route{http.MethodGet, "/healthz"}, accessProbe, (*Server).getHealthz},
	{Route{http.MethodGet, "/readyz"}, accessProbe, (*Server).getReadyz},
	{Route{http.MethodGet, "/metrics"}, accessMetrics, (*Server).getMetrics},
}

// Routes lists every endpoint the server answers, in a fixed order. HEAD
// is also answered wherever GET is.
func Routes() []Route {
	out := make([]Route, len(endpoints))
	for i, e := range endpoints {
		out[i] = e.Route
	}
	return out
}

type route struct {
	access  access
	handler http.HandlerFunc
}

// router dispatches on exact paths and methods and answers unknown paths
// and methods with JSON errors (http.ServeMux answers them in plain text).
type router struct {
	s      *Server
	routes map[string]map[string]route // path → method → route
}

func (s *Server) routes() http.Handler {
	s.metricsHandler = promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:          promLogger{s},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
	rt := &router{s: s, routes: map[string]map[string]route{}}
	for _, e := range endpoints {
		if rt.routes[e.Path] == nil {
			rt.routes[e.Path] = map[string]route{}
		}
		serve := e.serve
		rt.routes[e.Path][e.Method] = route{access: e.access, handler: func(w http.ResponseWriter, r *http.Request) { serve(s, w, r) }}
	}
	return rt
}

// getMetrics is GET /metrics: the Prometheus exposition of Config.Registry.
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

// ServeHTTP runs the middleware (request id, recovery, logging, metrics,
// Host check, authentication) around the matched route.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := rt.s
	start := time.Now()
	id := requestID(r.Header.Get(requestIDHeader))
	w.Header().Set(requestIDHeader, id)
	rec := &statusRecorder{ResponseWriter: w}
	methods, known := rt.routes[r.URL.Path]
	label := "other"
	if known {
		label = r.URL.Path
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "request_id", id)
			if !rec.wrote {
				writeErrorBody(rec, http.StatusInternalServerError, APIError{Code: CodeInternal, Message: "internal error; the server log has the details", RequestID: id})
			}
		}
		d := time.Since(start)
		s.metrics.observe(label, r.Method, rec.status(), d)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			// Guarded: the arguments alone cost allocations per request.
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status(), "bytes", rec.bytes,
				"duration", d, "request_id", id, "transport", transportOf(r), "remote", r.RemoteAddr)
		}
	}()
	if err := s.checkHost(r); err != nil {
		s.writeError(rec, r, err)
		return
	}
	if !known {
		s.writeError(rec, r, errorf(CodeNotFound, "no endpoint at %s; see the server package documentation for the API", r.URL.Path))
		return
	}
	rte, ok := methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		rte, ok = methods[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		rec.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeError(rec, r, errorf(CodeMethodNotAllowed, "%s does not accept %s; allowed: %s", r.URL.Path, r.Method, strings.Join(allow, ", ")))
		return
	}
	if err := s.authorize(r, rte.access); err != nil {
		s.writeError(rec, r, err)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if err := checkParams(r, method); err != nil {
		s.writeError(rec, r, err)
		return
	}
	rte.handler(rec, r)
}

// authorize applies the token rules (see the package doc): once a token
// is configured every TCP request needs it, except the probes and, with
// Config.MetricsOpen, /metrics. The Unix socket is trusted: its mode 0600
// admits only the owner, who can read the token file anyway.
func (s *Server) authorize(r *http.Request, a access) error {
	if a == accessProbe || s.cfg.Token == "" || transportOf(r) == transportUnix {
		return nil
	}
	if a == accessMetrics && s.cfg.MetricsOpen {
		return nil
	}
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") {
		return errorf(CodeUnauthorized, "%s needs a bearer token: send Authorization: Bearer <token>, the token in the server's --token-file (env STATE_JOURNAL_TOKEN_FILE)", r.URL.Path)
	}
	sum := tokenDigest(strings.TrimSpace(tok))
	if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		return errorf(CodeUnauthorized, "the bearer token does not match the server's token")
	}
	return nil
}

// tokenDigest hashes a token so that comparing digests in constant time
// does not leak the token's length either.
func tokenDigest(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// checkHost refuses, on a loopback TCP listener, a Host header that names
// no loopback host: a browser tricked by DNS rebinding sends the
// attacker's host name, so the check keeps web pages away from a
// token-less local daemon.
func (s *Server) checkHost(r *http.Request) error {
	if transportOf(r) == transportUnix || !s.loopback {
		return nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errorf(CodeForbiddenHost, "Host %q is not a loopback host; this server listens on loopback and answers only requests addressed to 127.0.0.1, ::1 or localhost", clip(r.Host))
}

// requestID keeps a client's request id when it is short and plain, and
// makes one otherwise.
func requestID(in string) string {
	if in != "" && len(in) <= 64 {
		ok := true
		for i := 0; i < len(in); i++ {
			c := in[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
				ok = false
				break
			}
		}
		if ok {
			return in
		}
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusRecorder remembers the status and size of an answer. Unwrap lets
// http.ResponseController reach the connection (flush, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	code  int
	bytes int64
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code = http.StatusOK
		r.wrote = true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.code
}

// promLogger routes promhttp's errors to slog.
type promLogger struct{ s *Server }

func (p promLogger) Println(v ...any) { p.s.log.Warn("metrics exposition", "err", fmt.Sprint(v...)) }
