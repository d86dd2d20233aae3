package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// A scan's verdict is its error: every kind of damage comes back as a
// non-nil error, in the newest segment and elsewhere, so a caller that
// handles the error cannot take a damaged segment for a clean one, and a
// nil error means every byte was a valid entry. Tail damage is tail
// damage only in the newest segment, and only tail damage can be cut
// without an explicit repair.
func TestScanNeverReportsDamageAsClean(t *testing.T) {
	five, ends := hotFrames(nil, 1, 5)
	clone := func() []byte { return append([]byte(nil), five...) }
	sixth := AppendWALEntry(nil, AppendEnvelope(nil, 6, bytes.Repeat([]byte("y"), 300)))
	cases := []struct {
		name string
		b    []byte
		tail bool // tail damage when the segment is the newest
	}{
		{"a torn length prefix", append(clone(), sixth[0]), true},
		{"a torn envelope", append(clone(), sixth[:len(sixth)-50]...), true},
		{"a zero-filled tail", append(clone(), make([]byte, 1024)...), true},
		{"a flipped byte in the last entry", func() []byte { b := clone(); b[ends[4]-1] ^= 1; return b }(), false},
		{"a flipped byte in the middle", func() []byte { b := clone(); b[ends[1]-1] ^= 1; return b }(), false},
		{"garbage", []byte(strings.Repeat("not a segment ", 10)), false},
		{"an unknown envelope version", func() []byte {
			env := AppendEnvelope(nil, 6, []byte("{}"))
			env[1] = EnvelopeVersion + 1
			return AppendWALEntry(clone(), env)
		}(), false},
	}
	for _, tc := range cases {
		for _, newest := range []bool{true, false} {
			name := tc.name + " in an older segment is damage, never a tail"
			if newest {
				name = tc.name + " in the newest segment is damage"
			}
			t.Run(name, func(t *testing.T) {
				seg := hotWrite(t, t.TempDir(), 1, tc.b)
				res, err := Scan(seg, ScanOptions{Newest: newest}, nil)
				if err == nil {
					t.Fatalf("scan of %d damaged bytes returned no error (result %+v)", len(tc.b), res)
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
					t.Fatalf("error %v matches neither ErrCorrupt nor ErrUnsupportedVersion", err)
				}
				if res.GoodEnd >= res.Size {
					t.Fatalf("GoodEnd %d reaches the file's end %d despite the damage", res.GoodEnd, res.Size)
				}
				dmg, tail := TailDamage(err)
				if tail != (tc.tail && newest) {
					t.Fatalf("TailDamage = %v, want %v (%v)", tail, tc.tail && newest, err)
				}
				if !tail {
					var ce *CorruptionError
					errors.As(err, &ce)
					if _, rerr := RecoverTail(fsx.OS, ce, filepath.Join(t.TempDir(), "q")); rerr == nil {
						t.Fatal("RecoverTail cut damage that is not tail damage")
					}
					if b, _ := os.ReadFile(seg.Path); !bytes.Equal(b, tc.b) {
						t.Fatal("a refused RecoverTail changed the segment")
					}
					return
				}
				if dmg.Offset != res.GoodEnd || dmg.Sequence != res.NextSeq {
					t.Fatalf("tail damage at %d (sequence %d), scan good to %d (next %d)", dmg.Offset, dmg.Sequence, res.GoodEnd, res.NextSeq)
				}
			})
		}
	}
	t.Run("an intact segment scans with no error to its end", func(t *testing.T) {
		seg := hotWrite(t, t.TempDir(), 1, clone())
		res, err := Scan(seg, ScanOptions{Newest: true}, nil)
		if err != nil || res.GoodEnd != res.Size || res.Entries != 5 {
			t.Fatalf("result %+v, error %v", res, err)
		}
	})
}

func TestScanRefusesAnOffsetWithoutItsSequence(t *testing.T) {
	b, ends := hotFrames(nil, 1, 3)
	seg := hotWrite(t, t.TempDir(), 1, b)
	if _, err := Scan(seg, ScanOptions{From: ends[0]}, nil); err == nil {
		t.Fatal("a scan from an offset without a sequence was accepted")
	}
	res, err := Scan(seg, ScanOptions{From: ends[0], Seq: 2}, nil)
	if err != nil || res.Entries != 2 || res.NextSeq != 4 {
		t.Fatalf("resumed scan: %+v, %v", res, err)
	}
}

func TestFrameSizeIsTheSizeOfTheWrittenFrame(t *testing.T) {
	for _, n := range []int{0, 1, 126, 127, 128, 129, 16383, 16384, 16385, 1 << 21} {
		env := make([]byte, n)
		if got, want := FrameSize(n), len(AppendWALEntry(nil, env)); got != want {
			t.Errorf("FrameSize(%d) = %d, the frame is %d bytes", n, got, want)
		}
	}
}

func TestReadEntryAtReadsWhatTheScanFound(t *testing.T) {
	b, _ := hotFrames(nil, 10, 8)
	seg := hotWrite(t, t.TempDir(), 10, b)
	var found []HotEntry
	if _, err := Scan(seg, ScanOptions{}, func(e HotEntry) bool {
		e.Payload = append([]byte(nil), e.Payload...)
		found = append(found, e)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf []byte
	for _, want := range found {
		var got HotEntry
		got, buf, err = ReadEntryAt(f, seg.Path, want.Off, want.FrameLen, want.Seq, buf)
		if err != nil || got.Seq != want.Seq || got.Off != want.Off || got.FrameLen != want.FrameLen || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("entry %d: %+v, %v; the scan saw %+v", want.Seq, got, err, want)
		}
	}
	cases := []struct {
		name  string
		seq   uint64
		flip  int64 // byte of the frame to flip, -1 for none
		cause Cause
	}{
		{"an entry asked for under another sequence is damage", found[3].Seq + 1, -1, CauseBadChecksum},
		{"a flipped payload byte is a bad checksum", found[3].Seq, found[3].FrameLen - 1, CauseBadChecksum},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := found[3]
			d := append([]byte(nil), b...)
			if tc.flip >= 0 {
				d[e.Off+tc.flip] ^= 1
			}
			p := filepath.Join(t.TempDir(), "seg")
			if err := os.WriteFile(p, d, 0o644); err != nil {
				t.Fatal(err)
			}
			g, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			_, _, err = ReadEntryAt(g, p, e.Off, e.FrameLen, tc.seq, nil)
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Cause != tc.cause || ce.Offset != e.Off || ce.Segment != p || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v, want %s damage at %d", err, tc.cause, e.Off)
			}
		})
	}
	t.Run("a frame past the end of the file is a read error naming the place", func(t *testing.T) {
		_, _, err := ReadEntryAt(f, seg.Path, seg.Size-2, 10, 99, nil)
		var ce *CorruptionError
		if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), seg.Path) {
			t.Fatalf("error %v", err)
		}
	})
}
