package server

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// Defaults of the per-source write rate limit.
const (
	// DefaultRateLimit is Config.RateLimit's default: 0, no limit. An
	// operator who shares one daemon between writers he does not trust
	// to behave sets one (records per second per source).
	DefaultRateLimit = 0
	// DefaultMaxRateSources bounds the sources the limiter remembers.
	// When a new source arrives and the table is full, the source idle
	// the longest is forgotten (it starts again with a full bucket).
	DefaultMaxRateSources = 4096
)

// rateLimiter is a token bucket per source field (records per second,
// burst records), in a table of at most max sources evicted by least
// recent use. Its memory is bounded whatever sources writers invent.
type rateLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	lru *list.List               // front: most recently used *rateEntry
	by  map[string]*list.Element // source → element of lru
}

type rateEntry struct {
	source string
	lim    *rate.Limiter
}

// newRateLimiter returns nil (no limit) for perSecond <= 0. A burst <= 0
// becomes max(1, ceil(perSecond)).
func newRateLimiter(perSecond float64, burst, maxSources int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	if maxSources <= 0 {
		maxSources = DefaultMaxRateSources
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, max: maxSources, lru: list.New(), by: map[string]*list.Element{}}
}

// limiter returns the bucket of source, making it (and evicting the least
// recently used bucket when the table is full) if needed. Called with mu.
func (rl *rateLimiter) limiter(source string) *rate.Limiter {
	if el, ok := rl.by[source]; ok {
		rl.lru.MoveToFront(el)
		return el.Value.(*rateEntry).lim
	}
	for rl.lru.Len() >= rl.max {
		old := rl.lru.Back()
		rl.lru.Remove(old)
		delete(rl.by, old.Value.(*rateEntry).source)
	}
	e := &rateEntry{source: source, lim: rate.NewLimiter(rl.limit, rl.burst)}
	rl.by[source] = rl.lru.PushFront(e)
	return e.lim
}

// sources reports how many sources the table holds (for tests).
func (rl *rateLimiter) sources() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.lru.Len()
}

// RateLimitedError is a write refused by the per-source rate limit. It
// matches types.ErrRateLimited.
type RateLimitedError struct {
	Source     string
	Records    int           // records of this source in the refused body
	RetryAfter time.Duration // when the body would be admitted
	PerSecond  float64
	Burst      int
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("source %q is over the server's write rate of %g records/s (burst %d): %d record(s) refused, nothing written; retry after %s",
		e.Source, e.PerSecond, e.Burst, e.Records, e.RetryAfter.Round(time.Millisecond))
}

func (e *RateLimitedError) Unwrap() error { return types.ErrRateLimited }

// retryAfterSeconds is the Retry-After header value: whole seconds,
// rounded up, at least 1.
func (e *RateLimitedError) retryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// admit takes, at once, the tokens of every source of a body (one per
// record). The body is admitted whole or refused whole: when one source
// lacks tokens, the tokens taken for the body's other sources are given
// back and the error says when to retry. A source with more records in
// one body than the burst can never be admitted: that is too_large
// (split the body). Tokens of an admitted body stay spent even when the
// engine then refuses it: a writer that floods invalid records is
// limited too.
func (rl *rateLimiter) admit(changes []engine.Change, now time.Time) error {
	if rl == nil {
		return nil
	}
	counts := map[string]int{}
	order := []string{}
	for i := range changes {
		src := changes[i].Source
		if counts[src] == 0 {
			order = append(order, src)
		}
		counts[src]++
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	var taken []*rate.Reservation
	giveBack := func() {
		for _, r := range taken {
			r.CancelAt(now)
		}
	}
	for _, src := range order {
		n := counts[src]
		if n > rl.burst {
			giveBack()
			return errorf(types.CodeTooLarge, "the body holds %d records of source %q, more than the server's rate-limit burst of %d (--rate-burst): it could never be admitted; send at most %d records of one source per request",
				n, clip(src), rl.burst, rl.burst)
		}
		r := rl.limiter(src).ReserveN(now, n)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			giveBack()
			return &RateLimitedError{Source: clip(src), Records: n, RetryAfter: d, PerSecond: float64(rl.limit), Burst: rl.burst}
		}
		taken = append(taken, r)
	}
	return nil
}
