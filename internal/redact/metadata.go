package redact

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/agentruntime/statejournal/types"
)

// Limits bound metadata. A zero field means "use the default"; a positive
// field below its floor is raised to the floor (see the Min* constants) so
// that the markers this package writes always fit.
type Limits struct {
	MaxKeys         int // total keys across all levels, "_trimmed" included; default 32
	MaxDepth        int // nesting depth of objects and arrays, the top-level object is depth 1; default 3, at most MaxMaxDepth
	MaxKeyBytes     int // bytes of one key; default 64
	MaxStringBytes  int // bytes of one string value, truncation suffix included; default 256
	MaxEncodedBytes int // bytes of the whole metadata as encoding/json.Marshal writes it; default 2048
}

// Defaults and floors of Limits.
const (
	DefaultMaxKeys         = 32
	DefaultMaxDepth        = 3
	DefaultMaxKeyBytes     = 64
	DefaultMaxStringBytes  = 256
	DefaultMaxEncodedBytes = 2048

	// MaxMaxDepth caps MaxDepth: deeper metadata is always trimmed.
	MaxMaxDepth = 64

	MinMaxKeyBytes     = 32 // every marker fits (a key that is a secret becomes one)
	MinMaxStringBytes  = 32 // every marker and the truncation suffix fit
	MinMaxEncodedBytes = 64 // {"_trimmed":true} and a little more fit
)

// Marks written into trimmed metadata.
const (
	// TrimmedKey is the top-level key set to true when any bound was hit.
	// It counts against MaxKeys and MaxEncodedBytes. An input key of the
	// same name is kept: untouched when nothing is trimmed, else renamed
	// to "_trimmed~1" (the first free "~N") beside the mark. The receipt's
	// metadata_trimmed flag is the authoritative answer.
	TrimmedKey = "_trimmed"
	// TruncatedSuffix ends a string value cut to MaxStringBytes; the cut
	// string including the suffix is at most MaxStringBytes bytes.
	TruncatedSuffix = "…[TRUNCATED]"
	// DepthMarker replaces an object or array nested deeper than MaxDepth.
	DepthMarker = "[TRUNCATED:depth]"
)

// DefaultLimits returns the SPEC section 2 bounds: 32 keys, depth 3, keys of
// 64 bytes, strings of 256 bytes, 2 KiB encoded.
func DefaultLimits() Limits {
	return Limits{
		MaxKeys:         DefaultMaxKeys,
		MaxDepth:        DefaultMaxDepth,
		MaxKeyBytes:     DefaultMaxKeyBytes,
		MaxStringBytes:  DefaultMaxStringBytes,
		MaxEncodedBytes: DefaultMaxEncodedBytes,
	}
}

// Normalized returns l with defaults filled in and floors applied; it is
// the set of bounds Metadata enforces.
func (l Limits) Normalized() Limits {
	def := func(v, d, floor int) int {
		if v <= 0 {
			return d
		}
		return max(v, floor)
	}
	return Limits{
		MaxKeys:         def(l.MaxKeys, DefaultMaxKeys, 1),
		MaxDepth:        min(def(l.MaxDepth, DefaultMaxDepth, 1), MaxMaxDepth),
		MaxKeyBytes:     def(l.MaxKeyBytes, DefaultMaxKeyBytes, MinMaxKeyBytes),
		MaxStringBytes:  def(l.MaxStringBytes, DefaultMaxStringBytes, MinMaxStringBytes),
		MaxEncodedBytes: def(l.MaxEncodedBytes, DefaultMaxEncodedBytes, MinMaxEncodedBytes),
	}
}

