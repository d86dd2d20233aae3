package parse

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// ErrInvalid is matched (errors.Is) by every error of this package.
var ErrInvalid = errors.New("invalid value")

// Error is a value that does not parse: Input is what was given, Problem
// says what is wrong and what is allowed, Allowed lists the allowed words
// when the set is small (booleans).
type Error struct {
	Kind    string // "duration", "time", "timestamp", "size" or "bool"
	Input   string
	Problem string
	Allowed []string
}

// Error renders the error as `"INPUT" PROBLEM`.
func (e *Error) Error() string { return fmt.Sprintf("%q %s", e.Input, e.Problem) }

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Problems, which name examples of what is allowed.
const (
	durationProblem  = "is not a duration: give a number and a unit, e.g. 30s, 15m, 36h, 7d, 2w (units ns, us, ms, s, m, h, d, w)"
	timeProblem      = "is not a time: give an RFC 3339 time, a date (midnight UTC) or a duration ago, e.g. 2026-12-01T10:00:00Z, 2026-12-01, 15m, 36h, 7d, 2w"
	timestampProblem = "is not an RFC 3339 timestamp (e.g. 2026-11-26T17:51:57.123Z)"
	sizeProblem      = "is not a size: give a number and an optional unit, e.g. 512, 64K, 64M, 64MiB, 1.5GiB, 64MB (K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB powers of 1000)"
)

// MaxDuration is the longest duration Duration accepts: 100 years. Longer
// ones are typos, and they keep now-d far from time.Time's limits.
const MaxDuration = 100 * 365 * 24 * time.Hour

// durationUnits are the units of Duration, longest suffix first where one
// is a prefix of another (ms before m, ns/us before s).
var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "μs": time.Microsecond,
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
	"d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

// Duration parses a duration: one or more <number><unit> terms (30s, 15m,
// 36h, 7d, 2w, 1h30m, 1.5h) or a bare 0. Fractions below a nanosecond are
// dropped. It refuses negative durations, a missing or unknown unit and
// durations over MaxDuration.
func Duration(s string) (time.Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	fail := func(problem string) (time.Duration, error) {
		return 0, &Error{Kind: "duration", Input: in, Problem: problem}
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return fail(durationProblem)
	}
	if s[0] == '-' {
		return fail("is negative; " + strings.TrimPrefix(durationProblem, "is not a duration: "))
	}
	total := new(big.Rat)
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num := s[:i]
		if num == "" || num == "." || strings.Count(num, ".") > 1 {
			return fail(durationProblem)
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit, ok := durationUnits[s[:j]]
		if !ok {
			return fail(durationProblem)
		}
		s = s[j:]
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			return fail(durationProblem)
		}
		total.Add(total, r.Mul(r, new(big.Rat).SetInt64(int64(unit))))
		if total.Cmp(new(big.Rat).SetInt64(int64(MaxDuration))) > 0 {
			return fail("is longer than 100 years, the longest duration accepted")
		}
	}
	n := new(big.Int).Quo(total.Num(), total.Denom())
	return time.Duration(n.Int64()), nil
}

// Time parses a point in time: an RFC 3339 time (any offset, fraction
// optional), a date (2006-01-02, midnight UTC), "now", or a Duration
// meaning that long before now. The result is in UTC.
func Time(s string, now time.Time) (time.Time, error) {
	t := strings.TrimSpace(s)
	if t == "now" {
		return now.UTC(), nil
	}
	if v, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return v.UTC(), nil
	}
	if v, err := time.Parse(time.DateOnly, t); err == nil {
		return v.UTC(), nil
	}
	if d, err := Duration(t); err == nil {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, &Error{Kind: "time", Input: s, Problem: timeProblem}
}

// Timestamp parses an RFC 3339 timestamp (with or without fractional
// seconds, any offset) and returns it in UTC. It is the form records
// carry; it takes neither dates nor durations.
func Timestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &Error{Kind: "timestamp", Input: s, Problem: timestampProblem}
	}
	return t.UTC(), nil
}

// sizeUnits maps a lower-cased unit to its multiplier.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// Size parses a byte size: a number (a fraction allowed) and an optional
// case-insensitive unit (see the package doc: K/M/G/T and KiB/MiB/...
// are powers of 1024, KB/MB/... powers of 1000). The result is rounded
// down to whole bytes; negative sizes and sizes over 2^63-1 are refused.
func Size(s string) (int64, error) {
	in := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	r, rok := new(big.Rat).SetString(num)
	if !ok || !rok || num == "" || strings.Count(num, ".") > 1 || num[0] == '.' {
		if strings.HasPrefix(s, "-") {
			return 0, &Error{Kind: "size", Input: in, Problem: "is negative; a size is 0 or more bytes"}
		}
		return 0, &Error{Kind: "size", Input: in, Problem: sizeProblem}
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return 0, &Error{Kind: "size", Input: in, Problem: "is larger than 8 EiB, the largest size accepted"}
	}
	return n.Int64(), nil
}

// BoolWords are the words Bool accepts (case-insensitive).
var BoolWords = []string{"true", "false", "1", "0"}

// Bool parses true, false, 1 or 0 (case-insensitive). Any other word,
// the empty string included, is an error listing the allowed words.
func Bool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, &Error{Kind: "bool", Input: s, Problem: "is not a boolean; allowed: true, false, 1, 0", Allowed: BoolWords}
}
