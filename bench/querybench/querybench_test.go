package querybench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// smallConfig is a journal small enough for -race: four archives (three
// of 8,000 records and one of 5,000) and a hot tail of 1,000, with a rare
// record every 150, so the newest 50 rare records lie in the hot log and
// the last two archives.
var smallConfig = Config{Records: 30_000, ArchiveRecords: 8_000, HotRecords: 1_000, RareEvery: 150, Aggregates: 50}

func generateSmall(t *testing.T) *Dataset {
	t.Helper()
	dir := t.TempDir()
	ds, err := Generate(filepath.Join(dir, "journal"), filepath.Join(dir, "root"), smallConfig)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestGeneratedJournal(t *testing.T) {
	ds := generateSmall(t)

	t.Run("the data directory is in the engine's layout", func(t *testing.T) {
		names, err := os.ReadDir(filepath.Join(ds.Dir, "archive"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range names {
			got = append(got, e.Name())
		}
		want := []string{
			archive.FileName(1, 8000), archive.FileName(8001, 16000),
			archive.FileName(16001, 24000), archive.FileName(24001, 29000),
		}
		if !slices.Equal(got, want) || ds.Archives != 4 {
			t.Fatalf("archives %v (%d), want %v", got, ds.Archives, want)
		}
		if _, err := os.Stat(filepath.Join(ds.Dir, "hot", segment.HotSegmentName(29001))); err != nil {
			t.Fatalf("the hot log does not start after the archives: %v", err)
		}
		if _, err := os.Stat(ds.CheckpointPath()); err != nil {
			t.Fatalf("writing the hot tail left no index checkpoint: %v", err)
		}
	})

	t.Run("generating over an existing journal is refused", func(t *testing.T) {
		if _, err := Generate(ds.Dir, ds.Root, smallConfig); !errors.Is(err, ErrConfig) {
			t.Fatalf("Generate over %s: %v, want ErrConfig", ds.Dir, err)
		}
	})

	t.Run("the journal opens at its head with the generated counts", func(t *testing.T) {
		j, err := ds.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if h := j.Head(); h != ds.Head || h != uint64(smallConfig.Records) {
			t.Fatalf("head %d, want %d", h, smallConfig.Records)
		}
		if n := ds.Registry.Len(); n < 40 {
			t.Fatalf("%d surfaces registered, want at least 40", n)
		}
		st := j.Status()
		got := map[string]uint64{}
		var total, heartbeats uint64
		for _, s := range st.Surfaces {
			if s.Records > 0 {
				got[s.ID] = s.Records
				total += s.Records
			}
		}
		for _, id := range []string{"runtime_work_session", "runtime_agent_presence", "runtime_process_supervisor", "runtime_worker_pool"} {
			heartbeats += got[id]
		}
		if total != ds.Head {
			t.Fatalf("status counts %d records, want %d", total, ds.Head)
		}
		for id, n := range ds.Counts {
			if got[id] != n {
				t.Errorf("surface %s: status says %d records, the generator wrote %d", id, got[id], n)
			}
		}
		if got[RareSurface] != ds.Head/uint64(smallConfig.RareEvery) {
			t.Errorf("rare surface holds %d records, want %d", got[RareSurface], ds.Head/uint64(smallConfig.RareEvery))
		}
		if share := float64(heartbeats) / float64(total); share < 0.85 {
			t.Errorf("hot surfaces hold %.0f%% of the records, want about 90%%", 100*share)
		}
	})

	t.Run("the rare query returns the newest rare records, newest first, as a scan finds them", func(t *testing.T) {
		j, err := ds.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		ctx := context.Background()
		res, err := j.Query(ctx, RareQuery())
		if err != nil {
			t.Fatal(err)
		}
		span := RareLimit * smallConfig.RareEvery // holds the newest RareLimit rare records
		all, err := j.Query(ctx, engine.Query{Limit: span, NewestFirst: true})
		if err != nil {
			t.Fatal(err)
		}
		var scan []uint64
		for _, c := range all.Changes {
			if c.Surface == RareSurface && len(scan) < RareLimit {
				scan = append(scan, c.Sequence)
			}
		}
		var got []uint64
		for _, c := range res.Changes {
			got = append(got, c.Sequence)
		}
		if want := ds.NewestRare(RareLimit); !slices.Equal(got, want) || !slices.Equal(scan, want) {
			t.Fatalf("rare query %v, full scan %v, want %v", got, scan, want)
		}
		if len(all.Changes) != span || all.Changes[0].Sequence != ds.Head {
			t.Fatalf("the scan returned %d records from %d, want %d from %d", len(all.Changes), all.Changes[0].Sequence, span, ds.Head)
		}
	})

	t.Run("a record written after open continues the sequence", func(t *testing.T) {
		j, err := ds.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		rc, err := j.Record(context.Background(), engine.Change{
			Source: "runtime.module_01", Surface: "runtime_module_01", ChangeType: "updated",
			AggregateType: "item", AggregateID: "m01-1",
		})
		if err != nil {
			t.Fatal(err)
		}
		if rc.Sequence != ds.Head+1 {
			t.Fatalf("new record got sequence %d, want %d", rc.Sequence, ds.Head+1)
		}
	})
}

func TestGeneratedRecords(t *testing.T) {
	cfg, err := Config{Records: 100_000}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g := newGenerator(cfg, now)

	t.Run("a heartbeat's spliced metadata is byte for byte what AppendJSON writes", func(t *testing.T) {
		found := false
		for seq := uint64(1); seq < 100 && !found; seq++ {
			r := g.record(seq)
			if !r.heartbeat {
				continue
			}
			found = true
			spliced, err := r.change.AppendJSON(nil, false)
			if err != nil {
				t.Fatal(err)
			}
			spliced = appendHeartbeatMetadata(spliced[:len(spliced)-1], r.pid)
			r.change.Metadata = heartbeatMetadata(r.pid)
			want, err := r.change.AppendJSON(nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(spliced, want) {
				t.Fatalf("spliced\n%s\nwant\n%s", spliced, want)
			}
		}
		if !found {
			t.Fatal("no heartbeat in the first 100 records")
		}
	})

	t.Run("a record depends on its sequence only", func(t *testing.T) {
		a, b := g.record(4242), newGenerator(cfg, now).record(4242)
		ja, _ := a.change.AppendJSON(nil, true)
		jb, _ := b.change.AppendJSON(nil, true)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("two generators disagree:\n%s\n%s", ja, jb)
		}
	})

	t.Run("every record passes the engine's contract and the newest is stamped now", func(t *testing.T) {
		for _, seq := range []uint64{1, 2, 3, uint64(cfg.RareEvery), 77_777, uint64(cfg.Records)} {
			c := g.record(seq).change
			b, err := c.AppendJSON(nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := engine.ParseChange(b); err != nil {
				t.Errorf("record %d does not parse: %v\n%s", seq, err, b)
			}
			if len(c.EventID) != 36 || c.EventID[14] != '7' {
				t.Errorf("record %d: event id %q is not a UUIDv7", seq, c.EventID)
			}
		}
		if at := g.record(uint64(cfg.Records)).change.OccurredAt; !at.Equal(now) {
			t.Errorf("newest record at %s, want %s", at, now)
		}
	})
}

func TestMeasure(t *testing.T) {
	ds := generateSmall(t)
	r, err := Measure(context.Background(), ds, Options{RareRuns: 3, StaleRuns: 10, CursorRuns: 2, ScanRuns: 1, OpenRuns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Records != ds.Head || r.RareReturned != RareLimit || r.ScanReturned != int(ds.Counts[ScanSurface]) || r.StaleItems == 0 {
		t.Fatalf("figures do not describe the dataset: %+v", r)
	}
	for name, s := range map[string]Summary{"rare": r.Rare, "stale": r.Stale, "cursor": r.Cursor, "scan": r.Scan, "open without": r.OpenWithout.Time, "open with": r.OpenWith.Time} {
		if s.Runs == 0 || s.Median <= 0 || s.P99 < s.Median {
			t.Errorf("%s: summary %+v", name, s)
		}
	}

	t.Run("the table prints one line per size and a verdict for every target", func(t *testing.T) {
		big := r
		big.Records *= 10
		var out strings.Builder
		WriteTable(&out, []Result{r, big}, DefaultTargets())
		s := out.String()
		for _, want := range []string{"30k", "300k", "rare ", "stale ", "open ", "flatness: rare-50 p50 grows 1.00× from 30k→300k", "targets: "} {
			if !strings.Contains(s, want) {
				t.Errorf("table lacks %q:\n%s", want, s)
			}
		}
	})

	t.Run("a missed target is counted and named", func(t *testing.T) {
		slow := r
		slow.Rare.Median, slow.OpenWith.Time.Median, slow.Stale.Median = time.Millisecond, time.Millisecond, time.Second
		var out strings.Builder
		if n := WriteTable(&out, []Result{slow}, DefaultTargets()); n != 1 || !strings.Contains(out.String(), "MISS stale at 30k: 1s") {
			t.Fatalf("%d misses:\n%s", n, out.String())
		}
	})
}

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []int
		err  bool
	}{
		{name: "millions and thousands parse with their suffixes", in: "1M,200k,10M", want: []int{1_000_000, 200_000, 10_000_000}},
		{name: "plain numbers and spaces are accepted", in: " 5000 , 2m", want: []int{5000, 2_000_000}},
		{name: "a size that is not a count is refused", in: "1M,lots", err: true},
		{name: "an empty list is refused", in: ",", err: true},
		{name: "a zero size is refused", in: "0", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSizes(tc.in)
			if tc.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("ParseSizes(%q) = %v, %v; want ErrConfig", tc.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseSizes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			for _, n := range got {
				if back, err := ParseSize(SizeName(n)); err != nil || back != n {
					t.Errorf("SizeName(%d) = %q does not parse back", n, SizeName(n))
				}
			}
		})
	}
}

func TestCacheBuildsEachSizeOnceAndDropsIt(t *testing.T) {
	c, err := NewCache(t.TempDir(), Config{ArchiveRecords: 2000, HotRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Get(3000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(3000)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.Head != 3000 || a.Archives != 2 {
		t.Fatalf("second Get built again or the wrong journal: %p %p head %d archives %d", a, b, a.Head, a.Archives)
	}
	j, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	if h := j.Head(); h != 3000 {
		t.Errorf("a journal with no hot tail opens at head %d, want 3000", h)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Drop(3000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Drop left %s: %v", a.Dir, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Root()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Remove left %s: %v", c.Root(), err)
	}
}
