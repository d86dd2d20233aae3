package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// archiveCorruptionBase writes the archive the corruption table damages:
// 300 records with odd sequences (so ranges have room to be wrong), rising
// times and three labels, in small blocks so there are many of them.
func archiveCorruptionBase(t *testing.T) (string, []Record, []BlockInfo) {
	t.Helper()
	var recs []Record
	for i := range 300 {
		recs = append(recs, Record{
			Seq: uint64(2*i + 1), Time: int64(1000 * i), Label: []string{"a", "b", "c"}[i%3],
			Payload: fmt.Appendf(nil, `{"surface":"s%d","n":%d,"note":"%x"}`, i%3, i, rand.Uint64()),
		})
	}
	path, _ := archiveWrite(t, t.TempDir(), recs, WriterOptions{BlockSize: 1024})
	a := archiveOpen(t, path)
	blocks := a.Blocks()
	if len(blocks) < 6 {
		t.Fatalf("want at least 6 blocks, got %d", len(blocks))
	}
	return path, recs, blocks
}

// archiveSections locates the index, footer and trailer in an archive's bytes.
func archiveSections(t *testing.T, b []byte) (indexOff, footOff, trailerOff int) {
	t.Helper()
	trailerOff = len(b) - archiveTrailerSize
	footOff = trailerOff - int(binary.LittleEndian.Uint32(b[trailerOff:]))
	foot, err := archiveParseFooter(b[footOff:trailerOff])
	if err != nil {
		t.Fatalf("parse footer: %v", err)
	}
	return int(foot.indexOff), footOff, trailerOff
}

// archiveReseal rewrites an archive's footer (and, when index is not nil,
// its index) and fixes every checksum, so a test can plant a logical
// inconsistency that only the cross-checks can catch.
func archiveReseal(t *testing.T, b []byte, mutateIndex func([]archiveIndexEntry), mutateFooter func(*archiveFooterDisk)) []byte {
	t.Helper()
	indexOff, footOff, trailerOff := archiveSections(t, b)
	foot, err := archiveParseFooter(b[footOff:trailerOff])
	if err != nil {
		t.Fatal(err)
	}
	idx := b[indexOff:footOff]
	if mutateIndex != nil {
		entries, _, err := archiveParseIndex(idx, &foot)
		if err != nil {
			t.Fatal(err)
		}
		mutateIndex(entries)
		idx = nil
		for i := range entries {
			idx = archiveAppendIndexEntry(idx, &entries[i])
		}
		foot.indexLen, foot.indexCRC = uint64(len(idx)), archiveCRC(idx)
	}
	if mutateFooter != nil {
		mutateFooter(&foot)
	}
	out := append([]byte(nil), b[:indexOff]...)
	out = append(out, idx...)
	fb := foot.append(nil)
	out = append(out, fb...)
	return archiveAppendTrailer(out, uint32(len(fb)), archiveCRC(fb))
}

func archiveAsCorruption(t *testing.T, err error) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not an *CorruptionError", err, err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not match ErrCorrupt", err)
	}
	if errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("corruption %v matches ErrUnsupportedVersion", err)
	}
	return ce
}

