package main

// Black-box tests of the operator's input surface (issue 9, step 6): the
// streaming --stdin, exit codes and JSON errors of every command, the
// writer-lock wait and the one parser of times, durations and sizes.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// stdinLine is one output line of state-journal-record --stdin --json:
// a receipt or an error, each with its input line.
type stdinLine struct {
	Line     *int   `json:"line"`
	Sequence uint64 `json:"sequence"`
	EventID  string `json:"event_id"`
	Error    *struct {
		Code                 string `json:"code"`
		Message              string `json:"message"`
		NotRecordedFromLine  int    `json:"not_recorded_from_line"`
		OutcomeUnknownToLine int    `json:"outcome_unknown_to_line"`
	} `json:"error"`
}

// stdinLines decodes --stdin --json output, requiring every line to be
// one JSON object that carries its input line.
func stdinLines(t *testing.T, stdout string) []stdinLine {
	t.Helper()
	var out []stdinLine
	for i, ln := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if ln == "" {
			continue
		}
		var l stdinLine
		if err := json.Unmarshal([]byte(ln), &l); err != nil {
			t.Fatalf("output line %d is not one JSON object: %v\n%q", i+1, err, ln)
		}
		if l.Line == nil {
			t.Fatalf("output line %d carries no input line: %s", i+1, ln)
		}
		out = append(out, l)
	}
	return out
}

// bigHeartbeat is a heartbeat line of about n bytes (its metadata is
// trimmed to the bound when recorded).
func bigHeartbeat(id string, n int) string {
	return fmt.Sprintf(`{"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.work_session","aggregate_type":"work_session","aggregate_id":%q,"metadata":{"blob":%q}}`, id, strings.Repeat("y", n))
}

// A line over the old 4 MiB scanner cap but under the record bound is
// recorded; a line over the bound is skipped with an error naming it, and
// every line after it is still written.
func TestStdinALineOverTheBoundIsSkippedByLineNumberAndTheLinesAfterItAreWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	input := strings.Join([]string{
		heartbeat("ws-1"),
		bigHeartbeat("ws-huge", 9<<20), // over 8 MiB
		heartbeat("ws-3"),
		bigHeartbeat("ws-5mib", 5<<20), // over the old 4 MiB cap
		heartbeat("ws-5"),
	}, "\n") + "\n"
	r := jcIn(t, dir, input, "state-journal-record", "--stdin", "--json")
	if r.code != 1 {
		t.Fatalf("want exit 1 (one line not recorded), got %s", r)
	}
	lines := stdinLines(t, r.stdout)
	var got []string
	for _, l := range lines {
		if l.Error != nil {
			got = append(got, fmt.Sprintf("%d:%s", *l.Line, l.Error.Code))
		} else {
			got = append(got, fmt.Sprintf("%d:seq%d", *l.Line, l.Sequence))
		}
	}
	if want := []string{"1:seq1", "2:too_large", "3:seq2", "4:seq3", "5:seq4"}; !slices.Equal(got, want) {
		t.Fatalf("output by input line: got %v, want %v\n%s", got, want, r.stderr)
	}
	if !strings.Contains(lines[1].Error.Message, "8388608") {
		t.Errorf("the too-large error does not name the bound: %q", lines[1].Error.Message)
	}
	if strings.Contains(r.stdout+r.stderr, "token too long") {
		t.Errorf("the bufio.Scanner limit is still hit:\n%s", r)
	}
	if got := status(t, dir).LastSequence; got != 4 {
		t.Errorf("last_sequence %d, want 4", got)
	}

	// Without --json the error names the line on stderr, and a receipt
	// names its line too.
	r = jcIn(t, dir, heartbeat("ws-6")+"\n"+bigHeartbeat("ws-huge", 9<<20)+"\n"+heartbeat("ws-8")+"\n", "state-journal-record", "--stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2: the line is") || !strings.Contains(r.stdout, "line=1 sequence=5") || !strings.Contains(r.stdout, "line=3 sequence=6") {
		t.Fatalf("plain: want line 2 reported and lines 1 and 3 recorded, got %s", r)
	}
}

