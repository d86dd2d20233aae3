package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// encode is the JSON encoding the journal would write.
func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return b
}

// checkBounds fails t unless out is within every bound of lim.
func checkBounds(t testing.TB, out map[string]any, lim Limits) {
	t.Helper()
	lim = lim.Normalized()
	if n := len(encode(t, out)); n > lim.MaxEncodedBytes {
		t.Errorf("encoded size %d > %d", n, lim.MaxEncodedBytes)
	}
	keys := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		switch x := v.(type) {
		case map[string]any:
			if depth > lim.MaxDepth {
				t.Errorf("object at depth %d > %d", depth, lim.MaxDepth)
			}
			for k, e := range x {
				keys++
				if len(k) > lim.MaxKeyBytes {
					t.Errorf("key %q is %d bytes > %d", k, len(k), lim.MaxKeyBytes)
				}
				walk(e, depth+1)
			}
		case []any:
			if depth > lim.MaxDepth {
				t.Errorf("array at depth %d > %d", depth, lim.MaxDepth)
			}
			for _, e := range x {
				walk(e, depth+1)
			}
		case string:
			if len(x) > lim.MaxStringBytes {
				t.Errorf("string of %d bytes > %d", len(x), lim.MaxStringBytes)
			}
		}
	}
	walk(out, 1)
	if keys > lim.MaxKeys {
		t.Errorf("%d keys > %d", keys, lim.MaxKeys)
	}
}

func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func cleanMetadata() map[string]any {
	return map[string]any{
		"worker":   "ws-42",
		"attempt":  3,
		"path":     ".tmp/runtime/work-sessions.json",
		"ok":       true,
		"duration": 1.5,
	}
}

func TestMetadataReturnsCleanInputItself(t *testing.T) {
	inputs := map[string]map[string]any{
		"a small flat map": cleanMetadata(),
		"nested objects and arrays within depth": {
			"run":   map[string]any{"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "tags": []any{"a", "b", json.Number("7")}},
			"count": int64(9), "ratio": float32(0.25), "none": nil, "names": []string{"x", "y"},
			"labels": map[string]string{"team": "runtime"},
		},
		"a secret key holding nothing to hide": {"password": "", "token": nil, "api_key": Marker(KindSecretKey)},
		"a key named like the trim mark":       {TrimmedKey: true, "a": 1},
	}
	for name, m := range inputs {
		t.Run(name+" is returned as it is", func(t *testing.T) {
			out, rep := Metadata(m, Limits{})
			if !sameMap(out, m) {
				t.Fatalf("Metadata copied a clean map: %v", out)
			}
			if !reflect.DeepEqual(rep, Report{}) {
				t.Fatalf("report %+v, want zero", rep)
			}
			if n := testing.AllocsPerRun(50, func() { Metadata(m, Limits{}) }); n != 0 {
				t.Fatalf("Metadata allocates %v times on a clean map", n)
			}
		})
	}
	if out, rep := Metadata(nil, Limits{}); out != nil || rep.Redactions != 0 {
		t.Fatalf("Metadata(nil) = %v, %+v", out, rep)
	}
}

func TestMetadataRedactsSecretKeys(t *testing.T) {
	gh := "gh" + "p_" + fake(70, 36, alphaB62)
	tests := []struct {
		name  string
		in    any
		want  any
		kinds map[Kind]int
	}{
		{"a string under a secret key becomes the secret_key marker", "hunter2", Marker(KindSecretKey), map[Kind]int{KindSecretKey: 1}},
		{"a number under a secret key becomes the marker", 123456, Marker(KindSecretKey), map[Kind]int{KindSecretKey: 1}},
		{"a bool under a secret key becomes the marker", true, Marker(KindSecretKey), map[Kind]int{KindSecretKey: 1}},
		{"an object under a secret key becomes the marker", map[string]any{"user": "svc", "pass": "x"}, Marker(KindSecretKey), map[Kind]int{KindSecretKey: 1}},
		{"an array under a secret key becomes the marker", []any{"a", "b"}, Marker(KindSecretKey), map[Kind]int{KindSecretKey: 1}},
		{"a provider token under a secret key is reported by its own kind", gh, Marker(KindGitHubToken), map[Kind]int{KindGitHubToken: 1}},
		{"an empty string under a secret key stays", "", "", nil},
		{"null under a secret key stays", nil, nil, nil},
		{"a marker under a secret key stays", Marker(KindJWT), Marker(KindJWT), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"GITHUB_TOKEN": tc.in, "surface": "runtime_leases"}
			out, rep := Metadata(in, Limits{})
			if !reflect.DeepEqual(out["GITHUB_TOKEN"], tc.want) {
				t.Fatalf("value = %#v, want %#v", out["GITHUB_TOKEN"], tc.want)
			}
			if out["surface"] != "runtime_leases" {
				t.Fatalf("other key changed: %v", out)
			}
			if !reflect.DeepEqual(rep.Kinds, tc.kinds) || rep.Redactions != len(tc.kinds) || rep.Trimmed {
				t.Fatalf("report %+v, want kinds %v", rep, tc.kinds)
			}
		})
	}
}