// Report says what Metadata did. The zero Report means the metadata was
// returned untouched.
type Report struct {
	Redactions int          // values (and keys) replaced by a marker
	Kinds      map[Kind]int // redactions by kind; nil when Redactions == 0
	Trimmed    bool         // some bound was hit and the metadata was cut (TrimmedKey is set)

	DroppedKeys      int // keys left out, nested keys of dropped values included: over MaxKeys or MaxEncodedBytes, duplicates after a cut, unencodable values
	DroppedValues    int // array elements left out: over MaxEncodedBytes, unencodable
	TruncatedKeys    int // keys cut to MaxKeyBytes
	RenamedKeys      int // keys written as key~N: equal to an earlier key after a cut or redaction, or a user "_trimmed" beside the mark
	TruncatedStrings int // string values cut to MaxStringBytes
	DepthCuts        int // objects/arrays replaced by DepthMarker
	Converted        int // values rewritten so they encode as JSON (NaN, ±Inf, invalid json.Number, other Go types)
}

func (r *Report) redacted(k Kind) {
	r.Redactions++
	if r.Kinds == nil {
		r.Kinds = make(map[Kind]int, 1)
	}
	r.Kinds[k]++
}

func (r *Report) trimmed() bool {
	return r.DroppedKeys+r.DroppedValues+r.TruncatedKeys+r.TruncatedStrings+r.DepthCuts > 0
}

// Metadata returns a bounded, redacted copy of m; m is never modified.
//
// Hot path: when m holds no secret and is within lim, Metadata returns m
// itself and a zero Report, without allocating.
//
// Otherwise it builds a copy, visiting keys in sorted order, depth first
// (the output is a pure function of m and lim):
//
//   - A key that names a secret (IsSecretKey) keeps its key; its value,
//     whatever its type, becomes Marker(kind) — the kind of the token when a
//     string value is one, else KindSecretKey. nil, "" and markers stay.
//   - A key that itself looks like a secret (String) is replaced by its
//     marker (and its value is redacted when the marker names a secret,
//     e.g. "[REDACTED:github_token]").
//   - String values go through String; a value that looks like a secret
//     becomes its marker.
//   - Only then bounds apply. A key over MaxKeyBytes is cut at a UTF-8
//     boundary and checked again (a cut key that now names or looks like a
//     secret is treated as such). A key equal to an earlier one after a
//     cut or a redaction is written as key~N (the smallest free N, cut to
//     fit MaxKeyBytes), so a collision never loses a value. A string over
//     MaxStringBytes is cut at a UTF-8 boundary and ends with
//     TruncatedSuffix (rechecked by String after the cut). An object or
//     array deeper than MaxDepth becomes DepthMarker.
//   - MaxKeys and MaxEncodedBytes keep the longest prefix, in that order, of
//     the keys and array elements that fits: everything after the first
//     entry that would break a bound is dropped.
//   - Values encode as JSON: NaN and ±Inf become the strings "NaN", "+Inf",
//     "-Inf"; an invalid json.Number becomes a string; []string and
//     map[string]string become []any and map[string]any; any other type is
//     passed through encoding/json (Marshal, then Unmarshal with UseNumber)
//     and dropped when that fails (funcs, channels, cycles).
//   - When any bound was hit, the result carries TrimmedKey: true, and the
//     bounds were applied with room kept for it, so the output including
//     the mark is within every bound.
//
// The Report counts redactions, cuts and conversions of what was written
// only; entries left out are counted in DroppedKeys and DroppedValues.
//
// Metadata is idempotent: Metadata(out) returns out itself.
func Metadata(m map[string]any, lim Limits) (map[string]any, Report) {
	if len(m) == 0 {
		return m, Report{}
	}
	lim = lim.Normalized()
	c := checker{lim: lim}
	if size, ok := c.object(m, 1); ok && size <= lim.MaxEncodedBytes {
		return m, Report{}
	}
	out, rep := build(m, lim, false)
	if rep.Trimmed {
		out, rep = build(m, lim, true)
		out[TrimmedKey] = true
	}
	return out, rep
}

// checker is the allocation-free hot path: it walks m and reports its
// encoded size and whether it can be returned as it is.
type checker struct {
	lim  Limits
	keys int
}

func (c *checker) object(m map[string]any, depth int) (int, bool) {
	if depth > c.lim.MaxDepth {
		return 0, false
	}
	size := 2
	for k, v := range m {
		if !c.key(k, v) {
			return 0, false
		}
		vs, ok := c.value(v, depth+1)
		if !ok {
			return 0, false
		}
		size += jsonStringSize(k) + 1 + vs
	}
	if len(m) > 1 {
		size += len(m) - 1
	}
	return size, true
}

