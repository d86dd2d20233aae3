package main

// Black-box tests of the journalctl binary: TestMain builds it once and
// every test runs it as a real process against its own data directory,
// checking exit codes, standard output and standard error. Nothing here
// calls the command's Go code directly.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// binary is the journalctl executable TestMain built.
var binary string

func TestMain(m *testing.M) {
	// The runtime modules of the coverage test run as roles of this
	// binary; every other child is the built journalctl.
	roles := testproc.Roles{}
	for _, r := range coverageRoles {
		roles[r] = func() int { return coverageChild(r) }
	}
	if os.Getenv(testproc.RoleEnv) != "" {
		testproc.Main(m, roles)
	}
	tmp, err := os.MkdirTemp("", "journalctl-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build directory:", err)
		os.Exit(1)
	}
	binary = filepath.Join(tmp, "journalctl")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build journalctl:", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// result is what one run of the binary produced.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// cleanEnv is the test process's environment without the journal's own
// variables, so a developer's STATE_JOURNAL_DIR never leaks into a test.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATE_JOURNAL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// invocation describes one run of the binary.
type invocation struct {
	dir   string   // passed as --dir when not empty
	stdin string   // standard input
	env   []string // extra KEY=VALUE pairs
	args  []string
}

func (in invocation) run(t testing.TB) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := in.args
	if in.dir != "" {
		args = append([]string{"--dir", in.dir}, args...)
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv(in.env...)
	cmd.Stdin = strings.NewReader(in.stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("journalctl %s: %v\n%s", strings.Join(args, " "), err, r)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// jc runs journalctl --dir dir args... with empty standard input.
func jc(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return invocation{dir: dir, args: args}.run(t)
}

// jcIn runs journalctl --dir dir args... with stdin as standard input.
func jcIn(t testing.TB, dir, stdin string, args ...string) result {
	t.Helper()
	return invocation{dir: dir, stdin: stdin, args: args}.run(t)
}

// mustOK runs journalctl and fails the test unless it exits 0.
func mustOK(t testing.TB, dir string, args ...string) result {
	t.Helper()
	r := jc(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("journalctl %s: want exit 0, got %s", strings.Join(args, " "), r)
	}
	return r
}

// decode unmarshals a command's JSON output, failing the test with the
// output when it is not JSON.
func decode(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, r)
	}
}

// receipt is the JSON receipt state-journal-record prints per record.
type receipt struct {
	Sequence        uint64 `json:"sequence"`
	EventID         string `json:"event_id"`
	OccurredAt      string `json:"occurred_at"`
	Surface         string `json:"surface"`
	Durable         bool   `json:"durable"`
	Duplicate       bool   `json:"duplicate"`
	Redactions      int    `json:"redactions"`
	MetadataTrimmed bool   `json:"metadata_trimmed"`
}

// receiptLines decodes NDJSON receipts, requiring every receipt field.
func receiptLines(t testing.TB, r result) []receipt {
	t.Helper()
	var out []receipt
	for i, line := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("receipt line %d is not JSON: %v\n%s", i+1, err, r)
		}
		for _, k := range []string{"sequence", "event_id", "redactions", "durable"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("receipt line %d has no %q: %s", i+1, k, line)
			}
		}
		var rc receipt
		if err := json.Unmarshal([]byte(line), &rc); err != nil {
			t.Fatalf("receipt line %d: %v", i+1, err)
		}
		out = append(out, rc)
	}
	return out
}

// listing is the JSON answer of state-journal --json.
type listing struct {
	Changes []map[string]any `json:"changes"`
	Head    uint64           `json:"head"`
	Horizon uint64           `json:"horizon"`
	More    bool             `json:"more"`
}

// list runs state-journal --json with args and decodes the answer.
func list(t *testing.T, dir string, args ...string) listing {
	t.Helper()
	r := mustOK(t, dir, append([]string{"state-journal", "--json"}, args...)...)
	var raw map[string]json.RawMessage
	decode(t, r, &raw)
	for _, k := range []string{"changes", "head", "horizon", "more"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("state-journal --json has no %q key:\n%s", k, r.stdout)
		}
	}
	var l listing
	decode(t, r, &l)
	return l
}

// seqOf returns a listed record's sequence.
func seqOf(t *testing.T, c map[string]any) uint64 {
	t.Helper()
	f, ok := c["sequence"].(float64)
	if !ok {
		t.Fatalf("record has no numeric sequence: %v", c)
	}
	return uint64(f)
}

func seqsOf(t *testing.T, cs []map[string]any) []uint64 {
	t.Helper()
	out := []uint64{}
	for _, c := range cs {
		out = append(out, seqOf(t, c))
	}
	return out
}

// statusView is the part of state-journal-status --json the tests read.
type statusView struct {
	Dir            string `json:"dir"`
	FirstSequence  uint64 `json:"first_sequence"`
	LastSequence   uint64 `json:"last_sequence"`
	Records        uint64 `json:"records"`
	HotRecords     uint64 `json:"hot_records"`
	ArchiveRecords uint64 `json:"archive_records"`
	Horizon        uint64 `json:"horizon"`
	Writer         *struct {
		PID     int    `json:"pid"`
		Address string `json:"address"`
		Socket  string `json:"socket"`
		Command string `json:"command"`
	} `json:"writer"`
	LastRecovery *struct {
		Cuts []struct {
			Segment    string `json:"segment"`
			Cause      string `json:"cause"`
			Bytes      int64  `json:"bytes"`
			Quarantine string `json:"quarantine"`
		} `json:"cuts"`
	} `json:"last_recovery"`
}

func status(t *testing.T, dir string) statusView {
	t.Helper()
	var st statusView
	decode(t, mustOK(t, dir, "state-journal-status", "--json"), &st)
	return st
}

// heartbeat is one NDJSON input line for runtime_work_session.
func heartbeat(aggregateID string) string {
	return fmt.Sprintf(`{"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.work_session","aggregate_type":"work_session","aggregate_id":%q}`, aggregateID)
}

// heartbeats returns n NDJSON lines with aggregate ids prefix-1..prefix-n.
func heartbeats(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(heartbeat(fmt.Sprintf("%s-%d", prefix, i)))
		b.WriteByte('\n')
	}
	return b.String()
}

// seed records n heartbeats through --stdin and returns their receipts.
func seed(t testing.TB, dir, prefix string, n int) []receipt {
	t.Helper()
	r := jcIn(t, dir, heartbeats(prefix, n), "state-journal-record", "--stdin", "--json")
	if r.code != 0 {
		t.Fatalf("seed %d records: %s", n, r)
	}
	rcs := receiptLines(t, r)
	if len(rcs) != n {
		t.Fatalf("seed: want %d receipts, got %d\n%s", n, len(rcs), r)
	}
	return rcs
}

