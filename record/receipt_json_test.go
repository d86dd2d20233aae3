package record

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/types"
)

// reflectReceiptJSON is how a receipt was encoded before AppendJSON: the
// reference its bytes must equal.
func reflectReceiptJSON(r Receipt) ([]byte, error) {
	type plain Receipt // no MarshalJSON
	return json.Marshal(struct {
		plain
		OccurredAt  string `json:"occurred_at"`
		CommittedAt string `json:"committed_at"`
	}{plain(r), types.FormatTime(r.OccurredAt), types.FormatTime(r.CommittedAt)})
}

func TestReceiptJSONIsTheReflectiveEncodingByteForByte(t *testing.T) {
	east := time.FixedZone("east", 3600)
	for _, r := range []Receipt{
		{},
		{Sequence: 1, EventID: "01937f5e-7c1a-7000-8000-000000000001", OccurredAt: time.Date(2026, 11, 26, 17, 51, 57, 123456789, east),
			CommittedAt: time.Date(2026, 11, 26, 16, 51, 57, 123456790, time.UTC), Surface: "runtime_work_session", Durable: true},
		{Sequence: 1<<64 - 1, EventID: `a<b>&"\` + "\u2028\x01", Surface: "s", Duplicate: true, Redactions: -3, MetadataTrimmed: true},
		{Sequence: 7, Redactions: 1 << 40, OccurredAt: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		want, err := reflectReceiptJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("receipt %+v:\n got %s\nwant %s", r, got, want)
		}
		if app := r.AppendJSON([]byte("x")); string(app) != "x"+string(want) {
			t.Errorf("AppendJSON appends %s, want x%s", app, want)
		}
	}
}

func BenchmarkReceiptJSON(b *testing.B) {
	r := Receipt{Sequence: 12345, EventID: "01937f5e-7c1a-7000-8000-000000000001", OccurredAt: time.Now(), CommittedAt: time.Now(),
		Surface: "runtime_work_session", Durable: true}
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := reflectReceiptJSON(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		b.ReportAllocs()
		for range b.N {
			buf = r.AppendJSON(buf[:0])
		}
	})
}