func (c *checker) key(k string, v any) bool {
	c.keys++
	if c.keys > c.lim.MaxKeys || len(k) > c.lim.MaxKeyBytes || detect(k) != "" {
		return false
	}
	return !IsSecretKey(k) || keptUnderSecretKey(v)
}

// str checks one string value (strings are passed unboxed: converting a
// string to an interface would allocate).
func (c *checker) str(s string) (int, bool) {
	if len(s) > c.lim.MaxStringBytes || detect(s) != "" {
		return 0, false
	}
	return jsonStringSize(s), true
}

func (c *checker) value(v any, depth int) (int, bool) {
	switch x := v.(type) {
	case string:
		return c.str(x)
	case map[string]any:
		return c.object(x, depth)
	case []any:
		if depth > c.lim.MaxDepth {
			return 0, false
		}
		size := 2
		for _, e := range x {
			es, ok := c.value(e, depth+1)
			if !ok {
				return 0, false
			}
			size += es
		}
		if len(x) > 1 {
			size += len(x) - 1
		}
		return size, true
	case []string:
		if depth > c.lim.MaxDepth {
			return 0, false
		}
		size := 2
		for _, e := range x {
			es, ok := c.str(e)
			if !ok {
				return 0, false
			}
			size += es
		}
		if len(x) > 1 {
			size += len(x) - 1
		}
		return size, true
	case map[string]string:
		if depth > c.lim.MaxDepth {
			return 0, false
		}
		size := 2
		for k, e := range x {
			c.keys++
			if c.keys > c.lim.MaxKeys || len(k) > c.lim.MaxKeyBytes || detect(k) != "" ||
				IsSecretKey(k) && e != "" && !IsMarker(e) {
				return 0, false
			}
			es, ok := c.str(e)
			if !ok {
				return 0, false
			}
			size += jsonStringSize(k) + 1 + es
		}
		if len(x) > 1 {
			size += len(x) - 1
		}
		return size, true
	}
	return scalarSize(v)
}

// keptUnderSecretKey reports whether a value under a secret key has nothing
// to hide: nil, "" or a marker.
func keptUnderSecretKey(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == "" || IsMarker(x)
	}
	return false
}

// builder makes the bounded, redacted copy (the slow path).
type builder struct {
	lim     Limits
	maxKeys int
	maxSize int
	keys    int  // keys emitted so far
	size    int  // encoded size of what was emitted so far
	stopped bool // a budget was hit: every later entry is dropped
	reserve bool // TrimmedKey is reserved at the top level
	rep     Report
	pend    effects // what the entry being prepared did; counted only if it is emitted
}

// effects is what preparing one entry did. It reaches the Report only when
// the entry is emitted, so a dropped entry is counted as dropped, not as
// redacted or cut.
type effects struct {
	kinds           [2]Kind // a redacted key and a redacted value
	nkinds          int
	truncatedKey    bool
	renamedKey      bool
	truncatedString bool
	depthCut        bool
	converted       int
}

func (e *effects) redacted(k Kind) {
	e.kinds[e.nkinds] = k
	e.nkinds++
}

// emit moves the pending effects into the report.
func (b *builder) emit() {
	for _, k := range b.pend.kinds[:b.pend.nkinds] {
		b.rep.redacted(k)
	}
	if b.pend.truncatedKey {
		b.rep.TruncatedKeys++
	}
	if b.pend.renamedKey {
		b.rep.RenamedKeys++
	}
	if b.pend.truncatedString {
		b.rep.TruncatedStrings++
	}
	if b.pend.depthCut {
		b.rep.DepthCuts++
	}
	b.rep.Converted += b.pend.converted
	b.pend = effects{}
}

// taken reports whether key cannot be written at this level: an earlier
// entry has it, or it is the top-level trim mark's name while the mark is
// reserved.
func (b *builder) taken(out map[string]any, key string, depth int) bool {
	if _, dup := out[key]; dup {
		return true
	}
	return depth == 1 && b.reserve && key == TrimmedKey
}

