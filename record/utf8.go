package record

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentruntime/statejournal/internal/redact"
	"github.com/agentruntime/statejournal/types"
)

// Every string of a change must be valid UTF-8 (SPEC section 2): invalid
// bytes are refused with an error naming the field, never rewritten.
// encoding/json replaces them (and lone UTF-16 surrogate escapes) by
// U+FFFD while it decodes, which would let two distinct event ids
// collide, so Parse checks the raw JSON first (scanChangeJSON) and
// Record checks the strings of a Go caller's Change (CheckUTF8).

// maxParseDepth is how deep Parse keeps metadata: a container nested
// deeper is replaced by redact.DepthMarker while parsing, so that a deep
// value is trimmed (encoding/json refuses more than 10000 levels) and the
// bounds still mark it: redact.Metadata caps MaxDepth at
// redact.MaxMaxDepth, one level above which the parse cut sits.
const maxParseDepth = redact.MaxMaxDepth + 1

func utf8Err(field, value string, at int, problem string) *types.FieldError {
	return &types.FieldError{Kind: types.ErrInvalid, Field: field, Value: Clip(value),
		Problem: fmt.Sprintf("%s at byte %d; every string must be valid UTF-8", problem, at), Index: -1}
}

// CheckUTF8 returns a *types.FieldError naming the first string of c that
// is not valid UTF-8: a field, an entry of changed_surfaces, or a key or
// string value of metadata (metadata.key.sub[2]). Record calls it first;
// a client that encodes changes for the server calls it before encoding
// them (encoding/json would rewrite the bytes). Metadata is checked as
// deep as it is kept (values below that depth are trimmed anyway).
func (c *Change) CheckUTF8() error {
	for _, f := range [...]struct {
		name, v string
	}{
		{"schema_version", c.SchemaVersion}, {"event_id", c.EventID}, {"source", c.Source}, {"surface", c.Surface},
		{"change_type", c.ChangeType}, {"aggregate_type", c.AggregateType}, {"aggregate_id", c.AggregateID},
		{"severity", c.Severity}, {"snapshot_hint", c.SnapshotHint}, {"artifact_ref", c.ArtifactRef},
		{"correlation_id", c.CorrelationID}, {"causation_id", c.CausationID},
	} {
		if at := invalidAt(f.v); at >= 0 {
			return utf8Err(f.name, f.v, at, "is not valid UTF-8")
		}
	}
	for i, s := range c.ChangedSurfaces {
		if at := invalidAt(s); at >= 0 {
			return utf8Err(fmt.Sprintf("changed_surfaces[%d]", i), s, at, "is not valid UTF-8")
		}
	}
	if len(c.Metadata) > 0 {
		return checkMetadataUTF8("metadata", c.Metadata, 1)
	}
	return nil
}

