package engine

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestAppendJSONEncodesLikeEncodingJSON(t *testing.T) {
	cases := []map[string]any{
		{"pid": 1234, "state": "running"},
		{"b": true, "n": nil, "f": 1.5, "big": uint64(math.MaxUint64), "neg": int64(-7), "num": json.Number("12.50")},
		{"nested": map[string]any{"z": []any{1, "two", map[string]any{"k": "v"}}, "a": "<tag>&\u2028"}},
		{"weird": struct{ X int }{3}, "bytes": []byte("hi"), "time": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"utf8": "h\xffé\n\t\"q\"\\", "": "empty key"},
	}
	for _, m := range cases {
		c := Change{SchemaVersion: SchemaVersion, EventID: "e", OccurredAt: time.Unix(1, 2), Source: "s", Surface: "x",
			ChangeType: "updated", AggregateType: "t", AggregateID: "i", ChangedSurfaces: []string{"x"}, Severity: "info",
			SnapshotHint: "none", Metadata: m}
		got, err := c.AppendJSON(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		var back, want map[string]any
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("not JSON: %s: %v", got, err)
		}
		wantMeta, _ := json.Marshal(m)
		gotMeta, _ := json.Marshal(back["metadata"])
		json.Unmarshal(wantMeta, &want)
		wm, _ := json.Marshal(want)
		if string(gotMeta) != string(wm) {
			t.Fatalf("metadata encodes as %s, encoding/json says %s", gotMeta, wm)
		}
	}
}
