package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/wal"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// hotPayload is the i-th test payload: JSON-like text (no NUL bytes, as
// the journal's records) whose length varies with i and sometimes needs a
// two-byte length prefix.
func hotPayload(i int) []byte {
	return fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, strings.Repeat("x", (i*37)%190))
}

// hotFrames appends the wal frames of n entries with sequences first,
// first+1, ... to dst. It returns the bytes and the end offset of every
// frame (ends[k] is where entry first+k ends).
func hotFrames(dst []byte, first uint64, n int) ([]byte, []int64) {
	var ends []int64
	for k := 0; k < n; k++ {
		seq := first + uint64(k)
		dst = AppendWALEntry(dst, AppendEnvelope(nil, seq, hotPayload(int(seq))))
		ends = append(ends, int64(len(dst)))
	}
	return dst, ends
}

// hotWrite writes b as a segment file named for first in dir.
func hotWrite(t testing.TB, dir string, first uint64, b []byte) HotSegment {
	t.Helper()
	p := filepath.Join(dir, HotSegmentName(first))
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return HotSegment{Path: p, FirstSeq: first, Size: int64(len(b))}
}

// hotRewritePrefix replaces the uvarint length prefix at off in b by
// f(length, width), which must encode in the same width.
func hotRewritePrefix(b []byte, off int64, f func(l uint64, n int) uint64) []byte {
	l, n := binary.Uvarint(b[off:])
	nl := f(l, n)
	if binary.PutUvarint(b[off:off+int64(n)], nl) != n {
		panic("hotRewritePrefix: new length changes the prefix width")
	}
	return b
}

// hotEntry is one entry a scan reported.
type hotEntry struct {
	off     int64
	seq     uint64
	payload string
}

// hotScan scans seg as the newest segment and returns the result, the
// damage found (nil for none) and the entries handed to the callback. Any
// error other than damage fails the test.
func hotScan(t testing.TB, seg HotSegment) (ScanResult, *CorruptionError, []hotEntry) {
	t.Helper()
	var got []hotEntry
	res, err := Scan(seg, ScanOptions{Newest: true}, func(e HotEntry) bool {
		got = append(got, hotEntry{e.Off, e.Seq, string(e.Payload)})
		return true
	})
	var ce *CorruptionError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("scan %s: %v", seg.Path, err)
	}
	return res, ce, got
}

// hotCorruption is the expected outcome of scanning a damaged segment.
type hotCorruption struct {
	cause    Cause
	offset   int64
	sequence uint64
	tailOnly bool
	goodEnd  int64
	entries  int
	is       []error // errors.Is must hold for each
	isNot    []error // and must not hold for these
}