// invalidAt returns the offset of the first byte of s that is not part of
// a valid UTF-8 sequence, or -1.
func invalidAt(s string) int {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func checkMetadataUTF8(path string, v any, depth int) error {
	if depth > maxParseDepth {
		return nil // trimmed by the bounds; a cyclic value ends here too
	}
	switch x := v.(type) {
	case string:
		if at := invalidAt(x); at >= 0 {
			return utf8Err(path, x, at, "is not valid UTF-8")
		}
	case map[string]any:
		for k, e := range x {
			if at := invalidAt(k); at >= 0 {
				return utf8Err(path, k, at, "has a key that is not valid UTF-8")
			}
			if depth+1 > maxParseDepth {
				continue // as the recursion would: beyond the bounds
			}
			// Scalars are checked here, so the value's path is only built
			// for an error or a nested value: no allocation per key.
			switch v := e.(type) {
			case string:
				if at := invalidAt(v); at >= 0 {
					return utf8Err(path+"."+k, v, at, "is not valid UTF-8")
				}
				continue
			case nil, bool, int, int64, uint64, float64:
				continue
			}
			if err := checkMetadataUTF8(path+"."+k, e, depth+1); err != nil {
				return err
			}
		}
	case map[string]string:
		for k, e := range x {
			if at := invalidAt(k); at >= 0 {
				return utf8Err(path, k, at, "has a key that is not valid UTF-8")
			}
			if at := invalidAt(e); at >= 0 {
				return utf8Err(path+"."+k, e, at, "is not valid UTF-8")
			}
		}
	case []any:
		for i, e := range x {
			if depth+1 > maxParseDepth {
				break // as the recursion would: beyond the bounds
			}
			switch v := e.(type) {
			case string:
				if at := invalidAt(v); at >= 0 {
					return utf8Err(path+"["+strconv.Itoa(i)+"]", v, at, "is not valid UTF-8")
				}
				continue
			case nil, bool, int, int64, uint64, float64:
				continue
			}
			if err := checkMetadataUTF8(path+"["+strconv.Itoa(i)+"]", e, depth+1); err != nil {
				return err
			}
		}
	case []string:
		for i, e := range x {
			if at := invalidAt(e); at >= 0 {
				return utf8Err(path+"["+strconv.Itoa(i)+"]", e, at, "is not valid UTF-8")
			}
		}
	case json.Number: // an invalid number is kept as a string
		if at := invalidAt(string(x)); at >= 0 {
			return utf8Err(path, string(x), at, "is not valid UTF-8")
		}
	case nil, bool, int, int64, uint64, float64:
	default:
		// Another Go type goes through encoding/json, which would rewrite
		// invalid bytes: look at its strings first.
		return checkReflectUTF8(path, reflect.ValueOf(v), depth)
	}
	return nil
}

// checkReflectUTF8 checks the strings encoding/json would write for a
// value of any other Go type (exported struct fields, map keys and
// values, slices, pointers).
func checkReflectUTF8(path string, v reflect.Value, depth int) error {
	if depth > maxParseDepth || !v.IsValid() {
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		if at := invalidAt(v.String()); at >= 0 {
			return utf8Err(path, v.String(), at, "is not valid UTF-8")
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkReflectUTF8(path, v.Elem(), depth)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				if err := checkReflectUTF8(path+"."+f.Name, v.Field(i), depth+1); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			if k.Kind() == reflect.String {
				if at := invalidAt(k.String()); at >= 0 {
					return utf8Err(path, k.String(), at, "has a key that is not valid UTF-8")
				}
			}
			if err := checkReflectUTF8(path+"."+fmt.Sprint(k.Interface()), it.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte encodes as base64
		}
		for i := range v.Len() {
			if err := checkReflectUTF8(path+"["+strconv.Itoa(i)+"]", v.Index(i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// rawFrame is one open object or array while scanChangeJSON walks a body.
type rawFrame struct {
	obj              bool
	wantKey          bool // object: the next string is a key
	keyStart, keyEnd int  // object: raw bytes of the current key
	idx              int  // array: index of the current element
}

// scanChangeJSON walks the raw JSON of one change before encoding/json
// decodes it, without recursion (any depth is fine). It returns a
// *types.FieldError naming the first string that is not valid UTF-8 (or
// holds a lone UTF-16 surrogate escape), and the byte ranges of metadata
// containers nested deeper than maxParseDepth, which Parse replaces
// by the depth marker. It only judges strings: JSON that is malformed
// otherwise is left to the decoder, which says where.
func scanChangeJSON(data []byte) (cuts [][2]int, err error) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil
	}
	var st []rawFrame
	inMeta := func() bool {
		return len(st) >= 1 && string(data[st[0].keyStart:st[0].keyEnd]) == "metadata"
	}
	for i < len(data) {
		i = skipWS(data, i)
		if i >= len(data) {
			break
		}
		switch c := data[i]; c {
		case '{', '[':
			if len(st) > 0 && inMeta() && len(st) > maxParseDepth {
				end := skipContainer(data, i)
				cuts = append(cuts, [2]int{i, end})
				i = end
				continue
			}
			st = append(st, rawFrame{obj: c == '{', wantKey: c == '{'})
			i++
		case '}', ']':
			if len(st) == 0 {
				return cuts, nil
			}
			st = st[:len(st)-1]
			i++
			if len(st) == 0 {
				return cuts, nil // the end of the change
			}
		case ',':
			if len(st) > 0 {
				top := &st[len(st)-1]
				if top.obj {
					top.wantKey = true
				} else {
					top.idx++
				}
			}
			i++
		case ':':
			i++
		case '"':
			end, at, problem := scanString(data, i)
			if len(st) > 0 && st[len(st)-1].obj && st[len(st)-1].wantKey {
				top := &st[len(st)-1]
				top.wantKey = false
				top.keyStart, top.keyEnd = i+1, max(i+1, end-1)
				if problem != "" {
					field := "body"
					if len(st) > 1 {
						field = rawPath(data, st[:len(st)-1])
					}
					return cuts, utf8Err(field, string(data[i+1:max(i+1, end-1)]), at, "has a key that "+problem)
				}
			} else if problem != "" {
				return cuts, utf8Err(rawPath(data, st), string(data[i+1:max(i+1, end-1)]), at, problem)
			}
			i = end
		default:
			// A number or literal: up to the next delimiter.
			for i < len(data) && !strings.ContainsRune(",]}: \t\r\n", rune(data[i])) {
				i++
			}
		}
	}
	return cuts, nil
}

// rawPath names the value the innermost frame of st is at:
// aggregate_id, changed_surfaces[1], metadata.a.b[2].
func rawPath(data []byte, st []rawFrame) string {
	var b strings.Builder
	for k, f := range st {
		if f.obj {
			if k > 0 {
				b.WriteByte('.')
			}
			b.Write(data[f.keyStart:f.keyEnd])
		} else {
			if k == 0 {
				b.WriteString("body")
			}
			fmt.Fprintf(&b, "[%d]", f.idx)
		}
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// scanString scans the JSON string starting at data[i] (a quote). It
// returns the index after its closing quote and, for the first string
// problem, the byte offset in the decoded string and what is wrong.
func scanString(data []byte, i int) (end, at int, problem string) {
	j, pos := i+1, 0
	for j < len(data) {
		c := data[j]
		switch {
		case c == '"':
			return j + 1, 0, ""
		case c == '\\':
			if j+1 >= len(data) {
				return len(data), 0, ""
			}
			if data[j+1] != 'u' {
				j += 2
				pos++
				continue
			}
			r, ok := hex4(data, j+2)
			if !ok {
				return len(data), 0, "" // malformed: the decoder says so
			}
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				if j+12 <= len(data) && data[j+6] == '\\' && data[j+7] == 'u' {
					if lo, ok := hex4(data, j+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						j += 12
						pos += 4
						continue
					}
				}
				return skipString(data, j), pos, fmt.Sprintf("holds a lone UTF-16 surrogate escape \\u%04X, which is not valid UTF-8,", r)
			case r >= 0xDC00 && r <= 0xDFFF:
				return skipString(data, j), pos, fmt.Sprintf("holds a lone UTF-16 surrogate escape \\u%04X, which is not valid UTF-8,", r)
			}
			j += 6
			pos += utf8.RuneLen(rune(r))
		case c < utf8.RuneSelf:
			j++
			pos++
		default:
			r, size := utf8.DecodeRune(data[j:])
			if r == utf8.RuneError && size == 1 {
				return skipString(data, j), pos, "is not valid UTF-8"
			}
			j += size
			pos += size
		}
	}
	return len(data), 0, ""
}

// skipString returns the index after the closing quote of the string that
// j is inside.
func skipString(data []byte, j int) int {
	for j < len(data) {
		switch data[j] {
		case '\\':
			j += 2
		case '"':
			return j + 1
		default:
			j++
		}
	}
	return len(data)
}

// skipContainer returns the index after the object or array starting at
// data[i], counting brackets outside strings.
func skipContainer(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch data[i] {
		case '"':
			i = skipString(data, i+1)
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(data)
}

func hex4(data []byte, i int) (uint32, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[i:i+4]), 16, 32)
	return uint32(n), err == nil
}

// applyCuts replaces each cut range of data by the depth marker string.
func applyCuts(data []byte, cuts [][2]int) []byte {
	if len(cuts) == 0 {
		return data
	}
	marker := strconv.Quote(redact.DepthMarker)
	out := make([]byte, 0, len(data))
	prev := 0
	for _, c := range cuts {
		out = append(out, data[prev:c[0]]...)
		out = append(out, marker...)
		prev = c[1]
	}
	return append(out, data[prev:]...)
}
