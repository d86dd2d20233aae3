package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// hotWriteSeed writes one seed of a single []byte argument to the fuzz
// corpus directory of target (only under -update, like the archive seeds).
func hotWriteSeed(t testing.TB, target, name string, b []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeEnvelope decodes arbitrary bytes as one envelope. It must
// never panic; an error must be one of the envelope sentinels; and what it
// accepts must re-encode, from its (sequence, payload), to the very same
// bytes: the envelope has exactly one encoding per version.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := map[string][]byte{
		"valid":          AppendEnvelope(nil, 7, []byte(`{"surface":"runtime_leases"}`)),
		"valid-empty":    AppendEnvelope(nil, 1, nil),
		"header-only":    AppendEnvelope(nil, 1<<63, nil)[:EnvelopeHeaderSize-1],
		"zeros":          make([]byte, 32),
		"next-version":   func() []byte { b := AppendEnvelope(nil, 3, []byte("x")); b[1]++; return b }(),
		"flipped-crc":    func() []byte { b := AppendEnvelope(nil, 3, []byte("xyz")); b[3] ^= 1; return b }(),
		"flipped-seq":    func() []byte { b := AppendEnvelope(nil, 3, []byte("xyz")); b[6] ^= 1; return b }(),
		"flipped-body":   func() []byte { b := AppendEnvelope(nil, 3, []byte("xyz")); b[len(b)-1] ^= 1; return b }(),
		"golden-payload": AppendEnvelope(nil, hotGoldenFirst, hotGoldenEntries()[0].payload),
		"writer-id-flag": AppendEnvelopeTime(nil, 9, FlagWriterEventID, 0, 0, []byte(`{"event_id":"k"}`)),
		"commit-time":    AppendEnvelopeTime(nil, 11, FlagWriterEventID, 1735787045000000006, 0, []byte(`{"a":1}`)),
		"journal-tag":    AppendEnvelopeTime(nil, 12, 0, 1735787045000000007, 0x5eed7a90, []byte(`{"a":2}`)),
		"v1-valid":       AppendEnvelopeV1(nil, 7, 0, []byte(`{"surface":"runtime_leases"}`)),
		"v1-writer-id":   AppendEnvelopeV1(nil, 9, FlagWriterEventID, []byte(`{"event_id":"k"}`)),
		"v2-short":       AppendEnvelope(nil, 5, nil)[:EnvelopeHeaderSize-1],
	}
	for name, b := range seeds {
		f.Add(b)
		if hotUpdateGolden() {
			hotWriteSeed(f, "FuzzDecodeEnvelope", name, b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		seq, flags, payload := e.Seq, e.Flags, e.Payload
		if err != nil {
			if !errors.Is(err, ErrShortEntry) && !errors.Is(err, ErrBadMagic) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("error %v is none of the envelope sentinels", err)
			}
			if payload != nil || seq != 0 || e.Version != 0 {
				t.Fatalf("failed decode returned %+v", e)
			}
			return
		}
		// Each version has exactly one encoding of what it holds.
		var again []byte
		if e.Version == EnvelopeVersion1 {
			again = AppendEnvelopeV1(nil, seq, flags, payload)
		} else {
			again = AppendEnvelopeTime(nil, seq, flags, e.Committed, e.Tag, payload)
			if e.Committed == 0 && e.Tag == 0 && flags == 0 && !bytes.Equal(AppendEnvelope(nil, seq, payload), b) {
				t.Fatalf("decoded (%d, %q) without flags re-encodes differently", seq, payload)
			}
			if EnvelopeSize(len(payload)) != len(b) {
				t.Fatalf("EnvelopeSize(%d) = %d for a %d-byte envelope", len(payload), EnvelopeSize(len(payload)), len(b))
			}
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded (%d, %#x, %q) re-encodes to % x, input was % x", seq, flags, payload, again, b)
		}
		if e.HeaderSize()+len(payload) != len(b) {
			t.Fatalf("header %d + payload %d != %d bytes", e.HeaderSize(), len(payload), len(b))
		}
	})
}

