package types

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors shared across the journal's layers.
var (
	// ErrInvalid marks a change that breaks the record contract
	// (runtime-state-change-v1). The error is a *FieldError.
	ErrInvalid = errors.New("invalid change")
	// ErrUnknownSurface marks a change naming a surface the registry does
	// not declare. The error is a *FieldError with a suggestion.
	ErrUnknownSurface = errors.New("unknown surface")
	// ErrPolicy marks a change the migration policy refuses (journal
	// disabled for the surface, a source that does not own an
	// authority-adjacent surface, mutates_authority_state where it is not
	// allowed). The error is a *FieldError.
	ErrPolicy = errors.New("rejected by migration policy")
	// ErrCompacted is returned for a cursor below the horizon: the records
	// after it are no longer all readable. The consumer must resync from a
	// snapshot.
	ErrCompacted = errors.New("cursor is below the compaction horizon; resync from a snapshot")
	// ErrClosed is returned by calls on a closed journal.
	ErrClosed = errors.New("journal closed")
	// ErrReadOnly is returned by writing calls on a journal opened
	// read-only.
	ErrReadOnly = errors.New("journal opened read-only")
	// ErrFailed is returned by every write after a write or fsync of the
	// hot log failed: the failure is sticky until the journal is closed and
	// reopened, because the state of the file after a failed write or
	// fsync is unknown.
	ErrFailed = errors.New("journal write path failed; reopen the journal to recover")
	// ErrQueueFull is returned by RecordAsync when its bounded queue is
	// full; the change was dropped and counted.
	ErrQueueFull = errors.New("async record queue full")
	// ErrLocked is returned when another process holds the data
	// directory's writer lock.
	ErrLocked = errors.New("data directory is locked by another writer")
	// ErrEventIDConflict marks a change whose writer-supplied event_id
	// already names a stored record with other content. An event_id names
	// one record: a retry must send the same change, a new change needs a
	// new id. The error is a *FieldError naming the stored sequence.
	ErrEventIDConflict = errors.New("event_id already names a record with other content")
	// ErrBadRegistry marks a surface registry file that does not validate.
	ErrBadRegistry = errors.New("invalid surface registry")
	// ErrNoJournal is returned by reading commands when the data
	// directory does not exist or holds no journal.
	ErrNoJournal = errors.New("no journal in the data directory")
	// ErrUsage marks a command line that is wrong: an unknown command or
	// flag, a missing or bad flag value.
	ErrUsage = errors.New("usage error")
	// ErrInvalidQuery marks a bad query parameter or request option
	// (HTTP), the API form of a bad flag value.
	ErrInvalidQuery = errors.New("invalid query")
	// ErrUnauthorized marks a request without the bearer token it needs.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbiddenHost marks a request whose Host header names no
	// loopback host on a loopback listener (DNS rebinding).
	ErrForbiddenHost = errors.New("forbidden host")
	// ErrNotFound marks a request for a path the server does not serve.
	ErrNotFound = errors.New("not found")
	// ErrMethodNotAllowed marks a request with a method its path does not
	// accept.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrTooLarge marks a request body, a batch or an input line over its
	// bound.
	ErrTooLarge = errors.New("too large")
	// ErrUnsupportedMediaType marks a request body in a Content-Type or
	// Content-Encoding the server does not accept.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrUnavailable marks a journal server that could not be reached or
	// stopped answering (the client side of a dead server).
	ErrUnavailable = errors.New("journal server unreachable")
	// ErrDraining is answered while the server shuts down.
	ErrDraining = errors.New("server is shutting down")
	// ErrStarting is answered while the server is still opening the
	// journal (recovery and the index load); only the probes answer.
	ErrStarting = errors.New("server is still opening the journal")
	// ErrIntegrity marks a journal file (identity, horizon, archive)
	// that fails its checksum or disagrees with the files it describes:
	// it is not believed, and nothing it would decide is done.
	ErrIntegrity = errors.New("journal file failed its integrity check")
	// ErrForeign marks a file that belongs to another journal or to an
	// earlier incarnation of this directory (its journal id differs).
	ErrForeign = errors.New("file belongs to another journal")
	// ErrHole marks sequences between the horizon and the head that no
	// archive or hot segment holds: a read that crosses them fails.
	ErrHole = errors.New("sequences missing from the journal")
	// ErrRateLimited marks a write refused because its source is over the
	// server's per-source rate limit; the answer's Retry-After says when
	// to send it again.
	ErrRateLimited = errors.New("rate limited")
	// ErrRelayConflict marks a relay that would share what only one may
	// own: a journal another relay already ships (state/relay.lock), or
	// a host name whose subjects another journal already fills, or a
	// cursor kept for another host or stream.
	ErrRelayConflict = errors.New("relay conflict")
	// ErrNATSUnavailable marks a NATS server or JetStream that cannot be
	// reached or does not answer (the follower of the cluster stream).
	ErrNATSUnavailable = errors.New("NATS JetStream unavailable")
)

