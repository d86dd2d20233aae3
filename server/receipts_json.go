package server

import (
	"encoding/json"

	"github.com/agentruntime/statejournal/engine"
	rec "github.com/agentruntime/statejournal/record"
)

// UnmarshalJSON decodes the answer of POST /v1/changes. The server's own
// shape (writeReceipts: Receipt.AppendJSON's field order, plain strings)
// is read directly, without reflection, since a client decodes one receipt
// per change it sends; anything else goes through encoding/json, whose
// answer (and error) stands. TestReceiptsBodyDecodesAsEncodingJSONDoes
// holds the two equal.
func (b *ReceiptsBody) UnmarshalJSON(data []byte) error {
	if rs, ok := decodeReceiptsFast(data); ok {
		b.Receipts = rs
		return nil
	}
	type plain ReceiptsBody
	return json.Unmarshal(data, (*plain)(b))
}

// decodeReceiptsFast reads {"receipts":[...]} written by writeReceipts
// (rec.Receipt.AppendJSON for each); ok is false at the first byte
// that differs from that shape.
func decodeReceiptsFast(data []byte) ([]engine.Receipt, bool) {
	const open = `{"receipts":`
	if len(data) < len(open) || string(data[:len(open)]) != open {
		return nil, false
	}
	rs, n, ok := rec.ReadReceipts(data[len(open):])
	if !ok {
		return nil, false
	}
	rest := data[len(open)+n:]
	if len(rest) == 0 || rest[0] != '}' {
		return nil, false
	}
	for _, c := range rest[1:] {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return nil, false
		}
	}
	return rs, true
}