func TestScanHotSegmentClassifiesDamage(t *testing.T) {
	const first = 1
	five, ends := hotFrames(nil, first, 5)
	end := func(seq uint64) int64 { return ends[seq-first] } // end offset of entry seq
	start := func(seq uint64) int64 {
		if seq == first {
			return 0
		}
		return end(seq - 1)
	}
	clone := func() []byte { return append([]byte(nil), five...) }
	// The sixth entry, long enough for a two-byte length prefix.
	sixth := AppendWALEntry(nil, AppendEnvelope(nil, 6, bytes.Repeat([]byte("y"), 300)))

	cases := []struct {
		name  string
		build func() []byte
		want  hotCorruption
	}{
		{
			name:  "a torn tail inside a frame's length prefix is tail damage",
			build: func() []byte { return append(clone(), sixth[0]) },
			want: hotCorruption{cause: CauseTornTail, offset: end(5), sequence: 6, tailOnly: true, goodEnd: end(5), entries: 5,
				is: []error{ErrShortEntry, ErrCorrupt}},
		},
		{
			name:  "a torn tail inside the envelope header is tail damage",
			build: func() []byte { return append(clone(), sixth[:2+5]...) },
			want: hotCorruption{cause: CauseTornTail, offset: end(5), sequence: 6, tailOnly: true, goodEnd: end(5), entries: 5,
				is: []error{ErrShortEntry}},
		},
		{
			name:  "a torn tail inside the envelope payload is tail damage",
			build: func() []byte { return append(clone(), sixth[:len(sixth)-100]...) },
			want: hotCorruption{cause: CauseTornTail, offset: end(5), sequence: 6, tailOnly: true, goodEnd: end(5), entries: 5,
				is: []error{ErrShortEntry}},
		},
		{
			name:  "a zero-filled tail of 4 KiB is tail damage",
			build: func() []byte { return append(clone(), make([]byte, 4096)...) },
			want: hotCorruption{cause: CauseZeroTail, offset: end(5), sequence: 6, tailOnly: true, goodEnd: end(5), entries: 5,
				is: []error{ErrShortEntry, ErrCorrupt}},
		},
		{
			name: "a complete last entry whose final sectors are zeros is a zero-filled tail",
			build: func() []byte {
				b := append(clone(), AppendWALEntry(nil, AppendEnvelope(nil, 6, bytes.Repeat([]byte("z"), 1500)))...)
				// Zero from the first sector boundary after the sixth
				// entry's header to the end of the file: the sectors a
				// power loss never wrote.
				from := (end(5)+2+EnvelopeHeaderSize+sectorSize-1)/sectorSize*sectorSize + sectorSize
				clear(b[from:])
				return b
			},
			want: hotCorruption{cause: CauseZeroTail, offset: end(5), sequence: 6, tailOnly: true, goodEnd: end(5), entries: 5,
				is: []error{ErrChecksum, ErrCorrupt}},
		},
		{
			name: "a bad checksum in the middle is interior damage with valid entries after it",
			build: func() []byte {
				b := clone()
				b[end(3)-3] ^= 0x01
				return b
			},
			want: hotCorruption{cause: CauseBadChecksum, offset: start(3), sequence: 3, tailOnly: false, goodEnd: end(2), entries: 2,
				is: []error{ErrChecksum, ErrCorrupt}},
		},
		{
			name: "a bad checksum in the very last entry is not tail damage: a flipped byte is never a crash artefact",
			build: func() []byte {
				b := clone()
				b[end(5)-2] ^= 0x40
				return b
			},
			want: hotCorruption{cause: CauseBadChecksum, offset: start(5), sequence: 5, tailOnly: false, goodEnd: end(4), entries: 4,
				is: []error{ErrChecksum, ErrCorrupt}},
		},
		{
			name: "a length prefix claiming one byte more than the valid last envelope is a bad length",
			build: func() []byte {
				return hotRewritePrefix(clone(), start(5), func(l uint64, _ int) uint64 { return l + 1 })
			},
			want: hotCorruption{cause: CauseBadLength, offset: start(5), sequence: 5, tailOnly: false, goodEnd: end(4), entries: 4,
				is: []error{ErrCorrupt}},
		},
		{
			name: "a length prefix in the middle claiming more than the file holds is a bad length",
			build: func() []byte {
				// The largest length a prefix of the same width can say.
				return hotRewritePrefix(clone(), start(3), func(_ uint64, n int) uint64 { return 1<<(7*n) - 1 })
			},
			want: hotCorruption{cause: CauseBadLength, offset: start(3), sequence: 3, tailOnly: false, goodEnd: end(2), entries: 2,
				is: []error{ErrCorrupt}},
		},
		{
			name: "a file of garbage text is damage at offset 0, not a tail",
			build: func() []byte {
				return []byte(strings.Repeat("this is not a hot segment of the state journal\n", 20))
			},
			want: hotCorruption{cause: CauseBadChecksum, offset: 0, sequence: 1, tailOnly: false, goodEnd: 0, entries: 0,
				is: []error{ErrBadMagic, ErrCorrupt}},
		},
		{
			name: "an unknown envelope version is unsupported, never corrupt",
			build: func() []byte {
				b, _ := hotFrames(nil, 1, 2)
				env := AppendEnvelope(nil, 3, hotPayload(3))
				env[1] = EnvelopeVersion + 1
				b = AppendWALEntry(b, env)
				b, _ = hotFrames(b, 4, 2)
				return b
			},
			want: hotCorruption{cause: CauseUnsupported, offset: start(3), sequence: 3, tailOnly: false, goodEnd: end(2), entries: 2,
				is: []error{ErrUnsupportedVersion}, isNot: []error{ErrCorrupt, ErrChecksum}},
		},
		{
			name: "an envelope carrying the wrong sequence is a bad sequence",
			build: func() []byte {
				b, _ := hotFrames(nil, 1, 2)
				b = AppendWALEntry(b, AppendEnvelope(nil, 7, hotPayload(3)))
				b, _ = hotFrames(b, 4, 2)
				return b
			},
			want: hotCorruption{cause: CauseBadSequence, offset: start(3), sequence: 3, tailOnly: false, goodEnd: end(2), entries: 2,
				is: []error{ErrCorrupt}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build()
			seg := hotWrite(t, t.TempDir(), first, b)
			res, p, got := hotScan(t, seg)
			w := tc.want
			if p == nil {
				t.Fatalf("scan found no damage in %d bytes (%d entries)", len(b), res.Entries)
			}
			if p.Cause != w.cause || p.Offset != w.offset || p.Sequence != w.sequence || p.Tail != w.tailOnly || res.GoodEnd != w.goodEnd {
				t.Fatalf("got cause=%s offset=%d sequence=%d tail=%v goodEnd=%d\nwant cause=%s offset=%d sequence=%d tail=%v goodEnd=%d\n(%v)",
					p.Cause, p.Offset, p.Sequence, p.Tail, res.GoodEnd, w.cause, w.offset, w.sequence, w.tailOnly, w.goodEnd, p)
			}
			if res.Entries != w.entries || len(got) != w.entries || res.Size != int64(len(b)) {
				t.Fatalf("entries: result %d, callback %d, want %d; size %d of %d", res.Entries, len(got), w.entries, res.Size, len(b))
			}
			if w.entries > 0 && (res.LastSeq != first+uint64(w.entries)-1 || res.NextSeq != w.sequence) {
				t.Fatalf("LastSeq=%d NextSeq=%d after %d entries", res.LastSeq, res.NextSeq, w.entries)
			}
			if p.Segment != seg.Path {
				t.Fatalf("error names segment %q, want %q", p.Segment, seg.Path)
			}
			for _, target := range w.is {
				if !errors.Is(p, target) {
					t.Errorf("errors.Is(%v, %v) = false", p, target)
				}
			}
			for _, target := range w.isNot {
				if errors.Is(p, target) {
					t.Errorf("errors.Is(%v, %v) = true", p, target)
				}
			}
			var ce *CorruptionError
			if !errors.As(error(p), &ce) || !strings.Contains(p.Error(), seg.Path) {
				t.Errorf("error %q does not name the segment", p)
			}
		})
	}
}

