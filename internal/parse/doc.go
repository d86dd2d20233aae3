// Package parse is the one parser of every operator-given value kind the
// journal accepts: durations, points in time, byte sizes and booleans.
// The CLI's flags, the HTTP API's query parameters and request bodies and
// the engine all call it, so `--since 2w` and `?since=2w` accept exactly
// the same words and refuse exactly the same ones.
//
// The grammar, which the docs repeat:
//
//   - Duration: one or more <number><unit> terms, e.g. 30s, 15m, 36h, 7d,
//     2w, 1h30m, 1.5h. Units: ns, us (or µs), ms, s, m, h, d (24 h), w (7 d).
//     A bare 0 is zero. Negative durations and durations over 100 years
//     are refused.
//   - Time: an RFC 3339 time (2026-12-01T10:00:00Z, any offset, fraction
//     optional), a date (2026-12-01, midnight UTC), or a duration meaning
//     that long before now (15m, 7d), or "now".
//   - Timestamp: RFC 3339 only, the form records carry (occurred_at).
//   - Size: a number (fraction allowed) and an optional unit, case-insensitive:
//     B; K, KiB, Ki; M, MiB, Mi; G, GiB, Gi; T, TiB, Ti are powers of 1024
//     (64M = 64MiB = 67108864 bytes, as journald reads them); KB, MB, GB,
//     TB are powers of 1000 (64MB = 64000000 bytes). The result must be a
//     whole number of bytes.
//   - Bool: true, false, 1 or 0, case-insensitive. Anything else (yes, on,
//     an empty value) is an error, never silently false.
//
// Every error is a *Error carrying the input, the problem and examples of
// what is allowed; callers add the flag or parameter name.
//
// The package imports nothing of this module, so engine, server and cmd
// can all use it.
package parse
