package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

// Every endpoint refuses a parameter it does not take: a typo must not
// be ignored silently on one endpoint and refused on another.
func TestEveryEndpointRefusesAnUnknownQueryParameterAndListsTheAllowedOnes(t *testing.T) {
	e := start(t, Config{})
	cases := []struct {
		method, path string
		allowed      []string
	}{
		{http.MethodGet, "/v1/changes", queryParams},
		{http.MethodPost, "/v1/changes", nil},
		{http.MethodGet, "/v1/surfaces", nil},
		{http.MethodGet, "/v1/status", nil},
		{http.MethodPost, "/v1/validate", nil},
		{http.MethodPost, "/v1/compact", compactParams},
		{http.MethodGet, "/v1/stale", []string{"since"}},
		{http.MethodGet, "/v1/invalidations", []string{"since"}},
		{http.MethodGet, "/healthz", nil},
		{http.MethodGet, "/readyz", nil},
		{http.MethodGet, "/metrics", nil},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			ct := ""
			var body []byte
			if tc.method == http.MethodPost {
				ct, body = "application/json", []byte("{}")
			}
			// A bounded client: an endpoint that accepted the parameter and
			// began a stream must fail the test, not hang it.
			c := &http.Client{Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			a := do(t, c, tc.method, e.base+tc.path+"?sinse=5", ct, body, nil)
			if a.status != http.StatusBadRequest {
				t.Fatalf("?sinse=5: want 400, got %d %s", a.status, a.raw)
			}
			ae := a.errorBody(t)
			if ae.Code != CodeInvalidQuery || ae.Field != "sinse" || !slices.Equal(ae.Allowed, tc.allowed) {
				t.Fatalf("want invalid_query naming sinse and allowing %v, got %+v", tc.allowed, ae)
			}
			if !strings.Contains(ae.Message, tc.path) {
				t.Errorf("message does not name the endpoint: %q", ae.Message)
			}
		})
	}
}

func TestFollowIsAStrictBoolean(t *testing.T) {
	e := start(t, Config{})
	for _, v := range []string{"yes", "on", "", "2"} {
		a := e.get("/v1/changes?follow=" + v)
		if a.status != http.StatusBadRequest {
			t.Fatalf("follow=%q: want 400, got %d %s", v, a.status, a.raw)
		}
		if ae := a.errorBody(t); ae.Field != "follow" || !slices.Equal(ae.Allowed, []string{"true", "false", "1", "0"}) {
			t.Fatalf("follow=%q: want an error naming follow and the allowed words, got %+v", v, ae)
		}
	}
	// A recorded change, so that a stream from after=0 has a line to
	// send at once (a stream's headers go out with its first line).
	if a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-1"))); a.status != http.StatusCreated {
		t.Fatalf("record: %d %s", a.status, a.raw)
	}
	for _, v := range []string{"TRUE", "true", "1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/changes?after=0&follow="+v, nil)
		resp, err := e.tcp.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("follow=%s: %v", v, err)
		}
		ct := resp.Header.Get("Content-Type")
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
			t.Fatalf("follow=%s: want the NDJSON stream, got %d %s", v, resp.StatusCode, ct)
		}
	}
	// follow=0 / false is a plain query.
	if a := e.get("/v1/changes?follow=FALSE"); a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("follow=FALSE: want a JSON answer, got %d %s", a.status, a.header.Get("Content-Type"))
	}
}

func TestSinceAndUntilTakeEveryDocumentedTimeForm(t *testing.T) {
	e := start(t, Config{})
	for _, q := range []string{"since=2w", "since=2026-12-01", "since=36h&until=now", "since=2026-11-01T00:00:00Z&until=2026-12-01", "until=7d"} {
		if a := e.get("/v1/changes?" + q); a.status != http.StatusOK {
			t.Errorf("%s: want 200, got %d %s", q, a.status, a.raw)
		}
	}
	a := e.get("/v1/changes?since=1d&until=2d")
	if a.status != http.StatusBadRequest {
		t.Fatalf("since after until: want 400, got %d %s", a.status, a.raw)
	}
	if ae := a.errorBody(t); ae.Field != "until" || !strings.Contains(ae.Message, "since") {
		t.Fatalf("since after until: want an error naming both, got %+v", ae)
	}
	a = e.get("/v1/changes?since=yesterday")
	if ae := a.errorBody(t); a.status != 400 || ae.Field != "since" || !strings.Contains(ae.Problem, "2026-12-01") {
		t.Fatalf("since=yesterday: want 400 naming since and the allowed forms, got %d %+v", a.status, ae)
	}
}

