package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// Problem kinds reported by validation.
const (
	ProblemFrame      = "frame"     // damaged wal frame or envelope (length, magic, checksum)
	ProblemTornTail   = "torn_tail" // a torn or zero-filled tail (cut at the next writer open)
	ProblemSequence   = "sequence"  // a gap or overlap in sequences
	ProblemSchema     = "schema"    // a record that breaks runtime-state-change-v1
	ProblemRegistry   = "registry"  // a record the current registry or policy would refuse
	ProblemVersion    = "version"   // an envelope version this build does not read
	ProblemIO         = "io"        // a file that cannot be read
	ProblemLost       = "lost"      // a sequence replaced by a tombstone by an earlier repair
	ProblemArchive    = "archive"   // a damaged archive (header, footer, index or block)
	ProblemIntegrity  = "integrity" // identity, horizon or archive name that fails its check or disagrees with the files
	ProblemForeign    = "foreign"   // a file of another journal or another incarnation of this directory
	ProblemHole       = "hole"      // sequences between the horizon and the head that no file holds
	ProblemState      = "state"     // a state file of a package above the engine (relay cursor, coverage figures) its reader does not believe; added by journalctl's validate
	SeverityError     = "error"
	SeverityWarning   = "warning"
	SeverityInfo      = "info"
	maxReportProblems = 1000
)

// Problem is one finding of Validate.
type Problem struct {
	Severity string `json:"severity"`
	Kind     string `json:"kind"`
	Segment  string `json:"segment,omitempty"`
	Offset   int64  `json:"offset"`
	Sequence uint64 `json:"sequence,omitempty"`
	Message  string `json:"message"`
}

// ValidationReport is the result of Validate.
type ValidationReport struct {
	Dir             string        `json:"dir"`
	JournalID       string        `json:"journal_id,omitempty"`
	Clean           bool          `json:"clean"`
	Segments        int           `json:"segments"`
	Records         uint64        `json:"records"`
	FirstSequence   uint64        `json:"first_sequence"`
	LastSequence    uint64        `json:"last_sequence"`
	Bytes           int64         `json:"bytes"`
	ArchiveSegments int           `json:"archive_segments"`
	ArchiveBytes    int64         `json:"archive_bytes"`
	ArchiveRecords  uint64        `json:"archive_records"`
	Coalesced       uint64        `json:"coalesced"`
	WriterRunning   bool          `json:"writer_running"`
	RegistryDigest  string        `json:"registry_digest"`
	Problems        []Problem     `json:"problems"`
	Truncated       bool          `json:"problems_truncated,omitempty"`
	Repaired        []segment.Cut `json:"repaired,omitempty"`
	// Repair is what state-journal-validate --repair did, when it ran.
	Repair *RepairReport `json:"repair,omitempty"`
}

// Add records p: an error or a warning makes the report not clean.
// Validation adds its own; journalctl adds the checks of the packages
// above the engine (ProblemState).
func (r *ValidationReport) Add(p Problem) {
	if p.Severity == SeverityError || p.Severity == SeverityWarning {
		r.Clean = false
	}
	if len(r.Problems) >= maxReportProblems {
		r.Truncated = true
		return
	}
	r.Problems = append(r.Problems, p)
}

// ValidateOptions configures ValidateDir.
type ValidateOptions struct {
	Registry *registry.Registry // default: the embedded catalog
}

