package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// liveFollower is `journalctl state-journal -f -o jsonl` with its stderr
// and exit code.
type liveFollower struct {
	cmd    *exec.Cmd
	seqs   chan uint64
	stderr *testproc.Buffer
	done   chan struct{}
	code   int
}

func startLiveFollower(t *testing.T, dir string, args ...string) *liveFollower {
	t.Helper()
	f := &liveFollower{seqs: make(chan uint64, 1024), stderr: &testproc.Buffer{}, done: make(chan struct{})}
	f.cmd = exec.Command(binary, append([]string{"--dir", dir, "state-journal", "-f", "-o", "jsonl"}, args...)...)
	f.cmd.Env = cleanEnv()
	f.cmd.Stderr = f.stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var c struct {
				Sequence uint64 `json:"sequence"`
			}
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				f.seqs <- c.Sequence
			}
		}
	}()
	go func() {
		<-lines
		err := f.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			f.code = ee.ExitCode()
		}
		close(f.done)
	}()
	t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// expect reads the next sequences and fails unless they are want.
func (f *liveFollower) expect(t *testing.T, want ...uint64) {
	t.Helper()
	var got []uint64
	for len(got) < len(want) {
		select {
		case s := <-f.seqs:
			got = append(got, s)
		case <-f.done:
			t.Fatalf("the follower exited %d after %v, want %v\nstderr:\n%s", f.code, got, want, f.stderr.String())
		case <-time.After(15 * time.Second):
			t.Fatalf("the follower printed %v within 15s, want %v\nstderr:\n%s", got, want, f.stderr.String())
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the follower printed %v, want %v\nstderr:\n%s", got, want, f.stderr.String())
	}
}

// waitStderr waits until the follower's stderr holds s.
func (f *liveFollower) waitStderr(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(f.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the follower's stderr never said %q:\n%s", s, f.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recordOne(t *testing.T, dir, id string) {
	t.Helper()
	mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--aggregate-id", id, "--json")
}

func TestFollowSurvivesTheServerStoppingAndStartingAgain(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir)
	for _, id := range []string{"a", "b", "c"} {
		recordOne(t, dir, id)
	}
	f := startLiveFollower(t, dir)
	f.expect(t, 1, 2, 3)               // the backlog
	time.Sleep(300 * time.Millisecond) // on the server's stream
	recordOne(t, dir, "d")
	f.expect(t, 4)

	if c := srv.stop(t); c != 0 {
		t.Fatalf("server exit %d", c)
	}
	f.waitStderr(t, "the server is shutting down; tailing the files from sequence 4")
	// No server: the CLI writes the files itself and the follower tails them.
	recordOne(t, dir, "e")
	recordOne(t, dir, "f")
	f.expect(t, 5, 6)

	srv2 := startServer(t, dir)
	f.waitStderr(t, "following its stream from sequence 6")
	recordOne(t, dir, "g")
	recordOne(t, dir, "h")
	f.expect(t, 7, 8)

	// And once more, the server killed outright: no shutdown line.
	srv2.proc.Kill()
	f.waitStderr(t, "stream ended")
	recordOne(t, dir, "i")
	f.expect(t, 9)

	select {
	case s := <-f.seqs:
		t.Fatalf("the follower printed an extra sequence %d", s)
	case <-time.After(300 * time.Millisecond):
	}
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not exit on SIGTERM")
	}
	if f.code != 0 {
		t.Fatalf("the follower exited %d on SIGTERM, want 0\n%s", f.code, f.stderr.String())
	}
}
