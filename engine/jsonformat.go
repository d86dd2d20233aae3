package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/types"
)

// The JSON the engine's answers are written in — by the CLI's --json and
// the HTTP API alike — follows two rules, applied here to every answer
// type that holds a time or a duration:
//
//   - a time is RFC 3339 in UTC with exactly nine fractional digits
//     (types.TimeLayout), like a record's occurred_at;
//   - a duration is a string in the syntax the duration flags and query
//     parameters accept (types.FormatDuration: "30d", "36h", "1m30s",
//     "250ms"). On input a duration is read in that syntax, or as a number
//     of nanoseconds (what earlier releases wrote).
//
// Files the engine persists keep their own formats (see doc.go).

// jsonTime is a time written in types.TimeLayout.
type jsonTime time.Time

func (t jsonTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + types.FormatTime(time.Time(t)) + `"`), nil
}

// jsonDuration is a duration written by types.FormatDuration.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(types.FormatDuration(time.Duration(d)))
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64
		if err := json.Unmarshal(b, &ns); err != nil {
			return fmt.Errorf("a duration is a string such as \"30d\" or \"90s\": %s", b)
		}
		*d = jsonDuration(ns)
		return nil
	}
	if s == "0" || s == "0s" {
		*d = 0
		return nil
	}
	v, err := parse.Duration(s)
	if err != nil {
		return err
	}
	*d = jsonDuration(v)
	return nil
}

// MarshalJSON writes max_age as a duration string.
func (r Retention) MarshalJSON() ([]byte, error) {
	type plain Retention
	return json.Marshal(struct {
		plain
		MaxAge jsonDuration `json:"max_age"`
	}{plain(r), jsonDuration(r.MaxAge)})
}

// UnmarshalJSON reads max_age as a duration string (or nanoseconds).
func (r *Retention) UnmarshalJSON(b []byte) error {
	type plain Retention
	var w struct {
		*plain
		MaxAge jsonDuration `json:"max_age"`
	}
	w.plain = (*plain)(r)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.MaxAge = time.Duration(w.MaxAge)
	return nil
}

// MarshalJSON writes duration as a duration string.
func (r CompactReport) MarshalJSON() ([]byte, error) {
	type plain CompactReport
	return json.Marshal(struct {
		plain
		Duration jsonDuration `json:"duration"`
	}{plain(r), jsonDuration(r.Duration)})
}

// UnmarshalJSON reads duration as a duration string.
func (r *CompactReport) UnmarshalJSON(b []byte) error {
	type plain CompactReport
	var w struct {
		*plain
		Duration jsonDuration `json:"duration"`
	}
	w.plain = (*plain)(r)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Duration = time.Duration(w.Duration)
	return nil
}

// MarshalJSON writes occurred_at and committed_at in types.TimeLayout.
func (r Receipt) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 256)), nil
}

// AppendJSON appends the receipt's JSON encoding (MarshalJSON's bytes) to
// dst without reflection: the HTTP server writes one per recorded change.
// The field order is the one encoding/json gave the receipt before: the
// plain fields, then occurred_at and committed_at.
func (r *Receipt) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"sequence":`...)
	dst = strconv.AppendUint(dst, r.Sequence, 10)
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, r.EventID)
	dst = append(dst, `,"surface":`...)
	dst = appendJSONString(dst, r.Surface)
	dst = append(dst, `,"durable":`...)
	dst = strconv.AppendBool(dst, r.Durable)
	dst = append(dst, `,"duplicate":`...)
	dst = strconv.AppendBool(dst, r.Duplicate)
	dst = append(dst, `,"redactions":`...)
	dst = strconv.AppendInt(dst, int64(r.Redactions), 10)
	dst = append(dst, `,"metadata_trimmed":`...)
	dst = strconv.AppendBool(dst, r.MetadataTrimmed)
	dst = append(dst, `,"occurred_at":"`...)
	dst = types.AppendTime(dst, r.OccurredAt)
	dst = append(dst, `","committed_at":"`...)
	dst = types.AppendTime(dst, r.CommittedAt)
	return append(dst, `"}`...)
}

// MarshalJSON writes last_at in types.TimeLayout.
func (s SurfaceStatus) MarshalJSON() ([]byte, error) {
	type plain SurfaceStatus
	w := struct {
		plain
		LastAt *jsonTime `json:"last_at,omitempty"`
	}{plain: plain(s)}
	if s.LastAt != nil {
		t := jsonTime(*s.LastAt)
		w.LastAt = &t
	}
	return json.Marshal(w)
}

// MarshalJSON writes at in types.TimeLayout.
func (c CompactionSummary) MarshalJSON() ([]byte, error) {
	type plain CompactionSummary
	return json.Marshal(struct {
		plain
		At jsonTime `json:"at"`
	}{plain(c), jsonTime(c.At)})
}

// MarshalJSON writes at in types.TimeLayout.
func (r Recovery) MarshalJSON() ([]byte, error) {
	type plain Recovery
	return json.Marshal(struct {
		plain
		At jsonTime `json:"at"`
	}{plain(r), jsonTime(r.At)})
}
