package server

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentruntime/statejournal/engine"
)

// batchOf is an NDJSON body of n heartbeats from source.
func batchOf(t *testing.T, source string, n int) []byte {
	t.Helper()
	var objs []any
	for i := range n {
		objs = append(objs, with(heartbeat(fmt.Sprintf("ws-%s-%d", source, i)), "source", source))
	}
	return ndjson(t, objs...)
}

// A source over its rate gets 429 rate_limited with Retry-After; a body
// is admitted or refused whole (a refused body writes nothing, also not
// the records of its other sources, whose tokens are given back); a
// source with more records in one body than the burst is too_large; the
// refusals are counted; the limiter remembers at most MaxRateSources.
func TestRateLimitRefusesAWholeBodyWith429AndRetryAfter(t *testing.T) {
	t.Parallel()
	e := start(t, Config{RateLimit: 0.5, RateBurst: 20, MaxRateSources: 3})
	const nd = "application/x-ndjson"
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.a", 15)); a.status != 201 {
		t.Fatalf("15 records of a within the burst: %d %s", a.status, a.raw)
	}
	head := e.lastSequence()
	// a has 5 tokens left: 10 more from a with 1 from b is refused whole.
	body := append(batchOf(t, "runtime.b", 1), batchOf(t, "runtime.a", 10)...)
	a := e.post("/v1/changes", nd, body)
	if a.status != 429 {
		t.Fatalf("a body over a's rate: %d %s, want 429", a.status, a.raw)
	}
	if eb := a.errorBody(t); eb.Code != "rate_limited" || !bytes.Contains([]byte(eb.Message), []byte(`"runtime.a"`)) {
		t.Errorf("429 body: %+v, want code rate_limited naming source runtime.a", eb)
	}
	ra, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 11 {
		t.Errorf("Retry-After %q: want whole seconds, 1..11 (5 tokens missing at 0.5/s)", a.header.Get("Retry-After"))
	}
	if got := e.lastSequence(); got != head {
		t.Fatalf("a refused body wrote records: head %d -> %d", head, got)
	}
	// b's token taken for the refused body was given back: 20 go through.
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.b", 20)); a.status != 201 {
		t.Errorf("b's full burst after the refused body: %d %s", a.status, a.raw)
	}
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.c", 21)); a.status != 413 || a.errorBody(t).Code != "too_large" {
		t.Errorf("21 records of one source over a burst of 20: %d %s, want 413 too_large", a.status, a.raw)
	}
	if got := testutil.ToFloat64(e.srv.metrics.rateLimited); got != 1 {
		t.Errorf("state_journal_rate_limited_total = %v, want 1", got)
	}
	m := e.get("/metrics")
	if !bytes.Contains(m.raw, []byte(`state_journal_rejected_total{reason="rate_limited"} 1`)) {
		t.Errorf("/metrics lacks state_journal_rejected_total{reason=\"rate_limited\"} 1")
	}
	for i := range 10 {
		e.post("/v1/changes", nd, batchOf(t, fmt.Sprintf("runtime.s%d", i), 1))
	}
	if n := e.srv.limiter.sources(); n != 3 {
		t.Errorf("the limiter remembers %d sources, want its bound 3", n)
	}
}

// Tokens come back at the rate: a refused source is admitted again once
// Retry-After has passed.
func TestRateLimitAdmitsAgainAfterRetryAfter(t *testing.T) {
	t.Parallel()
	e := start(t, Config{RateLimit: 20, RateBurst: 5})
	const nd = "application/x-ndjson"
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.a", 5)); a.status != 201 {
		t.Fatalf("burst: %d %s", a.status, a.raw)
	}
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.a", 5)); a.status != 429 {
		t.Fatalf("over the burst: %d %s", a.status, a.raw)
	}
	time.Sleep(300 * time.Millisecond) // 20/s: 5 tokens in 250 ms
	if a := e.post("/v1/changes", nd, batchOf(t, "runtime.a", 5)); a.status != 201 {
		t.Fatalf("after the refill: %d %s", a.status, a.raw)
	}
}

func TestNewRefusesABadRateLimit(t *testing.T) {
	t.Parallel()
	j, err := engine.Open(t.TempDir(), engine.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, cfg := range []Config{{RateLimit: -1}, {RateLimit: math.Inf(1)}, {RateBurst: -2}} {
		cfg.Listen, cfg.Socket = "127.0.0.1:0", Disabled
		srv, err := New(j, cfg)
		if err == nil {
			srv.Close()
			t.Errorf("New with rate limit %v burst %d accepted it", cfg.RateLimit, cfg.RateBurst)
		} else if !strings.Contains(err.Error(), "rate") {
			t.Errorf("New's error does not name the rate: %v", err)
		}
	}
}
