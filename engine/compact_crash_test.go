package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/testproc"
	"github.com/agentruntime/statejournal/segment/archive"
)

// The compaction crash tests kill a real child process (the test binary
// re-executed with compactChildEnv set, run as a testproc role by the
// TestMain in crash_test.go) at each step of a compaction and check what the parent
// then opens: read-only first (which must change no byte), then as the
// writer, which must finish what the crash interrupted.
//
// The child opens the journal with small segments and a record retention
// that removes archives, writes compactCrashRecords records and prints
// "seq event_id" for each acknowledged one, then runs Compact with
// compactHook set to SIGKILL itself at the chosen step. Once the first
// archive is written a background writer keeps recording (and printing
// acknowledgements), so kills also land beside live writes. The step
// "hot-log-closed" is inside the front truncation: tidwall/wal is closed
// (and, when the active segment goes too, the empty segment after it
// created) but no segment file is removed yet. Three steps have no hook:
// "tmp" lets the parent kill the child while an archive's temp file
// exists (inside archive.Write, before its rename), "start" while
// tidwall/wal's TruncateFront has its START file on disk (only when the
// active segment is compacted while writers go on, so the cut falls
// inside it), and "random" kills it at a random moment of the
// compaction.
const (
	compactChildEnv = "SJ_COMPACT_CHILD" // step to die at
	compactDirEnv   = "SJ_COMPACT_DIR"
	compactNthEnv   = "SJ_COMPACT_NTH"  // which occurrence of the step: a number or "last" (the last unit)
	compactSealEnv  = "SJ_COMPACT_SEAL" // "1": CompactOptions.SealActive

	compactCrashRecords    = 600 // about four 64 KiB segments per cycle
	compactCrashMaxRecords = 500 // so every cycle's compaction removes archives
	compactStepNotReached  = 5   // child exit status: the hook never fired
)

func compactCrashOptions() []Option {
	return []Option{WithSegmentSize(64 << 10), WithRetention(Retention{MaxRecords: compactCrashMaxRecords})}
}

// compactChange is the i-th record a compaction crash test writes.
func compactChange(i int) Change {
	c := heartbeat(fmt.Sprintf("ws-%d", i%7))
	c.Metadata = map[string]any{"i": i, "pad": strings.Repeat("p", i%97)}
	return c
}

func compactChild(step, dir, nth string, seal bool) int {
	ctx := context.Background()
	j, err := Open(dir, compactCrashOptions()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	var outMu sync.Mutex
	ack := func(rcs ...Receipt) {
		outMu.Lock()
		defer outMu.Unlock()
		for _, rc := range rcs {
			fmt.Fprintf(os.Stdout, "%d %s\n", rc.Sequence, rc.EventID)
		}
	}
	say := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintln(os.Stdout, line)
	}
	for i := 0; i < compactCrashRecords; i += 100 {
		batch := make([]Change, 100)
		for k := range batch {
			batch[k] = compactChange(i + k)
		}
		rcs, err := j.RecordBatch(ctx, batch)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child batch:", err)
			return 3
		}
		ack(rcs...)
	}
	// Nothing else writes yet, so these are the units the compaction
	// will take.
	units := len(j.compactionUnits(j.view.Load(), seal))
	want := units
	if nth != "last" {
		if want, err = strconv.Atoi(nth); err != nil {
			want = 1
		}
	}
	at, hooked := parseCompactStep(step)
	var startWriter sync.Once
	seen := 0
	compactHook = func(s compactStep) {
		startWriter.Do(func() {
			go func() {
				for i := 0; ; i++ {
					rc, err := j.Record(ctx, compactChange(1_000_000+i))
					if err != nil {
						return
					}
					ack(rc)
				}
			}()
		})
		if !hooked || s != at {
			return
		}
		seen++
		if seen == want {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour)
		}
	}
	say("compacting")
	rep, err := j.Compact(ctx, CompactOptions{SealActive: seal})
	if hooked {
		fmt.Fprintf(os.Stderr, "step %s #%d of %d units never came (saw %d); compaction: %s %v\n", step, want, units, seen, rep.Message, err)
		return compactStepNotReached
	}
	say("compacted")
	// The parent kills us; until then we keep writing.
	time.Sleep(time.Hour)
	return 0
}

// compactRun is what one killed child left behind.
type compactRun struct {
	acked    map[string]uint64 // event id → sequence
	leftTmp  []string          // archive temp files on disk after the kill
	leftHot  []string          // tidwall/wal truncation files (*.START, *.TEMP) in hot/ after the kill
	hitPoint bool              // a polled step: the kill landed while its file existed
}

