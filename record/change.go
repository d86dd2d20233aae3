package record

import (
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/types"
)

// SchemaVersion is the record contract every change follows.
const SchemaVersion = "runtime-state-change-v1"

// TimeLayout is how occurred_at, committed_at and every other time in
// the record's JSON is written: RFC 3339, UTC, nine fractional digits
// (types.TimeLayout).
const TimeLayout = types.TimeLayout

// Change is one runtime-state-change-v1 record: the fact that a surface
// changed. It says *that* something changed, never the new state; the
// source module stays the truth.
//
// On input, the journal fills EventID (a UUIDv7 that names the record's
// sequence), OccurredAt (the commit time), ChangedSurfaces ([Surface]),
// Severity ("info"), SnapshotHint (from the surface's registry entry) and
// SchemaVersion when they are empty, and always assigns Sequence and
// CommittedAt.
//
// OccurredAt is the writer's claim of when the change happened; the
// journal bounds it (MaxOccurredAtAhead) but never decides anything on
// it. CommittedAt is the journal's own clock when it accepted the record:
// retention by age, the dedupe window and Since/Until run on it. It is
// kept in the hot-log envelope and as the archive record's time, not in
// the stored record, and is filled on every change a query returns.
//
// The struct tags are the decoder of the record's JSON (Decode, and a
// reader of the HTTP API's answers); AppendJSON is its one encoder.
type Change struct {
	SchemaVersion         string         `json:"schema_version"`
	EventID               string         `json:"event_id"`
	Sequence              uint64         `json:"sequence,omitempty"`
	OccurredAt            time.Time      `json:"occurred_at"`
	CommittedAt           time.Time      `json:"committed_at"`
	Source                string         `json:"source"`
	Surface               string         `json:"surface"`
	ChangeType            string         `json:"change_type"`
	AggregateType         string         `json:"aggregate_type"`
	AggregateID           string         `json:"aggregate_id"`
	ChangedSurfaces       []string       `json:"changed_surfaces"`
	Severity              string         `json:"severity"`
	SnapshotHint          string         `json:"snapshot_hint"`
	MutatesAuthorityState bool           `json:"mutates_authority_state"`
	ArtifactRef           string         `json:"artifact_ref,omitempty"`
	CorrelationID         string         `json:"correlation_id,omitempty"`
	CausationID           string         `json:"causation_id,omitempty"`
	Metadata              map[string]any `json:"metadata,omitempty"`
	// Lost is set (by the journal only) on the Change a query returns for
	// a sequence whose record was lost to damage and replaced by a
	// tombstone; see LostRecord.
	Lost *LostRecord `json:"lost,omitempty"`
}

// LostRecord marks a Change that stands for a record lost to damage:
// repair quarantined the bytes and kept the sequence as a tombstone. A
// tombstone answers every query that reaches its sequence (whatever the
// filters: the lost record might have matched any of them), in the hot
// log and in archives alike, so a cursor reader sees the gap as a known
// loss and not as a silent jump. Its other fields say nothing about the
// lost record: surface, change_type and the rest are empty. A writer
// cannot set it (Validate refuses it).
type LostRecord struct {
	// Cause is why the record was lost (bad_checksum, bad_length, ...).
	Cause string `json:"cause"`
	// Quarantine is the file (in the quarantine directory) that holds the
	// damaged bytes.
	Quarantine string `json:"quarantine"`
	// RepairedAt is when repair wrote the tombstone.
	RepairedAt time.Time `json:"repaired_at"`
}

// Receipt is the journal's answer to a recorded change, the same from the
// Go API, the HTTP API and the CLI.
type Receipt struct {
	Sequence   uint64    `json:"sequence"`
	EventID    string    `json:"event_id"`
	OccurredAt time.Time `json:"occurred_at"`
	// CommittedAt is the journal's clock when it accepted the record: the
	// time retention, the dedupe window and "since" filters count from.
	CommittedAt time.Time `json:"committed_at"`
	Surface     string    `json:"surface"`
	// Durable is true when the record was on stable storage (fsynced)
	// before the call returned. It is false only under sync=interval for
	// ordinary records and under sync=none.
	Durable bool `json:"durable"`
	// Duplicate is true when the event_id already names a stored record
	// with the same content (inside the dedupe window, or a
	// journal-generated id): this receipt is the first one and nothing
	// was written. The same id with other content is a
	// types.ErrEventIDConflict error instead.
	Duplicate bool `json:"duplicate"`
	// Redactions counts values replaced by a [REDACTED:kind] marker.
	Redactions int `json:"redactions"`
	// MetadataTrimmed is true when metadata went over a bound and was cut.
	MetadataTrimmed bool `json:"metadata_trimmed"`
}

// MarshalJSON writes occurred_at and committed_at in TimeLayout
// (AppendJSON's bytes).
func (r Receipt) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 256)), nil
}

// AppendJSON appends the receipt's JSON encoding to dst without
// reflection: the HTTP server writes one per recorded change. The fields
// come in declaration order except the two times, which come last (the
// order encoding/json gave the receipt in earlier releases).
func (r *Receipt) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"sequence":`...)
	dst = strconv.AppendUint(dst, r.Sequence, 10)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, r.EventID)
	dst = append(dst, `,"surface":`...)
	dst = appendString(dst, r.Surface)
	dst = append(dst, `,"durable":`...)
	dst = strconv.AppendBool(dst, r.Durable)
	dst = append(dst, `,"duplicate":`...)
	dst = strconv.AppendBool(dst, r.Duplicate)
	dst = append(dst, `,"redactions":`...)
	dst = strconv.AppendInt(dst, int64(r.Redactions), 10)
	dst = append(dst, `,"metadata_trimmed":`...)
	dst = strconv.AppendBool(dst, r.MetadataTrimmed)
	dst = append(dst, `,"occurred_at":`...)
	dst = appendTime(dst, r.OccurredAt)
	dst = append(dst, `,"committed_at":`...)
	dst = appendTime(dst, r.CommittedAt)
	return append(dst, '}')
}
