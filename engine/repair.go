package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
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

// tombstonePayload is the payload of a tombstone for a record lost to
// cause at at, whose bytes (if any) the quarantine file names.
func tombstonePayload(quarantine, cause string, at time.Time) []byte {
	p, _ := json.Marshal(tombstone{Quarantine: quarantine, Cause: cause, At: at})
	return append(append([]byte(nil), tombstonePrefix...), p...)
}

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
	// Missing lists the sequence ranges no file held that repair filled
	// with tombstones in a new hot segment (each noted in quarantine/).
	Missing []MissingRange `json:"missing_ranges,omitempty"`
	// Rewritten lists metadata files repair rewrote from the data files
	// (the identity from the archives' journal id, the horizon from the
	// oldest file), each with the reason.
	Rewritten []string `json:"rewritten_files,omitempty"`
	// Unrepaired lists damage repair cannot fix, with what to do.
	Unrepaired []string `json:"unrepaired,omitempty"`
}

// MissingRange is a run of sequences whose file was missing.
type MissingRange struct {
	First   uint64 `json:"first_sequence"`
	Last    uint64 `json:"last_sequence"`
	Segment string `json:"segment"` // the hot segment repair wrote
	Note    string `json:"note"`    // the quarantine note that records the loss
}

// Repair fixes what Open refuses: interior damage in the hot log. It takes
// the writer lock (so no writer may run), copies every damaged byte range
// into the quarantine directory, and rewrites the damaged segment
// atomically with a tombstone in place of each sequence whose record was
// lost, so sequences stay gapless. Valid records after the damage are
// kept. A torn tail is cut as Open would cut it.
//
// It also repairs what the integrity checks at Open refuse, from the data
// files, and only where they say what the answer is: an identity that is
// missing, damaged or another journal's is rewritten with the journal id
// every archive carries; a horizon file that is damaged, foreign or names
// a sequence no retention run writes is rewritten as the oldest sequence a
// file holds; sequences that no file holds below or inside the hot log
// (a deleted hot segment, the last archive, records a checkpoint saw
// durable) are filled with tombstones in a new hot segment, the loss noted
// in quarantine/; sequences lost below the oldest archive move the
// horizon past them. A hole between two archives, or archives of several
// journals, is reported in Unrepaired with what to do. Everything it does
// is logged and returned; a clean journal is left untouched.
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
	// Tombstones carry the journal's tag; a damaged identity is reported
	// (and perhaps rewritten) by repairMetadata below.
	id, _ := readIdentity(abs)
	for i, s := range segs {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		_, err := segment.Scan(s, segment.ScanOptions{Newest: i == len(segs)-1}, nil)
		var damage *segment.CorruptionError
		if !errors.As(err, &damage) {
			if err != nil {
				return rep, err
			}
			continue
		}
		nextFirst := uint64(0)
		if i+1 < len(segs) {
			nextFirst = segs[i+1].FirstSeq
		}
		r, err := segment.RepairSegment(s, segment.RepairOptions{NextFirst: nextFirst, QuarantineDir: qdir,
			Detail: "quarantined by state-journal-validate --repair", Tombstone: func(seq uint64, cut segment.Cut) []byte {
				return tombstoneEnvelope(id, seq, tombstonePayload(filepath.Base(cut.Quarantine), string(cut.Cause), cut.At))
			}})
		rep.Cuts = append(rep.Cuts, r.Cuts...)
		rep.Lost = append(rep.Lost, r.Lost...)
		if err != nil {
			return rep, err
		}
		rep.Segments = append(rep.Segments, filepath.Base(s.Path))
		o.logger.Warn("repaired hot segment", "segment", filepath.Base(s.Path), "lost", len(rep.Lost))
	}
	if err := repairMetadata(abs, o, &rep); err != nil {
		return rep, err
	}
	if err := fillMissing(abs, qdir, o, &rep); err != nil {
		return rep, err
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
		if err := writeRecovery(fsx.OS, filepath.Join(abs, stateDirName), r); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// tombstoneEnvelope is the envelope of a tombstone for seq: version 2
// with the journal's tag, or, in a directory without an identity (from
// before identities, where the next writer open records the version 1
// entries as legacy), version 1.
func tombstoneEnvelope(id *journalIdentity, seq uint64, payload []byte) []byte {
	if id == nil {
		return segment.AppendEnvelopeV1(nil, seq, 0, payload)
	}
	return segment.AppendEnvelopeTime(nil, seq, 0, 0, id.hotTag(), payload)
}

// repairMetadata rewrites an identity or horizon file that open refuses,
// from the data files, when the data files say what it must be: the
// identity from the journal id every version 2 archive carries, the
// horizon as the oldest sequence a file still holds (never past it, so
// no record becomes unreadable).
func repairMetadata(dir string, o options, rep *RepairReport) error {
	id, idErr := readIdentity(dir)
	as, err := loadArchives(filepath.Join(dir, archiveDirName), nil)
	if err != nil {
		return err
	}
	ids := map[[archive.JournalIDSize]byte]bool{}
	for _, a := range as {
		if a.err == nil && a.footer.Version != archive.FormatV1 {
			ids[a.footer.JournalID] = true
		}
	}
	if id != nil && len(ids) == 1 && !ids[id.id] {
		// Every archive names one other journal: the identity file is
		// the stranger (replaced by another journal's), not the archives.
		idErr = fmt.Errorf("it names journal %s, every archive names another", id.JournalID)
	}
	if idErr != nil || id == nil {
		switch {
		case len(ids) == 1:
			var jid [archive.JournalIDSize]byte
			for k := range ids {
				jid = k
			}
			up := &identityUpgrade{At: time.Now().UTC(), LegacyArchives: legacyArchives(as)}
			if id != nil && id.Upgrade != nil {
				up.LegacyHotNext = id.Upgrade.LegacyHotNext // where the version 1 hot entries end
			}
			nid := newIdentity(up)
			nid.id, nid.JournalID = jid, journalIDString(jid)
			if err := fsx.MkdirAllDurable(filepath.Join(dir, stateDirName), 0o755); err != nil {
				return err
			}
			if err := writeIdentity(fsx.OS, dir, nid); err != nil {
				return err
			}
			why := "missing"
			if idErr != nil {
				why = idErr.Error()
			}
			rep.Rewritten = append(rep.Rewritten, fmt.Sprintf("%s: rewritten with journal id %s, which every archive carries (was: %s)", relPath(stateDirName, identityFileName), nid.JournalID, why))
			o.logger.Warn("repair rewrote the journal identity from the archives", "journal_id", nid.JournalID)
			id = nid
		case len(ids) > 1:
			rep.Unrepaired = append(rep.Unrepaired, fmt.Sprintf("%s: the archives carry %d different journal ids; move the archives of other journals out of archive/ and run repair again", relPath(stateDirName, identityFileName), len(ids)))
			return nil
		case idErr != nil:
			// No archive says what the id was: a fresh identity loses
			// nothing (the checkpoint is rebuilt, nothing else names it).
			if err := os.Remove(filepath.Join(dir, stateDirName, identityFileName)); err != nil {
				return err
			}
			rep.Rewritten = append(rep.Rewritten, fmt.Sprintf("%s: removed (%v); no archive names the journal id, so the next writer open writes a new one", relPath(stateDirName, identityFileName), idErr))
			id = nil
		}
	}
	if as, err = loadArchives(filepath.Join(dir, archiveDirName), id); err != nil {
		return err
	}
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil {
		return err
	}
	var files []*archiveSeg
	for _, a := range as {
		if !a.refused {
			files = append(files, a)
		} else {
			rep.Unrepaired = append(rep.Unrepaired, a.err.Error())
		}
	}
	oldest := uint64(0)
	if len(files) > 0 {
		oldest = files[0].first
	} else if len(segs) > 0 {
		oldest = segs[0].FirstSeq
	}
	hotFirst := uint64(1)
	if len(segs) > 0 {
		hotFirst = segs[0].FirstSeq
	} else if n := len(files); n > 0 {
		hotFirst = files[n-1].last + 1
	}
	hz, herr := readHorizon(dir, id)
	if herr == nil {
		herr = checkHorizon(hz, files, hotFirst)
	}
	if herr == nil || oldest == 0 || id == nil {
		return nil
	}
	if err := writeHorizonFile(fsx.OS, dir, id, oldest); err != nil {
		return err
	}
	rep.Rewritten = append(rep.Rewritten, fmt.Sprintf("%s: rewritten as horizon %d, the oldest sequence a file holds (was: %v)", relPath(stateDirName, horizonFileName), oldest, herr))
	o.logger.Warn("repair rewrote the horizon file", "horizon", oldest, "was", herr.Error())
	return nil
}

// fillMissing writes, for every run of sequences that no file holds
// between the archives (or the horizon) and the hot log's head, a new hot
// segment of tombstones, and a quarantine note that records the loss.
// Sequences stay gapless, so the hot log opens again, and every lost
// sequence stays visible as lost (validate reports each tombstone). A run
// between two archives is not filled (the hot log cannot hold sequences
// below an archive): it is reported in Unrepaired.
func fillMissing(dir, qdir string, o options, rep *RepairReport) error {
	id, err := readIdentity(dir)
	if err != nil {
		return nil // reported by open; repairMetadata could not fix it
	}
	hot := filepath.Join(dir, hotDirName)
	segs, _, err := segment.ListHotSegments(hot)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		var ie *IntegrityError
		if err := missingHotLog(dir, id); errors.As(err, &ie) && errors.Is(err, ErrHole) {
			// Start an empty hot log after what the files account for.
			next := uint64(1)
			if as, _ := loadArchives(filepath.Join(dir, archiveDirName), id); len(as) > 0 {
				next = as[len(as)-1].last + 1
			}
			if hz, err := readHorizon(dir, id); err == nil {
				next = max(next, hz.value)
			}
			if err := fsx.MkdirAllDurable(hot, 0o755); err != nil {
				return err
			}
			seg, err := segment.WriteSegment(hot, next, 0, nil)
			if err != nil {
				return err
			}
			name := filepath.Base(seg.Path)
			rep.Segments = append(rep.Segments, name)
			rep.Rewritten = append(rep.Rewritten, fmt.Sprintf("%s/%s: an empty hot log starting at %d, after the last archived sequence (the removed hot log's records after %d are lost and cannot be counted)", hotDirName, name, next, next-1))
			o.logger.Warn("repair started an empty hot log after the archives", "segment", name)
		}
		return nil
	}
	as, err := loadArchives(filepath.Join(dir, archiveDirName), id)
	if err != nil {
		return err
	}
	hz, err := readHorizon(dir, id)
	if err != nil {
		return nil
	}
	expect := max(hz.value, 1)
	prev := ""
	for _, a := range as {
		if a.last < expect {
			continue
		}
		switch {
		case a.first > expect && prev == "" && id != nil:
			// Nothing older is readable: the oldest archive was lost, or
			// the horizon file is a stale copy. Moving the horizon to the
			// oldest file is what retention would have done; cursors below
			// it get ErrCompacted (resync), never a silent gap.
			if err := writeHorizonFile(fsx.OS, dir, id, a.first); err != nil {
				return err
			}
			for seq := expect; seq < a.first; seq++ {
				rep.Lost = append(rep.Lost, seq)
			}
			rep.Missing = append(rep.Missing, MissingRange{First: expect, Last: a.first - 1,
				Note: fmt.Sprintf("below the oldest archive %s: horizon moved to %d (restore the archive from a backup before this repair if you have it)", a.name, a.first)})
			rep.Rewritten = append(rep.Rewritten, fmt.Sprintf("%s: horizon %d, the oldest archived sequence; sequences %d..%d are lost (cursors below get ErrCompacted)", relPath(stateDirName, horizonFileName), a.first, expect, a.first-1))
			o.logger.Warn("repair moved the horizon past sequences no file holds", "first", expect, "last", a.first-1, "horizon", a.first)
		case a.first > expect:
			rep.Unrepaired = append(rep.Unrepaired, fmt.Sprintf("sequences %d..%d are missing between %s and %s: restore the archive file that held them from a backup; repair cannot put sequences below an archive into the hot log", expect, a.first-1, prev, a.name))
		}
		expect, prev = a.last+1, a.name
	}
	type gap struct {
		first, last   uint64
		after, before string
	}
	var gaps []gap
	if segs[0].FirstSeq > expect {
		gaps = append(gaps, gap{expect, segs[0].FirstSeq - 1, prev, filepath.Base(segs[0].Path)})
	}
	for i := 0; i+1 < len(segs); i++ {
		res, err := segment.Scan(segs[i], segment.ScanOptions{}, nil)
		if damage := (*segment.CorruptionError)(nil); errors.As(err, &damage) {
			continue // damage inside the segment: repaired above, or reported by open
		}
		if err != nil {
			return err
		}
		if next := segs[i+1].FirstSeq; next > res.NextSeq {
			gaps = append(gaps, gap{res.NextSeq, next - 1, filepath.Base(segs[i].Path), filepath.Base(segs[i+1].Path)})
		}
	}
	if m := checkpointOfJournal(dir, id); m != nil {
		// Records the checkpoint saw durable after the hot log's end.
		tail := segs[len(segs)-1]
		if res, err := segment.Scan(tail, segment.ScanOptions{Newest: true}, nil); err == nil && m.Durable >= res.NextSeq {
			gaps = append(gaps, gap{res.NextSeq, m.Durable, filepath.Base(tail.Path), ""})
		}
	}
	for _, g := range gaps {
		at := time.Now().UTC()
		note := fmt.Sprintf("missing-%d-%d-repair-%s.json", g.first, g.last, at.Format("20060102T150405.000000000Z"))
		nb, _ := json.MarshalIndent(map[string]any{
			"first_sequence": g.first, "last_sequence": g.last, "after": g.after, "before": g.before, "at": at,
			"cause": "no archive or hot segment held these sequences (a file was deleted or lost); state-journal-validate --repair wrote tombstones in their place",
		}, "", "  ")
		if err := fsx.MkdirAllDurable(qdir, 0o755); err != nil {
			return err
		}
		if err := fsx.WriteFileAtomic(filepath.Join(qdir, note), append(nb, '\n'), 0o600); err != nil {
			return err
		}
		payload := tombstonePayload(note, "missing_file", at)
		seg, err := segment.WriteSegment(hot, g.first, int(g.last-g.first+1), func(seq uint64) []byte { return tombstoneEnvelope(id, seq, payload) })
		if err != nil {
			return fmt.Errorf("write tombstone segment: %w", err)
		}
		for seq := g.first; seq <= g.last; seq++ {
			rep.Lost = append(rep.Lost, seq)
		}
		name := filepath.Base(seg.Path)
		rep.Segments = append(rep.Segments, name)
		rep.Missing = append(rep.Missing, MissingRange{First: g.first, Last: g.last, Segment: name, Note: note})
		o.logger.Warn("repair filled missing sequences with tombstones", "first", g.first, "last", g.last, "segment", name, "note", note)
	}
	return nil
}
