package engine

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/types"
)

// metrics holds the journal's Prometheus collectors. They are registered
// on the Registerer given to Open and unregistered at Close.
type metrics struct {
	reg          prometheus.Registerer
	recordMu     sync.Mutex                                    // serializes additions to recordCache
	recordCache  atomic.Pointer[map[uint32]prometheus.Counter] // surface id<<8 | change type code → counter; replaced, never mutated
	collectors   []prometheus.Collector
	appendLat    prometheus.Histogram
	fsyncLat     prometheus.Histogram
	batchSize    prometheus.Histogram
	records      *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	redacted     *prometheus.CounterVec
	trimmed      prometheus.Counter
	duplicates   prometheus.Counter
	asyncDropped prometheus.Counter
	writeErrors  prometheus.Counter
	recoveryCuts *prometheus.CounterVec
	recoveryCutB *prometheus.CounterVec

	compactions        prometheus.Counter
	compactSeconds     prometheus.Histogram
	compactIn          prometheus.Counter
	compactOut         prometheus.Counter
	coalesced          prometheus.Counter
	retentionRemoved   *prometheus.CounterVec
	compactFailures    *prometheus.CounterVec
	checkpointFailures *prometheus.CounterVec
}

// latencyBuckets spans 25µs to ~1.6s, dense where fsync lives.
var latencyBuckets = prometheus.ExponentialBuckets(25e-6, 2, 17)

func newMetrics(j *Journal, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{reg: reg}
	m.appendLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "state_journal_append_duration_seconds", Help: "Time from a Record call to its record being acknowledged (durable under sync=always).",
		Buckets: latencyBuckets,
	})
	m.fsyncLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "state_journal_fsync_duration_seconds", Help: "Duration of one fsync of the hot log.",
		Buckets: latencyBuckets,
	})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "state_journal_batch_records", Help: "Records written per group commit (one write and at most one fsync).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_records_total", Help: "Records appended, by surface and change type.",
	}, []string{"surface", "change_type"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_rejected_total", Help: "Changes rejected before reaching disk, by reason.",
	}, []string{"reason"})
	m.redacted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_redacted_total", Help: "Values replaced by a [REDACTED:kind] marker before reaching disk, by kind.",
	}, []string{"kind"})
	m.trimmed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_metadata_trimmed_total", Help: "Changes whose metadata went over a bound and was trimmed.",
	})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_duplicates_total", Help: "Retries answered from the dedupe window without writing.",
	})
	m.asyncDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_async_dropped_total", Help: "RecordAsync changes dropped because the queue was full or the journal failed.",
	})
	m.writeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_write_failures_total", Help: "Failed writes or fsyncs of the hot log (each makes the journal refuse writes until reopened).",
	})
	m.recoveryCuts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_recovery_cuts_total", Help: "Damaged tails cut off at open, by cause.",
	}, []string{"cause"})
	m.recoveryCutB = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_recovery_cut_bytes_total", Help: "Bytes cut off (and kept in quarantine) at open, by cause.",
	}, []string{"cause"})

	m.compactions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_compactions_total", Help: "Hot segments compacted into archives.",
	})
	m.compactSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "state_journal_compaction_duration_seconds", Help: "Time to compact one hot segment into an archive.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	m.compactIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_compaction_input_bytes_total", Help: "Hot-log bytes read by compaction.",
	})
	m.compactOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_compaction_output_bytes_total", Help: "Archive bytes written by compaction (input/output is the compression ratio).",
	})
	m.coalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "state_journal_coalesced_records_total", Help: "Heartbeat records dropped by coalescing during compaction.",
	})
	m.retentionRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_retention_removed_archives_total", Help: "Archives removed by retention, by the limit that removed them.",
	}, []string{"reason"})
	m.compactFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_compaction_failures_total", Help: "Compactions that failed (the hot log stays writable), by reason: no_space, damaged_input, error.",
	}, []string{"reason"})
	m.checkpointFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "state_journal_checkpoint_failures_total", Help: "Index checkpoints that could not be written (the hot log stays writable), by reason: no_space, error.",
	}, []string{"reason"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{
		m.appendLat, m.fsyncLat, m.batchSize, m.records, m.rejected, m.redacted, m.trimmed,
		m.duplicates, m.asyncDropped, m.writeErrors, m.recoveryCuts, m.recoveryCutB,
		m.compactions, m.compactSeconds, m.compactIn, m.compactOut, m.coalesced, m.retentionRemoved, m.compactFailures, m.checkpointFailures,
		gauge("state_journal_archive_bytes", "Bytes of archive segments on disk.", func() float64 { return float64(archiveBytes(j.view.Load().archives)) }),
		gauge("state_journal_archive_segments", "Archive segment files.", func() float64 { return float64(archiveFiles(j.view.Load().archives)) }),
		gauge("state_journal_horizon_sequence", "Oldest readable sequence; a cursor below it must resync.", func() float64 { return float64(j.view.Load().horizon()) }),
		gauge("state_journal_hot_bytes", "Bytes of the hot log on disk.", func() float64 { return float64(j.view.Load().bytes) }),
		gauge("state_journal_hot_segments", "Segment files of the hot log.", func() float64 { return float64(len(j.view.Load().segs)) }),
		gauge("state_journal_first_sequence", "Oldest readable sequence (the horizon).", func() float64 { return float64(j.Status().FirstSequence) }),
		gauge("state_journal_last_sequence", "Newest committed sequence.", func() float64 { return float64(j.view.Load().last()) }),
		gauge("state_journal_failed", "1 when a write or fsync failed and the journal refuses writes until reopened.", func() float64 {
			if j.failure() != nil {
				return 1
			}
			return 0
		}),
		gauge("state_journal_lock_lost", "1 when the LOCK file was removed or replaced under this writer, which then refuses writes.", func() float64 {
			if j.lockLost.Load() {
				return 1
			}
			return 0
		}),
		gauge("state_journal_async_queue_length", "Changes waiting in the RecordAsync queue.", func() float64 { return float64(len(j.async)) }),
		counter("state_journal_fsyncs_total", "fsyncs of the hot log since open.", func() float64 { return float64(j.fsyncs.Load()) }),
		counter("state_journal_batches_total", "Group commits since open.", func() float64 { return float64(j.batches.Load()) }),
		newModeCollector(j),
	}
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
	}
	for _, r := range []string{types.CodeUnknownSurface, types.CodeInvalidChange, types.CodePolicyViolation, types.CodeJournalFailed, types.CodeClosed, types.CodeTooLarge, types.CodeUnsupportedMediaType} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{FailureNoSpace, FailureDamagedInput, FailureError} {
		m.compactFailures.WithLabelValues(r)
	}
	for _, r := range []string{FailureNoSpace, FailureError} {
		m.checkpointFailures.WithLabelValues(r)
	}
	return m, nil
}

