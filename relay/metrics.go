package relay

import "github.com/prometheus/client_golang/prometheus"

// metrics of one relay.
type metrics struct {
	reg        prometheus.Registerer
	lagRecords prometheus.Gauge
	lagSeconds prometheus.Gauge
	shipped    prometheus.Gauge
	inFlight   prometheus.Gauge
	connected  prometheus.Gauge
	published  prometheus.Counter
	skipped    prometheus.Counter
	errors     *prometheus.CounterVec
	all        []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{reg: reg,
		lagRecords: g("state_journal_relay_lag_records", "Records committed to the journal and not yet acknowledged by JetStream."),
		lagSeconds: g("state_journal_relay_lag_seconds", "Age, by commit time, of the oldest record not yet acknowledged by JetStream (0 when caught up)."),
		shipped:    g("state_journal_relay_shipped_sequence", "The relay cursor: every record up to this sequence is in the stream."),
		inFlight:   g("state_journal_relay_in_flight", "Publishes awaiting JetStream's acknowledgement."),
		connected:  g("state_journal_relay_connected", "1 while the relay's NATS connection is up."),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "state_journal_relay_published_total",
			Help: "Records JetStream acknowledged (stored, or confirmed stored by an earlier copy)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "state_journal_relay_skipped_unshipped_total",
			Help: "Records the relay found removed by retention before it shipped them (it resumed at the horizon)."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "state_journal_relay_publish_errors_total",
			Help: "Failed publishes and stream checks, by reason (timeout, unavailable, wrong_last_sequence, stream, other)."}, []string{"reason"}),
	}
	m.all = []prometheus.Collector{m.lagRecords, m.lagSeconds, m.shipped, m.inFlight, m.connected, m.published, m.skipped, m.errors}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.all {
		if err := reg.Register(c); err != nil {
			for _, d := range m.all[:i] {
				reg.Unregister(d)
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
	for _, c := range m.all {
		m.reg.Unregister(c)
	}
}