// ValidateDir checks the journal in dir without opening it for writing,
// taking no lock and changing no file, so it runs beside a live writer
// and on a journal that Open refuses. It checks every frame and checksum,
// sequence continuity inside and across segments, every record against
// runtime-state-change-v1, and every record against the registry and the
// migration policy. It reports every problem with its segment, offset and
// sequence; it returns an error only when dir cannot be read at all.
func ValidateDir(ctx context.Context, dir string, opts ValidateOptions) (ValidationReport, error) {
	reg := opts.Registry
	if reg == nil {
		reg = registry.Default()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ValidationReport{}, err
	}
	rep := ValidationReport{Dir: abs, Clean: true, RegistryDigest: reg.Digest(), Problems: []Problem{}}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return rep, fmt.Errorf("validate: %s is not a journal data directory", abs)
	}
	rep.WriterRunning, _ = fsx.HeldBy(abs)
	hotFirst := uint64(0) // 0: no hot segment
	if segs, _, err := segment.ListHotSegments(filepath.Join(abs, hotDirName)); err == nil && len(segs) > 0 {
		hotFirst = segs[0].FirstSeq
	}
	archivedTo, err := validateArchives(ctx, abs, hotFirst, &rep)
	if err != nil {
		return rep, err
	}
	hot := filepath.Join(abs, hotDirName)
	segs, fix, err := segment.ListHotSegments(hot)
	if err != nil {
		rep.Add(Problem{Severity: SeverityError, Kind: ProblemIO, Segment: hot, Message: err.Error()})
		return rep, nil
	}
	if len(fix) > 0 {
		rep.Add(Problem{Severity: SeverityInfo, Kind: ProblemSequence, Segment: hot,
			Message: fmt.Sprintf("an interrupted front/back truncation is pending (%d file steps); the next writer open completes it", len(fix))})
	}
	rep.Segments = len(segs)
	// Hot entries must carry this journal's tag (hottag.go); a damaged
	// identity is reported by validateArchives and the tags are not
	// checked against it.
	ident, identErr := readIdentity(abs)
	var expect uint64
	for i, s := range segs {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		name := filepath.Base(s.Path)
		if i == 0 {
			if archivedTo == 0 {
				rep.FirstSequence = s.FirstSeq
			}
			expect = s.FirstSeq
		} else if s.FirstSeq != expect {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemSequence, Segment: name, Sequence: expect,
				Message: fmt.Sprintf("segment starts at sequence %d but the previous segment ends at %d", s.FirstSeq, expect-1)})
		}
		var foreign *segment.CorruptionError
		foreignN := 0
		last := i == len(segs)-1
		res, err := segment.Scan(s, segment.ScanOptions{Newest: last}, func(he segment.HotEntry) bool {
			if identErr == nil {
				var ce *segment.CorruptionError
				if errors.As(checkHotEntry(ident, name, he.Off, he.Envelope), &ce) {
					if foreign == nil {
						foreign = ce
					}
					foreignN++
				}
			}
			checkRecord(&rep, reg, name, he.Off, he.Seq, he.Payload)
			rep.Records++
			return true
		})
		var p *segment.CorruptionError
		if err != nil && !errors.As(err, &p) {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemIO, Segment: name, Message: err.Error()})
			continue
		}
		if foreign != nil {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemForeign, Segment: name, Offset: foreign.Offset, Sequence: foreign.Sequence,
				Message: fmt.Sprintf("%d of the segment's %d entries, the first at offset %d (sequence %d), were not written by this journal: %v; open refuses the directory, and --repair does not cut them",
					foreignN, res.Entries, foreign.Offset, foreign.Sequence, foreign.Err)})
		}
		rep.Bytes += s.Size
		expect = s.FirstSeq + uint64(res.Entries)
		if res.Entries > 0 {
			rep.LastSequence = res.LastSeq
		}
		if p != nil {
			switch {
			case p.Tail:
				sev := SeverityError
				msg := fmt.Sprintf("%s: %d bytes after the last whole entry were never acknowledged; the next writer open cuts them into quarantine", p.Cause, res.Size-res.GoodEnd)
				if rep.WriterRunning {
					sev = SeverityInfo
					msg = fmt.Sprintf("%d bytes after the last whole entry: a write in progress (a writer holds the lock)", res.Size-res.GoodEnd)
				}
				rep.Add(Problem{Severity: sev, Kind: ProblemTornTail, Segment: name, Offset: p.Offset, Sequence: p.Sequence, Message: msg})
			default:
				kind := ProblemFrame
				if p.Cause == segment.CauseUnsupported {
					kind = ProblemVersion
				} else if p.Cause == segment.CauseBadSequence {
					kind = ProblemSequence
				}
				rep.Add(Problem{Severity: SeverityError, Kind: kind, Segment: name, Offset: p.Offset, Sequence: p.Sequence,
					Message: fmt.Sprintf("%s: %v; entries after it in this segment were not checked; run state-journal-validate --repair to quarantine it", p.Cause, p.Err)})
			}
		}
	}
	if len(segs) == 0 {
		rep.FirstSequence = 1
	} else if id, err := readIdentity(abs); err == nil {
		var ie *IntegrityError
		if err := lostDurable(checkpointOfJournal(abs, id), expect-1); errors.As(err, &ie) {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemHole, Segment: ie.File, Sequence: expect, Message: err.Error()})
		}
	}
	if archivedTo > 0 && len(segs) > 0 {
		switch first := segs[0].FirstSeq; {
		case first <= archivedTo && rep.LastSequence >= first:
			rep.Add(Problem{Severity: SeverityInfo, Kind: ProblemSequence, Segment: filepath.Base(segs[0].Path), Sequence: first,
				Message: fmt.Sprintf("hot sequences %d..%d are also archived: an interrupted compaction the next writer open completes (readers use the archive)", first, archivedTo)})
		}
	}
	if archivedTo > 0 && rep.LastSequence < archivedTo {
		rep.LastSequence = archivedTo
	}
	return rep, nil
}