func TestMetadataRedactsSecretValuesAnywhere(t *testing.T) {
	for _, sh := range secretShapes() {
		t.Run(sh.name+" is redacted wherever it sits", func(t *testing.T) {
			in := map[string]any{
				"note":   sh.value,
				"nested": map[string]any{"inner": map[string]any{"deep": sh.value}},
				"list":   []any{"ok", []any{sh.value}, map[string]any{"v": sh.value}},
				sh.value: "as a key",
			}
			out, rep := Metadata(in, Limits{})
			if enc := encode(t, out); bytes.Contains(enc, []byte(sh.needle)) {
				t.Fatalf("secret survived: %s", enc)
			}
			// A key that is a secret may also name one ("Authorization: …"
			// or its marker "[REDACTED:github_token]"): its value is then
			// redacted as well.
			want := 5
			if IsSecretKey(sh.value) || IsSecretKey(Marker(sh.kind)) {
				want++
			}
			if rep.Kinds[sh.kind] < 5 || rep.Redactions != want {
				t.Fatalf("report %+v, want 5 redactions of %s", rep, sh.kind)
			}
			checkBounds(t, out, Limits{})
		})
	}
}

func TestMetadataBounds(t *testing.T) {
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d", i)] = i
	}
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": 1}}, "arr": []any{[]any{1}}}}
	longKey := strings.Repeat("é", 40) // 80 bytes
	big := map[string]any{}
	for i := range 30 {
		big[fmt.Sprintf("f%02d", i)] = strings.Repeat("x", 200)
	}
	tests := []struct {
		name  string
		in    map[string]any
		check func(t *testing.T, out map[string]any, rep Report)
	}{
		{"too many keys keep the first keys in sorted order and the trim mark", many, func(t *testing.T, out map[string]any, rep Report) {
			if len(out) != 32 || out["k30"] != 30 || out["k31"] != nil || out[TrimmedKey] != true {
				t.Fatalf("out = %v", out)
			}
			if rep.DroppedKeys != 9 {
				t.Fatalf("dropped %d keys, want 9", rep.DroppedKeys)
			}
		}},
		{"objects and arrays deeper than the bound become the depth marker", deep, func(t *testing.T, out map[string]any, rep Report) {
			a := out["a"].(map[string]any)
			if a["b"].(map[string]any)["c"] != DepthMarker || a["arr"].([]any)[0] != DepthMarker || rep.DepthCuts != 2 {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
		{"a long key is cut at a UTF-8 boundary", map[string]any{longKey: 1}, func(t *testing.T, out map[string]any, rep Report) {
			want := strings.Repeat("é", 32)
			if out[want] != 1 || rep.TruncatedKeys != 1 {
				t.Fatalf("out = %v", out)
			}
		}},
		{"keys equal after the cut keep both values, the later under key~1", map[string]any{strings.Repeat("k", 70) + "a": 1, strings.Repeat("k", 70) + "b": 2, strings.Repeat("k", 70) + "c": 3}, func(t *testing.T, out map[string]any, rep Report) {
			if out[strings.Repeat("k", 64)] != 1 || out[strings.Repeat("k", 62)+"~1"] != 2 || out[strings.Repeat("k", 62)+"~2"] != 3 ||
				len(out) != 4 || rep.DroppedKeys != 0 || rep.RenamedKeys != 2 {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
		{"a renamed key does not take a later key's name", map[string]any{strings.Repeat("k", 70) + "a": 1, strings.Repeat("k", 70) + "b": 2, strings.Repeat("k", 62) + "~1": 3}, func(t *testing.T, out map[string]any, rep Report) {
			vals := map[any]bool{}
			for _, v := range out {
				vals[v] = true
			}
			if len(out) != 4 || !vals[1] || !vals[2] || !vals[3] {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
		{"multi-byte keys equal after the cut are renamed on a rune boundary", map[string]any{strings.Repeat("é", 40) + "a": 1, strings.Repeat("é", 40) + "b": 2}, func(t *testing.T, out map[string]any, rep Report) {
			if out[strings.Repeat("é", 32)] != 1 || out[strings.Repeat("é", 31)+"~1"] != 2 {
				t.Fatalf("out = %v", out)
			}
		}},
		{"a cut key that names a secret has its value redacted", map[string]any{"token" + strings.Repeat("_", 59) + "count": 5}, func(t *testing.T, out map[string]any, rep Report) {
			if out["token"+strings.Repeat("_", 59)] != Marker(KindSecretKey) {
				t.Fatalf("out = %v", out)
			}
		}},
		{"a long string is cut at a UTF-8 boundary and marked", map[string]any{"s": strings.Repeat("ü", 200)}, func(t *testing.T, out map[string]any, rep Report) {
			s := out["s"].(string)
			if len(s) > 256 || !strings.HasSuffix(s, TruncatedSuffix) || !utf8.ValidString(s) || rep.TruncatedStrings != 1 {
				t.Fatalf("s = %q (%d bytes), report %+v", s, len(s), rep)
			}
		}},
		{"oversize metadata drops keys from the end until it fits", big, func(t *testing.T, out map[string]any, rep Report) {
			if out["f00"] == nil || out["f29"] != nil || out[TrimmedKey] != true || rep.DroppedKeys == 0 {
				t.Fatalf("out keys = %d, report %+v", len(out), rep)
			}
			if n := len(encode(t, out)); n < 2048-220 {
				t.Fatalf("encoded %d bytes: dropped more than needed", n)
			}
		}},
		{"a user key named like the trim mark is kept as _trimmed~1 when trimming", map[string]any{TrimmedKey: "mine", "s": strings.Repeat("x", 300)}, func(t *testing.T, out map[string]any, rep Report) {
			if out[TrimmedKey] != true || out[TrimmedKey+"~1"] != "mine" || rep.RenamedKeys != 1 {
				t.Fatalf("out = %v", out)
			}
		}},
		{"a user key named like the trim mark stays as it is when nothing is trimmed", map[string]any{TrimmedKey: "mine", "s": "short"}, func(t *testing.T, out map[string]any, rep Report) {
			if out[TrimmedKey] != "mine" || len(out) != 2 || rep.Trimmed {
				t.Fatalf("out = %v", out)
			}
		}},
		{"a secret is redacted before its string is cut", map[string]any{"log": strings.Repeat("x ", 120) + "Bearer " + fake(80, 40, alphaB62)}, func(t *testing.T, out map[string]any, rep Report) {
			if out["log"] != Marker(KindBearerToken) || rep.TruncatedStrings != 0 || rep.Trimmed {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
		{"non-finite floats become strings", map[string]any{"nan": math.NaN(), "inf": math.Inf(1), "ninf": float32(math.Inf(-1))}, func(t *testing.T, out map[string]any, rep Report) {
			if out["nan"] != "NaN" || out["inf"] != "+Inf" || out["ninf"] != "-Inf" || rep.Converted != 3 || rep.Trimmed {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
		{"other Go types pass through encoding/json and unencodable ones are dropped", map[string]any{
			"at": time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), "ints": []int{1, 2}, "fn": func() {}, "bad": json.Number("1x"),
		}, func(t *testing.T, out map[string]any, rep Report) {
			if out["at"] != "2024-06-01T12:00:00Z" || !reflect.DeepEqual(out["ints"], []any{json.Number("1"), json.Number("2")}) ||
				out["bad"] != "1x" || out["fn"] != nil || rep.DroppedKeys != 1 || out[TrimmedKey] != true {
				t.Fatalf("out = %v, report %+v", out, rep)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprint(tc.in)
			out, rep := Metadata(tc.in, Limits{})
			if fmt.Sprint(tc.in) != before {
				t.Fatal("the input map was modified")
			}
			tc.check(t, out, rep)
			checkBounds(t, out, Limits{})
			if rep.Trimmed != (out[TrimmedKey] == true) {
				t.Fatalf("Trimmed = %v but mark = %v", rep.Trimmed, out[TrimmedKey])
			}
			again, rep2 := Metadata(tc.in, Limits{})
			if !bytes.Equal(encode(t, out), encode(t, again)) || !reflect.DeepEqual(rep, rep2) {
				t.Fatal("two runs on the same input differ")
			}
			if o2, r2 := Metadata(out, Limits{}); !sameMap(o2, out) || !reflect.DeepEqual(r2, Report{}) {
				t.Fatalf("Metadata is not idempotent: %v, %+v", o2, r2)
			}
		})
	}
}

func TestMetadataHonoursSmallLimits(t *testing.T) {
	in := map[string]any{
		"alpha": strings.Repeat("a", 100), "beta": map[string]any{"x": []any{1, 2, 3}, "y": "z"},
		"gamma": []any{"one", "two", "three"}, "delta": 1.25, "epsilon": "short",
	}
	for _, tc := range []struct {
		lim     Limits
		trimmed bool
	}{
		{Limits{MaxKeys: 1}, true}, {Limits{MaxKeys: 3}, true}, {Limits{MaxDepth: 1}, true}, {Limits{MaxDepth: 2}, true},
		{Limits{MaxKeyBytes: 1}, false}, {Limits{MaxKeyBytes: 5}, false}, {Limits{MaxStringBytes: 1}, true},
		{Limits{MaxEncodedBytes: 1}, true}, {Limits{MaxEncodedBytes: 100}, true},
		{Limits{MaxKeys: 2, MaxDepth: 1, MaxKeyBytes: 8, MaxStringBytes: 32, MaxEncodedBytes: 64}, true},
	} {
		t.Run(fmt.Sprintf("limits %+v are never exceeded", tc.lim), func(t *testing.T) {
			out, rep := Metadata(in, tc.lim)
			checkBounds(t, out, tc.lim)
			if rep.Trimmed != tc.trimmed || (out[TrimmedKey] == true) != tc.trimmed {
				t.Fatalf("out = %v, report %+v, want trimmed %v", out, rep, tc.trimmed)
			}
		})
	}
}

func TestLimitsNormalized(t *testing.T) {
	if got := (Limits{}).Normalized(); got != DefaultLimits() {
		t.Fatalf("zero limits = %+v, want defaults", got)
	}
	got := Limits{MaxKeys: 1, MaxDepth: 1, MaxKeyBytes: 1, MaxStringBytes: 1, MaxEncodedBytes: 1}.Normalized()
	want := Limits{MaxKeys: 1, MaxDepth: 1, MaxKeyBytes: MinMaxKeyBytes, MaxStringBytes: MinMaxStringBytes, MaxEncodedBytes: MinMaxEncodedBytes}
	if got != want {
		t.Fatalf("tiny limits = %+v, want %+v", got, want)
	}
	for _, k := range Kinds() {
		if len(Marker(k)) > MinMaxStringBytes || len(Marker(k)) > MinMaxKeyBytes {
			t.Errorf("marker %q does not fit MinMaxStringBytes and MinMaxKeyBytes", Marker(k))
		}
	}
}

func TestEncodedSizeMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", "quote\" back\\ tab\t nl\n cr\r bs\b ff\f", "ctl\x01\x1f del\x7f",
		"<html>&amp;", "é ü 日本", "bad\xffutf8\xc3", "\u2028\u2029", 0.0, math.Copysign(0, -1), 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123,
		-1e-300, math.MaxFloat64, float32(0.1), float32(1e21), float32(1e-7), 0, -1, math.MinInt64, math.MaxInt64, uint64(math.MaxUint64),
		int8(-128), uint16(65535), json.Number("12.5e-3"), json.Number(""), json.Number("-0"),
	}
	for _, v := range values {
		got, ok := scalarSize(v)
		want := len(encode(t, v))
		if !ok || got != want {
			t.Errorf("scalarSize(%#v) = %d, %v; encoding/json writes %d bytes", v, got, ok, want)
		}
	}
	m := map[string]any{"a<b": []any{1, "x", map[string]any{"é": nil}}, "k": []string{"p", "q"}, "s": map[string]string{"t": "u"}}
	c := checker{lim: DefaultLimits()}
	if got, _ := c.object(m, 1); got != len(encode(t, m)) {
		t.Errorf("object size %d, encoding/json writes %d", got, len(encode(t, m)))
	}
}

func TestMetadataSurvivesCyclicInput(t *testing.T) {
	cyc := map[string]any{"name": "loop"}
	cyc["self"] = cyc
	cyc["list"] = []any{cyc, cyc}
	out, rep := Metadata(cyc, Limits{})
	checkBounds(t, out, Limits{})
	if !rep.Trimmed || rep.DepthCuts == 0 {
		t.Fatalf("report %+v", rep)
	}
	big := map[string]any{}
	for i := range 64 {
		big[fmt.Sprintf("k%02d", i)] = cyc
	}
	out, rep = Metadata(big, Limits{})
	checkBounds(t, out, Limits{})
	if rep.DroppedKeys == 0 {
		t.Fatalf("report %+v", rep)
	}
}
