package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// Headers every relayed message carries besides Nats-Msg-Id (the
// record's event_id).
const (
	HeaderSequence = "State-Journal-Sequence" // the record's sequence in its host's journal
	HeaderHost     = "State-Journal-Host"     // the host name (the subject's second token)
	HeaderJournal  = "State-Journal-Id"       // the journal id (state/identity.json)
)

// Defaults of Config.
const (
	DefaultMaxInFlight = 256
	DefaultAckTimeout  = 5 * time.Second
	DefaultTick        = time.Second
	DefaultPersist     = 200 * time.Millisecond
	DefaultLinger      = 5 * time.Millisecond
	DefaultBackoffMin  = 100 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
)

// Config configures a Relay.
type Config struct {
	// URL is the NATS server URL (comma-separated for a cluster).
	URL string
	// Host names this journal in the subjects, state.<host>.<surface>.<change_type>;
	// default: the machine's host name with dots as dashes.
	Host   string
	Stream StreamConfig
	// MaxInFlight bounds the publishes awaiting an acknowledgement
	// (default DefaultMaxInFlight).
	MaxInFlight int
	// AckTimeout is how long one publish waits for JetStream's
	// acknowledgement before it counts as failed (default 5 s).
	AckTimeout time.Duration
	// Tick is how often lag is measured while the journal is quiet or
	// JetStream is down (default 1 s).
	Tick time.Duration
	// PersistEvery bounds how often the cursor file is rewritten while
	// records flow (default 200 ms); it is always written at a stop.
	PersistEvery time.Duration
	// Linger spaces the relay's reads once it has read up to the
	// journal's head (default 5 ms; engine.FollowOptions.Pace): a busy
	// journal commits hundreds of small batches a second, and reading
	// each alone would cost the writers CPU for nothing. It adds at most
	// Linger to the lag.
	Linger time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts while
	// JetStream is slow or down: full jitter, doubling (defaults 100 ms, 10 s).
	BackoffMin, BackoffMax time.Duration
	// Registerer receives the relay's metrics (unregistered by Close); nil
	// registers none.
	Registerer prometheus.Registerer
	// Logger, default slog.Default().
	Logger *slog.Logger
	// NATSOptions are added to the connection's options (TLS, credentials).
	NATSOptions []nats.Option
}

// DefaultHost is the machine's host name as a subject token.
func DefaultHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return subjectToken(strings.ReplaceAll(h, ".", "-"))
}

// CheckHost refuses a host name that is not one subject token.
func CheckHost(h string) error {
	if h == "" || len(h) > 64 || subjectToken(h) != h {
		return fmt.Errorf("host %q: use 1 to 64 letters, digits, - and _ (it is one token of the subject state.<host>.<surface>.<change_type>)", h)
	}
	return nil
}

// subjectToken maps s to one NATS subject token: every byte but letters,
// digits, - and _ becomes _.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Subject is the subject of record c relayed from host: a tombstone
// (a record lost to damage) goes to state.<host>._lost.lost.
func Subject(host string, c *engine.Change) string {
	if c.Lost != nil {
		return "state." + host + "._lost.lost"
	}
	return "state." + host + "." + subjectToken(c.Surface) + "." + subjectToken(c.ChangeType)
}

// MsgID is the Nats-Msg-Id of record c: its event_id, or, for a
// tombstone (which has none), journal id and sequence.
func MsgID(journalID string, c *engine.Change) string {
	if c.EventID != "" {
		return c.EventID
	}
	return journalID + ":" + strconv.FormatUint(c.Sequence, 10)
}

// Status is the relay's state, for GET /v1/status and
// state-journal-status (as "relay").
type Status struct {
	Running        bool          `json:"running"`
	Connected      bool          `json:"connected"`
	Host           string        `json:"host"`
	Stream         string        `json:"stream"`
	Shipped        uint64        `json:"shipped_sequence"`
	StreamSequence uint64        `json:"stream_sequence"`
	Head           uint64        `json:"head"`
	LagRecords     uint64        `json:"lag_records"`
	LagSeconds     float64       `json:"lag_seconds"`
	InFlight       int           `json:"in_flight"`
	Published      uint64        `json:"published"`
	LastError      string        `json:"last_error,omitempty"`
	LastErrorAt    *time.Time    `json:"last_error_at,omitempty"`
	StreamReport   *StreamReport `json:"stream_report,omitempty"`
	// SkippedUnshipped counts records the relay found removed by
	// retention before it shipped them (it resumed at the horizon).
	SkippedUnshipped uint64 `json:"skipped_unshipped,omitempty"`
	// Dropped is what retention's byte budget removed unshipped
	// (state/relay-dropped.json).
	Dropped *Dropped `json:"dropped_unshipped,omitempty"`
}

