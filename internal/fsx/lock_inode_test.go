package fsx

import (
	"errors"
	"os"

	"path/filepath"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// TestARemovedOrReplacedLockFileIsALostLockAndKeepsTheDirectoryLocked
// removes, then replaces, LOCK under a held lock: Check reports the loss
// naming how, another process still cannot take the directory (the
// directory flock holds), the holder is never written into the new file
// and Release leaves it alone; after Release the other process gets in.
func TestARemovedOrReplacedLockFileIsALostLockAndKeepsTheDirectoryLocked(t *testing.T) {
	try := func(dir string) string {
		t.Helper()
		r := testproc.Run(t, testproc.Options{Role: "try-lock", Env: []string{"FSX_LOCK_DIR=" + dir}})
		if r.ExitCode != 0 {
			t.Fatalf("child: %s", r)
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, LockFileName)
	l, err := AcquireLock(dir, Holder{PID: os.Getpid(), Command: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("a held lock: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var lost *LockLostError
	if err := l.Check(); !errors.As(err, &lost) || !errors.Is(err, ErrLockLost) || lost.Reason != "removed" {
		t.Fatalf("after remove: %v", err)
	}
	// The second process creates a new LOCK and flocks it, but the
	// directory is still locked: refused, saying why.
	if out := try(dir); !strings.HasPrefix(out, "refused: ") || !strings.Contains(out, "LOCK file was removed or replaced") {
		t.Fatalf("second writer while the first holds the directory: %s", out)
	}
	if err := l.Check(); !errors.As(err, &lost) || lost.Reason != "replaced by another file" {
		t.Fatalf("after another LOCK appeared: %v", err)
	}
	if err := os.WriteFile(path, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.SetHolder(Holder{PID: os.Getpid()}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("SetHolder into a file the lock does not hold: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs\n" {
		t.Fatalf("Release changed the other LOCK file: %q", b)
	}
	if out := try(dir); out != "acquired" {
		t.Fatalf("after Release: %s", out)
	}
}
