package record

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

// Form says which of the record's JSON forms AppendJSON writes. The three
// share the field order and the escaping; they differ in which fields
// they carry.
type Form uint8

const (
	// FormStored is the payload the hot log and the archives keep: no
	// sequence (the entry envelope holds it), no committed_at (the
	// envelope and the archive record's time hold it). Its bytes are
	// the on-disk format: eventid.go reads its prefix in place.
	FormStored Form = iota
	// FormOutput is what a reader gets (CLI --json, GET /v1/changes):
	// the stored form with the sequence, and committed_at when known.
	FormOutput
	// FormInput is what a writer sends the journal (POST /v1/changes,
	// the Go client): empty fields are left out so that the journal
	// fills their defaults, and nothing the journal assigns (sequence,
	// committed_at, lost) is written.
	FormInput
)

// MarshalJSON writes the change in FormOutput.
func (c Change) MarshalJSON() ([]byte, error) {
	return c.Append(nil, FormOutput)
}

// AppendJSON appends the change's JSON encoding to dst: FormOutput when
// withSequence, else FormStored.
func (c *Change) AppendJSON(dst []byte, withSequence bool) ([]byte, error) {
	if withSequence {
		return c.Append(dst, FormOutput)
	}
	return c.Append(dst, FormStored)
}