func TestCompactDryRunAsAQueryParameterChangesNothing(t *testing.T) {
	e := start(t, Config{})
	for i := 0; i < 20; i++ {
		if a := e.post("/v1/changes", "application/json", mustJSON(t, heartbeat("ws-1"))); a.status != http.StatusCreated {
			t.Fatalf("record: %d %s", a.status, a.raw)
		}
	}
	for _, v := range []string{"1", "true", "TRUE"} {
		a := do(t, e.tcp, http.MethodPost, e.base+"/v1/compact?dry_run="+v, "", nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("dry_run=%s: %d %s", v, a.status, a.raw)
		}
		var rep engine.CompactReport
		a.decode(t, &rep)
		if !rep.DryRun {
			t.Fatalf("dry_run=%s: the report is not a dry run: %s", v, a.raw)
		}
		if st := e.j.Status(); st.ArchiveSegments != 0 || st.ArchiveRecords != 0 {
			t.Fatalf("dry_run=%s compacted for real: %d archives, %d archived records", v, st.ArchiveSegments, st.ArchiveRecords)
		}
	}
	for _, tc := range []struct{ query, body, field string }{
		{"dry_run=maybe", "", "dry_run"},
		{"dry_run=1", `{"dry_run":true}`, "dry_run"},
		{"max_bytes=lots", "", "max_bytes"},
		{"max_age=forever", "", "max_age"},
		{"max_records=-1", "", "max_records"},
	} {
		ct := ""
		if tc.body != "" {
			ct = "application/json"
		}
		a := do(t, e.tcp, http.MethodPost, e.base+"/v1/compact?"+tc.query, ct, []byte(tc.body), nil)
		if a.status != http.StatusBadRequest {
			t.Fatalf("%s %s: want 400, got %d %s", tc.query, tc.body, a.status, a.raw)
		}
		if ae := a.errorBody(t); ae.Field != tc.field {
			t.Fatalf("%s %s: want an error naming %s, got %+v", tc.query, tc.body, tc.field, ae)
		}
	}
	if st := e.j.Status(); st.ArchiveSegments != 0 {
		t.Fatalf("a refused compact request compacted: %d archives", st.ArchiveSegments)
	}
	// The sizes and durations of the CLI are taken here too.
	a := do(t, e.tcp, http.MethodPost, e.base+"/v1/compact?dry_run=1&max_bytes=1.5GiB&max_age=2w&coalesce=1m", "", nil, nil)
	if a.status != http.StatusOK {
		t.Fatalf("max_bytes=1.5GiB max_age=2w: %d %s", a.status, a.raw)
	}
}

func TestACompressedBodyIs415AndAByteOrderMarkIsIgnored(t *testing.T) {
	e := start(t, Config{})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mustJSON(t, heartbeat("ws-gz")))
	zw.Close()
	a := do(t, e.tcp, http.MethodPost, e.base+"/v1/changes", "application/json", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	if a.status != http.StatusUnsupportedMediaType {
		t.Fatalf("gzip body: want 415, got %d %s", a.status, a.raw)
	}
	if ae := a.errorBody(t); ae.Code != CodeUnsupportedMediaType || !strings.Contains(ae.Message, "gzip") || !strings.Contains(ae.Message, "identity") {
		t.Fatalf("gzip body: want an error naming gzip and what is accepted, got %+v", ae)
	}
	bom := append([]byte{0xEF, 0xBB, 0xBF}, mustJSON(t, heartbeat("ws-bom"))...)
	if a := e.post("/v1/changes", "application/json", bom); a.status != http.StatusCreated {
		t.Fatalf("a body with a byte order mark: want 201, got %d %s", a.status, a.raw)
	}
	bomNDJSON := append([]byte{0xEF, 0xBB, 0xBF}, ndjson(t, heartbeat("ws-bom-1"), heartbeat("ws-bom-2"))...)
	if a := e.post("/v1/changes", "application/x-ndjson", bomNDJSON); a.status != http.StatusCreated {
		t.Fatalf("NDJSON with a byte order mark: want 201, got %d %s", a.status, a.raw)
	}
	if got := e.lastSequence(); got != 3 {
		t.Fatalf("last sequence %d, want 3 (the gzip body refused, the BOM bodies recorded)", got)
	}
}

// rejected reads state_journal_rejected_total by reason.
func rejected(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "state_journal_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestRejectedTotalCountsEveryRefusedBody(t *testing.T) {
	e := start(t, Config{MaxBodyBytes: 4096})
	before := rejected(t, e.reg)
	bodies := []struct {
		name, ct string
		body     []byte
		header   map[string]string
		status   int
	}{
		{"JSON that does not parse", "application/json", []byte(`{"surface":`), nil, 400},
		{"a wrong type", "application/json", mustJSON(t, with(heartbeat("ws-1"), "aggregate_id", 42)), nil, 400},
		{"an unknown field", "application/json", mustJSON(t, with(heartbeat("ws-1"), "colour", "blue")), nil, 400},
		{"a body over the bound", "application/json", mustJSON(t, with(heartbeat("ws-1"), "metadata", map[string]any{"x": strings.Repeat("y", 8192)})), nil, 413},
		{"a compressed body", "application/json", []byte("\x1f\x8b"), map[string]string{"Content-Encoding": "gzip"}, 415},
		{"a body in another type", "text/plain", mustJSON(t, heartbeat("ws-1")), nil, 415},
	}
	for _, b := range bodies {
		a := do(t, e.tcp, http.MethodPost, e.base+"/v1/changes", b.ct, b.body, b.header)
		if a.status != b.status {
			t.Fatalf("%s: want %d, got %d %s", b.name, b.status, a.status, a.raw)
		}
	}
	after := rejected(t, e.reg)
	want := map[string]float64{"invalid_change": 3, "too_large": 1, "unsupported_media_type": 2}
	for reason, n := range want {
		if got := after[reason] - before[reason]; got != n {
			t.Errorf("state_journal_rejected_total{reason=%q} grew by %v, want %v (before %v, after %v)", reason, got, n, before, after)
		}
	}
}
