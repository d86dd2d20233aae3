package record_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// TestEnumCodesAreFixed pins every code the index and its checkpoint
// store: a checkpoint written by any release must read with the same
// meaning, so a code never moves, whatever order the lists take.
func TestEnumCodesAreFixed(t *testing.T) {
	changeTypes := map[string]uint8{"created": 0, "updated": 1, "deleted": 2, "heartbeat": 3, "transitioned": 4, "expired": 5, "invalidated": 6}
	severities := map[string]uint8{"debug": 0, "info": 1, "notice": 2, "warning": 3, "error": 4, "critical": 5}
	if got := record.ChangeTypes(); len(got) != len(changeTypes) {
		t.Fatalf("ChangeTypes() = %v: want exactly %d change types", got, len(changeTypes))
	}
	for _, name := range record.ChangeTypes() {
		code, ok := record.ChangeTypeCode(name)
		if want, known := changeTypes[name]; !ok || !known || code != want {
			t.Errorf("ChangeTypeCode(%q) = %d, %v; want %d (pinned)", name, code, ok, want)
		}
		if back, ok := record.ChangeTypeName(code); !ok || back != name {
			t.Errorf("ChangeTypeName(%d) = %q, %v; want %q", code, back, ok, name)
		}
	}
	if got := record.Severities(); len(got) != len(severities) {
		t.Fatalf("Severities() = %v: want exactly %d severities", got, len(severities))
	}
	prev := -1
	for _, name := range record.Severities() {
		code, ok := record.SeverityCode(name)
		if want, known := severities[name]; !ok || !known || code != want {
			t.Errorf("SeverityCode(%q) = %d, %v; want %d (pinned)", name, code, ok, want)
		}
		if int(code) <= prev {
			t.Errorf("severity %q has code %d after %d: codes are ranks and must rise", name, code, prev)
		}
		prev = int(code)
		if back, ok := record.SeverityName(code); !ok || back != name {
			t.Errorf("SeverityName(%d) = %q, %v; want %q", code, back, ok, name)
		}
	}
	if code, ok := record.ChangeTypeCode("renamed"); ok || code != record.CodeNoChangeType {
		t.Errorf("an unknown change type has code %d, %v; want CodeNoChangeType, false", code, ok)
	}
	if name, ok := record.ChangeTypeName(record.CodeNoChangeType); ok || name != "" {
		t.Errorf("CodeNoChangeType names %q, %v; want no change type", name, ok)
	}
	// The lists are copies: changing one changes no code.
	l := record.ChangeTypes()
	l[0], l[1] = l[1], l[0]
	if code, _ := record.ChangeTypeCode("created"); code != 0 {
		t.Errorf("reordering the returned list moved created to code %d", code)
	}
}

func sample() record.Change {
	return record.Change{SchemaVersion: record.SchemaVersion, EventID: "ws-42-beat-000173",
		OccurredAt: time.Date(2026, 12, 1, 22, 29, 16, 59000000, time.UTC), Source: "runtime.work_session",
		Surface: "runtime_work_session", ChangeType: "heartbeat", AggregateType: "work_session", AggregateID: "ws-42",
		ChangedSurfaces: []string{"runtime_work_session"}, Severity: "info", SnapshotHint: "runtime_health",
		CorrelationID: "run-8f3a", Metadata: map[string]any{"phase": "editing", "attempt": json.Number("3"), "<&>": "\u2028"}}
}

