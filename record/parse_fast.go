package record

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/internal/parse"
)

// parseFast decodes the usual shape of a change, which every writer
// sends: one JSON object of known fields with plain values. It returns ok
// false for anything else (an unknown, repeated or escaped key, a string
// with an escape, null, a wrong type, sequence or committed_at present, a
// bad timestamp, a number encoding/json would refuse, nesting past
// fastMaxDepth, anything after the object) and ParseChange then takes its
// encoding/json path, which gives the precise answer. When ok is true the
// Change is exactly what that path decodes: the fuzz target and
// TestParseChangeFastAgreesWithEncodingJSON hold the two to each other.
// It saves ParseChange's decoders, reflection and the second decode of
// metadata: most of the allocations of an HTTP write (see bench/README.md).
func parseFast(data []byte) (Change, bool) { return fastChange(data, false) }

// decodeFast is the same direct parser for a record in its stored or
// output form, as decode reads it: sequence and committed_at are fields
// here, and times are read as time.Time reads its JSON. It takes what
// Append writes except strings with escapes (", \, control characters
// and <, >, & as encoding/json escapes them) and lost records; decode
// takes those on its encoding/json path. When ok is true the Change is
// exactly what that path decodes (TestDecodeFastAgreesWithEncodingJSON,
// FuzzDecodeFastAgrees). Every reader — queries, follow streams, the
// relay, the coverage matcher — decodes through it: the encoding/json
// path cost ~6 µs a record and most of a query's allocations.
func decodeFast(data []byte) (Change, bool) { return fastChange(data, true) }

func fastChange(data []byte, stored bool) (Change, bool) {
	p := fastParser{b: data}
	var c Change
	p.ws()
	if !p.eat('{') {
		return Change{}, false
	}
	var seen uint32
	p.ws()
	if p.eat('}') {
		return c, p.end()
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok {
			return Change{}, false
		}
		p.ws()
		if !p.eat(':') {
			return Change{}, false
		}
		p.ws()
		f := fastFieldOf(key)
		if f < 0 || seen&(1<<f) != 0 || !stored && (f == fastSequence || f == fastCommittedAt) {
			return Change{}, false
		}
		seen |= 1 << f
		switch f {
		case fastSequence:
			if c.Sequence, ok = p.uint64(); !ok {
				return Change{}, false
			}
		case fastCommittedAt:
			if c.CommittedAt, ok = p.time(); !ok {
				return Change{}, false
			}
		case fastOccurredAt:
			if stored {
				if c.OccurredAt, ok = p.time(); !ok {
					return Change{}, false
				}
				break
			}
			s, ok := p.rawString()
			if !ok {
				return Change{}, false
			}
			if len(s) > 0 {
				t, err := parse.Timestamp(string(s))
				if err != nil {
					return Change{}, false
				}
				c.OccurredAt = t
			}
		case fastChangedSurfaces:
			if c.ChangedSurfaces, ok = p.stringArray(); !ok {
				return Change{}, false
			}
		case fastMutates:
			switch {
			case p.lit("true"):
				c.MutatesAuthorityState = true
			case p.lit("false"):
			default:
				return Change{}, false
			}
		case fastMetadata:
			if p.peek() != '{' {
				return Change{}, false
			}
			v, ok := p.value(1)
			if !ok {
				return Change{}, false
			}
			c.Metadata = v.(map[string]any)
		default:
			s, ok := p.rawString()
			if !ok {
				return Change{}, false
			}
			v := string(s)
			switch f {
			case fastSchemaVersion:
				c.SchemaVersion = v
			case fastEventID:
				c.EventID = v
			case fastSource:
				c.Source = v
			case fastSurface:
				c.Surface = v
			case fastChangeType:
				c.ChangeType = v
			case fastAggregateType:
				c.AggregateType = v
			case fastAggregateID:
				c.AggregateID = v
			case fastSeverity:
				c.Severity = v
			case fastSnapshotHint:
				c.SnapshotHint = v
			case fastArtifactRef:
				c.ArtifactRef = v
			case fastCorrelationID:
				c.CorrelationID = v
			case fastCausationID:
				c.CausationID = v
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return c, p.end()
		}
		return Change{}, false
	}
}

// Fields the fast path decodes; sequence and committed_at only in the
// stored form (in a writer's change they are an error the slow path
// words).
const (
	fastSchemaVersion = iota
	fastEventID
	fastOccurredAt
	fastSource
	fastSurface
	fastChangeType
	fastAggregateType
	fastAggregateID
	fastChangedSurfaces
	fastSeverity
	fastSnapshotHint
	fastMutates
	fastArtifactRef
	fastCorrelationID
	fastCausationID
	fastMetadata
	fastSequence
	fastCommittedAt
)

func fastFieldOf(key []byte) int {
	switch string(key) {
	case "schema_version":
		return fastSchemaVersion
	case "event_id":
		return fastEventID
	case "occurred_at":
		return fastOccurredAt
	case "source":
		return fastSource
	case "surface":
		return fastSurface
	case "change_type":
		return fastChangeType
	case "aggregate_type":
		return fastAggregateType
	case "aggregate_id":
		return fastAggregateID
	case "changed_surfaces":
		return fastChangedSurfaces
	case "severity":
		return fastSeverity
	case "snapshot_hint":
		return fastSnapshotHint
	case "mutates_authority_state":
		return fastMutates
	case "artifact_ref":
		return fastArtifactRef
	case "correlation_id":
		return fastCorrelationID
	case "causation_id":
		return fastCausationID
	case "metadata":
		return fastMetadata
	case "sequence":
		return fastSequence
	case "committed_at":
		return fastCommittedAt
	}
	return -1
}

// fastMaxDepth bounds the metadata nesting the fast path follows; deeper
// values take the slow path (which trims them by the bounds anyway). It
// must stay below maxParseDepth: ParseChange skips scanChangeJSON for
// what the fast path accepts, so nothing it accepts may need a cut.
const fastMaxDepth = 32

var _ = [maxParseDepth - fastMaxDepth]struct{}{} // compile-time: fastMaxDepth <= maxParseDepth

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// end reports whether only white space follows.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// rawString reads a JSON string without escapes or control characters
// and returns its bytes (valid UTF-8, as encoding/json would copy them).
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false // encoding/json would replace it
			}
			p.i += size
		default:
			p.i++
		}
	}
	return nil, false
}

