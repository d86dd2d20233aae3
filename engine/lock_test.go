package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/internal/testproc"
)

// The lock tests run real writer processes: the test binary re-executed
// with lockChildEnv set (caught by the init below). The child opens the
// journal in lockDirEnv, retrying while it is locked, says "open", then
// obeys its standard input line by line:
//
//	w NAME  record one heartbeat with event_id NAME; print "ack SEQ NAME" or "err MESSAGE"
//	s       print "status lock_lost=BOOL"
//	q       close the journal and exit
const (
	lockChildEnv = "SJ_LOCK_CHILD"
	lockDirEnv   = "SJ_LOCK_DIR"
)

func lockChild(dir string) int {
	var j *Journal
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		j, err = Open(dir)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			fmt.Println("err", err)
			return 3
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("open")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "w":
			c := heartbeat("ws-" + arg)
			c.EventID = arg
			rc, err := j.Record(context.Background(), c)
			if err != nil {
				fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
				continue
			}
			fmt.Println("ack", rc.Sequence, arg)
		case "s":
			fmt.Printf("status lock_lost=%t\n", j.Status().LockLost)
		case "q":
			j.Close()
			return 0
		}
	}
	return 0
}

type lockWriter struct {
	t    *testing.T
	p    *testproc.Proc
	in   io.WriteCloser
	name string
}

func startLockWriter(t *testing.T, dir, name string) *lockWriter {
	t.Helper()
	p := testproc.Start(t, testproc.Options{Role: "lock-writer", Env: []string{lockDirEnv + "=" + dir}, Stdin: true, Stderr: os.Stderr})
	w := &lockWriter{t: t, p: p, in: p.Stdin, name: name}
	if line := w.line(); line != "open" {
		t.Fatalf("writer %s: %s", name, line)
	}
	return w
}

func (w *lockWriter) line() string {
	w.t.Helper()
	line, ok := w.p.Next()
	if !ok {
		w.t.Fatalf("writer %s ended: %s", w.name, w.p.Stderr())
	}
	return line
}

// write asks for one record and returns its sequence, or the error text.
func (w *lockWriter) write(id string) (uint64, string) {
	w.t.Helper()
	fmt.Fprintf(w.in, "w %s\n", id)
	line := w.line()
	if rest, ok := strings.CutPrefix(line, "ack "); ok {
		seq, _, _ := strings.Cut(rest, " ")
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			w.t.Fatalf("writer %s: %q", w.name, line)
		}
		return n, ""
	}
	return 0, line
}

func (w *lockWriter) quit() {
	fmt.Fprintln(w.in, "q")
	w.in.Close()
	w.p.Wait()
}

// TestDeletedLockStopsTheFirstWriterBeforeASecondWrites deletes LOCK under
// a running writer and starts a second writer process: the first refuses
// every further write (lock lost, in its status too), the second gets in
// only once the first has stopped, and every acknowledged record of both
// is readable under its sequence; validate is clean.
func TestDeletedLockStopsTheFirstWriterBeforeASecondWrites(t *testing.T) {
	dir := t.TempDir()
	a := startLockWriter(t, dir, "A")
	acked := map[uint64]string{}
	for i := range 5 {
		id := fmt.Sprintf("a-%d", i)
		seq, errText := a.write(id)
		if errText != "" {
			t.Fatalf("A before the delete: %s", errText)
		}
		acked[seq] = id
	}
	if err := os.Remove(filepath.Join(dir, fsx.LockFileName)); err != nil {
		t.Fatal(err)
	}
	b := startLockWriter(t, dir, "B")
	for i := range 5 {
		id := fmt.Sprintf("b-%d", i)
		seq, errText := b.write(id)
		if errText != "" {
			t.Fatalf("B: %s", errText)
		}
		if prev, ok := acked[seq]; ok {
			t.Fatalf("B's %s got sequence %d, already acknowledged to %s", id, seq, prev)
		}
		acked[seq] = id
	}
	for i := range 3 {
		id := fmt.Sprintf("a-late-%d", i)
		seq, errText := a.write(id)
		if errText == "" {
			t.Fatalf("A still wrote %s as sequence %d after its LOCK was deleted and B took the directory", id, seq)
		}
		if !strings.Contains(errText, "lock file LOCK was removed or replaced") {
			t.Fatalf("A's refusal does not say why: %s", errText)
		}
	}
	fmt.Fprintln(a.in, "s")
	if st := a.line(); st != "status lock_lost=true" {
		t.Fatalf("A's status: %s", st)
	}
	for i := 5; i < 8; i++ {
		id := fmt.Sprintf("b-%d", i)
		seq, errText := b.write(id)
		if errText != "" {
			t.Fatalf("B: %s", errText)
		}
		acked[seq] = id
	}
	a.quit()
	b.quit()

	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil || !rep.Clean {
		t.Fatalf("validate: %v %+v", err, rep.Problems)
	}
	j := openT(t, dir, ReadOnly())
	res, err := j.Query(context.Background(), Query{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	for _, c := range res.Changes {
		got[c.Sequence] = c.EventID
	}
	for seq, id := range acked {
		if got[seq] != id {
			t.Errorf("acknowledged sequence %d (%s) reads as %q", seq, id, got[seq])
		}
	}
	if len(res.Changes) != len(acked) {
		t.Errorf("%d records on disk, %d acknowledged", len(res.Changes), len(acked))
	}
}

// TestReplacedLockFileIsNotTakenOverOrCleared replaces LOCK by another
// file while a writer runs: the writer's Check reports the loss, it never
// writes its holder into the new file, and its Release leaves the new
// file alone.
func TestReplacedLockFileIsNotTakenOverOrCleared(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	j := openT(t, dir, WithRegisterer(reg))
	if v := faultGather(t, reg, "state_journal_lock_lost"); v != 0 {
		t.Fatalf("state_journal_lock_lost %v before", v)
	}
	path := filepath.Join(dir, fsx.LockFileName)
	tmp := path + ".other"
	if err := os.WriteFile(tmp, []byte("someone else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	_, err := j.Record(context.Background(), heartbeat("ws-1"))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, fsx.ErrLockLost) {
		t.Fatalf("record after LOCK was replaced: %v", err)
	}
	if err := j.SetHolderAddress("127.0.0.1:1", ""); err == nil {
		t.Fatal("SetHolderAddress wrote into a lock file it does not hold")
	}
	if v := faultGather(t, reg, "state_journal_lock_lost"); v != 1 {
		t.Fatalf("state_journal_lock_lost %v after the loss", v)
	}
	if st := j.Status(); !st.LockLost || !strings.Contains(st.Failed, "lock file LOCK was removed or replaced") {
		t.Fatalf("status after the loss: lock_lost %t, failed %q", st.LockLost, st.Failed)
	}
	j.Close()
	if b, _ := os.ReadFile(path); string(b) != "someone else\n" {
		t.Fatalf("the replacing LOCK file was changed: %q", b)
	}
}