// Append appends the change's JSON encoding in form f to dst. It does not
// allocate beyond growing dst (metadata of types other than the JSON-like
// ones goes through encoding/json). Strings are escaped as encoding/json
// escapes them; invalid UTF-8 is replaced by U+FFFD, which never happens
// to a change CheckUTF8 accepted. The only error is metadata that does
// not encode.
func (c *Change) Append(dst []byte, f Form) ([]byte, error) {
	in := f == FormInput
	dst = append(dst, '{')
	if !in || c.SchemaVersion != "" {
		dst = appendString(appendKey(dst, "schema_version"), c.SchemaVersion)
	}
	if !in || c.EventID != "" {
		dst = appendString(appendKey(dst, "event_id"), c.EventID)
	}
	if f == FormOutput {
		dst = strconv.AppendUint(appendKey(dst, "sequence"), c.Sequence, 10)
	}
	if !in || !c.OccurredAt.IsZero() {
		dst = appendTime(appendKey(dst, "occurred_at"), c.OccurredAt)
	}
	if f == FormOutput && !c.CommittedAt.IsZero() {
		// Not in the stored form: the envelope and the archive keep it.
		dst = appendTime(appendKey(dst, "committed_at"), c.CommittedAt)
	}
	for _, kv := range [...]struct{ k, v string }{
		{"source", c.Source}, {"surface", c.Surface}, {"change_type", c.ChangeType},
		{"aggregate_type", c.AggregateType}, {"aggregate_id", c.AggregateID},
	} {
		if !in || kv.v != "" {
			dst = appendString(appendKey(dst, kv.k), kv.v)
		}
	}
	if !in || len(c.ChangedSurfaces) > 0 {
		dst = append(appendKey(dst, "changed_surfaces"), '[')
		for i, s := range c.ChangedSurfaces {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, ']')
	}
	if !in || c.Severity != "" {
		dst = appendString(appendKey(dst, "severity"), c.Severity)
	}
	if !in || c.SnapshotHint != "" {
		dst = appendString(appendKey(dst, "snapshot_hint"), c.SnapshotHint)
	}
	if !in || c.MutatesAuthorityState {
		dst = strconv.AppendBool(appendKey(dst, "mutates_authority_state"), c.MutatesAuthorityState)
	}
	// Optional fields: left out when empty, in every form.
	for _, kv := range [...]struct{ k, v string }{
		{"artifact_ref", c.ArtifactRef}, {"correlation_id", c.CorrelationID}, {"causation_id", c.CausationID},
	} {
		if kv.v != "" {
			dst = appendString(appendKey(dst, kv.k), kv.v)
		}
	}
	if len(c.Metadata) > 0 {
		var err error
		if dst, err = appendValue(appendKey(dst, "metadata"), c.Metadata, 0); err != nil {
			return dst, fmt.Errorf("encode metadata: %w", err)
		}
	}
	if c.Lost != nil && !in {
		dst = appendString(append(appendKey(dst, "lost"), `{"cause":`...), c.Lost.Cause)
		dst = appendString(append(dst, `,"quarantine":`...), c.Lost.Quarantine)
		dst = appendTime(append(dst, `,"repaired_at":`...), c.Lost.RepairedAt)
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// appendKey appends "key": with the comma before it unless it is the
// object's first field (dst ends with the opening brace: no value ends
// with one).
func appendKey(dst []byte, key string) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// appendTime appends t as a JSON string in TimeLayout.
func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	return append(types.AppendTime(dst, t), '"')
}

// appendValue appends v as encoding/json would (map keys sorted),
// without reflection for the JSON-like types metadata holds; anything
// else goes through encoding/json.
func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > 64 {
		return dst, fmt.Errorf("metadata nested deeper than 64 levels")
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
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
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, x[k], depth+1); err != nil {
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
			if dst, err = appendValue(dst, e, depth+1); err != nil {
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

// appendString appends s as a JSON string, escaping as encoding/json
// does (including <, >, & and U+2028/2029) and replacing invalid UTF-8
// (which Record refuses before anything is encoded, so a stored record
// never holds a replacement it did not have).
func appendString(dst []byte, s string) []byte {
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

// inputFields are the fields a writer may send, in the contract's order.
var inputFields = []string{"schema_version", "event_id", "occurred_at", "source", "surface", "change_type", "aggregate_type", "aggregate_id", "changed_surfaces", "severity", "snapshot_hint", "mutates_authority_state", "artifact_ref", "correlation_id", "causation_id", "metadata"}

// wireChange is the JSON input form of a change. occurred_at is a string
// so a bad value gets a precise error, and sequence and committed_at are
// caught so a writer learns the journal assigns them.
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

// Parse decodes one change a writer sent (CLI, HTTP). Unknown fields, a
// supplied sequence or committed_at, a malformed occurred_at, metadata
// that is not an object and a string that is not valid UTF-8 (named by
// its path, e.g. aggregate_id or metadata.a.b) are *types.FieldError
// values naming the field. Metadata nested deeper than the bounds allow
// is trimmed, not refused. The change is not yet validated against the
// contract (Validate) nor the registry; the journal's Record does both.
func Parse(data []byte) (Change, error) {
	// The usual change first: what the direct parser accepts has only
	// valid UTF-8 and no container deeper than the bounds, so the scan
	// below would find nothing in it.
	if c, ok := parseFast(data); ok {
		return c, nil
	}
	// Before encoding/json sees it: it would rewrite invalid UTF-8.
	cuts, err := scanChangeJSON(data)
	if err != nil {
		return Change{}, err
	}
	return parseJSON(applyCuts(data, cuts))
}

// parseJSON is Parse's encoding/json path, for data whose UTF-8 was
// checked and whose too-deep values were cut.
func parseJSON(data []byte) (Change, error) {
	var w wireChange
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Change{}, jsonFieldError(err)
	}
	if dec.More() {
		return Change{}, fieldErr("body", "", "holds more than one JSON value; send an array or NDJSON for several changes")
	}
	c := Change{
		SchemaVersion: w.SchemaVersion, EventID: w.EventID, Source: w.Source, Surface: w.Surface,
		ChangeType: w.ChangeType, AggregateType: w.AggregateType, AggregateID: w.AggregateID,
		ChangedSurfaces: w.ChangedSurfaces, Severity: w.Severity, SnapshotHint: w.SnapshotHint,
		ArtifactRef: w.ArtifactRef, CorrelationID: w.CorrelationID, CausationID: w.CausationID,
	}
	if len(w.Sequence) > 0 && string(w.Sequence) != "null" {
		return Change{}, fieldErr("sequence", string(w.Sequence), "is assigned by the journal at commit and must not be supplied")
	}
	if len(w.CommittedAt) > 0 && string(w.CommittedAt) != "null" {
		return Change{}, fieldErr("committed_at", Clip(string(w.CommittedAt)), "is the journal's own clock, assigned at commit, and must not be supplied; the writer's time goes in occurred_at")
	}
	if w.MutatesAuthorityState != nil {
		c.MutatesAuthorityState = *w.MutatesAuthorityState
	}
	if w.OccurredAt != "" {
		t, err := parse.Timestamp(w.OccurredAt)
		if err != nil {
			return Change{}, fieldErr("occurred_at", w.OccurredAt, "is not an RFC 3339 timestamp (e.g. 2026-11-26T17:51:57.123Z)")
		}
		c.OccurredAt = t
	}
	if len(w.Metadata) > 0 && string(w.Metadata) != "null" {
		d := json.NewDecoder(bytes.NewReader(w.Metadata))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return Change{}, fieldErr("metadata", "", "must be a JSON object of string keys")
		}
		c.Metadata = m
	}
	return c, nil
}

func jsonFieldError(err error) error {
	fe := fieldErr("body", "", "")
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
			fe.Allowed = slices.Clone(inputFields)
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

// Decode decodes a record in its stored or output form (a hot-log or
// archive payload, an HTTP answer's change), metadata numbers as
// json.Number so they re-encode exactly. seq, when not zero, is the
// sequence the envelope holds (the stored form has none). Fields it does
// not know are ignored; DecodeStrict refuses them.
func Decode(data []byte, seq uint64) (Change, error) {
	return decode(data, seq, false)
}

// DecodeStrict is Decode refusing fields the contract does not have:
// what validation holds a stored record to.
func DecodeStrict(data []byte, seq uint64) (Change, error) {
	return decode(data, seq, true)
}

func decode(data []byte, seq uint64, strict bool) (Change, error) {
	// What Append writes, read directly; the rest (and every refusal)
	// by encoding/json. The fast path knows no unknown field, so strict
	// and lenient agree on what it takes.
	if c, ok := decodeFast(data); ok {
		if seq != 0 {
			c.Sequence = seq
		}
		return c, nil
	}
	return decodeJSON(data, seq, strict)
}

// decodeJSON is decode's encoding/json path.
func decodeJSON(data []byte, seq uint64, strict bool) (Change, error) {
	var c Change
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(&c); err != nil {
		return Change{}, fmt.Errorf("decode record %d: %w", seq, err)
	}
	if seq != 0 {
		c.Sequence = seq
	}
	return c, nil
}

func fieldErr(field, value, problem string, allowed ...string) *types.FieldError {
	return &types.FieldError{Kind: types.ErrInvalid, Field: field, Value: value, Problem: problem, Allowed: allowed, Index: -1}
}

// Key is the part of a stored record that compaction needs to label and
// coalesce it: when it happened, where, what kind of change to which
// aggregate.
type Key struct {
	OccurredAt      time.Time `json:"occurred_at"`
	Surface         string    `json:"surface"`
	ChangeType      string    `json:"change_type"`
	AggregateType   string    `json:"aggregate_type"`
	AggregateID     string    `json:"aggregate_id"`
	ChangedSurfaces []string  `json:"changed_surfaces"`
}

// DecodeKey decodes the Key fields of a record in its stored or output
// form, skipping the rest (metadata is not built): a full JSON decode of
// just those fields.
func DecodeKey(data []byte) (Key, error) {
	var k Key
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&k)
	return k, err
}
