package server

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/agentruntime/statejournal/internal/parse"
)

// endpointParams lists the query parameters each endpoint accepts, by
// "METHOD path" (HEAD is checked as GET). A parameter not listed is
// refused with 400 invalid_query naming it and the allowed ones, on every
// endpoint alike: a typo (?sinse=) must never be ignored silently. An
// endpoint missing here accepts none.
var endpointParams = map[string][]string{
	"GET /v1/changes":       queryParams,
	"GET /v1/stale":         {"since"},
	"GET /v1/invalidations": {"since"},
	"POST /v1/compact":      compactParams,
}

// checkParams refuses a query string that does not parse or names a
// parameter the endpoint does not accept.
func checkParams(r *http.Request, method string) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return queryError("query", r.URL.RawQuery, "is not a valid query string: "+err.Error())
	}
	allowed := endpointParams[method+" "+r.URL.Path]
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(allowed, k) {
			continue
		}
		if len(allowed) == 0 {
			return queryError(k, "", "is not a query parameter of "+method+" "+r.URL.Path+", which takes none")
		}
		return queryError(k, "", "is not a query parameter of "+method+" "+r.URL.Path, allowed...)
	}
	return nil
}

// oneParam returns the single value of a parameter ("" when absent), or
// an error when it is given more than once.
func oneParam(v url.Values, name string) (string, error) {
	vals := v[name]
	if len(vals) > 1 {
		return "", queryError(name, "", "is given more than once; give it once")
	}
	if len(vals) == 0 {
		return "", nil
	}
	return strings.TrimSpace(vals[0]), nil
}

// boolParam parses a strict boolean parameter (true, false, 1, 0).
// present is false when the parameter is absent.
func boolParam(v url.Values, name string) (value, present bool, err error) {
	if _, ok := v[name]; !ok {
		return false, false, nil
	}
	s, err := oneParam(v, name)
	if err != nil {
		return false, true, err
	}
	b, err := parse.Bool(s)
	if err != nil {
		return false, true, queryError(name, s, "is not a boolean", parse.BoolWords...)
	}
	return b, true, nil
}

// sequenceParam parses the value of a sequence-number parameter.
func sequenceParam(name, s string) (n uint64, err error) {
	n, err = strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, queryError(name, s, "is not a sequence number (a non-negative integer)")
	}
	return n, nil
}

// parseProblem is the problem text of a parse error, for queryError.
func parseProblem(err error) string {
	if pe, ok := err.(*parse.Error); ok {
		return pe.Problem
	}
	return err.Error()
}
