package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

var requiredFields = []string{
	"schema_version", "event_id", "sequence", "occurred_at", "source", "surface", "change_type",
	"aggregate_type", "aggregate_id", "changed_surfaces", "severity", "snapshot_hint", "mutates_authority_state",
}

func TestPostChangesRecordsEveryBodyShapeAndReadsItBack(t *testing.T) {
	e := start(t, Config{})
	cases := []struct {
		name        string
		contentType string
		body        func(ids ...string) []byte
		ids         []string
	}{
		{"one JSON object is recorded", "application/json",
			func(ids ...string) []byte { return mustJSON(t, heartbeat(ids[0])) }, []string{"ws-obj"}},
		{"a JSON array is recorded as one batch", "application/json",
			func(ids ...string) []byte {
				return mustJSON(t, []any{heartbeat(ids[0]), heartbeat(ids[1]), heartbeat(ids[2])})
			},
			[]string{"ws-arr-1", "ws-arr-2", "ws-arr-3"}},
		{"NDJSON named by its content type is recorded", "application/x-ndjson",
			func(ids ...string) []byte { return ndjson(t, heartbeat(ids[0]), heartbeat(ids[1])) }, []string{"ws-nd-1", "ws-nd-2"}},
		{"NDJSON sent as application/json is detected by its shape", "application/json",
			func(ids ...string) []byte { return ndjson(t, heartbeat(ids[0]), heartbeat(ids[1])) }, []string{"ws-det-1", "ws-det-2"}},
		{"a pretty-printed object is one change, not NDJSON", "application/json",
			func(ids ...string) []byte {
				b, _ := json.MarshalIndent(heartbeat(ids[0]), "", "  ")
				return b
			}, []string{"ws-pretty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.lastSequence()
			a := e.post("/v1/changes", tc.contentType, tc.body(tc.ids...))
			if a.status != http.StatusCreated {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			var rb ReceiptsBody
			a.decode(t, &rb)
			if len(rb.Receipts) != len(tc.ids) {
				t.Fatalf("got %d receipts for %d changes: %s", len(rb.Receipts), len(tc.ids), a.raw)
			}
			for i, rc := range rb.Receipts {
				if rc.Sequence != before+uint64(i)+1 || rc.EventID == "" || !rc.Durable || rc.Surface != "runtime_work_session" {
					t.Fatalf("receipt %d = %+v", i, rc)
				}
			}
			got := e.get(fmt.Sprintf("/v1/changes?after=%d", before))
			var raw struct {
				Changes []map[string]any `json:"changes"`
			}
			got.decode(t, &raw)
			if len(raw.Changes) != len(tc.ids) {
				t.Fatalf("read back %d changes, want %d: %s", len(raw.Changes), len(tc.ids), got.raw)
			}
			for i, c := range raw.Changes {
				for _, f := range requiredFields {
					if _, ok := c[f]; !ok {
						t.Errorf("change %d lacks required field %s: %v", i, f, c)
					}
				}
				want := map[string]any{
					"schema_version": engine.SchemaVersion, "event_id": rb.Receipts[i].EventID,
					"sequence": float64(rb.Receipts[i].Sequence), "source": "runtime.work_session",
					"surface": "runtime_work_session", "change_type": "heartbeat", "aggregate_type": "work_session",
					"aggregate_id": tc.ids[i], "severity": "info", "snapshot_hint": "runtime_health",
					"mutates_authority_state": false,
				}
				for k, v := range want {
					if c[k] != v {
						t.Errorf("change %d: %s = %v, want %v", i, k, c[k], v)
					}
				}
				if cs, _ := c["changed_surfaces"].([]any); len(cs) != 1 || cs[0] != "runtime_work_session" {
					t.Errorf("change %d: changed_surfaces = %v", i, c["changed_surfaces"])
				}
				if ts, _ := c["occurred_at"].(string); ts == "" {
					t.Errorf("change %d: occurred_at = %v", i, c["occurred_at"])
				} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
					t.Errorf("change %d: occurred_at %q is not RFC 3339: %v", i, ts, err)
				}
			}
		})
	}
}

// rejectEnv is a server with small limits so oversize inputs are cheap.
func rejectEnv(t *testing.T) *env {
	return start(t, Config{MaxBodyBytes: 4096, MaxBatch: 3})
}

