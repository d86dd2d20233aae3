package segment

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The golden archive pins format version 1: a build that can no longer
// read it, or whose writer lays records out differently, fails here, so a
// format change is a deliberate act (bump ArchiveFormatVersion, keep
// reading v1, add a v2 golden). Regenerate with
//
//	go test ./segment/ -run TestArchiveGolden -update
//
// only when the change is intended.
const archiveGoldenPath = "testdata/archive/v1-golden.sjar"

func init() {
	// Other golden tests in this package may define -update too; share it.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files in testdata")
	}
}

func archiveUpdateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

var archiveGoldenCreated = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

// archiveGoldenRecords are heartbeat-like records over three labels, with
// a sequence gap, a time that steps back and an empty payload.
func archiveGoldenRecords() []ArchiveRecord {
	labels := []string{"runtime_work_session", "runtime_leases", "runtime_approvals"}
	var recs []ArchiveRecord
	seq := uint64(1000)
	t := archiveGoldenCreated.Add(-time.Hour).UnixNano()
	for i := range 40 {
		label := labels[i%len(labels)]
		p := fmt.Appendf(nil, `{"sequence":%d,"surface":%q,"change_type":"heartbeat","aggregate_id":"ws-%d"}`, seq, label, i%4)
		if i == 17 {
			p = nil
		}
		recs = append(recs, ArchiveRecord{Seq: seq, Time: t, Label: label, Payload: p})
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

var archiveGoldenOptions = ArchiveWriterOptions{BlockSize: 1024, Coalesced: 7, CreatedAt: archiveGoldenCreated}

func TestArchiveGoldenV1IsReadable(t *testing.T) {
	recs := archiveGoldenRecords()
	if archiveUpdateGolden() {
		if err := os.MkdirAll(filepath.Dir(archiveGoldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteArchive(archiveGoldenPath, archiveIter(recs), archiveGoldenOptions); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", archiveGoldenPath)
	}
	a := archiveOpen(t, archiveGoldenPath)
	if errs := a.Verify(); errs != nil {
		t.Fatalf("Verify: %v", errs)
	}
	f := a.Footer()
	want := ArchiveFooter{
		Version: 1, FirstSeq: 1000, LastSeq: 1139,
		MinTime: 1735783445000000006, MaxTime: 1735783479000000006, // 03:04:05 minus an hour, plus 34 s
		Records: 40, Coalesced: 7,
		LabelCounts: map[string]uint64{"runtime_work_session": 14, "runtime_leases": 13, "runtime_approvals": 13},
		InputBytes:  3708, FileBytes: f.FileBytes, Blocks: 5,
		CreatedAt: archiveGoldenCreated,
	}
	var input int64
	for _, r := range recs {
		input += int64(len(r.Payload))
	}
	if fmt.Sprint(f) != fmt.Sprint(want) || f.InputBytes != input {
		t.Fatalf("golden footer\n got %+v\nwant %+v (input %d)", f, want, input)
	}
	archiveSameRecords(t, "golden records", archiveCollect(t, func(fn func(ArchiveRecord) bool) error { return a.Scan(0, nil, fn) }), recs)

	b, err := os.ReadFile(archiveGoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("SJAR\x01\x00\x00\x00")) || !bytes.HasSuffix(b, []byte("\x01\x00\x00\x00SJAR")) {
		t.Fatalf("golden header % x / trailer % x", b[:12], b[len(b)-16:])
	}
}

// TestArchiveGoldenV1LayoutIsStable writes the golden records again and
// compares the decompressed block contents and the index with the golden
// file's. The compressed bytes are not compared: a zstd upgrade may
// compress differently without changing the format.
func TestArchiveGoldenV1LayoutIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "again.sjar")
	if _, err := WriteArchive(path, archiveIter(archiveGoldenRecords()), archiveGoldenOptions); err != nil {
		t.Fatal(err)
	}
	golden, fresh := archiveOpen(t, archiveGoldenPath), archiveOpen(t, path)
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
	if fmt.Sprint(golden.footer.labels, golden.footer.labelCounts) != fmt.Sprint(fresh.footer.labels, fresh.footer.labelCounts) {
		t.Fatalf("label table changed: golden %v %v, now %v %v", golden.footer.labels, golden.footer.labelCounts, fresh.footer.labels, fresh.footer.labelCounts)
	}
}

func TestWriteArchiveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	var files [2][]byte
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("%d.sjar", i))
		if _, err := WriteArchive(p, archiveIter(archiveGoldenRecords()), archiveGoldenOptions); err != nil {
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