// Relay ships one journal's records to a JetStream stream. Create it
// with New, run it with Run, and Close it after Run returned.
type Relay struct {
	j         *engine.Journal
	cfg       Config
	dir       string
	journalID string
	filter    string // state.<host>.>
	log       *slog.Logger
	m         *metrics

	shipped atomic.Uint64 // every record up to it is in the stream
	// Owned by Run's goroutine.
	streamSeq     uint64    // stream sequence of record shipped
	streamCreated time.Time // of the stream the cursor is about
	lastHostSeq   uint64    // stream sequence of this host's newest message known
	persisted     uint64
	persistedAt   time.Time
	hadCursor     bool

	mu sync.Mutex // guards st
	st Status
}

// New checks cfg and prepares a relay of journal j (opened for reading or
// writing). It does not connect.
func New(j *engine.Journal, cfg Config) (*Relay, error) {
	if cfg.URL == "" {
		return nil, errors.New("relay: no NATS URL")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost()
	}
	if err := CheckHost(cfg.Host); err != nil {
		return nil, err
	}
	cfg.Stream = cfg.Stream.withDefaults()
	if err := cfg.Stream.check(); err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AckTimeout, DefaultAckTimeout)
	def(&cfg.Tick, DefaultTick)
	def(&cfg.PersistEvery, DefaultPersist)
	def(&cfg.Linger, DefaultLinger)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	id := j.Status().JournalID
	if id == "" {
		return nil, errors.New("relay: the journal has no identity yet (state/identity.json): open it for writing once (any write or journalctl serve) before relaying it")
	}
	r := &Relay{j: j, cfg: cfg, dir: j.Dir(), journalID: id, filter: "state." + cfg.Host + ".>",
		log: cfg.Logger.With("component", "relay", "host", cfg.Host, "stream", cfg.Stream.Name)}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r.m = m
	r.st = Status{Host: cfg.Host, Stream: cfg.Stream.Name}
	return r, nil
}

// Close unregisters the relay's metrics. Call it after Run returned.
func (r *Relay) Close() { r.m.unregister() }

// Status returns the relay's state now.
func (r *Relay) Status() Status {
	r.mu.Lock()
	st := r.st
	r.mu.Unlock()
	st.Shipped = r.shipped.Load()
	if d, ok, _ := ReadDropped(r.dir, r.journalID); ok {
		st.Dropped = &d
	}
	return st
}

func (r *Relay) update(f func(st *Status)) {
	r.mu.Lock()
	f(&r.st)
	r.mu.Unlock()
}

func (r *Relay) fail(err error) {
	now := time.Now().UTC()
	r.update(func(st *Status) { st.LastError, st.LastErrorAt = err.Error(), &now })
}

