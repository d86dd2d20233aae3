package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
)

// InvalidationConfig tunes the invalidation stream.
type InvalidationConfig struct {
	// Debounce: a snapshot's invalidation is sent once its changes have
	// been quiet this long (default 250 ms), so a heartbeat storm is one
	// refetch, not thousands.
	Debounce time.Duration
	// MaxDelay caps how long an invalidation may be held back by a storm
	// that never goes quiet (default 2 s): the hard cap on staleness.
	MaxDelay time.Duration
	// Progress is how often a quiet stream sends a progress event with
	// the head sequence, so a quiet stream is told from a dead one
	// (default 15 s).
	Progress time.Duration
	// WriteTimeout bounds one write to a client (default 10 s). A client
	// that does not read is disconnected and resumes with Last-Event-ID.
	WriteTimeout time.Duration
}

// DefaultInvalidations are the stream's defaults.
var DefaultInvalidations = InvalidationConfig{Debounce: 250 * time.Millisecond, MaxDelay: 2 * time.Second, Progress: 15 * time.Second, WriteTimeout: 10 * time.Second}

func (c InvalidationConfig) withDefaults() InvalidationConfig {
	d := DefaultInvalidations
	if c.Debounce > 0 {
		d.Debounce = c.Debounce
	}
	if c.MaxDelay > 0 {
		d.MaxDelay = c.MaxDelay
	}
	if c.Progress > 0 {
		d.Progress = c.Progress
	}
	if c.WriteTimeout > 0 {
		d.WriteTimeout = c.WriteTimeout
	}
	return d
}

// Invalidation is the data of an "invalidate" event: refetch this
// snapshot; it changed up to this sequence. Surfaces are the surface ids
// that changed while the invalidation was held back (a superset of those
// whose records hint this snapshot: a surface changed in the same commit
// round as several snapshots is listed under each), so a consumer that
// watches surfaces rather than snapshots misses none. Changes to surfaces
// that hint no snapshot are announced under Snapshot "none". It carries
// no record content and no metadata.
type Invalidation struct {
	Snapshot string   `json:"snapshot"`
	Sequence uint64   `json:"sequence"`
	Surfaces []string `json:"surfaces"`
}

// Resync is the data of a "resync" event: the stream cannot say what
// changed (the cursor is below the horizon); refetch every snapshot and
// continue from Head.
type Resync struct {
	Reason  string `json:"reason"`
	Horizon uint64 `json:"horizon"`
	Head    uint64 `json:"head"`
	// ResumeAfter is the cursor the stream goes on from (the head): after
	// refetching every snapshot the client is current as of it.
	ResumeAfter uint64 `json:"resume_after"`
}

// pendingInvalidation is a snapshot waiting out its debounce.
type pendingInvalidation struct {
	after    uint64 // the cursor before its first change: resuming here repeats it
	lastSeq  uint64
	first    time.Time
	last     time.Time
	surfaces map[string]bool
}

// invalidationOf is the event of a pending snapshot, its surfaces sorted.
func invalidationOf(id string, p *pendingInvalidation) Invalidation {
	inv := Invalidation{Snapshot: id, Sequence: p.lastSeq, Surfaces: make([]string, 0, len(p.surfaces))}
	for sf := range p.surfaces {
		inv.Surfaces = append(inv.Surfaces, sf)
	}
	slices.Sort(inv.Surfaces)
	return inv
}