// polledSteps are the kill points without a hook: the parent polls a
// directory and kills the child when a matching file appears.
var polledSteps = map[string]struct {
	dir   string
	match func(name string) bool
}{
	"tmp":   {archiveDirName, func(n string) bool { return strings.HasSuffix(n, fsx.TempSuffix) }},
	"start": {hotDirName, func(n string) bool { return strings.Contains(n, ".START") }},
}

// runCompactChild runs the child on dir until it dies at step (or, for
// the polled steps and "random", until the parent kills it) and returns
// what it acknowledged and left behind.
func runCompactChild(t *testing.T, dir, step, nth string, seal bool) compactRun {
	t.Helper()
	sealEnv := "0"
	if seal {
		sealEnv = "1"
	}
	run := compactRun{acked: map[string]uint64{}}
	compacting, compacted := make(chan struct{}), make(chan struct{})
	p := testproc.Start(t, testproc.Options{Role: "compact",
		Env: []string{compactChildEnv + "=" + step, compactDirEnv + "=" + dir, compactNthEnv + "=" + nth, compactSealEnv + "=" + sealEnv},
		OnLine: func(line string) {
			switch line {
			case "compacting":
				close(compacting)
			case "compacted":
				close(compacted)
			default:
				seq, id, ok := strings.Cut(line, " ")
				if n, err := strconv.ParseUint(seq, 10, 64); ok && err == nil {
					run.acked[id] = n
				}
			}
		}})
	done := p.Done()
	archDir := filepath.Join(dir, archiveDirName)
	if ps, ok := polledSteps[step]; ok {
		select {
		case <-compacting:
		case <-done:
		}
		pollDir := filepath.Join(dir, ps.dir)
	poll:
		for {
			select {
			case <-compacted:
				break poll // a miss: the compaction ended first
			case <-done:
				break poll
			default:
			}
			if len(listMatching(pollDir, ps.match)) > 0 {
				break
			}
		}
		p.Kill()
	}
	if step == "random" {
		select {
		case <-compacting:
		case <-done:
		}
		p.KillAfter(testproc.Between(0, 40*time.Millisecond))
	}
	<-done
	p.MustBeKilled(fmt.Sprintf("compaction child (step %s #%s)", step, nth))
	run.leftTmp = listMatching(archDir, polledSteps["tmp"].match)
	run.leftHot = listMatching(filepath.Join(dir, hotDirName), func(n string) bool {
		return strings.Contains(n, ".START") || strings.HasSuffix(n, ".TEMP") || strings.HasSuffix(n, ".END")
	})
	if ps, ok := polledSteps[step]; ok {
		run.hitPoint = len(listMatching(filepath.Join(dir, ps.dir), ps.match)) > 0
	}
	return run
}

// listMatching lists the names in dir that match.
func listMatching(dir string, match func(string) bool) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if match(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// hashTree maps every file and directory under dir to a hash of its
// bytes (directories to their listing), so two calls tell whether
// anything was created, removed or changed in between.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return out
}

func diffTrees(before, after map[string]string) []string {
	var d []string
	for p, h := range before {
		switch g, ok := after[p]; {
		case !ok:
			d = append(d, "removed "+p)
		case g != h:
			d = append(d, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "created "+p)
		}
	}
	slices.Sort(d)
	return d
}

