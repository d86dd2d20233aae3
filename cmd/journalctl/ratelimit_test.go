package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// serve --rate-limit caps each source of the built binary's server: a
// source over its rate gets its whole body refused with 429 rate_limited
// and a Retry-After, nothing of it is written, another source still
// writes, and the CLI's record through the server exits 1 with the code.
func TestServeRateLimitRefusesASourceOverItsRateWholeAndSparesTheOthers(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	// 0.01 records per second: the burst of 5 does not refill during the test.
	srv := startServer(t, dir, "--rate-limit", "0.01", "--rate-burst", "5", "--log-level", "info")

	if code, body := srv.post(t, "application/x-ndjson", heartbeats("ws-a", 5)); code != http.StatusCreated {
		t.Fatalf("the first 5 records of a source within its burst: want 201, got %d %s", code, body)
	}
	resp, err := srv.client.Post("http://"+srv.addr+"/v1/changes", "application/x-ndjson", strings.NewReader(heartbeats("ws-over", 3)))
	if err != nil {
		t.Fatal(err)
	}
	var refused struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || refused.Error.Code != "rate_limited" || retry < 1 {
		t.Fatalf("a body over the source's rate: want 429 rate_limited with Retry-After >= 1s, got %d %q Retry-After %q",
			resp.StatusCode, refused.Error.Code, resp.Header.Get("Retry-After"))
	}

	// Another source has its own budget.
	other := `{"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.other","aggregate_type":"work_session","aggregate_id":"ws-b"}`
	if code, body := srv.post(t, "application/json", other); code != http.StatusCreated {
		t.Fatalf("another source: want 201, got %d %s", code, body)
	}

	// The CLI writes through the server and reports the refusal as code
	// rate_limited, exit 1 (refused, not a usage error).
	r := jc(t, dir, "state-journal-record", "--surface", "runtime_work_session", "--change-type", "heartbeat",
		"--source", "runtime.work_session", "--aggregate-id", "ws-cli", "--json")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, `"rate_limited"`) {
		t.Fatalf("record through a server over the source's rate: want exit 1 with code rate_limited, got %s", r)
	}

	// Nothing of the refused bodies was written: 5 + 1 records.
	if st := status(t, dir); st.LastSequence != 6 {
		t.Fatalf("want 6 records written (the refused bodies wrote nothing), last sequence %d", st.LastSequence)
	}
	if log := srv.stderr.String(); !strings.Contains(log, "code=rate_limited") || !strings.Contains(log, "source=runtime.work_session") {
		t.Errorf("the server did not log the refusal with its code:\n%s", srv.stderr.String())
	}
}

func TestServeRefusesABadRateLimitAsAUsageError(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--rate-limit", "-1"},
		{"serve", "--listen", "127.0.0.1:0", "--rate-limit", "fast"},
		{"serve", "--listen", "127.0.0.1:0", "--rate-limit", "10", "--rate-burst", "-3"},
	} {
		r := jc(t, dir, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--rate-") {
			t.Errorf("%v: want exit 2 naming the flag, got %s", args, r)
		}
	}
}
