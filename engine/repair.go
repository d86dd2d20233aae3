package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
)

// A tombstone is the payload repair writes in place of a record it had to
// quarantine. It keeps the hot log's sequences gapless (tidwall/wal
// requires it, and consumers rely on it) while saying plainly that the
// record is gone. Queries return a tombstone as a Change with Lost set
// (see LostRecord), in the hot log and after compaction; validation
// reports them as info.
var tombstonePrefix = []byte("!lost ")

type tombstone struct {
	Quarantine string    `json:"quarantine"`
	Cause      string    `json:"cause"`
	At         time.Time `json:"at"`
}

func isTombstone(payload []byte) bool { return bytes.HasPrefix(payload, tombstonePrefix) }

func tombstoneReason(payload []byte) string {
	var t tombstone
	if json.Unmarshal(payload[len(tombstonePrefix):], &t) != nil {
		return "unknown"
	}
	return fmt.Sprintf("%s, bytes kept in %s", t.Cause, t.Quarantine)
}

// RepairReport says what Repair did.
type RepairReport struct {
	Cuts     []segment.Cut `json:"cuts"`
	Lost     []uint64      `json:"lost_sequences"`
	Segments []string      `json:"rewritten_segments"`
}

// Repair fixes what Open refuses: interior damage in the hot log. It takes
// the writer lock (so no writer may run), copies every damaged byte range
// into the quarantine directory, and rewrites the damaged segment
// atomically with a tombstone in place of each sequence whose record was
// lost, so sequences stay gapless. Valid records after the damage are
// kept. A torn tail is cut as Open would cut it. Everything it does is
// logged and returned; a clean journal is left untouched.
func Repair(ctx context.Context, dir string, opts ...Option) (RepairReport, error) {
	var rep RepairReport
	o, err := buildOptions(opts)
	if err != nil {
		return rep, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return rep, err
	}
	lock, err := fsx.AcquireLock(abs, fsx.Holder{PID: os.Getpid(), Command: "journalctl state-journal-validate --repair", StartedAt: time.Now().UTC()})
	if err != nil {
		return rep, err
	}
	defer lock.Release()
	hot := filepath.Join(abs, hotDirName)
	_, fix, err := segment.ListHotSegments(hot)
	if err != nil {
		return rep, err
	}
	if err := segment.ApplyHotFixups(hot, fix); err != nil {
		return rep, err
	}
	segs, _, err := segment.ListHotSegments(hot)
	if err != nil {
		return rep, err
	}
	qdir := filepath.Join(abs, quarantineDirName)
	for i, s := range segs {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		res, err := segment.ScanHotSegment(s, nil)
		if err != nil {
			return rep, err
		}
		if res.Problem == nil {
			continue
		}
		nextFirst := uint64(0)
		if i+1 < len(segs) {
			nextFirst = segs[i+1].FirstSeq
		}
		if err := repairSegment(s, nextFirst, qdir, &rep); err != nil {
			return rep, err
		}
		o.logger.Warn("repaired hot segment", "segment", filepath.Base(s.Path), "lost", len(rep.Lost))
	}
	if len(rep.Segments) > 0 {
		// The rewritten segments no longer match the index checkpoint.
		if err := os.Remove(filepath.Join(abs, stateDirName, checkpointFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, err
		}
	}
	if len(rep.Cuts) > 0 {
		r := &Recovery{At: time.Now().UTC(), Cuts: rep.Cuts}
		if err := fsx.MkdirAllDurable(filepath.Join(abs, stateDirName), 0o755); err != nil {
			return rep, err
		}
		if err := writeRecovery(filepath.Join(abs, stateDirName), r); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// repairSegment rebuilds one damaged segment. nextFirst is the first
// sequence of the following segment, 0 when s is the last.
func repairSegment(s segment.HotSegment, nextFirst uint64, qdir string, rep *RepairReport) error {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return err
	}
	out := make([]byte, 0, len(data))
	seq := s.FirstSeq
	off := 0
	quarantine := func(from, to int, cause segment.Cause) (segment.Cut, error) {
		cut := segment.Cut{Segment: filepath.Base(s.Path), Offset: int64(from), Bytes: int64(to - from), Cause: cause, Sequence: seq, At: time.Now().UTC(),
			Detail: "quarantined by state-journal-validate --repair"}
		if err := fsx.MkdirAllDurable(qdir, 0o755); err != nil {
			return cut, err
		}
		cut.Quarantine = filepath.Join(qdir, fmt.Sprintf("%s-off%d-%s-repair-%s.bin", cut.Segment, from, cause, cut.At.Format("20060102T150405.000000000Z")))
		return cut, fsx.WriteFileAtomic(cut.Quarantine, data[from:to], 0o600)
	}
	tomb := func(upto uint64, cut segment.Cut) {
		p, _ := json.Marshal(tombstone{Quarantine: filepath.Base(cut.Quarantine), Cause: string(cut.Cause), At: cut.At})
		payload := append(append([]byte(nil), tombstonePrefix...), p...)
		for ; seq < upto; seq++ {
			out = segment.AppendWALEntry(out, segment.AppendEnvelope(nil, seq, payload))
			rep.Lost = append(rep.Lost, seq)
		}
	}
	for off < len(data) {
		if n, l, ok := validFrameAt(data, off, seq); ok {
			out = append(out, data[off:off+n+l]...)
			off += n + l
			seq++
			continue
		}
		next, nextSeq := segment.NextFrame(data, off+1, seq)
		if next < 0 {
			if nextFirst == 0 {
				// Nothing valid follows in the last segment: a tail cut.
				cut, err := quarantine(off, len(data), segment.CauseTornTail)
				if err != nil {
					return err
				}
				rep.Cuts = append(rep.Cuts, cut)
				break
			}
			cut, err := quarantine(off, len(data), segment.CauseBadChecksum)
			if err != nil {
				return err
			}
			rep.Cuts = append(rep.Cuts, cut)
			tomb(nextFirst, cut)
			break
		}
		cut, err := quarantine(off, next, segment.CauseBadChecksum)
		if err != nil {
			return err
		}
		rep.Cuts = append(rep.Cuts, cut)
		tomb(nextSeq, cut)
		off = next
	}
	if err := fsx.WriteFileAtomic(s.Path, out, 0o640); err != nil {
		return fmt.Errorf("rewrite %s: %w", s.Path, err)
	}
	rep.Segments = append(rep.Segments, filepath.Base(s.Path))
	return nil
}

// validFrameAt reports whether a whole wal frame whose envelope decodes
// with sequence seq starts at off, and its prefix and body lengths.
func validFrameAt(data []byte, off int, seq uint64) (int, int, bool) {
	l, n := binary.Uvarint(data[off:])
	if n <= 0 || l > uint64(len(data)-off-n) {
		return 0, 0, false
	}
	got, _, err := segment.DecodeEnvelope(data[off+n : off+n+int(l)])
	if err != nil || got != seq {
		return 0, 0, false
	}
	return n, int(l), true
}