func TestBadInputIsRejectedWithItsCodeAndNothingIsWritten(t *testing.T) {
	e := rejectEnv(t)
	// One good record so "nothing new" is measured against a non-empty log.
	if a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-seed"))); a.status != http.StatusCreated {
		t.Fatalf("seed: %d %s", a.status, a.raw)
	}
	const secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
	cases := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
		field       string
		index       int // -1: no index
		check       func(t *testing.T, e APIError, raw []byte)
	}{
		{name: "an unknown surface is refused with a suggestion", body: mustJSON(t, with(heartbeat("ws-1"), "surface", "runtime_work_sesion")),
			status: 400, code: "unknown_surface", field: "surface", index: -1,
			check: func(t *testing.T, e APIError, _ []byte) {
				if e.Suggestion != "runtime_work_session" || e.Value != "runtime_work_sesion" {
					t.Errorf("suggestion %q, value %q", e.Suggestion, e.Value)
				}
			}},
		{name: "a missing source is refused naming the field", body: mustJSON(t, with(heartbeat("ws-1"), "source", nil)),
			status: 400, code: "invalid_change", field: "source", index: -1},
		{name: "a bad change_type is refused with the allowed values", body: mustJSON(t, with(heartbeat("ws-1"), "change_type", "exploded")),
			status: 400, code: "invalid_change", field: "change_type", index: -1,
			check: func(t *testing.T, e APIError, _ []byte) {
				if len(e.Allowed) == 0 || !strings.Contains(strings.Join(e.Allowed, ","), "heartbeat") {
					t.Errorf("allowed = %v", e.Allowed)
				}
			}},
		{name: "a source that does not own an authority-adjacent surface is a policy violation",
			body: mustJSON(t, map[string]any{"source": "runtime.intruder", "surface": "runtime_approvals", "change_type": "created",
				"aggregate_type": "approval", "aggregate_id": "ap-1"}),
			status: 422, code: "policy_violation", field: "source", index: -1},
		{name: "mutates_authority_state on a plain surface is a policy violation",
			body:   mustJSON(t, with(heartbeat("ws-1"), "mutates_authority_state", true)),
			status: 422, code: "policy_violation", field: "mutates_authority_state", index: -1},
		{name: "an unknown JSON field is refused without echoing its value",
			body:   mustJSON(t, with(heartbeat("ws-1"), "api_key", secret)),
			status: 400, code: "invalid_change", field: "api_key", index: -1,
			check: func(t *testing.T, _ APIError, raw []byte) {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("the answer echoes the secret: %s", raw)
				}
			}},
		{name: "a supplied sequence is refused", body: mustJSON(t, with(heartbeat("ws-1"), "sequence", 7)),
			status: 400, code: "invalid_change", field: "sequence", index: -1},
		{name: "malformed JSON is refused", body: []byte(`{"surface": "runtime_work_session", `),
			status: 400, code: "invalid_change", field: "body", index: -1},
		{name: "an empty body is refused", body: []byte(" \n "),
			status: 400, code: "invalid_change", field: "body", index: -1},
		{name: "an empty array is refused", body: []byte(`[]`),
			status: 400, code: "invalid_change", field: "body", index: -1},
		{name: "a number where a change belongs is refused with its index", body: []byte(`[42]`),
			status: 400, code: "invalid_change", field: "body", index: 0},
		{name: "a batch with one bad record writes nothing and names its index",
			body:   mustJSON(t, []any{heartbeat("ws-a"), with(heartbeat("ws-b"), "surface", "runtime_nope"), heartbeat("ws-c")}),
			status: 400, code: "unknown_surface", field: "surface", index: 1},
		{name: "an NDJSON batch with one bad line writes nothing and names its index", contentType: "application/x-ndjson",
			body:   ndjson(t, heartbeat("ws-a"), heartbeat("ws-b"), with(heartbeat("ws-c"), "severity", "apocalyptic")),
			status: 400, code: "invalid_change", field: "severity", index: 2},
		{name: "a body over the byte limit is too large",
			body:   mustJSON(t, with(heartbeat("ws-1"), "metadata", map[string]any{"pad": strings.Repeat("x", 5000)})),
			status: 413, code: "too_large", index: -1},
		{name: "an array over the batch limit is too large",
			body:   mustJSON(t, []any{heartbeat("ws-1"), heartbeat("ws-2"), heartbeat("ws-3"), heartbeat("ws-4")}),
			status: 413, code: "too_large", index: -1},
		{name: "NDJSON over the batch limit is too large", contentType: "application/x-ndjson",
			body:   ndjson(t, heartbeat("ws-1"), heartbeat("ws-2"), heartbeat("ws-3"), heartbeat("ws-4")),
			status: 413, code: "too_large", index: -1},
		{name: "a text/plain body is refused (browsers send it cross-site)", contentType: "text/plain",
			body: mustJSON(t, heartbeat("ws-1")), status: 415, code: "unsupported_media_type", index: -1},
		{name: "a body without a content type is refused", contentType: "-",
			body: mustJSON(t, heartbeat("ws-1")), status: 415, code: "unsupported_media_type", index: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.lastSequence()
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			a := e.post("/v1/changes", ct, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			ae := a.errorBody(t)
			if ae.Code != tc.code || ae.Field != tc.field || ae.Message == "" {
				t.Fatalf("code %q field %q, want %q %q: %s", ae.Code, ae.Field, tc.code, tc.field, a.raw)
			}
			switch {
			case tc.index < 0 && ae.Index != nil:
				t.Errorf("index %d, want none", *ae.Index)
			case tc.index >= 0 && (ae.Index == nil || *ae.Index != tc.index):
				t.Errorf("index %v, want %d: %s", ae.Index, tc.index, a.raw)
			}
			if ae.RequestID == "" || a.header.Get(requestIDHeader) != ae.RequestID {
				t.Errorf("request id %q in the body, %q in the header", ae.RequestID, a.header.Get(requestIDHeader))
			}
			if tc.check != nil {
				tc.check(t, ae, a.raw)
			}
			if got := e.lastSequence(); got != before {
				t.Errorf("last_sequence moved from %d to %d", before, got)
			}
			if res := e.changes(fmt.Sprintf("after=%d", before)); len(res.Changes) != 0 {
				t.Errorf("%d new records are readable", len(res.Changes))
			}
		})
	}
}