// Receipts and errors come back in input order, each with its 1-based
// input line (blank lines count), directly and through a server alike.
func TestStdinReceiptsAndErrorsComeInInputOrderWithTheirLineDirectAndThroughAServer(t *testing.T) {
	t.Parallel()
	input := strings.Join([]string{
		heartbeat("a-1"),
		"not json",
		heartbeat("a-3"),
		"",
		strings.Replace(heartbeat("a-5"), "runtime_work_session", "runtime_work_sesion", 1),
		heartbeat("a-6"),
		strings.Replace(heartbeat("a-7"), "runtime_work_session", "runtime_approvals", 1),
		heartbeat("a-8"),
	}, "\n") + "\n"
	want := []string{"1:ok", "2:invalid_change", "3:ok", "5:unknown_surface", "6:ok", "7:policy_violation", "8:ok"}
	check := func(t *testing.T, dir string) {
		r := jcIn(t, dir, input, "state-journal-record", "--stdin", "--json")
		if r.code != 1 {
			t.Fatalf("want exit 1, got %s", r)
		}
		var got []string
		for _, l := range stdinLines(t, r.stdout) {
			if l.Error != nil {
				got = append(got, fmt.Sprintf("%d:%s", *l.Line, l.Error.Code))
			} else {
				got = append(got, fmt.Sprintf("%d:ok", *l.Line))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("output by input line: got %v, want %v", got, want)
		}
	}
	t.Run("direct", func(t *testing.T) { check(t, t.TempDir()) })
	t.Run("through a server", func(t *testing.T) {
		dir := shortDir(t)
		srv := startServer(t, dir)
		check(t, dir)
		if code := srv.stop(t); code != 0 {
			t.Fatalf("server exited %d", code)
		}
		if got := status(t, dir).LastSequence; got != 4 {
			t.Fatalf("last_sequence %d after the server took 4 good lines, want 4", got)
		}
	})
}

// Through a server, a line just under the line bound is recorded too,
// whatever batch it shares with its neighbours: a batch the server finds
// too large is halved (nothing of a refused batch was written), never
// reported as a failure of the lines around it.
func TestStdinThroughAServerRecordsALineNearTheBoundAndItsNeighbours(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	startServer(t, dir)
	input := heartbeat("n-1") + "\n" + bigHeartbeat("n-2", (8<<20)-400) + "\n" + heartbeat("n-3") + "\n"
	r := jcIn(t, dir, input, "state-journal-record", "--stdin", "--json")
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	var got []int
	for _, l := range stdinLines(t, r.stdout) {
		if l.Error != nil {
			t.Fatalf("line %d refused: %+v", *l.Line, l.Error)
		}
		got = append(got, *l.Line)
	}
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("receipts for lines %v, want 1, 2, 3", got)
	}
}

// When the server dies mid-stream, the output stays one JSON object per
// line, and the last one names the first line not recorded: every line
// from it on, read or not, is not recorded.
func TestStdinThroughAServerThatDiesMidStreamEndsWithOneJSONLineNamingTheFirstLineNotRecorded(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := startServer(t, dir)
	cmd := exec.Command(binary, "--dir", dir, "state-journal-record", "--stdin", "--json")
	cmd.Env = cleanEnv()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testproc.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	var all []string
	for i := 1; i <= 3; i++ {
		fmt.Fprintln(stdin, heartbeat(fmt.Sprintf("before-%d", i)))
		ln, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("receipt of line %d: %v (stderr %s)", i, err, stderr.String())
		}
		all = append(all, ln)
	}
	srv.proc.Kill()
	for i := 4; i <= 6; i++ {
		fmt.Fprintln(stdin, heartbeat(fmt.Sprintf("after-%d", i)))
	}
	stdin.Close()
	rest, _ := io.ReadAll(out)
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after the server died, got %v\nstdout %s%s\nstderr %s", err, strings.Join(all, ""), rest, stderr.String())
	}
	lines := stdinLines(t, strings.Join(all, "")+string(rest))
	for i, l := range lines[:3] {
		if l.Error != nil || *l.Line != i+1 || l.Sequence != uint64(i+1) {
			t.Fatalf("line %d: want receipt %d, got %+v", i+1, i+1, l)
		}
	}
	last := lines[len(lines)-1]
	if last.Error == nil || *last.Line != 4 || last.Error.NotRecordedFromLine != 4 || !strings.Contains(last.Error.Message, "to the end of the input") {
		t.Fatalf("want a last error naming line 4 as the first not recorded, got %+v", lines[len(lines)-1])
	}
	if len(lines) != 4 {
		t.Fatalf("want 3 receipts and one error line, got %d lines", len(lines))
	}
}

// Ten writers without a server queue up for the writer lock instead of
// failing with "locked".
func TestConcurrentRecordersWithoutAServerWaitForTheLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "seed", 1) // the directory exists, so every writer opens it
	const n = 10
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
				"--aggregate-id", fmt.Sprintf("ws-%d", i), "--json")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("writer %d: want exit 0, got %s", i, r)
		}
	}
	l := list(t, dir, "-n", "0")
	checkGapless(t, l.Changes, n+1)
}

