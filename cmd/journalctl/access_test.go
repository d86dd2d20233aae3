package main

// Black-box tests of the server's access rules as the CLI sets them up:
// the token comes from a file, never from the command line, and once set
// it guards every endpoint but the probes.

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenFile writes tok to a private file and returns its path.
func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeRefusesATokenOnTheCommandLineOrInTheEnvironment(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	r := jc(t, dir, "serve", "--listen", "127.0.0.1:0", "--token", "0123456789abcdef-cli")
	if r.code != 2 || !strings.Contains(r.stderr, "--token-file") || !strings.Contains(r.stderr, "ps") {
		t.Errorf("--token: want exit 2 pointing at --token-file, got %s", r)
	}
	r = invocation{dir: dir, env: []string{"STATE_JOURNAL_TOKEN=0123456789abcdef-env"}, args: []string{"serve", "--listen", "127.0.0.1:0"}}.run(t)
	if r.code != 2 || !strings.Contains(r.stderr, "STATE_JOURNAL_TOKEN_FILE") {
		t.Errorf("STATE_JOURNAL_TOKEN: want exit 2 pointing at STATE_JOURNAL_TOKEN_FILE, got %s", r)
	}
	open := filepath.Join(t.TempDir(), "token")
	os.WriteFile(open, []byte("0123456789abcdef-open\n"), 0o644)
	r = jc(t, dir, "serve", "--listen", "127.0.0.1:0", "--token-file", open)
	if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("a world-readable token file: want exit 2 saying chmod 600, got %s", r)
	}
	r = jc(t, dir, "serve", "--listen", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("beyond loopback without a token: want exit 2 naming --token-file, got %s", r)
	}
}

func TestATokenFileGuardsEveryEndpointAndTheCLISendsIt(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	const tok = "0123456789abcdef-from-a-file"
	tf := tokenFile(t, tok)
	// Without the socket the CLI must reach the server over TCP, where
	// the token applies.
	srv := startServer(t, dir, "--token-file", tf, "--socket", "-")
	if !strings.Contains(srv.stderr.String(), "token required") {
		t.Errorf("the banner does not say a token is required:\n%s", srv.stderr.String())
	}
	for _, path := range []string{"/v1/status", "/v1/changes", "/v1/surfaces", "/v1/stale", "/metrics"} {
		if code, body := srv.get(t, path); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401: %s", path, code, body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := srv.get(t, path); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200: %s", path, code, body)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+srv.addr+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /v1/status with the token: %d", resp.StatusCode)
	}

	// The CLI without the token file is refused by the server; with it,
	// the record goes through.
	r := jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
		"--aggregate-type", "work_session", "--aggregate-id", "ws-1", "--source", "test", "--json")
	if r.code != 1 || !strings.Contains(r.stdout, "unauthorized") {
		t.Errorf("record without the token file: want exit 1 code unauthorized, got %s", r)
	}
	r = invocation{dir: dir, env: []string{"STATE_JOURNAL_TOKEN_FILE=" + tf}, args: []string{"state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
		"--aggregate-type", "work_session", "--aggregate-id", "ws-1", "--source", "test", "--json"}}.run(t)
	if r.code != 0 {
		t.Errorf("record with STATE_JOURNAL_TOKEN_FILE: %s", r)
	}
	if c := srv.stop(t); c != 0 {
		t.Errorf("server exit %d", c)
	}
}

func TestMetricsOpenLeavesOnlyMetricsOpen(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir, "--token-file", tokenFile(t, "0123456789abcdef-metrics"), "--metrics-open")
	if code, body := srv.get(t, "/metrics"); code != 200 {
		t.Errorf("GET /metrics with --metrics-open: %d: %.200s", code, body)
	}
	if code, _ := srv.get(t, "/v1/status"); code != 401 {
		t.Errorf("GET /v1/status with --metrics-open and no token: %d, want 401", code)
	}
}
