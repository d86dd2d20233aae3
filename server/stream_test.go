package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentruntime/statejournal/engine"
)

// stalledClient opens a raw TCP connection with a small receive buffer,
// sends a GET for path and reads nothing until the test says so.
func stalledClient(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path)
	return c
}

// smallSendBufferListener is a loopback listener whose accepted sockets
// have a small send buffer (inherited from the listening socket), so a
// client that does not read backs the server up after kilobytes, not the
// megabytes of an autotuned buffer.
func smallSendBufferListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A follow client that connects and never reads while 50,000 records are
// written keeps the server's heap under a fixed bound (its buffer is
// bounded; the stream does not queue what the client does not take), and
// when it finally reads it finds the records the server had handed over,
// then a resync line with the cursor to resume after — never more.
func TestAFollowClientThatNeverReadsStaysBoundedAndEndsInResync(t *testing.T) {
	const (
		records = 50000
		batch   = 5000
		buffer  = 64 << 10
		bound   = 28 << 20 // heap growth allowed, mostly the journal's own
	)
	e := start(t, Config{Listener: smallSendBufferListener(t), StreamBuffer: buffer, StreamStall: 100 * time.Millisecond, StreamFinalWrite: 2 * time.Minute})
	before := heapAfterGC()
	c := stalledClient(t, e.srv.Addr(), "/v1/changes?follow=1&after=0")
	pad := strings.Repeat("x", 200) // ~600-byte lines: 30 MB if the server queued them
	var peak uint64
	for i := 0; i < records; i += batch {
		// Straight to the journal: the stream is under test, not POST.
		changes := make([]engine.Change, batch)
		for k := range changes {
			changes[k] = engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
				AggregateType: "work_session", AggregateID: fmt.Sprintf("ws-%d", i+k), CorrelationID: fmt.Sprintf("c-%d-%s", i+k, pad)}
		}
		if _, err := e.j.RecordBatch(context.Background(), changes); err != nil {
			t.Fatalf("write: %v", err)
		}
		if i%(4*batch) == 0 {
			peak = max(peak, heapAfterGC())
		}
	}
	peak = max(peak, heapAfterGC())
	if peak > before+bound {
		t.Fatalf("heap grew from %d to %d MiB with a client that never reads (bound %d MiB)", before>>20, peak>>20, bound>>20)
	}
	t.Logf("heap %d -> peak %d KiB while %d records were written past a stalled follower", before>>10, peak>>10, records)
	if got := testutil.ToFloat64(e.srv.metrics.streamOverflows.WithLabelValues(streamFollow)); got != 1 {
		t.Errorf("state_journal_stream_overflows_total{stream=follow} = %v, want 1", got)
	}
	// Now read: the changes in flight, then the resync, then the end.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var last uint64
	var resync *FollowResync
	n := 0
	for sc.Scan() {
		var l struct {
			Sequence uint64        `json:"sequence"`
			Resync   *FollowResync `json:"resync"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v: %.200s", n, err, sc.Bytes())
		}
		if resync != nil {
			t.Fatalf("a line after the resync: %.200s", sc.Bytes())
		}
		if l.Resync != nil {
			resync = l.Resync
			continue
		}
		if l.Sequence != last+1 {
			t.Fatalf("line %d: sequence %d after %d: a gap before the resync", n, l.Sequence, last)
		}
		last = l.Sequence
		n++
	}
	if resync == nil {
		t.Fatalf("no resync line after %d changes (last %d): %v", n, last, sc.Err())
	}
	if resync.Reason != "overflow" || resync.ResumeAfter != last {
		t.Errorf("resync %+v, want reason overflow resuming after the last change sent, %d", resync, last)
	}
	if last >= records {
		t.Errorf("the stalled client got all %d records: the buffer never overflowed", last)
	}
}

// An invalidation client that never reads is cut the same way: when its
// buffer overflows, a resync event (reason overflow, resuming at its id)
// is its last event.
func TestAnInvalidationClientThatNeverReadsEndsInResync(t *testing.T) {
	e := start(t, Config{Listener: smallSendBufferListener(t), StreamBuffer: 4 << 10, StreamStall: 100 * time.Millisecond, StreamFinalWrite: 2 * time.Minute,
		Invalidations: InvalidationConfig{Progress: time.Millisecond, Debounce: time.Millisecond, MaxDelay: time.Millisecond, WriteTimeout: 2 * time.Minute}})
	c := stalledClient(t, e.srv.Addr(), "/v1/invalidations")
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; testutil.ToFloat64(e.srv.metrics.streamOverflows.WithLabelValues(streamInvalidations)) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the invalidation stream never overflowed a client that does not read")
		}
		e.post("/v1/changes", "application/json", mustJSON(t, heartbeat(fmt.Sprintf("ws-%d", i))))
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lastEvent, lastData, lastID string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			lastEvent = line[7:]
		case strings.HasPrefix(line, "data: "):
			lastData = line[6:]
		case strings.HasPrefix(line, "id: "):
			lastID = line[4:]
		}
	}
	if lastEvent != "resync" {
		t.Fatalf("last event %q %s, want resync", lastEvent, lastData)
	}
	var rs Resync
	if err := json.Unmarshal([]byte(lastData), &rs); err != nil || rs.Reason != "overflow" || fmt.Sprint(rs.ResumeAfter) != lastID {
		t.Errorf("resync %s id %s: want reason overflow and resume_after = its id", lastData, lastID)
	}
	if got := testutil.ToFloat64(e.srv.metrics.streamResyncs.WithLabelValues(streamInvalidations, resyncOverflow)); got != 1 {
		t.Errorf("state_journal_stream_resyncs_total{stream=invalidations,reason=overflow} = %v, want 1", got)
	}
}
