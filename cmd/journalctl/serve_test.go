package main

// Black-box tests of `journalctl serve` and of the other commands while a
// server holds the data directory.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// shortDir returns a fresh data directory with a short path: the server
// binds its Unix socket inside it, and socket paths are limited to about
// 100 bytes, which t.TempDir's names (built from the test name) can pass.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "jc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "d")
}

// serverProc is a running `journalctl serve`.
type serverProc struct {
	proc   *testproc.Proc
	dir    string
	addr   string // resolved host:port, read from the lock file
	stderr procStderr
	done   <-chan struct{} // closed once the server exited and was reaped
	client *http.Client
}

// procStderr shows a child's standard error so far.
type procStderr struct{ p *testproc.Proc }

func (s procStderr) String() string { return s.p.Stderr() }

// exitCode is the server's exit status; it waits for the exit.
func (s *serverProc) exitCode() int { return s.proc.ExitCode() }

// lockHolder is the JSON the server writes into <dir>/LOCK.
type lockHolder struct {
	PID     int    `json:"pid"`
	Address string `json:"address"`
	Socket  string `json:"socket"`
}

// startServer runs `journalctl serve --listen 127.0.0.1:0` on dir and
// waits until /healthz answers 200. The port the OS picked is read from
// the lock file, where the server records its resolved address (serve
// itself prints the --listen value, port 0). The server is stopped at
// cleanup if the test did not stop it.
func startServer(t testing.TB, dir string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{"--dir", dir, "serve", "--listen", "127.0.0.1:0"}, extra...)
	p := testproc.Start(t, testproc.Options{Path: binary, Args: args, BaseEnv: cleanEnv()})
	s := &serverProc{proc: p, dir: dir, stderr: procStderr{p}, done: p.Done(), client: &http.Client{Timeout: 20 * time.Second}}
	t.Cleanup(s.client.CloseIdleConnections)

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("journalctl serve exited %d before it answered:\n%s", s.exitCode(), s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("journalctl serve did not answer /healthz within 30s:\n%s", s.stderr.String())
		}
		if s.addr == "" {
			var h lockHolder
			if b, err := os.ReadFile(filepath.Join(dir, "LOCK")); err == nil && json.Unmarshal(b, &h) == nil &&
				h.PID == p.Pid() && h.Address != "" {
				s.addr = h.Address
			}
		}
		if s.addr != "" {
			if resp, err := s.client.Get("http://" + s.addr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *serverProc) pid() int { return s.proc.Pid() }

// post sends body to POST /v1/changes.
func (s *serverProc) post(t *testing.T, contentType, body string) (int, []byte) {
	t.Helper()
	resp, err := s.client.Post("http://"+s.addr+"/v1/changes", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/changes: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// get sends GET path.
func (s *serverProc) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := s.client.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// stop sends SIGTERM and returns the exit code.
func (s *serverProc) stop(t testing.TB) int {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM the server: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the server did not exit within 60s of SIGTERM:\n%s", s.stderr.String())
	}
	s.client.CloseIdleConnections()
	return s.exitCode()
}

func TestWhileAServerRunsRecordWritesThroughItAndReadersReadTheFiles(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir)

	// Status reads the files and names the writer.
	st := status(t, dir)
	if st.Writer == nil || st.Writer.PID != srv.pid() || st.Writer.Address != srv.addr || st.Writer.Socket == "" {
		t.Fatalf("status --json writer %+v, want pid %d at %s with a socket", st.Writer, srv.pid(), srv.addr)
	}
	if r := mustOK(t, dir, "state-journal-status"); !strings.Contains(r.stdout, fmt.Sprintf("pid %d", srv.pid())) {
		t.Errorf("plain status does not name the writer pid %d:\n%s", srv.pid(), r.stdout)
	}

	// Record goes through the server: the lock is held, yet it succeeds.
	r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
		"--aggregate-id", "ws-42", "--json")
	if rcs := receiptLines(t, r); len(rcs) != 1 || rcs[0].Sequence != 1 || !rcs[0].Durable {
		t.Fatalf("record via the server: want a durable receipt for sequence 1, got %s", r)
	}
	r = jcIn(t, dir, heartbeats("ws-stdin", 10), "state-journal-record", "--stdin", "--json")
	if r.code != 0 {
		t.Fatalf("record --stdin via the server: %s", r)
	}
	for i, rc := range receiptLines(t, r) {
		if rc.Sequence != uint64(i+2) {
			t.Fatalf("--stdin receipt %d: sequence %d, want %d", i+1, rc.Sequence, i+2)
		}
	}
	// The server process appended them: its own counters say so.
	code, body := srv.get(t, "/v1/status")
	var sst struct {
		Appended     uint64 `json:"appended"`
		LastSequence uint64 `json:"last_sequence"`
	}
	if err := json.Unmarshal(body, &sst); code != 200 || err != nil || sst.Appended != 11 || sst.LastSequence != 11 {
		t.Fatalf("GET /v1/status: want the server to have appended 11 records, got %d %s", code, body)
	}

	// A record the registry refuses is refused through the server too, with the same
	// message and the same exit code as without a server (2: a bad --surface value).
	r = jc(t, dir, "state-journal-record", "--surface", "runtime_work_sesion", "--change-type", "heartbeat")
	if r.code != 2 || !strings.Contains(r.stderr, `did you mean "runtime_work_session"`) {
		t.Errorf("unknown surface via the server: want exit 2 with a suggestion, got %s", r)
	}
	r = jcIn(t, dir, heartbeat("ok-1")+"\n"+strings.Replace(heartbeat("bad"), "runtime_work_session", "runtime_approvals", 1)+"\n",
		"state-journal-record", "--stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2:") || strings.Count(r.stdout, "sequence=") != 1 {
		t.Errorf("--stdin with a bad line via the server: want exit 1, line 2 reported, one receipt; got %s", r)
	}

	// Readers read the files beside the live writer.
	l := list(t, dir, "-n", "0")
	checkGapless(t, l.Changes, 12)
	for _, c := range l.Changes {
		checkRecord(t, c)
	}
	var v struct {
		Clean         bool `json:"clean"`
		WriterRunning bool `json:"writer_running"`
	}
	decode(t, mustOK(t, dir, "state-journal-validate", "--json"), &v)
	if !v.Clean || !v.WriterRunning {
		t.Errorf("validate beside the server: want clean with writer_running, got %+v", v)
	}
	mustOK(t, dir, "state-surfaces", "--json")

	// A second server is refused and told who holds the directory.
	r = jc(t, dir, "serve", "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", srv.pid())) || !strings.Contains(r.stderr, srv.addr) {
		t.Errorf("second serve: want exit 1 naming pid %d at %s, got %s", srv.pid(), srv.addr, r)
	}

	// Repair needs the writer lock, so it is refused while the server runs.
	if r := jc(t, dir, "state-journal-validate", "--repair"); r.code == 0 {
		t.Errorf("validate --repair beside a live server: want a refusal, got %s", r)
	}

	if c := srv.stop(t); c != 0 {
		t.Fatalf("server exit %d after SIGTERM, want 0\n%s", c, srv.stderr.String())
	}
	if st := status(t, dir); st.Writer != nil {
		t.Errorf("after the server stopped, status still names writer %+v", st.Writer)
	}
	if _, err := os.Stat(filepath.Join(dir, "journal.sock")); !os.IsNotExist(err) {
		t.Errorf("the server left its socket behind: %v", err)
	}
	// Without a server, record opens the journal itself again.
	r = mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
	if rcs := receiptLines(t, r); len(rcs) != 1 || rcs[0].Sequence != 13 {
		t.Fatalf("record after the server stopped: want sequence 13, got %s", r)
	}
}

