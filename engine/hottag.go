package engine

import (
	"fmt"

	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// Hot entries name their journal by the journal tag of their envelope
// (segment.JournalTag of the identity's journal id). Every reader that
// believes hot entries (the open scan, Refresh, queries, compaction and
// ValidateDir) checks each entry it uses with checkHotEntry:
//
//   - a version 2 entry must carry this journal's tag; a directory with no
//     identity holds none (the identity is written before the first
//     version 2 entry), so there any version 2 entry is refused too;
//   - a version 1 entry (earlier releases; it names no journal) is
//     believed in a directory with no identity yet (a step-4 directory
//     before its first writer open), and after the upgrade only below
//     identityUpgrade.LegacyHotNext, the sequence the hot log had reached
//     when the identity was written. A new journal never wrote version 1
//     entries, so it accepts none.
//
// A refused entry is a *segment.CorruptionError with cause
// segment.CauseForeign that matches ErrForeign: open fails naming the
// segment file, offset and sequence, and nothing cuts or repairs it (the
// journal's own records are not in that file).

// hotTag is the journal tag of id's version 2 envelopes.
func (id *journalIdentity) hotTag() uint32 { return segment.JournalTag(id.id) }

// checkHotEntry checks that the envelope at offset off of segment path
// (as the error should name it) was written by the journal of id.
func checkHotEntry(id *journalIdentity, path string, off int64, env segment.Envelope) error {
	var err error
	switch {
	case env.Version == segment.EnvelopeVersion1:
		switch {
		case id == nil:
			return nil
		case id.Upgrade != nil && env.Seq < id.Upgrade.LegacyHotNext:
			return nil
		case id.Upgrade != nil:
			err = fmt.Errorf("%w: a version 1 entry (it names no journal) at sequence %d, but journal %s (tag %08x) was upgraded from version 1 at sequence %d and has written only tagged entries since: "+
				"the segment file was copied from another directory; restore this journal's own file from a backup (the entry is neither cut nor repaired)",
				types.ErrForeign, env.Seq, id.JournalID, id.hotTag(), id.Upgrade.LegacyHotNext)
		default:
			err = fmt.Errorf("%w: a version 1 entry (it names no journal), but journal %s (tag %08x) was created new and never wrote version 1 entries: "+
				"the segment file was copied from another directory; restore this journal's own file from a backup (the entry is neither cut nor repaired)",
				types.ErrForeign, id.JournalID, id.hotTag())
		}
	case id == nil:
		err = fmt.Errorf("%w: the entry was written by the journal with tag %08x, but this directory has no identity (state/identity.json is missing): "+
			"restore the identity file from a backup (its journal_id starts with %08x), or move this segment file away if it came from another journal",
			types.ErrForeign, env.Tag, env.Tag)
	case env.Tag != id.hotTag():
		err = fmt.Errorf("%w: the entry was written by another journal (tag %08x; this journal, %s, has tag %08x): "+
			"the segment file was replaced by or copied from another journal's; restore this journal's own file from a backup (the entry is neither cut nor repaired: this journal's records are not in it)",
			types.ErrForeign, env.Tag, id.JournalID, id.hotTag())
	default:
		return nil
	}
	return &segment.CorruptionError{Segment: path, Offset: off, Sequence: env.Seq, Cause: segment.CauseForeign, Err: err}
}
