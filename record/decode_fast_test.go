package record

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkFastDecodeAgrees fails when the direct decoder accepts data that
// the encoding/json path decodes otherwise, or refuses, strict or not.
func checkFastDecodeAgrees(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := decodeFast(data)
	if !ok {
		return
	}
	for _, strict := range []bool{false, true} {
		slow, err := decodeJSON(data, 0, strict)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json (strict %v) refuses it: %v", data, strict, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path decodes %q as\n%#v\nencoding/json (strict %v) as\n%#v", data, fast, strict, slow)
		}
	}
}

// What the journal writes, the direct decoder reads, in both forms, and
// exactly as encoding/json does; what it leaves to encoding/json is
// what Append writes rarely (escapes, lost records) or never.
func TestDecodeFastAgreesWithEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 23, 15, 4, 123456789, time.FixedZone("", 3600))
	full := Change{SchemaVersion: SchemaVersion, EventID: "0193a1b2-0000-7000-8000-000000000001", Sequence: 42, OccurredAt: at,
		CommittedAt: at.Add(time.Millisecond).UTC(), Source: "runtime.agents", Surface: "runtime_agent_registry", ChangeType: "heartbeat",
		AggregateType: "agent", AggregateID: "agent-007", ChangedSurfaces: []string{"runtime_agent_registry", "runtime_health_snapshot"},
		Severity: "warning", SnapshotHint: "runtime_health", MutatesAuthorityState: true, ArtifactRef: "a/b.json", CorrelationID: "c-1",
		CausationID: "d-1", Metadata: map[string]any{"fingerprint": "sha256:" + strings.Repeat("ab", 32), "pid": 10001, "ratio": 0.25,
			"nested": map[string]any{"list": []any{1, "two", true, nil, map[string]any{}}}, "naïve": "日本語 ✓"}}
	minimal := Change{Source: "s", Surface: "x", ChangeType: "updated", AggregateType: "a", AggregateID: "1"}
	escaped := minimal
	escaped.Metadata = map[string]any{"html": "<b>&</b>", "quote": `say "hi"`}
	lost := minimal
	lost.Lost = &LostRecord{Cause: "torn", Quarantine: "q/1", RepairedAt: at}
	tests := []struct {
		name string
		c    Change
		fast bool
	}{
		{"every field", full, true},
		{"the minimal change", minimal, true},
		{"strings with escapes", escaped, false},
		{"a lost record", lost, false},
	}
	for _, tt := range tests {
		for _, f := range []Form{FormStored, FormOutput} {
			b, err := tt.c.Append(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := decodeFast(b); ok != tt.fast {
				t.Errorf("%s, form %d: fast path took it: %v, want %v (%s)", tt.name, f, ok, tt.fast, b)
			}
			checkFastDecodeAgrees(t, b)
			got, err := Decode(b, 7)
			if err != nil || got.Sequence != 7 || got.Surface != tt.c.Surface || !got.OccurredAt.Equal(tt.c.OccurredAt) {
				t.Errorf("%s, form %d: Decode = %+v, %v", tt.name, f, got, err)
			}
		}
	}
	for _, body := range []string{
		`{"sequence":-1}`, `{"sequence":1.0}`, `{"sequence":1e3}`, `{"sequence":01}`, `{"sequence":18446744073709551616}`,
		`{"committed_at":"yesterday"}`, `{"occurred_at":""}`, `{"occurred_at":null}`, `{"surface":"x","colour":"red"}`,
		`{"Surface":"x"}`, `{"surface":"x","surface":"y"}`, `{"metadata":null}`, `{"sequence":5,"sequence":6}`,
	} {
		if _, ok := decodeFast([]byte(body)); ok {
			t.Errorf("fast path took %s, which is encoding/json's to answer", body)
		}
		checkFastDecodeAgrees(t, []byte(body))
	}
	// Taken: the integer forms encoding/json reads into a uint64.
	for body, want := range map[string]uint64{`{"sequence":0}`: 0, `{"sequence":18446744073709551615}`: 1<<64 - 1, `{"sequence":12}`: 12} {
		c, ok := decodeFast([]byte(body))
		if !ok || c.Sequence != want {
			t.Errorf("%s: fast path %v, sequence %d, want %d", body, ok, c.Sequence, want)
		}
		checkFastDecodeAgrees(t, []byte(body))
	}
}

func BenchmarkDecode(b *testing.B) {
	c := Change{SchemaVersion: SchemaVersion, EventID: "0193a1b2-0000-7000-8000-000000000001", OccurredAt: time.Now(), Source: "runtime.agents",
		Surface: "runtime_agent_registry", ChangeType: "heartbeat", AggregateType: "agent", AggregateID: "agent-007",
		Metadata: map[string]any{"fingerprint": "sha256:" + strings.Repeat("ab", 32), "pid": 10001}}
	body, _ := c.Append(nil, FormStored)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSON(body, 1, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(body, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzDecodeFastAgrees holds the direct decoder to the encoding/json path
// on arbitrary bytes.
func FuzzDecodeFastAgrees(f *testing.F) {
	f.Add([]byte(`{"schema_version":"runtime-state-change-v1","event_id":"e","sequence":3,"occurred_at":"2026-11-26T17:51:57.123+01:00","committed_at":"2026-11-26T16:51:57.2Z","source":"s","surface":"x","change_type":"updated","aggregate_type":"a","aggregate_id":"1","changed_surfaces":["x"],"severity":"info","snapshot_hint":"","mutates_authority_state":false,"metadata":{"a":[1,-2.5e+3,"x",true,null,{}]}}`))
	f.Add([]byte(`{"sequence":18446744073709551615}`))
	f.Add([]byte(`{"occurred_at":"2026-02-30T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastDecodeAgrees(t, data)
	})
}
