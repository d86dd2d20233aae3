package engine

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/agentruntime/statejournal/segment"
)

// A damaged end of a sealed segment looks like a crash's torn or
// zero-filled tail, but only the newest segment can have one: a reader
// that took the scan's stopping point for the segment's end would archive
// a short unit and count the missing records as coalesced. Compaction
// must refuse, with the damage itself as the error, and cut nothing.
func TestCompactionRefusesASealedSegmentWhoseEndLooksLikeATornTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"a sealed segment cut short inside its last entry", func(b []byte) []byte { return b[:len(b)-7] }},
		{"a sealed segment whose last bytes are zeros", func(b []byte) []byte { clear(b[len(b)-600:]); return b }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(64<<10))
			fill(t, j, 1200)
			segs := hotSegmentPaths(t, dir)
			if len(segs) < 3 {
				t.Fatalf("want at least 3 hot segments, have %d", len(segs))
			}
			victim := segs[0]
			b, err := os.ReadFile(victim.Path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(victim.Path, tc.damage(b), 0o640); err != nil {
				t.Fatal(err)
			}
			before := j.Status()
			rep, err := j.Compact(context.Background(), CompactOptions{})
			var ce *segment.CorruptionError
			if !errors.As(err, &ce) || !errors.Is(err, segment.ErrCorrupt) || ce.Segment != victim.Path || ce.Tail {
				t.Fatalf("compaction of %s: %v (report %+v); want the damage of that segment, not tail damage", victim.Path, err, rep)
			}
			if _, tail := segment.TailDamage(err); tail {
				t.Fatalf("damage in a sealed segment passed as tail damage: %v", err)
			}
			st := j.Status()
			if st.ArchiveSegments != 0 || st.Coalesced != 0 || rep.Coalesced != 0 || st.HotRecords != before.HotRecords {
				t.Fatalf("after the refused compaction: %d archives, %d coalesced (report %d), hot records %d -> %d",
					st.ArchiveSegments, st.Coalesced, rep.Coalesced, before.HotRecords, st.HotRecords)
			}
		})
	}
}
