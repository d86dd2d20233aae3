package record_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// FuzzParseRoundTrip feeds arbitrary bytes to Parse: a refusal is a
// *types.FieldError naming a field; what Parse accepts, the input form
// writes back as JSON that Parse reads to the same change.
func FuzzParseRoundTrip(f *testing.F) {
	f.Add([]byte(`{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"}`))
	f.Add([]byte(`{"event_id":"e-1","occurred_at":"2026-12-01T22:29:16.059+01:00","surface":"s","changed_surfaces":["s","t"],"mutates_authority_state":true,"metadata":{"a":[1,"<b>",{"c":null}],"\u2028":1.5e3}}`))
	f.Add([]byte(`{"surface":"s","sequence":3}`))
	f.Add([]byte(`{"aggregate_id":"\udc00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := record.Parse(data)
		if err != nil {
			var fe *types.FieldError
			if !errors.As(err, &fe) || fe.Field == "" || !errors.Is(err, types.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v (%T): want a types.ErrInvalid *FieldError naming a field", data, err, err)
			}
			return
		}
		enc, err := c.Append(nil, record.FormInput)
		if err != nil {
			// Parse keeps metadata numbers as written and cuts deep
			// nesting, so whatever it accepts encodes.
			t.Fatalf("Parse(%q) accepted a change the input form cannot write: %v", data, err)
		}
		back, err := record.Parse(enc)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, its input form %s is refused: %v", data, enc, err)
		}
		again, _ := back.Append(nil, record.FormInput)
		if string(again) != string(enc) {
			t.Fatalf("the input form does not round-trip:\n first %s\nsecond %s", enc, again)
		}
		if !c.OccurredAt.Equal(back.OccurredAt) || !reflect.DeepEqual(c.ChangedSurfaces, back.ChangedSurfaces) && len(c.ChangedSurfaces) > 0 {
			t.Fatalf("round trip changed the change: %+v -> %+v", c, back)
		}
	})
}