// freeKey returns key with the smallest suffix "~N" (N = 1, 2, ...) that
// is free at this level, the key cut on a UTF-8 boundary so the whole
// fits MaxKeyBytes.
func (b *builder) freeKey(out map[string]any, key string, depth int) string {
	for n := 1; ; n++ {
		suffix := "~" + strconv.Itoa(n)
		cand := cutUTF8(key, b.lim.MaxKeyBytes-len(suffix)) + suffix
		if !b.taken(out, cand, depth) {
			return cand
		}
	}
}

// trimmedEntrySize is the room `,"_trimmed":true` takes.
var trimmedEntrySize = 1 + jsonStringSize(TrimmedKey) + 1 + 4

func build(m map[string]any, lim Limits, reserve bool) (map[string]any, Report) {
	b := builder{lim: lim, maxKeys: lim.MaxKeys, maxSize: lim.MaxEncodedBytes, reserve: reserve, size: 2}
	if reserve {
		b.maxKeys--
		b.maxSize -= trimmedEntrySize
	}
	out := make(map[string]any, min(len(m), lim.MaxKeys))
	b.fillObject(m, out, 1)
	b.rep.Trimmed = b.rep.trimmed()
	return out, b.rep
}

func (b *builder) fillObject(in map[string]any, out map[string]any, depth int) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := in[k]
		if b.stopped {
			b.rep.DroppedKeys += 1 + countKeys(v)
			continue
		}
		b.pend = effects{}
		outKey := k
		if kind := detect(k); kind != "" {
			outKey = Marker(kind)
			b.pend.redacted(kind)
		} else if len(k) > b.lim.MaxKeyBytes {
			outKey = cutUTF8(k, b.lim.MaxKeyBytes)
			b.pend.truncatedKey = true
			if kind := detect(outKey); kind != "" {
				outKey = Marker(kind)
				b.pend.redacted(kind)
			}
		}
		// Both the input key and the key written decide, so that running
		// Metadata on its own output changes nothing.
		secret := IsSecretKey(k) || outKey != k && IsSecretKey(outKey)
		if b.taken(out, outKey, depth) {
			// Two keys equal after a cut (or two secret keys replaced by
			// the same marker), or the user's own "_trimmed" where the mark
			// goes: the later key in sorted order is kept under the first
			// free name with a "~N" suffix, within MaxKeyBytes, so no value
			// is lost to a collision.
			outKey = b.freeKey(out, outKey, depth)
			b.pend.renamedKey = true
			secret = secret || IsSecretKey(outKey)
		}
		var val, cont any
		if secret && !keptUnderSecretKey(v) {
			kind := KindSecretKey
			if s, ok := v.(string); ok {
				if k := detect(s); k != "" {
					kind = k
				}
			}
			val = Marker(kind)
			b.pend.redacted(kind)
		} else {
			var ok bool
			val, cont, ok = b.prepare(v, depth+1)
			if !ok {
				b.rep.DroppedKeys++
				continue
			}
		}
		entry := jsonStringSize(outKey) + 1 + valueBaseSize(val, cont)
		if len(out) > 0 {
			entry++
		}
		if b.keys+1 > b.maxKeys || b.size+entry > b.maxSize {
			b.stopped = true
			b.rep.DroppedKeys += 1 + countKeys(v)
			continue
		}
		b.emit()
		b.keys++
		b.size += entry
		switch c := cont.(type) {
		case map[string]any:
			child := make(map[string]any, min(len(c), b.maxKeys-b.keys))
			out[outKey] = child
			b.fillObject(c, child, depth+1)
		case []any:
			out[outKey] = b.fillArray(c, depth+1)
		default:
			out[outKey] = val
		}
	}
}

