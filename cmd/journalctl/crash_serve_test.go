package main

// The SIGKILL campaign against a loaded `journalctl serve`: the real
// binary with auto-compaction on, 64 KiB segments and a record retention
// small enough that compaction and retention run all the time. Client
// goroutines post records (single JSON, JSON arrays and NDJSON batches)
// with their own event ids and a fixed occurred_at, and retry the very
// same body on every unknown outcome (connection error, timeout, 5xx)
// until they get receipts. The server is SIGKILLed at random moments and
// restarted.
//
// The oracle is exact because retention removes whole archives below a
// horizon every reader sees, and keeps more records than the clients write
// between two kills: after every kill, and at the end, every
// acknowledged event id whose receipt sequence is at or above the horizon
// is present exactly once at that sequence; one below it is absent (its
// archive was removed); no event id appears twice; sequences from the
// horizon to the head have no hole; and state-journal-validate is clean
// (before the restart only a torn tail, which the restart cuts, is
// allowed; after it, nothing). Every acknowledged record must have been
// seen readable at its sequence by at least one of those checks.
//
// CRASH_KILLS sets the number of kills (make crash runs 300).

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/testproc"
)

const (
	// --max-records: about 150 segments of 64 KiB, several times what the
	// clients write between two kills (up to about 10,000 records in the
	// 1.15 s of the longest load at the write path's present speed), so
	// every acknowledged record is checked readable at least once before
	// retention removes it (asserted).
	crashServeRetention = 30000
	crashServeClients   = 6
)