// checkPromised checks that j reads every record from its horizon to its
// head exactly once, oldest first, gapless (no coalescing here) and the
// same newest first, and that every acknowledged record at or above the
// horizon is there at its sequence. It returns the horizon and head.
func checkPromised(t *testing.T, who string, j *Journal, acked map[string]uint64) (uint64, uint64) {
	t.Helper()
	ctx := context.Background()
	st := j.Status()
	res, err := j.Query(ctx, Query{Limit: -1})
	if err != nil {
		t.Fatalf("%s: query everything: %v", who, err)
	}
	h, head := res.Horizon, res.Head
	if h != st.Horizon || head != st.LastSequence {
		t.Fatalf("%s: query says horizon %d head %d, status says %d and %d", who, h, head, st.Horizon, st.LastSequence)
	}
	if head+1 < h {
		t.Fatalf("%s: horizon %d is past head %d + 1", who, h, head)
	}
	if want := head + 1 - h; uint64(len(res.Changes)) != want {
		t.Fatalf("%s: %d records readable between horizon %d and head %d, want %d", who, len(res.Changes), h, head, want)
	}
	seen := make(map[string]uint64, len(res.Changes))
	for i, c := range res.Changes {
		if want := h + uint64(i); c.Sequence != want {
			t.Fatalf("%s: record %d has sequence %d, want %d (a gap, a duplicate or disorder)", who, i, c.Sequence, want)
		}
		if prev, dup := seen[c.EventID]; dup {
			t.Fatalf("%s: event %s read twice, at sequences %d and %d", who, c.EventID, prev, c.Sequence)
		}
		seen[c.EventID] = c.Sequence
	}
	for id, seq := range acked {
		if seq < h {
			continue // retention no longer promises it
		}
		got, ok := seen[id]
		if !ok {
			t.Fatalf("%s: acknowledged record %s (sequence %d) lost; horizon %d, head %d", who, id, seq, h, head)
		}
		if got != seq {
			t.Fatalf("%s: acknowledged record %s moved from sequence %d to %d", who, id, seq, got)
		}
	}
	nf, err := j.Query(ctx, Query{Limit: -1, NewestFirst: true})
	if err != nil {
		t.Fatalf("%s: newest-first query: %v", who, err)
	}
	if len(nf.Changes) != len(res.Changes) {
		t.Fatalf("%s: newest first reads %d records, oldest first %d", who, len(nf.Changes), len(res.Changes))
	}
	for i, c := range nf.Changes {
		if want := head - uint64(i); c.Sequence != want {
			t.Fatalf("%s: newest-first record %d has sequence %d, want %d", who, i, c.Sequence, want)
		}
	}
	return h, head
}

// validateClean runs ValidateDir and fails on any problem above info,
// except the kinds in allowed.
func validateClean(t *testing.T, who, dir string, allowed ...string) []Problem {
	t.Helper()
	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatalf("%s: validate: %v", who, err)
	}
	for _, p := range rep.Problems {
		if p.Severity != SeverityInfo && !slices.Contains(allowed, p.Kind) {
			t.Fatalf("%s: validate found %s %s in %s at sequence %d: %s", who, p.Severity, p.Kind, p.Segment, p.Sequence, p.Message)
		}
	}
	return rep.Problems
}

// compactTally counts what the writer opens after the kills completed.
type compactTally struct {
	completedCompaction, removedBelowHorizon, sweptTemps, completedTrunc, hotCut int
}

