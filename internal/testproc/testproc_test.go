package testproc

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Main(m, Roles{
		// echo prints "ready", then echoes its input lines upper-cased until
		// "exit N", with which it exits N.
		"echo": func() int {
			fmt.Println("ready", os.Getenv("GREETING"))
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				var code int
				if _, err := fmt.Sscanf(sc.Text(), "exit %d", &code); err == nil {
					fmt.Fprintln(os.Stderr, "leaving with", code)
					return code
				}
				fmt.Println(strings.ToUpper(sc.Text()))
			}
			return 0
		},
		// count prints numbered lines forever.
		"count": func() int {
			for i := 0; ; i++ {
				fmt.Println(i)
			}
		},
	})
}

func TestARoleChildTalksOverItsPipesAndExitsWithItsStatus(t *testing.T) {
	p := Start(t, Options{Role: "echo", Env: []string{"GREETING=hello"}, Stdin: true})
	if line := p.MustNext(); line != "ready hello" {
		t.Fatalf("readiness line %q, want %q", line, "ready hello")
	}
	fmt.Fprintln(p.Stdin, "abc")
	if line := p.MustNext(); line != "ABC" {
		t.Fatalf("answer %q, want ABC", line)
	}
	fmt.Fprintln(p.Stdin, "exit 7")
	if code := p.ExitCode(); code != 7 || p.Killed() {
		t.Fatalf("exit code %d (killed %v), want 7", code, p.Killed())
	}
	if !strings.Contains(p.Stderr(), "leaving with 7") {
		t.Fatalf("stderr %q", p.Stderr())
	}
	if _, ok := p.Next(); ok {
		t.Fatal("Next after the end returned a line")
	}
}

func TestAKilledChildIsKilledAndEveryLineItPrintedIsKept(t *testing.T) {
	var seen atomic.Int64
	p := Start(t, Options{Role: "count", OnLine: func(string) { seen.Add(1) }})
	if _, ok := p.WaitFor(func(l string) bool { return l == "1000" }); !ok {
		t.Fatalf("the output ended before line 1000: %s", p.Stderr())
	}
	p.KillAfter(Between(time.Millisecond, 5*time.Millisecond))
	p.MustBeKilled("count")
	lines := p.Lines()
	if int64(len(lines)) != seen.Load() || len(lines) < 1001 {
		t.Fatalf("%d lines kept, OnLine saw %d, want the same and at least 1001", len(lines), seen.Load())
	}
	for i, l := range lines[:len(lines)-1] { // the last may be cut by the kill
		if l != fmt.Sprint(i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
}

func TestRunReturnsTheOutputOfABinary(t *testing.T) {
	r := Run(t, Options{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}})
	if string(r.Stdout) != "out\n" || strings.TrimSpace(r.Stderr) != "err" || r.ExitCode != 3 || r.Killed {
		t.Fatalf("result %s", r)
	}
}
