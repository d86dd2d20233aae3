package record

import (
	"strconv"
	"time"
)

// ReadReceipts reads a JSON array of receipts exactly as AppendJSON
// writes them (its field order, no white space, strings without escapes
// and times that time.Time decodes), starting at data[0] == '['. It
// returns the receipts and the length of the array, or ok false at the
// first byte that differs from that shape: the caller then decodes with
// encoding/json, whose answer (and error) stands. It saves a client the
// reflection of one receipt per change it sent (the server's
// POST /v1/changes answer).
func ReadReceipts(data []byte) (rs []Receipt, n int, ok bool) {
	p := fastParser{b: data}
	if !p.eat('[') {
		return nil, 0, false
	}
	rs = []Receipt{}
	if p.eat(']') {
		return rs, p.i, true
	}
	for {
		var r Receipt
		if !p.lit(`{"sequence":`) {
			return nil, 0, false
		}
		if r.Sequence, ok = p.uint(); !ok || !p.lit(`,"event_id":`) {
			return nil, 0, false
		}
		if r.EventID, ok = p.str(); !ok || !p.lit(`,"surface":`) {
			return nil, 0, false
		}
		if r.Surface, ok = p.str(); !ok || !p.lit(`,"durable":`) {
			return nil, 0, false
		}
		if r.Durable, ok = p.bool(); !ok || !p.lit(`,"duplicate":`) {
			return nil, 0, false
		}
		if r.Duplicate, ok = p.bool(); !ok || !p.lit(`,"redactions":`) {
			return nil, 0, false
		}
		if r.Redactions, ok = p.int(); !ok || !p.lit(`,"metadata_trimmed":`) {
			return nil, 0, false
		}
		if r.MetadataTrimmed, ok = p.bool(); !ok || !p.lit(`,"occurred_at":`) {
			return nil, 0, false
		}
		if r.OccurredAt, ok = p.time(); !ok || !p.lit(`,"committed_at":`) {
			return nil, 0, false
		}
		if r.CommittedAt, ok = p.time(); !ok || !p.eat('}') {
			return nil, 0, false
		}
		rs = append(rs, r)
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return rs, p.i, true
		}
		return nil, 0, false
	}
}

// digits returns the run of ASCII digits (and a leading minus when
// signed) at the parser's position.
func (p *fastParser) digits(signed bool) string {
	start := p.i
	if signed && p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return string(p.b[start:p.i])
}

func (p *fastParser) uint() (uint64, bool) {
	s := p.digits(false)
	if len(s) > 1 && s[0] == '0' {
		return 0, false // not JSON
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func (p *fastParser) int() (int, bool) {
	s := p.digits(true)
	if len(s) > 1 && s[0] == '0' || len(s) > 2 && s[:2] == "-0" {
		return 0, false // not JSON
	}
	v, err := strconv.ParseInt(s, 10, strconv.IntSize)
	return int(v), err == nil
}

func (p *fastParser) bool() (bool, bool) {
	switch {
	case p.lit("true"):
		return true, true
	case p.lit("false"):
		return false, true
	}
	return false, false
}

// str reads a JSON string that holds no escape, control character or byte
// outside ASCII (which encoding/json might rewrite).
func (p *fastParser) str() (string, bool) {
	start := p.i
	s, ok := p.rawString()
	if !ok {
		return "", false
	}
	for _, c := range s {
		if c >= 0x80 {
			p.i = start
			return "", false
		}
	}
	return string(s), true
}

// time decodes a time as encoding/json does: time.Time's own UnmarshalJSON.
func (p *fastParser) time() (time.Time, bool) {
	start := p.i
	if _, ok := p.rawString(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	if t.UnmarshalJSON(p.b[start:p.i]) != nil {
		return time.Time{}, false
	}
	return t, true
}
