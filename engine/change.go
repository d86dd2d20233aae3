package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/types"
)

// SchemaVersion is the record contract every change follows.
const SchemaVersion = "runtime-state-change-v1"

// TimeLayout is how occurred_at, and every other time in JSON, is
// written: RFC 3339, UTC, nine fractional digits (types.TimeLayout).
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

// MarshalJSON writes the change with occurred_at in TimeLayout.
func (c Change) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(nil, true)
}

// AppendJSON appends the change's JSON encoding to dst. withSequence
// false leaves the sequence out: that is the stored form, where the
// sequence lives in the entry envelope.
func (c *Change) AppendJSON(dst []byte, withSequence bool) ([]byte, error) {
	dst = append(dst, `{"schema_version":`...)
	dst = appendJSONString(dst, c.SchemaVersion)
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, c.EventID)
	if withSequence {
		dst = append(dst, `,"sequence":`...)
		dst = strconv.AppendUint(dst, c.Sequence, 10)
	}
	dst = append(dst, `,"occurred_at":"`...)
	dst = types.AppendTime(dst, c.OccurredAt)
	if withSequence && !c.CommittedAt.IsZero() {
		// Not in the stored form: the envelope and the archive keep it.
		dst = append(dst, `","committed_at":"`...)
		dst = types.AppendTime(dst, c.CommittedAt)
	}
	dst = append(dst, `","source":`...)
	dst = appendJSONString(dst, c.Source)
	dst = append(dst, `,"surface":`...)
	dst = appendJSONString(dst, c.Surface)
	dst = append(dst, `,"change_type":`...)
	dst = appendJSONString(dst, c.ChangeType)
	dst = append(dst, `,"aggregate_type":`...)
	dst = appendJSONString(dst, c.AggregateType)
	dst = append(dst, `,"aggregate_id":`...)
	dst = appendJSONString(dst, c.AggregateID)
	dst = append(dst, `,"changed_surfaces":[`...)
	for i, s := range c.ChangedSurfaces {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	dst = append(dst, `],"severity":`...)
	dst = appendJSONString(dst, c.Severity)
	dst = append(dst, `,"snapshot_hint":`...)
	dst = appendJSONString(dst, c.SnapshotHint)
	dst = append(dst, `,"mutates_authority_state":`...)
	dst = strconv.AppendBool(dst, c.MutatesAuthorityState)
	if c.ArtifactRef != "" {
		dst = append(dst, `,"artifact_ref":`...)
		dst = appendJSONString(dst, c.ArtifactRef)
	}
	if c.CorrelationID != "" {
		dst = append(dst, `,"correlation_id":`...)
		dst = appendJSONString(dst, c.CorrelationID)
	}
	if c.CausationID != "" {
		dst = append(dst, `,"causation_id":`...)
		dst = appendJSONString(dst, c.CausationID)
	}
	if len(c.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		var err error
		if dst, err = appendJSONValue(dst, c.Metadata, 0); err != nil {
			return dst, fmt.Errorf("encode metadata: %w", err)
		}
	}
	if c.Lost != nil {
		dst = append(dst, `,"lost":{"cause":`...)
		dst = appendJSONString(dst, c.Lost.Cause)
		dst = append(dst, `,"quarantine":`...)
		dst = appendJSONString(dst, c.Lost.Quarantine)
		dst = append(dst, `,"repaired_at":"`...)
		dst = types.AppendTime(dst, c.Lost.RepairedAt)
		dst = append(dst, `"}`...)
	}
	return append(dst, '}'), nil
}