func TestScanHotSegmentOfIntactFilesFindsNoDamage(t *testing.T) {
	full, ends := hotFrames(nil, 42, 30)
	cases := []struct {
		name  string
		b     []byte
		first uint64
		want  int
	}{
		{"an empty segment has no entries and no damage", nil, 1, 0},
		{"thirty whole entries are all reported in order", full, 42, 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seg := hotWrite(t, t.TempDir(), tc.first, tc.b)
			res, p, got := hotScan(t, seg)
			if p != nil || res.Entries != tc.want || res.GoodEnd != int64(len(tc.b)) {
				t.Fatalf("result %+v, damage %v", res, p)
			}
			for k, e := range got {
				wantOff := int64(0)
				if k > 0 {
					wantOff = ends[k-1]
				}
				if e.seq != tc.first+uint64(k) || e.off != wantOff || e.payload != string(hotPayload(int(e.seq))) {
					t.Fatalf("entry %d = %+v", k, e)
				}
			}
		})
	}
}

func TestScanHotSegmentStopsWhenTheCallbackSaysSo(t *testing.T) {
	b, ends := hotFrames(nil, 1, 10)
	seg := hotWrite(t, t.TempDir(), 1, b)
	n := 0
	res, err := Scan(seg, ScanOptions{}, func(HotEntry) bool { n++; return n < 4 })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Entries != 4 || res.LastSeq != 4 || res.NextSeq != 5 || res.GoodEnd != ends[3] {
		t.Fatalf("result %+v", res)
	}
}