// FuzzScanHotSegment scans arbitrary file contents as a hot segment. It
// must never panic or fail with an I/O error, must stop at or before the
// end of the file, and the prefix it calls good must re-scan to the same
// entries with no damage at all.
func FuzzScanHotSegment(f *testing.F) {
	golden := hotGoldenBytes()
	five, ends := hotFrames(nil, 1, 5)
	seeds := map[string][]byte{
		"golden":       golden,
		"torn-prefix":  append(append([]byte(nil), golden...), 0x81),
		"torn-payload": golden[:len(golden)-9],
		"zero-tail":    append(append([]byte(nil), five...), make([]byte, 600)...),
		"flipped":      func() []byte { b := append([]byte(nil), five...); b[ends[2]-4] ^= 8; return b }(),
		"bad-length":   func() []byte { b := append([]byte(nil), five...); b[ends[1]] = 0x7f; return b }(),
		"garbage":      []byte("{\"not\":\"a segment\"}\n"),
	}
	for name, b := range seeds {
		f.Add(b)
		if hotUpdateGolden() {
			hotWriteSeed(f, "FuzzScanHotSegment", name, b)
		}
	}
	// The golden file's first sequence is not 1; the fuzzer scans
	// everything as a segment starting at 1, so golden-like seeds find a
	// bad sequence at offset 0 and frames built by hotFrames scan whole.
	// One directory per fuzzing process: executions in a process run one
	// at a time and overwrite the same two files.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		seg := HotSegment{Path: filepath.Join(dir, HotSegmentName(1)), FirstSeq: 1}
		if err := os.WriteFile(seg.Path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, p, got := hotScan(t, seg)
		size := int64(len(data))
		if res.Size != size || res.GoodEnd < 0 || res.GoodEnd > size {
			t.Fatalf("GoodEnd %d, Size %d, file %d bytes", res.GoodEnd, res.Size, size)
		}
		if res.Entries != len(got) || res.NextSeq != 1+uint64(len(got)) {
			t.Fatalf("%d entries reported, %d seen, NextSeq %d", res.Entries, len(got), res.NextSeq)
		}
		for i, e := range got {
			if e.seq != 1+uint64(i) || (i > 0 && e.off <= got[i-1].off) || e.off >= res.GoodEnd {
				t.Fatalf("entry %d: %+v (GoodEnd %d)", i, e, res.GoodEnd)
			}
		}
		if p == nil {
			// A scan that returns no error read every byte: no damage,
			// tail or not, can pass as a clean segment.
			if res.GoodEnd != size {
				t.Fatalf("no damage but GoodEnd %d of %d", res.GoodEnd, size)
			}
		} else {
			if p.Offset != res.GoodEnd || p.Sequence != res.NextSeq || p.Segment != seg.Path {
				t.Fatalf("damage at offset %d sequence %d (%s), scan stopped at %d expecting %d", p.Offset, p.Sequence, p.Segment, res.GoodEnd, res.NextSeq)
			}
			if p.Tail && p.Cause != CauseTornTail && p.Cause != CauseZeroTail {
				t.Fatalf("tail damage with cause %s", p.Cause)
			}
			if errors.Is(p, ErrUnsupportedVersion) == errors.Is(p, ErrCorrupt) {
				t.Fatalf("%v: must match exactly one of ErrUnsupportedVersion and ErrCorrupt", p)
			}
		}

		// The good prefix alone is a clean segment with the same entries.
		prefix := HotSegment{Path: filepath.Join(dir, HotSegmentName(1)+".prefix"), FirstSeq: 1}
		if err := os.WriteFile(prefix.Path, data[:res.GoodEnd], 0o644); err != nil {
			t.Fatal(err)
		}
		res2, p2, got2 := hotScan(t, prefix)
		if p2 != nil || res2.GoodEnd != res.GoodEnd || len(got2) != len(got) {
			t.Fatalf("re-scan of the good prefix: %+v (%d entries, first scan %d)", res2, len(got2), len(got))
		}
		for i := range got {
			if got[i] != got2[i] {
				t.Fatalf("entry %d: %+v then %+v", i, got[i], got2[i])
			}
		}

		// A scan resumed at an entry the first scan reported sees the
		// rest of the entries and stops where the first scan stopped.
		if len(got) > 0 {
			k := len(got) / 2
			var rest []hotEntry
			res3, err := Scan(seg, ScanOptions{From: got[k].off, Seq: got[k].seq, Newest: true}, func(e HotEntry) bool {
				rest = append(rest, hotEntry{e.Off, e.Seq, string(e.Payload)})
				return true
			})
			var p3 *CorruptionError
			if err != nil && !errors.As(err, &p3) {
				t.Fatal(err)
			}
			if res3.GoodEnd != res.GoodEnd || len(rest) != len(got)-k || (p3 == nil) != (p == nil) || p3 != nil && (p3.Tail != p.Tail || p3.Cause != p.Cause) {
				t.Fatalf("resumed at entry %d: %+v (%v) with %d entries; the full scan %+v (%v)", k, res3, p3, len(rest), res, p)
			}
			for i := range rest {
				if rest[i] != got[k+i] {
					t.Fatalf("resumed entry %d: %+v, full scan %+v", i, rest[i], got[k+i])
				}
			}
		}
	})
}