// validateArchives checks the journal identity, the horizon file and
// every archive (identity, name against footer, header, footer, index,
// every block), and that archives and hot log leave no hole between the
// horizon and the head and do not overlap. hotFirst is the first hot
// segment's first sequence, 0 without one. It returns the last archived
// sequence.
func validateArchives(ctx context.Context, dir string, hotFirst uint64, rep *ValidationReport) (uint64, error) {
	integrity := func(err error) {
		p := Problem{Severity: SeverityError, Kind: ProblemIntegrity, Message: err.Error()}
		var ie *IntegrityError
		if errors.As(err, &ie) {
			p.Segment = ie.File
		}
		if errors.Is(err, ErrForeign) {
			p.Kind = ProblemForeign
		}
		rep.Add(p)
	}
	id, idErr := readIdentity(dir)
	switch {
	case idErr != nil:
		integrity(idErr)
	case id == nil:
		rep.Add(Problem{Severity: SeverityInfo, Kind: ProblemIntegrity, Segment: relPath(stateDirName, identityFileName),
			Message: "no journal identity yet (a directory from before identities, or never opened for writing): the next writer open writes one"})
	default:
		rep.JournalID = id.JournalID
	}
	as, err := loadArchives(filepath.Join(dir, archiveDirName), id)
	if err != nil {
		rep.Add(Problem{Severity: SeverityError, Kind: ProblemIO, Segment: archiveDirName, Message: err.Error()})
		return 0, nil
	}
	if id == nil && idErr == nil {
		for _, a := range as {
			if a.err == nil && a.footer.Version != archive.FormatV1 {
				integrity(&IntegrityError{File: relPath(stateDirName, identityFileName), Err: ErrIntegrity, Problem: fmt.Sprintf(
					"is missing, but %s was written by journal %s", a.name, journalIDString(a.footer.JournalID))})
				break
			}
		}
	}
	if err := strangerIdentity(as, id); err != nil {
		integrity(err)
	}
	hz, herr := readHorizon(dir, id)
	if herr != nil {
		integrity(herr)
	}
	if hotFirst == 0 {
		if err := missingHotLog(dir, id); err != nil && herr == nil && idErr == nil {
			p := Problem{Severity: SeverityError, Kind: ProblemHole, Segment: hotDirName, Message: err.Error()}
			rep.Add(p)
		}
		hotFirst = 1
		if n := len(as); n > 0 {
			hotFirst = as[n-1].last + 1
		}
	}
	if herr == nil {
		if err := checkHorizon(hz, as, hotFirst); err != nil {
			integrity(err)
			hz = horizonRead{} // not believed: check continuity from 1
		}
	}
	floor := hz.value
	var last uint64
	var kept []*archiveSeg
	for i, a := range as {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if a.last < floor {
			rep.Add(Problem{Severity: SeverityInfo, Kind: ProblemArchive, Segment: a.name,
				Message: fmt.Sprintf("below the horizon %d: left by an interrupted retention run; the next writer open removes it", floor)})
			continue
		}
		rep.ArchiveSegments++
		rep.ArchiveBytes += a.bytes
		if rep.FirstSequence == 0 || i == 0 {
			rep.FirstSequence = max(a.first, floor)
		}
		if last != 0 && a.first <= last {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemSequence, Segment: a.name, Sequence: a.first,
				Message: fmt.Sprintf("archive range %d..%d overlaps the previous archive (ends at %d)", a.first, a.last, last)})
		} else {
			kept = append(kept, a)
		}
		last = max(last, a.last)
		if a.err != nil {
			if a.refused {
				integrity(a.err)
			} else {
				rep.Add(Problem{Severity: SeverityError, Kind: ProblemArchive, Segment: a.name, Offset: archiveOffset(a.err), Message: a.err.Error()})
			}
			continue
		}
		ar, err := archive.Open(a.path)
		if err != nil {
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemArchive, Segment: a.name, Offset: archiveOffset(err), Message: err.Error()})
			continue
		}
		for _, p := range ar.Verify() {
			msg := p.Error()
			if p.Block >= 0 {
				msg = fmt.Sprintf("block %d: %v", p.Block, p)
			}
			rep.Add(Problem{Severity: SeverityError, Kind: ProblemArchive, Segment: a.name, Offset: p.Offset, Message: msg})
		}
		rep.ArchiveRecords += a.footer.Records
		rep.Coalesced += a.footer.Coalesced
		ar.Close()
	}
	for _, h := range holes(findHoles(kept, floor, hotFirst, hz.present, "")) {
		seg := h.Before
		if seg == "" {
			seg = h.After
		}
		rep.Add(Problem{Severity: SeverityError, Kind: ProblemHole, Segment: seg, Sequence: h.First, Message: h.Error()})
		if rep.FirstSequence == 0 || h.First < rep.FirstSequence {
			rep.FirstSequence = h.First
		}
	}
	return last, nil
}

