package archive

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"pgregory.net/rapid"
)

// archiveIter streams recs the way a caller of Write would.
func archiveIter(recs []Record) func() (Record, bool, error) {
	i := 0
	return func() (Record, bool, error) {
		if i == len(recs) {
			return Record{}, false, nil
		}
		i++
		return recs[i-1], true, nil
	}
}

// archiveRandomRecords returns n records with random sequence gaps, times
// that mostly advance but sometimes step back, labels drawn from labels and
// random payloads (some empty).
func archiveRandomRecords(rng *rand.Rand, n int, labels []string) []Record {
	recs := make([]Record, n)
	seq := uint64(rng.IntN(100) + 1)
	t := int64(1_700_000_000_000_000_000)
	for i := range recs {
		p := make([]byte, rng.IntN(200))
		for j := range p {
			p[j] = byte('a' + rng.IntN(8)) // compressible, not trivially so
		}
		recs[i] = Record{Seq: seq, Time: t, Label: labels[rng.IntN(len(labels))], Payload: p}
		seq += uint64(rng.IntN(3) + 1)
		t += int64(rng.IntN(2_000_000_000)) - 200_000_000
	}
	return recs
}

func archiveWrite(t testing.TB, dir string, recs []Record, opts WriterOptions) (string, Footer) {
	t.Helper()
	name := "empty.sjar"
	if len(recs) > 0 {
		name = FileName(recs[0].Seq, recs[len(recs)-1].Seq)
	}
	path := filepath.Join(dir, name)
	foot, err := Write(path, archiveIter(recs), opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return path, foot
}

func archiveOpen(t testing.TB, path string) *Reader {
	t.Helper()
	a, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// archiveCopy deep-copies a record handed to a scan callback.
func archiveCopy(r Record) Record {
	r.Payload = bytes.Clone(r.Payload)
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	return r
}

// archiveTB is what the helpers need of *testing.T and *rapid.T alike.
type archiveTB interface {
	Helper()
	Fatalf(format string, args ...any)
}

func archiveCollect(t archiveTB, scan func(func(Record) bool) error) []Record {
	t.Helper()
	var out []Record
	if err := scan(func(r Record) bool { out = append(out, archiveCopy(r)); return true }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

// archiveNaive is the model: the records a scan must return.
func archiveNaive(recs []Record, keep func(Record) bool, reverse bool) []Record {
	var out []Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, archiveCopy(r))
		}
	}
	if reverse {
		slices.Reverse(out)
	}
	return out
}

func archiveLabelIn(labels []string) func(string) bool {
	return func(l string) bool { return len(labels) == 0 || slices.Contains(labels, l) }
}

func archiveSameRecords(t archiveTB, what string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Time != w.Time || g.Label != w.Label || !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("%s: record %d = {%d %d %q %q}, want {%d %d %q %q}", what, i, g.Seq, g.Time, g.Label, g.Payload, w.Seq, w.Time, w.Label, w.Payload)
		}
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // 320 KB, larger than a block
	tests := []struct {
		name string
		recs []Record
		opts WriterOptions
	}{
		{"many records spread over many blocks come back unchanged", archiveRandomRecords(rng, 5000, []string{"a", "b", "c", "d"}), WriterOptions{BlockSize: 4096}},
		{"records in the default 64 KiB blocks come back unchanged", archiveRandomRecords(rng, 3000, []string{"runtime_work_session", "runtime_leases"}), WriterOptions{}},
		{"an empty iterator writes a valid empty archive", nil, WriterOptions{}},
		{"one record comes back unchanged", []Record{{Seq: 7, Time: -5, Label: "x", Payload: []byte("p")}}, WriterOptions{}},
		{"a record larger than the block size gets a block of its own", []Record{
			{Seq: 1, Time: 1, Label: "small", Payload: []byte("a")},
			{Seq: 2, Time: 2, Label: "big", Payload: big},
			{Seq: 3, Time: 3, Label: "small", Payload: []byte("b")},
		}, WriterOptions{BlockSize: 1024}},
		{"empty labels, empty payloads and extreme times and sequences survive", []Record{
			{Seq: 1, Time: math.MinInt64, Label: "", Payload: nil},
			{Seq: 2, Time: math.MaxInt64, Label: "", Payload: []byte{}},
			{Seq: math.MaxUint64 - 1, Time: 0, Label: "z", Payload: []byte{0}},
			{Seq: math.MaxUint64, Time: math.MinInt64, Label: "", Payload: []byte{0xff}},
		}, WriterOptions{}},
		{"the fastest zstd level round-trips too", archiveRandomRecords(rng, 500, []string{"a"}), WriterOptions{Level: zstd.SpeedFastest, BlockSize: MinBlockSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, foot := archiveWrite(t, t.TempDir(), tt.recs, tt.opts)
			a := archiveOpen(t, path)
			if errs := a.Verify(); errs != nil {
				t.Fatalf("Verify: %v", errs)
			}
			all := func(Record) bool { return true }
			archiveSameRecords(t, "Scan(0)", archiveCollect(t, func(fn func(Record) bool) error { return a.Scan(0, nil, fn) }), archiveNaive(tt.recs, all, false))
			archiveSameRecords(t, "ScanReverse(0)", archiveCollect(t, func(fn func(Record) bool) error { return a.ScanReverse(0, nil, fn) }), archiveNaive(tt.recs, all, true))

			got := a.Footer()
			if got.FileBytes != foot.FileBytes || got.Records != uint64(len(tt.recs)) || got.Blocks != len(a.Blocks()) {
				t.Fatalf("footer after open %+v, from write %+v", got, foot)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Size() != got.FileBytes {
				t.Fatalf("FileBytes %d, file is %v (%v)", got.FileBytes, fi.Size(), err)
			}
		})
	}
}

func TestArchiveFooterSummarizesTheRecords(t *testing.T) {
	recs := []Record{
		{Seq: 10, Time: 500, Label: "b", Payload: []byte("12345")},
		{Seq: 11, Time: 100, Label: "a", Payload: []byte("1")},
		{Seq: 15, Time: 900, Label: "b", Payload: nil},
		{Seq: 20, Time: 300, Label: "c", Payload: []byte("123")},
	}
	created := time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC)
	path, wrote := archiveWrite(t, t.TempDir(), recs, WriterOptions{Coalesced: 42, CreatedAt: created, BlockSize: MinBlockSize})
	got := archiveOpen(t, path).Footer()
	want := Footer{
		Version: FormatVersion, FirstSeq: 10, LastSeq: 20, MinTime: 100, MaxTime: 900, Records: 4, Coalesced: 42,
		LabelCounts: map[string]uint64{"a": 1, "b": 2, "c": 1}, InputBytes: 9, FileBytes: wrote.FileBytes, Blocks: 1, CreatedAt: created,
		Checksum: got.Checksum,
	}
	if got.Checksum == 0 || wrote.Checksum != got.Checksum {
		t.Errorf("footer checksum: written %08x, read %08x", wrote.Checksum, got.Checksum)
	}
	for name, f := range map[string]Footer{"returned by Write": wrote, "read by Open": got} {
		if fmt.Sprint(f) != fmt.Sprint(want) {
			t.Errorf("footer %s:\n got %+v\nwant %+v", name, f, want)
		}
	}
	if r := got.CompressionRatio(); r <= 0 {
		t.Errorf("CompressionRatio = %v", r)
	}
}

