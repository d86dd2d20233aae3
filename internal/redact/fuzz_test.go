package redact

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func FuzzString(f *testing.F) {
	for _, sh := range secretShapes() {
		f.Add(sh.value)
	}
	for _, k := range Kinds() {
		f.Add(Marker(k))
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, kind, redacted := String(s)
		if !redacted {
			if out != s || kind != "" {
				t.Fatalf("String(%q) = %q, %q without redacting", s, out, kind)
			}
			return
		}
		if out != Marker(kind) || !slices.Contains(Kinds(), kind) {
			t.Fatalf("String(%q) = %q, %q: not the marker of a known kind", s, out, kind)
		}
		again, kind2, redacted2 := String(out)
		if again != out || redacted2 || kind2 != "" {
			t.Fatalf("the marker %q was redacted again: %q, %q", out, again, kind2)
		}
	})
}

// fuzzLimits derives small, varied limits from one number so the fuzzer
// reaches every trimming path.
func fuzzLimits(seed uint16) Limits {
	s := int(seed)
	return Limits{
		MaxKeys:         1 + s%40,
		MaxDepth:        1 + (s>>6)%4,
		MaxKeyBytes:     8 + (s>>3)%60,
		MaxStringBytes:  32 + (s>>8)%300,
		MaxEncodedBytes: 64 + (s%53)*50,
	}
}

// embed places secret into m at a spot chosen by place.
func embed(m map[string]any, key, secret string, place uint8) {
	if key == "" {
		key = "k"
	}
	switch place % 7 {
	case 0:
		m[key] = secret
	case 1:
		m[key] = map[string]any{"inner": map[string]any{"x": secret}}
	case 2:
		m[key] = []any{1, "ok", secret}
	case 3:
		m[key] = "see " + secret + " now"
	case 4:
		m[secret] = key
	case 5:
		m["password"] = map[string]any{"v": secret}
	case 6:
		// Into the first nested object of the generated document, or a
		// fresh one.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if sub, ok := m[k].(map[string]any); ok {
				sub[key] = []any{map[string]any{"s": secret}}
				return
			}
		}
		m[key] = map[string]any{key: secret}
	}
}

func FuzzMetadataRedaction(f *testing.F) {
	f.Add(`{"worker":"ws-42","attempt":3}`, uint8(0), uint8(0), "note", uint16(0))
	f.Add(`{"a":{"b":{"c":{"d":[1,2,{"e":"f"}]}}},"x":"y"}`, uint8(3), uint8(6), "deep", uint16(777))
	f.Add(`{"s":"`+strings.Repeat("é", 200)+`"}`, uint8(9), uint8(3), "text", uint16(65535))
	f.Add(`not json at all`, uint8(20), uint8(4), "", uint16(12345))
	f.Add(`{"list":[[[[1]]]],"n":1e400,"k":null}`, uint8(31), uint8(2), "list", uint16(4242))
	shapes := secretShapes()
	f.Fuzz(func(t *testing.T, doc string, shape, place uint8, key string, limSeed uint16) {
		sh := shapes[int(shape)%len(shapes)]
		if strings.Contains(doc, sh.needle) || strings.Contains(key, sh.needle) {
			t.Skip("the generated input already holds the needle outside the embedding")
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil {
			m = map[string]any{"doc": doc}
		}
		embed(m, key, sh.value, place)
		lim := fuzzLimits(limSeed)

		before := encode(t, m)
		out, rep := Metadata(m, lim)
		if !bytes.Equal(encode(t, m), before) {
			t.Fatal("the input was modified")
		}
		enc := encode(t, out)
		if bytes.Contains(enc, []byte(sh.needle)) {
			t.Fatalf("secret %q (%s) survived: %s", sh.needle, sh.name, enc)
		}
		checkBounds(t, out, lim)
		if rep.Trimmed != (out[TrimmedKey] == true) && rep.Trimmed {
			t.Fatalf("trimmed without the mark: %s", enc)
		}
		if (rep.Redactions == 0) != (rep.Kinds == nil) {
			t.Fatalf("report %+v: Kinds must be nil exactly when nothing was redacted", rep)
		}
		again, rep2 := Metadata(m, lim)
		if !bytes.Equal(encode(t, again), enc) || rep2.Redactions != rep.Redactions || rep2.Trimmed != rep.Trimmed {
			t.Fatal("Metadata is not deterministic")
		}
		if o2, r2 := Metadata(out, lim); !sameMap(o2, out) || r2.Redactions != 0 || r2.Trimmed {
			t.Fatalf("Metadata is not idempotent on %s: %s, %+v", enc, encode(t, o2), r2)
		}
	})
}