// recordCounter returns the records counter of a surface and change type,
// keyed by the index entry's interned surface id and change type code, so
// the hot path neither hashes label values nor builds a key per record:
// one lock-free map read. New pairs are added copy-on-write.
func (m *metrics) recordCounter(surfaceID uint16, ctype uint8, surface, changeType string) prometheus.Counter {
	key := uint32(surfaceID)<<8 | uint32(ctype)
	if p := m.recordCache.Load(); p != nil {
		if c, ok := (*p)[key]; ok {
			return c
		}
	}
	m.recordMu.Lock()
	defer m.recordMu.Unlock()
	var old map[uint32]prometheus.Counter
	if p := m.recordCache.Load(); p != nil {
		old = *p
		if c, ok := old[key]; ok {
			return c
		}
	}
	c := m.records.WithLabelValues(surface, changeType)
	next := make(map[uint32]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = c
	m.recordCache.Store(&next)
	return c
}

func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// modeCollector reports the number of surfaces per journal mode.
type modeCollector struct {
	j    *Journal
	desc *prometheus.Desc
}

func newModeCollector(j *Journal) *modeCollector {
	return &modeCollector{j: j, desc: prometheus.NewDesc("state_journal_surfaces", "Registered surfaces by journal mode.", []string{"mode"}, nil)}
}

func (c *modeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *modeCollector) Collect(ch chan<- prometheus.Metric) {
	for mode, n := range c.j.opts.registry.CountByMode() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), mode)
	}
}