// A writer that cannot get the lock within --wait fails naming the
// holder; --wait 0 fails at once; once the holder is gone it writes.
func TestWaitBoundsHowLongAWriterWaitsAndTheErrorNamesTheHolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "seed", 1)
	// A --stdin writer holds the lock while its input stays open.
	holder := exec.Command(binary, "--dir", dir, "state-journal-record", "--stdin", "--json")
	holder.Env = cleanEnv()
	hin, _ := holder.StdinPipe()
	hout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	fmt.Fprintln(hin, heartbeat("held"))
	if _, err := bufio.NewReader(hout).ReadString('\n'); err != nil {
		t.Fatalf("the holder did not record: %v", err)
	}
	pid := fmt.Sprint(holder.Process.Pid)
	start := time.Now()
	r := jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--wait", "0", "--json")
	var e errorJSON
	decode(t, r, &e)
	if r.code != 1 || e.Error.Code != "locked" || !strings.Contains(e.Error.Message, "pid "+pid) || !strings.Contains(e.Error.Message, "state-journal-record") {
		t.Fatalf("--wait 0: want exit 1, code locked, naming pid %s, got %s", pid, r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("--wait 0 took %s; want it to fail at once", d)
	}
	start = time.Now()
	r = jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--wait", "400ms")
	if r.code != 1 || !strings.Contains(r.stderr, "pid "+pid) || !strings.Contains(r.stderr, "waited 400ms") {
		t.Fatalf("--wait 400ms: want exit 1 naming the holder and the wait, got %s", r)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("--wait 400ms gave up after %s", d)
	}
	// The holder finishes while a writer waits: the writer gets the lock.
	done := make(chan result, 1)
	go func() {
		done <- jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--wait", "20s")
	}()
	time.Sleep(200 * time.Millisecond)
	hin.Close()
	if err := holder.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	if r := <-done; r.code != 0 {
		t.Fatalf("a writer waiting for the lock: want exit 0 once the holder is gone, got %s", r)
	}
	if r := jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--wait", "soon"); r.code != 2 || !strings.Contains(r.stderr, "--wait") {
		t.Fatalf("--wait soon: want a usage error naming --wait, got %s", r)
	}
}

// The CLI reads times, durations and sizes with the parser the HTTP API
// uses: the words one takes, the other takes.
func TestCLITakesEveryDocumentedTimeDurationAndSizeForm(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 3)
	for _, args := range [][]string{
		{"state-journal", "--since", "2w"},
		{"state-journal", "--since", "2026-12-01"},
		{"state-journal", "--since", "2000-01-01", "--until", "now"},
		{"state-journal", "--since", "1h30m"},
		{"state-journal-compact", "--dry-run", "--max-bytes", "64M"},
		{"state-journal-compact", "--dry-run", "--max-bytes", "64mib"},
		{"state-journal-compact", "--dry-run", "--max-bytes", "1.5GiB"},
		{"state-journal-compact", "--dry-run", "--max-bytes", "64MB", "--max-age", "2w", "--coalesce", "30s"},
	} {
		if r := jc(t, dir, append(args, "--json")...); r.code != 0 {
			t.Errorf("%s: want exit 0, got %s", strings.Join(args, " "), r)
		}
	}
	// All three records are after 2000-01-01 and within the last 2 weeks.
	if l := list(t, dir, "--since", "2000-01-01", "-n", "0"); len(l.Changes) != 3 {
		t.Errorf("--since 2000-01-01: want 3 records, got %d", len(l.Changes))
	}
	r := jc(t, dir, "state-journal", "--since", "1h", "--until", "2h", "--json")
	var e errorJSON
	decode(t, r, &e)
	if r.code != 2 || e.Error.Code != "usage" || !strings.Contains(e.Error.Message, "--since") || !strings.Contains(e.Error.Message, "--until") {
		t.Fatalf("--since after --until: want a usage error naming both, got %s", r)
	}
	for _, args := range [][]string{
		{"state-journal", "--since", "yesterday"},
		{"state-journal-compact", "--dry-run", "--max-bytes", "lots"},
		{"state-journal-compact", "--dry-run", "--max-age", "forever"},
		{"state-journal-compact", "--dry-run", "--coalesce", "-1m"},
	} {
		r := jc(t, dir, args...)
		if r.code != 2 || !strings.Contains(r.stderr, args[len(args)-2]) || !strings.Contains(r.stderr, "e.g.") {
			t.Errorf("%s: want exit 2 naming the flag and examples, got %s", strings.Join(args, " "), r)
		}
	}
	// Booleans take the words the HTTP API takes, no others.
	if r := jc(t, dir, "state-journal", "--oldest-first=TRUE", "-n", "1"); r.code != 0 {
		t.Errorf("--oldest-first=TRUE: want exit 0, got %s", r)
	}
	if r := jc(t, dir, "state-journal", "--oldest-first=yes"); r.code != 2 || !strings.Contains(r.stderr, "allowed: true, false, 1, 0") {
		t.Errorf("--oldest-first=yes: want exit 2 listing the allowed words, got %s", r)
	}
}

