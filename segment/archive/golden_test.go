package archive

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The golden archives pin format versions 1 and 2: a build that can no
// longer read them, or whose writer lays records out differently, fails
// here, so a format change is a deliberate act (bump FormatVersion,
// keep reading the older versions, add a golden for the new one; the
// block layout is unchanged since version 1). Regenerate the newest with
//
//	go test ./segment/archive/ -run TestArchiveGolden -update
//
// only when the change is intended.
const archiveGoldenPath = "testdata/v1-golden.sjar"

var archiveUpdate = flag.Bool("update", false, "rewrite golden files in testdata")

func archiveUpdateGolden() bool { return *archiveUpdate }

var archiveGoldenCreated = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

// archiveGoldenRecords are heartbeat-like records over three labels, with
// a sequence gap, a time that steps back and an empty payload.
func archiveGoldenRecords() []Record {
	labels := []string{"runtime_work_session", "runtime_leases", "runtime_approvals"}
	var recs []Record
	seq := uint64(1000)
	t := archiveGoldenCreated.Add(-time.Hour).UnixNano()
	for i := range 40 {
		label := labels[i%len(labels)]
		p := fmt.Appendf(nil, `{"sequence":%d,"surface":%q,"change_type":"heartbeat","aggregate_id":"ws-%d"}`, seq, label, i%4)
		if i == 17 {
			p = nil
		}
		recs = append(recs, Record{Seq: seq, Time: t, Label: label, Payload: p})
		seq++
		if i == 20 {
			seq += 100
		}
		t += int64(time.Second)
		if i == 30 {
			t -= int64(5 * time.Second)
		}
	}
	return recs
}

var archiveGoldenOptions = WriterOptions{BlockSize: 1024, Coalesced: 7, CreatedAt: archiveGoldenCreated}

func TestArchiveGoldenV1IsReadable(t *testing.T) {
	// Version 1 is frozen: this build writes version 2 only, so -update
	// never rewrites the v1 golden.
	recs := archiveGoldenRecords()
	a := archiveOpen(t, archiveGoldenPath)
	if errs := a.Verify(); errs != nil {
		t.Fatalf("Verify: %v", errs)
	}
	f := a.Footer()
	want := Footer{
		Version: 1, FirstSeq: 1000, LastSeq: 1139,
		MinTime: 1735783445000000006, MaxTime: 1735783479000000006, // 03:04:05 minus an hour, plus 34 s
		Records: 40, Coalesced: 7,
		LabelCounts: map[string]uint64{"runtime_work_session": 14, "runtime_leases": 13, "runtime_approvals": 13},
		InputBytes:  3708, FileBytes: f.FileBytes, Blocks: 5,
		CreatedAt: archiveGoldenCreated,
		Checksum:  f.Checksum,
	}
	var input int64
	for _, r := range recs {
		input += int64(len(r.Payload))
	}
	if fmt.Sprint(f) != fmt.Sprint(want) || f.InputBytes != input {
		t.Fatalf("golden footer\n got %+v\nwant %+v (input %d)", f, want, input)
	}
	archiveSameRecords(t, "golden records", archiveCollect(t, func(fn func(Record) bool) error { return a.Scan(0, nil, fn) }), recs)

	archiveFramed(t, archiveGoldenPath, 1)
}

// TestArchiveGoldenV1LayoutIsStable writes the golden records again and
// compares the decompressed block contents and the index with the golden
// file's. The compressed bytes are not compared: a zstd upgrade may
// compress differently without changing the format.
func TestArchiveGoldenV1LayoutIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "again.sjar")
	if _, err := Write(path, archiveIter(archiveGoldenRecords()), archiveGoldenOptions); err != nil {
		t.Fatal(err)
	}
	golden, fresh := archiveSameBlocks(t, archiveGoldenPath, path)
	if fmt.Sprint(golden.footer.labels, golden.footer.labelCounts) != fmt.Sprint(fresh.footer.labels, fresh.footer.labelCounts) {
		t.Fatalf("label table changed: golden %v %v, now %v %v", golden.footer.labels, golden.footer.labelCounts, fresh.footer.labels, fresh.footer.labelCounts)
	}
}

func TestWriteArchiveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	var files [2][]byte
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("%d.sjar", i))
		if _, err := Write(p, archiveIter(archiveGoldenRecords()), archiveGoldenOptions); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("the same records and options wrote different bytes")
	}
}

// The version 2 golden adds what version 2 stores in the footer: the
// journal id and the covered sequence range.
const archiveGoldenV2Path = "testdata/v2-golden.sjar"

var archiveGoldenV2Options = WriterOptions{BlockSize: 1024, Coalesced: 7, CreatedAt: archiveGoldenCreated,
	JournalID:  [JournalIDSize]byte{0x6f, 0x1d, 0x2e, 0x3a, 0x44, 0x59, 0x4b, 0x62, 0x8c, 0x71, 0x0a, 0x9e, 0xb3, 0xc4, 0xd5, 0xe6},
	RangeFirst: 990, RangeLast: 1150}

