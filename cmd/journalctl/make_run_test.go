package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// `make run`, then SIGTERM to make: the server must stop with it, not
// keep serving re-parented (as it did under `go run`).
func TestMakeRunStopsTheServerWhenMakeIsTerminated(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := shortDir(t)
	mk := exec.Command("make", "-s", "-C", root, "run", "ARGS=--dir "+dir+" --listen 127.0.0.1:0")
	mk.Env = cleanEnv()
	stderr := &testproc.Buffer{}
	mk.Stdout, mk.Stderr = stderr, stderr
	if err := mk.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mk.Wait() }()
	var h lockHolder
	deadline := time.Now().Add(90 * time.Second) // make builds first
	for h.Address == "" {
		select {
		case err := <-done:
			t.Fatalf("make run exited (%v) before the server listened:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			mk.Process.Kill()
			t.Fatalf("the server of make run did not listen within 90s:\n%s", stderr.String())
		}
		if b, err := os.ReadFile(filepath.Join(dir, "LOCK")); err == nil {
			_ = json.Unmarshal(b, &h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(h.PID, syscall.SIGKILL) })
	if h.PID == mk.Process.Pid {
		t.Fatalf("the server is make itself?")
	}
	if err := mk.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("make did not exit within 30s of SIGTERM:\n%s", stderr.String())
	}
	// The server (pid from the lock file) is gone and its port closed.
	gone := time.Now().Add(10 * time.Second)
	for syscall.Kill(h.PID, 0) == nil || !errors.Is(syscall.Kill(h.PID, 0), syscall.ESRCH) {
		if time.Now().After(gone) {
			t.Fatalf("the server (pid %d) still runs after make exited:\n%s", h.PID, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", h.Address, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after make exited", h.Address)
	}
}
