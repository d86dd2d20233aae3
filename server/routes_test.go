package server

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestRoutesListExactlyWhatTheServerAnswers holds Routes to the router: an
// OPTIONS request (which no endpoint accepts, so no handler runs) to each
// listed path answers 405 with an Allow header naming exactly the methods
// Routes lists for that path, and a path Routes does not list answers 404.
func TestRoutesListExactlyWhatTheServerAnswers(t *testing.T) {
	e := start(t, Config{})
	h := e.srv.Handler()
	listed := map[string][]string{}
	for _, r := range Routes() {
		if r.Method == "" || !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("route %+v: want a method and an absolute path", r)
		}
		listed[r.Path] = append(listed[r.Path], r.Method)
	}
	if len(listed) == 0 {
		t.Fatal("Routes lists no endpoint")
	}
	ask := func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Host = "127.0.0.1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for path, methods := range listed {
		rec := ask(http.MethodOptions, path)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS %s: status %d, want 405 (a listed path the router does not know?)", path, rec.Code)
			continue
		}
		allow := strings.Split(rec.Header().Get("Allow"), ", ")
		slices.Sort(allow)
		slices.Sort(methods)
		if !slices.Equal(allow, methods) {
			t.Errorf("%s: the router allows %v, Routes lists %v", path, allow, methods)
		}
	}
	if rec := ask(http.MethodGet, "/v1/not-an-endpoint"); rec.Code != http.StatusNotFound {
		t.Errorf("GET of an unlisted path: status %d, want 404", rec.Code)
	}
}