// Run relays until ctx ends (it then waits for the publishes in flight,
// persists the cursor and returns nil) or a problem no retry can solve:
// a damaged or foreign cursor, another relay of this journal, this host's
// subjects filled by another journal, a journal that cannot be read.
// While NATS or JetStream is down or slow it retries with backoff and the
// lag grows (metrics, Status).
//
// Exactly-once: a record is in the stream once, however often the relay
// is killed and restarted, also beyond the stream's dedupe window. The
// cursor (state/relay.json) advances only over contiguous acknowledged
// publishes; at every start (and after every failed publish) the relay
// reads the stream's messages of this host after the cursor, counts
// those stored and publishes only the others; every publish made with
// nothing of this host in flight carries the expected last sequence of
// the host's subjects, so a publish racing another copy fails with
// "wrong last sequence" instead of storing twice (and is confirmed
// stored by the last message's Nats-Msg-Id); Nats-Msg-Id = event_id lets
// JetStream drop the copies of a retry inside its dedupe window.
func (r *Relay) Run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(r.dir, stateDir), 0o755); err != nil {
		return err
	}
	lk, err := lockRelay(r.dir)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	c, ok, err := ReadCursor(r.dir, r.journalID)
	if err != nil {
		return err
	}
	if ok {
		if c.Host != r.cfg.Host || c.Stream != r.cfg.Stream.Name {
			return fmt.Errorf("%w: state/relay.json ships this journal as host %q to stream %q, not host %q to stream %q: pass --host %s --stream %s, or remove state/relay.json to relay under the new name (the stream is read to find what it already holds)",
				types.ErrRelayConflict, c.Host, c.Stream, r.cfg.Host, r.cfg.Stream.Name, c.Host, c.Stream)
		}
		r.shipped.Store(c.Sequence)
		r.streamSeq, r.streamCreated, r.persisted, r.hadCursor = c.StreamSequence, c.StreamCreated, c.Sequence, true
	}
	r.update(func(st *Status) { st.Running = true })
	defer r.update(func(st *Status) { st.Running, st.Connected, st.InFlight = false, false, 0 })

	opts := append([]nats.Option{
		nats.Name("journalctl relay " + r.cfg.Host), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond), nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ConnectHandler(func(*nats.Conn) { r.connected(true) }),
		nats.ReconnectHandler(func(*nats.Conn) { r.connected(true) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { r.connected(false) }),
	}, r.cfg.NATSOptions...)
	nc, err := nats.Connect(r.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("%w: connect to %s: %v", types.ErrNATSUnavailable, r.cfg.URL, err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		r.connected(true)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*r.cfg.MaxInFlight), jetstream.WithPublishAsyncTimeout(r.cfg.AckTimeout))
	if err != nil {
		return err
	}
	lagCtx, stopLag := context.WithCancel(context.Background())
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); r.measureLag(lagCtx) }()
	defer func() { stopLag(); <-lagDone }()

	b := backoff{min: r.cfg.BackoffMin, max: r.cfg.BackoffMax}
	var reported bool
	for {
		before := r.shipped.Load()
		err := r.session(ctx, js, &reported)
		if perr := r.persist(true); perr != nil {
			r.log.Error("relay: cannot persist the cursor", "err", perr)
		}
		if ctx.Err() != nil {
			r.log.Info("relay stopped", "shipped_sequence", r.shipped.Load())
			return nil
		}
		var ce *CursorError
		switch {
		case errors.Is(err, types.ErrRelayConflict), errors.As(err, &ce), errors.Is(err, types.ErrHole), errors.Is(err, types.ErrIntegrity), errors.Is(err, types.ErrForeign):
			r.fail(err)
			return err
		case errors.Is(err, types.ErrCompacted):
			r.skipToHorizon()
			continue
		}
		r.fail(err)
		r.m.errors.WithLabelValues(errReason(err)).Inc()
		if r.shipped.Load() > before {
			b.reset()
		}
		wait := b.next()
		r.log.Warn("relay: publishing failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond), "shipped_sequence", r.shipped.Load())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

func (r *Relay) connected(up bool) {
	r.update(func(st *Status) { st.Connected = up })
	r.m.connected.Set(map[bool]float64{true: 1, false: 0}[up])
}

// skipToHorizon resumes after records retention removed before they were
// shipped: it says so (log, metric, status) and moves the cursor to the
// horizon.
func (r *Relay) skipToHorizon() {
	h := r.j.Status().Horizon
	from := r.shipped.Load()
	if h <= from+1 {
		return
	}
	n := h - 1 - from
	if !r.hadCursor && from == 0 {
		r.log.Info("relay: starting at the horizon; the records below it were removed before this journal was first relayed", "horizon", h)
	} else {
		r.log.Error("relay: retention removed records before they were shipped; they are not in the stream", "first_sequence", from+1, "last_sequence", h-1, "records", n)
		r.m.skipped.Add(float64(n))
		r.update(func(st *Status) { st.SkippedUnshipped += n })
	}
	r.shipped.Store(h - 1)
	r.streamSeq = 0 // unknown: the next reconcile reads from the stream's start if it must
	_ = r.persist(true)
}

// persist writes the cursor when it moved (force) or when it moved and
// PersistEvery passed.
func (r *Relay) persist(force bool) error {
	s := r.shipped.Load()
	if s == r.persisted || (!force && time.Since(r.persistedAt) < r.cfg.PersistEvery) {
		return nil
	}
	err := writeCursor(r.dir, Cursor{JournalID: r.journalID, Host: r.cfg.Host, Stream: r.cfg.Stream.Name, StreamCreated: r.streamCreated,
		Sequence: s, StreamSequence: r.streamSeq})
	if err != nil {
		return err
	}
	r.persisted, r.persistedAt, r.hadCursor = s, time.Now(), true
	return nil
}

// measureLag updates the lag every Tick: records between the head and
// the cursor, and the age (by commit time) of the oldest unshipped one.
func (r *Relay) measureLag(ctx context.Context) {
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	for {
		r.measureOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) measureOnce(ctx context.Context) {
	_, _ = r.j.Refresh()
	head, shipped := r.j.Head(), r.shipped.Load()
	var recs uint64
	var secs float64
	if head > shipped {
		recs = head - shipped
		res, err := r.j.Query(ctx, engine.Query{After: shipped, HasAfter: true, Limit: 1})
		if err == nil && len(res.Changes) > 0 {
			secs = max(time.Since(res.Changes[0].CommittedAt).Seconds(), 0)
		}
	}
	r.m.lagRecords.Set(float64(recs))
	r.m.lagSeconds.Set(secs)
	r.m.shipped.Set(float64(shipped))
	r.update(func(st *Status) { st.Head, st.LagRecords, st.LagSeconds = head, recs, secs })
}

// pending is one record published (or found stored) and not yet counted
// in the cursor.
type pending struct {
	seq       uint64
	msgID     string
	fut       jetstream.PubAckFuture // nil when done
	streamSeq uint64
	failed    bool // its publish failed (its future's answer was taken)
}

// sessionError ends a session from inside Follow's callback.
type sessionError struct{ err error }

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

// session checks the stream, reconciles the cursor with it, then
// publishes from the cursor until ctx ends or a publish fails.
func (r *Relay) session(ctx context.Context, js jetstream.JetStream, reported *bool) error {
	sctx, cancel := context.WithTimeout(ctx, 2*r.cfg.AckTimeout)
	s, rep, err := ensureStream(sctx, js, r.cfg.Stream, r.filter)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: %v", errStream, err)
	}
	if !*reported || rep.Created || len(rep.Changed) > 0 {
		switch {
		case rep.Created:
			r.log.Warn("relay: created stream", "subjects", rep.Subjects, "storage", "file", "replicas", rep.Replicas, "max_age", rep.MaxAge, "duplicates", rep.Dupes, "max_bytes", rep.MaxBytes, "max_msgs", rep.MaxMsgs)
		case len(rep.Changed) > 0:
			r.log.Warn("relay: changed stream", "changes", strings.Join(rep.Changed, "; "))
		default:
			r.log.Info("relay: stream checked, unchanged", "subjects", rep.Subjects, "replicas", rep.Replicas, "max_age", rep.MaxAge, "duplicates", rep.Dupes)
		}
		*reported = true
		r.update(func(st *Status) { st.StreamReport = &rep })
	}
	rctx, cancel := context.WithTimeout(ctx, 4*r.cfg.AckTimeout)
	skip, err := r.reconcile(rctx, s)
	cancel()
	if err != nil {
		return err
	}
	var q []*pending
	defer func() { r.drain(q) }()
	headDone := func() (bool, error) { // counts the first pending when it is done
		p := q[0]
		if p.fut != nil {
			return false, nil
		}
		r.advance(p.seq, p.streamSeq)
		q = q[1:]
		return true, nil
	}
	// settle resolves the oldest publish: waiting for it when block.
	settle := func(block bool) error {
		for len(q) > 0 {
			if ok, _ := headDone(); ok {
				continue
			}
			p := q[0]
			var ack *jetstream.PubAck
			var perr error
			if block {
				select {
				case ack = <-p.fut.Ok():
				case perr = <-p.fut.Err():
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				select {
				case ack = <-p.fut.Ok():
				case perr = <-p.fut.Err():
				default:
					return nil
				}
			}
			if perr != nil {
				if !isWrongLastSeq(perr) {
					p.failed = true
					return fmt.Errorf("publish sequence %d: %w", p.seq, perr)
				}
				r.m.errors.WithLabelValues("wrong_last_sequence").Inc()
				// Probably stored by an earlier copy: believe it only when
				// this host's last message is this record.
				gctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
				last, gerr := s.GetLastMsgForSubject(gctx, r.filter)
				cancel()
				if gerr != nil || last.Header.Get(jetstream.MsgIDHeader) != p.msgID {
					p.failed = true
					return fmt.Errorf("publish sequence %d: %w (this host's last message is not it: reconciling)", p.seq, perr)
				}
				ack = &jetstream.PubAck{Sequence: last.Sequence, Duplicate: true}
			}
			p.fut, p.streamSeq = nil, ack.Sequence
			r.lastHostSeq = max(r.lastHostSeq, ack.Sequence)
			r.m.published.Inc()
			r.update(func(st *Status) { st.Published++ })
		}
		return nil
	}
	inFlight := func() bool {
		for _, p := range q {
			if p.fut != nil {
				return true
			}
		}
		return false
	}
	err = r.j.Follow(ctx, engine.Query{After: r.shipped.Load(), HasAfter: true}, engine.FollowOptions{Tick: r.cfg.Tick, Batch: 512, Pace: r.cfg.Linger}, func(ev engine.FollowEvent) error {
		if ev.Change == nil {
			if err := settle(false); err != nil {
				return &sessionError{err}
			}
			_ = r.persist(true)
			return nil
		}
		c := ev.Change
		if ss, ok := skip[c.Sequence]; ok {
			delete(skip, c.Sequence)
			q = append(q, &pending{seq: c.Sequence, streamSeq: ss})
			return nil
		}
		for len(q) >= r.cfg.MaxInFlight {
			if err := settle(true); err != nil {
				return &sessionError{err}
			}
		}
		// AppendJSON is the record's one wire codec (json.Marshal would
		// call it and then compact its output again).
		body, err := c.AppendJSON(make([]byte, 0, 512), true)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: Subject(r.cfg.Host, c), Data: body, Header: nats.Header{}}
		id := MsgID(r.journalID, c)
		msg.Header.Set(jetstream.MsgIDHeader, id)
		msg.Header.Set(HeaderSequence, strconv.FormatUint(c.Sequence, 10))
		msg.Header.Set(HeaderHost, r.cfg.Host)
		msg.Header.Set(HeaderJournal, r.journalID)
		popts := []jetstream.PublishOpt{jetstream.WithExpectStream(r.cfg.Stream.Name)}
		if !inFlight() {
			popts = append(popts, jetstream.WithExpectLastSequenceForSubject(r.lastHostSeq, r.filter))
		}
		fut, err := js.PublishMsgAsync(msg, popts...)
		if err != nil {
			return &sessionError{fmt.Errorf("publish sequence %d: %w", c.Sequence, err)}
		}
		q = append(q, &pending{seq: c.Sequence, msgID: id, fut: fut})
		r.m.inFlight.Set(float64(len(q)))
		if err := settle(false); err != nil {
			return &sessionError{err}
		}
		_ = r.persist(false)
		return nil
	})
	var se *sessionError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

var errStream = errors.New("stream")

// advance counts record seq (stored at stream sequence ss) in the cursor.
func (r *Relay) advance(seq, ss uint64) {
	r.shipped.Store(seq)
	r.streamSeq = ss
}

// drain waits for the publishes still in flight, counting the contiguous
// acknowledged ones, so the next session starts from what is known.
func (r *Relay) drain(q []*pending) {
	defer r.m.inFlight.Set(0)
	deadline := time.NewTimer(r.cfg.AckTimeout + time.Second)
	defer deadline.Stop()
	counting := true
	for _, p := range q {
		if p.failed {
			counting = false
			continue
		}
		if p.fut == nil {
			if counting {
				r.advance(p.seq, p.streamSeq)
			}
			continue
		}
		select {
		case ack := <-p.fut.Ok():
			r.lastHostSeq = max(r.lastHostSeq, ack.Sequence)
			r.m.published.Inc()
			if counting {
				r.advance(p.seq, ack.Sequence)
			}
		case <-p.fut.Err():
			counting = false
		case <-deadline.C:
			return
		}
	}
}

// reconcile sets the cursor from what the stream holds of this host: the
// records after the cursor already stored are counted (those past a gap
// are returned by sequence with their stream sequence, for the session
// to skip), and lastHostSeq is set from the host's newest message.
func (r *Relay) reconcile(ctx context.Context, s jetstream.Stream) (map[uint64]uint64, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errStream, err)
	}
	sameStream := r.streamCreated.Equal(info.Created)
	if !sameStream && r.hadCursor && !r.streamCreated.IsZero() {
		r.log.Warn("relay: the stream is not the one the cursor was written for (created at another time); its messages of this host are read again to find what it holds",
			"cursor_stream_created", r.streamCreated, "stream_created", info.Created)
	}
	r.streamCreated = info.Created
	last, err := s.GetLastMsgForSubject(ctx, r.filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		r.lastHostSeq = 0
		if r.shipped.Load() > 0 && r.hadCursor {
			r.log.Warn("relay: the stream holds no message of this host although the cursor says records were shipped (its limits removed them, it was purged, or it is a new stream); relaying on from the cursor",
				"shipped_sequence", r.shipped.Load())
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read this host's last message: %v", errStream, err)
	}
	if err := r.checkOwn(last); err != nil {
		return nil, err
	}
	r.lastHostSeq = last.Sequence
	L, _ := strconv.ParseUint(last.Header.Get(HeaderSequence), 10, 64)
	C := r.shipped.Load()
	if L <= C {
		if L < C {
			r.log.Warn("relay: the stream's newest message of this host is older than the cursor (removed by the stream's limits or a purge); relaying on from the cursor",
				"stream_last_sequence", L, "shipped_sequence", C)
		}
		return nil, nil
	}
	start := info.State.FirstSeq
	if sameStream && r.streamSeq > 0 && r.streamSeq < last.Sequence {
		start = r.streamSeq + 1
	} else {
		r.log.Info("relay: reading this host's messages from the stream's start to find what it holds", "first_stream_sequence", start, "last_stream_sequence", last.Sequence)
	}
	skip := map[uint64]uint64{}
	for seq := start; seq <= last.Sequence; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(r.filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read stream message %d: %v", errStream, seq, err)
		}
		if err := r.checkOwn(m); err != nil {
			return nil, err
		}
		if rs, _ := strconv.ParseUint(m.Header.Get(HeaderSequence), 10, 64); rs > C {
			skip[rs] = m.Sequence
		}
		seq = m.Sequence + 1
	}
	from := C
	for {
		ss, ok := skip[C+1]
		if !ok {
			break
		}
		delete(skip, C+1)
		C++
		r.advance(C, ss)
	}
	r.log.Info("relay: reconciled the cursor with the stream", "cursor_was", from, "cursor", C, "stream_last_sequence", L, "stored_past_a_gap", len(skip))
	if err := r.persist(true); err != nil {
		return nil, err
	}
	return skip, nil
}

// checkOwn refuses a message of this host's subjects that another
// journal wrote.
func (r *Relay) checkOwn(m *jetstream.RawStreamMsg) error {
	if id := m.Header.Get(HeaderJournal); id != r.journalID {
		return fmt.Errorf("%w: stream %s message %d (%s) was written by journal %q, this is journal %s: two journals must not share the host name %q; give this one its own --host, or remove the host's messages from the stream",
			types.ErrRelayConflict, r.cfg.Stream.Name, m.Sequence, m.Subject, id, r.journalID, r.cfg.Host)
	}
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// errReason is the reason label of a failed publish.
func errReason(err error) string {
	switch {
	case errors.Is(err, errStream):
		return "stream"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected):
		return "unavailable"
	case isWrongLastSeq(err):
		return "wrong_last_sequence"
	}
	return "other"
}

// backoff is exponential with full jitter.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	ceil := b.min << min(b.n, 20)
	if ceil > b.max || ceil <= 0 {
		ceil = b.max
	}
	b.n++
	return time.Duration(rand.Int64N(int64(ceil))) + time.Millisecond
}

func (b *backoff) reset() { b.n = 0 }
