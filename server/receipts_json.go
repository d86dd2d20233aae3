package server

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/engine"
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

// decodeReceiptsFast reads {"receipts":[...]} written by writeReceipts. It
// returns ok false at the first byte that differs from that shape.
func decodeReceiptsFast(data []byte) ([]engine.Receipt, bool) {
	p := receiptScanner{b: data}
	if !p.lit(`{"receipts":[`) {
		return nil, false
	}
	out := []engine.Receipt{}
	if p.lit("]}") {
		return out, p.end()
	}
	for {
		var r engine.Receipt
		var ok bool
		if !p.lit(`{"sequence":`) {
			return nil, false
		}
		if r.Sequence, ok = p.uint(); !ok || !p.lit(`,"event_id":`) {
			return nil, false
		}
		if r.EventID, ok = p.str(); !ok || !p.lit(`,"surface":`) {
			return nil, false
		}
		if r.Surface, ok = p.str(); !ok || !p.lit(`,"durable":`) {
			return nil, false
		}
		if r.Durable, ok = p.bool(); !ok || !p.lit(`,"duplicate":`) {
			return nil, false
		}
		if r.Duplicate, ok = p.bool(); !ok || !p.lit(`,"redactions":`) {
			return nil, false
		}
		if r.Redactions, ok = p.int(); !ok || !p.lit(`,"metadata_trimmed":`) {
			return nil, false
		}
		if r.MetadataTrimmed, ok = p.bool(); !ok || !p.lit(`,"occurred_at":`) {
			return nil, false
		}
		if r.OccurredAt, ok = p.time(); !ok || !p.lit(`,"committed_at":`) {
			return nil, false
		}
		if r.CommittedAt, ok = p.time(); !ok || !p.lit("}") {
			return nil, false
		}
		out = append(out, r)
		if p.lit(",") {
			continue
		}
		if p.lit("]}") {
			return out, p.end()
		}
		return nil, false
	}
}

type receiptScanner struct {
	b []byte
	i int
}

func (p *receiptScanner) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// end reports whether only white space follows.
func (p *receiptScanner) end() bool {
	for ; p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
		default:
			return false
		}
	}
	return true
}

// digits returns the run of ASCII digits (and a leading minus when
// signed) at the scanner's position.
func (p *receiptScanner) digits(signed bool) string {
	start := p.i
	if signed && p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return string(p.b[start:p.i])
}

func (p *receiptScanner) uint() (uint64, bool) {
	s := p.digits(false)
	if len(s) > 1 && s[0] == '0' {
		return 0, false // not JSON
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func (p *receiptScanner) int() (int, bool) {
	s := p.digits(true)
	if len(s) > 1 && s[0] == '0' || len(s) > 2 && s[:2] == "-0" {
		return 0, false // not JSON
	}
	v, err := strconv.ParseInt(s, 10, strconv.IntSize)
	return int(v), err == nil
}

func (p *receiptScanner) bool() (bool, bool) {
	switch {
	case p.lit("true"):
		return true, true
	case p.lit("false"):
		return false, true
	}
	return false, false
}

// quoted returns a JSON string with its quotes when it holds no escape,
// control character or byte outside ASCII (which encoding/json might
// rewrite); else ok is false.
func (p *receiptScanner) quoted() ([]byte, bool) {
	start := p.i
	if !p.lit(`"`) {
		return nil, false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			return p.b[start:p.i], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (p *receiptScanner) str() (string, bool) {
	q, ok := p.quoted()
	if !ok {
		return "", false
	}
	return string(q[1 : len(q)-1]), true
}

// time decodes a time as encoding/json does: time.Time's own UnmarshalJSON.
func (p *receiptScanner) time() (time.Time, bool) {
	var t time.Time
	q, ok := p.quoted()
	if !ok || t.UnmarshalJSON(q) != nil {
		return time.Time{}, false
	}
	return t, true
}