func archiveOffset(err error) int64 {
	var ce *archive.CorruptionError
	if errors.As(err, &ce) {
		return ce.Offset
	}
	return 0
}

func checkRecord(rep *ValidationReport, reg *registry.Registry, seg string, off int64, seq uint64, payload []byte) {
	if isTombstone(payload) {
		rep.Add(Problem{Severity: SeverityInfo, Kind: ProblemLost, Segment: seg, Offset: off, Sequence: seq,
			Message: "sequence replaced by a tombstone by an earlier repair: " + tombstoneReason(payload)})
		return
	}
	bad := func(kind, format string, a ...any) {
		rep.Add(Problem{Severity: SeverityError, Kind: kind, Segment: seg, Offset: off, Sequence: seq, Message: fmt.Sprintf(format, a...)})
	}
	c, err := record.DecodeStrict(payload, seq)
	if err != nil {
		bad(ProblemSchema, "record does not decode as %s: %v", SchemaVersion, err)
		return
	}
	switch err := record.ValidateStored(&c); {
	case err != nil:
		bad(ProblemSchema, "record breaks %s: %v", SchemaVersion, err)
	default:
		s, ok := reg.Lookup(c.Surface)
		if !ok {
			bad(ProblemRegistry, "surface %q is not in the registry (digest %.12s)", c.Surface, reg.Digest())
			return
		}
		for _, cs := range c.ChangedSurfaces {
			ls, ok := reg.Lookup(cs)
			if !ok {
				bad(ProblemRegistry, "changed_surfaces names %q, which is not in the registry", cs)
			} else if cs != c.Surface {
				// A listed surface is held to the policy of surface itself.
				if err := ls.Admit(c.Source, c.ChangeType, c.MutatesAuthorityState); err != nil {
					bad(ProblemRegistry, "changed_surfaces names %q, whose policy refuses this record now: %v", cs, err)
				}
			}
		}
		if c.SnapshotHint != registry.SnapshotNone && !slices.Contains(reg.SnapshotIDs(), c.SnapshotHint) {
			bad(ProblemRegistry, "snapshot_hint %q is not a snapshot id of the registry", c.SnapshotHint)
		}
		if err := s.Admit(c.Source, c.ChangeType, c.MutatesAuthorityState); err != nil {
			bad(ProblemRegistry, "the registry's policy refuses this record now: %v", err)
		}
	}
}