// hotSnapshot is a directory's file names and contents.
func hotSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hotNames(snap map[string]string) []string {
	var names []string
	for n := range snap {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// hotLeftover is a file of an interrupted tidwall/wal truncation: name and
// the sequences of the entries it holds.
type hotLeftover struct {
	name        string
	first, last uint64
}

func TestListHotSegmentsResolvesTruncationLeftoversAsTidwallWalDoes(t *testing.T) {
	name := HotSegmentName
	cases := []struct {
		name    string
		files   []hotLeftover
		extra   []string // files tidwall/wal and we ignore
		want    []HotSegment
		wantFix []HotFixup // paths relative to the directory
		err     error
	}{
		{
			name: "a front truncation that crashed before removing anything keeps only the START file onwards",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(4), 4, 6}, {name(5) + ".START", 5, 6}, {name(7), 7, 9},
			},
			want:    []HotSegment{{Path: name(5) + ".START", FirstSeq: 5}, {Path: name(7), FirstSeq: 7}},
			wantFix: []HotFixup{{Remove: name(1)}, {Remove: name(4)}, {From: name(5) + ".START", To: name(5)}},
		},
		{
			name: "a front truncation at a segment boundary replaces the segment of the same name",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(4), 4, 6}, {name(4) + ".START", 4, 6}, {name(7), 7, 9},
			},
			want:    []HotSegment{{Path: name(4) + ".START", FirstSeq: 4}, {Path: name(7), FirstSeq: 7}},
			wantFix: []HotFixup{{Remove: name(1)}, {Remove: name(4)}, {From: name(4) + ".START", To: name(4)}},
		},
		{
			name: "a front truncation that crashed before its rename only renames",
			files: []hotLeftover{
				{name(5) + ".START", 5, 6}, {name(7), 7, 9},
			},
			want:    []HotSegment{{Path: name(5) + ".START", FirstSeq: 5}, {Path: name(7), FirstSeq: 7}},
			wantFix: []HotFixup{{From: name(5) + ".START", To: name(5)}},
		},
		{
			name: "a back truncation that crashed before removing anything keeps the END file as the last segment",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(4), 4, 6}, {name(4) + ".END", 4, 5}, {name(7), 7, 9},
			},
			want:    []HotSegment{{Path: name(1), FirstSeq: 1}, {Path: name(4) + ".END", FirstSeq: 4}},
			wantFix: []HotFixup{{Remove: name(7)}, {From: name(4) + ".END", To: name(4)}},
		},
		{
			name: "a back truncation that crashed before its rename only renames",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(4) + ".END", 4, 5},
			},
			want:    []HotSegment{{Path: name(1), FirstSeq: 1}, {Path: name(4) + ".END", FirstSeq: 4}},
			wantFix: []HotFixup{{From: name(4) + ".END", To: name(4)}},
		},
		{
			name: "temp files of an unfinished atomic write and foreign files are ignored",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(4), 4, 6},
			},
			extra: []string{name(4) + ".END.TEMP", name(7) + ".START.TEMP", "notes.txt", "00000000000000000000", "0000000000000000000x-1"},
			want:  []HotSegment{{Path: name(1), FirstSeq: 1}, {Path: name(4), FirstSeq: 4}},
		},
		{
			name: "both a START and an END marker is corruption that nothing resolves",
			files: []hotLeftover{
				{name(1), 1, 3}, {name(2) + ".START", 2, 3}, {name(1) + ".END", 1, 2},
			},
			err: ErrCorrupt,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "hot")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.files {
				b, _ := hotFrames(nil, f.first, int(f.last-f.first+1))
				if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range tc.extra {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("leftover"), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			before := hotSnapshot(t, dir)
			segs, fix, err := ListHotSegments(dir)
			if after := hotSnapshot(t, dir); !hotSameFiles(before, after) {
				t.Fatalf("ListHotSegments changed the directory: %v -> %v", hotNames(before), hotNames(after))
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				// tidwall/wal refuses the directory too.
				if w, werr := wal.Open(hotCopy(t, dir), &wal.Options{LogFormat: wal.Binary, NoSync: true}); werr == nil {
					w.Close()
					t.Fatal("tidwall/wal opened a directory with both markers")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				tc.want[i].Path = filepath.Join(dir, tc.want[i].Path)
				fi, err := os.Stat(tc.want[i].Path)
				if err != nil {
					t.Fatal(err)
				}
				tc.want[i].Size = fi.Size()
			}
			if !slices.Equal(segs, tc.want) {
				t.Fatalf("segments\n got %+v\nwant %+v", segs, tc.want)
			}
			for i := range tc.wantFix {
				fx := &tc.wantFix[i]
				for _, p := range []*string{&fx.Remove, &fx.From, &fx.To} {
					if *p != "" {
						*p = filepath.Join(dir, *p)
					}
				}
			}
			if !slices.Equal(fix, tc.wantFix) {
				t.Fatalf("fixups\n got %+v\nwant %+v", fix, tc.wantFix)
			}
			// Every listed segment scans clean, from its listed path.
			next := segs[0].FirstSeq
			for _, s := range segs {
				res, p, _ := hotScan(t, s)
				if p != nil || s.FirstSeq != next {
					t.Fatalf("segment %s: %+v (expected first %d)", s.Path, res, next)
				}
				next = res.NextSeq
			}

			// tidwall/wal, opening a copy, ends with the files we end with
			// after ApplyHotFixups, byte for byte.
			ref := hotCopy(t, dir)
			w, err := wal.Open(ref, &wal.Options{LogFormat: wal.Binary, NoSync: true})
			if err != nil {
				t.Fatalf("tidwall/wal open: %v", err)
			}
			firstIdx, _ := w.FirstIndex()
			lastIdx, _ := w.LastIndex()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if firstIdx != segs[0].FirstSeq || lastIdx != next-1 {
				t.Fatalf("tidwall/wal sees %d..%d, we list %d..%d", firstIdx, lastIdx, segs[0].FirstSeq, next-1)
			}
			if err := ApplyHotFixups(dir, fix); err != nil {
				t.Fatal(err)
			}
			got, want := hotSnapshot(t, dir), hotSnapshot(t, ref)
			if !hotSameFiles(got, want) {
				t.Fatalf("after ApplyHotFixups: %v\ntidwall/wal leaves: %v", hotNames(got), hotNames(want))
			}
			again, fix2, err := ListHotSegments(dir)
			if err != nil || len(fix2) != 0 || len(again) != len(segs) {
				t.Fatalf("listing after fixups: %v %+v %v", again, fix2, err)
			}
			for i, s := range again {
				if s.FirstSeq != segs[i].FirstSeq || s.Size != segs[i].Size || SegmentBase(s.Path) != SegmentBase(segs[i].Path) || s.Path != filepath.Join(dir, HotSegmentName(s.FirstSeq)) {
					t.Fatalf("segment %d after fixups %+v, before %+v", i, s, segs[i])
				}
			}
		})
	}
}

func hotSameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// hotCopy copies the flat directory dir to a new temp directory.
func hotCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "hot")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestListHotSegmentsOfAMissingDirectoryIsEmpty(t *testing.T) {
	segs, fix, err := ListHotSegments(filepath.Join(t.TempDir(), "absent"))
	if segs != nil || fix != nil || err != nil {
		t.Fatalf("%v %v %v", segs, fix, err)
	}
}

func TestQuarantineTailKeepsTheCutBytesAndTruncatesTheSegment(t *testing.T) {
	dir := t.TempDir()
	b, ends := hotFrames(nil, 1, 6)
	b = append(b, AppendWALEntry(nil, AppendEnvelope(nil, 7, hotPayload(7)))[:9]...)
	seg := hotWrite(t, dir, 1, b)
	res, p, _ := hotScan(t, seg)
	if p == nil || !p.Tail || res.GoodEnd != ends[5] {
		t.Fatalf("scan %+v, damage %v", res, p)
	}
	qdir := filepath.Join(dir, "quarantine")
	cut, err := RecoverTail(fsx.OS, p, qdir)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Segment != filepath.Base(seg.Path) || cut.Offset != ends[5] || cut.Bytes != int64(len(b))-ends[5] ||
		cut.Cause != CauseTornTail || cut.Sequence != 7 || filepath.Dir(cut.Quarantine) != qdir || cut.At.IsZero() || cut.Detail == "" {
		t.Fatalf("cut %+v", cut)
	}
	kept, err := os.ReadFile(cut.Quarantine)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, b[ends[5]:]) {
		t.Fatalf("quarantine holds %x, cut bytes were %x", kept, b[ends[5]:])
	}
	now, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, b[:ends[5]]) {
		t.Fatalf("segment is %d bytes after the cut, want the first %d bytes unchanged", len(now), ends[5])
	}
	res, p, got := hotScan(t, HotSegment{Path: seg.Path, FirstSeq: 1})
	if p != nil || len(got) != 6 {
		t.Fatalf("after the cut: %+v, %d entries", res, len(got))
	}
	ents, _ := os.ReadDir(qdir)
	if len(ents) != 1 {
		t.Fatalf("quarantine directory holds %d files, want exactly the copy", len(ents))
	}
}

