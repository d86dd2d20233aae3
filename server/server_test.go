package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

func TestNewRefusesToListenBeyondLoopbackWithoutAToken(t *testing.T) {
	j, err := engine.Open(t.TempDir(), engine.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		srv, err := New(j, Config{Listen: listen, Socket: Disabled, Logger: quietLogger()})
		if !errors.Is(err, ErrInsecure) {
			if srv != nil {
				srv.Close()
			}
			t.Fatalf("listen %s: err = %v, want ErrInsecure", listen, err)
		}
		if !strings.Contains(err.Error(), "STATE_JOURNAL_TOKEN") || !strings.Contains(err.Error(), "--token") {
			t.Errorf("the error does not say how to fix it: %v", err)
		}
	}
}

func TestTokenRules(t *testing.T) {
	const token = "s3cret-token-for-tests"
	body := func(t *testing.T) []byte { return mustJSON(t, heartbeat("ws-auth")) }

	t.Run("on loopback with a token", func(t *testing.T) {
		e := start(t, Config{Token: token})
		cases := []struct {
			name   string
			client *http.Client
			method string
			path   string
			auth   string
			status int
		}{
			{"a write without a token is unauthorized", e.tcp, "POST", "/v1/changes", "", 401},
			{"a write with a wrong token is unauthorized", e.tcp, "POST", "/v1/changes", "Bearer not-the-token", 401},
			{"a write with another scheme is unauthorized", e.tcp, "POST", "/v1/changes", "Basic " + token, 401},
			{"a write with the token is accepted", e.tcp, "POST", "/v1/changes", "Bearer " + token, 201},
			{"validate without a token is unauthorized", e.tcp, "POST", "/v1/validate", "", 401},
			{"validate with the token runs", e.tcp, "POST", "/v1/validate", "bearer " + token, 200},
			{"a read without a token is unauthorized on loopback too", e.tcp, "GET", "/v1/status", "", 401},
			{"a read with the token is answered", e.tcp, "GET", "/v1/status", "Bearer " + token, 200},
			{"a write over the Unix socket needs no token", e.sock, "POST", "/v1/changes", "", 201},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.lastSequence()
				var b []byte
				if tc.path == "/v1/changes" {
					b = body(t)
				}
				h := map[string]string{}
				if tc.auth != "" {
					h["Authorization"] = tc.auth
				}
				a := do(t, tc.client, tc.method, e.base+tc.path, "application/json", b, h)
				if a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
				}
				if tc.status == 401 {
					if ae := a.errorBody(t); ae.Code != "unauthorized" || strings.Contains(string(a.raw), token) {
						t.Fatalf("answer: %s", a.raw)
					}
					if a.header.Get("WWW-Authenticate") == "" {
						t.Error("no WWW-Authenticate header")
					}
					if got := e.lastSequence(); got != before {
						t.Errorf("an unauthorized write moved last_sequence from %d to %d", before, got)
					}
				}
			})
		}
	})

	t.Run("beyond loopback every v1 endpoint needs the token", func(t *testing.T) {
		e := start(t, Config{Token: token, Listen: "0.0.0.0:0"})
		_, port, _ := net.SplitHostPort(e.srv.Addr())
		base := "http://127.0.0.1:" + port
		cases := []struct {
			name   string
			method string
			path   string
			auth   bool
			status int
		}{
			{"status without a token is unauthorized", "GET", "/v1/status", false, 401},
			{"changes without a token is unauthorized", "GET", "/v1/changes", false, 401},
			{"surfaces without a token is unauthorized", "GET", "/v1/surfaces", false, 401},
			{"status with the token is answered", "GET", "/v1/status", true, 200},
			{"healthz stays open", "GET", "/healthz", false, 200},
			{"readyz stays open", "GET", "/readyz", false, 200},
			{"metrics need the token", "GET", "/metrics", false, 401},
			{"metrics with the token are answered", "GET", "/metrics", true, 200},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := map[string]string{}
				if tc.auth {
					h["Authorization"] = "Bearer " + token
				}
				if a := do(t, e.tcp, tc.method, base+tc.path, "", nil, h); a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
				}
			})
		}
	})
}

