package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

// TestTheErrorCodesPageStatesTheServersStatuses holds the HTTP column of
// docs/errors.md to statusOf: a row's status is the one the server
// answers with that code ("—" for codes the server never answers).
func TestTheErrorCodesPageStatesTheServersStatuses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "errors.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|\\s*([^|]*?)\\s*\\|")
	n := 0
	for i, ln := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(ln)
		if m == nil || m[2] == "—" {
			continue
		}
		n++
		got, err := strconv.Atoi(m[2])
		if err != nil {
			t.Errorf("docs/errors.md:%d: HTTP column %q of %s is not a status", i+1, m[2], m[1])
			continue
		}
		if want := statusOf(m[1]); got != want {
			t.Errorf("docs/errors.md:%d: %s is documented as HTTP %d, the server answers %d", i+1, m[1], got, want)
		}
	}
	if n == 0 {
		t.Fatal("docs/errors.md has no error rows with an HTTP status")
	}
}
