package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/testproc"
)

// The fault tests put real limits on a writer: RLIMIT_FSIZE (the disk is
// "full" past a size), a read-only hot directory, and, where no real limit
// exists, a failing fsync through withSyncFault. Faults that must not
// leak into the test process (a lowered rlimit, a mount) run in a child:
// the test binary re-executed with faultChildEnv set, caught by the init
// below before TestMain runs.
const (
	faultChildEnv = "SJ_FAULT_CHILD" // diskfull | rofs-bind | rofs-tmpfs
	faultDirEnv   = "SJ_FAULT_DIR"
	faultFsizeEnv = "SJ_FAULT_FSIZE"
	faultMntNSEnv = "SJ_FAULT_PARENT_MNTNS" // the parent's mount namespace
)

// faultChildFailed is the exit status of a child that could not set its
// fault up (the mechanism is unavailable here, not a journal bug).
const faultChildFailed = 4

// faultAck is one acknowledged record.
type faultAck struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// faultReport is what a faulted writer saw; a child prints it as JSON.
type faultReport struct {
	OpenErr      string     `json:"open_err,omitempty"`
	Acked        []faultAck `json:"acked"`
	RecordErr    string     `json:"record_err,omitempty"`
	RecordFailed bool       `json:"record_failed"` // errors.Is(record error, ErrFailed)
	RecordErrno  int        `json:"record_errno"`  // the syscall.Errno errors.As finds in it, 0 when none
	AgainErr     string     `json:"again_err,omitempty"`
	AgainFailed  bool       `json:"again_failed"`
	BytesBefore  int64      `json:"bytes_before"` // hot/ bytes before the retry after the failure
	BytesAfter   int64      `json:"bytes_after"`  // and after it
	StatusFailed string     `json:"status_failed,omitempty"`
	ReadOnlyErr  string     `json:"read_only_err,omitempty"`
	ReadOnlyLast uint64     `json:"read_only_last"`
}

func faultChild(mode, dir string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
		return faultChildFailed
	}
	switch mode {
	case "diskfull":
		limit, err := strconv.ParseUint(os.Getenv(faultFsizeEnv), 10, 64)
		if err != nil {
			return fail("bad %s: %v", faultFsizeEnv, err)
		}
		// Without this the kernel kills the process at the limit instead
		// of failing the write with EFBIG.
		signal.Ignore(syscall.SIGXFSZ)
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil {
			return fail("getrlimit: %v", err)
		}
		rl.Cur = limit
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil {
			return fail("setrlimit RLIMIT_FSIZE: %v", err)
		}
	case "rofs-bind", "rofs-tmpfs":
		// The child runs in its own mount namespace (the parent sets
		// CLONE_NEWNS and Go makes "/" private), so the mount vanishes
		// with it and never reaches the test process.
		hot := filepath.Join(dir, hotDirName)
		if ns, _ := os.Readlink("/proc/self/ns/mnt"); ns == "" || ns == os.Getenv(faultMntNSEnv) {
			return fail("refusing to mount: not in a private mount namespace (%q)", ns)
		}
		if mode == "rofs-bind" {
			if err := syscall.Mount(hot, hot, "", syscall.MS_BIND, ""); err != nil {
				return fail("bind mount %s: %v", hot, err)
			}
			if err := syscall.Mount("", hot, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
				return fail("remount %s read-only: %v", hot, err)
			}
		} else if err := syscall.Mount("tmpfs", hot, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
			return fail("mount a read-only tmpfs on %s: %v", hot, err)
		}
	default:
		return fail("unknown fault mode %q", mode)
	}
	rep := faultWriteUntilFail(dir, 100000, 300)
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return fail("report: %v", err)
	}
	return 0
}