// FieldError names the field of a change (or registry entry) that is
// wrong, what is wrong with its value, and what is allowed. It matches its
// Kind sentinel with errors.Is.
type FieldError struct {
	Kind       error    // ErrInvalid, ErrUnknownSurface, ErrPolicy, ErrEventIDConflict or ErrBadRegistry
	Field      string   // JSON field name, e.g. "change_type"
	Value      string   // the offending value, already redacted where needed
	Problem    string   // what is wrong, e.g. "is not one of the allowed values"
	Allowed    []string // allowed values, when the set is small
	Suggestion string   // a "did you mean" value, when there is one
	Index      int      // position in a batch, -1 when not in a batch
}

// Error renders the error in one line: field, value, problem, allowed.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Index >= 0 && e.Kind != ErrBadRegistry {
		// Registry errors carry the surface's position in Field already.
		fmt.Fprintf(&b, "record %d: ", e.Index)
	}
	b.WriteString(e.Field)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(" ")
	b.WriteString(e.Problem)
	if e.Suggestion != "" {
		fmt.Fprintf(&b, " (did you mean %q?)", e.Suggestion)
	}
	if len(e.Allowed) > 0 {
		b.WriteString("; allowed: ")
		b.WriteString(strings.Join(e.Allowed, ", "))
	}
	return b.String()
}

// Unwrap returns the error's kind sentinel.
func (e *FieldError) Unwrap() error { return e.Kind }

// Code is the stable machine-readable code of the error's kind, used in
// HTTP error bodies and CLI --json output.
func (e *FieldError) Code() string { return Code(e) }

// Stable error codes. They appear as "code" in HTTP error bodies and in
// journalctl --json errors; a script branches on them, so they never
// change meaning.
const (
	CodeUnknownSurface       = "unknown_surface"
	CodePolicyViolation      = "policy_violation"
	CodeEventIDConflict      = "event_id_conflict"
	CodeInvalidChange        = "invalid_change"
	CodeCompacted            = "compacted"
	CodeHole                 = "hole"
	CodeForeignFile          = "foreign_file"
	CodeIntegrity            = "integrity"
	CodeClosed               = "closed"
	CodeReadOnly             = "read_only"
	CodeJournalFailed        = "journal_failed"
	CodeQueueFull            = "queue_full"
	CodeLocked               = "locked"
	CodeBadRegistry          = "bad_registry"
	CodeNoJournal            = "no_journal"
	CodeUsage                = "usage"
	CodeInvalidQuery         = "invalid_query"
	CodeUnauthorized         = "unauthorized"
	CodeForbiddenHost        = "forbidden_host"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeTooLarge             = "too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeCanceled             = "canceled"
	CodeDraining             = "draining"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeStarting             = "starting"
	CodeRelayConflict        = "relay_conflict"
	CodeNATSUnavailable      = "nats_unavailable"
	CodeInternal             = "internal"
)