func TestQuarantineTailRefusesAnOffsetPastTheEnd(t *testing.T) {
	dir := t.TempDir()
	b, _ := hotFrames(nil, 1, 2)
	seg := hotWrite(t, dir, 1, b)
	if _, err := QuarantineTail(fsx.OS, seg.Path, int64(len(b))+1, CauseTornTail, 3, "", filepath.Join(dir, "q")); err == nil {
		t.Fatal("QuarantineTail accepted an offset past the end of the file")
	}
	now, _ := os.ReadFile(seg.Path)
	if !bytes.Equal(now, b) {
		t.Fatal("the segment changed")
	}
}

// The golden hot segment pins envelope format version 1 and the wal frame
// around it: a build that reads it differently, or writes these entries
// differently, fails here, so a format change is a deliberate act.
// Regenerate with
//
//	go test ./segment/ -run TestHotGoldenV1 -update
//
// only when the change is intended.
const hotGoldenPath = "testdata/hot/v1-segment"

var hotUpdate = flag.Bool("update", false, "rewrite golden files in testdata")

func hotUpdateGolden() bool { return *hotUpdate }

// hotGoldenFirst is the golden segment's first sequence (its tidwall/wal
// file name would be HotSegmentName(hotGoldenFirst)).
const hotGoldenFirst = 1000

// hotGoldenEntry is one golden entry: its envelope flags and payload.
type hotGoldenEntry struct {
	flags   byte
	payload []byte
}