// faultWriteUntilFail opens dir for writing and records up to max
// changes (each padded with pad bytes of metadata) until one fails; then
// it tries once more and notes whether that touched the hot log. Last it
// opens dir read-only. Everything it sees goes into the report.
func faultWriteUntilFail(dir string, max, pad int) (rep faultReport) {
	ctx := context.Background()
	defer func() {
		ro, err := Open(dir, ReadOnly())
		if err != nil {
			rep.ReadOnlyErr = err.Error()
			return
		}
		rep.ReadOnlyLast = ro.Status().LastSequence
		ro.Close()
	}()
	j, err := Open(dir, WithSegmentSize(64<<10))
	if err != nil {
		rep.OpenErr = err.Error()
		return rep
	}
	defer j.Close()
	for i := 0; i < max; i++ {
		c := heartbeat("ws-fault")
		c.Metadata = map[string]any{"i": i, "pad": strings.Repeat("p", pad)}
		rc, err := j.Record(ctx, c)
		if err != nil {
			rep.RecordErr, rep.RecordFailed = err.Error(), errors.Is(err, ErrFailed)
			var errno syscall.Errno
			if errors.As(err, &errno) {
				rep.RecordErrno = int(errno)
			}
			break
		}
		rep.Acked = append(rep.Acked, faultAck{rc.Sequence, rc.EventID})
	}
	if rep.RecordErr == "" {
		return rep
	}
	rep.BytesBefore = faultHotBytes(dir)
	_, err = j.Record(ctx, heartbeat("ws-after-the-failure"))
	rep.BytesAfter = faultHotBytes(dir)
	if err != nil {
		rep.AgainErr, rep.AgainFailed = err.Error(), errors.Is(err, ErrFailed)
	}
	rep.StatusFailed = j.Status().Failed
	return rep
}

// faultHotBytes is the total size of the files in dir's hot log.
func faultHotBytes(dir string) int64 {
	ents, _ := os.ReadDir(filepath.Join(dir, hotDirName))
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}

// faultRunChild runs the fault child mode on dir and returns its report.
// An error means the fault could not be set up on this machine.
func faultRunChild(t *testing.T, mode, dir string, newMountNS bool, env ...string) (faultReport, error) {
	t.Helper()
	o := testproc.Options{Role: "fault", Env: append(env, faultChildEnv+"="+mode, faultDirEnv+"="+dir)}
	if newMountNS {
		o.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		ns, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			return faultReport{}, fmt.Errorf("read the mount namespace: %w", err)
		}
		o.Env = append(o.Env, faultMntNSEnv+"="+ns)
	}
	r, err := testproc.TryRun(t, o)
	switch {
	case err != nil:
		return faultReport{}, fmt.Errorf("start child: %w", err) // e.g. unshare refused
	case r.ExitCode == faultChildFailed:
		return faultReport{}, errors.New(strings.TrimSpace(r.Stderr))
	case r.ExitCode != 0:
		t.Fatalf("fault child %s: %s", mode, r)
	}
	var rep faultReport
	if err := json.Unmarshal(r.Stdout, &rep); err != nil {
		t.Fatalf("fault child %s report: %v\n%s", mode, err, r)
	}
	return rep, nil
}

// faultWriteAcked writes n records to a fresh journal in dir and returns
// them as checkJournal wants them.
func faultWriteAcked(t *testing.T, dir string, n int) map[string]uint64 {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]uint64{}
	for i := 0; i < n; i++ {
		rc, err := j.Record(context.Background(), heartbeat("ws-before"))
		if err != nil {
			t.Fatal(err)
		}
		acked[rc.EventID] = rc.Sequence
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return acked
}

// faultWritesWorkAgain records n more changes after a fault is gone and
// checks they survive a reopen after the records in acked.
func faultWritesWorkAgain(t *testing.T, dir string, acked map[string]uint64, n int) {
	t.Helper()
	last := checkJournal(t, dir, acked)
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		rc, err := j.Record(context.Background(), heartbeat("ws-after"))
		if err != nil {
			t.Fatalf("write after the fault was removed: %v", err)
		}
		if rc.Sequence != last+uint64(i)+1 {
			t.Fatalf("write after the fault got sequence %d, journal ended at %d", rc.Sequence, last)
		}
		acked[rc.EventID] = rc.Sequence
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	checkJournal(t, dir, acked)
}