func TestALoopbackServerRefusesForeignHostHeaders(t *testing.T) {
	e := start(t, Config{})
	cases := []struct {
		host   string
		status int
	}{
		{"rebind.attacker.example:7766", 403},
		{"localhost:7766", 200},
		{"127.0.0.1", 200},
		{"[::1]:7766", 200},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("Host %s answers %d", tc.host, tc.status), func(t *testing.T) {
			a := do(t, e.tcp, "GET", e.base+"/v1/status", "", nil, map[string]string{"Host": tc.host})
			if a.status != tc.status {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			if tc.status == 403 && a.errorBody(t).Code != "forbidden_host" {
				t.Fatalf("answer: %s", a.raw)
			}
		})
	}
}

func TestTheSocketIsPrivateAndNamedInTheLockFile(t *testing.T) {
	e := start(t, Config{})
	p := e.srv.SocketPath()
	if p != filepath.Join(e.j.Dir(), DefaultSocketName) {
		t.Fatalf("socket path %s", p)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	// An answered request proves Serve has written the lock file.
	if a := do(t, e.sock, "GET", "http://journal/healthz", "", nil, nil); a.status != 200 {
		t.Fatalf("healthz over the socket: %d %s", a.status, a.raw)
	}
	held, h := engine.LockHolder(e.j.Dir())
	if !held || h.Address != e.srv.Addr() || h.Socket != p {
		t.Fatalf("lock holder = %v %+v, want address %s socket %s", held, h, e.srv.Addr(), p)
	}
	ents, _ := os.ReadDir(e.j.Dir())
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), ".s") {
			t.Errorf("the private bind directory %s was left behind", d.Name())
		}
	}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the socket file survives the server: %v", err)
	}
}

