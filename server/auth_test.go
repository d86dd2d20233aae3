package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// routesOf lists every method and path the server routes.
func routesOf(t *testing.T, e *env) [][2]string {
	t.Helper()
	rt, ok := e.srv.Handler().(*router)
	if !ok {
		t.Fatalf("handler is %T, not *router", e.srv.Handler())
	}
	var out [][2]string
	for path, methods := range rt.routes {
		for m := range methods {
			out = append(out, [2]string{m, path})
		}
	}
	if len(out) < 11 {
		t.Fatalf("only %d routes: %v", len(out), out)
	}
	return out
}

// probeAnswer sends one request without a body worth recording and
// returns the status; POSTs carry an empty JSON array so that an
// authorized call is refused for its body (400), never written.
func probeAnswer(t *testing.T, e *env, base, method, path, auth string) answer {
	t.Helper()
	h := map[string]string{}
	if auth != "" {
		h["Authorization"] = auth
	}
	var body []byte
	if method == "POST" {
		body = []byte("[]")
	}
	return do(t, e.tcp, method, base+path, "application/json", body, h)
}

func TestATokenGuardsEveryEndpointButTheProbes(t *testing.T) {
	const token = "0123456789abcdef-guard"
	for _, tc := range []struct {
		name        string
		listen      string
		metricsOpen bool
	}{
		{"loopback", "127.0.0.1:0", false},
		{"beyond loopback", "0.0.0.0:0", false},
		{"loopback with metrics open", "127.0.0.1:0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, Config{Token: token, Listen: tc.listen, MetricsOpen: tc.metricsOpen})
			_, port, _ := net.SplitHostPort(e.srv.Addr())
			base := "http://127.0.0.1:" + port
			before := e.lastSequence()
			for _, r := range routesOf(t, e) {
				method, path := r[0], r[1]
				if path == "/v1/invalidations" {
					continue // a stream; checked below with a header-only read
				}
				open := path == "/healthz" || path == "/readyz" || (path == "/metrics" && tc.metricsOpen)
				a := probeAnswer(t, e, base, method, path, "")
				if open && a.status == 401 {
					t.Errorf("%s %s without a token: 401, want it open", method, path)
				}
				if !open {
					if a.status != 401 {
						t.Errorf("%s %s without a token: %d, want 401: %s", method, path, a.status, a.raw)
					} else if !strings.Contains(string(a.raw), "--token-file") {
						t.Errorf("%s %s: the 401 does not say where the token comes from: %s", method, path, a.raw)
					}
				}
				if a := probeAnswer(t, e, base, method, path, "Bearer "+token); a.status == 401 {
					t.Errorf("%s %s with the token: 401: %s", method, path, a.raw)
				}
			}
			// The SSE stream: the status line is enough.
			resp, err := e.tcp.Get(base + "/v1/invalidations")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("GET /v1/invalidations without a token: %d, want 401", resp.StatusCode)
			}
			if got := e.lastSequence(); got != before {
				t.Errorf("probing moved last_sequence from %d to %d", before, got)
			}
		})
	}
}

func TestReadyzAnswersOnceTheJournalIsOpenAndNotWhileDraining(t *testing.T) {
	e := start(t, Config{})
	a := e.get("/readyz")
	var rb ReadyBody
	a.decode(t, &rb)
	if a.status != 200 || rb.Status != "ready" {
		t.Fatalf("readyz: %d %s", a.status, a.raw)
	}
	e.srv.draining.Store(true)
	defer e.srv.draining.Store(false)
	if a := e.get("/readyz"); a.status != 503 || !strings.Contains(string(a.raw), "draining") {
		t.Fatalf("readyz while draining: %d %s", a.status, a.raw)
	}
}

func TestReadTokenFileRefusesUnsafeFilesAndBadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "0123456789abcdef0123\n", 0o600)
	if tok, err := ReadTokenFile(good); err != nil || tok != "0123456789abcdef0123" {
		t.Fatalf("good file: %q, %v", tok, err)
	}
	if tok, err := ReadTokenFile(write("group", "0123456789abcdef0123", 0o640)); err != nil || tok == "" {
		t.Fatalf("a group-readable file is allowed: %q, %v", tok, err)
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"world", "0123456789abcdef0123\n", 0o644, "chmod 600"},
		{"groupw", "0123456789abcdef0123\n", 0o620, "chmod 600"},
		{"short", "short\n", 0o600, "at least 16"},
		{"empty", "", 0o600, "at least 16"},
		{"twolines", "0123456789abcdef0123\nmore\n", 0o600, "more than one line"},
		{"space", "0123456789 abcdef0123\n", 0o600, "printable ASCII"},
	} {
		_, err := ReadTokenFile(write(tc.name, tc.content, tc.mode))
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrBadToken saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrBadToken) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ReadTokenFile(dir); !errors.Is(err, ErrBadToken) {
		t.Errorf("a directory: %v", err)
	}
}
