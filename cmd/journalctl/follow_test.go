package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// follower runs `journalctl state-journal -f -o jsonl` and delivers each
// line with the time it arrived.
type follower struct {
	cmd   *exec.Cmd
	lines chan followed
}

type followed struct {
	seq uint64
	at  time.Time
}

func startFollower(t *testing.T, dir string, args ...string) *follower {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--dir", dir, "state-journal", "-f", "-o", "jsonl"}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &follower{cmd: cmd, lines: make(chan followed, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var c struct {
				Sequence uint64 `json:"sequence"`
			}
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				f.lines <- followed{seq: c.Sequence, at: time.Now()}
			}
		}
		close(f.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return f
}

func (f *follower) next(t *testing.T, within time.Duration) followed {
	t.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			t.Fatal("the follower exited")
		}
		return l
	case <-time.After(within):
		t.Fatalf("no line from the follower within %s", within)
	}
	return followed{}
}

// followLatency records with a real writer process (the binary) and
// measures when each record reaches the follower after its receipt.
func followLatency(t *testing.T, dir string, f *follower, n int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
		acked := time.Now() // the receipt is printed after the commit
		var rc struct {
			Sequence uint64 `json:"sequence"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &rc); err != nil {
			t.Fatalf("receipt %q: %v", r.stdout, err)
		}
		got := f.next(t, 5*time.Second)
		if got.seq != rc.Sequence {
			t.Fatalf("follower showed sequence %d, the writer committed %d", got.seq, rc.Sequence)
		}
		// The follower may see the record before the writer process has
		// printed its receipt and exited; that counts as no latency.
		lat = append(lat, max(0, got.at.Sub(acked)))
	}
	return lat
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestFollowShowsTheBacklogThenEachNewRecordWithin100ms(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir, "ws", 15)
	f := startFollower(t, dir)
	// The backlog: the newest 10, oldest first.
	for want := uint64(6); want <= 15; want++ {
		if got := f.next(t, 10*time.Second); got.seq != want {
			t.Fatalf("backlog line has sequence %d, want %d", got.seq, want)
		}
	}
	lat := followLatency(t, dir, f, 9)
	t.Logf("tailing the files: latency after each receipt %v", lat)
	if m := median(lat); m > 100*time.Millisecond {
		t.Fatalf("median latency %s from commit to the follower's line, want under 100ms (all: %v)", m, lat)
	}
}

func TestFollowThroughARunningServerShowsEachNewRecordWithin100ms(t *testing.T) {
	dir := shortDir(t)
	srv := startServer(t, dir)
	f := startFollower(t, dir, "--surface", "runtime_work_session")
	time.Sleep(200 * time.Millisecond) // let it reach the server's stream
	lat := followLatency(t, dir, f, 9)
	t.Logf("through the server: latency after each receipt %v", lat)
	if m := median(lat); m > 100*time.Millisecond {
		t.Fatalf("median latency %s from commit to the follower's line, want under 100ms (all: %v)", m, lat)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}
}