func (p *fastParser) stringArray() ([]string, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []string{}
	p.ws()
	if p.eat(']') {
		return out, true
	}
	for {
		p.ws()
		s, ok := p.rawString()
		if !ok {
			return nil, false
		}
		out = append(out, string(s))
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return out, true
		}
		return nil, false
	}
}

// value reads a metadata value as encoding/json with UseNumber decodes it
// into an any: map[string]any, []any, string, json.Number, bool, nil.
func (p *fastParser) value(depth int) (any, bool) {
	if depth > fastMaxDepth {
		return nil, false
	}
	switch c := p.peek(); {
	case c == '{':
		p.i++
		m := make(map[string]any, 8) // one group: no growth for the usual few keys
		p.ws()
		if p.eat('}') {
			return m, true
		}
		for {
			p.ws()
			k, ok := p.rawString()
			if !ok {
				return nil, false
			}
			p.ws()
			if !p.eat(':') {
				return nil, false
			}
			p.ws()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			n := len(m)
			if m[string(k)] = v; len(m) == n {
				return nil, false // a repeated key: encoding/json keeps the last; let it
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				return m, true
			}
			return nil, false
		}
	case c == '[':
		p.i++
		a := []any{}
		p.ws()
		if p.eat(']') {
			return a, true
		}
		for {
			p.ws()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(']') {
				return a, true
			}
			return nil, false
		}
	case c == '"':
		s, ok := p.rawString()
		if !ok {
			return nil, false
		}
		return string(s), true
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case p.lit("true"):
		return true, true
	case p.lit("false"):
		return false, true
	case p.lit("null"):
		return nil, true
	}
	return nil, false
}

// uint64 reads a JSON integer as encoding/json decodes it into a uint64:
// digits only, no leading zero, in range; anything else (a sign, a
// fraction, an exponent) is left to the slow path, which refuses it.
func (p *fastParser) uint64() (uint64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	d := p.b[start:p.i]
	if len(d) == 0 || len(d) > 1 && d[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d), 10, 64)
	return n, err == nil
}

// number reads a JSON number by the grammar encoding/json enforces and
// returns it as the json.Number UseNumber gives.
func (p *fastParser) number() (any, bool) {
	start := p.i
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.eat('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		digits()
	default:
		return nil, false
	}
	if p.eat('.') && digits() == 0 {
		return nil, false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return json.Number(p.b[start:p.i]), true
}
