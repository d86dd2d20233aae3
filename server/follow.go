package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// DefaultFollowProgress is how often a quiet follow stream sends a
// progress line, so a client tells a quiet stream from a dead one.
const DefaultFollowProgress = 15 * time.Second

// FollowControl is a line of a follow stream (GET /v1/changes?follow=1,
// application/x-ndjson) that is not a change: a progress line carrying
// the head when nothing matched for a while, or the final shutdown line.
// Every other line is one change, as in GET /v1/changes.
type FollowControl struct {
	Progress *FollowProgress `json:"progress,omitempty"`
	Shutdown *Shutdown       `json:"shutdown,omitempty"`
	Resync   *FollowResync   `json:"resync,omitempty"`
}

// FollowProgress says the stream is alive and how far the journal is.
type FollowProgress struct {
	Head uint64 `json:"head"`
}

// Shutdown is the last line of a follow stream and the last event of an
// invalidation stream when the server stops: the stream did not end
// because everything was said, so the client reconnects (to the next
// server, or falls back to the files) from ResumeAfter.
type Shutdown struct {
	Reason      string `json:"reason"`
	ResumeAfter uint64 `json:"resume_after"`
}

// shutdownReason is Shutdown.Reason when the server drains.
const shutdownReason = "the server is shutting down; reconnect and resume"

// ErrServerShutdown matches a stream that the server ended because it
// is shutting down (its final shutdown line or event).
var ErrServerShutdown = errors.New("server: the stream ended: the server is shutting down")

// ErrStreamEnded matches a stream that ended without a final line: the
// server died or the connection broke.
var ErrStreamEnded = errors.New("server: the stream ended without a shutdown line")

// FollowResync is the last line of a follow stream whose client stopped
// reading until its bounded buffer overflowed: the lines queued for it
// were dropped and the server disconnects. Every change up to
// ResumeAfter was sent before this line; reconnect with after=ResumeAfter
// to miss nothing.
type FollowResync struct {
	Reason      string `json:"reason"`
	ResumeAfter uint64 `json:"resume_after"`
}

// ErrStreamOverflow matches a stream the server ended because the client
// read too slowly (its resync line or event with reason "overflow").
var ErrStreamOverflow = errors.New("server: the stream ended: the client read too slowly and its buffer overflowed; resume from the resync's cursor")

// follow streams the records after the cursor that match q as NDJSON,
// oldest first, until the client goes away or the server drains, when
// the last line is a Shutdown. A cursor that falls below the horizon
// (the follower was too slow for compaction) ends the stream with a
// 'compacted' error line. Lines go through a bounded buffer (streamOut):
// a client that stops reading until it overflows gets a resync line and
// is disconnected, so it never grows the server's memory.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, q engine.Query) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream has no write deadline
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.drainc:
			cancel() // a draining server ends its streams at once
		case <-ctx.Done():
		}
	}()
	s.metrics.streamsOpen.WithLabelValues(streamFollow).Inc()
	defer s.metrics.streamsOpen.WithLabelValues(streamFollow).Dec()
	q.NewestFirst = false
	q.Limit = 1000
	cursor := q.After
	bw := bufio.NewWriter(w)
	out := newStreamOut(s.cfg.StreamBuffer, s.cfg.StreamStall, cursor, bw,
		func() error {
			if err := bw.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		}, cancel)
	line := func(v any) []byte {
		b, _ := json.Marshal(v)
		return append(b, '\n')
	}
	var final func(uint64) []byte
	drop := false
	defer func() {
		if final == nil && s.draining.Load() {
			final = func(resume uint64) []byte {
				return line(FollowControl{Shutdown: &Shutdown{Reason: shutdownReason, ResumeAfter: resume}})
			}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamFinalWrite))
		out.finish(drop, final)
	}()
	overflow := func() {
		drop = true
		s.metrics.streamOverflows.WithLabelValues(streamFollow).Inc()
		s.metrics.streamResyncs.WithLabelValues(streamFollow, resyncOverflow).Inc()
		final = func(resume uint64) []byte {
			s.log.Warn("stream overflow", "stream", streamFollow, "remote", r.RemoteAddr, "request_id", w.Header().Get(requestIDHeader),
				"buffer_bytes", s.cfg.StreamBuffer, "stall", s.cfg.StreamStall, "resume_after", resume)
			return line(FollowControl{Resync: &FollowResync{Reason: resyncOverflow, ResumeAfter: resume}})
		}
	}
	// push queues a line; false ends the stream (overflow, a gone client,
	// a drain).
	push := func(b []byte, seq uint64) bool {
		err := out.push(ctx, b, seq)
		if errors.Is(err, errOverflow) {
			overflow()
		}
		return err == nil
	}
	err := s.j.Follow(ctx, q, engine.FollowOptions{Tick: s.cfg.FollowProgress}, func(ev engine.FollowEvent) error {
		if ev.Change == nil {
			if !push(line(FollowControl{Progress: &FollowProgress{Head: ev.Head}}), 0) {
				return errStreamDone
			}
			return nil
		}
		if !push(line(ev.Change), ev.Cursor) {
			return errStreamDone
		}
		cursor = ev.Cursor
		return nil
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errStreamDone) && !errors.Is(err, engine.ErrClosed) {
		if ce, ok := AsCompacted(err, cursor, s.j.Status().Horizon); ok {
			err = ce
			s.metrics.streamResyncs.WithLabelValues(streamFollow, resyncCompacted).Inc()
		}
		b := line(ErrorBody{Error: apiErrorOf(err)})
		final = func(uint64) []byte { return b }
	}
}

