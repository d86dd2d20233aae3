package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/internal/redact"
	"github.com/agentruntime/statejournal/types"
)

// utf8Base is a valid change every UTF-8 case damages in one place.
func utf8Base() Change {
	return Change{SchemaVersion: SchemaVersion, Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: "ws-1", Severity: "info", SnapshotHint: "runtime_health",
		ChangedSurfaces: []string{"runtime_work_session", "runtime_agent_registry"}, EventID: "ev-1",
		ArtifactRef: "a", CorrelationID: "c", CausationID: "k", Metadata: map[string]any{"k": "v", "list": []any{"x"}}}
}

// TestInvalidUTF8IsRefusedNamingTheFieldViaTheGoAPI puts an invalid byte
// into each string of a change: Record refuses it naming the field and
// the byte, and writes nothing (before, the bytes became U+FFFD).
func TestInvalidUTF8IsRefusedNamingTheFieldViaTheGoAPI(t *testing.T) {
	j := openT(t, t.TempDir())
	const bad = "ab\xffc"
	cases := []struct {
		field string
		set   func(c *Change)
	}{
		{"schema_version", func(c *Change) { c.SchemaVersion = bad }},
		{"event_id", func(c *Change) { c.EventID = bad }},
		{"source", func(c *Change) { c.Source = bad }},
		{"surface", func(c *Change) { c.Surface = bad }},
		{"change_type", func(c *Change) { c.ChangeType = bad }},
		{"aggregate_type", func(c *Change) { c.AggregateType = bad }},
		{"aggregate_id", func(c *Change) { c.AggregateID = bad }},
		{"severity", func(c *Change) { c.Severity = bad }},
		{"snapshot_hint", func(c *Change) { c.SnapshotHint = bad }},
		{"artifact_ref", func(c *Change) { c.ArtifactRef = bad }},
		{"correlation_id", func(c *Change) { c.CorrelationID = bad }},
		{"causation_id", func(c *Change) { c.CausationID = bad }},
		{"changed_surfaces[1]", func(c *Change) { c.ChangedSurfaces[1] = bad }},
		{"metadata.k", func(c *Change) { c.Metadata["k"] = bad }},
		{"metadata", func(c *Change) { c.Metadata[bad] = "v" }},
		{"metadata.list[0]", func(c *Change) { c.Metadata["list"] = []any{bad} }},
		{"metadata.m.s", func(c *Change) { c.Metadata["m"] = map[string]string{"s": bad} }},
		{"metadata.st.Name", func(c *Change) { c.Metadata["st"] = struct{ Name string }{bad} }},
		{"metadata.ss[1]", func(c *Change) { c.Metadata["ss"] = []string{"ok", bad} }},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			c := utf8Base()
			tc.set(&c)
			_, err := j.Record(context.Background(), c)
			var fe *types.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field != tc.field || !strings.Contains(fe.Problem, "at byte 2") {
				t.Fatalf("got %v, want invalid UTF-8 at byte 2 naming %s", err, tc.field)
			}
			if !utf8.ValidString(fe.Error()) {
				t.Errorf("the error itself is not valid UTF-8: %q", fe.Error())
			}
		})
	}
	if h := j.Head(); h != 0 {
		t.Fatalf("%d records written", h)
	}
	if _, err := j.Record(context.Background(), utf8Base()); err != nil {
		t.Fatalf("the valid base change: %v", err)
	}
}