// hotGoldenEntries are the golden entries: JSON records (one marked as
// carrying a writer-supplied event id), an empty payload, one that needs
// a two-byte length prefix, non-ASCII text and raw binary bytes (the
// envelope does not care what it carries).
func hotGoldenEntries() []hotGoldenEntry {
	return []hotGoldenEntry{
		{0, []byte(`{"schema_version":"runtime-state-change-v1","event_id":"0190a5f0-0000-7000-8000-000000000001","occurred_at":"2025-01-02T03:04:05.000000006Z","source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-42","changed_surfaces":["runtime_work_session"],"severity":"info","snapshot_hint":"runtime_health","mutates_authority_state":false}`)},
		{FlagWriterEventID, []byte(`{"event_id":"retry-key-1"}`)},
		{0, []byte{}},
		{0, []byte(`{"a":1}`)},
		{0, []byte(`{"metadata":{"note":"` + strings.Repeat("é", 70) + `"}}`)},
		{0, []byte{0x00, 0x01, 0xA7, 0x01, 0xff, 0x80, 0x7f}},
		{0, bytes.Repeat([]byte("0123456789"), 13)},
	}
}

func hotGoldenBytes() []byte {
	var b []byte
	for i, e := range hotGoldenEntries() {
		b = AppendWALEntry(b, AppendEnvelopeV1(nil, hotGoldenFirst+uint64(i), e.flags, e.payload))
	}
	return b
}

