package baseline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/agentruntime/statejournal/bench/workload"
)

// Line is the JSON record every baseline writes: the fields of a
// runtime-state-change-v1 record, so bytes per record compare with the
// engine's.
type Line struct {
	SchemaVersion         string         `json:"schema_version"`
	EventID               string         `json:"event_id"`
	Sequence              uint64         `json:"sequence"`
	OccurredAt            string         `json:"occurred_at"`
	Source                string         `json:"source"`
	Surface               string         `json:"surface"`
	ChangeType            string         `json:"change_type"`
	AggregateType         string         `json:"aggregate_type"`
	AggregateID           string         `json:"aggregate_id"`
	ChangedSurfaces       []string       `json:"changed_surfaces"`
	Severity              string         `json:"severity"`
	SnapshotHint          string         `json:"snapshot_hint"`
	MutatesAuthorityState bool           `json:"mutates_authority_state"`
	Metadata              map[string]any `json:"metadata,omitempty"`
}

// encoder turns workload records into newline-terminated JSON lines.
type encoder struct {
	seq atomic.Uint64
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		bufPool.Put(b)
	}
}

// appendLine encodes rec as one JSON line (with the trailing newline) onto
// buf and returns the line's start offset in buf.
func (e *encoder) appendLine(buf *bytes.Buffer, rec *workload.Record) (int, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return 0, fmt.Errorf("event id: %w", err)
	}
	start := buf.Len()
	l := Line{
		SchemaVersion:   "runtime-state-change-v1",
		EventID:         id.String(),
		Sequence:        e.seq.Add(1),
		OccurredAt:      time.Now().UTC().Format(time.RFC3339Nano),
		Source:          rec.Source,
		Surface:         rec.Surface,
		ChangeType:      rec.ChangeType,
		AggregateType:   rec.AggregateType,
		AggregateID:     rec.AggregateID,
		ChangedSurfaces: []string{rec.Surface},
		Severity:        "info",
		SnapshotHint:    "runtime_health",
		Metadata:        rec.Metadata,
	}
	// Encoder.Encode appends the newline that frames a plain-file line.
	if err := json.NewEncoder(buf).Encode(&l); err != nil {
		return 0, fmt.Errorf("encode record: %w", err)
	}
	return start, nil
}

// LineSize returns the encoded size in bytes of rec as a baseline line,
// newline included; benchmarks use it for b.SetBytes.
func LineSize(rec workload.Record) int {
	var e encoder
	buf := getBuf()
	defer putBuf(buf)
	if _, err := e.appendLine(buf, &rec); err != nil {
		return 0
	}
	return buf.Len()
}