func TestAnExistingSocketPath(t *testing.T) {
	shared := t.TempDir()
	open := func(t *testing.T) *engine.Journal {
		j, err := engine.Open(t.TempDir(), engine.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}
	cfg := func(sock string) Config {
		return Config{Listen: Disabled, Socket: sock, Logger: quietLogger(), Registry: prometheus.NewRegistry()}
	}

	t.Run("a stale socket nothing answers on is replaced", func(t *testing.T) {
		sock := filepath.Join(shared, "stale.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close() // leaves the file, as a crashed server does
		srv, err := New(open(t), cfg(sock))
		if err != nil {
			t.Fatalf("new over a stale socket: %v", err)
		}
		srv.Close()
	})

	t.Run("a socket a live server answers on is left alone", func(t *testing.T) {
		sock := filepath.Join(shared, "live.sock")
		first, err := New(open(t), cfg(sock))
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		second, err := New(open(t), cfg(sock))
		if !errors.Is(err, ErrSocketInUse) {
			if second != nil {
				second.Close()
			}
			t.Fatalf("err = %v, want ErrSocketInUse", err)
		}
		if fi, err := os.Lstat(sock); err != nil || !os.SameFile(fi, first.socketInfo) {
			t.Fatalf("the live socket was replaced: %v", err)
		}
	})

	t.Run("a file that is not a socket is refused", func(t *testing.T) {
		p := filepath.Join(shared, "plain.sock")
		if err := os.WriteFile(p, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv, err := New(open(t), cfg(p))
		if err == nil {
			srv.Close()
			t.Fatal("New replaced a regular file")
		}
		if b, _ := os.ReadFile(p); string(b) != "keep me" {
			t.Fatal("the regular file was changed")
		}
	})
}

func TestServeDrainsARequestInFlight(t *testing.T) {
	e := start(t, Config{})
	body := mustJSON(t, heartbeat("ws-drain"))
	conn, err := net.Dial("tcp", e.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Expect: 100-continue makes the server say when the handler starts
	// reading the body: from then on the request is in flight.
	fmt.Fprintf(conn, "POST /v1/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line after 100 Continue
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	for !e.srv.draining.Load() {
		runtime.Gosched()
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Host = "127.0.0.1"
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"draining"`) {
		t.Errorf("healthz while draining: %d %s", rec.Code, rec.Body)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight request: status %d", resp.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if st := e.j.Status(); st.LastSequence != 1 {
		t.Fatalf("last sequence %d after the drain, want 1", st.LastSequence)
	}
}

func TestServeReturnsWhenTheContextIsCancelledAndRefusesNewConnections(t *testing.T) {
	e := start(t, Config{})
	addr := e.srv.Addr()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the TCP listener still accepts after Serve returned")
	}
	if err := e.srv.Serve(context.Background()); !errors.Is(err, ErrServeCalled) {
		t.Fatalf("second Serve: %v", err)
	}
}

func TestHealthzReportsTheLastSequence(t *testing.T) {
	e := start(t, Config{})
	e.post("/v1/changes", "application/json", mustJSON(t, []any{heartbeat("a"), heartbeat("b")}))
	a := e.get("/healthz")
	var h HealthBody
	a.decode(t, &h)
	if a.status != 200 || h.Status != "ok" || h.LastSequence != 2 {
		t.Fatalf("healthz: %d %s", a.status, a.raw)
	}
}

func TestMetricsExposeTheEngineHistogramsAndRuntimeCollectors(t *testing.T) {
	e := start(t, Config{})
	if a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-m"))); a.status != 201 {
		t.Fatalf("record: %d %s", a.status, a.raw)
	}
	a := e.get("/metrics")
	if a.status != 200 {
		t.Fatalf("metrics: %d", a.status)
	}
	for _, name := range []string{
		"state_journal_append_duration_seconds_bucket", "state_journal_fsync_duration_seconds_bucket",
		"state_journal_batch_records_bucket", "state_journal_http_requests_total", "go_goroutines", "process_",
	} {
		if !strings.Contains(string(a.raw), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestTheServerUnregistersItsMetricsWhenItStops(t *testing.T) {
	e := start(t, Config{})
	e.get("/healthz")
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "state_journal_http_") || strings.HasPrefix(n, "go_") {
			t.Errorf("%s is still registered", n)
		}
	}
}

func TestUnknownPathsAndMethodsAreJSONErrors(t *testing.T) {
	e := start(t, Config{})
	cases := []struct {
		name, method, path string
		status             int
		code, allow        string
	}{
		{"an unknown path is 404", "GET", "/v1/nothing", 404, "not_found", ""},
		{"DELETE on changes is 405 with the allowed methods", "DELETE", "/v1/changes", 405, "method_not_allowed", "GET, POST"},
		{"GET on validate is 405", "GET", "/v1/validate", 405, "method_not_allowed", "POST"},
		{"POST on healthz is 405", "POST", "/healthz", 405, "method_not_allowed", "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, e.tcp, tc.method, e.base+tc.path, "", nil, nil)
			if a.status != tc.status || a.errorBody(t).Code != tc.code || a.header.Get("Allow") != tc.allow {
				t.Fatalf("status %d allow %q: %s", a.status, a.header.Get("Allow"), a.raw)
			}
		})
	}
}

func TestSurfacesCarryTheirLiveFigures(t *testing.T) {
	e := start(t, Config{})
	e.post("/v1/changes", "application/json", mustJSON(t, []any{heartbeat("a"), heartbeat("b")}))
	a := e.get("/v1/surfaces")
	var raw struct {
		RegistryDigest string           `json:"registry_digest"`
		Surfaces       []map[string]any `json:"surfaces"`
	}
	a.decode(t, &raw)
	if a.status != 200 || raw.RegistryDigest == "" || len(raw.Surfaces) != e.j.Registry().Len() {
		t.Fatalf("surfaces: %d, %d surfaces: %s", a.status, len(raw.Surfaces), a.raw)
	}
	found := false
	for _, s := range raw.Surfaces {
		if s["id"] != "runtime_work_session" {
			continue
		}
		found = true
		live, _ := s["live"].(map[string]any)
		if s["owner"] != "runtime.work_session" || s["registered"] != true || live["records"] != float64(2) ||
			live["last_sequence"] != float64(2) || live["last_change_type"] != "heartbeat" {
			t.Fatalf("runtime_work_session = %v", s)
		}
	}
	if !found {
		t.Fatal("runtime_work_session is missing")
	}
}

func TestValidateReportsACleanJournal(t *testing.T) {
	e := start(t, Config{})
	e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("a")))
	a := e.post("/v1/validate", "", nil)
	var rep engine.ValidationReport
	a.decode(t, &rep)
	if a.status != 200 || !rep.Clean || rep.Records != 1 || !rep.WriterRunning {
		t.Fatalf("validate: %d %s", a.status, a.raw)
	}
}

func TestJournalStatesMapToTheirAnswers(t *testing.T) {
	t.Run("a closed journal answers writes with 503 closed", func(t *testing.T) {
		e := start(t, Config{})
		// An answer proves Serve is past its start-up use of the journal:
		// the engine's SetHolderAddress must not run beside Close.
		e.get("/healthz")
		if err := e.j.Close(); err != nil {
			t.Fatal(err)
		}
		a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-late")))
		if a.status != http.StatusServiceUnavailable || a.errorBody(t).Code != "closed" {
			t.Fatalf("answer %d: %s", a.status, a.raw)
		}
	})
	t.Run("a read-only journal is served and answers writes with 409 read_only", func(t *testing.T) {
		dir := t.TempDir()
		w, err := engine.Open(dir, engine.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Record(context.Background(), hb("ws-ro")); err != nil {
			t.Fatal(err)
		}
		w.Close()
		j, err := engine.Open(dir, engine.ReadOnly(), engine.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		srv, err := New(j, Config{Listen: "127.0.0.1:0", Socket: Disabled, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		stop := serve(t, srv)
		defer stop()
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		a := do(t, c, "POST", "http://"+srv.Addr()+"/v1/changes", "application/json", mustJSON(t, heartbeat("ws-x")), nil)
		if a.status != http.StatusConflict || a.errorBody(t).Code != "read_only" {
			t.Fatalf("write: %d %s", a.status, a.raw)
		}
		if a := do(t, c, "GET", "http://"+srv.Addr()+"/v1/changes", "", nil, nil); a.status != 200 || !strings.Contains(string(a.raw), "ws-ro") {
			t.Fatalf("read: %d %s", a.status, a.raw)
		}
	})
}

func TestErrorsMapToStableCodesAndTheClientMatchesThem(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"a failed journal is 503 journal_failed", fmt.Errorf("%w: fsync: EIO", engine.ErrFailed), 503, "journal_failed"},
		{"a closed journal is 503 closed", engine.ErrClosed, 503, "closed"},
		{"a read-only journal is 409 read_only", engine.ErrReadOnly, 409, "read_only"},
		{"a compacted cursor is 410 compacted", engine.ErrCompacted, 410, "compacted"},
		{"a full async queue is 503 queue_full", engine.ErrQueueFull, 503, "queue_full"},
		{"a canceled request is 503 canceled", context.Canceled, 503, "canceled"},
		{"an unexpected error is 500 internal without its text", errors.New("open /secret/path: EACCES"), 500, "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ae := apiErrorOf(tc.err)
			if ae.Code != tc.code || statusOf(ae.Code) != tc.status {
				t.Fatalf("code %q status %d", ae.Code, statusOf(ae.Code))
			}
			if tc.code == "internal" && strings.Contains(ae.Message, "secret") {
				t.Fatalf("an internal error leaks its text: %q", ae.Message)
			}
			err := decodeError(tc.status, mustJSON(t, ErrorBody{Error: ae}))
			var se *Error
			if !errors.As(err, &se) || se.Code != tc.code || se.StatusCode != tc.status {
				t.Fatalf("client error %#v", err)
			}
			if want := sentinelOf(tc.code); want != nil && !errors.Is(err, want) {
				t.Fatalf("client error %v does not match %v", err, want)
			}
		})
	}
}