func TestArchiveGoldenV2IsReadable(t *testing.T) {
	recs := archiveGoldenRecords()
	if archiveUpdateGolden() {
		if _, err := Write(archiveGoldenV2Path, archiveIter(recs), archiveGoldenV2Options); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", archiveGoldenV2Path)
	}
	a := archiveOpen(t, archiveGoldenV2Path)
	if errs := a.Verify(); errs != nil {
		t.Fatalf("Verify: %v", errs)
	}
	f := a.Footer()
	want := Footer{
		Version: 2, FirstSeq: 1000, LastSeq: 1139,
		MinTime: 1735783445000000006, MaxTime: 1735783479000000006,
		Records: 40, Coalesced: 7,
		LabelCounts: map[string]uint64{"runtime_work_session": 14, "runtime_leases": 13, "runtime_approvals": 13},
		InputBytes:  3708, FileBytes: f.FileBytes, Blocks: 5,
		CreatedAt: archiveGoldenCreated,
		JournalID: archiveGoldenV2Options.JournalID, RangeFirst: 990, RangeLast: 1150,
		Checksum: f.Checksum,
	}
	if fmt.Sprint(f) != fmt.Sprint(want) || f.Checksum == 0 {
		t.Fatalf("golden footer\n got %+v\nwant %+v", f, want)
	}
	archiveSameRecords(t, "golden records", archiveCollect(t, func(fn func(Record) bool) error { return a.Scan(0, nil, fn) }), recs)
	archiveFramed(t, archiveGoldenV2Path, 2)
}

// TestArchiveGoldenV2LayoutIsStable writes the golden records again with
// the same options and compares block contents, index entries and every
// footer field but the index position (which depends on zstd's output).
func TestArchiveGoldenV2LayoutIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "again.sjar")
	if _, err := Write(path, archiveIter(archiveGoldenRecords()), archiveGoldenV2Options); err != nil {
		t.Fatal(err)
	}
	golden, fresh := archiveSameBlocks(t, archiveGoldenV2Path, path)
	gf, ff := golden.footer, fresh.footer
	gf.indexOff, gf.indexLen, gf.indexCRC, gf.crc = 0, 0, 0, 0
	ff.indexOff, ff.indexLen, ff.indexCRC, ff.crc = 0, 0, 0, 0
	if fmt.Sprint(gf) != fmt.Sprint(ff) {
		t.Fatalf("footer changed:\ngolden %+v\n   now %+v", gf, ff)
	}
}

func TestWriteArchiveRefusesRecordsOutsideTheCoveredRange(t *testing.T) {
	recs := []Record{{Seq: 10, Label: "a", Payload: []byte("x")}, {Seq: 12, Label: "a", Payload: []byte("y")}}
	for name, o := range map[string]WriterOptions{
		"a record before the range":           {RangeFirst: 11, RangeLast: 20},
		"a record after the range":            {RangeFirst: 1, RangeLast: 11},
		"an inverted range":                   {RangeFirst: 20, RangeLast: 10},
		"a range that starts at sequence 0":   {RangeFirst: 0, RangeLast: 12},
		"more coalesced than the range holds": {RangeFirst: 10, RangeLast: 12, Coalesced: 2},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Write(filepath.Join(t.TempDir(), "a.sjar"), archiveIter(recs), o)
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("err = %v, want ErrInvalidRecord", err)
			}
		})
	}
	path, f := archiveWrite(t, t.TempDir(), recs, WriterOptions{RangeFirst: 10, RangeLast: 12, Coalesced: 1})
	if f.RangeFirst != 10 || f.RangeLast != 12 {
		t.Fatalf("range %d..%d", f.RangeFirst, f.RangeLast)
	}
	if got := archiveOpen(t, path).Footer(); got.RangeFirst != 10 || got.RangeLast != 12 || got.Coalesced != 1 {
		t.Fatalf("read back %+v", got)
	}
}

// archiveSameBlocks opens the golden archive and one written again from
// the same records, and fails unless their block index entries (but the
// positions, which depend on zstd's output) and decompressed block
// contents are the same.
func archiveSameBlocks(t *testing.T, goldenPath, path string) (golden, fresh *Reader) {
	t.Helper()
	golden, fresh = archiveOpen(t, goldenPath), archiveOpen(t, path)
	gb, fb := golden.Blocks(), fresh.Blocks()
	if len(gb) != len(fb) {
		t.Fatalf("golden has %d blocks, the writer now makes %d", len(gb), len(fb))
	}
	g, f := archiveGetScratch(), archiveGetScratch()
	for i := range gb {
		gb[i].Offset, gb[i].Length, fb[i].Offset, fb[i].Length = 0, 0, 0, 0
		if fmt.Sprint(gb[i]) != fmt.Sprint(fb[i]) {
			t.Fatalf("block %d index entry: golden %+v, now %+v", i, gb[i], fb[i])
		}
		if err := golden.readBlock(i, g); err != nil {
			t.Fatal(err)
		}
		if err := fresh.readBlock(i, f); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.raw, f.raw) {
			t.Fatalf("block %d contents changed:\ngolden % x\n   now % x", i, g.raw, f.raw)
		}
	}
	return golden, fresh
}

// archiveFramed fails unless the file at path starts and ends with the
// magic and format version v.
func archiveFramed(t *testing.T, path string, v byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ver := []byte{v, 0, 0, 0}
	if !bytes.HasPrefix(b, append([]byte("SJAR"), ver...)) || !bytes.HasSuffix(b, append(ver, "SJAR"...)) {
		t.Fatalf("golden header % x / trailer % x", b[:12], b[len(b)-16:])
	}
}