func crashServeKills() int {
	if n, err := strconv.Atoi(os.Getenv("CRASH_KILLS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 3
	}
	return 6
}

// crashOp is one request a client makes: its body and the event ids it
// carries, in order.
type crashOp struct {
	contentType string
	body        string
	ids         []string
}

// crashRecord is the JSON of one record with a writer-supplied event id
// and occurred_at, so a retry is the same content byte for byte.
func crashRecord(id string, at time.Time, i int) string {
	pad := strings.Repeat("p", i%90)
	switch i % 3 {
	case 0:
		return fmt.Sprintf(`{"event_id":%q,"occurred_at":%q,"surface":"runtime_work_session","change_type":"heartbeat","source":"runtime.work_session","aggregate_type":"work_session","aggregate_id":"ws-%d","metadata":{"i":%d,"pad":%q}}`,
			id, at.Format(time.RFC3339Nano), i%13, i, pad)
	case 1:
		return fmt.Sprintf(`{"event_id":%q,"occurred_at":%q,"surface":"runtime_leases","change_type":"created","source":"runtime.leases","aggregate_type":"lease","aggregate_id":"l-%d","metadata":{"i":%d,"pad":%q}}`,
			id, at.Format(time.RFC3339Nano), i%17, i, pad)
	default:
		return fmt.Sprintf(`{"event_id":%q,"occurred_at":%q,"surface":"runtime_notifications","change_type":"updated","source":"runtime.notifications","aggregate_type":"notification","aggregate_id":"n-%d","metadata":{"i":%d,"pad":%q}}`,
			id, at.Format(time.RFC3339Nano), i%7, i, pad)
	}
}

// crashMakeOp builds client w's n-th request: a single record, a JSON
// array of 5 or an NDJSON batch of 8.
func crashMakeOp(w, n int, next *int) crashOp {
	at := time.Now().UTC()
	size, ct := 1, "application/json"
	switch n % 4 {
	case 1:
		size = 5
	case 2:
		size, ct = 8, "application/x-ndjson"
	}
	op := crashOp{contentType: ct}
	var recs []string
	for k := 0; k < size; k++ {
		id := fmt.Sprintf("crash-c%d-%07d", w, *next)
		recs = append(recs, crashRecord(id, at, *next))
		op.ids = append(op.ids, id)
		*next++
	}
	switch {
	case size == 1:
		op.body = recs[0]
	case ct == "application/json":
		op.body = "[" + strings.Join(recs, ",") + "]"
	default:
		op.body = strings.Join(recs, "\n") + "\n"
	}
	return op
}

// crashLoad is the shared state of the clients and the controller.
type crashLoad struct {
	addr   atomic.Pointer[string] // the live server's host:port
	gate   sync.RWMutex           // held exclusively while the controller checks
	finish atomic.Bool            // clients finish their request in flight and stop
	abort  atomic.Bool            // the test failed: stop at once

	// epoch counts restarts; at each new one every client replays two of
	// its acknowledged requests (the last one and an older one, likely
	// archived by now), as a client replaying its outbox after an outage
	// would. Replays must come back duplicate: true at the first sequences.
	epoch    atomic.Int64
	replayLo atomic.Uint64 // replay only requests acknowledged at or above this (far above the horizon)

	mu        sync.Mutex
	acked     map[string]uint64 // event id -> receipt sequence
	replays   int               // replayed requests answered duplicate at the first sequences
	failures  []string
	ops       int
	attempts  int
	retried   int // requests that needed more than one attempt
	dupReplay int // receipts of a retry answered duplicate: true
	statuses  map[string]int
}

func (l *crashLoad) fail(format string, a ...any) {
	l.mu.Lock()
	l.failures = append(l.failures, fmt.Sprintf(format, a...))
	l.mu.Unlock()
	l.abort.Store(true)
}

// client posts requests until told to finish; each request is retried
// with the same body until it is answered with receipts.
func (l *crashLoad) client(w int, wg *sync.WaitGroup) {
	defer wg.Done()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	next := 0
	var history, pending []crashOp // acknowledged requests (newest last); replays to send
	epoch := l.epoch.Load()
	for n := 0; !l.finish.Load() && !l.abort.Load(); {
		if e := l.epoch.Load(); e != epoch && len(history) > 0 {
			// A restart: replay the oldest request still far above the
			// horizon, then the newest.
			epoch = e
			lo := l.replayLo.Load()
			l.mu.Lock()
			for _, h := range history {
				if l.acked[h.ids[0]] >= lo {
					pending = append(pending, h)
					break
				}
			}
			l.mu.Unlock()
			pending = append(pending, history[len(history)-1])
		}
		var op crashOp
		replay := len(pending) > 0
		if replay {
			op, pending = pending[0], pending[1:]
		} else {
			op = crashMakeOp(w, n, &next)
			n++
		}
		for attempt := 1; ; attempt++ {
			if l.abort.Load() {
				return
			}
			l.gate.RLock()
			addr := l.addr.Load()
			code, body, err := 0, []byte(nil), error(nil)
			if addr != nil {
				var resp *http.Response
				resp, err = hc.Post("http://"+*addr+"/v1/changes", op.contentType, strings.NewReader(op.body))
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
			}
			l.gate.RUnlock()
			key := "no server"
			switch {
			case addr == nil:
			case err != nil:
				key = "connection error"
			default:
				key = strconv.Itoa(code)
			}
			l.mu.Lock()
			l.attempts++
			l.statuses[key]++
			l.mu.Unlock()
			if err == nil && code == http.StatusCreated {
				var rb struct {
					Receipts []receipt `json:"receipts"`
				}
				if jerr := json.Unmarshal(body, &rb); jerr != nil || len(rb.Receipts) != len(op.ids) {
					l.fail("client %d: 201 with %d receipts for %d records (%v): %s", w, len(rb.Receipts), len(op.ids), jerr, body)
					return
				}
				l.mu.Lock()
				l.ops++
				if attempt > 1 {
					l.retried++
				}
				if replay {
					for k, rc := range rb.Receipts {
						if first := l.acked[op.ids[k]]; !rc.Duplicate || rc.Sequence != first || rc.EventID != op.ids[k] {
							l.failures = append(l.failures, fmt.Sprintf("DUPLICATED: client %d replayed acknowledged event %s (sequence %d) after a restart and got sequence %d duplicate=%t",
								w, op.ids[k], first, rc.Sequence, rc.Duplicate))
						}
					}
					l.replays++
					l.mu.Unlock()
					break
				}
				for k, rc := range rb.Receipts {
					if rc.EventID != op.ids[k] {
						l.failures = append(l.failures, fmt.Sprintf("client %d: receipt %d names %s, the request sent %s", w, k, rc.EventID, op.ids[k]))
					}
					if prev, ok := l.acked[rc.EventID]; ok && prev != rc.Sequence {
						l.failures = append(l.failures, fmt.Sprintf("event %s acknowledged at %d and again at %d", rc.EventID, prev, rc.Sequence))
					}
					l.acked[rc.EventID] = rc.Sequence
					if rc.Duplicate {
						if attempt == 1 {
							l.failures = append(l.failures, fmt.Sprintf("event %s: a first attempt was answered duplicate: true (sequence %d)", rc.EventID, rc.Sequence))
						}
						l.dupReplay++
					}
				}
				l.mu.Unlock()
				history = append(history, op)
				if len(history) > 64 {
					history = history[1:]
				}
				break
			}
			if err == nil && code >= 400 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout {
				// 409 event_id_conflict would mean a retry of the same body
				// is taken for other content; any other 4xx is a bad request.
				l.fail("client %d: a request answered %d (not an unknown outcome): %s", w, code, body)
				return
			}
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		}
	}
}

// crashCheck reads every record from the files and checks the oracle. It
// returns the horizon, the head, the records read and how many
// acknowledged records lie below the horizon.
func crashCheck(t *testing.T, dir string, acked map[string]uint64, verified map[string]bool, final bool) (horizon, head uint64, n, below int, problems []string) {
	t.Helper()
	l := list(t, dir, "-n", "0")
	horizon, head = l.Horizon, l.Head
	seen := map[string][]uint64{}
	bySeq := map[uint64]string{}
	for _, c := range l.Changes {
		seq := seqOf(t, c)
		id, _ := c["event_id"].(string)
		seen[id] = append(seen[id], seq)
		bySeq[seq] = id
	}
	n = len(l.Changes)
	for s := horizon; s <= head && s > 0; s++ {
		if _, ok := bySeq[s]; !ok {
			problems = append(problems, fmt.Sprintf("hole: sequence %d (horizon %d, head %d) is not readable", s, horizon, head))
			break
		}
	}
	for id, seqs := range seen {
		if len(seqs) > 1 {
			problems = append(problems, fmt.Sprintf("DUPLICATED: event %s stored %d times, at sequences %v (acknowledged at %d)", id, len(seqs), seqs, acked[id]))
		}
	}
	for id, seq := range acked {
		got := seen[id]
		switch {
		case seq < horizon && len(got) == 0:
			below++
		case seq < horizon:
			problems = append(problems, fmt.Sprintf("event %s acknowledged at %d, below the horizon %d, is readable at %v", id, seq, horizon, got))
		case len(got) == 0:
			problems = append(problems, fmt.Sprintf("LOST: event %s acknowledged at sequence %d is not readable (horizon %d, head %d, sequence %d holds %q)", id, seq, horizon, head, seq, bySeq[seq]))
		case got[0] != seq:
			problems = append(problems, fmt.Sprintf("MOVED: event %s acknowledged at %d is at %v", id, seq, got))
		default:
			verified[id] = true
		}
	}
	if final {
		for id, seqs := range seen {
			if _, ok := acked[id]; !ok {
				problems = append(problems, fmt.Sprintf("event %s at %v was never acknowledged, yet every request ended with receipts", id, seqs))
			}
		}
	}
	return horizon, head, n, below, problems
}

type crashValidation struct {
	Clean         bool `json:"clean"`
	WriterRunning bool `json:"writer_running"`
	Problems      []struct {
		Severity string `json:"severity"`
		Kind     string `json:"kind"`
		Segment  string `json:"segment"`
		Message  string `json:"message"`
	} `json:"problems"`
}

// crashValidate runs state-journal-validate --json. Before a restart a
// torn tail (which the next open cuts) is the only problem allowed.
func crashValidate(t *testing.T, dir string, allowTorn bool) (crashValidation, []string) {
	t.Helper()
	r := jc(t, dir, "state-journal-validate", "--json")
	var v crashValidation
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		return v, []string{fmt.Sprintf("validate --json did not answer JSON: %s", r)}
	}
	var bad []string
	for _, p := range v.Problems {
		if p.Severity == "info" || (allowTorn && p.Kind == "torn_tail") {
			continue
		}
		bad = append(bad, fmt.Sprintf("validate: %s %s in %s: %s", p.Severity, p.Kind, p.Segment, p.Message))
	}
	if !v.Clean && len(bad) == 0 && !allowTorn {
		bad = append(bad, "validate: not clean: "+r.stdout)
	}
	if (r.code == 0) != v.Clean {
		bad = append(bad, fmt.Sprintf("validate: exit %d but clean=%t", r.code, v.Clean))
	}
	return v, bad
}

