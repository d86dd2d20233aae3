package server

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/engine"
)

func getJSON(t *testing.T, c *http.Client, url string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: not JSON: %s", url, b)
	}
	return resp.StatusCode, m
}

// While the journal opens the address answers "starting"; after the
// handoff the same address serves the journal, without a gap.
func TestTheProbesAnswerStartingUntilTheJournalIsOpen(t *testing.T) {
	st, err := ListenStarting("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + st.Addr()
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	if code, m := getJSON(t, c, base+"/healthz"); code != 200 || m["status"] != "starting" {
		t.Fatalf("healthz while starting: %d %v", code, m)
	}
	if code, m := getJSON(t, c, base+"/readyz"); code != 503 || m["status"] != "starting" {
		t.Fatalf("readyz while starting: %d %v", code, m)
	}
	if code, m := getJSON(t, c, base+"/v1/status"); code != 503 || m["error"].(map[string]any)["code"] != CodeStarting {
		t.Fatalf("status while starting: %d %v", code, m)
	}

	reg := prometheus.NewRegistry()
	j, err := engine.Open(t.TempDir(), engine.WithRegisterer(reg), engine.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	srv, err := New(j, Config{Listener: st.Handoff(), Socket: Disabled, Logger: quietLogger(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != st.Addr() {
		t.Fatalf("the server listens on %s, the starting probes were on %s", srv.Addr(), st.Addr())
	}
	stop := serve(t, srv)
	defer stop()
	if code, m := getJSON(t, c, base+"/readyz"); code != 200 || m["status"] != "ready" {
		t.Fatalf("readyz once open: %d %v", code, m)
	}
	if code, _ := getJSON(t, c, base+"/v1/status"); code != 200 {
		t.Fatalf("status once open: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestAStartingListenerIsReleasedWhenTheJournalCannotOpen(t *testing.T) {
	st, err := ListenStarting("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := st.Addr()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := ListenStarting(addr)
	if err != nil {
		t.Fatalf("the address was not released: %v", err)
	}
	again.Close()
}
