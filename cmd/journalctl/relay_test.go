package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS starts an embedded JetStream server on a loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// relayShipped reads relay.shipped_sequence from state-journal-status --json.
func relayShipped(t *testing.T, dir string) uint64 {
	r := jc(t, dir, "state-journal-status", "--json")
	var st struct {
		Relay *struct {
			Shipped    uint64 `json:"shipped_sequence"`
			LagRecords uint64 `json:"lag_records"`
		} `json:"relay"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status: %s", r)
	}
	if st.Relay == nil {
		return 0
	}
	return st.Relay.Shipped
}

// readLines reads n lines of a child's output; a child that stops
// printing fails the test (after a minute) instead of hanging it.
func readLines(t *testing.T, r io.Reader, n int, child *exec.Cmd) []string {
	t.Helper()
	got := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		var lines []string
		for len(lines) < n && sc.Scan() {
			lines = append(lines, sc.Text())
		}
		got <- lines
	}()
	select {
	case lines := <-got:
		if len(lines) != n {
			t.Fatalf("%s printed %d lines and stopped, want %d: %q", child.Path, len(lines), n, lines)
		}
		return lines
	case <-time.After(time.Minute):
		child.Process.Kill()
		t.Fatalf("%s printed fewer than %d lines in a minute", strings.Join(child.Args, " "), n)
		return nil
	}
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// journalctl relay ships the journal, says what it did to the stream,
// stops on SIGTERM with exit 0 after persisting its cursor, and
// state-journal -f --nats prints the relayed records with their host.
func TestRelayCommandShipsStopsOnSIGTERMAndTheNATSFollowerPrintsTheHost(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	seed(t, dir, "ws", 20)
	relay := exec.Command(binary, "--dir", dir, "relay", "--nats", url, "--host", "cli-a", "--stream-max-age", "7d")
	relay.Env = cleanEnv()
	stderr := &testproc.Buffer{}
	relay.Stderr = stderr
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer relay.Process.Kill()
	until(t, "the relay to ship 20 records", func() bool { return relayShipped(t, dir) == 20 })

	// From stream sequence 15 on (--after), so the records written while
	// it starts do not move where it begins.
	follow := exec.Command(binary, "--dir", dir, "state-journal", "-f", "--nats", url, "-o", "jsonl", "--after", "15")
	follow.Env = cleanEnv()
	out, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	seed(t, dir, "late", 3) // relayed while the follower waits
	var seqs []uint64
	for _, text := range readLines(t, out, 8, follow) {
		var l struct {
			Host     string `json:"host"`
			Sequence uint64 `json:"sequence"`
			Surface  string `json:"surface"`
		}
		if err := json.Unmarshal([]byte(text), &l); err != nil || l.Host != "cli-a" || l.Surface != "runtime_work_session" {
			t.Fatalf("follower line %q: want a record with host cli-a (%v)", text, err)
		}
		seqs = append(seqs, l.Sequence)
	}
	follow.Process.Signal(syscall.SIGTERM)
	if err := follow.Wait(); err != nil {
		t.Fatalf("the follower's exit on SIGTERM: %v", err)
	}
	if len(seqs) != 8 || seqs[0] != 16 || seqs[7] != 23 {
		t.Fatalf("the follower printed sequences %v, want 16..23", seqs)
	}
	until(t, "the relay to ship 23 records", func() bool { return relayShipped(t, dir) == 23 })
	// The table: a HOST column first; -n 2, the stream's last two.
	table := exec.Command(binary, "--dir", dir, "state-journal", "-f", "--nats", url, "-n", "2", "--host", "cli-a")
	table.Env = cleanEnv("COLUMNS=200")
	tout, _ := table.StdoutPipe()
	if err := table.Start(); err != nil {
		t.Fatal(err)
	}
	defer table.Process.Kill()
	lines := readLines(t, tout, 3, table)
	table.Process.Signal(syscall.SIGTERM)
	table.Wait()
	if !strings.HasPrefix(lines[0], "HOST") || !strings.HasPrefix(lines[1], "cli-a") || !strings.HasPrefix(strings.Fields(lines[2])[1], "23") {
		t.Fatalf("the table follower printed %q, want a header and the records 22 and 23 of host cli-a", lines)
	}
	relay.Process.Signal(syscall.SIGTERM)
	if err := relay.Wait(); err != nil {
		t.Fatalf("relay exit on SIGTERM: %v\n%s", err, stderr.String())
	}
	if got := relayShipped(t, dir); got != 23 {
		t.Fatalf("cursor after SIGTERM: %d, want 23", got)
	}
	if r := mustOK(t, dir, "state-journal-status"); !strings.Contains(r.stdout, "host cli-a to stream STATE_JOURNAL: shipped through 23, lag 0 records") {
		t.Fatalf("state-journal-status lacks the relay row:\n%s", r.stdout)
	}
	for _, want := range []string{"created stream STATE_JOURNAL", "max age 168h0m0s", "stopped; shipped through sequence 23"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("relay stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// serve --relay-nats runs the relay inside the server and GET /v1/status
// reports it.
func TestServeRelaysWithRelayNATSAndReportsItInStatus(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	s := startServer(t, dir, "--relay-nats", url, "--relay-host", "srv")
	if code, body := s.post(t, "application/x-ndjson", heartbeats("ws", 30)); code != 201 {
		t.Fatalf("post: %d %s", code, body)
	}
	var st struct {
		LastSequence uint64 `json:"last_sequence"`
		Relay        *struct {
			Running   bool   `json:"running"`
			Connected bool   `json:"connected"`
			Host      string `json:"host"`
			Shipped   uint64 `json:"shipped_sequence"`
			Published uint64 `json:"published"`
		} `json:"relay"`
	}
	until(t, "the server's relay to ship 30 records", func() bool {
		code, body := s.get(t, "/v1/status")
		return code == 200 && json.Unmarshal(body, &st) == nil && st.Relay != nil && st.Relay.Shipped == 30
	})
	if !st.Relay.Running || !st.Relay.Connected || st.Relay.Host != "srv" || st.Relay.Published != 30 || st.LastSequence != 30 {
		t.Fatalf("status %+v relay %+v", st, *st.Relay)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if got := relayShipped(t, dir); got != 30 {
		t.Fatalf("cursor after the server stopped: %d", got)
	}
}

func TestRelayFlagsAreCheckedAsUsage(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	for _, args := range [][]string{
		{"relay"},
		{"relay", "--nats", "nats://127.0.0.1:1", "--host", "a.b"},
		{"relay", "--nats", "nats://127.0.0.1:1", "--stream-duplicates", "2h", "--stream-max-age", "1h"},
		{"relay", "--nats", "nats://127.0.0.1:1", "--max-in-flight", "0"},
		{"state-journal", "--nats", "nats://127.0.0.1:1"},
		{"state-journal", "--host", "x"},
		{"serve", "--relay-nats", "nats://127.0.0.1:1", "--relay-host", "a b"},
	} {
		if r := jc(t, dir, args...); r.code != 2 {
			t.Errorf("journalctl %s: want exit 2, got %s", strings.Join(args, " "), r)
		}
	}
}
