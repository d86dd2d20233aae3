package coverage

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the coverage metrics (docs/coverage.md). They count from
// the process start, as Prometheus counters do; the persisted totals are
// in status.
type metrics struct {
	reg            prometheus.Registerer
	ratio          *prometheus.GaugeVec
	proven         *prometheus.GaugeVec
	unjournaled    *prometheus.CounterVec
	overflows      *prometheus.CounterVec
	observed       *prometheus.CounterVec
	matched        *prometheus.CounterVec
	unattributable *prometheus.CounterVec
	gaps           *prometheus.CounterVec
	transitions    *prometheus.CounterVec
	watches        prometheus.Gauge
	limits         *prometheus.GaugeVec
	collectors     []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{reg: reg}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.collectors = append(m.collectors, v)
		return v
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.collectors = append(m.collectors, v)
		return v
	}
	m.ratio = gv("state_journal_coverage_ratio", "Matched / (matched + unjournaled) changes of a watched surface since its figures began (NaN before any).", "surface")
	m.proven = gv("state_journal_coverage_proven", "1 when the coverage proof holds for the surface (its file watcher can be retired), else 0.", "surface")
	m.unjournaled = cv("state_journal_unjournaled_changes_total", "Settled file changes of a surface that no journal record matched within the window.", "surface")
	m.overflows = cv("state_journal_watcher_overflows_total", "Watcher overflows (the kernel dropped events) that opened a coverage gap on the surface.", "surface")
	m.observed = cv("state_journal_coverage_observed_changes_total", "Settled file changes of a surface decided by the coverage watcher (matched or unjournaled).", "surface")
	m.matched = cv("state_journal_coverage_matched_changes_total", "Settled file changes of a surface matched to a journal record.", "surface")
	m.unattributable = cv("state_journal_coverage_unattributable_changes_total", "Changes a rescan after a coverage gap found; neither matched nor unjournaled.", "surface")
	m.gaps = cv("state_journal_coverage_gaps_total", "Coverage gaps opened on the surface, by reason: overflow, watch (an add failed or a watch was lost), restart, rescan.", "surface", "reason")
	m.transitions = cv("state_journal_coverage_transitions_total", "Changes of a surface's coverage verdict, by the verdict it moved to.", "surface", "verdict")
	m.watches = prometheus.NewGauge(prometheus.GaugeOpts{Name: "state_journal_watcher_watches", Help: "Directories the coverage watcher watches."})
	m.collectors = append(m.collectors, m.watches)
	m.limits = gv("state_journal_watcher_inotify_limit", "The kernel's inotify limits as read at start (max_user_watches, max_queued_events, max_user_instances).", "limit")
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, d := range m.collectors[:i] {
				reg.Unregister(d)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("coverage: the metrics are already registered (a second watcher on one registry)")
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