// hotFiles returns the bytes of every file under dir/hot.
func hotFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	return filesUnder(t, filepath.Join(dir, "hot"))
}

// filesUnder returns the bytes of every regular file under root, by
// relative path; a missing root is an empty map.
func filesUnder(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", root, err)
	}
	return out
}

// lastHotSegment returns the path of the newest hot segment file.
func lastHotSegment(t *testing.T, dir string) string {
	t.Helper()
	names := slices.Sorted(maps.Keys(hotFiles(t, dir)))
	if len(names) == 0 {
		t.Fatalf("no hot segment under %s/hot", dir)
	}
	return filepath.Join(dir, "hot", names[len(names)-1])
}

var (
	severities = []string{"debug", "info", "notice", "warning", "error", "critical"}
	uuidV7     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// checkRecord asserts every required field of runtime-state-change-v1 is
// present with the right type and a valid value.
func checkRecord(t *testing.T, c map[string]any) {
	t.Helper()
	str := func(k string) string {
		t.Helper()
		v, ok := c[k].(string)
		if !ok || v == "" {
			t.Errorf("record %v: %s is missing or not a non-empty string", c["sequence"], k)
		}
		return v
	}
	if v := str("schema_version"); v != "runtime-state-change-v1" {
		t.Errorf("schema_version %q, want runtime-state-change-v1", v)
	}
	if v := str("event_id"); !uuidV7.MatchString(v) {
		t.Errorf("record %v: event_id %q is not a UUIDv7", c["sequence"], v)
	}
	if s, ok := c["sequence"].(float64); !ok || s < 1 {
		t.Errorf("record: sequence %v is missing or below 1", c["sequence"])
	}
	if v := str("occurred_at"); v != "" {
		ts, err := time.Parse(time.RFC3339Nano, v)
		switch {
		case err != nil:
			t.Errorf("record %v: occurred_at %q is not RFC 3339: %v", c["sequence"], v, err)
		case !strings.HasSuffix(v, "Z") || ts.Location() != time.UTC:
			t.Errorf("record %v: occurred_at %q is not UTC", c["sequence"], v)
		case !strings.Contains(v, "."):
			t.Errorf("record %v: occurred_at %q has no sub-second precision", c["sequence"], v)
		}
	}
	for _, k := range []string{"source", "change_type", "aggregate_type", "aggregate_id", "snapshot_hint"} {
		str(k)
	}
	surface := str("surface")
	cs, ok := c["changed_surfaces"].([]any)
	if !ok || len(cs) == 0 || !slices.Contains(cs, any(surface)) {
		t.Errorf("record %v: changed_surfaces %v is not a non-empty list holding %q", c["sequence"], c["changed_surfaces"], surface)
	}
	if sev := str("severity"); !slices.Contains(severities, sev) {
		t.Errorf("record %v: severity %q is not one of %v", c["sequence"], sev, severities)
	}
	if _, ok := c["mutates_authority_state"].(bool); !ok {
		t.Errorf("record %v: mutates_authority_state %v is missing or not a boolean", c["sequence"], c["mutates_authority_state"])
	}
}

// checkGapless asserts the listed sequences are exactly 1..n in any order.
func checkGapless(t *testing.T, cs []map[string]any, n int) {
	t.Helper()
	seqs := seqsOf(t, cs)
	slices.Sort(seqs)
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("sequences are not 1..%d without gaps: %v", n, seqs)
	}
}

func TestRecordedChangesCarryEveryRequiredFieldWithGaplessSequences(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)

	// From flags.
	r := mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
		"--aggregate-id", "ws-42", "--metadata", "k=v", "--json")
	rcs := receiptLines(t, r)
	if len(rcs) != 1 || rcs[0].Sequence != 1 || !uuidV7.MatchString(rcs[0].EventID) || !rcs[0].Durable || rcs[0].Duplicate {
		t.Fatalf("flag record: want one durable receipt for sequence 1 with a UUIDv7 event id, got %+v", rcs)
	}

	// From NDJSON on standard input: one receipt line per record, in order.
	const lines = 50
	r = jcIn(t, dir, heartbeats("ws-stdin", lines), "state-journal-record", "--stdin", "--json")
	if r.code != 0 {
		t.Fatalf("--stdin: %s", r)
	}
	rcs = receiptLines(t, r)
	if len(rcs) != lines {
		t.Fatalf("--stdin: want %d receipt lines, got %d\n%s", lines, len(rcs), r)
	}
	ids := map[string]bool{}
	for i, rc := range rcs {
		if rc.Sequence != uint64(i+2) {
			t.Fatalf("--stdin receipt %d: sequence %d, want %d (receipts in input order)", i+1, rc.Sequence, i+2)
		}
		if ids[rc.EventID] || !uuidV7.MatchString(rc.EventID) {
			t.Fatalf("--stdin receipt %d: event id %q is repeated or not a UUIDv7", i+1, rc.EventID)
		}
		ids[rc.EventID] = true
		if !rc.Durable || rc.Redactions != 0 {
			t.Fatalf("--stdin receipt %d: want durable with no redactions, got %+v", i+1, rc)
		}
	}

	// Plain receipts name the same four facts, after the input line.
	r = jcIn(t, dir, heartbeat("ws-plain")+"\n", "state-journal-record", "--stdin")
	if r.code != 0 || !regexp.MustCompile(`^line=1 sequence=52 event_id=\S+ redactions=0 durable=true\n$`).MatchString(r.stdout) {
		t.Fatalf("plain --stdin receipt: want %q, got %s", "line=1 sequence=52 event_id=... redactions=0 durable=true", r)
	}

	// Over HTTP: one object, then an array.
	srv := startServer(t, dir)
	code, body := srv.post(t, "application/json", heartbeat("ws-http-1"))
	if code != 201 {
		t.Fatalf("POST one change: want 201, got %d %s", code, body)
	}
	code, body = srv.post(t, "application/json", "["+heartbeat("ws-http-2")+","+heartbeat("ws-http-3")+"]")
	if code != 201 {
		t.Fatalf("POST an array: want 201, got %d %s", code, body)
	}
	var rb struct {
		Receipts []receipt `json:"receipts"`
	}
	if err := json.Unmarshal(body, &rb); err != nil || len(rb.Receipts) != 2 || rb.Receipts[0].Sequence != 54 || rb.Receipts[1].Sequence != 55 {
		t.Fatalf("POST an array: want receipts for sequences 54 and 55, got %s (%v)", body, err)
	}
	if c := srv.stop(t); c != 0 {
		t.Fatalf("server exit %d, want 0\n%s", c, srv.stderr.String())
	}

	const total = 55
	l := list(t, dir, "-n", "0")
	if len(l.Changes) != total || l.Head != total || l.Horizon != 1 || l.More {
		t.Fatalf("state-journal -n 0: want %d changes, head %d, horizon 1, more false; got %d changes, head %d, horizon %d, more %t",
			total, total, len(l.Changes), l.Head, l.Horizon, l.More)
	}
	for _, c := range l.Changes {
		checkRecord(t, c)
	}
	checkGapless(t, l.Changes, total)

	// The flag record kept what the flags said and the defaults the CLI documents.
	first := l.Changes[len(l.Changes)-1]
	want := map[string]any{
		"sequence": float64(1), "source": "journalctl", "surface": "runtime_work_session", "change_type": "heartbeat",
		"aggregate_type": "work_session", "aggregate_id": "ws-42", "severity": "info", "snapshot_hint": "runtime_health",
		"mutates_authority_state": false,
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("flag record: %s = %v, want %v", k, first[k], v)
		}
	}
	if md, _ := first["metadata"].(map[string]any); md["k"] != "v" {
		t.Errorf("flag record: metadata %v, want {k: v}", first["metadata"])
	}
}