func TestArchiveScanMatchesNaiveFilter(t *testing.T) {
	dir := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		labels := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-e]{0,3}`), 1, 6, rapid.ID[string]).Draw(rt, "labels")
		count := rapid.IntRange(0, 400).Draw(rt, "count")
		seed := rapid.Uint64().Draw(rt, "seed")
		recs := archiveRandomRecords(rand.New(rand.NewPCG(seed, 7)), count, labels)
		blockSize := rapid.IntRange(MinBlockSize, 8192).Draw(rt, "blockSize")
		n++
		path := filepath.Join(dir, fmt.Sprintf("p%d.sjar", n))
		if _, err := Write(path, archiveIter(recs), WriterOptions{BlockSize: blockSize}); err != nil {
			rt.Fatalf("Write: %v", err)
		}
		a, err := Open(path)
		if err != nil {
			rt.Fatalf("Open: %v", err)
		}
		defer a.Close()
		defer os.Remove(path)

		maxSeq := uint64(1)
		if count > 0 {
			maxSeq = recs[count-1].Seq + 2
		}
		for range 5 {
			from := rapid.Uint64Range(0, maxSeq).Draw(rt, "from")
			to := rapid.Uint64Range(0, maxSeq).Draw(rt, "to")
			filter := rapid.SliceOfN(rapid.SampledFrom(append(labels, "absent")), 0, 3).Draw(rt, "filter")
			limit := rapid.IntRange(0, count+1).Draw(rt, "limit")
			in := archiveLabelIn(filter)

			want := archiveNaive(recs, func(r Record) bool { return r.Seq >= from && in(r.Label) }, false)
			archiveSameRecords(rt, "Scan", archiveCollect(rt, func(fn func(Record) bool) error { return a.Scan(from, filter, fn) }), want)

			wantRev := archiveNaive(recs, func(r Record) bool { return (to == 0 || r.Seq <= to) && in(r.Label) }, true)
			archiveSameRecords(rt, "ScanReverse", archiveCollect(rt, func(fn func(Record) bool) error { return a.ScanReverse(to, filter, fn) }), wantRev)

			// fn returning false stops the scan right there.
			var got []Record
			err := a.Scan(from, filter, func(r Record) bool {
				got = append(got, archiveCopy(r))
				return len(got) < limit
			})
			if err != nil {
				rt.Fatalf("Scan with limit: %v", err)
			}
			archiveSameRecords(rt, "Scan stopped early", got, want[:min(len(want), max(limit, 1))])
		}
	})
}

func TestArchiveScanSkipsBlocksThatCannotMatch(t *testing.T) {
	// 20 blocks of label "common", and one record labelled "rare" in the
	// middle, which lands in exactly one block.
	var recs []Record
	payload := bytes.Repeat([]byte("x"), 100)
	for seq := uint64(1); seq <= 400; seq++ {
		label := "common"
		if seq == 201 {
			label = "rare"
		}
		recs = append(recs, Record{Seq: seq, Time: int64(seq), Label: label, Payload: payload})
	}
	path, _ := archiveWrite(t, t.TempDir(), recs, WriterOptions{BlockSize: 2048})
	a := archiveOpen(t, path)
	blocks := a.Blocks()
	if len(blocks) < 10 {
		t.Fatalf("want many blocks, got %d", len(blocks))
	}
	rareBlocks := 0
	for _, b := range blocks {
		if slices.Contains(b.Labels, "rare") {
			rareBlocks++
		}
	}
	if rareBlocks != 1 {
		t.Fatalf("label rare is in %d blocks, want 1", rareBlocks)
	}
	mid := blocks[len(blocks)/2]

	tests := []struct {
		name   string
		scan   func(fn func(Record) bool) error
		want   int // records delivered
		blocks uint64
	}{
		{"a label held by one block decompresses only that block", func(fn func(Record) bool) error { return a.Scan(0, []string{"rare"}, fn) }, 1, 1},
		{"a reverse scan for that label decompresses only that block", func(fn func(Record) bool) error { return a.ScanReverse(0, []string{"rare"}, fn) }, 1, 1},
		{"a label the archive does not hold decompresses nothing", func(fn func(Record) bool) error { return a.Scan(0, []string{"absent"}, fn) }, 0, 0},
		{"a scan from inside a block that stops at its end decompresses only that block", func(fn func(Record) bool) error {
			return a.Scan(mid.FirstSeq+1, nil, func(r Record) bool { fn(r); return r.Seq < mid.LastSeq })
		}, int(mid.LastSeq - mid.FirstSeq), 1},
		{"a scan from past the end decompresses nothing", func(fn func(Record) bool) error { return a.Scan(401, nil, fn) }, 0, 0},
		{"a reverse scan from the first record decompresses only the first block", func(fn func(Record) bool) error { return a.ScanReverse(1, nil, fn) }, 1, 1},
		{"a scan stopped after one record decompresses one block", func(fn func(Record) bool) error {
			return a.Scan(0, nil, func(r Record) bool { fn(r); return false })
		}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.blocksDecoded.Load()
			got := archiveCollect(t, tt.scan)
			if len(got) != tt.want {
				t.Errorf("delivered %d records, want %d", len(got), tt.want)
			}
			if d := a.blocksDecoded.Load() - before; d != tt.blocks {
				t.Errorf("decompressed %d blocks, want %d", d, tt.blocks)
			}
		})
	}
}

func TestWriteArchiveRejectsBadInput(t *testing.T) {
	ok := func(seq uint64) Record { return Record{Seq: seq, Label: "l", Payload: []byte("p")} }
	boom := errors.New("source failed")
	tests := []struct {
		name    string
		recs    []Record
		iterErr error
		opts    WriterOptions
		is      error
	}{
		{"a zero sequence is refused", []Record{ok(0)}, nil, WriterOptions{}, ErrInvalidRecord},
		{"a repeated sequence is refused", []Record{ok(1), ok(2), ok(2)}, nil, WriterOptions{}, ErrInvalidRecord},
		{"a decreasing sequence is refused", []Record{ok(5), ok(4)}, nil, WriterOptions{}, ErrInvalidRecord},
		{"a label over the limit is refused", []Record{{Seq: 1, Label: string(make([]byte, MaxLabelSize+1))}}, nil, WriterOptions{}, ErrInvalidRecord},
		{"a payload over the limit is refused", []Record{{Seq: 1, Payload: make([]byte, MaxPayloadSize+1)}}, nil, WriterOptions{}, ErrInvalidRecord},
		{"an iterator error aborts the write", []Record{ok(1), ok(2)}, boom, WriterOptions{}, boom},
		{"a block size below the minimum is refused", nil, nil, WriterOptions{BlockSize: MinBlockSize - 1}, nil},
		{"a block size above the maximum is refused", nil, nil, WriterOptions{BlockSize: MaxBlockSize + 1}, nil},
		{"an unknown zstd level is refused", []Record{ok(1)}, nil, WriterOptions{Level: zstd.EncoderLevel(99)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName(1, 2))
			next := archiveIter(tt.recs)
			if tt.iterErr != nil {
				inner := next
				next = func() (Record, bool, error) {
					r, ok, err := inner()
					if !ok {
						return r, false, tt.iterErr
					}
					return r, ok, err
				}
			}
			_, err := Write(path, next, tt.opts)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v does not match %v", err, tt.is)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 0 {
				t.Fatalf("a failed write left %v behind", ents)
			}
		})
	}
}

func TestWriteArchiveReplacesAnExistingFileAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName(1, 3))
	first := []Record{{Seq: 1, Label: "a", Payload: []byte("old")}}
	second := []Record{{Seq: 1, Label: "a", Payload: []byte("new")}, {Seq: 3, Label: "b", Payload: []byte("new")}}
	if _, err := Write(path, archiveIter(first), WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	// A stale temp file from an earlier crash is overwritten, not appended to.
	if err := os.WriteFile(path+".tmp", []byte("stale bytes of a crashed write"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(path, archiveIter(second), WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	a := archiveOpen(t, path)
	archiveSameRecords(t, "replaced archive", archiveCollect(t, func(fn func(Record) bool) error { return a.Scan(0, nil, fn) }), second)
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file still there: %v", err)
	}
}

func TestArchiveFileName(t *testing.T) {
	name := FileName(1, 4096)
	if name != "archive-00000000000000000001-00000000000000004096.sjar" {
		t.Fatalf("FileName(1, 4096) = %q", name)
	}
	tests := []struct {
		name        string
		file        string
		first, last uint64
		ok          bool
	}{
		{"a name FileName wrote parses back", name, 1, 4096, true},
		{"a path parses by its base name", "/data/" + FileName(5, 5), 5, 5, true},
		{"the largest sequence parses", FileName(math.MaxUint64, math.MaxUint64), math.MaxUint64, math.MaxUint64, true},
		{"the temp file of an unfinished write is rejected", name + ".tmp", 0, 0, false},
		{"a reversed range is rejected", "archive-00000000000000000009-00000000000000000001.sjar", 0, 0, false},
		{"a short sequence field is rejected", "archive-1-00000000000000004096.sjar", 0, 0, false},
		{"a signed sequence field is rejected", "archive-+0000000000000000001-00000000000000004096.sjar", 0, 0, false},
		{"a sequence over uint64 is rejected", "archive-99999999999999999999-99999999999999999999.sjar", 0, 0, false},
		{"another extension is rejected", "archive-00000000000000000001-00000000000000004096.wal", 0, 0, false},
		{"a hot segment name is rejected", "00000000000000000001", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, last, ok := ParseFileName(tt.file)
			if first != tt.first || last != tt.last || ok != tt.ok {
				t.Fatalf("ParseFileName(%q) = %d, %d, %v; want %d, %d, %v", tt.file, first, last, ok, tt.first, tt.last, tt.ok)
			}
		})
	}
}

func TestArchiveConcurrentScansSeeTheSameRecords(t *testing.T) {
	recs := archiveRandomRecords(rand.New(rand.NewPCG(3, 4)), 2000, []string{"a", "b", "c"})
	path, _ := archiveWrite(t, t.TempDir(), recs, WriterOptions{BlockSize: 2048})
	a := archiveOpen(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			filter := []string{[]string{"a", "b", "c"}[g%3]}
			want := archiveNaive(recs, func(r Record) bool { return r.Label == filter[0] }, g%2 == 1)
			var got []Record
			fn := func(r Record) bool { got = append(got, archiveCopy(r)); return true }
			var err error
			if g%2 == 1 {
				err = a.ScanReverse(0, filter, fn)
			} else {
				err = a.Scan(0, filter, fn)
			}
			if err == nil && len(got) != len(want) {
				err = fmt.Errorf("goroutine %d: %d records, want %d", g, len(got), len(want))
			}
			for i := 0; err == nil && i < len(got); i++ {
				if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Payload, want[i].Payload) {
					err = fmt.Errorf("goroutine %d: record %d differs", g, i)
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestArchiveReadsAfterCloseFailWithErrArchiveClosed(t *testing.T) {
	path, _ := archiveWrite(t, t.TempDir(), []Record{{Seq: 1, Label: "a"}}, WriterOptions{})
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Scan(0, nil, func(Record) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan after Close: %v", err)
	}
	if errs := a.Verify(); len(errs) != 1 || !errors.Is(errs[0], ErrClosed) {
		t.Fatalf("Verify after Close: %v", errs)
	}
	// The footer and index stay readable.
	if a.Footer().Records != 1 || len(a.Blocks()) != 1 {
		t.Fatalf("footer %+v", a.Footer())
	}
}

func TestArchiveScanDoesNotAllocatePerRecord(t *testing.T) {
	recs := archiveRandomRecords(rand.New(rand.NewPCG(5, 6)), 2000, []string{"a", "b"})
	path, _ := archiveWrite(t, t.TempDir(), recs, WriterOptions{})
	a := archiveOpen(t, path)
	n := 0
	fn := func(Record) bool { n++; return true }
	a.Scan(0, nil, fn) // warm the pool
	allocs := testing.AllocsPerRun(10, func() { a.Scan(0, nil, fn) })
	// A few allocations per scan (the pooled scratch, the closure), none
	// per record: 2000 records must not show up here.
	if allocs > 20 {
		t.Fatalf("a scan of %d records allocates %v times", len(recs), allocs)
	}
}

func TestWriteArchiveConcurrentWritersProduceValidArchives(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			recs := archiveRandomRecords(rand.New(rand.NewPCG(uint64(g), 1)), 500, []string{"a", "b"})
			path := filepath.Join(dir, fmt.Sprintf("w%d.sjar", g))
			if _, err := Write(path, archiveIter(recs), WriterOptions{BlockSize: 2048}); err != nil {
				errs <- err
				return
			}
			a, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer a.Close()
			if problems := a.Verify(); problems != nil {
				errs <- fmt.Errorf("writer %d: %v", g, problems)
				return
			}
			n := 0
			a.Scan(0, nil, func(r Record) bool {
				if r.Seq != recs[n].Seq || !bytes.Equal(r.Payload, recs[n].Payload) {
					errs <- fmt.Errorf("writer %d: record %d differs", g, n)
					return false
				}
				n++
				return true
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
