// Command relaybench measures the NATS relay (make bench runs it): relay
// throughput and lag while 64 writers load the journal (sync=always), and
// the relay's cost to those writers as a ratio against the same load
// without a relay, measured in the same run with the rounds interleaved;
// then how fast the relay ships a backlog. To say where the cost goes,
// each round also runs the writers beside a read-only diagnostic (the
// relay's reading and encoding, no publish) and reports the JetStream
// server's CPU per shipped record. The server runs in a child process
// (this binary re-executed), as it would on another machine; on a small
// machine it still shares the CPUs (-pin pins it to its own).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/agentruntime/statejournal/bench/enginetarget"
	"github.com/agentruntime/statejournal/bench/host"
	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/relay"
)

// Round is one interleaved triple of runs on fresh journals: the writers
// alone, the writers with a diagnostic reader that does the relay's
// reading and encoding but publishes nothing, and the writers with the
// relay. The NATS server child runs (idle) in the first two as well, so
// every run has the same processes.
type Round struct {
	BaseRecordsPerSec  float64 `json:"base_records_per_sec"`
	ReadRecordsPerSec  float64 `json:"read_only_records_per_sec"`
	RelayRecordsPerSec float64 `json:"relay_records_per_sec"`
	ShippedPerSec      float64 `json:"shipped_per_sec"` // shipped during the load ÷ load time
	MaxLagRecords      uint64  `json:"max_lag_records"`
	MaxLagSeconds      float64 `json:"max_lag_seconds"`
	DrainSeconds       float64 `json:"drain_seconds"` // from the load's end until the relay caught up
	// CPU per written record of this process (writers, engine and, in
	// the read-only run, the reader; in the relay run, the relay), user +
	// system, over the load phase.
	BaseCPUMicros  float64 `json:"base_cpu_us_per_record"`
	ReadCPUMicros  float64 `json:"read_only_cpu_us_per_record"`
	RelayCPUMicros float64 `json:"relay_cpu_us_per_record"`
	// The NATS server child's CPU over the load phase: per written
	// record while idle (the base run), per record shipped during the
	// load in the relay run.
	BaseServerCPUMicros float64 `json:"base_server_cpu_us_per_record"`
	ServerCPUMicros     float64 `json:"server_cpu_us_per_shipped_record"`
	// ReadPerSec is what the read-only reader read during the load ÷
	// load time (it must keep up for its CPU to count every record).
	ReadPerSec float64 `json:"read_only_read_per_sec"`
}

// ReadRatio is the writers' records/s with the read-only reader ÷ alone.
func (r Round) ReadRatio() float64 { return r.ReadRecordsPerSec / r.BaseRecordsPerSec }

// RelayRatio is the writers' records/s with the relay ÷ alone.
func (r Round) RelayRatio() float64 { return r.RelayRecordsPerSec / r.BaseRecordsPerSec }

// Result is what relaybench reports.
type Result struct {
	Writers          int     `json:"writers"`
	Pinned           bool    `json:"pinned"` // writers' process on CPU 0, the NATS server on CPU 1
	LoadAvgStart     float64 `json:"load_avg_start"`
	LoadAvgEnd       float64 `json:"load_avg_end"`
	Rounds           []Round `json:"rounds"`
	Median           Round   `json:"median"`          // the round with the median cost ratio
	CostRatio        float64 `json:"cost_ratio"`      // relay ÷ base writer records/s, median round
	ReadRatio        float64 `json:"read_only_ratio"` // read-only ÷ base, median of the rounds' ratios
	BacklogRecords   int     `json:"backlog_records"`
	BacklogPerSec    float64 `json:"backlog_records_per_sec"`
	BacklogCPUSecond float64 `json:"-"`
}

// mode is what runs beside the writers in one load run.
type mode int

