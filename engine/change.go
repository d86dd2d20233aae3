package engine

import (
	"github.com/agentruntime/statejournal/record"
)

// The record contract lives in package record; these names keep the
// engine's API as it was.

// SchemaVersion is the record contract every change follows.
const SchemaVersion = record.SchemaVersion

// TimeLayout is how occurred_at, and every other time in JSON, is
// written: RFC 3339, UTC, nine fractional digits (types.TimeLayout).
const TimeLayout = record.TimeLayout

// Change is one runtime-state-change-v1 record (record.Change).
type Change = record.Change

// LostRecord marks a Change that stands for a record lost to damage
// (record.LostRecord).
type LostRecord = record.LostRecord

// Receipt is the journal's answer to a recorded change (record.Receipt).
type Receipt = record.Receipt

// Bounds of the free-text fields of a change (record's).
const (
	MaxSourceBytes    = record.MaxSourceBytes
	MaxTypeBytes      = record.MaxTypeBytes
	MaxIDBytes        = record.MaxIDBytes
	MaxArtifactBytes  = record.MaxArtifactBytes
	MaxChangedSurface = record.MaxChangedSurfaces
)

// MaxOccurredAtAhead bounds how far past the journal's clock a writer's
// occurred_at may lie (record.MaxOccurredAtAhead).
const MaxOccurredAtAhead = record.MaxOccurredAtAhead

// ParseChange decodes one change written by a client (CLI, HTTP); see
// record.Parse. The change is not yet validated; Record does that.
func ParseChange(data []byte) (Change, error) { return record.Parse(data) }

// decodeStored decodes a stored payload (sequence comes from the
// envelope).
func decodeStored(payload []byte, seq uint64) (Change, error) {
	c, err := record.Decode(payload, seq)
	if err != nil {
		return Change{}, err
	}
	c.Sequence = seq
	return c, nil
}

// clip shortens a value echoed in an error message (record.Clip).
func clip(s string) string { return record.Clip(s) }
