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
	seq       uint64
	committed time.Time // the record's committed_at
	at        time.Time // when the line arrived
}

func startFollower(t testing.TB, dir string, args ...string) *follower {
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
			at := time.Now()
			var c struct {
				Sequence    uint64    `json:"sequence"`
				CommittedAt time.Time `json:"committed_at"`
			}
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				f.lines <- followed{seq: c.Sequence, committed: c.CommittedAt, at: at}
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

func (f *follower) next(t testing.TB, within time.Duration) followed {
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
// measures when each record reaches the follower after its commit (its
// committed_at: the journal's clock, on this machine).
func followLatency(t testing.TB, dir string, f *follower, n int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
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
		lat = append(lat, got.at.Sub(got.committed))
	}
	return lat
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// The follower is woken by each commit (the files' events, or the
// server's stream), not by a poll: how soon a record reaches it is a
// speed figure, measured by BenchmarkFollowLatency (median under 100 ms);
// these tests hold what it shows — the backlog, then every new record in
// order, each the one the writer committed — and log the latencies.

func TestFollowShowsTheBacklogThenEachNewRecordAsItCommits(t *testing.T) {
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
	t.Logf("tailing the files: latency after each commit %v", lat)
}

func TestFollowThroughARunningServerShowsEachNewRecordAsItCommits(t *testing.T) {
	dir := shortDir(t)
	srv := startServer(t, dir)
	f := startFollower(t, dir, "--surface", "runtime_work_session")
	time.Sleep(200 * time.Millisecond) // let it reach the server's stream
	lat := followLatency(t, dir, f, 9)
	t.Logf("through the server: latency after each commit %v", lat)
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}
}

// BenchmarkFollowLatency measures how soon `state-journal -f` shows a
// record after its commit, tailing the files and through a
// running server (the target: a median under 100 ms). Each iteration runs
// a writer process, so ns/op is the process's cost; the figures are the
// reported quantiles of the latency.
//
//	go test -run '^$' -bench BenchmarkFollowLatency ./cmd/journalctl/
func BenchmarkFollowLatency(b *testing.B) {
	report := func(b *testing.B, lat []time.Duration) {
		s := slices.Clone(lat)
		slices.Sort(s)
		b.ReportMetric(float64(median(s))/1e6, "median-ms")
		b.ReportMetric(float64(s[len(s)*9/10])/1e6, "p90-ms")
	}
	b.Run("files", func(b *testing.B) {
		dir := b.TempDir()
		seed(b, dir, "ws", 1)
		f := startFollower(b, dir)
		f.next(b, 10*time.Second) // the backlog
		b.ResetTimer()
		report(b, followLatency(b, dir, f, b.N))
	})
	b.Run("server", func(b *testing.B) {
		dir := shortDir(b)
		startServer(b, dir)
		f := startFollower(b, dir, "--surface", "runtime_work_session")
		time.Sleep(200 * time.Millisecond) // let it reach the server's stream
		b.ResetTimer()
		report(b, followLatency(b, dir, f, b.N))
	})
}

// A follow whose query is refused prints its error and nothing else: no
// table header on stdout before it (a script reading stdout sees no
// output, not a header with no rows).
func TestARefusedFollowPrintsOnlyItsError(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir, "ws", 3)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--surface", "nope"}, `surface "nope" is not a registered surface`},
		{[]string{"--after", "0", "--change-type", "bogus"}, `change_type "bogus" is not a change type`},
	} {
		r := jc(t, dir, append([]string{"state-journal", "-f"}, tc.args...)...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("state-journal -f %s: want exit 2, nothing on stdout and %q on stderr, got %s", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}