const (
	alone    mode = iota // the writers only (the NATS server child idle)
	readOnly             // plus a reader doing the relay's read and encode, no publish
	relayed              // plus the relay publishing to the NATS server child
)

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
	pin := flag.Bool("pin", false, "pin the writers' process to CPU 0 and the NATS server child to CPU 1 (a diagnostic: the server's CPU no longer competes with the writers)")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile (writers and relay) to the file")
	flag.Parse()
	if *pin {
		if runtime.NumCPU() < 2 {
			fail(fmt.Errorf("-pin needs 2 CPUs, this machine has %d", runtime.NumCPU()))
		}
		if err := pinTo(0); err != nil {
			fail(err)
		}
	}
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
	srv, err := startNATSChild(filepath.Join(dir, "nats"), *pin)
	if err != nil {
		fail(err)
	}
	defer srv.stop()
	res := Result{Writers: *writers, BacklogRecords: *backlog, Pinned: *pin}
	res.LoadAvgStart, _ = host.LoadAvg()
	for i := 0; i < *count; i++ {
		var rd Round
		for _, m := range []mode{alone, readOnly, relayed} {
			if err := loadRun(filepath.Join(dir, fmt.Sprintf("%d-%d", m, i)), *writers, *dur, m, srv, fmt.Sprintf("load-%d", i), &rd); err != nil {
				fail(err)
			}
		}
		res.Rounds = append(res.Rounds, rd)
	}
	sorted := slices.Clone(res.Rounds)
	slices.SortFunc(sorted, func(a, b Round) int { return cmp.Compare(a.RelayRatio(), b.RelayRatio()) })
	res.Median = sorted[len(sorted)/2]
	res.CostRatio = res.Median.RelayRatio()
	reads := make([]float64, len(res.Rounds))
	for i, r := range res.Rounds {
		reads[i] = r.ReadRatio()
	}
	slices.Sort(reads)
	res.ReadRatio = reads[len(reads)/2]
	if res.BacklogPerSec, err = backlogRun(filepath.Join(dir, "backlog"), srv.url, *backlog); err != nil {
		fail(err)
	}
	res.LoadAvgEnd, _ = host.LoadAvg()
	checks := []string{check("relay costs the writers < 10% of their records/s (relay ÷ base >= 0.90)", res.CostRatio >= 0.90, fmt.Sprintf("%.3f", res.CostRatio)),
		check("the relay keeps up with the writers (largest lag < 1 s, caught up < 1 s after the load, every round)", keptUp(res.Rounds), fmt.Sprintf("%.0f shipped/s for %.0f written/s in the median round", res.Median.ShippedPerSec, res.Median.RelayRecordsPerSec))}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"result": res, "checks": checks})
	} else {
		pinned := "unpinned (the NATS server shares the writers' CPUs)"
		if *pin {
			pinned = "pinned: writers' process on CPU 0, NATS server on CPU 1"
		}
		fmt.Printf("relay to JetStream (nats-server in a child process), %d writers, sync=always, %d round(s) of %s, interleaved; %d CPUs, %s; load average %.2f at start\n",
			*writers, *count, *dur, runtime.NumCPU(), pinned, res.LoadAvgStart)
		fmt.Println("  CPU µs/rec: the writers' process (writers, engine, reader or relay) per written record; server: the NATS child per shipped record")
		for i, r := range res.Rounds {
			fmt.Printf("  round %d: alone %.0f rec/s (%.1f µs/rec, idle server %.1f); read+encode only %.0f rec/s (x%.3f, %.1f µs/rec, read %.0f/s); relay %.0f rec/s (x%.3f, %.1f µs/rec, server %.1f µs/shipped); shipped %.0f/s; max lag %d rec, %.3f s; caught up %.3f s after\n",
				i+1, r.BaseRecordsPerSec, r.BaseCPUMicros, r.BaseServerCPUMicros, r.ReadRecordsPerSec, r.ReadRatio(), r.ReadCPUMicros, r.ReadPerSec,
				r.RelayRecordsPerSec, r.RelayRatio(), r.RelayCPUMicros, r.ServerCPUMicros, r.ShippedPerSec, r.MaxLagRecords, r.MaxLagSeconds, r.DrainSeconds)
		}
		m := res.Median
		fmt.Printf("median round: CPU µs per record: writers alone %.1f; + read/encode %+.1f; + publish (client) %+.1f; NATS server %.1f per shipped record\n",
			m.BaseCPUMicros, m.ReadCPUMicros-m.BaseCPUMicros, m.RelayCPUMicros-m.ReadCPUMicros, m.ServerCPUMicros)
		fmt.Printf("median: writers with the relay at x%.3f of their records/s alone (read+encode only: x%.3f, median of rounds)\n", res.CostRatio, res.ReadRatio)
		fmt.Printf("backlog: %d records shipped at %.0f records/s\n", res.BacklogRecords, res.BacklogPerSec)
		fmt.Printf("load average %.2f at end\n", res.LoadAvgEnd)
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

// loadRun runs the writers on a fresh journal for dur with m beside
// them, and fills m's figures in rd.
func loadRun(dir string, writers int, dur time.Duration, m mode, srv *natsServer, hostName string, rd *Round) error {
	t, err := enginetarget.Open(filepath.Join(dir, "data"), filepath.Join(dir, "root"), workload.SyncAlways)
	if err != nil {
		return err
	}
	defer t.Close()
	j := t.Journal()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stopped bool
	var runErr error
	stopBeside := func() error { // stops the reader or relay, once
		if m != alone && !stopped {
			cancel()
			runErr, stopped = <-done, true
		}
		return runErr
	}
	defer stopBeside()
	var r *relay.Relay
	var read atomic.Uint64 // the read-only reader's last record
	switch m {
	case relayed:
		if r, err = relay.New(j, relay.Config{URL: srv.url, Host: hostName, Logger: quiet, Tick: 20 * time.Millisecond}); err != nil {
			return err
		}
		defer r.Close()
		go func() { done <- r.Run(ctx) }()
		for r.Status().StreamReport == nil { // the stream checked: the relay is ready
			time.Sleep(5 * time.Millisecond)
		}
	case readOnly:
		go func() { done <- readEncode(ctx, j, hostName, &read) }()
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
	srv0, err := srv.cpu()
	if err != nil {
		return err
	}
	cpu0 := host.CPUTime()
	res, err := workload.Run(context.Background(), t, workload.Spec{Writers: writers, Duration: dur})
	cpu := host.CPUTime() - cpu0
	srv1, serr := srv.cpu()
	close(stopSample)
	<-sampleDone
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	n := float64(max(res.Records, 1))
	perRec := float64(cpu.Nanoseconds()) / 1e3 / n
	rate := float64(res.Records) / res.Elapsed.Seconds()
	switch m {
	case alone:
		rd.BaseRecordsPerSec, rd.BaseCPUMicros = rate, perRec
		rd.BaseServerCPUMicros = float64((srv1 - srv0).Nanoseconds()) / 1e3 / n
	case readOnly:
		rd.ReadRecordsPerSec, rd.ReadCPUMicros = rate, perRec
		rd.ReadPerSec = float64(read.Load()) / res.Elapsed.Seconds()
		if err := stopBeside(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	case relayed:
		rd.RelayRecordsPerSec, rd.RelayCPUMicros = rate, perRec
		shipped := r.Status().Shipped
		rd.ShippedPerSec = float64(shipped) / res.Elapsed.Seconds()
		rd.ServerCPUMicros = float64((srv1 - srv0).Nanoseconds()) / 1e3 / float64(max(shipped, 1))
		end := time.Now()
		head := j.Head()
		for r.Status().Shipped < head {
			time.Sleep(time.Millisecond)
		}
		rd.DrainSeconds = time.Since(end).Seconds()
		if err := stopBeside(); err != nil {
			return err
		}
	}
	return nil
}

// readEncode is the read-only diagnostic: it follows the journal as the
// relay does (the engine's Follow, the relay's batch and tick, its
// linger at the head) and builds each record's message as the relay
// does (body, subject, headers), but publishes nothing. Its CPU is the
// relay's reading and encoding; the relay's CPU beyond it is the
// publish path. It stores the last sequence read in last.
func readEncode(ctx context.Context, j *engine.Journal, host string, last *atomic.Uint64) error {
	journalID := j.Status().JournalID
	var sink int
	err := j.Follow(ctx, engine.Query{}, engine.FollowOptions{Tick: 20 * time.Millisecond, Batch: 512, Pace: relay.DefaultLinger}, func(ev engine.FollowEvent) error {
		c := ev.Change
		if c == nil {
			return nil
		}
		body, err := c.AppendJSON(make([]byte, 0, 512), true)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: relay.Subject(host, c), Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, relay.MsgID(journalID, c))
		msg.Header.Set(relay.HeaderSequence, strconv.FormatUint(c.Sequence, 10))
		msg.Header.Set(relay.HeaderHost, host)
		msg.Header.Set(relay.HeaderJournal, journalID)
		sink += len(msg.Data) + len(msg.Header)
		last.Store(c.Sequence)
		return nil
	})
	if sink < 0 {
		panic("unreachable")
	}
	return err
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

// natsServer is the JetStream server child: its client URL, and a
// line protocol on its stdin and stdout through which it reports its
// own CPU time.
type natsServer struct {
	url  string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	stop func()
}

// cpu asks the child for its user + system CPU time so far.
func (s *natsServer) cpu() (time.Duration, error) {
	if _, err := io.WriteString(s.in, "cpu\n"); err != nil {
		return 0, fmt.Errorf("asking the nats-server child for its CPU time: %w", err)
	}
	if !s.out.Scan() {
		return 0, fmt.Errorf("the nats-server child did not report its CPU time: %v", s.out.Err())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(s.out.Text()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the nats-server child's CPU time %q: %w", s.out.Text(), err)
	}
	return time.Duration(ns), nil
}

// startNATSChild runs this binary as a JetStream server with its store
// in store (pinned to CPU 1 when pin).
func startNATSChild(store string, pin bool) (*natsServer, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RELAYBENCH_NATS_STORE="+store)
	if pin {
		cmd.Env = append(cmd.Env, "RELAYBENCH_NATS_CPU=1")
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &natsServer{cmd: cmd, in: in, out: bufio.NewScanner(out), stop: func() { cmd.Process.Kill(); cmd.Wait() }}
	if !s.out.Scan() {
		s.stop()
		return nil, fmt.Errorf("the nats-server child printed no URL")
	}
	s.url = strings.TrimSpace(s.out.Text())
	return s, nil
}

// natsChild is the child: an embedded JetStream server on a loopback
// port, its URL on stdout, then its CPU time (ns) for each line read on
// stdin, until killed or its stdin closes.
func natsChild(store string) {
	if c := os.Getenv("RELAYBENCH_NATS_CPU"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			fail(fmt.Errorf("RELAYBENCH_NATS_CPU=%q: want a CPU number", c))
		}
		if err := pinTo(n); err != nil {
			fail(err)
		}
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		fail(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fail(fmt.Errorf("nats-server not ready"))
	}
	fmt.Println(s.ClientURL())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(host.CPUTime().Nanoseconds())
	}
	s.Shutdown()
}

// pinTo sets the CPU affinity of every thread of this process to cpu;
// threads started later inherit it from the thread that starts them.
// Twice, for a thread started while the first pass ran. GOMAXPROCS
// becomes 1, as the runtime sets it for a process started on one CPU
// (taskset -c).
func pinTo(cpu int) error {
	runtime.GOMAXPROCS(1)
	var set unix.CPUSet
	set.Set(cpu)
	for pass := 0; pass < 2; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pinning thread %d to CPU %d: %w", tid, cpu, err)
			}
		}
	}
	return nil
}