// crashStart starts the server and waits until /readyz answers 200: the
// open (recovery, index load) is done. /healthz answers while it runs.
func crashStart(t *testing.T, dir string, args []string) *serverProc {
	t.Helper()
	srv := startServer(t, dir, args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := srv.client.Get("http://" + srv.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv
			}
		}
		select {
		case <-srv.done:
			t.Fatalf("journalctl serve exited %d before it was ready:\n%s", srv.exitCode(), srv.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("journalctl serve was not ready within 60s:\n%s", srv.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCrashServeKilledUnderLoadKeepsEveryAcknowledgedEventIDExactlyOnce(t *testing.T) {
	kills := crashServeKills()
	dir := shortDir(t)
	args := []string{"--segment-size", "64KiB", "--max-records", strconv.Itoa(crashServeRetention), "--max-bytes", "0", "--max-age", "0"}
	load := &crashLoad{acked: map[string]uint64{}, statuses: map[string]int{}}
	var wg sync.WaitGroup
	start := time.Now()

	srv := crashStart(t, dir, args)
	load.addr.Store(&srv.addr)
	for w := 0; w < crashServeClients; w++ {
		wg.Add(1)
		go load.client(w, &wg)
	}
	defer func() {
		load.abort.Store(true)
		wg.Wait()
	}()

	var (
		tornTails, validations, maxHead uint64
		lastHorizon                     uint64
		verified                        = map[string]bool{} // acknowledged ids seen readable at their sequence by a check
	)
	failNow := func(kill int, what []string) {
		load.abort.Store(true)
		t.Fatalf("after kill %d of %d:\n  %s\nserver stderr (last run):\n%s", kill, kills, strings.Join(what[:min(len(what), 30)], "\n  "), srv.stderr.String())
	}
	for k := 1; k <= kills; k++ {
		// Kill at a random moment: often right after the start (during the
		// open's own compaction), usually under full load.
		d := testproc.Between(150*time.Millisecond, 1150*time.Millisecond)
		if rand.IntN(5) == 0 {
			d = testproc.Between(0, 40*time.Millisecond)
		}
		time.Sleep(d)
		select {
		case <-srv.done:
			failNow(k, []string{fmt.Sprintf("the server exited by itself (code %d)", srv.exitCode())})
		default:
		}
		load.addr.Store(nil)
		srv.proc.Kill()
		srv.client.CloseIdleConnections()

		// The server is down: the acknowledged set cannot grow.
		load.gate.Lock()
		load.mu.Lock()
		acked := make(map[string]uint64, len(load.acked))
		for id, s := range load.acked {
			acked[id] = s
		}
		fails := append([]string(nil), load.failures...)
		load.mu.Unlock()
		if len(fails) > 0 {
			load.gate.Unlock()
			failNow(k, fails)
		}
		v, bad := crashValidate(t, dir, true)
		validations++
		for _, p := range v.Problems {
			if p.Kind == "torn_tail" {
				tornTails++
			}
		}
		horizon, head, n, below, problems := crashCheck(t, dir, acked, verified, false)
		if horizon < lastHorizon {
			problems = append(problems, fmt.Sprintf("the horizon went back from %d to %d", lastHorizon, horizon))
		}
		lastHorizon, maxHead = horizon, max(maxHead, head)
		if len(bad)+len(problems) > 0 {
			load.gate.Unlock()
			failNow(k, append(bad, problems...))
		}

		srv = crashStart(t, dir, args)
		// Validate beside the restarted server before the clients resume:
		// the open has cut any torn tail; nothing else may be wrong.
		if _, bad := crashValidate(t, dir, false); len(bad) > 0 {
			load.gate.Unlock()
			failNow(k, bad)
		}
		validations++
		lo := horizon
		if head > 1500 {
			lo = max(lo, head-1500) // retention keeps far more than the newest 1500
		}
		load.replayLo.Store(lo)
		load.epoch.Add(1)
		load.addr.Store(&srv.addr)
		load.gate.Unlock()
		if k%25 == 0 || k == kills {
			t.Logf("kill %d: %d acknowledged (%d below the horizon %d), %d readable, head %d", k, len(acked), below, horizon, n, head)
		}
	}

	// Let every client finish its request in flight (retrying until it
	// has receipts), then stop the server cleanly and check once more.
	load.finish.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the clients did not finish their last requests within 2 minutes\nserver stderr:\n%s", srv.stderr.String())
	}
	if c := srv.stop(t); c != 0 {
		t.Fatalf("server exit %d after SIGTERM\n%s", c, srv.stderr.String())
	}
	load.mu.Lock()
	defer load.mu.Unlock()
	if len(load.failures) > 0 {
		t.Fatalf("clients:\n  %s", strings.Join(load.failures[:min(len(load.failures), 30)], "\n  "))
	}
	_, bad := crashValidate(t, dir, false)
	validations++
	horizon, head, n, below, problems := crashCheck(t, dir, load.acked, verified, true)
	unverified := 0
	for id := range load.acked {
		if !verified[id] {
			unverified++
		}
	}
	if unverified > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged records were removed by retention before any check saw them: raise crashServeRetention above what the clients write between two kills", unverified))
	}
	lost, dup := 0, 0
	for _, p := range problems {
		if strings.HasPrefix(p, "LOST") {
			lost++
		}
		if strings.HasPrefix(p, "DUPLICATED") {
			dup++
		}
	}
	t.Logf("serve SIGKILL campaign: %d kills in %s; %d requests (%d attempts, %d retried after an unknown outcome, %d retried records answered duplicate: true); "+
		"%d acknowledged event ids, each seen readable once at its sequence by a check (%d still readable, %d below the final horizon %d, removed by retention); head %d (max %d); "+
		"%d acknowledged requests replayed after a restart, all answered duplicate at their first sequences; "+
		"%d lost, %d duplicated; %d validations clean (%d torn tails seen before a restart); answers %v",
		kills, time.Since(start).Round(time.Second), load.ops, load.attempts, load.retried, load.dupReplay,
		len(load.acked), len(load.acked)-below, below, horizon, head, maxHead, load.replays, lost, dup, validations, tornTails, load.statuses)
	if len(bad)+len(problems) > 0 {
		t.Fatalf("at the end (%d readable records):\n  %s", n, strings.Join(append(bad, problems...)[:min(len(bad)+len(problems), 30)], "\n  "))
	}
}
