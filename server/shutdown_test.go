package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

// readLines collects a stream's lines until it ends.
func readLines(resp *http.Response) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		defer resp.Body.Close()
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		out <- lines
	}()
	return out
}

func TestStopClosesStreamsWithAFinalShutdownEvent(t *testing.T) {
	e := start(t, Config{Invalidations: fastInvalidations})
	record(t, e.j, 3)
	follow, err := e.tcp.Get(e.base + "/v1/changes?follow=1&after=1")
	if err != nil {
		t.Fatal(err)
	}
	sse, err := e.tcp.Get(e.base + "/v1/invalidations")
	if err != nil {
		t.Fatal(err)
	}
	fl, sl := readLines(follow), readLines(sse)
	time.Sleep(100 * time.Millisecond) // both streams are under way
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	select {
	case lines = <-fl:
	case <-time.After(10 * time.Second):
		t.Fatal("the follow stream did not end on stop")
	}
	if len(lines) < 3 {
		t.Fatalf("follow stream: %q", lines)
	}
	var last FollowControl
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Shutdown == nil || last.Shutdown.ResumeAfter != 3 {
		t.Fatalf("the follow stream's last line is not a shutdown line resuming after 3: %q", lines)
	}
	select {
	case lines = <-sl:
	case <-time.After(10 * time.Second):
		t.Fatal("the invalidation stream did not end on stop")
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "event: shutdown") || !strings.Contains(joined, `"resume_after":`) {
		t.Fatalf("the invalidation stream has no final shutdown event:\n%s", joined)
	}
}

func TestClientFollowReportsWhyTheStreamEnded(t *testing.T) {
	e := start(t, Config{})
	record(t, e.j, 2)
	c := Dial(e.srv.SocketPath(), "", "")
	defer c.Close()
	got := make(chan error, 1)
	var seen []uint64
	go func() {
		got <- c.Follow(context.Background(), engine.Query{After: 0}, func(ch engine.Change) bool {
			seen = append(seen, ch.Sequence)
			return true
		})
	}()
	time.Sleep(100 * time.Millisecond)
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrServerShutdown) {
			t.Fatalf("Follow returned %v, want ErrServerShutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return when the server stopped")
	}
	if len(seen) != 2 {
		t.Fatalf("followed %v", seen)
	}
}

// A quiet follow stream sends progress lines and stays open. (A progress
// line used to be encoded through the embedded *engine.Change's
// MarshalJSON, which panicked on the nil change and cut the stream.)
func TestAQuietFollowStreamSendsProgressLinesAndStaysOpen(t *testing.T) {
	e := start(t, Config{FollowProgress: 100 * time.Millisecond})
	head := record(t, e.j, 2)
	resp, err := e.tcp.Get(e.base + "/v1/changes?follow=1&after=" + itoa(head))
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for i := 0; i < 3; i++ {
		select {
		case l, ok := <-lines:
			var fc FollowControl
			if !ok || json.Unmarshal([]byte(l), &fc) != nil || fc.Progress == nil || fc.Progress.Head != head {
				t.Fatalf("line %d: %q (open %v), want a progress line with head %d", i, l, ok, head)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no progress line within 5s")
		}
	}
	record(t, e.j, 1)
	select {
	case l := <-lines:
		if !strings.Contains(l, `"sequence":`+itoa(head+1)) {
			t.Fatalf("after the quiet spell: %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new record did not arrive")
	}
	resp.Body.Close()
}