// getInvalidations is GET /v1/invalidations, a Server-Sent Events stream
// of which snapshots to refetch. The event id is a resume cursor: every
// change up to it has been announced, so a client reconnecting with
// Last-Event-ID (or ?since=N) misses nothing (it may be told twice). A
// cursor below the horizon gets a "resync" event. Per snapshot, changes
// are debounced (Debounce of quiet, at most MaxDelay after the first),
// so the state a client keeps is one pending entry per snapshot: a slow
// client cannot make the server buffer more; one that stops reading is
// disconnected after WriteTimeout and resumes from its last id.
func (s *Server) getInvalidations(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Invalidations.withDefaults()
	cursor := s.j.Head()
	from, name := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if from == "" {
		var err error
		if from, err = oneParam(r.URL.Query(), "since"); err != nil {
			s.writeError(w, r, err)
			return
		}
		name = "since"
	}
	if from != "" {
		n, err := sequenceParam(name, from)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		cursor = n
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	_ = rc.Flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.drainc:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.metrics.streamsOpen.WithLabelValues(streamInvalidations).Inc()
	defer s.metrics.streamsOpen.WithLabelValues(streamInvalidations).Dec()
	bw := bufio.NewWriter(w)
	out := newStreamOut(s.cfg.StreamBuffer, s.cfg.StreamStall, cursor, bw, func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}, cancel)
	event := func(id uint64, event string, data any) []byte {
		b, _ := json.Marshal(data)
		var e []byte
		if id > 0 {
			e = fmt.Appendf(e, "id: %d\n", id)
		}
		return fmt.Appendf(e, "event: %s\ndata: %s\n\n", event, b)
	}
	var final func(uint64) []byte
	drop := false
	defer func() {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamFinalWrite))
		out.finish(drop, final)
	}()
	horizon := uint64(0)
	// send queues an event; false ends the stream. A client whose buffer
	// overflows is told to resync from the cursor (what was queued for it
	// is dropped, so it cannot know what changed) and disconnected.
	send := func(id uint64, name string, data any) bool {
		err := out.push(ctx, event(id, name, data), id)
		if errors.Is(err, errOverflow) {
			drop = true
			s.metrics.streamOverflows.WithLabelValues(streamInvalidations).Inc()
			s.metrics.streamResyncs.WithLabelValues(streamInvalidations, resyncOverflow).Inc()
			head := cursor
			s.log.Warn("stream overflow", "stream", streamInvalidations, "remote", r.RemoteAddr, "request_id", w.Header().Get(requestIDHeader),
				"buffer_bytes", s.cfg.StreamBuffer, "stall", s.cfg.StreamStall, "resume_after", head)
			final = func(uint64) []byte {
				return event(head, "resync", Resync{Reason: resyncOverflow, Horizon: horizon, Head: head, ResumeAfter: head})
			}
		}
		return err == nil
	}
	if err := out.push(ctx, fmt.Appendf(nil, "retry: 2000\n: state journal invalidations from sequence %d\n\n", cursor), 0); err != nil {
		return
	}
	pending := map[string]*pendingInvalidation{}
	lastSent := time.Now()
	defer func() {
		if final == nil && s.draining.Load() {
			// The last word: what is pending is announced again by the
			// stream the client opens next, from this cursor on.
			resume := cursor
			for _, q := range pending {
				resume = min(resume, q.after)
			}
			final = func(uint64) []byte {
				return event(0, "shutdown", Shutdown{Reason: shutdownReason, ResumeAfter: resume})
			}
		}
	}()
	for {
		st, err := s.j.Stale(cursor)
		if err != nil {
			if !errors.Is(err, engine.ErrCompacted) {
				return
			}
			// Below the horizon: nothing can be said precisely.
			clear(pending)
			cursor = st.Head
			horizon = st.Horizon
			s.metrics.streamResyncs.WithLabelValues(streamInvalidations, resyncCompacted).Inc()
			if !send(st.Head, "resync", Resync{Reason: "compacted", Horizon: st.Horizon, Head: st.Head, ResumeAfter: st.Head}) {
				return
			}
			lastSent = time.Now()
			continue
		}
		horizon = st.Horizon
		now := time.Now()
		touch := func(id string, last uint64) {
			p := pending[id]
			if p == nil {
				p = &pendingInvalidation{after: cursor, first: now, surfaces: map[string]bool{}}
				pending[id] = p
			}
			p.lastSeq, p.last = max(p.lastSeq, last), now
			// This round's surfaces cannot be told apart by snapshot
			// (the index keeps no snapshot-by-surface map), so each
			// snapshot of the round lists them all.
			for _, sf := range st.Surfaces {
				p.surfaces[sf.ID] = true
			}
		}
		for _, it := range st.Snapshots {
			touch(it.ID, it.LastSequence)
		}
		if len(st.Snapshots) == 0 && len(st.Surfaces) > 0 {
			// Only surfaces that hint no snapshot changed.
			var last uint64
			for _, sf := range st.Surfaces {
				last = max(last, sf.LastSequence)
			}
			touch(registry.SnapshotNone, last)
		}
		cursor = st.Head
		// Send what is due, oldest first by its resume point.
		var next time.Time
		for id, p := range pending {
			due := p.last.Add(cfg.Debounce)
			if capAt := p.first.Add(cfg.MaxDelay); capAt.Before(due) {
				due = capAt
			}
			if !due.After(now) {
				delete(pending, id)
				resume := cursor
				for _, q := range pending {
					resume = min(resume, q.after)
				}
				if !send(resume, "invalidate", invalidationOf(id, p)) {
					return
				}
				lastSent = now
				continue
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
		if time.Since(lastSent) >= cfg.Progress {
			resume := cursor
			for _, q := range pending {
				resume = min(resume, q.after)
			}
			if !send(0, "progress", map[string]uint64{"head": cursor, "resume_after": resume}) {
				return
			}
			lastSent = time.Now()
		}
		wait := cfg.Progress - time.Since(lastSent)
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		wctx, wcancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
		_, err = s.j.Wait(wctx, cursor)
		wcancel()
		if ctx.Err() != nil || errors.Is(err, engine.ErrClosed) {
			return
		}
	}
}