// Exit codes of journalctl (SPEC section 7).
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // refused input, problems found, or a failure
	ExitUsage   = 2 // unknown command or flag, missing or bad flag value
)

// CodeInfo is one row of the error-code table: the code, the sentinel it
// stands for, the HTTP status of an answer with it and journalctl's exit
// code for it.
type CodeInfo struct {
	Code string
	Err  error // matched with errors.Is; nil only for CodeInternal
	HTTP int   // HTTP status
	Exit int   // journalctl exit code (ExitFailure or ExitUsage)
	// Field is true when an error with the code may name a field: it is
	// a *FieldError, and an HTTP answer carries field, value, problem,
	// allowed, suggestion and index, which a client rebuilds into one.
	Field   bool
	Meaning string
}

// codeTable is the single table of error codes. Code, HTTPStatus,
// ExitCode, Sentinel and NamesField read it; the server, its client and
// journalctl derive their answers from it and have no table of their
// own. The order is the order Code tries the sentinels: more specific
// kinds first. A code, once published, keeps its meaning.
var codeTable = [...]CodeInfo{
	{CodeUnknownSurface, ErrUnknownSurface, http.StatusBadRequest, ExitFailure, true, "the change names a surface the registry does not declare (with a suggestion)"},
	{CodePolicyViolation, ErrPolicy, http.StatusUnprocessableEntity, ExitFailure, true, "the migration policy refuses the change (journal disabled, not an owner source, mutates_authority_state where not allowed)"},
	{CodeEventIDConflict, ErrEventIDConflict, http.StatusConflict, ExitFailure, true, "the event_id is already recorded with different content"},
	{CodeInvalidChange, ErrInvalid, http.StatusBadRequest, ExitFailure, true, "the change (or the body) breaks the record contract; field, problem and allowed values are named"},
	{CodeCompacted, ErrCompacted, http.StatusGone, ExitFailure, false, "the cursor is below the compaction horizon; refetch snapshots and resume after resume_after"},
	{CodeHole, ErrHole, http.StatusInternalServerError, ExitFailure, false, "sequences between the horizon and the head are held by no file; the range and the files around it are named (state-journal-validate reports it)"},
	{CodeForeignFile, ErrForeign, http.StatusInternalServerError, ExitFailure, false, "a file of the data directory belongs to another journal or an earlier incarnation; it is named and nothing was deleted"},
	{CodeIntegrity, ErrIntegrity, http.StatusInternalServerError, ExitFailure, false, "a file of the data directory fails its checksum or disagrees with the others; it is named and nothing was deleted"},
	{CodeClosed, ErrClosed, http.StatusServiceUnavailable, ExitFailure, false, "the journal is closed"},
	{CodeReadOnly, ErrReadOnly, http.StatusConflict, ExitFailure, false, "the journal was opened read-only"},
	{CodeJournalFailed, ErrFailed, http.StatusServiceUnavailable, ExitFailure, false, "a hot-log write or fsync failed; the journal refuses writes until reopened"},
	{CodeQueueFull, ErrQueueFull, http.StatusServiceUnavailable, ExitFailure, false, "the RecordAsync queue is full; the change was dropped and counted"},
	{CodeLocked, ErrLocked, http.StatusConflict, ExitFailure, false, "another process holds the data directory's writer lock (the holder is named)"},
	{CodeBadRegistry, ErrBadRegistry, http.StatusBadRequest, ExitUsage, true, "the surface registry file does not validate"},
	{CodeNoJournal, ErrNoJournal, http.StatusNotFound, ExitFailure, false, "the data directory does not exist or holds no journal"},
	{CodeUsage, ErrUsage, http.StatusBadRequest, ExitUsage, false, "the command line is wrong: unknown command or flag, missing or bad flag value"},
	{CodeInvalidQuery, ErrInvalidQuery, http.StatusBadRequest, ExitUsage, true, "a query parameter or request option is unknown or has a bad value"},
	{CodeUnauthorized, ErrUnauthorized, http.StatusUnauthorized, ExitFailure, false, "the request lacks the bearer token, or it does not match"},
	{CodeForbiddenHost, ErrForbiddenHost, http.StatusForbidden, ExitFailure, false, "the Host header names no loopback host on a loopback listener"},
	{CodeNotFound, ErrNotFound, http.StatusNotFound, ExitFailure, false, "no endpoint at this path"},
	{CodeMethodNotAllowed, ErrMethodNotAllowed, http.StatusMethodNotAllowed, ExitFailure, false, "the endpoint does not accept this method (Allow lists those it does)"},
	{CodeTooLarge, ErrTooLarge, http.StatusRequestEntityTooLarge, ExitFailure, false, "a body, batch or input line is over its bound"},
	{CodeUnsupportedMediaType, ErrUnsupportedMediaType, http.StatusUnsupportedMediaType, ExitFailure, false, "the body's Content-Type or Content-Encoding is not accepted"},
	{CodeCanceled, context.Canceled, http.StatusServiceUnavailable, ExitFailure, false, "the request was canceled or timed out before the journal answered"},
	{CodeRateLimited, ErrRateLimited, http.StatusTooManyRequests, ExitFailure, false, "the source is over the server's per-source write rate (--rate-limit); nothing was written; retry after Retry-After seconds"},
	{CodeDraining, ErrDraining, http.StatusServiceUnavailable, ExitFailure, false, "the server is shutting down"},
	{CodeStarting, ErrStarting, http.StatusServiceUnavailable, ExitFailure, false, "the server is still opening the journal (recovery, index load); retry when /readyz answers 200"},
	{CodeUnavailable, ErrUnavailable, http.StatusServiceUnavailable, ExitFailure, false, "the journal server could not be reached or stopped answering (client side)"},
	{CodeRelayConflict, ErrRelayConflict, http.StatusConflict, ExitFailure, false, "the relay would share what only one may own: a journal another relay ships, a host name another journal's records fill in the stream, or a cursor kept for another host or stream"},
	{CodeNATSUnavailable, ErrNATSUnavailable, http.StatusServiceUnavailable, ExitFailure, false, "the NATS server or its JetStream could not be reached or did not answer"},
	{CodeInternal, nil, http.StatusInternalServerError, ExitFailure, false, "anything else; the server log or the message has the details"},
}

