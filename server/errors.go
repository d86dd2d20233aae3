package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/types"
)

// Error codes the server adds to those of types.Code.
const (
	CodeInvalidQuery         = "invalid_query"
	CodeUnauthorized         = "unauthorized"
	CodeForbiddenHost        = "forbidden_host"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeTooLarge             = "too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeCanceled             = "canceled"
	CodeInternal             = "internal"
)

// ErrorBody is the JSON shape of every error answer: {"error": {...}}.
type ErrorBody struct {
	Error APIError `json:"error"`
}

// APIError is the error object of an HTTP answer. Code is stable and
// machine-readable; Message is for people. Field, Value, Problem, Allowed,
// Suggestion and Index come from a *types.FieldError (Index is present
// only for a change inside an array or NDJSON body). After, Horizon and
// ResumeAfter come with code "compacted" (see CompactedError). Value is redacted by the engine
// before it reaches the server.
type APIError struct {
	Code        string   `json:"code"`
	Message     string   `json:"message"`
	Field       string   `json:"field,omitempty"`
	Value       string   `json:"value,omitempty"`
	Problem     string   `json:"problem,omitempty"`
	Allowed     []string `json:"allowed,omitempty"`
	Suggestion  string   `json:"suggestion,omitempty"`
	Index       *int     `json:"index,omitempty"`
	After       *uint64  `json:"after,omitempty"`
	Horizon     uint64   `json:"horizon,omitempty"`
	ResumeAfter *uint64  `json:"resume_after,omitempty"`
	RequestID   string   `json:"request_id,omitempty"`
}

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case "invalid_change", CodeInvalidQuery, "unknown_surface", "bad_registry":
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbiddenHost:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case "read_only", "locked":
		return http.StatusConflict
	case "compacted":
		return http.StatusGone
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case "policy_violation":
		return http.StatusUnprocessableEntity
	case "journal_failed", "closed", "queue_full", CodeCanceled:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// apiErrorOf turns an engine or server error into its API form. Errors
// that are not part of the contract become code "internal" with a message
// that points at the log instead of leaking internals.
func apiErrorOf(err error) APIError {
	var fe *types.FieldError
	if errors.As(err, &fe) {
		e := APIError{
			Code: types.Code(fe), Message: fe.Error(), Field: fe.Field, Value: fe.Value,
			Problem: fe.Problem, Allowed: fe.Allowed, Suggestion: fe.Suggestion,
		}
		if fe.Index >= 0 {
			i := fe.Index
			e.Index = &i
		}
		return e
	}
	var ae *apiErr
	if errors.As(err, &ae) {
		return ae.e
	}
	var ce *CompactedError
	if errors.As(err, &ce) {
		return ce.APIError()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return APIError{Code: CodeCanceled, Message: "the request was canceled before the journal answered: " + err.Error()}
	}
	code := types.Code(err)
	if code == CodeInternal {
		return APIError{Code: CodeInternal, Message: "internal error; the server log has the details"}
	}
	return APIError{Code: code, Message: err.Error()}
}

// apiErr carries a ready APIError through error returns.
type apiErr struct{ e APIError }

func (a *apiErr) Error() string { return a.e.Code + ": " + a.e.Message }

func errorf(code, format string, args ...any) error {
	return &apiErr{e: APIError{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// queryError is a bad query parameter, as a FieldError-shaped APIError.
func queryError(field, value, problem string, allowed ...string) error {
	msg := field
	if value != "" {
		msg += fmt.Sprintf(" %q", value)
	}
	msg += " " + problem
	return &apiErr{e: APIError{Code: CodeInvalidQuery, Message: msg, Field: field, Value: clip(value), Problem: problem, Allowed: allowed}}
}

// clip bounds an echoed value so an error never carries a huge input.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	for n := max; n > max-utf8.UTFMax && n > 0; n-- {
		if utf8.RuneStart(s[n]) {
			return s[:n] + "…" // cut on a rune boundary
		}
	}
	return s[:max] + "…"
}

// writeError writes err as a JSON error answer and logs internal errors.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := apiErrorOf(err)
	e.RequestID = w.Header().Get(requestIDHeader)
	status := statusOf(e.Code)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err, "request_id", e.RequestID)
	}
	writeErrorBody(w, status, e)
}

func writeErrorBody(w http.ResponseWriter, status int, e APIError) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="state-journal"`)
	}
	writeJSON(w, status, ErrorBody{Error: e})
}

// writeJSON writes v as the JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encode answer: ` + jsonEscape(err.Error()) + `"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
