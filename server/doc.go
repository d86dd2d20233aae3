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
// Over TCP a bearer token (Config.Token) guards the API:
//
//   - listening on loopback without a token, every endpoint is open;
//   - listening on loopback with a token, writes and admin calls
//     (POST /v1/changes, POST /v1/validate) need `Authorization: Bearer
//     <token>`; reads stay open;
//   - listening beyond loopback, a token is mandatory (New refuses to
//     start without one) and every /v1 endpoint needs it; /healthz and
//     /metrics stay open.
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
//	GET  /v1/changes      query the journal → engine.Result (+ next_cursor, order)
//	GET  /v1/surfaces     the registry's surfaces with their live figures
//	GET  /v1/status       engine.Status
//	POST /v1/validate     engine.ValidateDir on the data directory → the report
//	GET  /healthz         200 {"status":"ok","last_sequence":N}, 503 when failed
//	GET  /metrics         Prometheus exposition of Config.Registry
//
// A POST /v1/changes body is all-or-nothing: every change is parsed and
// validated before any is written, a bad one answers 400 (or 422 for a
// policy refusal) naming its index, and nothing is written. NDJSON is
// recognised by its content type (application/x-ndjson) or by its shape:
// a first line that is a complete JSON object followed by further lines.
// Bodies are bounded by Config.MaxBodyBytes and the number of changes by
// Config.MaxBatch (413 beyond either).
//
// GET /v1/changes takes these query parameters (unknown ones are refused):
//
//	after           cursor: only records with a greater sequence
//	since, until    RFC 3339 time, or a duration ago ("15m", "36h", "7d", "2w")
//	surface         surface ids, repeatable or comma-separated
//	change_type     change types, repeatable or comma-separated
//	aggregate_type, aggregate_id   both or neither
//	correlation_id
//	min_severity    debug, info, notice, warning, error or critical
//	limit           1..MaxQueryLimit, default engine.DefaultQueryLimit
//	order           newest or oldest
//
// The default order is newest first when no `after` is given (show me the
// latest) and oldest first when it is (follow from my cursor). Oldest
// first, the answer carries next_cursor: pass it as `after` to continue.
// It is the last returned sequence when the limit cut the answer short,
// otherwise the head at query time (every record up to it was considered).
// A cursor below the horizon answers 410 with code "compacted": the
// client must refetch its snapshots and resume from resume_after.
//
// # Errors
//
// Every error is JSON with a stable code:
//
//	{"error":{"code":"unknown_surface","message":"...","field":"surface",
//	  "value":"...","problem":"...","allowed":[...],"suggestion":"...",
//	  "index":3,"request_id":"..."}}
//
// Codes and statuses: invalid_change, invalid_query and unknown_surface
// 400; unauthorized 401; forbidden_host 403; not_found 404;
// method_not_allowed 405 (with Allow); read_only and locked 409;
// compacted 410; too_large 413; unsupported_media_type 415;
// policy_violation 422; internal 500; journal_failed, closed, queue_full
// and canceled 503. Field values come from the engine already redacted.
//
// # Lifecycle
//
// New binds the listeners (so a busy port or a live socket fails there)
// and registers the server's metrics. Serve records the addresses in the
// journal's lock file, serves until its context is cancelled, then
// drains: it stops accepting, lets in-flight requests finish (bounded by
// Config.DrainTimeout), removes the socket file and unregisters its
// metrics. The caller closes the journal after Serve returns; Close
// commits and fsyncs.
package server
