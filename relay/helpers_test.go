package relay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentruntime/statejournal/engine"
)

// startNATS starts an embedded JetStream server on loopback with its
// store in storeDir; port 0 picks one.
func startNATS(t testing.TB, storeDir string, port int) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testChange is a valid record for the default registry.
func testChange(i int) engine.Change {
	return engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: fmt.Sprintf("ws-%d", i%13)}
}

func writeN(t testing.TB, j *engine.Journal, n int) {
	t.Helper()
	batch := make([]engine.Change, 0, 100)
	for i := 0; i < n; i++ {
		batch = append(batch, testChange(i))
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := j.RecordBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// streamMsg is one stored message as the tests check it.
type streamMsg struct {
	seq     uint64 // stream sequence
	subject string
	host    string
	recSeq  uint64
	msgID   string
}

// readStream returns every message of the stream, in stream order.
func readStream(t testing.TB, url, stream string) []streamMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if err != nil {
			break
		}
		rs, _ := strconv.ParseUint(m.Header.Get(HeaderSequence), 10, 64)
		out = append(out, streamMsg{seq: m.Sequence, subject: m.Subject, host: m.Header.Get(HeaderHost), recSeq: rs, msgID: m.Header.Get(jetstream.MsgIDHeader)})
		seq = m.Sequence + 1
	}
	return out
}

// checkExactlyOnce fails unless host's messages are records 1..n, each
// once, in order.
func checkExactlyOnce(t testing.TB, msgs []streamMsg, host string, n uint64) {
	t.Helper()
	var next uint64 = 1
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.host != host {
			continue
		}
		if seen[m.msgID] {
			t.Fatalf("host %s: record %d (%s) is in the stream twice (stream sequence %d)", host, m.recSeq, m.msgID, m.seq)
		}
		seen[m.msgID] = true
		if m.recSeq != next {
			t.Fatalf("host %s: stream sequence %d holds record %d, want %d (a loss, a duplicate or a reorder)", host, m.seq, m.recSeq, next)
		}
		next++
	}
	if next-1 != n {
		t.Fatalf("host %s: the stream holds records 1..%d, want 1..%d", host, next-1, n)
	}
}

// waitFor polls cond until it holds (the test's own timeout bounds it).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runRelay starts r.Run and returns a stop that cancels it and waits.
func runRelay(t testing.TB, r *Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			cancel()
			err = <-done
			stopped = true
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}