// TestInvalidUTF8InJSONIsRefusedNamingTheField gives ParseChange raw JSON
// with an invalid byte (or a lone surrogate escape) in each string: two
// ids that encoding/json would both turn into "id-\ufffd" are refused
// instead of colliding.
func TestInvalidUTF8InJSONIsRefusedNamingTheField(t *testing.T) {
	valid := `{"schema_version":"runtime-state-change-v1","event_id":"ev-1","source":"runtime.work_session","surface":"runtime_work_session",` +
		`"change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1","changed_surfaces":["runtime_work_session","runtime_agent_registry"],` +
		`"severity":"info","snapshot_hint":"runtime_health","artifact_ref":"a","correlation_id":"c","causation_id":"k",` +
		`"occurred_at":"2026-11-26T17:51:57.123Z","metadata":{"k":"v","list":["x",{"deep":"y"}]}}`
	if _, err := ParseChange([]byte(valid)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	cases := []struct {
		name, from, to, field string
	}{
		{"event_id", `"ev-1"`, "\"ev-\xff\"", "event_id"},
		{"event_id with a lone surrogate", `"ev-1"`, `"ev-\udc00"`, "event_id"},
		{"event_id with a high surrogate and no low one", `"ev-1"`, `"ev-\ud800x"`, "event_id"},
		{"source", `"runtime.work_session"`, "\"runtime.\xc3\"", "source"},
		{"surface", `"surface":"runtime_work_session"`, "\"surface\":\"runtime_\xe2\x82\"", "surface"},
		{"change_type", `"heartbeat"`, "\"heart\xfe\"", "change_type"},
		{"aggregate_type", `"work_session"`, "\"work\xff\"", "aggregate_type"},
		{"aggregate_id", `"ws-1"`, "\"ws-\xff\"", "aggregate_id"},
		{"changed_surfaces entry", `"runtime_agent_registry"]`, "\"runtime\xff\"]", "changed_surfaces[1]"},
		{"severity", `"info"`, "\"in\xff\"", "severity"},
		{"snapshot_hint", `"runtime_health"`, "\"rt\xff\"", "snapshot_hint"},
		{"artifact_ref", `"artifact_ref":"a"`, "\"artifact_ref\":\"a\xff\"", "artifact_ref"},
		{"correlation_id", `"correlation_id":"c"`, "\"correlation_id\":\"c\xff\"", "correlation_id"},
		{"causation_id", `"causation_id":"k"`, "\"causation_id\":\"k\xff\"", "causation_id"},
		{"schema_version", `"runtime-state-change-v1"`, "\"runtime-\xff\"", "schema_version"},
		{"occurred_at", `"2026-11-26T17:51:57.123Z"`, "\"2026\xff\"", "occurred_at"},
		{"metadata value", `"k":"v"`, "\"k\":\"v\xff\"", "metadata.k"},
		{"metadata key", `"k":"v"`, "\"k\xff\":\"v\"", "metadata"},
		{"metadata value in an array", `"x"`, "\"x\xff\"", "metadata.list[0]"},
		{"metadata value in an object in an array", `"y"`, "\"y\xff\"", "metadata.list[1].deep"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(valid, tc.from, tc.to, 1)
			if body == valid {
				t.Fatal("the case changes nothing")
			}
			_, err := ParseChange([]byte(body))
			var fe *types.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, "UTF-8") {
				t.Fatalf("got %v (%#v), want invalid UTF-8 naming %s", err, fe, tc.field)
			}
			if !utf8.ValidString(fe.Error()) {
				t.Errorf("the error itself is not valid UTF-8: %q", fe.Error())
			}
		})
	}
	// Valid escapes and multi-byte text pass.
	ok := strings.Replace(valid, `"ev-1"`, `"ev-\u00e9\ud83d\ude00é"`, 1)
	c, err := ParseChange([]byte(ok))
	if err != nil || c.EventID != "ev-é😀é" {
		t.Fatalf("valid escapes: %q %v", c.EventID, err)
	}
}

// TestErrorValuesAreClippedOnRuneBoundaries echoes a long multi-byte value
// in an error: the clipped value stays valid UTF-8.
func TestErrorValuesAreClippedOnRuneBoundaries(t *testing.T) {
	j := openT(t, t.TempDir())
	c := heartbeat("ws-1")
	c.ChangeType = strings.Repeat("é", 60) // 120 bytes; a byte cut at 77 splits a rune
	_, err := j.Record(context.Background(), c)
	var fe *types.FieldError
	if !errors.As(err, &fe) || fe.Field != "change_type" {
		t.Fatalf("got %v", err)
	}
	if !utf8.ValidString(fe.Value) || !strings.HasSuffix(fe.Value, "…") {
		t.Fatalf("clipped value %q is not valid UTF-8", fe.Value)
	}
}

// TestDeepMetadataIsTrimmedNotRefused sends metadata nested far beyond the
// bounds (and beyond encoding/json's own limit of 10000 levels): it is
// recorded, trimmed and marked.
func TestDeepMetadataIsTrimmedNotRefused(t *testing.T) {
	j := openT(t, t.TempDir())
	for _, n := range []int{10, 100, 20000} {
		body := `{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"w","aggregate_id":"1",` +
			`"metadata":{"keep":"me","deep":` + strings.Repeat(`[{"a":"\"]}",`, n) + `1` + strings.Repeat(`}]`, n) + `}}`
		body = strings.ReplaceAll(body, `[{"a":"\"]}",`, `[{"a":"\"]}","b":`)
		c, err := ParseChange([]byte(body))
		if err != nil {
			t.Fatalf("depth %d: parse: %v", n, err)
		}
		rc, err := j.Record(context.Background(), c)
		if err != nil {
			t.Fatalf("depth %d: record: %v", n, err)
		}
		if !rc.MetadataTrimmed {
			t.Errorf("depth %d: receipt does not say trimmed", n)
		}
		res, err := j.Query(context.Background(), Query{After: rc.Sequence - 1, HasAfter: true, Limit: 1})
		if err != nil || len(res.Changes) != 1 {
			t.Fatalf("depth %d: read back: %v", n, err)
		}
		md := res.Changes[0].Metadata
		if md["keep"] != "me" || md[redact.TrimmedKey] != true {
			t.Errorf("depth %d: metadata %v", n, md)
		}
	}
}
