package record

import (
	"reflect"
	"strings"
	"testing"
)

// checkFastParseAgrees fails when the fast path accepts data that the
// UTF-8 and depth scan would refuse or cut, or decodes it otherwise than
// the encoding/json path.
func checkFastParseAgrees(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := parseFast(data)
	if !ok {
		return
	}
	if cuts, err := scanChangeJSON(data); err != nil || len(cuts) > 0 {
		t.Fatalf("fast path accepted %q, which the scan refuses (%v) or cuts (%v)", data, err, cuts)
	}
	slow, err := parseJSON(data)
	if err != nil {
		t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path decodes %q as\n%#v\nencoding/json as\n%#v", data, fast, slow)
	}
}

func TestParseChangeFastAgreesWithEncodingJSON(t *testing.T) {
	const base = `"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"`
	tests := []struct {
		name string
		body string
		fast bool // the fast path takes it
	}{
		{"the usual heartbeat", `{` + base + `,"metadata":{"pid":10001,"state":"running","host":"h"}}`, true},
		{"every field", `{"schema_version":"runtime-state-change-v1","event_id":"e-1","occurred_at":"2026-11-26T17:51:57.123+01:00",` + base +
			`,"changed_surfaces":["runtime_work_session"],"severity":"warning","snapshot_hint":"runtime_health","mutates_authority_state":true,` +
			`"artifact_ref":"a/b","correlation_id":"c","causation_id":"d","metadata":{}}`, true},
		{"white space everywhere", " \n{ " + strings.ReplaceAll(base, ",", " ,\t") + ` , "metadata" : { "a" : [ 1 , -2.5e+3 , "x" , true , false , null , { } , [ ] ] } } ` + "\r\n", true},
		{"numbers kept as written", `{` + base + `,"metadata":{"a":0,"b":-0.0,"c":1E9,"d":123456789012345678901234567890}}`, true},
		{"multi-byte text", `{` + base + `,"metadata":{"naïve":"日本語 ✓"}}`, true},
		{"invalid UTF-8", `{` + base + `,"metadata":{"a":"` + "\xff" + `"}}`, false},
		{"nesting to the fast path's bound", `{` + base + `,"metadata":` + strings.Repeat(`{"a":`, fastMaxDepth-1) + `1` + strings.Repeat(`}`, fastMaxDepth-1) + `}`, true},
		{"nesting past it", `{` + base + `,"metadata":` + strings.Repeat(`[`, fastMaxDepth+1) + strings.Repeat(`]`, fastMaxDepth+1) + `}`, false},
		{"nesting past the bounds, cut", `{` + base + `,"metadata":` + strings.Repeat(`[`, maxParseDepth+2) + strings.Repeat(`]`, maxParseDepth+2) + `}`, false},
		{"an empty changed_surfaces", `{` + base + `,"changed_surfaces":[]}`, true},
		{"mutates false", `{` + base + `,"mutates_authority_state":false}`, true},
		{"an empty object", `{}`, true},
		{"an escaped string", `{` + base + `,"metadata":{"a":"x\"y"}}`, false},
		{"an escaped key", `{"sour\u0063e":"x"}`, false},
		{"a key in another case", `{"Source":"x"}`, false},
		{"an unknown field", `{` + base + `,"colour":"red"}`, false},
		{"a repeated field", `{` + base + `,"surface":"x"}`, false},
		{"a repeated metadata key", `{` + base + `,"metadata":{"a":1,"a":2}}`, false},
		{"null", `{` + base + `,"severity":null}`, false},
		{"null metadata", `{` + base + `,"metadata":null}`, false},
		{"a supplied sequence", `{` + base + `,"sequence":5}`, false},
		{"a supplied committed_at", `{` + base + `,"committed_at":"2026-01-01T00:00:00Z"}`, false},
		{"a bad timestamp", `{` + base + `,"occurred_at":"yesterday"}`, false},
		{"a number where text belongs", `{"source":5}`, false},
		{"metadata not an object", `{` + base + `,"metadata":[1]}`, false},
		{"a leading zero", `{` + base + `,"metadata":{"a":01}}`, false},
		{"a bare minus", `{` + base + `,"metadata":{"a":-}}`, false},
		{"a dot without digits", `{` + base + `,"metadata":{"a":1.}}`, false},
		{"a control character", "{\"source\":\"a\tb\"}", false},
		{"a second value", `{` + base + `} {}`, false},
		{"a stray closing brace", `{` + base + `}}`, false},
		{"a trailing comma", `{` + base + `,}`, false},
		{"an array", `[{` + base + `}]`, false},
		{"a truncated object", `{` + base, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := parseFast([]byte(tt.body))
			if ok != tt.fast {
				t.Fatalf("fast path took it: %v, want %v", ok, tt.fast)
			}
			checkFastParseAgrees(t, []byte(tt.body))
			// And ParseChange answers as its encoding/json path does.
			c, err := Parse([]byte(tt.body))
			c2, err2 := parseJSON(applyCutsOf(t, tt.body))
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || err == nil && !reflect.DeepEqual(c, c2) {
				t.Fatalf("ParseChange = %#v, %v; encoding/json path = %#v, %v", c, err, c2, err2)
			}
		})
	}
}

func applyCutsOf(t *testing.T, body string) []byte {
	cuts, err := scanChangeJSON([]byte(body))
	if err != nil {
		t.Skipf("refused before decoding: %v", err)
	}
	return applyCuts([]byte(body), cuts)
}

func BenchmarkParseChange(b *testing.B) {
	body := []byte(`{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-7","metadata":{"host":"bench-host-01","pid":10007,"state":"running"}}`)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := parseJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseChange", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := Parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzParseFastAgrees holds the direct parser to the encoding/json path
// on arbitrary bytes: whatever the direct parser accepts, the scan finds
// nothing to refuse or cut in, and encoding/json decodes to the same
// change.
func FuzzParseFastAgrees(f *testing.F) {
	const base = `"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"`
	f.Add([]byte(`{` + base + `}`))
	f.Add([]byte(`{` + base + `,"metadata":{"pid":10001,"state":"running","a":[1,-2.5e+3,"x",true,null,{}]}}`))
	f.Add([]byte(`{"event_id":"e-1","occurred_at":"2026-11-26T17:51:57.123+01:00",` + base + `,"changed_surfaces":["runtime_work_session"],"mutates_authority_state":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParseAgrees(t, data)
	})
}
