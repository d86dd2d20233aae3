package main

import (
	"strings"
	"testing"
)

// The errors that list the commands (an unknown one, none given) name
// every command the binary has, state-coverage included: the list is
// read from the commands, not kept by hand beside them.
func TestCommandErrorsListEveryCommand(t *testing.T) {
	t.Parallel()
	root, _ := newRootCmd()
	var want []string
	for _, c := range root.Commands() {
		if n := c.Name(); n != "help" && n != "completion" && n != "runtime" {
			want = append(want, n)
		}
	}
	if len(want) < 8 {
		t.Fatalf("found only %d commands: %v", len(want), want)
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"bogus"}, {"runtime", "bogus"}, {}, {"runtime"}} {
		r := jc(t, dir, args...)
		if r.code != exitUsage {
			t.Errorf("journalctl %s: want exit %d, got %s", strings.Join(args, " "), exitUsage, r)
		}
		last := r.stderr[strings.LastIndex(strings.TrimRight(r.stderr, "\n"), "\n")+1:]
		for _, name := range want {
			if !strings.Contains(last, " "+name+",") && !strings.Contains(last, " "+name+" ") && !strings.HasSuffix(strings.TrimSpace(last), " "+name) {
				t.Errorf("journalctl %s: the error does not list %s: %q", strings.Join(args, " "), name, last)
			}
		}
	}
}

// A state-journal filter the journal refuses is a bad flag value, with
// and without -f alike: exit 2, the flag named, and the code GET
// /v1/changes gives the same filter.
func TestABadStateJournalFilterIsAUsageErrorNamingTheFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	for _, c := range []struct {
		args       []string
		flag, code string
	}{
		{[]string{"--min-severity", "loud"}, "--min-severity", "invalid_query"},
		{[]string{"--change-type", "bogus"}, "--change-type", "invalid_query"},
		{[]string{"--aggregate-type", "work_session"}, "--aggregate-type", "invalid_query"},
		{[]string{"--surface", "runtime_work_sesion"}, "--surface", "unknown_surface"},
	} {
		for _, follow := range []bool{false, true} {
			args := append([]string{"state-journal", "--json"}, c.args...)
			if follow {
				args = append(args, "-f")
			}
			r := jc(t, dir, args...)
			var out struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if r.code != exitUsage {
				t.Errorf("journalctl %s: want exit %d, got %s", strings.Join(args, " "), exitUsage, r)
				continue
			}
			decode(t, r, &out)
			if out.Error.Code != c.code || !strings.HasPrefix(out.Error.Message, c.flag) {
				t.Errorf("journalctl %s: code %q, message %q; want code %q and the message to start with %s",
					strings.Join(args, " "), out.Error.Code, out.Error.Message, c.code, c.flag)
			}
		}
	}
}
