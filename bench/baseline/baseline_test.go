package baseline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tidwall/wal"
	"go.uber.org/goleak"

	"github.com/agentruntime/statejournal/bench/workload"
)

type opener func(dir string, opts Options) (workload.Target, error)

var openers = []struct {
	name string
	open opener
	read func(t *testing.T, dir string) []Line
}{
	{"plain-fsync", func(d string, o Options) (workload.Target, error) { return OpenPlainFsync(d, o) }, readPlain},
	{"plain-group", func(d string, o Options) (workload.Target, error) { return OpenPlainGroupCommit(d, o) }, readPlain},
	{"wal", func(d string, o Options) (workload.Target, error) { return OpenRawWAL(d, o) }, readWAL},
	{"wal-batch", func(d string, o Options) (workload.Target, error) { return OpenRawWALBatch(d, o) }, readWAL},
}

func readPlain(t *testing.T, dir string) []Line {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, dataFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d is not JSON: %v", len(out)+1, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func readWAL(t *testing.T, dir string) []Line {
	t.Helper()
	l, err := wal.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if first != 1 && last != 0 {
		t.Fatalf("wal starts at index %d, want 1", first)
	}
	var out []Line
	for i := first; i <= last && last > 0; i++ {
		data, err := l.Read(i)
		if err != nil {
			t.Fatalf("read index %d: %v", i, err)
		}
		var rec Line
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("entry %d is not JSON: %v", i, err)
		}
		out = append(out, rec)
	}
	return out
}

// write sends writers*perWriter records with Record and one batch of
// batchSize with RecordBatch, concurrently.
func write(t *testing.T, tg workload.Target, writers, perWriter, batchSize int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rec := workload.Heartbeat(w)
			for i := 0; i < perWriter; i++ {
				if err := tg.Record(ctx, rec); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	if batchSize > 0 {
		batch := make([]workload.Record, batchSize)
		for i := range batch {
			batch[i] = workload.Heartbeat(writers + i)
		}
		if err := tg.RecordBatch(ctx, batch); err != nil {
			errs <- err
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEveryBaselineWritesExactlyTheRecordsItAcknowledged(t *testing.T) {
	const writers, perWriter, batch = 4, 10, 20
	const want = writers*perWriter + batch
	for _, mode := range []workload.SyncMode{workload.SyncAlways, workload.SyncInterval, workload.SyncNone} {
		for _, o := range openers {
			t.Run(o.name+" under sync="+mode.String()+" reads back every record once", func(t *testing.T) {
				dir := t.TempDir()
				tg, err := o.open(dir, Options{Sync: mode})
				if err != nil {
					t.Fatal(err)
				}
				write(t, tg, writers, perWriter, batch)
				if err := tg.Close(); err != nil {
					t.Fatal(err)
				}
				lines := o.read(t, dir)
				if len(lines) != want {
					t.Fatalf("read back %d records, want %d", len(lines), want)
				}
				seen := make(map[uint64]bool, want)
				for _, l := range lines {
					if l.Surface != "runtime_work_session" || l.ChangeType != "heartbeat" || l.EventID == "" {
						t.Fatalf("record lost its fields: %+v", l)
					}
					if l.Sequence < 1 || l.Sequence > want || seen[l.Sequence] {
						t.Fatalf("sequence %d is out of range or repeated", l.Sequence)
					}
					seen[l.Sequence] = true
				}
				if mode != workload.SyncAlways && tg.Fsyncs() < 1 {
					t.Fatalf("close did not fsync the unsynced tail")
				}
			})
		}
	}
}

func TestFsyncCounts(t *testing.T) {
	const writers, perWriter = 32, 8
	const records = writers * perWriter
	tests := []struct {
		name   string
		open   opener
		expect func(fsyncs uint64) bool
		want   string
	}{
		{"plain fsync fsyncs once per record", openers[0].open, func(n uint64) bool { return n == records }, "== records"},
		{"plain group commit fsyncs fewer times than records under concurrency", openers[1].open, func(n uint64) bool { return n >= 1 && n < records }, "< records"},
		{"raw wal fsyncs once per record", openers[2].open, func(n uint64) bool { return n == records }, "== records"},
		{"raw wal with group commit fsyncs fewer times than records under concurrency", openers[3].open, func(n uint64) bool { return n >= 1 && n < records }, "< records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := tt.open(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			write(t, tg, writers, perWriter, 0)
			n := tg.Fsyncs()
			if err := tg.Close(); err != nil {
				t.Fatal(err)
			}
			if !tt.expect(n) {
				t.Fatalf("%d fsyncs for %d records, want %s", n, records, tt.want)
			}
		})
	}
}

func TestClosedBaselineRefusesRecords(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name+" returns ErrClosed after Close", func(t *testing.T) {
			tg, err := o.open(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := tg.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tg.Record(context.Background(), workload.Heartbeat(0)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Record after Close = %v, want ErrClosed", err)
			}
			if err := tg.Close(); err != nil {
				t.Fatalf("second Close = %v, want nil", err)
			}
		})
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