func TestArchiveOpenRejectsDamagedFiles(t *testing.T) {
	path, _, _ := archiveCorruptionBase(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clone := func() []byte { return append([]byte(nil), good...) }
	flip := func(off int) func(*testing.T) []byte {
		return func(*testing.T) []byte { b := clone(); b[off] ^= 0x40; return b }
	}
	indexOff, footOff, trailerOff := archiveSections(t, good)

	tests := []struct {
		name    string
		damage  func(*testing.T) []byte
		section string // "" when the error is ErrUnsupportedVersion
	}{
		{"a zero-length file is corrupt", func(*testing.T) []byte { return nil }, SectionHeader},
		{"a file of random garbage is corrupt", func(*testing.T) []byte {
			b := make([]byte, 10_000)
			for i := range b {
				b[i] = byte(rand.Uint32())
			}
			return b
		}, SectionHeader},
		{"a file with the wrong magic is corrupt, not an unknown version", func(*testing.T) []byte { b := clone(); copy(b, "SJAX"); return b }, SectionHeader},
		{"a flipped byte in the header checksum is corrupt", flip(9), SectionHeader},
		{"a flipped byte in the header version field is corrupt", flip(4), SectionHeader},
		{"a valid header with an unknown version is ErrUnsupportedVersion", func(*testing.T) []byte {
			b := clone()
			binary.LittleEndian.PutUint16(b[4:], FormatVersion+1)
			binary.LittleEndian.PutUint32(b[8:], archiveCRC(b[:8]))
			return b
		}, ""},
		{"a valid header with an unknown feature flag is ErrUnsupportedVersion", func(*testing.T) []byte {
			b := clone()
			binary.LittleEndian.PutUint16(b[6:], 1)
			binary.LittleEndian.PutUint32(b[8:], archiveCRC(b[:8]))
			return b
		}, ""},
		{"a flipped byte in the index is corrupt and names the index", flip(indexOff + 3), SectionIndex},
		{"a flipped byte in the footer is corrupt and names the footer", flip(footOff + 20), SectionFooter},
		{"a flipped byte in the footer's label table is corrupt and names the footer", flip(trailerOff - 2), SectionFooter},
		{"a flipped byte in the trailer's footer checksum names the footer", flip(trailerOff + 5), SectionFooter},
		{"a flipped trailer magic is corrupt", flip(len(good) - 1), SectionTrailer},
		{"a trailer version that disagrees with the header is corrupt", func(*testing.T) []byte {
			b := clone()
			binary.LittleEndian.PutUint16(b[trailerOff+8:], FormatV1)
			return b
		}, SectionTrailer},
		{"a footer length pointing past the file is corrupt", func(*testing.T) []byte {
			b := clone()
			binary.LittleEndian.PutUint32(b[trailerOff:], 0xFFFF_FFF0)
			return b
		}, SectionTrailer},
		{"a footer length pointing into the header is corrupt", func(*testing.T) []byte {
			b := clone()
			binary.LittleEndian.PutUint32(b[trailerOff:], uint32(trailerOff-5))
			return b
		}, SectionTrailer},
		{"a zero-filled tail is corrupt", func(*testing.T) []byte {
			b := clone()
			clear(b[len(b)-100:])
			return b
		}, SectionTrailer},
		{"a footer whose version disagrees with the header is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.version = FormatV1 })
		}, SectionFooter},
		{"a covered range that does not hold the records is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.rangeFirst, f.rangeLast = f.firstSeq+1, f.lastSeq })
		}, SectionFooter},
		{"an inverted covered range is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.rangeFirst, f.rangeLast = f.lastSeq, f.firstSeq })
		}, SectionFooter},
		{"a coalesced count the covered range cannot hold is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) {
				f.rangeFirst, f.rangeLast, f.coalesced = f.firstSeq, f.lastSeq, f.lastSeq-f.firstSeq+2-f.records
			})
		}, SectionFooter},
		{"an index offset pointing past the file is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.indexOff = 1 << 40 })
		}, SectionFooter},
		{"an index length larger than the file is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.indexOff, f.indexLen = archiveHeaderSize, 1<<40 })
		}, SectionFooter},
		{"a block count the index cannot hold is corrupt without allocating for it", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.blocks = 0xFFFF_FFFF })
		}, SectionIndex},
		{"a record count that disagrees with the index is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.records++; f.labelCounts[0]++ })
		}, SectionIndex},
		{"label counts that do not add up to the record count are corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.labelCounts[0]++ })
		}, SectionFooter},
		{"a sequence range that disagrees with the index is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, nil, func(f *archiveFooterDisk) { f.lastSeq++ })
		}, SectionIndex},
		{"overlapping block sequence ranges are corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, func(e []archiveIndexEntry) { e[2].firstSeq = e[1].lastSeq }, nil)
		}, SectionIndex},
		{"a gap between blocks is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, func(e []archiveIndexEntry) { e[2].offset++ }, nil)
		}, SectionIndex},
		{"an index label id outside the label table is corrupt", func(t *testing.T) []byte {
			return archiveReseal(t, good, func(e []archiveIndexEntry) { e[0].labels = []uint32{7} }, nil)
		}, SectionIndex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "damaged.sjar")
			if err := os.WriteFile(p, tt.damage(t), 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			a, err := Open(p)
			runtime.ReadMemStats(&after)
			if err == nil {
				a.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			// No length read from the file is trusted before it is checked:
			// opening a damaged file of a few KB never allocates much.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("Open allocated %d bytes", alloc)
			}
			if tt.section == "" {
				if !errors.Is(err, ErrUnsupportedVersion) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v: want ErrUnsupportedVersion and not ErrCorrupt", err)
				}
				return
			}
			ce := archiveAsCorruption(t, err)
			if ce.Section != tt.section || ce.Block != -1 || ce.Path != p {
				t.Fatalf("error names section %q block %d path %q, want section %q block -1 path %q (%v)", ce.Section, ce.Block, ce.Path, tt.section, p, err)
			}
		})
	}
}

