package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// httpMetrics are the server's own metrics, plus the Go and process
// collectors when the registry lacks them. Everything registered here is
// unregistered by unregister.
type httpMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// rateLimited counts write requests refused by the rate limit.
	rateLimited prometheus.Counter
	// streamOverflows counts stream clients whose buffer overflowed, by
	// stream (follow, invalidations).
	streamOverflows *prometheus.CounterVec
	// streamResyncs counts resync events and lines sent, by stream and
	// reason (overflow, compacted).
	streamResyncs *prometheus.CounterVec
	// streamsOpen is the stream clients connected now, by stream.
	streamsOpen *prometheus.GaugeVec
	// retentionMaxBytes is the journal's byte budget, for alerts on the
	// disk nearing it.
	retentionMaxBytes prometheus.Gauge
	owned             []prometheus.Collector

	// observed caches the request counter and duration histogram of each
	// (route, method, code) seen, so a request costs one map read instead
	// of hashing label values twice. Replaced copy-on-write under
	// observedMu, never mutated; its keys are bounded by the routes, the
	// methods observe admits and the status codes the server writes.
	observed   atomic.Pointer[map[observeKey]observeChildren]
	observedMu sync.Mutex

	once sync.Once
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{reg: reg}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_http_requests_total",
		Help: "HTTP requests answered, by route, method and status code.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "state_journal_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_rate_limited_total",
		Help: "Write requests refused whole with 429 because a source was over its rate (--rate-limit).",
	})
	m.streamOverflows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_stream_overflows_total",
		Help: "Stream clients that stopped reading until their bounded buffer overflowed (sent a resync and disconnected), by stream.",
	}, []string{"stream"})
	m.streamResyncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_stream_resyncs_total",
		Help: "Resyncs sent to stream clients, by stream and reason (overflow: the client was too slow; compacted: its cursor was below the horizon).",
	}, []string{"stream", "reason"})
	m.streamsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "state_journal_streams_open",
		Help: "Stream clients connected now, by stream.",
	}, []string{"stream"})
	m.retentionMaxBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "state_journal_retention_max_bytes",
		Help: "Retention's budget for hot plus archive bytes on disk (--max-bytes); 0 means no byte limit.",
	})
	for _, st := range []string{streamFollow, streamInvalidations} {
		m.streamOverflows.WithLabelValues(st)
		m.streamsOpen.WithLabelValues(st)
		for _, r := range []string{resyncOverflow, resyncCompacted} {
			m.streamResyncs.WithLabelValues(st, r)
		}
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rateLimited, m.streamOverflows, m.streamResyncs, m.streamsOpen, m.retentionMaxBytes} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("server: register HTTP metrics: %w (is another Server using this registry?)", err)
		}
		m.owned = append(m.owned, c)
	}
	// The Go and process collectors are added only when absent: the CLI
	// or an embedding program may have registered them already.
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case err == nil:
			m.owned = append(m.owned, c)
		case errors.As(err, &are):
		default:
			m.unregister()
			return nil, fmt.Errorf("server: register runtime metrics: %w", err)
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(route, method string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
	default:
		method = "other" // client-controlled: keep the label set bounded
	}
	key := observeKey{route: route, method: method, code: code}
	ch, ok := observeChildren{}, false
	if p := m.observed.Load(); p != nil {
		ch, ok = (*p)[key]
	}
	if !ok {
		ch = m.addObserved(key)
	}
	ch.requests.Inc()
	ch.duration.Observe(d.Seconds())
}

type observeKey struct {
	route, method string
	code          int
}

type observeChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// addObserved creates the children of key and publishes a copy of the
// cache that holds them.
func (m *httpMetrics) addObserved(key observeKey) observeChildren {
	m.observedMu.Lock()
	defer m.observedMu.Unlock()
	var old map[observeKey]observeChildren
	if p := m.observed.Load(); p != nil {
		old = *p
		if ch, ok := old[key]; ok {
			return ch
		}
	}
	ch := observeChildren{
		requests: m.requests.WithLabelValues(key.route, key.method, strconv.Itoa(key.code)),
		duration: m.duration.WithLabelValues(key.route),
	}
	next := make(map[observeKey]observeChildren, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = ch
	m.observed.Store(&next)
	return ch
}

// unregister removes every collector this server registered.
func (m *httpMetrics) unregister() {
	m.once.Do(func() {
		for _, c := range m.owned {
			m.reg.Unregister(c)
		}
	})
}