func TestDiskFullFailsTheWriteStickilyAndLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	const limit = 16 << 10
	rep, err := faultRunChild(t, "diskfull", dir, false, fmt.Sprintf("%s=%d", faultFsizeEnv, limit))
	if err != nil {
		t.Skipf("RLIMIT_FSIZE cannot be set here: %v", err)
	}
	if rep.OpenErr != "" {
		t.Fatalf("open under a %d-byte file size limit: %s", limit, rep.OpenErr)
	}
	if len(rep.Acked) == 0 || rep.RecordErr == "" {
		t.Fatalf("%d records acknowledged, then error %q: the limit never bit", len(rep.Acked), rep.RecordErr)
	}
	if !rep.RecordFailed || !strings.Contains(rep.RecordErr, syscall.EFBIG.Error()) {
		t.Fatalf("the write past the limit failed with %q: want ErrFailed naming %q", rep.RecordErr, syscall.EFBIG.Error())
	}
	if rep.RecordErrno != int(syscall.EFBIG) {
		t.Fatalf("the write past the limit failed with %q, in which errors.As finds errno %d: want EFBIG (%d), wrapped with %%w all the way", rep.RecordErr, rep.RecordErrno, int(syscall.EFBIG))
	}
	if !rep.AgainFailed || rep.BytesAfter != rep.BytesBefore {
		t.Fatalf("the next Record after the failure: err %q (ErrFailed: %v), hot log %d -> %d bytes; want a sticky ErrFailed that writes nothing",
			rep.AgainErr, rep.AgainFailed, rep.BytesBefore, rep.BytesAfter)
	}
	if rep.StatusFailed == "" {
		t.Fatal("Status().Failed is empty after a failed write")
	}
	t.Logf("%d records acknowledged under a %d-byte limit; failure: %s", len(rep.Acked), limit, rep.RecordErr)

	// Before the writer reopens, validation finds at most the torn tail
	// the failed write left.
	vr, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range vr.Problems {
		if p.Kind != ProblemTornTail {
			t.Fatalf("validate after the failed write: %+v", vr.Problems)
		}
	}
	acked := map[string]uint64{}
	for _, a := range rep.Acked {
		acked[a.ID] = a.Seq
	}
	faultWritesWorkAgain(t, dir, acked, 5)
}

func TestReadOnlyHotDirectoryFailsNamingThePathAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	acked := faultWriteAcked(t, dir, 20)
	hot := filepath.Join(dir, hotDirName)
	mech, rep := faultReadOnly(t, dir)
	t.Logf("read-only fault: %s", mech)

	failure := rep.OpenErr
	if failure == "" {
		if rep.RecordErr == "" {
			t.Fatalf("with %s, Open and %d Records all succeeded", mech, len(rep.Acked))
		}
		if !rep.RecordFailed {
			t.Fatalf("Record on a read-only hot log failed with %q, want ErrFailed", rep.RecordErr)
		}
		failure = rep.RecordErr
	}
	if !strings.Contains(failure, hot) {
		t.Fatalf("the error does not name the hot log path %s: %s", hot, failure)
	}
	t.Logf("error: %s", failure)
	if rep.ReadOnlyErr != "" {
		t.Fatalf("a read-only open during the fault failed: %s", rep.ReadOnlyErr)
	}
	if !strings.HasPrefix(mech, "tmpfs") && rep.ReadOnlyLast < 20 {
		t.Fatalf("a read-only open during the fault sees up to sequence %d, want at least 20", rep.ReadOnlyLast)
	}
	for _, a := range rep.Acked {
		acked[a.ID] = a.Seq
	}
	faultWritesWorkAgain(t, dir, acked, 5)
}

// faultReadOnly makes dir's hot log read-only with the first mechanism
// that works here, runs faultWriteUntilFail against it, removes the fault
// and says which mechanism it used. Root ignores permission bits, so as
// root it tries, in order, a read-only bind mount and a read-only tmpfs
// in a private mount namespace and the immutable attribute.
func faultReadOnly(t *testing.T, dir string) (string, faultReport) {
	t.Helper()
	hot := filepath.Join(dir, hotDirName)
	if os.Geteuid() != 0 {
		if err := os.Chmod(hot, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(hot, 0o755) })
		rep := faultWriteUntilFail(dir, 2000, 300) // 64 KiB segments: a rotation needs a new file
		if err := os.Chmod(hot, 0o755); err != nil {
			t.Fatal(err)
		}
		return "chmod 0500 of hot/ (not root)", rep
	}
	var why []string
	rep, err := faultRunChild(t, "rofs-bind", dir, true)
	if err == nil {
		return "read-only bind mount of hot/ in a private mount namespace", rep
	}
	why = append(why, "bind mount: "+err.Error())

	if rep, err := faultChattr(t, dir); err == nil {
		return "chattr +i on hot/ and its segments", rep
	} else {
		why = append(why, "chattr: "+err.Error())
	}

	rep, err = faultRunChild(t, "rofs-tmpfs", dir, true)
	if err == nil {
		return "tmpfs mounted read-only over hot/ in a private mount namespace", rep
	}
	why = append(why, "tmpfs: "+err.Error())
	t.Skipf("running as root and no read-only mechanism works here: %s", strings.Join(why, "; "))
	return "", faultReport{}
}