func TestSIGTERMDrainsTheServerAndEveryAcknowledgedRecordSurvives(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir)

	type ack struct {
		seq     uint64
		eventID string
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	client := &http.Client{Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				body := heartbeat(fmt.Sprintf("w%d-%d", w, i))
				resp, err := client.Post("http://"+srv.addr+"/v1/changes", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server is gone: nothing more is acknowledged
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					return // draining (503) or stopped
				}
				var rb struct {
					Receipts []receipt `json:"receipts"`
				}
				if err := json.Unmarshal(b, &rb); err != nil || len(rb.Receipts) != 1 {
					t.Errorf("201 answer without one receipt: %s", b)
					return
				}
				mu.Lock()
				acked = append(acked, ack{rb.Receipts[0].Sequence, rb.Receipts[0].EventID})
				if len(acked) >= 40 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-srv.done:
		t.Fatalf("the server exited while writers were running:\n%s", srv.stderr.String())
	}
	code := srv.stop(t)
	wg.Wait()
	if code != 0 {
		t.Fatalf("server exit %d after SIGTERM, want 0\n%s", code, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "drained") {
		t.Errorf("the server did not say it drained:\n%s", srv.stderr.String())
	}

	l := list(t, dir, "-n", "0")
	have := map[string]uint64{}
	for _, c := range l.Changes {
		have[c["event_id"].(string)] = seqOf(t, c)
	}
	checkGapless(t, l.Changes, len(l.Changes))
	for _, a := range acked {
		if seq, ok := have[a.eventID]; !ok || seq != a.seq {
			t.Errorf("acknowledged record %s (sequence %d) is missing after SIGTERM (found at %d, present %t)", a.eventID, a.seq, seq, ok)
		}
	}
	if len(acked) < 40 {
		t.Fatalf("only %d records were acknowledged", len(acked))
	}
	mustOK(t, dir, "state-journal-validate")
}

func TestServeRejectsBadFlagsAsUsageErrors(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	tests := []struct {
		name     string
		args     []string
		exit     int
		contains string
	}{
		{"a bad sync policy", []string{"serve", "--listen", "127.0.0.1:0", "--sync", "sometimes"}, 2, "--sync"},
		{"a non-loopback address without a token", []string{"serve", "--listen", "0.0.0.0:0"}, 2, "token"},
		{"a bad retention size", []string{"serve", "--listen", "127.0.0.1:0", "--max-bytes", "lots"}, 2, "--max-bytes"},
		{"a segment size below 64KiB", []string{"serve", "--listen", "127.0.0.1:0", "--segment-size", "4KiB"}, 2, "--segment-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jc(t, dir, tt.args...)
			if r.code != tt.exit || !strings.Contains(r.stderr, tt.contains) {
				t.Errorf("want exit %d mentioning %q, got %s", tt.exit, tt.contains, r)
			}
		})
	}
}

// With --listen 127.0.0.1:0 the OS picks the port; the startup line is
// how an operator learns it, so it must show the resolved address, as the
// lock file and state-journal-status already do.
func TestServeAnnouncesTheAddressItActuallyListensOn(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir)
	banner := srv.stderr.String()
	if c := srv.stop(t); c != 0 {
		t.Fatalf("server exit %d after SIGTERM, want 0\n%s", c, srv.stderr.String())
	}
	if !strings.Contains(banner, "listening on "+srv.addr) {
		t.Errorf("BUG cmd/journalctl/serve.go (RunE, the \"journalctl serve: data %%s, listening on %%s\" line) prints the --listen "+
			"flag value instead of srv.Addr(): with --listen 127.0.0.1:0 want \"listening on %s\", got:\n%s", srv.addr, banner)
	}
}
