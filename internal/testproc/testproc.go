package testproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RoleEnv is the environment variable that names the role a re-executed
// test binary runs.
const RoleEnv = "SJ_TESTPROC_ROLE"

// Roles maps a role's name to the function a child runs in it; the
// function's result is the child's exit status.
type Roles map[string]func() int

// Main runs the role named in the environment and exits with its status
// when this process is a child started with Options.Role; otherwise it
// runs the tests. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testproc.Main(m, testproc.Roles{"writer": writerChild}) }
//
// setup, when not nil, runs before the tests (not in a child).
func Main(m *testing.M, roles Roles, setup ...func()) {
	if name := os.Getenv(RoleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "testproc: unknown role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	for _, f := range setup {
		f()
	}
	os.Exit(m.Run())
}

// Options describe a child.
type Options struct {
	// Role re-executes the test binary in this role (see Main). Exactly
	// one of Role and Path is set.
	Role string
	// Path runs this binary instead.
	Path string
	// Args are the child's arguments (after -test.run=^$ for a role).
	Args []string
	// Env is added to the environment: KEY=VALUE entries.
	Env []string
	// BaseEnv is the environment Env is added to; nil means os.Environ().
	BaseEnv []string
	// Stdin gives the child a pipe on its standard input (Proc.Stdin).
	Stdin bool
	// OnLine, when set, is called with every line of the child's standard
	// output as it arrives, from the reading goroutine, before Next or
	// WaitFor see it.
	OnLine func(line string)
	// Stderr, when set, also receives the child's standard error (which
	// Proc.Stderr keeps either way).
	Stderr io.Writer
	// SysProcAttr is passed to the child (e.g. CLONE_NEWNS for a private
	// mount namespace).
	SysProcAttr *syscall.SysProcAttr
}

// Proc is a running (or finished) child.
type Proc struct {
	t   testing.TB
	cmd *exec.Cmd
	// Stdin is the child's standard input when Options.Stdin was set.
	Stdin io.WriteCloser

	stderr Buffer

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string // guarded by mu: every stdout line so far
	next  int      // guarded by mu: the next line Next returns
	eof   bool     // guarded by mu: stdout is closed

	done    chan struct{} // closed once the child is reaped
	waitErr error         // valid once done is closed
}

// Start starts a child, or fails t. The child is killed and reaped when
// the test ends, if it is still running.
func Start(t testing.TB, o Options) *Proc {
	t.Helper()
	p, err := start(t, o)
	if err != nil {
		t.Fatalf("start child %s: %v", o.name(), err)
	}
	return p
}

// TryStart is Start for a child that may legitimately fail to start (a
// mount namespace the kernel refuses): it returns the error instead of
// failing t.
func TryStart(t testing.TB, o Options) (*Proc, error) {
	t.Helper()
	return start(t, o)
}

func (o Options) name() string {
	if o.Role != "" {
		return "role " + o.Role
	}
	return o.Path
}