func (b *builder) fillArray(in []any, depth int) []any {
	out := make([]any, 0, min(len(in), 16))
	for _, v := range in {
		if b.stopped {
			b.rep.DroppedValues++
			b.rep.DroppedKeys += countKeys(v)
			continue
		}
		b.pend = effects{}
		val, cont, ok := b.prepare(v, depth+1)
		if !ok {
			b.rep.DroppedValues++
			continue
		}
		entry := valueBaseSize(val, cont)
		if len(out) > 0 {
			entry++
		}
		if b.size+entry > b.maxSize {
			b.stopped = true
			b.rep.DroppedValues++
			b.rep.DroppedKeys += countKeys(v)
			continue
		}
		b.emit()
		b.size += entry
		switch c := cont.(type) {
		case map[string]any:
			child := make(map[string]any, min(len(c), b.maxKeys-b.keys))
			out = append(out, child)
			b.fillObject(c, child, depth+1)
		case []any:
			out = append(out, b.fillArray(c, depth+1))
		default:
			out = append(out, val)
		}
	}
	return out
}

// prepare turns an input value that will sit at depth into either a final
// scalar (val) or a container to fill (cont: map[string]any or []any). ok
// is false for a value that cannot be encoded as JSON.
func (b *builder) prepare(v any, depth int) (val, cont any, ok bool) {
	v, ok = b.normalize(v)
	if !ok {
		return nil, nil, false
	}
	switch x := v.(type) {
	case string:
		return b.str(x), nil, true
	case map[string]any, []any:
		if depth > b.lim.MaxDepth {
			b.pend.depthCut = true
			return DepthMarker, nil, true
		}
		return nil, x, true
	}
	return v, nil, true
}

// str redacts, then bounds, one string value.
func (b *builder) str(s string) string {
	if kind := detect(s); kind != "" {
		b.pend.redacted(kind)
		return Marker(kind)
	}
	if len(s) <= b.lim.MaxStringBytes {
		return s
	}
	b.pend.truncatedString = true
	cut := cutUTF8(s, b.lim.MaxStringBytes-len(TruncatedSuffix)) + TruncatedSuffix
	if kind := detect(cut); kind != "" {
		b.pend.redacted(kind)
		return Marker(kind)
	}
	return cut
}

// normalize maps v onto the JSON-like types the builder handles.
func (b *builder) normalize(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, string, map[string]any, []any,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return v, true
	case float64:
		if f, ok := nonFinite(x); ok {
			b.pend.converted++
			return f, true
		}
		return v, true
	case float32:
		if f, ok := nonFinite(float64(x)); ok {
			b.pend.converted++
			return f, true
		}
		return v, true
	case json.Number:
		if x != "" && !validNumber(string(x)) {
			b.pend.converted++
			return string(x), true
		}
		return v, true
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return a, true
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m, true
	}
	// Any other Go type: what encoding/json would write, read back.
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, false
	}
	b.pend.converted++
	return out, true
}

func nonFinite(f float64) (string, bool) {
	switch {
	case math.IsNaN(f):
		return "NaN", true
	case math.IsInf(f, 1):
		return "+Inf", true
	case math.IsInf(f, -1):
		return "-Inf", true
	}
	return "", false
}

// valueBaseSize is the encoded size a value adds when it is emitted: its
// whole size for a scalar, "{}" or "[]" for a container whose entries are
// counted as they are emitted.
func valueBaseSize(val, cont any) int {
	if cont != nil {
		return 2
	}
	n, _ := scalarSize(val)
	return n
}

// countKeys counts the keys inside v for the report of what was dropped.
// It visits at most countBudget containers, so a huge or cyclic value
// cannot stall it (the count is then a lower bound).
func countKeys(v any) int {
	budget := countBudget
	return countKeysBudget(v, &budget)
}

const countBudget = 4096

func countKeysBudget(v any, budget *int) int {
	if *budget <= 0 {
		return 0
	}
	n := 0
	switch x := v.(type) {
	case map[string]any:
		*budget--
		for _, e := range x {
			n += 1 + countKeysBudget(e, budget)
		}
	case map[string]string:
		*budget--
		n = len(x)
	case []any:
		*budget--
		for _, e := range x {
			n += countKeysBudget(e, budget)
		}
	}
	return n
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 sequence (types.CutUTF8).
func cutUTF8(s string, n int) string { return types.CutUTF8(s, n) }
