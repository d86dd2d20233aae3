package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

// FuzzChangesBody posts arbitrary bodies to POST /v1/changes on a real
// journal: the handler never panics and never answers 500, and every
// error answer is JSON with a code.
func FuzzChangesBody(f *testing.F) {
	seeds := []string{
		`{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"}`,
		`[{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"}]`,
		"{\"surface\":\"runtime_work_session\"}\n{\"surface\":\"x\"}\n",
		`{"surface":"runtime_work_sesion","metadata":{"a":{"b":{"c":{"d":1}}}}}`,
		`{"occurred_at":"not a time","sequence":3}`,
		`[1, "two", null, {}]`,
		`[`, `]`, `{`, `null`, `"str"`, `{}{}`, "[{}]\n[{}]", "\xff\xfe", "",
		`{"metadata":[1,2]}`, `{"changed_surfaces":"runtime_leases"}`, `{"mutates_authority_state":"yes"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	j, err := engine.Open(f.TempDir(), engine.WithSync(engine.SyncNone), engine.WithLogger(quietLogger()),
		engine.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { j.Close() })
	srv, err := New(j, Config{Listen: Disabled, Logger: quietLogger(), MaxBatch: 50, MaxBodyBytes: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		req := httptest.NewRequest(http.MethodPost, "/v1/changes", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if ndjson {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		case rec.Code == http.StatusCreated:
			var rb ReceiptsBody
			if err := json.Unmarshal(rec.Body.Bytes(), &rb); err != nil || len(rb.Receipts) == 0 {
				t.Fatalf("201 without receipts for %q: %s", body, rec.Body)
			}
		default:
			var eb ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" {
				t.Fatalf("status %d without a JSON error for %q: %s", rec.Code, body, rec.Body)
			}
		}
	})
}
