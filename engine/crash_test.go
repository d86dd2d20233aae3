package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// The crash tests re-execute the test binary as a writer child (the
// "crash-writer" role, see TestMain): the child streams records from
// several goroutines and prints "seq event_id" for every acknowledged
// (fsynced) record, unbuffered, so the parent knows exactly what was
// acknowledged when it sends SIGKILL.

const crashChildEnv = "SJ_CRASH_CHILD_DIR"

// TestMain runs a child role when the test binary was started as one
// (internal/testproc): every child process of this package's crash,
// lock and fault tests is one of these roles.
func TestMain(m *testing.M) {
	testproc.Main(m, testproc.Roles{
		"crash-writer": func() int { return crashChild(os.Getenv(crashChildEnv)) },
		"compact": func() int {
			return compactChild(os.Getenv(compactChildEnv), os.Getenv(compactDirEnv), os.Getenv(compactNthEnv), os.Getenv(compactSealEnv) == "1")
		},
		"lock-writer":             func() int { return lockChild(os.Getenv(lockDirEnv)) },
		"space":                   func() int { return spaceChild(os.Getenv(spaceChildEnv)) },
		"fault":                   func() int { return faultChild(os.Getenv(faultChildEnv), os.Getenv(faultDirEnv)) },
		"killed-after-compaction": func() int { return timeChild(os.Getenv(timeChildEnv)) },
	}, func() {
		// Recovery warnings are expected by the corruption tests; keep the
		// output for failures.
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	})
}

func crashChild(dir string) int {
	seg, _ := strconv.Atoi(os.Getenv("SJ_CRASH_SEGMENT"))
	opts := []Option{}
	if seg > 0 {
		opts = append(opts, WithSegmentSize(seg))
	}
	j, err := Open(dir, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	var mu sync.Mutex
	out := os.Stdout
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				c := heartbeat(fmt.Sprintf("ws-%d", w))
				c.Metadata = map[string]any{"i": i, "pad": strings.Repeat("x", rand.IntN(200))}
				if w%3 == 0 {
					batch := []Change{c, heartbeat("ws-b"), heartbeat("ws-b")}
					rcs, err := j.RecordBatch(context.Background(), batch)
					if err != nil {
						fmt.Fprintln(os.Stderr, "child batch:", err)
						return
					}
					mu.Lock()
					for _, rc := range rcs {
						fmt.Fprintf(out, "%d %s\n", rc.Sequence, rc.EventID)
					}
					mu.Unlock()
					continue
				}
				rc, err := j.Record(context.Background(), c)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child record:", err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s\n", rc.Sequence, rc.EventID)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return 0
}

// runAndKill starts a writer child on dir, lets it run for d, kills it
// with SIGKILL and returns the acknowledged records it reported.
func runAndKill(t *testing.T, dir string, d time.Duration, segSize int) map[string]uint64 {
	t.Helper()
	p := testproc.Start(t, testproc.Options{Role: "crash-writer", Env: []string{crashChildEnv + "=" + dir, fmt.Sprintf("SJ_CRASH_SEGMENT=%d", segSize)}})
	p.KillAfter(d)
	p.MustBeKilled("crash writer")
	acked := map[string]uint64{}
	for _, line := range p.Lines() {
		seq, id, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			continue // a line the kill cut
		}
		acked[id] = n
	}
	return acked
}

// checkJournal opens dir and checks every acknowledged record is present
// exactly once at its sequence, sequences are gapless and validate is
// clean. It returns the journal's last sequence.
func checkJournal(t *testing.T, dir string, acked map[string]uint64) uint64 {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer j.Close()
	res, err := j.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	st := j.Status()
	for i, c := range res.Changes {
		if want := st.FirstSequence + uint64(i); c.Sequence != want {
			t.Fatalf("gap: record %d has sequence %d, want %d", i, c.Sequence, want)
		}
		if prev, dup := seen[c.EventID]; dup {
			t.Fatalf("event %s recorded twice (sequences %d and %d)", c.EventID, prev, c.Sequence)
		}
		seen[c.EventID] = c.Sequence
	}
	for id, seq := range acked {
		got, ok := seen[id]
		if !ok {
			t.Fatalf("acknowledged record %s (sequence %d) lost; journal ends at %d", id, seq, st.LastSequence)
		}
		if got != seq {
			t.Fatalf("acknowledged record %s moved from sequence %d to %d", id, seq, got)
		}
	}
	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || !rep.Clean {
		t.Fatalf("validate after kill: %v %+v", err, rep.Problems)
	}
	// The index agrees with the log: the indexed answer equals a scan of
	// the files, and a surface query through the postings equals the
	// same filter over that scan.
	scan := fullScan(t, dir)
	if len(scan) != len(res.Changes) {
		t.Fatalf("index holds %d records, the files %d", len(res.Changes), len(scan))
	}
	for i := range scan {
		if scan[i].Sequence != res.Changes[i].Sequence || scan[i].EventID != res.Changes[i].EventID {
			t.Fatalf("index and files disagree at %d: %d/%s vs %d/%s", i, res.Changes[i].Sequence, res.Changes[i].EventID, scan[i].Sequence, scan[i].EventID)
		}
	}
	q := Query{AggregateType: "work_session", AggregateID: "ws-b", NewestFirst: true, Limit: 20}
	got, err := j.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := modelQuery(scan, q)
	if len(got.Changes) != len(want) {
		t.Fatalf("aggregate query after reopen: index %d records, files %d", len(got.Changes), len(want))
	}
	for i := range want {
		if got.Changes[i].Sequence != want[i].Sequence {
			t.Fatalf("aggregate query after reopen: record %d is %d, files say %d", i, got.Changes[i].Sequence, want[i].Sequence)
		}
	}
	return st.LastSequence
}

func crashKills() int {
	if n, err := strconv.Atoi(os.Getenv("CRASH_KILLS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 5
	}
	return 20
}

func TestCrashKilledWriterLosesNoAcknowledgedRecord(t *testing.T) {
	kills := crashKills()
	var dir string
	all := map[string]uint64{}
	recoveries, total := 0, 0
	for k := 0; k < kills; k++ {
		if k%25 == 0 {
			// A fresh directory every 25 kills keeps each check's full
			// scan bounded, so a long campaign stays linear in kills.
			dir = t.TempDir()
			total += len(all)
			all = map[string]uint64{}
		}
		// Small segments so kills also land around segment rotation.
		acked := runAndKill(t, dir, testproc.Between(20*time.Millisecond, 150*time.Millisecond), 256<<10)
		for id, s := range acked {
			all[id] = s
		}
		last := checkJournal(t, dir, all)
		if r := readRecovery(filepath.Join(dir, stateDirName)); r != nil && len(r.Cuts) > 0 {
			recoveries++
		}
		if k%10 == 0 {
			t.Logf("kill %d: %d acknowledged so far, journal at sequence %d", k+1, len(all), last)
		}
	}
	total += len(all)
	t.Logf("%d kills, %d acknowledged records all present, %d recoveries recorded a cut", kills, total, recoveries)
}