func TestGetChangesFiltersOrdersAndPages(t *testing.T) {
	e := start(t, Config{})
	var objs []any
	for i := range 5 {
		objs = append(objs, heartbeat(fmt.Sprintf("ws-%d", i)))
	}
	objs = append(objs,
		map[string]any{"source": "runtime.agents", "surface": "runtime_agent_registry", "change_type": "created",
			"aggregate_type": "agent", "aggregate_id": "agent-7", "severity": "warning", "correlation_id": "corr-1"},
		with(heartbeat("ws-0"), "change_type", "updated", "severity", "error"),
	)
	if a := e.post("/v1/changes", "application/json", mustJSON(t, objs)); a.status != http.StatusCreated {
		t.Fatalf("seed: %d %s", a.status, a.raw)
	}
	seqs := func(b ChangesBody) []uint64 {
		var out []uint64
		for _, c := range b.Changes {
			out = append(out, c.Sequence)
		}
		return out
	}
	cases := []struct {
		name   string
		query  string
		want   []uint64
		order  string
		resume uint64 // resume_after
		more   bool
	}{
		{"without after the newest come first", "", []uint64{7, 6, 5, 4, 3, 2, 1}, "newest", 7, false},
		{"with after the oldest come first and resume_after is the head", "after=2", []uint64{3, 4, 5, 6, 7}, "oldest", 7, false},
		{"a limit cuts the answer and resume_after continues after it", "after=0&order=oldest&limit=2", []uint64{1, 2}, "oldest", 2, true},
		{"without a cursor order=oldest keeps the newest, printed oldest first", "order=oldest&limit=3", []uint64{5, 6, 7}, "oldest", 7, true},
		{"order=newest overrides the default for a cursor", "after=5&order=newest", []uint64{7, 6}, "newest", 7, false},
		{"a filter with no match still advances resume_after to the head", "after=1&surface=runtime_leases", nil, "oldest", 7, false},
		{"a cursor past the head answers the head and keeps the cursor", "after=99", nil, "oldest", 99, false},
		{"surfaces may be comma-separated", "surface=runtime_agent_registry,runtime_leases", []uint64{6}, "newest", 7, false},
		{"surfaces may be repeated", "surface=runtime_agent_registry&surface=runtime_work_session&limit=3", []uint64{7, 6, 5}, "newest", 7, true},
		{"change types filter", "change_type=updated,created", []uint64{7, 6}, "newest", 7, false},
		{"the aggregate filter needs type and id", "aggregate_type=work_session&aggregate_id=ws-0", []uint64{7, 1}, "newest", 7, false},
		{"the correlation id filter", "correlation_id=corr-1", []uint64{6}, "newest", 7, false},
		{"min_severity keeps that severity and above", "min_severity=warning", []uint64{7, 6}, "newest", 7, false},
		{"since as a duration ago includes recent records", "since=1h", []uint64{7, 6, 5, 4, 3, 2, 1}, "newest", 7, false},
		{"since as days ago includes recent records", "since=7d&limit=1", []uint64{7}, "newest", 7, true},
		{"until in the past excludes everything", "until=2000-01-01T00:00:00Z", nil, "newest", 7, false},
		{"an unescaped + in a time offset is read as a plus", "since=2000-01-01T02:00:00+02:00&limit=2", []uint64{7, 6}, "newest", 7, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.changes(tc.query)
			if fmt.Sprint(seqs(b)) != fmt.Sprint(tc.want) {
				t.Fatalf("sequences %v, want %v", seqs(b), tc.want)
			}
			if b.Order != tc.order || b.More != tc.more || b.Head != 7 || b.Horizon != 1 || b.ResumeAfter != tc.resume {
				t.Fatalf("order %q more %v head %d horizon %d resume_after %d", b.Order, b.More, b.Head, b.Horizon, b.ResumeAfter)
			}
			if withAfter := strings.Contains(tc.query, "after="); withAfter != (b.After != nil) {
				t.Fatalf("after echoed %v, want %v", b.After, withAfter)
			}
		})
	}
	t.Run("an empty answer has an empty changes array, not null", func(t *testing.T) {
		a := e.get("/v1/changes?surface=runtime_leases")
		if !bytes.Contains(a.raw, []byte(`"changes":[]`)) {
			t.Fatalf("answer: %s", a.raw)
		}
	})
}