func TestHotGoldenV1IsReadable(t *testing.T) {
	if hotUpdateGolden() {
		if err := os.MkdirAll(filepath.Dir(hotGoldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hotGoldenPath, hotGoldenBytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", hotGoldenPath)
	}
	fi, err := os.Stat(hotGoldenPath)
	if err != nil {
		t.Fatalf("golden segment missing (regenerate with -update): %v", err)
	}
	type entry struct {
		seq     uint64
		flags   byte
		payload string
	}
	var got []entry
	seg := HotSegment{Path: hotGoldenPath, FirstSeq: hotGoldenFirst, Size: fi.Size()}
	res, err := Scan(seg, ScanOptions{}, func(e HotEntry) bool {
		got = append(got, entry{e.Seq, e.Flags, string(e.Payload)})
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := hotGoldenEntries()
	if res.Entries != len(want) || len(got) != len(want) || res.GoodEnd != fi.Size() || res.LastSeq != hotGoldenFirst+uint64(len(want))-1 {
		t.Fatalf("scan of the golden segment: %+v", res)
	}
	for i, e := range got {
		if e.seq != hotGoldenFirst+uint64(i) || e.flags != want[i].flags || e.payload != string(want[i].payload) {
			t.Fatalf("golden entry %d: sequence %d flags %#x payload %q, want sequence %d flags %#x payload %q",
				i, e.seq, e.flags, e.payload, hotGoldenFirst+uint64(i), want[i].flags, want[i].payload)
		}
	}
}

func TestHotGoldenV1LayoutIsStable(t *testing.T) {
	b, err := os.ReadFile(hotGoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, hotGoldenBytes()) {
		t.Fatalf("AppendWALEntry(AppendEnvelopeV1(...)) no longer writes the golden bytes: the hot-log format changed (%d bytes on disk, %d written now); "+
			"bump EnvelopeVersion and keep reading this file, or regenerate it with -update if no journal was ever written in this format",
			len(b), len(hotGoldenBytes()))
	}
	// The first frame, byte by byte: a two-byte uvarint length, magic,
	// version, CRC32C (bytes 2..5 of the envelope), flags, sequence.
	n := EnvelopeHeaderSizeV1 + len(hotGoldenEntries()[0].payload)
	env := b[2:]
	if b[0] != 0x80|byte(n&0x7f) || b[1] != byte(n>>7) || env[0] != 0xA7 || env[1] != 0x01 || env[6] != 0 ||
		binary.LittleEndian.Uint64(env[7:15]) != hotGoldenFirst || EnvelopeHeaderSizeV1 != 15 {
		t.Fatalf("first frame header % x", b[:2+EnvelopeHeaderSizeV1])
	}
}

// The version 2 golden segment pins the envelope this build writes: the
// version 1 header plus the commit time (unix nanoseconds, little
// endian) before the payload. Regenerate with
//
//	go test ./segment/ -run TestHotGoldenV2 -update
const hotGoldenV2Path = "testdata/hot/v2-segment"

// hotGoldenV2Committed is the commit time of golden entry i (0 for the
// last one: a version 2 entry without a commit time, as repair writes).
func hotGoldenV2Committed(i, n int) int64 {
	if i == n-1 {
		return 0
	}
	return 1735787045000000006 + int64(i)*1000
}

// hotGoldenV2Tag is the journal tag of the version 2 golden segment.
const hotGoldenV2Tag uint32 = 0x5eed7a90

func hotGoldenV2Bytes() []byte {
	var b []byte
	es := hotGoldenEntries()
	for i, e := range es {
		b = AppendWALEntry(b, AppendEnvelopeTime(nil, hotGoldenFirst+uint64(i), e.flags, hotGoldenV2Committed(i, len(es)), hotGoldenV2Tag, e.payload))
	}
	return b
}

func TestHotGoldenV2IsReadableAndStable(t *testing.T) {
	if hotUpdateGolden() {
		if err := os.WriteFile(hotGoldenV2Path, hotGoldenV2Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", hotGoldenV2Path)
	}
	b, err := os.ReadFile(hotGoldenV2Path)
	if err != nil {
		t.Fatalf("golden segment missing (regenerate with -update): %v", err)
	}
	if !bytes.Equal(b, hotGoldenV2Bytes()) {
		t.Fatalf("AppendWALEntry(AppendEnvelopeTime(...)) no longer writes the version 2 golden bytes: the hot-log format changed; " +
			"bump EnvelopeVersion and keep reading this file")
	}
	want := hotGoldenEntries()
	seg := HotSegment{Path: hotGoldenV2Path, FirstSeq: hotGoldenFirst, Size: int64(len(b))}
	i := 0
	res, err := Scan(seg, ScanOptions{}, func(e HotEntry) bool {
		if e.Version != EnvelopeVersion2 || e.Seq != hotGoldenFirst+uint64(i) || e.Flags != want[i].flags ||
			e.Committed != hotGoldenV2Committed(i, len(want)) || e.Tag != hotGoldenV2Tag || string(e.Payload) != string(want[i].payload) ||
			e.FrameLen != int64(len(AppendWALEntry(nil, AppendEnvelopeTime(nil, e.Seq, e.Flags, e.Committed, e.Tag, e.Payload)))) {
			t.Errorf("golden v2 entry %d: %+v", i, e)
		}
		i++
		return true
	})
	if err != nil || i != len(want) || res.GoodEnd != int64(len(b)) {
		t.Fatalf("scan of the v2 golden segment: %+v, %v, %d entries", res, err, i)
	}
	// The first frame, byte by byte: length, magic, version 2, CRC,
	// flags, sequence, commit time, journal tag.
	n := EnvelopeHeaderSize + len(want[0].payload)
	env := b[2:]
	if b[0] != 0x80|byte(n&0x7f) || b[1] != byte(n>>7) || env[0] != 0xA7 || env[1] != 0x02 || env[6] != 0 ||
		binary.LittleEndian.Uint64(env[7:15]) != hotGoldenFirst || int64(binary.LittleEndian.Uint64(env[15:23])) != hotGoldenV2Committed(0, len(want)) ||
		binary.LittleEndian.Uint32(env[23:27]) != hotGoldenV2Tag || EnvelopeHeaderSize != 27 {
		t.Fatalf("first frame header % x", b[:2+EnvelopeHeaderSize])
	}
	// The version 1 golden segment still scans, with no commit time.
	v1, err := os.ReadFile(hotGoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(HotSegment{Path: hotGoldenPath, FirstSeq: hotGoldenFirst, Size: int64(len(v1))}, ScanOptions{}, func(e HotEntry) bool {
		if e.Version != EnvelopeVersion1 || e.Committed != 0 || e.Tag != 0 || e.HeaderSize() != EnvelopeHeaderSizeV1 {
			t.Errorf("v1 entry %d: version %d committed %d", e.Seq, e.Version, e.Committed)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}
