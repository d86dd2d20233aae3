package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id    string
	event string
	data  string
}

// subscribe opens GET /v1/invalidations and delivers its events.
func subscribe(t *testing.T, e *env, lastEventID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/invalidations", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("invalidations answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return ch, cancel
}

func nextEvent(t *testing.T, ch <-chan sseEvent, kind string, within time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s", kind)
			}
			if ev.event == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", kind, within)
		}
	}
}

func record(t *testing.T, j *engine.Journal, n int) uint64 {
	t.Helper()
	var last uint64
	for i := 0; i < n; i++ {
		rc, err := j.Record(context.Background(), engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session",
			ChangeType: "heartbeat", AggregateType: "work_session", AggregateID: "ws-1", Metadata: map[string]any{"secretless": "detail"}})
		if err != nil {
			t.Fatal(err)
		}
		last = rc.Sequence
	}
	return last
}

var fastInvalidations = InvalidationConfig{Debounce: 40 * time.Millisecond, MaxDelay: 400 * time.Millisecond, Progress: 300 * time.Millisecond}

func TestAHeartbeatStormBecomesOneInvalidationPerSnapshot(t *testing.T) {
	// 200 records committed one by one: on a loaded 2-core machine one
	// fsync can take longer than fastInvalidations' debounce and the
	// storm as a whole longer than its cap, which would split the storm
	// for reasons this test is not about (the cap has its own test). A
	// debounce no commit gap reaches and a cap the storm cannot reach keep
	// the assertion exact: one event for the whole storm.
	cfg := fastInvalidations
	cfg.Debounce, cfg.MaxDelay = 300*time.Millisecond, time.Minute
	e := start(t, Config{Invalidations: cfg})
	ch, stop := subscribe(t, e, "")
	defer stop()
	time.Sleep(50 * time.Millisecond)
	head := record(t, e.j, 200)
	ev := nextEvent(t, ch, "invalidate", 5*time.Second)
	var inv Invalidation
	if err := json.Unmarshal([]byte(ev.data), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Snapshot != "runtime_health" || inv.Sequence != head || ev.id != strconv.FormatUint(head, 10) {
		t.Fatalf("event %+v (id %s), want runtime_health up to %d", inv, ev.id, head)
	}
	if strings.Contains(ev.data, "secretless") || strings.Contains(ev.data, "metadata") {
		t.Fatalf("an event carries record content: %s", ev.data)
	}
	// The storm was one event: the next one is a progress event.
	select {
	case ev := <-ch:
		if ev.event == "invalidate" {
			t.Fatalf("a second invalidation for the same storm: %+v", ev)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func TestAStormThatNeverGoesQuietIsStillAnnouncedWithinMaxDelay(t *testing.T) {
	e := start(t, Config{Invalidations: fastInvalidations})
	ch, stop := subscribe(t, e, "")
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		end := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(end) {
			record(t, e.j, 1)
			time.Sleep(10 * time.Millisecond) // never 40ms of quiet
		}
	}()
	nextEvent(t, ch, "invalidate", time.Second) // MaxDelay 400ms caps the wait
	<-done
}

func TestResumingWithLastEventIDAnnouncesWhatChangedSince(t *testing.T) {
	e := start(t, Config{Invalidations: fastInvalidations})
	before := record(t, e.j, 3)
	ch, stop := subscribe(t, e, strconv.FormatUint(before-2, 10))
	defer stop()
	ev := nextEvent(t, ch, "invalidate", 5*time.Second)
	if ev.id != strconv.FormatUint(before, 10) {
		t.Fatalf("resume event id %s, want %d", ev.id, before)
	}
	// Nothing changed after the head: a resume from it announces nothing.
	ch2, stop2 := subscribe(t, e, strconv.FormatUint(before, 10))
	defer stop2()
	ev = nextEvent(t, ch2, "progress", 2*time.Second)
	if !strings.Contains(ev.data, `"head":`+strconv.FormatUint(before, 10)) {
		t.Fatalf("progress event %q does not carry the head %d", ev.data, before)
	}
}

func TestACursorBelowTheHorizonGetsAResync(t *testing.T) {
	e := start(t, Config{Invalidations: fastInvalidations})
	record(t, e.j, 50)
	if _, err := e.j.Compact(context.Background(), engine.CompactOptions{SealActive: true, Retention: &engine.Retention{MaxRecords: 10}}); err != nil {
		t.Fatal(err)
	}
	if e.j.Status().Horizon <= 2 {
		t.Skip("retention did not move the horizon with one archive; nothing to test")
	}
	ch, stop := subscribe(t, e, "1")
	defer stop()
	ev := nextEvent(t, ch, "resync", 2*time.Second)
	var rs Resync
	if err := json.Unmarshal([]byte(ev.data), &rs); err != nil || rs.Reason != "compacted" || rs.Head != e.j.Head() || rs.ResumeAfter != rs.Head {
		t.Fatalf("resync %+v (%v)", rs, err)
	}
}

func TestInvalidationsNameTheChangedSurfacesAndSurfacesWithoutASnapshot(t *testing.T) {
	e := start(t, Config{Invalidations: fastInvalidations})
	ch, stop := subscribe(t, e, "")
	defer stop()
	time.Sleep(50 * time.Millisecond)
	head := record(t, e.j, 3)
	ev := nextEvent(t, ch, "invalidate", 5*time.Second)
	var inv Invalidation
	if err := json.Unmarshal([]byte(ev.data), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Snapshot != "runtime_health" || inv.Sequence != head || !slices.Equal(inv.Surfaces, []string{"runtime_work_session"}) {
		t.Fatalf("event %s, want runtime_health up to %d naming runtime_work_session", ev.data, head)
	}
	// runtime_socket_sessions hints no snapshot: a surface watcher is
	// still told, under snapshot "none".
	rc, err := e.j.Record(context.Background(), engine.Change{Source: "runtime.socket_bridge", Surface: "runtime_socket_sessions",
		ChangeType: "created", AggregateType: "socket", AggregateID: "s-1"})
	if err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, ch, "invalidate", 5*time.Second)
	inv = Invalidation{}
	if err := json.Unmarshal([]byte(ev.data), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Snapshot != "none" || inv.Sequence != rc.Sequence || !slices.Equal(inv.Surfaces, []string{"runtime_socket_sessions"}) {
		t.Fatalf("event %s, want snapshot none up to %d naming runtime_socket_sessions", ev.data, rc.Sequence)
	}
}