func TestGetChangesRefusesBadParameters(t *testing.T) {
	e := start(t, Config{})
	cases := []struct {
		name, query, code, field, suggestion string
	}{
		{"an unknown parameter is refused", "surfaces=runtime_leases", "invalid_query", "surfaces", ""},
		{"a cursor that is not a number is refused", "after=abc", "invalid_query", "after", ""},
		{"a limit of zero is refused", "limit=0", "invalid_query", "limit", ""},
		{"a limit above the maximum is refused", fmt.Sprintf("limit=%d", MaxQueryLimit+1), "invalid_query", "limit", ""},
		{"an unknown order is refused", "order=sideways", "invalid_query", "order", ""},
		{"a since that is neither time nor duration is refused", "since=yesterday", "invalid_query", "since", ""},
		{"a negative duration is refused", "since=-5m", "invalid_query", "since", ""},
		{"until before since is refused", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "invalid_query", "until", ""},
		{"an aggregate id without its type is refused", "aggregate_id=ws-1", "invalid_query", "aggregate_type", ""},
		{"an unknown severity is refused", "min_severity=loud", "invalid_query", "min_severity", ""},
		{"an unknown change type is refused", "change_type=exploded", "invalid_query", "change_type", ""},
		{"a repeated single-valued parameter is refused", "after=1&after=2", "invalid_query", "after", ""},
		{"an unknown surface gets a suggestion", "surface=runtime_leasse", "unknown_surface", "surface", "runtime_leases"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.get("/v1/changes?" + tc.query)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			ae := a.errorBody(t)
			if ae.Code != tc.code || ae.Field != tc.field || ae.Suggestion != tc.suggestion {
				t.Fatalf("code %q field %q suggestion %q: %s", ae.Code, ae.Field, ae.Suggestion, a.raw)
			}
		})
	}
}

func TestACursorBelowTheHorizonIsGoneWithWhereToResume(t *testing.T) {
	// The engine cannot compact yet, so the answer is checked on the
	// writer the handler uses for engine.ErrCompacted.
	e := start(t, Config{})
	rec := httptest.NewRecorder()
	rec.Header().Set(requestIDHeader, "rid-1")
	e.srv.writeCompacted(rec, 3, 10)
	if rec.Code != http.StatusGone {
		t.Fatalf("status %d", rec.Code)
	}
	var eb ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatal(err)
	}
	if eb.Error.Code != "compacted" || eb.Error.Horizon != 10 || eb.Error.ResumeAfter == nil || *eb.Error.ResumeAfter != 9 ||
		eb.Error.After == nil || *eb.Error.After != 3 ||
		!strings.Contains(eb.Error.Message, "refetch") || eb.Error.RequestID != "rid-1" {
		t.Fatalf("error = %+v", eb.Error)
	}
	if err := decodeError(rec.Code, rec.Body.Bytes()); !errors.Is(err, engine.ErrCompacted) {
		t.Fatalf("the client sees %v, want engine.ErrCompacted", err)
	}
}
