package fsx

import (
	"errors"
	"fmt"
	"os"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

func TestWriteFileAtomicReplacesWholeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, body := range []string{"first", "second, longer"} {
		if err := WriteFileAtomic(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != body {
			t.Fatalf("content %q, want %q", b, body)
		}
	}
	if _, err := os.Stat(p + TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
}

func TestSweepTempRemovesOnlyTempFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.tmp", "b.json", "c.json.tmp"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	removed, err := SweepTemp(dir)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.json")); err != nil {
		t.Fatal("a non-temp file was removed")
	}
}

func TestMkdirAllDurableRefusesAFileInTheWay(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	if err := MkdirAllDurable(filepath.Join(dir, "a", "b", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllDurable(f, 0o755); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file in the way: %v", err)
	}
}

// The child processes of the lock tests: the test binary re-executed in
// a role (internal/testproc).
func TestMain(m *testing.M) {
	testproc.Main(m, testproc.Roles{
		// locked-out expects the lock in FSX_LOCK_DIR to be held and prints
		// the error that says by whom.
		"locked-out": func() int {
			_, err := AcquireLock(os.Getenv("FSX_LOCK_DIR"), Holder{PID: os.Getpid(), Command: "child"})
			if !errors.Is(err, ErrLocked) {
				fmt.Println("unexpected: " + errString(err))
				return 3
			}
			fmt.Println(err.Error())
			return 0
		},
		// try-lock tries to take the lock in FSX_LOCK_DIR and says how it
		// went: "acquired" or "refused: ERROR".
		"try-lock": func() int {
			l, err := AcquireLock(os.Getenv("FSX_LOCK_DIR"), Holder{PID: os.Getpid(), Command: "second"})
			if err != nil {
				fmt.Println("refused: " + err.Error())
				return 0
			}
			l.Release()
			fmt.Println("acquired")
			return 0
		},
	})
}

// A second process (the test binary itself, re-executed) tries to take
// the lock the first one holds: it must fail naming the holder.
func TestASecondProcessGetsLockedNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir, Holder{PID: os.Getpid(), Command: "journalctl serve", Address: "127.0.0.1:7766", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	held, h := HeldBy(dir)
	if !held || h.Address != "127.0.0.1:7766" {
		t.Fatalf("HeldBy = %v %+v", held, h)
	}
	r := testproc.Run(t, testproc.Options{Role: "locked-out", Env: []string{"FSX_LOCK_DIR=" + dir}})
	if r.ExitCode != 0 {
		t.Fatalf("child: %s", r)
	}
	out := r.Stdout
	if !strings.Contains(string(out), "journalctl serve") || !strings.Contains(string(out), "127.0.0.1:7766") {
		t.Fatalf("the second writer's error does not name the holder: %s", out)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if held, _ := HeldBy(dir); held {
		t.Fatal("HeldBy still reports a holder after Release")
	}
	l2, err := AcquireLock(dir, Holder{PID: os.Getpid()})
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