// TestStoredFormIsTheOnDiskFormat holds the stored form to its bytes: the
// hot log and archives keep them, and the dedupe reads their prefix.
func TestStoredFormIsTheOnDiskFormat(t *testing.T) {
	c := sample()
	got, err := c.Append(nil, record.FormStored)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema_version":"runtime-state-change-v1","event_id":"ws-42-beat-000173","occurred_at":"2026-12-01T22:29:16.059000000Z",` +
		`"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session",` +
		`"aggregate_id":"ws-42","changed_surfaces":["runtime_work_session"],"severity":"info","snapshot_hint":"runtime_health",` +
		`"mutates_authority_state":false,"correlation_id":"run-8f3a","metadata":{"\u003c\u0026\u003e":"\u2028","attempt":3,"phase":"editing"}}`
	if string(got) != want {
		t.Fatalf("stored form:\n got %s\nwant %s", got, want)
	}
	c.Sequence, c.CommittedAt = 7, time.Date(2026, 12, 1, 23, 0, 0, 1, time.UTC)
	out, _ := c.Append(nil, record.FormOutput)
	wantOut := strings.Replace(want, `,"occurred_at"`, `,"sequence":7,"occurred_at"`, 1)
	wantOut = strings.Replace(wantOut, `,"source"`, `,"committed_at":"2026-12-01T23:00:00.000000001Z","source"`, 1)
	if string(out) != wantOut {
		t.Fatalf("output form:\n got %s\nwant %s", out, wantOut)
	}
	if old, _ := c.AppendJSON(nil, false); string(old) != want {
		t.Fatalf("AppendJSON(false) is not the stored form: %s", old)
	}
	back, err := record.Decode(out, 0)
	if err != nil || back.Sequence != 7 || !back.CommittedAt.Equal(c.CommittedAt) || back.EventID != c.EventID {
		t.Fatalf("Decode(output form) = %+v, %v", back, err)
	}
}

// clientWire is the struct the Go client used to encode changes with
// encoding/json before the input form existed: the input form must
// write the same bytes.
type clientWire struct {
	SchemaVersion         string         `json:"schema_version,omitempty"`
	EventID               string         `json:"event_id,omitempty"`
	OccurredAt            string         `json:"occurred_at,omitempty"`
	Source                string         `json:"source,omitempty"`
	Surface               string         `json:"surface,omitempty"`
	ChangeType            string         `json:"change_type,omitempty"`
	AggregateType         string         `json:"aggregate_type,omitempty"`
	AggregateID           string         `json:"aggregate_id,omitempty"`
	ChangedSurfaces       []string       `json:"changed_surfaces,omitempty"`
	Severity              string         `json:"severity,omitempty"`
	SnapshotHint          string         `json:"snapshot_hint,omitempty"`
	MutatesAuthorityState bool           `json:"mutates_authority_state,omitempty"`
	ArtifactRef           string         `json:"artifact_ref,omitempty"`
	CorrelationID         string         `json:"correlation_id,omitempty"`
	CausationID           string         `json:"causation_id,omitempty"`
	Metadata              map[string]any `json:"metadata,omitempty"`
}

func TestInputFormLeavesOutWhatTheJournalFills(t *testing.T) {
	full := sample()
	full.MutatesAuthorityState, full.ArtifactRef, full.CausationID = true, "a/b", "c-1"
	minimal := record.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: "ws-42"}
	journalOnly := minimal
	journalOnly.Sequence, journalOnly.CommittedAt = 9, time.Now()
	journalOnly.Lost = &record.LostRecord{Cause: "bad_checksum"}
	for name, c := range map[string]record.Change{"a full change": full, "the five required fields": minimal, "fields the journal assigns": journalOnly} {
		t.Run(name, func(t *testing.T) {
			got, err := c.Append(nil, record.FormInput)
			if err != nil {
				t.Fatal(err)
			}
			w := clientWire{SchemaVersion: c.SchemaVersion, EventID: c.EventID, Source: c.Source, Surface: c.Surface,
				ChangeType: c.ChangeType, AggregateType: c.AggregateType, AggregateID: c.AggregateID,
				ChangedSurfaces: c.ChangedSurfaces, Severity: c.Severity, SnapshotHint: c.SnapshotHint,
				MutatesAuthorityState: c.MutatesAuthorityState, ArtifactRef: c.ArtifactRef,
				CorrelationID: c.CorrelationID, CausationID: c.CausationID, Metadata: c.Metadata}
			if !c.OccurredAt.IsZero() {
				w.OccurredAt = c.OccurredAt.UTC().Format(record.TimeLayout)
			}
			want, _ := json.Marshal(w)
			if string(got) != string(want) {
				t.Fatalf("input form:\n got %s\nwant %s", got, want)
			}
			back, err := record.Parse(got)
			if err != nil {
				t.Fatalf("Parse(input form) refuses it: %v", err)
			}
			if back.EventID != c.EventID || back.AggregateID != c.AggregateID || back.MutatesAuthorityState != c.MutatesAuthorityState {
				t.Fatalf("Parse(input form) = %+v", back)
			}
		})
	}
}

