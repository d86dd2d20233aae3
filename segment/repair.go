package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// RepairOptions configures RepairSegment.
type RepairOptions struct {
	// NextFirst is the first sequence of the segment after the one
	// repaired, 0 when it is the newest.
	NextFirst uint64
	// QuarantineDir receives the damaged bytes, one file per cut.
	QuarantineDir string
	// Detail is recorded in every Cut (who asked for the repair).
	Detail string
	// Tombstone returns the envelope written in place of sequence seq,
	// whose record was lost to cut (cut.Quarantine names the file that
	// keeps its bytes). The envelope must hold seq.
	Tombstone func(seq uint64, cut Cut) []byte
}

// Repaired says what RepairSegment did.
type Repaired struct {
	Cuts []Cut    // every byte range moved to quarantine
	Lost []uint64 // the sequences written as tombstones
}

// RepairSegment rebuilds a damaged hot segment: it keeps every valid frame
// that holds the sequence its position implies, copies every damaged byte
// range to a file in the quarantine directory (durably, before anything
// is rewritten), writes a tombstone (opts.Tombstone) for each sequence
// whose record was lost, so sequences stay gapless, and then replaces the
// segment atomically. Valid entries after damage are found by their
// envelope (NextFrame) and kept. Damage with nothing valid after it is a
// tail: in the newest segment it is cut (cause torn_tail), as open would
// cut it; in an earlier one, the sequences up to opts.NextFirst become
// tombstones. A clean segment is rewritten unchanged.
func RepairSegment(seg HotSegment, opts RepairOptions) (Repaired, error) {
	var rep Repaired
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		return rep, err
	}
	out := make([]byte, 0, len(data))
	seq := seg.FirstSeq
	off := 0
	quarantine := func(from, to int, cause Cause) error {
		cut := Cut{Segment: filepath.Base(seg.Path), Offset: int64(from), Bytes: int64(to - from), Cause: cause, Sequence: seq,
			At: time.Now().UTC(), Detail: opts.Detail}
		if err := fsx.MkdirAllDurable(opts.QuarantineDir, 0o755); err != nil {
			return err
		}
		cut.Quarantine = filepath.Join(opts.QuarantineDir, fmt.Sprintf("%s-off%d-%s-repair-%s.bin", cut.Segment, from, cause, cut.At.Format("20060102T150405.000000000Z")))
		if err := fsx.WriteFileAtomic(cut.Quarantine, data[from:to], 0o600); err != nil {
			return err
		}
		rep.Cuts = append(rep.Cuts, cut)
		return nil
	}
	tomb := func(upto uint64) {
		cut := rep.Cuts[len(rep.Cuts)-1]
		for ; seq < upto; seq++ {
			out = AppendWALEntry(out, opts.Tombstone(seq, cut))
			rep.Lost = append(rep.Lost, seq)
		}
	}
	for off < len(data) {
		if n, ok := frameAt(data, off, seq); ok {
			out = append(out, data[off:off+n]...)
			off += n
			seq++
			continue
		}
		next, nextSeq := NextFrame(data, off+1, seq)
		if next < 0 {
			if opts.NextFirst == 0 {
				// Nothing valid follows in the newest segment: a tail cut.
				if err := quarantine(off, len(data), CauseTornTail); err != nil {
					return rep, err
				}
				break
			}
			if err := quarantine(off, len(data), CauseBadChecksum); err != nil {
				return rep, err
			}
			tomb(opts.NextFirst)
			break
		}
		if err := quarantine(off, next, CauseBadChecksum); err != nil {
			return rep, err
		}
		tomb(nextSeq)
		off = next
	}
	if err := fsx.WriteFileAtomic(seg.Path, out, 0o640); err != nil {
		return rep, fmt.Errorf("rewrite %s: %w", seg.Path, err)
	}
	return rep, nil
}

// WriteSegment writes a new hot segment in dir, named for first, holding
// n entries with sequences first, first+1, ...: the frame of the envelope
// envelope(seq) returns for each (n may be 0: an empty segment). The file
// is written atomically and made durable with its directory. Repair uses
// it to fill sequences no file holds with tombstones.
func WriteSegment(dir string, first uint64, n int, envelope func(seq uint64) []byte) (HotSegment, error) {
	var out []byte
	for i := 0; i < n; i++ {
		out = AppendWALEntry(out, envelope(first+uint64(i)))
	}
	seg := HotSegment{Path: filepath.Join(dir, HotSegmentName(first)), FirstSeq: first, Size: int64(len(out))}
	if err := fsx.WriteFileAtomic(seg.Path, out, 0o640); err != nil {
		return seg, fmt.Errorf("write segment %s: %w", filepath.Base(seg.Path), err)
	}
	return seg, nil
}