func start(t testing.TB, o Options) (*Proc, error) {
	var cmd *exec.Cmd
	switch {
	case o.Role != "" && o.Path == "":
		cmd = exec.Command(os.Args[0], append([]string{"-test.run=^$"}, o.Args...)...)
	case o.Path != "" && o.Role == "":
		cmd = exec.Command(o.Path, o.Args...)
	default:
		return nil, errors.New("testproc: set exactly one of Role and Path")
	}
	env := o.BaseEnv
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)], o.Env...)
	if o.Role != "" {
		env = append(env, RoleEnv+"="+o.Role)
	}
	cmd.Env = env
	cmd.SysProcAttr = o.SysProcAttr
	p := &Proc{t: t, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&p.stderr, o.Stderr)
	} else {
		cmd.Stderr = &p.stderr
	}
	if o.Stdin {
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.Stdin = in
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			if o.OnLine != nil {
				o.OnLine(line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		io.Copy(io.Discard, out)
		p.mu.Lock()
		p.eof = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	go func() {
		<-read // Wait closes the pipe: read everything first
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Stdin != nil {
			p.Stdin.Close()
		}
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Next returns the next line of the child's standard output, blocking
// until it comes; ok is false once the output ended without one.
func (p *Proc) Next() (line string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.next >= len(p.lines) && !p.eof {
		p.cond.Wait()
	}
	if p.next >= len(p.lines) {
		return "", false
	}
	p.next++
	return p.lines[p.next-1], true
}

// MustNext is Next that fails the test, with the child's standard error,
// when the output ended.
func (p *Proc) MustNext() string {
	p.t.Helper()
	line, ok := p.Next()
	if !ok {
		p.t.Fatalf("child %d ended its output (%s):\n%s", p.Pid(), p.exitText(), p.Stderr())
	}
	return line
}

// WaitFor reads lines until one satisfies match and returns it; ok is
// false when the output ended first.
func (p *Proc) WaitFor(match func(line string) bool) (line string, ok bool) {
	for {
		line, ok := p.Next()
		if !ok || match(line) {
			return line, ok
		}
	}
}

// Lines returns every line of standard output read so far (all of them
// once Done is closed).
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Stderr returns the child's standard error so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Done is closed once the child has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns what exec.Cmd.Wait
// returned.
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// Signal sends sig to the child (SIGTERM for a graceful stop).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (a child already gone is not an error) and waits
// for the child to be reaped.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// KillAfter waits d (returning early if the child exits first), then
// kills the child as Kill does.
func (p *Proc) KillAfter(d time.Duration) {
	select {
	case <-time.After(d):
	case <-p.done:
	}
	p.Kill()
}

// Between returns a random duration in [lo, hi), for a kill at a random
// moment.
func Between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// Killed reports whether the child, which must have exited, died of
// SIGKILL.
func (p *Proc) Killed() bool {
	<-p.done
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// ExitCode returns the child's exit status once it exited (-1 when a
// signal ended it).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// MustBeKilled fails the test unless the child died of SIGKILL, showing
// how it ended and its standard error.
func (p *Proc) MustBeKilled(what string) {
	p.t.Helper()
	if !p.Killed() {
		p.t.Fatalf("%s: the child was not killed (%s)\nstderr:\n%s", what, p.exitText(), p.Stderr())
	}
}

func (p *Proc) exitText() string {
	select {
	case <-p.done:
	default:
		return "still running"
	}
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exit status 0"
}

// Result is what Run returns.
type Result struct {
	Stdout   []byte
	Stderr   string
	ExitCode int  // -1 when a signal ended it
	Killed   bool // SIGKILL ended it
}

// Run runs a child to its end and returns its output; a child that
// cannot start fails t.
func Run(t testing.TB, o Options) Result {
	t.Helper()
	p := Start(t, o)
	return p.result()
}

// TryRun is Run for a child that may legitimately fail to start.
func TryRun(t testing.TB, o Options) (Result, error) {
	t.Helper()
	p, err := TryStart(t, o)
	if err != nil {
		return Result{}, err
	}
	return p.result(), nil
}

func (p *Proc) result() Result {
	<-p.done
	var out bytes.Buffer
	for _, l := range p.Lines() {
		out.WriteString(l)
		out.WriteByte('\n')
	}
	return Result{Stdout: out.Bytes(), Stderr: p.Stderr(), ExitCode: p.cmd.ProcessState.ExitCode(), Killed: p.Killed()}
}

// String describes a result for a failure message.
func (r Result) String() string {
	return fmt.Sprintf("exit %d (killed %t)\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Killed, strings.TrimSpace(string(r.Stdout)), strings.TrimSpace(r.Stderr))
}

// Buffer is a bytes.Buffer safe to read while a child process, or a
// logger's goroutines, write it: a child's standard error, a test's log
// handler.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