// errorJSON is the --json error object of a failed command.
type errorJSON struct {
	Error struct {
		Code       string   `json:"code"`
		Message    string   `json:"message"`
		Field      string   `json:"field"`
		Allowed    []string `json:"allowed"`
		Suggestion string   `json:"suggestion"`
	} `json:"error"`
}

func TestBadRecordInputExitsNonZeroWithASpecificMessageAndWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 3)
	hotBefore := hotFiles(t, dir)
	lastBefore := status(t, dir).LastSequence

	record := func(args ...string) []string { return append([]string{"state-journal-record"}, args...) }
	ws := []string{"--surface", "runtime_work_session"}
	hb := []string{"--surface", "runtime_work_session", "--change-type", "heartbeat"}
	// A value given on a flag that the record contract refuses (an
	// unknown --surface, a bad --severity) is a bad flag value: exit 2,
	// like a bad --sync (SPEC 7), with the contract's code under --json.
	// A policy refusal of valid values is refused input: exit 1.
	tests := []struct {
		name     string
		args     []string
		exit     int
		contains []string
		jsonCode string // code of the --json error object; "" when not checked here
	}{
		{"an unknown surface suggests the registered one", record("--surface", "runtime_work_sesion", "--change-type", "heartbeat"),
			2, []string{`"runtime_work_sesion"`, `did you mean "runtime_work_session"`}, "unknown_surface"},
		{"a missing --surface is a usage error", record("--change-type", "heartbeat"),
			2, []string{"--surface is required"}, ""},
		{"a missing --change-type is a usage error that lists the change types", record(ws...),
			2, []string{"--change-type is required", "created, updated, deleted, heartbeat, transitioned, expired, invalidated"}, ""},
		{"a change type that does not exist lists the allowed values", record(append(ws, "--change-type", "exploded")...),
			2, []string{"change_type", `"exploded"`, "allowed: created, updated, deleted, heartbeat, transitioned, expired, invalidated"}, "invalid_change"},
		{"a change type the surface narrows away lists the surface's values", record(append(ws, "--change-type", "invalidated")...),
			2, []string{"change_type", `"invalidated"`, "runtime_work_session", "allowed: created, updated, heartbeat, transitioned, expired, deleted"}, "invalid_change"},
		{"a bad severity lists the severities", record(append(hb, "--severity", "loud")...),
			2, []string{"severity", `"loud"`, "allowed: debug, info, notice, warning, error, critical"}, "invalid_change"},
		{"a bad --occurred-at names the flag and the format", record(append(hb, "--occurred-at", "yesterday")...),
			2, []string{"--occurred-at", `"yesterday"`, "RFC 3339"}, ""},
		{"metadata without '=' is not key=value", record(append(hb, "--metadata", "novalue")...),
			2, []string{"--metadata", `"novalue"`, "key=value"}, ""},
		{"an authority-adjacent surface refuses a source that does not own it and names the owners", record("--surface", "runtime_approvals", "--change-type", "updated"),
			1, []string{`source "journalctl"`, "runtime_approvals", "runtime.approvals"}, "policy_violation"},
		{"a surface whose journal mode is disabled refuses records", record("--surface", "runtime_action_timeline", "--change-type", "created"),
			1, []string{"runtime_action_timeline", "journal mode disabled"}, "policy_violation"},
		{"mutates_authority_state on a surface that is not authority-adjacent is refused", record(append(hb, "--mutates-authority-state")...),
			1, []string{"mutates_authority_state", "runtime_work_session", "not authority-adjacent"}, "policy_violation"},
		{"an unknown flag is a usage error", record(append(hb, "--bogus")...),
			2, []string{"unknown flag: --bogus"}, ""},
		{"an argument where none is taken is a usage error", record(append(hb, "extra")...),
			2, []string{"extra"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jc(t, dir, tt.args...)
			if r.code != tt.exit {
				t.Fatalf("want exit %d, got %s", tt.exit, r)
			}
			for _, s := range tt.contains {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("a rejected record printed a receipt: %q", r.stdout)
			}
			if tt.jsonCode != "" {
				rj := jc(t, dir, append(tt.args, "--json")...)
				var e errorJSON
				decode(t, rj, &e)
				if rj.code != tt.exit || e.Error.Code != tt.jsonCode || e.Error.Field == "" || e.Error.Message == "" {
					t.Errorf("--json: want exit %d and an error object with code %q, a field and a message; got %s", tt.exit, tt.jsonCode, rj)
				}
			}
			if got := status(t, dir).LastSequence; got != lastBefore {
				t.Fatalf("last_sequence moved from %d to %d: a rejected record was written", lastBefore, got)
			}
			if hot := hotFiles(t, dir); !maps.Equal(hot, hotBefore) {
				t.Fatalf("the hot segments changed although the record was rejected")
			}
		})
	}
}