func TestStoredEncodingDoesNotAllocate(t *testing.T) {
	c := sample()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf, _ = c.Append(buf[:0], record.FormStored) }); n != 0 {
		t.Fatalf("the stored form allocates %.1f times per record; want 0", n)
	}
}

func BenchmarkAppendStored(b *testing.B) {
	c := sample()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = c.Append(buf[:0], record.FormStored)
	}
	b.SetBytes(int64(len(buf)))
}

func TestChangedSurfacesBoundIsTheArchiveLabelBound(t *testing.T) {
	if record.MaxChangedSurfacesBytes != archive.MaxLabelSize {
		t.Fatalf("record.MaxChangedSurfacesBytes = %d, archive.MaxLabelSize = %d: an archive indexes a record under changed_surfaces joined by '+'",
			record.MaxChangedSurfacesBytes, archive.MaxLabelSize)
	}
}

func TestValidate(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ok := record.Change{Source: "runtime.work_session", Surface: "s", ChangeType: "heartbeat", AggregateType: "work_session", AggregateID: "ws-1"}
	cases := []struct {
		name  string
		edit  func(c *record.Change)
		field string // "" when valid
	}{
		{"a writer's minimal change is valid", func(c *record.Change) {}, ""},
		{"another schema version is refused", func(c *record.Change) { c.SchemaVersion = "runtime-state-change-v2" }, "schema_version"},
		{"a writer cannot set lost", func(c *record.Change) { c.Lost = &record.LostRecord{} }, "lost"},
		{"a missing surface is refused", func(c *record.Change) { c.Surface = "" }, "surface"},
		{"a source with a space is refused", func(c *record.Change) { c.Source = "runtime work" }, "source"},
		{"an unknown change type is refused", func(c *record.Change) { c.ChangeType = "renamed" }, "change_type"},
		{"an aggregate id with a control character is refused", func(c *record.Change) { c.AggregateID = "a\x01" }, "aggregate_id"},
		{"an unknown severity is refused", func(c *record.Change) { c.Severity = "fatal" }, "severity"},
		{"changed_surfaces without surface is refused", func(c *record.Change) { c.ChangedSurfaces = []string{"t"} }, "changed_surfaces"},
		{"a repeated changed_surfaces entry is refused", func(c *record.Change) { c.ChangedSurfaces = []string{"s", "t", "t"} }, "changed_surfaces[2]"},
		{"a correlation id over its bound is refused", func(c *record.Change) { c.CorrelationID = strings.Repeat("c", record.MaxIDBytes+1) }, "correlation_id"},
		{"an event id with a space is refused", func(c *record.Change) { c.EventID = "id 1" }, "event_id"},
		{"occurred_at before 1970 is refused", func(c *record.Change) { c.OccurredAt = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "occurred_at"},
		{"occurred_at 31 days ahead is refused", func(c *record.Change) { c.OccurredAt = now.Add(31 * 24 * time.Hour) }, "occurred_at"},
		{"occurred_at 29 days ahead is valid", func(c *record.Change) { c.OccurredAt = now.Add(29 * 24 * time.Hour) }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := record.Validate(&c, now)
			var fe *types.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate = %v; want nil", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, types.ErrInvalid)):
				t.Fatalf("Validate = %v; want a types.ErrInvalid *FieldError naming %s", err, tc.field)
			}
		})
	}
	t.Run("a stored record must carry every default", func(t *testing.T) {
		c := ok
		if err := record.ValidateStored(&c); err == nil {
			t.Fatal("ValidateStored accepted a record without schema_version, event_id, occurred_at, severity, snapshot_hint and changed_surfaces")
		}
		c.SchemaVersion, c.EventID, c.OccurredAt, c.Severity, c.SnapshotHint, c.ChangedSurfaces = record.SchemaVersion, "e-1", now, "info", "none", []string{"s"}
		if err := record.ValidateStored(&c); err != nil {
			t.Fatalf("ValidateStored = %v on a complete record", err)
		}
	})
}
