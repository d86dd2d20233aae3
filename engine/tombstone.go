package engine

import (
	"encoding/json"

	"github.com/agentruntime/statejournal/segment/archive"
)

// tombstoneSource is the source of the Change a tombstone is read as.
const tombstoneSource = "state_journal.repair"

// tombstoneInfo decodes what repair wrote in a tombstone payload.
func tombstoneInfo(payload []byte) tombstone {
	var t tombstone
	if json.Unmarshal(payload[len(tombstonePrefix):], &t) != nil || t.Cause == "" {
		t.Cause = "unknown"
	}
	return t
}

// tombstoneChange is the Change a tombstone is returned as.
func tombstoneChange(payload []byte, seq uint64) Change {
	t := tombstoneInfo(payload)
	return Change{
		SchemaVersion: SchemaVersion, Sequence: seq, OccurredAt: t.At.UTC(), Source: tombstoneSource,
		ChangedSurfaces: []string{}, Severity: "error", SnapshotHint: "none",
		Lost: &LostRecord{Cause: t.Cause, Quarantine: t.Quarantine, RepairedAt: t.At.UTC()},
	}
}

// decodeRecord decodes a stored payload, hot or archived: a record, or
// the tombstone repair left in place of a lost one.
func decodeRecord(payload []byte, seq uint64) (Change, error) {
	if isTombstone(payload) {
		return tombstoneChange(payload, seq), nil
	}
	return decodeStored(payload, seq)
}

// tombstoneArchiveRecord is how compaction keeps a tombstone in an
// archive: the same payload under the reserved label lostSurface (no
// registry id can take it), so the archive accounts for the sequence and
// readers return it as a tombstone.
func tombstoneArchiveRecord(seq uint64, payload []byte, prevTime int64) archive.Record {
	t := prevTime
	if at := tombstoneInfo(payload).At; t == 0 && !at.IsZero() {
		t = at.UnixNano()
	}
	return archive.Record{Seq: seq, Time: t, Label: lostSurface, Payload: payload}
}