// A usage error printed under --json should carry a code a script can
// branch on. "internal" tells it the tool broke, which is false.
func TestUsageErrorsUnderJSONCarryAStableCodeThatIsNotInternal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	tests := []struct {
		name string
		args []string
	}{
		{"a missing --surface", []string{"--change-type", "heartbeat"}},
		{"a missing --change-type", []string{"--surface", "runtime_work_session"}},
		{"a bad --occurred-at", []string{"--surface", "runtime_work_session", "--change-type", "heartbeat", "--occurred-at", "yesterday"}},
		{"a bad --metadata", []string{"--surface", "runtime_work_session", "--change-type", "heartbeat", "--metadata", "novalue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jc(t, dir, append(append([]string{"state-journal-record"}, tt.args...), "--json")...)
			var e errorJSON
			decode(t, r, &e)
			if r.code != 2 {
				t.Errorf("want exit 2, got %d", r.code)
			}
			if e.Error.Code == "" || e.Error.Code == "internal" {
				t.Errorf("BUG cmd/journalctl/globals.go errorBody (via record.go runRecordFlags usageErr): "+
					"state-journal-record %s --json answers code %q for a usage error; want a stable non-internal code "+
					"(e.g. \"usage\", or \"invalid_change\" with the field named). Output:\n%s",
					strings.Join(tt.args, " "), e.Error.Code, r.stdout)
			}
		})
	}
}

func TestStdinBadLinesAreReportedByLineNumberAndTheGoodLinesAreWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "seed", 2)
	input := strings.Join([]string{
		heartbeat("good-1"),
		strings.Replace(heartbeat("bad-2"), "runtime_work_session", "runtime_work_sesion", 1),
		heartbeat("good-3"),
		"this is not json",
		heartbeat("good-5"),
		`{"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.work_session","aggregate_type":"work_session","aggregate_id":"bad-6","sequence":7}`,
		"",
		heartbeat("good-8"),
	}, "\n") + "\n"

	r := jcIn(t, dir, input, "state-journal-record", "--stdin")
	if r.code != 1 {
		t.Fatalf("want exit 1 for rejected lines, got %s", r)
	}
	for _, s := range []string{"line 2:", `did you mean "runtime_work_session"`, "line 4:", "not valid JSON", "line 6:", "sequence", "3 line(s) rejected"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
		}
	}
	if n := strings.Count(r.stdout, "sequence="); n != 4 {
		t.Errorf("want 4 receipts for the good lines, got %d:\n%s", n, r.stdout)
	}
	l := list(t, dir, "-n", "0")
	checkGapless(t, l.Changes, 6)
	var aggs []string
	for _, c := range l.Changes {
		aggs = append(aggs, c["aggregate_id"].(string))
	}
	slices.Sort(aggs)
	if want := []string{"good-1", "good-3", "good-5", "good-8", "seed-1", "seed-2"}; !slices.Equal(aggs, want) {
		t.Fatalf("recorded aggregates %v, want %v", aggs, want)
	}

	// With --json the rejections are JSON lines with the line number and a stable code.
	r = jcIn(t, dir, input, "state-journal-record", "--stdin", "--json")
	if r.code != 1 {
		t.Fatalf("--json: want exit 1, got %s", r)
	}
	codes := map[float64]string{}
	receipts := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("--json output line is not JSON: %q", line)
		}
		if e, ok := m["error"].(map[string]any); ok {
			codes[m["line"].(float64)] = e["code"].(string)
			continue
		}
		receipts++
	}
	if want := map[float64]string{2: "unknown_surface", 4: "invalid_change", 6: "invalid_change"}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("--json rejections by line: got %v, want %v", codes, want)
	}
	if receipts != 4 {
		t.Errorf("--json: want 4 receipts, got %d", receipts)
	}
	if got := status(t, dir).LastSequence; got != 10 {
		t.Errorf("last_sequence %d after two runs of 4 good lines over 2 seeds, want 10", got)
	}
}

// columnStarts returns where each column of an aligned table line starts:
// cells are separated by two or more spaces, words inside a cell by one.
func columnStarts(line string) []int {
	var out []int
	for _, m := range regexp.MustCompile(`\S+( \S+)*`).FindAllStringIndex(line, -1) {
		out = append(out, m[0])
	}
	return out
}