// Codes is a copy of the table, for documentation and tests: changing
// it changes no answer.
var Codes = CodeTable()

// CodeTable returns the table of error codes, one row per code, in the
// order Code tries them. The slice is the caller's.
func CodeTable() []CodeInfo { return append([]CodeInfo(nil), codeTable[:]...) }

// codeInfo returns the table row of code, or the CodeInternal row.
func codeInfo(code string) CodeInfo {
	for _, c := range codeTable {
		if c.Code == code {
			return c
		}
	}
	return codeTable[len(codeTable)-1]
}

// Code maps an error to its stable code: the first row of Codes whose
// sentinel the error matches (context.DeadlineExceeded counts as
// canceled), else CodeInternal; "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range codeTable {
		if c.Err != nil && errors.Is(err, c.Err) {
			return c.Code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeCanceled
	}
	return CodeInternal
}

// HTTPStatus is the HTTP status of an error answer with code (500 for a
// code not in the table).
func HTTPStatus(code string) int { return codeInfo(code).HTTP }

// ExitCode is journalctl's exit code for code (1 for a code not in the
// table).
func ExitCode(code string) int { return codeInfo(code).Exit }

// Sentinel is the sentinel error a code stands for, nil for CodeInternal
// and codes not in the table. A client rebuilding an error answer wraps
// it so that errors.Is works across the wire.
func Sentinel(code string) error {
	for _, c := range codeTable {
		if c.Code == code {
			return c.Err
		}
	}
	return nil
}

// NamesField reports whether an error with code may name a field (its
// row's Field): a client rebuilds such an answer into a *FieldError.
func NamesField(code string) bool { return codeInfo(code).Field }