// faultChattr sets the immutable attribute on hot/ and its files, which
// root cannot write through either, runs the writer, and clears it.
func faultChattr(t *testing.T, dir string) (faultReport, error) {
	hot := filepath.Join(dir, hotDirName)
	ents, err := os.ReadDir(hot)
	if err != nil {
		return faultReport{}, err
	}
	paths := []string{hot}
	for _, e := range ents {
		paths = append(paths, filepath.Join(hot, e.Name()))
	}
	if out, err := exec.Command("chattr", append([]string{"+i"}, paths...)...).CombinedOutput(); err != nil {
		exec.Command("chattr", append([]string{"-i"}, paths...)...).Run()
		return faultReport{}, fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	clearAttr := func() error {
		out, err := exec.Command("chattr", append([]string{"-i"}, paths...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr -i: %v: %s", err, out)
		}
		return nil
	}
	t.Cleanup(func() { clearAttr() })
	rep := faultWriteUntilFail(dir, 2000, 300)
	if err := clearAttr(); err != nil {
		t.Fatal(err)
	}
	return rep, nil
}

// faultGather returns the value of the single-series gauge or counter
// name in reg.
func faultGather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			}
		}
		return sum
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

func TestFailedFsyncIsStickyAndReopenRecovers(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	const failAt = 5 // the fifth fsync fails
	var fsyncs atomic.Int64
	injected := syscall.EIO
	fault := fsx.NewFaulty(fsx.OS,
		fsx.Fault{Op: fsx.OpSync, Path: hotDirName + "/", Before: func() { fsyncs.Add(1) }},
		fsx.Fault{Op: fsx.OpSync, Path: hotDirName + "/", Nth: failAt, Err: injected})
	j, err := Open(dir, withFS(fault), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	acked := map[string]uint64{}
	var failErr error
	for i := 0; i < 2*failAt && failErr == nil; i++ {
		rc, err := j.Record(ctx, heartbeat("ws-fsync"))
		if err != nil {
			failErr = err
			break
		}
		acked[rc.EventID] = rc.Sequence
	}
	if !errors.Is(failErr, ErrFailed) || !errors.Is(failErr, injected) {
		t.Fatalf("the Record whose fsync failed returned %v, want ErrFailed carrying the fsync error", failErr)
	}
	if len(acked) == 0 || int64(len(acked)) >= fsyncs.Load() {
		t.Fatalf("%d records acknowledged with %d fsyncs", len(acked), fsyncs.Load())
	}

	// Sticky: every later write fails the same way without touching the
	// hot log or calling fsync.
	before, calls := faultHotBytes(dir), fsyncs.Load()
	for i := 0; i < 3; i++ {
		if _, err := j.Record(ctx, heartbeat("ws-fsync")); !errors.Is(err, ErrFailed) {
			t.Fatalf("Record after a failed fsync: %v, want ErrFailed", err)
		}
	}
	if _, err := j.RecordBatch(ctx, []Change{heartbeat("ws-a"), heartbeat("ws-b")}); !errors.Is(err, ErrFailed) {
		t.Fatalf("RecordBatch after a failed fsync: %v, want ErrFailed", err)
	}
	if err := j.RecordAsync(heartbeat("ws-async")); !errors.Is(err, ErrFailed) {
		t.Fatalf("RecordAsync after a failed fsync: %v, want ErrFailed", err)
	}
	if after := faultHotBytes(dir); after != before || fsyncs.Load() != calls {
		t.Fatalf("writes after the failure touched the log: %d -> %d bytes, %d -> %d fsyncs", before, after, calls, fsyncs.Load())
	}
	st := j.Status()
	if st.Failed == "" || !strings.Contains(st.Failed, "fsync") {
		t.Fatalf("Status().Failed = %q, want the fsync failure", st.Failed)
	}
	if got := faultGather(t, reg, "state_journal_failed"); got != 1 {
		t.Fatalf("state_journal_failed = %v, want 1", got)
	}
	if got := faultGather(t, reg, "state_journal_write_failures_total"); got != 1 {
		t.Fatalf("state_journal_write_failures_total = %v, want 1", got)
	}
	if q, err := j.Query(ctx, Query{Limit: -1}); err != nil || len(q.Changes) != len(acked) {
		t.Fatalf("queries of the failed journal: %d changes (%v), want the %d acknowledged", len(q.Changes), err, len(acked))
	}
	if err := j.Close(); err != nil {
		t.Logf("close of the failed journal: %v", err)
	}

	// Reopen recovers: acknowledged records intact, validate clean, and
	// writes work again (and the metrics of a new journal say so).
	reg2 := prometheus.NewRegistry()
	j2, err := Open(dir, WithRegisterer(reg2))
	if err != nil {
		t.Fatalf("reopen after a failed fsync: %v", err)
	}
	if j2.Status().Failed != "" || faultGather(t, reg2, "state_journal_failed") != 0 {
		t.Fatalf("a reopened journal still reports the failure: %q", j2.Status().Failed)
	}
	j2.Close()
	faultWritesWorkAgain(t, dir, acked, 5)
}

func TestRecordAsyncUnderABurstDropsAndCountsButNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	// The first fsync parks the committer until the burst is over, so
	// the one-slot queue is certainly full while the burst runs.
	gate := make(chan struct{})
	parked := make(chan struct{})
	var first atomic.Bool
	hold := fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpSync, Path: hotDirName + "/", Before: func() {
		if first.CompareAndSwap(false, true) {
			close(parked)
			<-gate
		}
	}})
	var openGate sync.Once
	release := func() { openGate.Do(func() { close(gate) }) }
	t.Cleanup(release)
	j, err := Open(dir, WithAsyncQueue(1), withFS(hold), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	async := func(id string) Change {
		c := heartbeat("ws-async")
		c.EventID = id
		return c
	}
	if err := j.RecordAsync(async("async-first")); err != nil {
		t.Fatal(err)
	}
	<-parked

	const writers, per = 4, 250
	var mu sync.Mutex
	accepted := []string{"async-first"}
	dropped := 0
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				id := fmt.Sprintf("async-%d-%d", w, i)
				err := j.RecordAsync(async(id))
				mu.Lock()
				switch {
				case err == nil:
					accepted = append(accepted, id)
				case errors.Is(err, ErrQueueFull):
					dropped++
				default:
					t.Errorf("RecordAsync: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	burst := make(chan struct{})
	go func() { wg.Wait(); close(burst) }()
	// The committer stays parked until the gate opens below, so a
	// RecordAsync that blocked would never let the burst finish. The
	// timeout only turns such a hang into a message.
	select {
	case <-burst:
	case <-time.After(time.Minute):
		t.Fatal("RecordAsync blocked while the committer was busy")
	}
	st := j.Status()
	if dropped == 0 || st.AsyncDropped != uint64(dropped) {
		t.Fatalf("%d RecordAsync calls returned ErrQueueFull, Status().AsyncDropped = %d", dropped, st.AsyncDropped)
	}
	if got := faultGather(t, reg, "state_journal_async_dropped_total"); got != float64(dropped) {
		t.Fatalf("state_journal_async_dropped_total = %v, want %d", got, dropped)
	}
	if len(accepted)+dropped != writers*per+1 {
		t.Fatalf("%d accepted + %d dropped of %d", len(accepted), dropped, writers*per+1)
	}
	release()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("burst of %d: %d queued, %d dropped", writers*per, len(accepted)-1, dropped)

	j2 := openT(t, dir)
	res, err := j2.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, c := range res.Changes {
		stored = append(stored, c.EventID)
	}
	slices.Sort(stored)
	slices.Sort(accepted)
	if !slices.Equal(stored, accepted) {
		t.Fatalf("after Close the journal holds %v, want every accepted change %v", stored, accepted)
	}
}