func TestStateJournalFiltersOrderAndOutputShapes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	change := func(surface, source, changeType, aggType, aggID, severity, occurred string) string {
		m := map[string]any{"surface": surface, "source": source, "change_type": changeType, "aggregate_type": aggType,
			"aggregate_id": aggID, "severity": severity}
		if occurred != "" {
			m["occurred_at"] = occurred
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	input := strings.Join([]string{
		change("runtime_work_session", "runtime.work_session", "heartbeat", "work_session", "ws-1", "info", old),
		change("runtime_work_session", "runtime.work_session", "heartbeat", "work_session", "ws-2", "info", old),
		change("runtime_leases", "runtime.leases", "updated", "lease", "lease-1", "warning", ""),
		change("runtime_work_session", "runtime.work_session", "created", "work_session", "ws-1", "notice", ""),
		change("runtime_work_session", "runtime.work_session", "heartbeat", "work_session", "ws-1", "debug", ""),
		change("runtime_leases", "runtime.leases", "expired", "lease", "lease-2", "error", ""),
	}, "\n")
	if r := jcIn(t, dir, input, "state-journal-record", "--stdin"); r.code != 0 {
		t.Fatalf("seed: %s", r)
	}

	tests := []struct {
		name string
		args []string
		want []uint64
		more bool
	}{
		{"without filters it lists newest first", nil, []uint64{6, 5, 4, 3, 2, 1}, false},
		{"--surface keeps that surface", []string{"--surface", "runtime_leases"}, []uint64{6, 3}, false},
		{"--surface takes a comma-separated list", []string{"--surface", "runtime_leases,runtime_work_session"}, []uint64{6, 5, 4, 3, 2, 1}, false},
		{"--after lists the records after the cursor oldest first", []string{"--after", "4"}, []uint64{5, 6}, false},
		{"--after with a limit says more remain", []string{"--after", "2", "-n", "2"}, []uint64{3, 4}, true},
		{"-n keeps the newest n", []string{"-n", "2"}, []uint64{6, 5}, true},
		{"--limit is -n", []string{"--limit", "3"}, []uint64{6, 5, 4}, true},
		// --since runs on the journal's commit time: records backdated
		// by their writers but committed just now are inside it
		// (TestStateJournalSinceSelectsByCommitTime drops older commits).
		{"--since 10m keeps records committed in the last 10 minutes, whatever their occurred_at", []string{"--since", "10m"}, []uint64{6, 5, 4, 3, 2, 1}, false},
		{"--change-type keeps that change type", []string{"--change-type", "heartbeat"}, []uint64{5, 2, 1}, false},
		{"--aggregate-type with --aggregate-id keeps one aggregate", []string{"--aggregate-type", "work_session", "--aggregate-id", "ws-1"}, []uint64{5, 4, 1}, false},
		{"--min-severity keeps that severity and above", []string{"--min-severity", "warning"}, []uint64{6, 3}, false},
		{"--oldest-first reverses the default order", []string{"--oldest-first", "-n", "0"}, []uint64{1, 2, 3, 4, 5, 6}, false},
		{"filters combine", []string{"--surface", "runtime_work_session", "--since", "10m", "--min-severity", "notice"}, []uint64{4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := list(t, dir, tt.args...)
			if got := seqsOf(t, l.Changes); !slices.Equal(got, tt.want) {
				t.Errorf("sequences %v, want %v", got, tt.want)
			}
			if l.More != tt.more {
				t.Errorf("more = %t, want %t", l.More, tt.more)
			}
			if l.Head != 6 || l.Horizon != 1 {
				t.Errorf("head %d horizon %d, want 6 and 1", l.Head, l.Horizon)
			}
		})
	}

	t.Run("a filter matching nothing is an empty list, not null", func(t *testing.T) {
		r := mustOK(t, dir, "state-journal", "--json", "--surface", "runtime_approvals")
		if !regexp.MustCompile(`"changes":\s*\[\]`).MatchString(r.stdout) {
			t.Errorf("want \"changes\": [], got %s", r.stdout)
		}
	})

	t.Run("bad filter values are usage errors naming the flag", func(t *testing.T) {
		for _, args := range [][]string{{"--since", "whenever"}, {"--limit", "-1"}, {"--min-severity", "loud"}} {
			r := jc(t, dir, append([]string{"state-journal"}, args...)...)
			// The flag may be named as the flag or as the query field (min_severity).
			named := strings.Contains(strings.ReplaceAll(r.stderr, "_", "-"), strings.TrimPrefix(args[0], "--"))
			if r.code != 2 || !named {
				t.Errorf("state-journal %v: want exit 2 naming the flag, got %s", args, r)
			}
		}
	})

	t.Run("the table is aligned with a header", func(t *testing.T) {
		r := mustOK(t, dir, "state-journal")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 7 {
			t.Fatalf("want a header and 6 rows, got %d lines:\n%s", len(lines), r.stdout)
		}
		header := lines[0]
		for _, col := range []string{"SEQ", "OCCURRED AT", "SURFACE", "CHANGE", "AGGREGATE", "SEVERITY", "SOURCE", "SNAPSHOT", "EVENT ID"} {
			if !strings.Contains(header, col) {
				t.Errorf("header %q has no column %q", header, col)
			}
		}
		want := columnStarts(header)
		if len(want) != 9 {
			t.Fatalf("header %q: want 9 columns separated by 2+ spaces, found %d", header, len(want))
		}
		for i, line := range lines[1:] {
			if got := columnStarts(line); !slices.Equal(got, want) {
				t.Errorf("row %d columns start at %v, header's at %v:\n%s\n%s", i+1, got, want, header, line)
			}
		}
		if !strings.HasPrefix(lines[1], "6 ") || !strings.HasPrefix(lines[6], "1 ") {
			t.Errorf("table is not newest first:\n%s", r.stdout)
		}
	})
}

// flipMiddleByte inverts one byte in the middle of path.
func flipMiddleByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// validation is the part of state-journal-validate --json the tests read.
type validation struct {
	Clean    bool `json:"clean"`
	Problems []struct {
		Severity string `json:"severity"`
		Kind     string `json:"kind"`
		Segment  string `json:"segment"`
		Sequence uint64 `json:"sequence"`
		Message  string `json:"message"`
	} `json:"problems"`
	Repaired []struct {
		Cause      string `json:"cause"`
		Quarantine string `json:"quarantine"`
	} `json:"repaired"`
}

func TestValidateFindsInteriorDamageAndRepairQuarantinesIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 20)

	var v validation
	r := mustOK(t, dir, "state-journal-validate", "--json")
	decode(t, r, &v)
	if !v.Clean || len(v.Problems) != 0 {
		t.Fatalf("a fresh journal should validate clean: %s", r)
	}
	if r := mustOK(t, dir, "state-journal-validate"); !strings.Contains(r.stdout, "clean") {
		t.Errorf("plain validate does not say clean: %s", r)
	}

	seg := lastHotSegment(t, dir)
	flipMiddleByte(t, seg)

	r = jc(t, dir, "state-journal-validate", "--json")
	if r.code != 1 {
		t.Fatalf("validate after a flipped byte: want exit 1, got %s", r)
	}
	v = validation{}
	decode(t, r, &v)
	found := false
	for _, p := range v.Problems {
		if p.Severity == "error" && p.Segment == filepath.Base(seg) && p.Sequence > 0 {
			found = true
		}
	}
	if v.Clean || !found {
		t.Fatalf("want an error problem naming segment %s and a sequence, got %s", filepath.Base(seg), r.stdout)
	}
	if r := jc(t, dir, "state-journal-validate"); r.code != 1 || !strings.Contains(r.stdout, "PROBLEMS FOUND") || !strings.Contains(r.stdout, filepath.Base(seg)) {
		t.Errorf("plain validate: want exit 1 with PROBLEMS FOUND and the segment, got %s", r)
	}

	// A writer refuses to open over interior damage and says how to repair.
	r = jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat")
	if r.code != 1 || !strings.Contains(r.stderr, "--repair") {
		t.Fatalf("record over interior damage: want exit 1 pointing at --repair, got %s", r)
	}

	r = jc(t, dir, "state-journal-validate", "--repair", "--json")
	if r.code != 1 {
		t.Fatalf("validate --repair: want exit 1 (repaired), got %s", r)
	}
	v = validation{}
	decode(t, r, &v)
	if len(v.Repaired) == 0 {
		t.Fatalf("validate --repair reports no repair: %s", r.stdout)
	}
	q := filesUnder(t, filepath.Join(dir, "quarantine"))
	if len(q) == 0 {
		t.Fatalf("nothing was quarantined under %s/quarantine", dir)
	}

	r = mustOK(t, dir, "state-journal-validate", "--json")
	v = validation{}
	decode(t, r, &v)
	lost := 0
	for _, p := range v.Problems {
		if p.Severity != "info" {
			t.Errorf("after repair, problem %+v is not info", p)
		}
		if p.Kind == "lost" {
			lost++
		}
	}
	if !v.Clean || lost == 0 {
		t.Fatalf("after repair: want clean with info problems of kind lost, got %s", r.stdout)
	}

	r = mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
	if rcs := receiptLines(t, r); len(rcs) != 1 || rcs[0].Sequence != 21 {
		t.Fatalf("record after repair: want sequence 21, got %s", r)
	}
	l := list(t, dir, "-n", "0")
	if l.Head != 21 {
		t.Errorf("head %d after repair and one record, want 21", l.Head)
	}
}

