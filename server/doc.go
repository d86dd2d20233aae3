// Package server is the HTTP API of the State Change Journal: the daemon
// behind `journalctl serve` and the client the CLI uses to write through
// it. It sits above package engine and speaks only in surface ids.
//
// # Transports and trust
//
// A Server listens on TCP (loopback by default, 127.0.0.1:7766) and on a
// Unix socket in the data directory (journal.sock). The socket is created
// with mode 0600 before anyone can connect to it: it is bound inside a
// fresh 0700 directory, chmod'ed, then renamed into place. A stale socket
// file is removed only when nothing answers on it. Requests over the
// socket are trusted: the file mode is the access control.
//
// Over TCP a bearer token (Config.Token; the CLI reads it from a file
// with ReadTokenFile, never from the command line) guards the API:
//
//   - listening on loopback without a token, every endpoint is open;
//   - once a token is set, every endpoint needs `Authorization: Bearer
//     <token>` except the probes /healthz and /readyz, and /metrics when
//     Config.MetricsOpen;
//   - listening beyond loopback, a token is mandatory (New refuses to
//     start without one).
//
// Tokens are compared in constant time (of their SHA-256 digests, so the
// length does not leak either). Because a loopback daemon without a token
// is reachable by any web page the operator's browser opens, POST bodies
// must declare a JSON content type (a browser cannot send one cross-site
// without a CORS preflight, which this server never grants), and on a
// loopback listener the Host header must name a loopback host (which
// defeats DNS rebinding).
//
// # Endpoints
//
//	POST /v1/changes      one change object, a JSON array, or NDJSON → 201 {"receipts":[...]}
//	GET  /v1/changes      query the journal → List (changes, order, after, head, horizon, more, resume_after)
//	GET  /v1/changes?follow=1  NDJSON stream of changes, progress lines, a final shutdown line
//	GET  /v1/stale        StaleBody: snapshots to refetch since a cursor; resync below the horizon
//	GET  /v1/invalidations  Server-Sent Events (invalidate, resync, progress, shutdown)
//	                      (invalidate: {snapshot, sequence, surfaces}; snapshot "none" for
//	                      surfaces that hint no snapshot)
//	GET  /v1/surfaces     the registry's surfaces with their live figures
//	GET  /v1/status       engine.Status
//	POST /v1/validate     engine.ValidateDir on the data directory → the report
//	POST /v1/compact      compaction and retention (dry_run previews)
//	GET  /healthz         200 {"status":"ok","last_sequence":N}, 503 when failed or draining
//	GET  /readyz          200 {"status":"ready",...} once the journal is open, 503 when failed or draining
//	GET  /metrics         Prometheus exposition of Config.Registry
//
// A POST /v1/changes body is all-or-nothing: every change is parsed and
// validated before any is written, a bad one answers 400 (or 422 for a
// policy refusal) naming its index, and nothing is written. NDJSON is
// recognised by its content type (application/x-ndjson) or by its shape:
// a first line that is a complete JSON object followed by further lines.
// Bodies are bounded by Config.MaxBodyBytes and the number of changes by
// Config.MaxBatch (413 beyond either). A Content-Encoding other than
// identity is 415 (bodies are never inflated); a leading UTF-8 byte
// order mark is ignored. Every body refused before the engine (415, 413,
// JSON that does not parse, a wrong type, an unknown field) is counted
// in state_journal_rejected_total under its code.
//
// Every endpoint refuses a query parameter it does not take (400
// invalid_query naming it and listing the allowed ones; endpointParams).
// Values are read by internal/parse, the CLI's parser: durations 30s,
// 15m, 36h, 7d, 2w; times as RFC 3339, a date or a duration ago; sizes
// 64M, 64MiB, 1.5GiB (K/M/G binary, KB/MB/GB decimal); booleans true,
// false, 1, 0 only. POST /v1/compact takes dry_run, coalesce, max_bytes,
// max_age and max_records as a JSON body or as query parameters, not
// the same one in both. GET /v1/stale and GET /v1/invalidations take
// since.
//
// GET /v1/changes takes these query parameters:
//
//	after           cursor: only records with a greater sequence
//	since, until    commit-time range (the journal's clock, not occurred_at): RFC 3339
//	                time, a date (2026-12-01), or a duration ago ("15m", "36h", "7d", "2w"); since < until
//	follow          true or 1: stream NDJSON (false or 0: a plain answer)
//	surface         surface ids, repeatable or comma-separated
//	change_type     change types, repeatable or comma-separated
//	aggregate_type, aggregate_id   both or neither
//	correlation_id
//	min_severity    debug, info, notice, warning, error or critical
//	limit           1..MaxQueryLimit, default engine.DefaultQueryLimit
//	order           newest or oldest
//
// The default order is newest first when no `after` is given (show me the
// latest) and oldest first when it is (follow from my cursor). Without a
// cursor the limit keeps the newest records whatever the order, as
// journalctl -n does; with one it pages forward (order=newest: the newest
// after the cursor). Every list answer carries the cursor vocabulary
// (see cursor.go): resume_after is the cursor to pass as `after` next —
// the last returned sequence when the limit cut a forward page short,
// otherwise the head at query time (every record up to it was
// considered). A cursor below the horizon answers 410 with code
// "compacted", the cursor (after), the horizon and resume_after: the
// client refetches its snapshots and resumes from there. GET /v1/stale
// below the horizon is not an error: 200 with resync true and every
// snapshot listed.
//
// Times in every answer are RFC 3339 UTC with nine fractional digits;
// durations are strings in the flag syntax ("30d", "36h").
//
// # Errors
//
// Every error is JSON with a stable code:
//
//	{"error":{"code":"unknown_surface","message":"...","field":"surface",
//	  "value":"...","problem":"...","allowed":[...],"suggestion":"...",
//	  "index":3,"request_id":"..."}}
//
// Codes and statuses come from the one table, types.CodeTable:
// invalid_change, invalid_query and unknown_surface 400; unauthorized
// 401; forbidden_host 403; not_found 404; method_not_allowed 405 (with
// Allow); read_only, locked and event_id_conflict (an event_id that
// names a stored record with other content; nothing of the body is
// written) 409; compacted 410;
// too_large 413; unsupported_media_type 415; policy_violation 422;
// rate_limited 429 (with Retry-After; Config.RateLimit);
// internal 500; journal_failed, closed, queue_full, canceled and
// draining 503. Field values come from the engine already redacted.
//
// # Lifecycle
//
// New binds the listeners (so a busy port or a live socket fails there)
// and registers the server's metrics. Serve records the addresses in the
// journal's lock file, serves until its context is cancelled, then
// drains: it ends every follow and invalidation stream with a final
// shutdown line or event (so clients reconnect rather than take the end
// for a normal one), stops accepting, lets in-flight requests finish (bounded by
// Config.DrainTimeout), removes the socket file and unregisters its
// metrics. The caller closes the journal after Serve returns; Close
// commits and fsyncs.
package server