// errStreamDone ends a Follow whose stream can take no more lines.
var errStreamDone = errors.New("stream done")

// Follow streams the records after cursor that match q to fn, oldest
// first, until ctx ends or fn returns false (nil then). Progress lines are
// not passed on. A stream the server ends because it shuts down returns
// ErrServerShutdown; one that ends without a word, ErrStreamEnded; a
// cursor below the horizon, an error matching types.ErrCompacted.
func (c *Client) Follow(ctx context.Context, q engine.Query, fn func(engine.Change) bool) error {
	v := queryValues(q)
	v.Set("follow", "1")
	v.Set("after", strconv.FormatUint(q.After, 10))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/changes?"+v.Encode(), nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach journal server at %s: %w", c.target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		return decodeError(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var eb ErrorBody
		if json.Unmarshal(line, &eb) == nil && eb.Error.Code != "" {
			return decodeError(http.StatusGone, line)
		}
		var fl struct {
			engine.Change
			Progress *FollowProgress `json:"progress"`
			Shutdown *Shutdown       `json:"shutdown"`
			Resync   *FollowResync   `json:"resync"`
		}
		if err := json.Unmarshal(line, &fl); err != nil {
			return fmt.Errorf("follow stream: %w", err)
		}
		if fl.Shutdown != nil {
			return ErrServerShutdown
		}
		if fl.Resync != nil {
			return fmt.Errorf("%w (resume after %d)", ErrStreamOverflow, fl.Resync.ResumeAfter)
		}
		if fl.Progress != nil {
			continue
		}
		if !fn(fl.Change) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStreamEnded, err)
	}
	return ErrStreamEnded
}

// getStale answers which snapshots and surfaces changed after ?since=N.
func (s *Server) getStale(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	since, err := strconv.ParseUint(v.Get("since"), 10, 64)
	if v.Get("since") == "" {
		since, err = 0, nil
	}
	if err != nil {
		s.writeError(w, r, queryError("since", v.Get("since"), "is not a sequence number"))
		return
	}
	// Below the horizon the engine lists every snapshot and sets resync:
	// that is the answer, not an error. After refetching what is listed
	// the consumer is current as of the head.
	st, err := s.j.Stale(since)
	if err != nil && !errors.Is(err, engine.ErrCompacted) {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, StaleBody{StaleSet: st, ResumeAfter: max(since, st.Head)})
}

// queryValues encodes q as GET /v1/changes parameters.
func queryValues(q engine.Query) url.Values {
	v := url.Values{}
	if q.After > 0 || q.HasAfter {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(q.Surfaces) > 0 {
		v.Set("surface", strings.Join(q.Surfaces, ","))
	}
	if len(q.ChangeTypes) > 0 {
		v.Set("change_type", strings.Join(q.ChangeTypes, ","))
	}
	if q.AggregateType != "" {
		v.Set("aggregate_type", q.AggregateType)
		v.Set("aggregate_id", q.AggregateID)
	}
	if q.CorrelationID != "" {
		v.Set("correlation_id", q.CorrelationID)
	}
	if q.MinSeverity != "" {
		v.Set("min_severity", q.MinSeverity)
	}
	return v
}