// walkClass is one error class of the walk, or success.
type walkClass struct {
	name string
	want int // exit code
}

var walkClasses = []walkClass{{"json success", 0}, {"json usage", 2}, {"usage", 2}, {"refused", 1}, {"problems", 1}, {"failure", 1}}

// walkCase is how to provoke one class for one command.
type walkCase struct {
	dir  string
	args []string // after the command name
}

// Every command, bare and runtime-prefixed, answers each error class
// with its exit code (usage 2, refused/problems/failure 1), and under
// --json every outcome is JSON: a success is the command's JSON, every
// error one JSON object on one line with a stable code. The table it
// logs is the one in the issue note.
func TestEveryCommandExitCodesAndJSONErrors(t *testing.T) {
	t.Parallel()
	good := t.TempDir()
	seed(t, good, "ws", 3)
	missing := filepath.Join(t.TempDir(), "missing")
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	damaged := t.TempDir()
	seed(t, damaged, "ws", 20)
	flipMiddleByte(t, lastHotSegment(t, damaged))
	compacted := t.TempDir()
	for _, p := range []string{"a", "b", "c"} {
		seed(t, compacted, p, 5)
		mustOK(t, compacted, "state-journal-compact")
	}
	mustOK(t, compacted, "state-journal-compact", "--max-records", "5")
	if st := status(t, compacted); st.Horizon <= 2 {
		t.Fatalf("setup: horizon %d, want retention to have advanced it", st.Horizon)
	}
	hb := []string{"--surface", "runtime_work_session", "--change-type", "heartbeat"}
	rows := []struct {
		cmd   string
		cases map[string]walkCase
	}{
		{"state-surfaces", map[string]walkCase{
			"json success": {good, nil},
			"json usage":   {good, []string{"--bogus"}},
			"usage":        {good, []string{"--surfaces", filepath.Join(missing, "registry.yaml")}},
		}},
		{"state-journal", map[string]walkCase{
			"json success": {good, []string{"-n", "2"}},
			"json usage":   {good, []string{"--since", "yesterday"}},
			"usage":        {good, []string{"--surface", "runtime_work_sesion"}},
			"refused":      {compacted, []string{"--after", "1"}},
			"failure":      {missing, nil},
		}},
		{"state-journal-status", map[string]walkCase{
			"json success": {good, nil},
			"json usage":   {good, []string{"extra-argument"}},
			"usage":        {good, []string{"--bogus"}},
			"failure":      {missing, nil},
		}},
		{"state-journal-record", map[string]walkCase{
			"json success": {good, hb},
			"json usage":   {good, append(slices.Clone(hb), "--severity", "loud")},
			"usage":        {good, append(slices.Clone(hb), "--sync", "sometimes")},
			"refused":      {good, []string{"--surface", "runtime_action_timeline", "--change-type", "created"}},
			"failure":      {file, hb},
		}},
		{"state-journal-validate", map[string]walkCase{
			"json success": {good, nil},
			"json usage":   {good, []string{"--repair=maybe"}},
			"usage":        {good, []string{"--bogus"}},
			"problems":     {damaged, nil},
			"failure":      {missing, nil},
		}},
		{"state-journal-compact", map[string]walkCase{
			"json success": {good, []string{"--dry-run"}},
			"json usage":   {good, []string{"--dry-run", "--max-bytes", "lots"}},
			"usage":        {good, []string{"--max-age", "forever"}},
			"failure":      {missing, []string{"--dry-run"}},
		}},
		{"serve", map[string]walkCase{
			"json usage": {good, []string{"--sync", "sometimes"}},
			"usage":      {good, []string{"--bogus"}},
			"failure":    {file, []string{"--listen", "127.0.0.1:0", "--socket", "-"}},
		}},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-38s", "COMMAND")
	for _, c := range walkClasses {
		fmt.Fprintf(&table, " %-22s", strings.ToUpper(c.name))
	}
	table.WriteString("\n")
	for _, prefix := range [][]string{nil, {"runtime"}} {
		for _, row := range rows {
			name := strings.Join(append(slices.Clone(prefix), row.cmd), " ")
			fmt.Fprintf(&table, "%-38s", name)
			for _, class := range walkClasses {
				wc, ok := row.cases[class.name]
				if !ok {
					fmt.Fprintf(&table, " %-22s", "n/a")
					continue
				}
				cell := walkOne(t, name, class, wc, append(append(slices.Clone(prefix), row.cmd), wc.args...))
				fmt.Fprintf(&table, " %-22s", cell)
			}
			table.WriteString("\n")
		}
	}
	// Unknown and missing commands, bare and after runtime.
	for _, c := range []struct {
		label string
		args  []string
	}{
		{"state-jornal (no such command)", []string{"state-jornal"}},
		{"runtime state-jornal (no such command)", []string{"runtime", "state-jornal"}},
		{"(no command)", []string{}},
		{"runtime (no command)", []string{"runtime"}},
	} {
		jcell := walkOne(t, c.label, walkClass{"json usage", 2}, walkCase{good, nil}, c.args)
		cell := walkOne(t, c.label, walkClass{"usage", 2}, walkCase{good, nil}, c.args)
		fmt.Fprintf(&table, "%-38s %-22s %-22s %-22s\n", c.label, "n/a", jcell, cell)
	}
	t.Log(table.String())
}

// walkOne runs one case of the walk, plain and with --json, checks the
// exit code and the shape of the output, and returns the table cell.
func walkOne(t *testing.T, name string, class walkClass, wc walkCase, args []string) string {
	t.Helper()
	jsonArgs := append(slices.Clone(args), "--json")
	switch class.name {
	case "json success":
		r := jc(t, wc.dir, jsonArgs...)
		if r.code != 0 {
			t.Errorf("%s --json: want exit 0, got %s", name, r)
			return fmt.Sprintf("exit %d", r.code)
		}
		if !json.Valid([]byte(r.stdout)) && !json.Valid([]byte(strings.SplitN(r.stdout, "\n", 2)[0])) {
			t.Errorf("%s --json: output is not JSON:\n%s", name, r.stdout)
		}
		return "0 json"
	case "json usage":
		r := jc(t, wc.dir, jsonArgs...)
		code := checkJSONError(t, name+" "+strings.Join(wc.args, " ")+" --json", r, class.want)
		return fmt.Sprintf("%d %s", r.code, code)
	}
	// The plain run: exit code and a message on stderr; the --json run of
	// the same case: the same exit code and one JSON error object (or,
	// for validate's problems, its report).
	r := jc(t, wc.dir, args...)
	if r.code != class.want {
		t.Errorf("%s %s (%s): want exit %d, got %s", name, strings.Join(wc.args, " "), class.name, class.want, r)
	}
	if class.name != "problems" && !strings.Contains(r.stderr, "journalctl") {
		t.Errorf("%s %s (%s): no message on stderr:\n%s", name, strings.Join(wc.args, " "), class.name, r)
	}
	rj := jc(t, wc.dir, jsonArgs...)
	if class.name == "problems" {
		var v validation
		decode(t, rj, &v)
		if rj.code != class.want || v.Clean {
			t.Errorf("%s --json (problems): want exit %d with a report that is not clean, got %s", name, class.want, rj)
		}
		return fmt.Sprintf("%d report", r.code)
	}
	code := checkJSONError(t, name+" "+strings.Join(wc.args, " ")+" --json", rj, class.want)
	return fmt.Sprintf("%d %s", r.code, code)
}

// checkJSONError requires exit want and exactly one JSON error object on
// one line of stdout with a non-empty code, and returns the code.
func checkJSONError(t *testing.T, what string, r result, want int) string {
	t.Helper()
	if r.code != want {
		t.Errorf("%s: want exit %d, got %s", what, want, r)
	}
	out := strings.TrimRight(r.stdout, "\n")
	if strings.Contains(out, "\n") {
		t.Errorf("%s: the error is not one line of JSON:\n%s", what, r.stdout)
	}
	var e errorJSON
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%s: stdout is not one JSON error object with a code: %v\n%s", what, err, r)
		return "?"
	}
	if want == 2 && e.Error.Code == "internal" {
		t.Errorf("%s: a usage error has code internal", what)
	}
	return e.Error.Code
}