// checkAfterCompactKill checks dir after a kill: read-only (nothing on
// disk may change), then as the writer, then a further write and a full
// compaction. It returns the horizon after all of it.
func checkAfterCompactKill(t *testing.T, dir, step string, run compactRun, acked map[string]uint64, prevHorizon uint64, tally *compactTally) uint64 {
	t.Helper()
	ctx := context.Background()

	// Readers first: they see every promised record once and touch nothing.
	before := hashTree(t, dir)
	ro, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatalf("read-only open after the kill at %s: %v", step, err)
	}
	roHorizon, roHead := checkPromised(t, "read-only", ro, acked)
	ro.Close()
	if roHorizon < prevHorizon {
		t.Fatalf("read-only: horizon moved back from %d to %d", prevHorizon, roHorizon)
	}
	for _, p := range validateClean(t, "validate before reopen", dir, ProblemTornTail) {
		if p.Kind == ProblemTornTail {
			t.Logf("before reopen: %s (the background writer was cut mid-write)", p.Message)
		}
	}
	if d := diffTrees(before, hashTree(t, dir)); len(d) > 0 {
		t.Fatalf("a read-only open, queries and validate changed files: %v", d)
	}

	// The writer finishes the interrupted compaction.
	var logBuf testproc.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opened := time.Now()
	j, err := Open(dir, append(compactCrashOptions(), WithLogger(logger))...)
	if err != nil {
		t.Fatalf("writer open after the kill at %s: %v", step, err)
	}
	defer j.Close()
	h, head := checkPromised(t, "writer", j, acked)
	if h != roHorizon || head != roHead {
		t.Fatalf("the writer reads horizon %d head %d, the reader before it %d and %d", h, head, roHorizon, roHead)
	}
	validateClean(t, "validate after reopen", dir)
	var rec *Recovery
	if r := j.Status().LastRecovery; r != nil && !r.At.Before(opened) {
		rec = r
	}
	if rec != nil {
		if rec.CompletedCompaction {
			tally.completedCompaction++
		}
		if rec.RemovedBelowHorizon > 0 {
			tally.removedBelowHorizon++
		}
		if len(rec.SweptTempFiles) > 0 {
			tally.sweptTemps++
		}
		if rec.CompletedTrunc > 0 {
			tally.completedTrunc++
		}
		if len(rec.Cuts) > 0 {
			tally.hotCut++
		}
	}
	logs := logBuf.String()
	at, _ := parseCompactStep(step) // 0 for the points without a hook
	switch at {
	case stepArchiveWritten, stepHotLogClosed:
		if rec == nil || !rec.CompletedCompaction {
			t.Fatalf("archive written, hot log not cut: the reopen does not report completing the compaction: %+v", rec)
		}
		if !strings.Contains(logs, "completing an interrupted compaction") {
			t.Fatalf("the log does not say it completed the interrupted compaction:\n%s", logs)
		}
	case stepHotTruncated:
		if rec != nil && (rec.CompletedCompaction || rec.RemovedBelowHorizon > 0) {
			t.Fatalf("killed between units, yet the reopen completed something: %+v", rec)
		}
	case stepHorizonWritten:
		if rec == nil || rec.RemovedBelowHorizon == 0 {
			t.Fatalf("horizon written, archives not removed: the reopen does not report removing them: %+v", rec)
		}
	}
	for _, name := range run.leftTmp {
		if rec == nil || !slices.Contains(rec.SweptTempFiles, name) {
			t.Fatalf("archive temp file %s was left by the kill, the reopen does not report sweeping it: %+v", name, rec)
		}
		if _, err := os.Stat(filepath.Join(dir, archiveDirName, name)); err == nil {
			t.Fatalf("archive temp file %s is still there after the reopen", name)
		}
	}
	for _, name := range run.leftHot {
		switch {
		case strings.HasSuffix(name, ".TEMP"):
			if rec == nil || !slices.Contains(rec.SweptTempFiles, name) {
				t.Fatalf("hot temp file %s was left by the kill, the reopen does not report sweeping it: %+v", name, rec)
			}
		default: // a START (or END) marker: tidwall/wal's truncation was cut short
			if rec == nil || rec.CompletedTrunc == 0 {
				t.Fatalf("truncation marker %s was left by the kill, the reopen does not report completing the truncation: %+v", name, rec)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, hotDirName, name)); err == nil {
			t.Fatalf("hot file %s is still there after the reopen", name)
		}
	}

	// And the journal works on.
	batch := make([]Change, 50)
	for i := range batch {
		batch[i] = compactChange(2_000_000 + i)
	}
	rcs, err := j.RecordBatch(ctx, batch)
	if err != nil {
		t.Fatalf("write after the kill at %s: %v", step, err)
	}
	for _, rc := range rcs {
		acked[rc.EventID] = rc.Sequence
	}
	rep, err := j.Compact(ctx, CompactOptions{SealActive: true})
	if err != nil {
		t.Fatalf("full compaction after the kill at %s: %v", step, err)
	}
	if rep.HorizonAfter < h {
		t.Fatalf("the compaction after the kill moved the horizon back from %d to %d", h, rep.HorizonAfter)
	}
	h2, _ := checkPromised(t, "after a further compaction", j, acked)
	if err := j.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	validateClean(t, "validate after the further compaction", dir)
	return h2
}

func TestCompactionKilledAtEveryStepLeavesEveryPromisedRecordExactlyOnce(t *testing.T) {
	kills := []struct{ step, nth string }{
		{stepArchiveWritten.String(), "1"},
		{stepHotTruncated.String(), "1"},
		{stepHorizonWritten.String(), "1"},
		{stepArchiveRemoved.String(), "1"},
		{stepArchiveWritten.String(), "last"},
		{stepHotTruncated.String(), "last"},
		{"tmp", ""},
		{stepHotLogClosed.String(), "1"},
		{"start", ""},
		{"random", ""},
		{"random", ""},
	}
	for _, seal := range []bool{true, false} {
		name := "sealing the active segment"
		if !seal {
			name = "leaving the active segment"
		}
		t.Run(name, func(t *testing.T) {
			// The two variants run side by side (each its own directory
			// and children); within one, every kill lands in the same
			// directory, so the horizon's history spans them all.
			t.Parallel()
			dir := t.TempDir()
			acked := map[string]uint64{}
			var horizon uint64
			var tally compactTally
			hits, tries := map[string]int{}, map[string]int{}
			for _, k := range kills {
				if k.step == "start" && !seal {
					continue // whole segments are removed: no START file
				}
				attempts := 1
				if _, polled := polledSteps[k.step]; polled {
					attempts = 8 // the polled files live for about a millisecond per unit
				}
				for try := 0; try < attempts; try++ {
					label := k.step
					if k.nth != "" {
						label += "#" + k.nth
					}
					ok := t.Run(fmt.Sprintf("killed at %s", label), func(t *testing.T) {
						run := runCompactChild(t, dir, k.step, k.nth, seal)
						for id, s := range run.acked {
							acked[id] = s
						}
						next := checkAfterCompactKill(t, dir, k.step, run, acked, horizon, &tally)
						if next < horizon {
							t.Fatalf("horizon moved back from %d to %d", horizon, next)
						}
						horizon = next
						tries[k.step]++
						if run.hitPoint {
							hits[k.step]++
						}
					})
					if !ok {
						return
					}
					if hits[k.step] > 0 {
						break
					}
				}
			}
			for step := range polledSteps {
				if step == "start" && !seal {
					continue
				}
				if hits[step] == 0 {
					t.Errorf("no kill landed while the %q file existed in %d tries", step, tries[step])
				}
			}
			if horizon <= 1 {
				t.Errorf("retention never advanced the horizon (%d)", horizon)
			}
			t.Logf("%d acknowledged records; horizon %d; kills with an archive temp file %d/%d; reopens completed a compaction %d, removed archives below the horizon %d, swept temp files %d, completed a hot truncation %d, cut a torn tail %d",
				len(acked), horizon, hits["tmp"], tries["tmp"], tally.completedCompaction, tally.removedBelowHorizon, tally.sweptTemps, tally.completedTrunc, tally.hotCut)
		})
	}
}

