package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRepairSegment(t *testing.T) {
	tomb := func(seq uint64, cut Cut) []byte {
		return AppendEnvelope(nil, seq, []byte("!lost "+filepath.Base(cut.Quarantine)))
	}
	b, ends := hotFrames(nil, 1, 6)
	cases := []struct {
		name      string
		damage    func([]byte) []byte
		nextFirst uint64
		wantCuts  []Cause
		wantLost  []uint64
		wantKept  int // valid entries of the original kept
	}{
		{"interior damage becomes a tombstone and the entries after it are kept",
			func(d []byte) []byte { d[ends[2]-1] ^= 1; return d }, 0, []Cause{CauseBadChecksum}, []uint64{3}, 5},
		{"a torn tail of the newest segment is cut without tombstones",
			func(d []byte) []byte { return d[:ends[5]-4] }, 0, []Cause{CauseTornTail}, nil, 5},
		{"damage at the end of an older segment becomes tombstones up to the next segment",
			func(d []byte) []byte { return d[:ends[5]-4] }, 9, []Cause{CauseBadChecksum}, []uint64{6, 7, 8}, 5},
		{"a clean segment is left as it was", func(d []byte) []byte { return d }, 0, nil, nil, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			damaged := tc.damage(append([]byte(nil), b...))
			seg := hotWrite(t, dir, 1, damaged)
			qdir := filepath.Join(dir, "quarantine")
			rep, err := RepairSegment(seg, RepairOptions{NextFirst: tc.nextFirst, QuarantineDir: qdir, Detail: "test", Tombstone: tomb})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Cuts) != len(tc.wantCuts) || len(rep.Lost) != len(tc.wantLost) {
				t.Fatalf("repair %+v, want cuts %v lost %v", rep, tc.wantCuts, tc.wantLost)
			}
			for i, c := range rep.Cuts {
				kept, err := os.ReadFile(c.Quarantine)
				if c.Cause != tc.wantCuts[i] || c.Detail != "test" || err != nil || !bytes.Equal(kept, damaged[c.Offset:c.Offset+c.Bytes]) {
					t.Fatalf("cut %+v: quarantine %v", c, err)
				}
			}
			for i, s := range rep.Lost {
				if s != tc.wantLost[i] {
					t.Fatalf("lost %v, want %v", rep.Lost, tc.wantLost)
				}
			}
			kept, tombs := 0, 0
			res, err := Scan(seg, ScanOptions{Newest: true}, func(e HotEntry) bool {
				if bytes.HasPrefix(e.Payload, []byte("!lost ")) {
					tombs++
				} else if bytes.Equal(e.Payload, hotPayload(int(e.Seq))) {
					kept++
				}
				return true
			})
			if err != nil || kept != tc.wantKept || tombs != len(tc.wantLost) || res.NextSeq != 1+uint64(kept+tombs) {
				t.Fatalf("after repair: %+v, %v; %d kept, %d tombstones", res, err, kept, tombs)
			}
		})
	}
}

func TestWriteSegmentWritesAScannableSegment(t *testing.T) {
	dir := t.TempDir()
	seg, err := WriteSegment(dir, 40, 3, func(seq uint64) []byte { return AppendEnvelope(nil, seq, hotPayload(int(seq))) })
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(seg.Path) != HotSegmentName(40) {
		t.Fatalf("segment %s", seg.Path)
	}
	res, err := Scan(seg, ScanOptions{Newest: true}, nil)
	if err != nil || res.Entries != 3 || res.LastSeq != 42 || res.GoodEnd != seg.Size {
		t.Fatalf("scan %+v, %v", res, err)
	}
	empty, err := WriteSegment(dir, 50, 0, nil)
	if fi, serr := os.Stat(empty.Path); err != nil || serr != nil || fi.Size() != 0 {
		t.Fatalf("empty segment: %v, %v", err, serr)
	}
}
