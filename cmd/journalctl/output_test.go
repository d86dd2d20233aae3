package main

// Black-box tests of the output rules: tables fit the terminal, one time
// format, one duration format, -f prints the table's header and columns,
// and the small operator affordances (--version, completion, the serve
// banner and help).

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTablesFitTheTerminalWidth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "a-rather-long-aggregate-identifier-for-width", 3)
	for _, width := range []int{80, 100, 132} {
		for _, args := range [][]string{{"state-surfaces"}, {"state-journal"}, {"state-journal-status"}} {
			r := invocation{dir: dir, env: []string{"COLUMNS=" + itoa(width)}, args: args}.run(t)
			if r.code != 0 {
				t.Fatalf("%v: %s", args, r)
			}
			for i, ln := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
				if n := utf8.RuneCountInString(ln); n > width {
					t.Errorf("COLUMNS=%d %v line %d is %d wide:\n%s", width, args, i, n, ln)
				}
			}
		}
	}
	// Into a pipe without $COLUMNS nothing is cut: scripts get whole values.
	r := mustOK(t, dir, "state-surfaces")
	if strings.Contains(r.stdout, "…") || !strings.Contains(r.stdout, "runtime_lifecycle_transitions") {
		t.Errorf("state-surfaces into a pipe cut values:\n%s", r.stdout)
	}
}

func TestOneTimeFormatAndOneDurationFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	nine := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)
	r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
	var rc map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &rc); err != nil {
		t.Fatal(err)
	}
	if s, _ := rc["occurred_at"].(string); !nine.MatchString(s) {
		t.Errorf("receipt occurred_at %q is not RFC 3339 with nine fractional digits", s)
	}
	l := list(t, dir)
	if s, _ := l.Changes[0]["occurred_at"].(string); !nine.MatchString(s) || s != rc["occurred_at"] {
		t.Errorf("record occurred_at %q, receipt %q: want the same nine-digit form", s, rc["occurred_at"])
	}
	var st struct {
		Retention struct {
			MaxAge any `json:"max_age"`
		} `json:"retention"`
		DedupeWindow any `json:"dedupe_window"`
		Surfaces     []struct {
			LastAt string `json:"last_at"`
		} `json:"surfaces"`
	}
	decode(t, mustOK(t, dir, "state-journal-status", "--json"), &st)
	if st.Retention.MaxAge != "30d" || st.DedupeWindow != "1d" {
		t.Errorf("max_age %#v, dedupe_window %#v: want the strings \"30d\" and \"1d\"", st.Retention.MaxAge, st.DedupeWindow)
	}
	if !nine.MatchString(st.Surfaces[0].LastAt) {
		t.Errorf("status last_at %q is not nine-digit RFC 3339", st.Surfaces[0].LastAt)
	}
	human := mustOK(t, dir, "state-journal-status").stdout
	if !strings.Contains(human, "max age 30d") || strings.Contains(human, "720h") || !strings.Contains(human, "Dedupe window") {
		t.Errorf("human status does not say 30d:\n%s", human)
	}
	three := regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{3}Z`)
	if !three.MatchString(human) || regexp.MustCompile(`\.\d{4,}Z`).MatchString(human) {
		t.Errorf("human status times are not RFC 3339 with three fractional digits:\n%s", human)
	}
}

func TestFollowPrintsTheTablesHeaderAndColumns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 2)
	table := invocation{dir: dir, env: []string{"COLUMNS=200"}, args: []string{"state-journal", "--oldest-first"}}.run(t)
	cmd := exec.Command(binary, "--dir", dir, "state-journal", "-f")
	cmd.Env = cleanEnv("COLUMNS=200")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	for len(got) < 3 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("-f printed %q within 10s", got)
		}
	}
	want := strings.Split(strings.TrimRight(table.stdout, "\n"), "\n")
	for i := range got {
		if strings.Fields(got[i])[0] != strings.Fields(want[i])[0] || len(strings.Fields(got[i])) != len(strings.Fields(want[i])) {
			t.Errorf("-f line %d %q, the table's %q: want the same columns", i, got[i], want[i])
		}
	}
	if !strings.HasPrefix(got[0], "SEQ") || !strings.Contains(got[0], "EVENT ID") {
		t.Errorf("-f header %q", got[0])
	}
}

func TestVersionCompletionAndServeHelp(t *testing.T) {
	t.Parallel()
	r := jc(t, "", "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "journalctl ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("--version: %s", r)
	}
	complete := func(args ...string) []string {
		r := jc(t, "", append([]string{"__complete"}, args...)...)
		var out []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				out = append(out, strings.SplitN(l, "\t", 2)[0])
			}
		}
		return out
	}
	if got := complete("state-journal", "--surface", "runtime_work"); len(got) != 1 || got[0] != "runtime_work_session" {
		t.Errorf("--surface completion: %q", got)
	}
	if got := complete("state-journal", "--surface", "runtime_leases,runtime_ap"); len(got) != 1 || got[0] != "runtime_leases,runtime_approvals" {
		t.Errorf("--surface list completion: %q", got)
	}
	if got := complete("runtime", "state-journal-record", "--change-type", "heart"); len(got) != 1 || got[0] != "heartbeat" {
		t.Errorf("--change-type completion: %q", got)
	}
	if got := strings.Join(complete("state-journal", "-o", ""), " "); got != "table short json jsonl cloudevents" {
		t.Errorf("-o completion: %q", got)
	}
	help := mustOK(t, "", "serve", "--help").stdout
	for _, ep := range []string{"POST /v1/changes", "GET  /v1/changes", "/v1/surfaces", "/v1/status", "/v1/stale", "/v1/invalidations",
		"/v1/validate", "/v1/compact", "/metrics", "/healthz", "/readyz", "--token-file", "--metrics-open"} {
		if !strings.Contains(help, ep) {
			t.Errorf("serve --help does not mention %s", ep)
		}
	}
	if strings.Contains(help, "--token ") {
		t.Errorf("serve --help still offers --token")
	}
}

func TestServeBannerNamesOnlyTheTransportsItHas(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir, "--socket", "-")
	banner := srv.stderr.String()
	srv.stop(t)
	if strings.Contains(banner, "and  (") || strings.Contains(banner, "unix:") || !strings.Contains(banner, "listening on "+srv.addr+" (") {
		t.Errorf("banner with --socket -: %s", banner)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
