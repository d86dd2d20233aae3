package relay

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/testproc"
)

// TestMain lets the test binary run as a relay child (the crash test
// kills it).
func TestMain(m *testing.M) {
	if os.Getenv("RELAY_CRASH_CHILD") == "1" {
		os.Exit(relayChild())
	}
	os.Exit(m.Run())
}

// relayChild relays RELAY_DIR to RELAY_URL as host RELAY_HOST until
// SIGTERM (exit 0 after persisting the cursor) or SIGKILL.
func relayChild() int {
	j, err := engine.Open(os.Getenv("RELAY_DIR"), engine.ReadOnly(), engine.WithLogger(quietLogger()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer j.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := New(j, Config{URL: os.Getenv("RELAY_URL"), Host: os.Getenv("RELAY_HOST"), Logger: log, Tick: 20 * time.Millisecond,
		MaxInFlight: 64, Stream: StreamConfig{Duplicates: 100 * time.Millisecond, MaxAge: time.Hour}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

var reconciled = regexp.MustCompile(`reconciled the cursor with the stream.* cursor_was=(\d+) cursor=(\d+)`)

func crashKills() int {
	if n, err := strconv.Atoi(os.Getenv("RELAY_KILLS")); err == nil && n > 0 {
		return n
	}
	return 5
}

// The relay, a real child process, is SIGKILLed at random moments while
// a writer keeps committing, and restarted; the dedupe window (100 ms) is
// shorter than the pause between a kill and the restart. At the end the
// stream holds every record once, in order. RELAY_KILLS=N for a longer
// campaign (make crash runs 100).
func TestCrashKilledRelayLeavesNoLossAndNoDuplicate(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	j := openJournal(t, dir)
	writeN(t, j, 50)
	var written atomic.Uint64
	written.Store(50)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			batch := make([]engine.Change, 1+i%10)
			for k := range batch {
				batch[k] = testChange(i + k)
			}
			if _, err := j.RecordBatch(context.Background(), batch); err != nil {
				t.Error(err)
				return
			}
			written.Add(uint64(len(batch)))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var logs testproc.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the relay children's logs:\n%s", logs.String())
		}
	})
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RELAY_CRASH_CHILD=1", "RELAY_DIR="+dir, "RELAY_URL="+ns.ClientURL(), "RELAY_HOST=crash")
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills := crashKills()
	shipped := func() uint64 {
		c, _, _ := ReadCursor(dir, j.Status().JournalID)
		return c.Sequence
	}
	for k := 0; k < kills; k++ {
		cmd := child()
		// Mid-flight: once the child has persisted progress, at a random
		// moment within its next cursor write.
		was := shipped()
		waitFor(t, "the child to ship", func() bool { return shipped() > was })
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		time.Sleep(time.Duration(100+rand.IntN(50)) * time.Millisecond) // past the dedupe window
	}
	cancel()
	wg.Wait()
	total := written.Load()
	cmd := child()
	waitFor(t, "the last child to ship everything", func() bool {
		c, ok, err := ReadCursor(dir, j.Status().JournalID)
		return err == nil && ok && c.Sequence == total
	})
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the relay did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("the relay did not stop within a minute of SIGTERM")
	}
	checkExactlyOnce(t, readStream(t, ns.ClientURL(), DefaultStream), "crash", total)
	// How often a restart found records stored that its cursor did not
	// count yet (the case the reconciliation exists for).
	caught := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if m := reconciled.FindStringSubmatch(l); m != nil && m[1] != m[2] {
			caught++
		}
	}
	t.Logf("%d kills, %d records; %d restarts found records stored beyond their cursor", kills, total, caught)
}
