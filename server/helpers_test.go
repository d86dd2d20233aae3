package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/agentruntime/statejournal/engine"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real journal on a temp directory served by a real Server on
// a loopback port and a Unix socket.
type env struct {
	t    *testing.T
	j    *engine.Journal
	srv  *Server
	reg  *prometheus.Registry
	tcp  *http.Client      // over TCP
	sock *http.Client      // over the Unix socket
	base string            // http://127.0.0.1:port
	auth map[string]string // the Authorization header of cfg.Token, or nil
	stop func() error      // cancels Serve and waits for it
}

// start opens a journal in a new temp directory and serves it with cfg
// (Listen defaults to 127.0.0.1:0 here). Cleanup stops the server and
// closes the journal.
func start(t *testing.T, cfg Config) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	j, err := engine.Open(t.TempDir(), engine.WithRegisterer(reg), engine.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	cfg.Registry = reg
	srv, err := New(j, cfg)
	if err != nil {
		j.Close()
		t.Fatalf("new server: %v", err)
	}
	e := &env{t: t, j: j, srv: srv, reg: reg}
	if cfg.Token != "" {
		e.auth = map[string]string{"Authorization": "Bearer " + cfg.Token}
	}
	e.stop = serve(t, srv)
	tcpTr := &http.Transport{}
	e.tcp = &http.Client{Transport: tcpTr}
	e.base = "http://" + srv.Addr()
	if p := srv.SocketPath(); p != "" {
		sockTr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p)
		}}
		e.sock = &http.Client{Transport: sockTr}
	}
	t.Cleanup(func() {
		tcpTr.CloseIdleConnections()
		if e.sock != nil {
			e.sock.CloseIdleConnections()
		}
		if err := e.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := j.Close(); err != nil {
			t.Errorf("close journal: %v", err)
		}
	})
	return e
}

// serve runs srv.Serve in a goroutine and returns a function that cancels
// it and returns Serve's result. The function is safe to call twice.
func serve(t *testing.T, srv *Server) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var result error
	finished := false
	return func() error {
		cancel()
		if !finished {
			result = <-done
			finished = true
		}
		return result
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// answer is a decoded HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
}

func (a answer) errorBody(t *testing.T) APIError {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(a.raw, &eb); err != nil {
		t.Fatalf("error answer is not JSON: %v: %s", err, a.raw)
	}
	if eb.Error.Code == "" {
		t.Fatalf("error answer has no code: %s", a.raw)
	}
	return eb.Error
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.raw, v); err != nil {
		t.Fatalf("answer is not the expected JSON: %v: %s", err, a.raw)
	}
}

// do sends one request over c and reads the whole answer.
func do(t *testing.T, c *http.Client, method, url, contentType string, body []byte, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func (e *env) get(path string) answer {
	e.t.Helper()
	return do(e.t, e.tcp, http.MethodGet, e.base+path, "", nil, e.auth)
}

func (e *env) post(path, contentType string, body []byte) answer {
	e.t.Helper()
	return do(e.t, e.tcp, http.MethodPost, e.base+path, contentType, body, e.auth)
}

// lastSequence reads last_sequence from GET /v1/status.
func (e *env) lastSequence() uint64 {
	e.t.Helper()
	a := e.get("/v1/status")
	if a.status != http.StatusOK {
		e.t.Fatalf("GET /v1/status: %d %s", a.status, a.raw)
	}
	var st engine.Status
	a.decode(e.t, &st)
	return st.LastSequence
}

// changes reads GET /v1/changes with the given query string.
func (e *env) changes(query string) ChangesBody {
	e.t.Helper()
	a := e.get("/v1/changes?" + query)
	if a.status != http.StatusOK {
		e.t.Fatalf("GET /v1/changes?%s: %d %s", query, a.status, a.raw)
	}
	var b ChangesBody
	a.decode(e.t, &b)
	return b
}

// heartbeat is a valid change as a JSON object.
func heartbeat(aggregateID string) map[string]any {
	return map[string]any{
		"source": "runtime.work_session", "surface": "runtime_work_session", "change_type": "heartbeat",
		"aggregate_type": "work_session", "aggregate_id": aggregateID,
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ndjson joins objects one per line.
func ndjson(t *testing.T, objs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		b.Write(mustJSON(t, o))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}
