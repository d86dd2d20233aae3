// Command relaybench measures the NATS relay (make bench runs it): relay
// throughput and lag while 64 writers load the journal (sync=always), and
// the relay's cost to those writers as a ratio against the same load
// without a relay, measured in the same run with the rounds interleaved;
// then how fast the relay ships a backlog. The JetStream server runs in a
// child process (this binary re-executed), as it would on another
// machine; on a small machine it still shares the CPUs, so the cost
// figure is an upper bound.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/agentruntime/statejournal/bench/enginetarget"
	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/relay"
)

// Round is one interleaved pair of runs.
type Round struct {
	BaseRecordsPerSec  float64 `json:"base_records_per_sec"`
	RelayRecordsPerSec float64 `json:"relay_records_per_sec"`
	ShippedPerSec      float64 `json:"shipped_per_sec"` // shipped during the load ÷ load time
	MaxLagRecords      uint64  `json:"max_lag_records"`
	MaxLagSeconds      float64 `json:"max_lag_seconds"`
	DrainSeconds       float64 `json:"drain_seconds"` // from the load's end until the relay caught up
	// CPU per written record of this process (writers, engine and, in
	// the relay run, the relay; not the NATS server), user + system.
	BaseCPUMicros  float64 `json:"base_cpu_us_per_record"`
	RelayCPUMicros float64 `json:"relay_cpu_us_per_record"`
}

// Result is what relaybench reports.
type Result struct {
	Writers          int     `json:"writers"`
	Rounds           []Round `json:"rounds"`
	Median           Round   `json:"median"`     // the round with the median cost ratio
	CostRatio        float64 `json:"cost_ratio"` // relay ÷ base writer records/s, median round
	BacklogRecords   int     `json:"backlog_records"`
	BacklogPerSec    float64 `json:"backlog_records_per_sec"`
	BacklogCPUSecond float64 `json:"-"`
}

func main() {
	if store := os.Getenv("RELAYBENCH_NATS_STORE"); store != "" {
		natsChild(store)
		return
	}
	writers := flag.Int("writers", 64, "concurrent writers")
	dur := flag.Duration("duration", 2*time.Second, "length of each load run")
	count := flag.Int("count", 5, "interleaved rounds (the median is reported)")
	backlog := flag.Int("backlog", 200_000, "records of the backlog the relay ships")
	smoke := flag.Bool("smoke", false, "one short round and a small backlog (CI)")
	asJSON := flag.Bool("json", false, "print JSON")
	strict := flag.Bool("strict", false, "exit 1 when a target is missed")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile (writers and relay) to the file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *smoke {
		*dur, *count, *backlog = 300*time.Millisecond, 1, 5_000
	}
	dir, err := os.MkdirTemp("", "relaybench")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	url, stop, err := startNATSChild(filepath.Join(dir, "nats"))
	if err != nil {
		fail(err)
	}
	defer stop()
	res := Result{Writers: *writers, BacklogRecords: *backlog}
	for i := 0; i < *count; i++ {
		var rd Round
		rd.BaseRecordsPerSec, err = loadRun(filepath.Join(dir, fmt.Sprintf("base-%d", i)), *writers, *dur, "", "", &rd)
		if err != nil {
			fail(err)
		}
		rd.RelayRecordsPerSec, err = loadRun(filepath.Join(dir, fmt.Sprintf("relay-%d", i)), *writers, *dur, url, fmt.Sprintf("load-%d", i), &rd)
		if err != nil {
			fail(err)
		}
		res.Rounds = append(res.Rounds, rd)
	}
	sorted := slices.Clone(res.Rounds)
	slices.SortFunc(sorted, func(a, b Round) int {
		ra, rb := a.RelayRecordsPerSec/a.BaseRecordsPerSec, b.RelayRecordsPerSec/b.BaseRecordsPerSec
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return 0
	})
	res.Median = sorted[len(sorted)/2]
	res.CostRatio = res.Median.RelayRecordsPerSec / res.Median.BaseRecordsPerSec
	if res.BacklogPerSec, err = backlogRun(filepath.Join(dir, "backlog"), url, *backlog); err != nil {
		fail(err)
	}
	checks := []string{check("relay costs the writers < 10% of their records/s (relay ÷ base >= 0.90)", res.CostRatio >= 0.90, fmt.Sprintf("%.3f", res.CostRatio)),
		check("the relay keeps up with the writers (largest lag < 1 s, caught up < 1 s after the load, every round)", keptUp(res.Rounds), fmt.Sprintf("%.0f shipped/s for %.0f written/s in the median round", res.Median.ShippedPerSec, res.Median.RelayRecordsPerSec))}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"result": res, "checks": checks})
	} else {
		fmt.Printf("relay to JetStream (nats-server in a child process), %d writers, sync=always, %d round(s) of %s, interleaved:\n", *writers, *count, *dur)
		for i, r := range res.Rounds {
			fmt.Printf("  round %d: writers alone %.0f rec/s (%.1f CPU µs/rec); with the relay %.0f rec/s (x%.3f, %.1f CPU µs/rec); shipped %.0f rec/s; max lag %d records, %.3f s; caught up %.3f s after the load\n",
				i+1, r.BaseRecordsPerSec, r.BaseCPUMicros, r.RelayRecordsPerSec, r.RelayRecordsPerSec/r.BaseRecordsPerSec, r.RelayCPUMicros, r.ShippedPerSec, r.MaxLagRecords, r.MaxLagSeconds, r.DrainSeconds)
		}
		fmt.Printf("median: writers with the relay at x%.3f of their records/s alone\n", res.CostRatio)
		fmt.Printf("backlog: %d records shipped at %.0f records/s\n", res.BacklogRecords, res.BacklogPerSec)
		for _, c := range checks {
			fmt.Println("  " + c)
		}
	}
	if *strict {
		for _, c := range checks {
			if strings.HasSuffix(c, "MISS") {
				os.Exit(1)
			}
		}
	}
}

