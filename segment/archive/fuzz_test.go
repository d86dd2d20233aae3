package archive

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"testing"
)

// archiveFuzzAllocBound is the most a single block decode may allocate:
// the decompressed contents (at most archiveMaxBlockRaw) and the decoded
// record table (at most one 32-byte entry per 4 content bytes, grown by
// doubling), with room for the decoder's own bookkeeping.
const archiveFuzzAllocBound = 20*archiveMaxBlockRaw + 8<<20

func archiveHeapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// archiveGoldenBlocks returns the raw bytes (header and compressed
// contents) of every block of the golden archive.
func archiveGoldenBlocks(t testing.TB) [][]byte {
	b, err := os.ReadFile(archiveGoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	a := archiveOpen(t, archiveGoldenPath)
	var out [][]byte
	for _, bi := range a.Blocks() {
		out = append(out, b[bi.Offset:bi.Offset+bi.Length])
	}
	return out
}

// FuzzDecodeArchiveBlock decodes arbitrary bytes as a block (header and
// compressed contents) and as the uncompressed contents of a block. With
// fixCRC the fuzzer's header gets a matching length and checksum, so it
// reaches decompression and record decoding. Decoding must never panic,
// never allocate more than archiveFuzzAllocBound, and whatever it accepts
// must satisfy the block invariants.
func FuzzDecodeArchiveBlock(f *testing.F) {
	blocks := archiveGoldenBlocks(f)
	for i, b := range blocks {
		f.Add(b, false)
		damaged := append([]byte(nil), b...)
		damaged[len(damaged)/2] ^= 0x10
		f.Add(damaged, true)
		f.Add(b[:len(b)-1], true)
		if archiveUpdateGolden() && i < 2 {
			dir := filepath.Join("testdata", "fuzz", "FuzzDecodeArchiveBlock")
			os.MkdirAll(dir, 0o755)
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nbool(true)\n", strconv.Quote(string(damaged)))
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("golden-block-%d-damaged", i)), []byte(seed), 0o644)
		}
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, archiveBlockHeaderSize), true)
	f.Add([]byte("\x01\x01\x61\x01\x00\x00\x00"), false) // one label "a", one empty record

	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		before := archiveHeapAllocated()
		b := data
		if fixCRC && len(b) >= archiveBlockHeaderSize {
			b = append([]byte(nil), b...)
			binary.LittleEndian.PutUint32(b[0:], uint32(len(b)-archiveBlockHeaderSize))
			binary.LittleEndian.PutUint32(b[44:], archiveBlockCRC(b, b[archiveBlockHeaderSize:]))
		}
		s := new(archiveScratch)
		if h, comp, err := archiveCheckBlock(b); err == nil {
			if err := archiveDecodeBlockBody(&h, comp, s); err == nil {
				archiveFuzzCheckRecords(t, &h, s)
			}
		}

		// The same bytes as uncompressed block contents, with a header
		// that only bounds the record count, exercise the record decoder
		// on every input.
		h := archiveBlockHeader{rawLen: uint32(len(data)), records: uint32(len(data)/archiveMinRecordSize + 1)}
		recs, labels, err := archiveParseBlock(data, &h, nil, nil)
		if err == nil {
			t.Fatalf("parse accepted %d records against a header declaring %d", len(recs), h.records)
		}
		if len(recs) > len(data)/archiveMinRecordSize || len(labels) > len(data) {
			t.Fatalf("decoded %d records and %d labels from %d bytes", len(recs), len(labels), len(data))
		}
		if got := archiveHeapAllocated() - before; got > archiveFuzzAllocBound {
			t.Fatalf("decoding %d bytes allocated %d bytes, bound %d", len(data), got, archiveFuzzAllocBound)
		}
	})
}

func archiveFuzzCheckRecords(t *testing.T, h *archiveBlockHeader, s *archiveScratch) {
	if uint32(len(s.recs)) != h.records || len(s.raw) != int(h.rawLen) {
		t.Fatalf("accepted %d records / %d bytes, header declares %d / %d", len(s.recs), len(s.raw), h.records, h.rawLen)
	}
	for i, r := range s.recs {
		if i > 0 && r.seq <= s.recs[i-1].seq {
			t.Fatalf("accepted non-increasing sequences %d, %d", s.recs[i-1].seq, r.seq)
		}
		if r.time < h.minTime || r.time > h.maxTime || int(r.label) >= len(s.labels) || int(r.off)+int(r.n) > len(s.raw) {
			t.Fatalf("accepted record %+v outside header %+v", r, *h)
		}
	}
	if s.recs[0].seq != h.firstSeq || s.recs[len(s.recs)-1].seq != h.lastSeq {
		t.Fatalf("accepted sequences %d..%d, header %d..%d", s.recs[0].seq, s.recs[len(s.recs)-1].seq, h.firstSeq, h.lastSeq)
	}
}

// FuzzOpenArchive opens arbitrary bytes as an archive file. Opening,
// verifying and scanning must never panic; what opens must scan in
// sequence order within its footer's range.
func FuzzOpenArchive(f *testing.F) {
	golden, err := os.ReadFile(archiveGoldenPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for _, cut := range []int{0, 12, 100, len(golden) / 2, len(golden) - 17, len(golden) - 1} {
		f.Add(golden[:cut])
	}
	flipped := append([]byte(nil), golden...)
	flipped[len(flipped)-30] ^= 1
	f.Add(flipped)
	empty := filepath.Join(f.TempDir(), "empty.sjar")
	if _, err := Write(empty, archiveIter(nil), WriterOptions{}); err != nil {
		f.Fatal(err)
	}
	if b, err := os.ReadFile(empty); err == nil {
		f.Add(b)
	}

	// Inputs run one at a time within a fuzz worker, so one path serves.
	p := filepath.Join(f.TempDir(), "fuzz.sjar")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(p)
		if err != nil {
			return
		}
		defer a.Close()
		foot := a.Footer()
		a.Verify()
		var prev uint64
		err = a.Scan(0, nil, func(r Record) bool {
			if r.Seq <= prev || r.Seq < foot.FirstSeq || r.Seq > foot.LastSeq {
				t.Fatalf("scan returned sequence %d after %d, footer range %d..%d", r.Seq, prev, foot.FirstSeq, foot.LastSeq)
			}
			prev = r.Seq
			return true
		})
		_ = err
		a.ScanReverse(0, []string{"runtime_leases"}, func(Record) bool { return true })
		a.Blocks()
	})
}
