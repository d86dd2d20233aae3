package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentruntime/statejournal/types"
)

// Error codes of the server's answers. They are types' codes: the one
// table of codes, HTTP statuses and exit codes is types.CodeTable.
const (
	CodeInvalidQuery         = types.CodeInvalidQuery
	CodeUnauthorized         = types.CodeUnauthorized
	CodeForbiddenHost        = types.CodeForbiddenHost
	CodeNotFound             = types.CodeNotFound
	CodeMethodNotAllowed     = types.CodeMethodNotAllowed
	CodeTooLarge             = types.CodeTooLarge
	CodeUnsupportedMediaType = types.CodeUnsupportedMediaType
	CodeCanceled             = types.CodeCanceled
	CodeInternal             = types.CodeInternal
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

// statusOf maps an error code to its HTTP status (types.HTTPStatus).
func statusOf(code string) int { return types.HTTPStatus(code) }

// apiErrorOf turns an engine or server error into its API form. Errors
// that are not part of the contract become code "internal" with a message
// that points at the log instead of leaking internals.
func apiErrorOf(err error) APIError {
	// A ready answer first: its cause (errorf's %w) may hold anything.
	var ae *apiErr
	if errors.As(err, &ae) {
		return ae.e
	}
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
type apiErr struct {
	e     APIError
	cause error // what errorf wrapped with %w, or nil
}

func (a *apiErr) Error() string { return a.e.Code + ": " + a.e.Message }

// Unwrap returns the sentinel of the code (types.Sentinel), so that
// types.Code and errors.Is see a ready answer's kind too, and the cause
// errorf wrapped, so that errors.Is sees it (syscall.ENOSPC, ...).
func (a *apiErr) Unwrap() []error {
	errs := make([]error, 0, 2)
	if s := types.Sentinel(a.e.Code); s != nil {
		errs = append(errs, s)
	}
	if a.cause != nil {
		errs = append(errs, a.cause)
	}
	return errs
}

// errorf is an answer with code and the message format makes; an error
// among args wrapped with %w stays matchable through it.
func errorf(code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	a := &apiErr{e: APIError{Code: code, Message: err.Error()}}
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		a.cause = err
	}
	return a
}

// asQueryError answers a field error of the contract (types.ErrInvalid)
// about a query filter as a bad query, not a bad change; other errors
// are returned as they are.
func asQueryError(err error) error {
	var fe *types.FieldError
	if errors.As(err, &fe) && fe.Kind == types.ErrInvalid {
		e := apiErrorOf(err)
		e.Code = CodeInvalidQuery
		return &apiErr{e: e}
	}
	return err
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
func clip(s string) string { return types.Clip(s, 128) }

// writeError writes err as a JSON error answer and logs internal errors.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := apiErrorOf(err)
	e.RequestID = w.Header().Get(requestIDHeader)
	status := statusOf(e.Code)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", e.Code, "err", err, "request_id", e.RequestID)
	} else {
		// Refusals are the client's doing: Info, so that a noisy client
		// does not drown the server's own warnings.
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", status, "code", e.Code, "request_id", e.RequestID, "remote", r.RemoteAddr}
		var rle *RateLimitedError
		if errors.As(err, &rle) {
			attrs = append(attrs, "source", rle.Source, "records", rle.Records, "retry_after", rle.RetryAfter)
		}
		s.log.Info("request refused", attrs...)
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