// TestCompactionKilledInsideTheHotTruncationCompletesIt covers the steps
// inside tidwall/wal's TruncateFront, which a kill from outside rarely
// lands in: it writes the segment that will hold the new first record to
// a START file (through a TEMP file), removes the segments before it and
// renames START into place. A child is killed after the archive of the
// first hot segment is written; then, in copies of that directory, each
// intermediate state the truncation passes through is laid out with the
// same file operations, and the checks of a real kill apply.
func TestCompactionKilledInsideTheHotTruncationCompletesIt(t *testing.T) {
	base := t.TempDir()
	run := runCompactChild(t, base, stepArchiveWritten.String(), "1", false)
	segs := listMatching(filepath.Join(base, hotDirName), func(n string) bool { return len(n) == 20 })
	arcs := listMatching(filepath.Join(base, archiveDirName), func(n string) bool {
		_, _, ok := archive.ParseFileName(n)
		return ok
	})
	if len(segs) < 2 || len(arcs) != 1 {
		t.Fatalf("want an archive of the first of several hot segments, have hot %v archives %v", segs, arcs)
	}
	s1, s2 := segs[0], segs[1]
	// The archive must cover exactly s1: TruncateFront then cuts at s2.
	if first, last, _ := archive.ParseFileName(arcs[0]); first != mustSeq(t, s1) || last != mustSeq(t, s2)-1 {
		t.Fatalf("archive %s does not hold exactly hot segment %s (the next begins at %s)", arcs[0], s1, s2)
	}
	copyFile := func(t *testing.T, from, to string, n int) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 0 {
			b = b[:n]
		}
		if err := os.WriteFile(to, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		craft func(t *testing.T, hot string)
	}{
		{"a half-written START.TEMP is swept and the truncation redone", func(t *testing.T, hot string) {
			fi, _ := os.Stat(filepath.Join(hot, s2))
			copyFile(t, filepath.Join(hot, s2), filepath.Join(hot, s2+".START.TEMP"), int(fi.Size()/2))
		}},
		{"a START written before any removal replaces both segments", func(t *testing.T, hot string) {
			copyFile(t, filepath.Join(hot, s2), filepath.Join(hot, s2+".START"), -1)
		}},
		{"a START written after the first segment went is renamed into place", func(t *testing.T, hot string) {
			copyFile(t, filepath.Join(hot, s2), filepath.Join(hot, s2+".START"), -1)
			remove(t, filepath.Join(hot, s1))
		}},
		{"a START whose segments are both gone is renamed into place", func(t *testing.T, hot string) {
			copyFile(t, filepath.Join(hot, s2), filepath.Join(hot, s2+".START"), -1)
			remove(t, filepath.Join(hot, s1))
			remove(t, filepath.Join(hot, s2))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, base, dir)
			c.craft(t, filepath.Join(dir, hotDirName))
			r := compactRun{acked: maps.Clone(run.acked)}
			r.leftHot = listMatching(filepath.Join(dir, hotDirName), func(n string) bool {
				return strings.Contains(n, ".START") || strings.HasSuffix(n, ".TEMP")
			})
			var tally compactTally
			checkAfterCompactKill(t, dir, "truncation", r, r.acked, 0, &tally)
		})
	}
}

func mustSeq(t *testing.T, name string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		t.Fatalf("hot segment name %q: %v", name, err)
	}
	return n
}