// appendJSONValue appends v as encoding/json would (map keys sorted),
// without reflection for the JSON-like types metadata holds; anything
// else goes through encoding/json.
func appendJSONValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > 64 {
		return dst, fmt.Errorf("metadata nested deeper than 64 levels")
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendJSONString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case json.Number:
		if x == "" {
			return append(dst, '0'), nil
		}
		return append(dst, x...), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case map[string]any:
		var small [16]string
		keys := small[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSONValue(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSONValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (including <, >, & and U+2028/2029) and replacing invalid UTF-8
// (which Record refuses before anything is encoded, so a stored record
// never holds a replacement it did not have).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// wireChange is the JSON input form of a change. occurred_at is a string
// so a bad value gets a precise error, and sequence is caught so a writer
// learns it is assigned by the journal.
type wireChange struct {
	SchemaVersion         string          `json:"schema_version"`
	EventID               string          `json:"event_id"`
	Sequence              json.RawMessage `json:"sequence"`
	OccurredAt            string          `json:"occurred_at"`
	CommittedAt           json.RawMessage `json:"committed_at"`
	Source                string          `json:"source"`
	Surface               string          `json:"surface"`
	ChangeType            string          `json:"change_type"`
	AggregateType         string          `json:"aggregate_type"`
	AggregateID           string          `json:"aggregate_id"`
	ChangedSurfaces       []string        `json:"changed_surfaces"`
	Severity              string          `json:"severity"`
	SnapshotHint          string          `json:"snapshot_hint"`
	MutatesAuthorityState *bool           `json:"mutates_authority_state"`
	ArtifactRef           string          `json:"artifact_ref"`
	CorrelationID         string          `json:"correlation_id"`
	CausationID           string          `json:"causation_id"`
	Metadata              json.RawMessage `json:"metadata"`
}

// ParseChange decodes one change written by a client (CLI, HTTP). Unknown
// fields, a supplied sequence, a malformed occurred_at, metadata that is
// not an object and a string that is not valid UTF-8 (named by its path,
// e.g. aggregate_id or metadata.a.b) are *types.FieldError values naming
// the field. Metadata nested deeper than the bounds allow is trimmed, not
// refused. The
// change is not yet validated against the contract; Record does that.
func ParseChange(data []byte) (Change, error) {
	// The usual change first: what the fast path accepts has only valid
	// UTF-8 and no container deeper than the bounds, so the scan below
	// would find nothing in it.
	if c, ok := parseChangeFast(data); ok {
		return c, nil
	}
	// Before encoding/json sees it: it would rewrite invalid UTF-8.
	cuts, err := scanChangeJSON(data)
	if err != nil {
		return Change{}, err
	}
	return parseChangeJSON(applyCuts(data, cuts))
}

// parseChangeJSON is ParseChange's encoding/json path, for data whose
// UTF-8 was checked and whose too-deep values were cut.
func parseChangeJSON(data []byte) (Change, error) {
	var w wireChange
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Change{}, jsonFieldError(err)
	}
	if dec.More() {
		return Change{}, &types.FieldError{Kind: types.ErrInvalid, Field: "body", Problem: "holds more than one JSON value; send an array or NDJSON for several changes", Index: -1}
	}
	c := Change{
		SchemaVersion: w.SchemaVersion, EventID: w.EventID, Source: w.Source, Surface: w.Surface,
		ChangeType: w.ChangeType, AggregateType: w.AggregateType, AggregateID: w.AggregateID,
		ChangedSurfaces: w.ChangedSurfaces, Severity: w.Severity, SnapshotHint: w.SnapshotHint,
		ArtifactRef: w.ArtifactRef, CorrelationID: w.CorrelationID, CausationID: w.CausationID,
	}
	if len(w.Sequence) > 0 && string(w.Sequence) != "null" {
		return Change{}, &types.FieldError{Kind: types.ErrInvalid, Field: "sequence", Value: string(w.Sequence), Problem: "is assigned by the journal at commit and must not be supplied", Index: -1}
	}
	if len(w.CommittedAt) > 0 && string(w.CommittedAt) != "null" {
		return Change{}, &types.FieldError{Kind: types.ErrInvalid, Field: "committed_at", Value: clip(string(w.CommittedAt)), Problem: "is the journal's own clock, assigned at commit, and must not be supplied; the writer's time goes in occurred_at", Index: -1}
	}
	if w.MutatesAuthorityState != nil {
		c.MutatesAuthorityState = *w.MutatesAuthorityState
	}
	if w.OccurredAt != "" {
		t, err := parse.Timestamp(w.OccurredAt)
		if err != nil {
			return Change{}, &types.FieldError{Kind: types.ErrInvalid, Field: "occurred_at", Value: w.OccurredAt, Problem: "is not an RFC 3339 timestamp (e.g. 2026-11-26T17:51:57.123Z)", Index: -1}
		}
		c.OccurredAt = t
	}
	if len(w.Metadata) > 0 && string(w.Metadata) != "null" {
		d := json.NewDecoder(bytes.NewReader(w.Metadata))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return Change{}, &types.FieldError{Kind: types.ErrInvalid, Field: "metadata", Problem: "must be a JSON object of string keys", Index: -1}
		}
		c.Metadata = m
	}
	return c, nil
}

func jsonFieldError(err error) error {
	fe := &types.FieldError{Kind: types.ErrInvalid, Field: "body", Index: -1}
	switch e := err.(type) {
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			fe.Field = e.Field
		}
		fe.Problem = fmt.Sprintf("must be a JSON %s, got %s", jsonTypeName(e.Type.Kind().String()), e.Value)
	case *json.SyntaxError:
		fe.Problem = fmt.Sprintf("is not valid JSON at byte %d: %v", e.Offset, e)
	default:
		msg := err.Error()
		const unknown = "json: unknown field "
		if len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
			fe.Field = msg[len(unknown):]
			fe.Problem = "is not a field of " + SchemaVersion
			fe.Allowed = []string{"schema_version", "event_id", "occurred_at", "source", "surface", "change_type", "aggregate_type", "aggregate_id", "changed_surfaces", "severity", "snapshot_hint", "mutates_authority_state", "artifact_ref", "correlation_id", "causation_id", "metadata"}
			if len(fe.Field) > 1 && fe.Field[0] == '"' {
				fe.Field = fe.Field[1 : len(fe.Field)-1]
			}
			if fe.Field == "" {
				fe.Field = "body"
				fe.Problem = "has a field with an empty name, which is not a field of " + SchemaVersion
			}
		} else {
			fe.Problem = "is not a valid change: " + msg
		}
	}
	return fe
}

func jsonTypeName(kind string) string {
	switch kind {
	case "slice":
		return "array"
	case "map", "struct":
		return "object"
	case "bool":
		return "boolean"
	case "int", "int64", "uint64", "float64":
		return "number"
	}
	return kind
}

// decodeStored decodes a stored payload (sequence comes from the
// envelope).
func decodeStored(payload []byte, seq uint64) (Change, error) {
	var c Change
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return Change{}, fmt.Errorf("decode record %d: %w", seq, err)
	}
	c.Sequence = seq
	return c, nil
}

// Receipt is the journal's answer to a recorded change.
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
	// was written. The same id with other content is an
	// ErrEventIDConflict error instead.
	Duplicate bool `json:"duplicate"`
	// Redactions counts values replaced by a [REDACTED:kind] marker.
	Redactions int `json:"redactions"`
	// MetadataTrimmed is true when metadata went over a bound and was cut.
	MetadataTrimmed bool `json:"metadata_trimmed"`
}