// keptUp reports whether the relay's lag stayed bounded in every round.
func keptUp(rounds []Round) bool {
	for _, r := range rounds {
		if r.MaxLagSeconds >= 1 || r.DrainSeconds >= 1 {
			return false
		}
	}
	return true
}

func check(what string, ok bool, got string) string {
	v := "ok"
	if !ok {
		v = "MISS"
	}
	return fmt.Sprintf("%s: %s %s", what, got, v)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "relaybench:", err)
	os.Exit(1)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// loadRun runs the writers on a fresh journal for dur and returns their
// records/s; with a NATS url it relays the journal meanwhile and fills rd.
func loadRun(dir string, writers int, dur time.Duration, url, host string, rd *Round) (float64, error) {
	t, err := enginetarget.Open(filepath.Join(dir, "data"), filepath.Join(dir, "root"), workload.SyncAlways)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	j := t.Journal()
	var r *relay.Relay
	var stopRelay func() error
	if url != "" {
		if r, err = relay.New(j, relay.Config{URL: url, Host: host, Logger: quiet, Tick: 20 * time.Millisecond}); err != nil {
			return 0, err
		}
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		var stopped bool
		var runErr error
		stopRelay = func() error {
			if !stopped {
				cancel()
				runErr, stopped = <-done, true
			}
			return runErr
		}
		defer stopRelay()
		for r.Status().StreamReport == nil { // the stream checked: the relay is ready
			time.Sleep(5 * time.Millisecond)
		}
	}
	sampleDone := make(chan struct{})
	stopSample := make(chan struct{})
	go func() {
		defer close(sampleDone)
		if r == nil {
			return
		}
		tk := time.NewTicker(25 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSample:
				return
			case <-tk.C:
			}
			st := r.Status()
			rd.MaxLagRecords = max(rd.MaxLagRecords, st.LagRecords)
			rd.MaxLagSeconds = max(rd.MaxLagSeconds, st.LagSeconds)
		}
	}()
	cpu0 := cpuTime()
	res, err := workload.Run(context.Background(), t, workload.Spec{Writers: writers, Duration: dur})
	cpu := cpuTime() - cpu0
	close(stopSample)
	<-sampleDone
	if err != nil {
		return 0, err
	}
	perRec := float64(cpu.Microseconds()) / float64(max(res.Records, 1))
	if r == nil {
		rd.BaseCPUMicros = perRec
	} else {
		rd.RelayCPUMicros = perRec
	}
	if r != nil {
		shipped := r.Status().Shipped
		rd.ShippedPerSec = float64(shipped) / res.Elapsed.Seconds()
		end := time.Now()
		head := j.Head()
		for r.Status().Shipped < head {
			time.Sleep(time.Millisecond)
		}
		rd.DrainSeconds = time.Since(end).Seconds()
		if err := stopRelay(); err != nil {
			return 0, err
		}
	}
	return float64(res.Records) / res.Elapsed.Seconds(), nil
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backlogRun writes n records, then measures how fast a relay ships them.
func backlogRun(dir, url string, n int) (float64, error) {
	j, err := engine.Open(dir, engine.WithSync(engine.SyncNone), engine.WithLogger(quiet))
	if err != nil {
		return 0, err
	}
	defer j.Close()
	rec := workload.Heartbeat(0)
	batch := make([]engine.Change, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, engine.Change{Source: rec.Source, Surface: rec.Surface, ChangeType: rec.ChangeType, AggregateType: rec.AggregateType,
			AggregateID: rec.AggregateID, Metadata: rec.Metadata})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := j.RecordBatch(context.Background(), batch); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	r, err := relay.New(j, relay.Config{URL: url, Host: "backlog", Logger: quiet, Tick: 20 * time.Millisecond})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	for r.Status().Shipped < uint64(n) {
		select {
		case err := <-done:
			cancel()
			return 0, fmt.Errorf("relay stopped: %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	cancel()
	return float64(n) / el.Seconds(), <-done
}

// startNATSChild runs this binary as a JetStream server with its store
// in store, and returns its client URL.
func startNATSChild(store string) (string, func(), error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RELAYBENCH_NATS_STORE="+store)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		stop()
		return "", nil, fmt.Errorf("the nats-server child printed no URL")
	}
	return strings.TrimSpace(sc.Text()), stop, nil
}

// natsChild is the child: an embedded JetStream server on a loopback
// port, its URL on stdout, until killed.
func natsChild(store string) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		fail(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fail(fmt.Errorf("nats-server not ready"))
	}
	fmt.Println(s.ClientURL())
	select {}
}
