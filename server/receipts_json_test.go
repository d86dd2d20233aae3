package server

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
)

func TestReceiptsBodyDecodesAsEncodingJSONDoes(t *testing.T) {
	at := time.Date(2026, 11, 26, 17, 51, 57, 123456789, time.UTC)
	written := func(rs ...engine.Receipt) string {
		rec := httptest.NewRecorder()
		writeReceipts(rec, rs)
		return rec.Body.String()
	}
	tests := []struct {
		name string
		body string
		fast bool
	}{
		{"what the server writes for one receipt", written(engine.Receipt{Sequence: 1, EventID: "01937f5e-7c1a-7000-8000-000000000001",
			OccurredAt: at, CommittedAt: at.Add(time.Millisecond), Surface: "runtime_work_session", Durable: true}), true},
		{"several, with every flag", written(engine.Receipt{Sequence: 1<<64 - 1, EventID: "a", Surface: "s", Duplicate: true, Redactions: 3, MetadataTrimmed: true},
			engine.Receipt{Sequence: 2, Redactions: -1}), true},
		{"none", `{"receipts":[]}`, true},
		{"an escaped event id", written(engine.Receipt{EventID: `a"b<`}), false},
		{"text outside ASCII", written(engine.Receipt{Surface: "ü"}), false},
		{"another field order", `{"receipts":[{"event_id":"a","sequence":1}]}`, false},
		{"white space", `{ "receipts" : [ ] }`, false},
		{"a leading zero", `{"receipts":[{"sequence":01}]}`, false},
		{"a float where an integer belongs", `{"receipts":[{"sequence":1,"event_id":"a","surface":"s","durable":true,"duplicate":false,"redactions":1e3}]}`, false},
		{"a bad time", `{"receipts":[{"sequence":1,"event_id":"a","surface":"s","durable":true,"duplicate":false,"redactions":0,"metadata_trimmed":false,"occurred_at":"yesterday","committed_at":"x"}]}`, false},
		{"a time with an offset", `{"receipts":[{"sequence":1,"event_id":"a","surface":"s","durable":true,"duplicate":false,"redactions":0,"metadata_trimmed":false,"occurred_at":"2026-11-26T17:51:57+01:00","committed_at":"2026-11-26T17:51:57.5Z"}]}`, true},
		{"something after", `{"receipts":[]} x`, false},
		{"not an object", `[]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := decodeReceiptsFast([]byte(tt.body))
			if ok != tt.fast {
				t.Fatalf("fast path took %s: %v, want %v", tt.body, ok, tt.fast)
			}
			type plain ReceiptsBody
			var want plain
			wantErr := json.Unmarshal([]byte(tt.body), &want)
			var got ReceiptsBody
			err := json.Unmarshal([]byte(tt.body), &got)
			if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got.Receipts, want.Receipts) {
				t.Fatalf("decoded %s as %#v (%v), encoding/json as %#v (%v)", tt.body, got.Receipts, err, want.Receipts, wantErr)
			}
		})
	}
}
