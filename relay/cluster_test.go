package relay

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts the three nodes of docs/relay/nats-{1,2,3}.conf as
// embedded servers, their ports rewritten to free loopback ports and
// their stores to temp directories, and waits for JetStream's meta
// leader.
func startCluster(t *testing.T) []*natsserver.Server {
	t.Helper()
	var cport [3]int
	var routes []string
	for i := range cport {
		cport[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", cport[i]))
	}
	var servers []*natsserver.Server
	for i := range 3 {
		path := filepath.Join("..", "docs", "relay", fmt.Sprintf("nats-%d.conf", i+1))
		o, err := natsserver.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !o.JetStream || o.Cluster.Name == "" || len(o.Routes) != 3 || o.ServerName != fmt.Sprintf("nats-%d", i+1) {
			t.Fatalf("%s: want JetStream, a named cluster and three routes, got %+v", path, o)
		}
		o.Port, o.HTTPPort, o.Cluster.Port = freePort(t), 0, cport[i]
		o.Routes = natsserver.RoutesFromStr(strings.Join(routes, ","))
		o.StoreDir = t.TempDir()
		o.NoLog, o.NoSigs = true, true
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("a cluster node is not ready")
		}
	}
	waitFor(t, "a JetStream meta leader", func() bool {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return servers
}

// A three-node cluster built from the documented config files, an R3
// stream: the stream's leader is killed while a writer commits and the
// relay ships; the relay carries on with the two others, and the stream
// holds every record once.
func TestAThreeNodeClusterKeepsRelayingWhenTheStreamLeaderIsKilled(t *testing.T) {
	servers := startCluster(t)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	j := openJournal(t, t.TempDir())
	r, err := New(j, Config{URL: url, Host: "h", Logger: quietLogger(), Tick: 20 * time.Millisecond, AckTimeout: time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond, Stream: StreamConfig{Replicas: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := runRelay(t, r)
	var written atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			writeN(t, j, 10)
			written.Add(10)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitFor(t, "some records shipped", func() bool { return r.Status().Shipped > 200 })
	if rep := r.Status().StreamReport; rep == nil || rep.Replicas != 3 {
		t.Fatalf("stream report %+v: want an R3 stream", rep)
	}
	leader := streamLeader(t, url)
	var rest []string
	for _, s := range servers {
		if s.Name() == leader {
			s.Shutdown()
			s.WaitForShutdown()
			continue
		}
		rest = append(rest, s.ClientURL())
	}
	at := r.Status().Shipped
	waitFor(t, "records shipped after the kill", func() bool { return r.Status().Shipped > at+200 })
	cancel()
	wg.Wait()
	total := written.Load()
	waitFor(t, "every record shipped", func() bool { return r.Status().Shipped == total })
	stop()
	checkEachOnce(t, readStream(t, strings.Join(rest, ","), DefaultStream), "h", total)
	t.Logf("killed stream leader %s; %d records", leader, total)
}

func streamLeader(t *testing.T, url string) string {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var leader string
	waitFor(t, "the stream's leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, DefaultStream)
		if err == nil && s.CachedInfo().Cluster != nil {
			leader = s.CachedInfo().Cluster.Leader
		}
		return leader != ""
	})
	return leader
}

// checkEachOnce fails unless host's messages are records 1..n, each
// exactly once; it logs (does not fail on) records out of journal order,
// which a leader change may cause (see doc.go).
func checkEachOnce(t testing.TB, msgs []streamMsg, host string, n uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	var prev uint64
	reordered := 0
	for _, m := range msgs {
		if m.host != host {
			continue
		}
		if seen[m.recSeq] {
			t.Fatalf("host %s: record %d is in the stream twice", host, m.recSeq)
		}
		seen[m.recSeq] = true
		if m.recSeq < prev {
			reordered++
		}
		prev = m.recSeq
	}
	for s := uint64(1); s <= n; s++ {
		if !seen[s] {
			t.Fatalf("host %s: record %d is missing from the stream", host, s)
		}
	}
	if uint64(len(seen)) != n {
		t.Fatalf("host %s: %d records in the stream, want %d", host, len(seen), n)
	}
	if reordered > 0 {
		t.Logf("host %s: %d records landed out of journal order (a leader change)", host, reordered)
	}
}