func TestArchiveOpenOfACutFileFailsCleanly(t *testing.T) {
	path, _, blocks := archiveCorruptionBase(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	indexOff, footOff, trailerOff := archiveSections(t, good)
	cuts := []int{0, 1, 4, 11, 12, 13, int(blocks[0].Offset) + 30, int(blocks[3].Offset) + 100,
		indexOff, indexOff + 1, footOff - 1, footOff, footOff + 50, trailerOff - 1, trailerOff, len(good) - 4, len(good) - 1}
	// And every 97th offset besides.
	for c := 0; c < len(good); c += 97 {
		cuts = append(cuts, c)
	}
	dir := t.TempDir()
	for _, cut := range cuts {
		p := filepath.Join(dir, fmt.Sprintf("cut-%d.sjar", cut))
		if err := os.WriteFile(p, good[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(p)
		if err == nil {
			a.Close()
			t.Fatalf("file cut at %d of %d opened", cut, len(good))
		}
		archiveAsCorruption(t, err)
	}
}

func TestArchiveBlockDamageIsFoundAndContained(t *testing.T) {
	path, recs, blocks := archiveCorruptionBase(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inBlock := func(i int) func(r Record) bool {
		return func(r Record) bool { return r.Seq >= blocks[i].FirstSeq && r.Seq <= blocks[i].LastSeq }
	}
	tests := []struct {
		name   string
		damage func(*testing.T) []byte
		bad    []int // blocks Verify must name
	}{
		{"a flipped byte in a block's compressed bytes names that block", func(*testing.T) []byte {
			b := append([]byte(nil), good...)
			b[blocks[2].Offset+archiveBlockHeaderSize+7] ^= 0x01
			return b
		}, []int{2}},
		{"a flipped byte in a block header names that block", func(*testing.T) []byte {
			b := append([]byte(nil), good...)
			b[blocks[2].Offset+9] ^= 0x80
			return b
		}, []int{2}},
		{"a zeroed block names that block", func(*testing.T) []byte {
			b := append([]byte(nil), good...)
			clear(b[blocks[2].Offset : blocks[2].Offset+blocks[2].Length])
			return b
		}, []int{2}},
		{"damage in two blocks names both", func(*testing.T) []byte {
			b := append([]byte(nil), good...)
			b[blocks[2].Offset+archiveBlockHeaderSize+3] ^= 0x01
			b[blocks[4].Offset+blocks[4].Length-1] ^= 0x01
			return b
		}, []int{2, 4}},
		{"an index entry whose sequence range disagrees with its block names the block", func(t *testing.T) []byte {
			return archiveReseal(t, good, func(e []archiveIndexEntry) { e[2].lastSeq-- }, nil)
		}, []int{2}},
		{"an index entry that omits a label its block holds names the block", func(t *testing.T) []byte {
			return archiveReseal(t, good, func(e []archiveIndexEntry) { e[2].labels = e[2].labels[:1] }, nil)
		}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "damaged.sjar")
			if err := os.WriteFile(p, tt.damage(t), 0o644); err != nil {
				t.Fatal(err)
			}
			a := archiveOpen(t, p) // block damage is not visible at open

			problems := a.Verify()
			for _, p := range problems {
				t.Log(p)
			}
			if len(problems) != len(tt.bad) {
				t.Fatalf("Verify found %d problems, want %d: %v", len(problems), len(tt.bad), problems)
			}
			for i, ce := range problems {
				if ce.Block != tt.bad[i] || ce.Section != SectionBlock || ce.Offset != blocks[tt.bad[i]].Offset || !errors.Is(ce, ErrCorrupt) {
					t.Fatalf("problem %d names block %d section %q offset %d, want block %d at %d: %v", i, ce.Block, ce.Section, ce.Offset, tt.bad[i], blocks[tt.bad[i]].Offset, ce)
				}
			}
			first := tt.bad[0]

			// Blocks before the damage scan fine, newest first too.
			archiveSameRecords(t, "reverse scan below the damage",
				archiveCollect(t, func(fn func(Record) bool) error { return a.ScanReverse(blocks[first-1].LastSeq, nil, fn) }),
				archiveNaive(recs, func(r Record) bool { return r.Seq <= blocks[first-1].LastSeq }, true))
			// Blocks after the last damaged one scan fine.
			lastBad := tt.bad[len(tt.bad)-1]
			from := blocks[lastBad+1].FirstSeq
			archiveSameRecords(t, "scan above the damage",
				archiveCollect(t, func(fn func(Record) bool) error { return a.Scan(from, nil, fn) }),
				archiveNaive(recs, func(r Record) bool { return r.Seq >= from }, false))

			// A scan that reaches the damaged block delivers the records
			// before it, then fails naming it, and never hands out a
			// record of the damaged block.
			var got []Record
			err := a.Scan(0, nil, func(r Record) bool { got = append(got, archiveCopy(r)); return true })
			ce := archiveAsCorruption(t, err)
			if ce.Block != first {
				t.Fatalf("scan error names block %d, want %d", ce.Block, first)
			}
			archiveSameRecords(t, "records before the damage", got, archiveNaive(recs, func(r Record) bool { return r.Seq < blocks[first].FirstSeq }, false))
			for _, r := range got {
				if inBlock(first)(r) {
					t.Fatalf("record %d of the damaged block was delivered", r.Seq)
				}
			}
		})
	}
}

func TestArchiveVerifyChecksTheFooterTotals(t *testing.T) {
	path, _, _ := archiveCorruptionBase(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		mutate   func(*archiveFooterDisk)
		problems int
	}{
		{"per-label counts that disagree with the blocks are reported", func(f *archiveFooterDisk) { f.labelCounts[0]++; f.labelCounts[1]-- }, 2},
		{"an input byte count that disagrees with the blocks is reported", func(f *archiveFooterDisk) { f.inputBytes++ }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "resealed.sjar")
			if err := os.WriteFile(p, archiveReseal(t, good, nil, tt.mutate), 0o644); err != nil {
				t.Fatal(err)
			}
			problems := archiveOpen(t, p).Verify()
			if len(problems) != tt.problems {
				t.Fatalf("Verify found %d problems, want %d: %v", len(problems), tt.problems, problems)
			}
			for _, ce := range problems {
				if ce.Section != SectionFooter || ce.Block != -1 || !errors.Is(ce, ErrCorrupt) {
					t.Fatalf("problem %v does not name the footer", ce)
				}
			}
		})
	}
}

func TestArchiveVerifyNoticesAFileChangedAfterOpen(t *testing.T) {
	path, _, _ := archiveCorruptionBase(t)
	a := archiveOpen(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, footOff, _ := archiveSections(t, b)
	b[footOff+20] ^= 0xff
	// Rewrite in place, keeping the inode the open handle reads.
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	problems := a.Verify()
	if len(problems) != 1 || problems[0].Section != SectionFooter {
		t.Fatalf("Verify = %v, want one footer problem", problems)
	}
}