func TestATornTailIsCutByTheNextWriterAndShownInStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 5)
	seg := lastHotSegment(t, dir)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write leaves no checkpoint that saw the
	// torn record durable (one that did makes the cut a reported loss).
	if err := os.Remove(filepath.Join(dir, "state", "index.ckpt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-50); err != nil {
		t.Fatal(err)
	}

	r := jc(t, dir, "state-journal-validate", "--json")
	var v validation
	decode(t, r, &v)
	if r.code != 1 || len(v.Problems) == 0 || v.Problems[0].Kind != "torn_tail" {
		t.Fatalf("validate over a torn tail: want exit 1 and a torn_tail problem, got %s", r)
	}

	r = mustOK(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
	if rcs := receiptLines(t, r); len(rcs) != 1 || rcs[0].Sequence != 5 {
		t.Fatalf("record after a torn tail: the cut record 5 was never acknowledged, so the next is 5; got %s", r)
	}
	st := status(t, dir)
	if st.LastRecovery == nil || len(st.LastRecovery.Cuts) == 0 {
		t.Fatalf("status has no last_recovery after a torn tail was cut")
	}
	cut := st.LastRecovery.Cuts[0]
	if cut.Cause != "torn_tail" || cut.Bytes <= 0 || cut.Segment != filepath.Base(seg) {
		t.Errorf("last_recovery cut %+v, want cause torn_tail with bytes in %s", cut, filepath.Base(seg))
	}
	if _, err := os.Stat(cut.Quarantine); err != nil {
		t.Errorf("the cut bytes are not kept at %s: %v", cut.Quarantine, err)
	}
	if r := mustOK(t, dir, "state-journal-status"); !strings.Contains(r.stdout, "torn_tail") {
		t.Errorf("plain status does not show the torn_tail cut:\n%s", r.stdout)
	}
	mustOK(t, dir, "state-journal-validate")
	checkGapless(t, list(t, dir, "-n", "0").Changes, 5)
}

// compactReport is the part of state-journal-compact --json the tests read.
type compactReport struct {
	DryRun        bool   `json:"dry_run"`
	Records       uint64 `json:"records"`
	HorizonBefore uint64 `json:"horizon_before"`
	HorizonAfter  uint64 `json:"horizon_after"`
	Archives      []struct {
		Name string `json:"name"`
	} `json:"archives"`
	Removed []struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"removed"`
}

func TestCompactionArchivesEverythingAndRetentionAdvancesTheHorizon(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	seed(t, dir, "a", 10)
	before := list(t, dir, "-n", "0")
	hotBefore := hotFiles(t, dir)

	var rep compactReport
	decode(t, mustOK(t, dir, "state-journal-compact", "--dry-run", "--json"), &rep)
	if !rep.DryRun || rep.Records != 10 || len(rep.Archives) == 0 {
		t.Errorf("dry run: want dry_run true announcing 10 records in archives, got %+v", rep)
	}
	if a := filesUnder(t, filepath.Join(dir, "archive")); len(a) != 0 {
		t.Fatalf("--dry-run wrote archives: %v", slices.Sorted(maps.Keys(a)))
	}
	if !maps.Equal(hotFiles(t, dir), hotBefore) {
		t.Fatalf("--dry-run changed the hot log")
	}
	if r := mustOK(t, dir, "state-journal-compact", "--dry-run"); !strings.Contains(r.stdout, "WOULD WRITE") {
		t.Errorf("plain dry run does not say what it would write:\n%s", r.stdout)
	}

	rep = compactReport{}
	decode(t, mustOK(t, dir, "state-journal-compact", "--json"), &rep)
	if rep.DryRun || rep.Records != 10 {
		t.Errorf("compact: want 10 records archived, got %+v", rep)
	}
	st := status(t, dir)
	if st.HotRecords != 0 || st.ArchiveRecords != 10 || st.Records != 10 {
		t.Fatalf("after compaction: hot_records %d archive_records %d records %d, want 0, 10, 10", st.HotRecords, st.ArchiveRecords, st.Records)
	}
	if a := filesUnder(t, filepath.Join(dir, "archive")); len(a) == 0 {
		t.Fatalf("compaction left no file under archive/")
	}
	after := list(t, dir, "-n", "0")
	b1, _ := json.Marshal(before.Changes)
	b2, _ := json.Marshal(after.Changes)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("records read from archives differ from the hot records:\nbefore %s\nafter  %s", b1, b2)
	}
	mustOK(t, dir, "state-journal-validate")

	// Two more archives, so retention has old ones to remove.
	for _, p := range []string{"b", "c"} {
		seed(t, dir, p, 10)
		mustOK(t, dir, "state-journal-compact", "--json")
	}
	rep = compactReport{}
	decode(t, mustOK(t, dir, "state-journal-compact", "--max-records", "10", "--json"), &rep)
	if len(rep.Removed) == 0 || rep.HorizonAfter <= rep.HorizonBefore {
		t.Fatalf("--max-records 10: want old archives removed and the horizon advanced, got %+v", rep)
	}
	for _, rm := range rep.Removed {
		if rm.Reason != "max_records" {
			t.Errorf("archive %s removed for %q, want max_records", rm.Name, rm.Reason)
		}
	}
	st = status(t, dir)
	if st.Horizon != 21 || st.FirstSequence != 21 || st.LastSequence != 30 || st.Records != 10 {
		t.Fatalf("after retention: horizon %d first %d last %d records %d, want 21, 21, 30, 10", st.Horizon, st.FirstSequence, st.LastSequence, st.Records)
	}
	l := list(t, dir, "-n", "0")
	if got := seqsOf(t, l.Changes); len(got) != 10 || got[0] != 30 || got[9] != 21 || l.Horizon != 21 {
		t.Fatalf("after retention: want 30..21 with horizon 21, got %v horizon %d", got, l.Horizon)
	}

	// A cursor right below the horizon still reads everything after it.
	if l := list(t, dir, "--after", "20"); len(l.Changes) != 10 {
		t.Errorf("--after 20 with horizon 21: want 10 records, got %d", len(l.Changes))
	}
	r := jc(t, dir, "state-journal", "--after", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "resync") || !strings.Contains(r.stderr, "snapshot") {
		t.Fatalf("--after 1 below the horizon: want exit 1 telling the consumer to resync from a snapshot, got %s", r)
	}
	r = jc(t, dir, "state-journal", "--after", "1", "--json")
	var e errorJSON
	decode(t, r, &e)
	if r.code != 1 || e.Error.Code != "compacted" || !strings.Contains(e.Error.Message, "snapshot") {
		t.Fatalf("--after 1 --json: want exit 1 with code compacted, got %s", r)
	}

	// The CLI and HTTP name the same cursor vocabulary and resume point.
	var cliErr struct {
		Error map[string]any `json:"error"`
	}
	decode(t, r, &cliErr)
	srv := startServer(t, dir)
	code, body := srv.get(t, "/v1/changes?after=1")
	if code != 410 || !strings.Contains(string(body), `"compacted"`) {
		t.Errorf("GET /v1/changes?after=1: want 410 with code compacted, got %d %s", code, body)
	}
	var httpErr struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &httpErr); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"after": 1, "horizon": 21, "resume_after": 20} {
		if cliErr.Error[k] != want || httpErr.Error[k] != want {
			t.Errorf("%s: CLI %v, HTTP %v, want %v both\nCLI: %s\nHTTP: %s", k, cliErr.Error[k], httpErr.Error[k], want, r.stdout, body)
		}
	}
	if cliErr.Error["message"] != httpErr.Error["message"] {
		t.Errorf("the CLI says %q, HTTP %q", cliErr.Error["message"], httpErr.Error["message"])
	}
	if code, body := srv.get(t, "/v1/changes?after=20"); code != 200 {
		t.Errorf("GET /v1/changes?after=20: want 200, got %d %s", code, body)
	}
	if c := srv.stop(t); c != 0 {
		t.Errorf("server exit %d, want 0\n%s", c, srv.stderr.String())
	}
}

func TestRuntimePrefixedCommandsWorkLikeTheBareOnes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	r := mustOK(t, "", "runtime", "--help")
	for _, c := range []string{"state-surfaces", "state-journal ", "state-journal-status", "state-journal-record", "state-journal-validate", "state-journal-compact", "serve"} {
		if !strings.Contains(r.stdout, "  "+c) {
			t.Errorf("journalctl runtime --help does not list %q:\n%s", strings.TrimSpace(c), r.stdout)
		}
	}

	r = mustOK(t, dir, "runtime", "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat", "--json")
	if rcs := receiptLines(t, r); len(rcs) != 1 || rcs[0].Sequence != 1 {
		t.Fatalf("runtime state-journal-record: want sequence 1, got %s", r)
	}
	bare := mustOK(t, dir, "state-journal-status", "--json")
	prefixed := mustOK(t, dir, "runtime", "state-journal-status", "--json")
	if bare.stdout != prefixed.stdout {
		t.Errorf("runtime state-journal-status --json differs from state-journal-status --json:\n%s\n%s", prefixed.stdout, bare.stdout)
	}
	if l := list(t, dir, "-n", "0"); len(l.Changes) != 1 {
		t.Errorf("state-journal: want 1 record, got %d", len(l.Changes))
	}
	if r := mustOK(t, dir, "runtime", "state-journal", "--json"); !strings.Contains(r.stdout, `"head": 1`) {
		t.Errorf("runtime state-journal --json: %s", r)
	}
	mustOK(t, dir, "runtime", "state-journal-validate")
	mustOK(t, dir, "runtime", "state-surfaces", "--json")
	var rep compactReport
	decode(t, mustOK(t, dir, "runtime", "state-journal-compact", "--dry-run", "--json"), &rep)
	if !rep.DryRun {
		t.Errorf("runtime state-journal-compact --dry-run --json: dry_run is false")
	}
}

func TestStateSurfacesListsTheRegistryWithLiveCounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 4)

	r := mustOK(t, dir, "state-surfaces", "--json")
	var out struct {
		Digest   string `json:"registry_digest"`
		Surfaces []struct {
			ID      string `json:"id"`
			Owner   string `json:"owner"`
			Truth   string `json:"truth"`
			Storage struct {
				Kind string `json:"kind"`
			} `json:"storage"`
			Journal struct {
				Mode string `json:"mode"`
			} `json:"journal"`
			Live *struct {
				Records      uint64 `json:"records"`
				LastSequence uint64 `json:"last_sequence"`
			} `json:"live"`
		} `json:"surfaces"`
	}
	decode(t, r, &out)
	if out.Digest == "" {
		t.Errorf("state-surfaces --json has no registry_digest")
	}
	byID := map[string]int{}
	for i, s := range out.Surfaces {
		byID[s.ID] = i
		if s.Owner == "" || s.Storage.Kind == "" || s.Truth == "" || s.Journal.Mode == "" || s.Live == nil {
			t.Errorf("surface %s lacks owner, storage kind, truth, journal mode or live figures: %+v", s.ID, s)
		}
	}
	want := map[string]struct{ truth, mode string }{
		"runtime_work_session":          {"canonical", ""},
		"runtime_leases":                {"", ""},
		"runtime_approvals":             {"", ""},
		"runtime_dispatcher_results":    {"", ""},
		"runtime_lifecycle_transitions": {"", ""},
		"runtime_health_snapshot":       {"derived", ""},
		"runtime_action_panel":          {"derived", ""},
		"runtime_action_timeline":       {"", "disabled"},
	}
	for id, w := range want {
		i, ok := byID[id]
		if !ok {
			t.Errorf("state-surfaces does not list %s", id)
			continue
		}
		s := out.Surfaces[i]
		if w.truth != "" && s.Truth != w.truth {
			t.Errorf("%s: truth %q, want %q", id, s.Truth, w.truth)
		}
		if w.mode != "" && s.Journal.Mode != w.mode {
			t.Errorf("%s: journal mode %q, want %q", id, s.Journal.Mode, w.mode)
		}
	}
	if i, ok := byID["runtime_work_session"]; ok {
		if l := out.Surfaces[i].Live; l == nil || l.Records != 4 || l.LastSequence != 4 {
			t.Errorf("runtime_work_session live figures %+v, want 4 records up to sequence 4", l)
		}
	}

	t.Run("the table has a header and a row per surface", func(t *testing.T) {
		r := mustOK(t, dir, "state-surfaces")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != len(out.Surfaces)+1 || !strings.HasPrefix(lines[0], "SURFACE") {
			t.Fatalf("want a header and %d rows, got:\n%s", len(out.Surfaces), r.stdout)
		}
		want := columnStarts(lines[0])
		for _, line := range lines[1:] {
			if got := columnStarts(line); len(got) < 2 || got[1] != want[1] {
				t.Errorf("row %q is not aligned with the header %q", line, lines[0])
			}
		}
	})

	t.Run("STATE_JOURNAL_DIR works in place of --dir", func(t *testing.T) {
		r := invocation{env: []string{"STATE_JOURNAL_DIR=" + dir}, args: []string{"state-journal-status", "--json"}}.run(t)
		var st statusView
		decode(t, r, &st)
		if r.code != 0 || st.LastSequence != 4 || st.Dir != dir {
			t.Errorf("with STATE_JOURNAL_DIR: want exit 0, dir %s and last_sequence 4, got %s", dir, r)
		}
		r = invocation{env: []string{"STATE_JOURNAL_DIR=" + dir}, args: []string{"state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat"}}.run(t)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "sequence=5 ") {
			t.Errorf("record with STATE_JOURNAL_DIR: want sequence 5, got %s", r)
		}
	})
}

func TestABadRegistryFileIsAUsageErrorNamingTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	tests := []struct {
		name, file string
		contains   []string
	}{
		{"an unknown storage kind names the field and the allowed kinds", "registry-bad-storage-kind.yaml",
			[]string{"storage.kind", `"floppy"`, "file, dir, memory, db"}},
		{"an unknown journal mode names the field and the allowed modes", "registry-bad-journal-mode.yaml",
			[]string{"journal.mode", `"sometimes"`, "disabled, fallback, dual, proven"}},
		{"a duplicate id names the id and the first declaration", "registry-duplicate-id.yaml",
			[]string{"surfaces[1].id", `"runtime_work_session"`, "more than once"}},
		{"an unknown derived_from names the missing surface", "registry-unknown-derived-from.yaml",
			[]string{"derived_from", `"runtime_work_sessions"`}},
		{"a missing file names the path", "no-such-registry.yaml",
			[]string{"no-such-registry.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := filepath.Abs(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"state-surfaces", "state-journal-validate"} {
				r := jc(t, dir, "--surfaces", file, cmd)
				if r.code != 2 {
					t.Errorf("%s with %s: want exit 2, got %s", cmd, tt.file, r)
					continue
				}
				for _, s := range append([]string{"--surfaces"}, tt.contains...) {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("%s with %s: stderr does not contain %q:\n%s", cmd, tt.file, s, r.stderr)
					}
				}
			}
			r := invocation{dir: dir, env: []string{"STATE_JOURNAL_SURFACES=" + file}, args: []string{"state-surfaces"}}.run(t)
			if r.code != 2 || !strings.Contains(r.stderr, tt.contains[0]) {
				t.Errorf("STATE_JOURNAL_SURFACES=%s: want exit 2 naming %q, got %s", tt.file, tt.contains[0], r)
			}
		})
	}
	if got := status(t, dir).LastSequence; got != 1 {
		t.Errorf("last_sequence %d after commands refused a bad registry, want 1", got)
	}
}

// The same bad --surfaces file is the same usage error (exit 2) whichever
// command reads it; today the commands that open the journal report it as
// exit 1 because g.fail wraps the registry's exit-2 error in an exit-1 one.
func TestABadRegistryFileExitsTwoFromEveryCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 1)
	file, _ := filepath.Abs(filepath.Join("testdata", "registry-bad-storage-kind.yaml"))
	for _, args := range [][]string{
		{"state-surfaces"}, {"state-journal-validate"}, {"serve", "--listen", "127.0.0.1:0", "--socket", "-"},
		{"state-journal-status"}, {"state-journal"}, {"state-journal-compact"},
		{"state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat"},
	} {
		r := jc(t, dir, append([]string{"--surfaces", file}, args...)...)
		if !strings.Contains(r.stderr, "storage.kind") {
			t.Errorf("journalctl --surfaces %s %s: stderr does not name storage.kind:\n%s", testdataName(file), args[0], r.stderr)
		}
		if r.code != 2 {
			t.Errorf("BUG cmd/journalctl: `journalctl --surfaces %s %s` exits %d, want 2 like state-surfaces and "+
				"state-journal-validate: (*globals).fail (globals.go) wraps the exit-2 *exitError from (*globals).registry in an "+
				"exit-1 one when status.go/journal.go/compact.go/record.go call g.fail(exitProblems, err); fail should keep an "+
				"inner *exitError's code", testdataName(file), strings.Join(args, " "), r.code)
		}
	}
}

// Every command takes --json, and the error path is part of the output a
// script reads: a bad registry should be a JSON error with code
// bad_registry, as unknown_surface and policy_violation are.
func TestABadRegistryFileUnderJSONIsAJSONErrorWithCodeBadRegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, _ := filepath.Abs(filepath.Join("testdata", "registry-bad-storage-kind.yaml"))
	r := jc(t, dir, "--surfaces", file, "state-surfaces", "--json")
	if r.code != 2 {
		t.Errorf("want exit 2, got %d", r.code)
	}
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "bad_registry" {
		t.Errorf("BUG cmd/journalctl/globals.go (*globals).registry returns a bare exitError instead of going through g.fail, "+
			"so `journalctl --surfaces %s state-surfaces --json` prints plain text on stderr and nothing on stdout; "+
			"want {\"error\":{\"code\":\"bad_registry\",...}} on stdout. Got %s", testdataName(file), r)
	}
}

func testdataName(p string) string { return filepath.Join("testdata", filepath.Base(p)) }

func TestReadingCommandsChangeNoFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "ws", 5)
	mustOK(t, dir, "state-journal-compact")
	seed(t, dir, "ws2", 5)
	before := filesUnder(t, dir)
	for _, args := range [][]string{
		{"state-journal"}, {"state-journal", "--json", "--after", "3"}, {"state-journal-status"}, {"state-journal-status", "--json"},
		{"state-journal-validate"}, {"state-journal-validate", "--json"}, {"state-surfaces"}, {"state-surfaces", "--json"},
		{"state-journal-compact", "--dry-run"},
	} {
		mustOK(t, dir, args...)
		if after := filesUnder(t, dir); !maps.Equal(after, before) {
			t.Fatalf("journalctl %s changed files under the data directory", strings.Join(args, " "))
		}
	}
	if r := jc(t, filepath.Join(dir, "missing"), "state-journal-status"); r.code != 1 || !strings.Contains(r.stderr, "no journal at") {
		t.Errorf("status on a missing directory: want exit 1 saying there is no journal, got %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("status on a missing directory created it")
	}
}
