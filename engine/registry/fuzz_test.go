package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentruntime/statejournal/types"
	"go.yaml.in/yaml/v3"
)

// FuzzParseRegistry feeds arbitrary bytes to Parse. Parse must never panic;
// it returns a registry or a *LoadError whose problems all name a field and
// a problem. A registry it accepts must decode to the same surfaces through
// yaml.v3 with KnownFields(true) or encoding/json with DisallowUnknownFields,
// and must survive a round trip through YAML with the same digest.
func FuzzParseRegistry(f *testing.F) {
	f.Add(DefaultYAML(), uint8(0))
	f.Add(DefaultYAML(), uint8(1))
	f.Add([]byte(`{"version": 1, "surfaces": [{"id": "runtime_alpha", "owner": "runtime.alpha", "storage": {"kind": "memory"}, "truth": "canonical", "journal": {"mode": "dual"}}]}`), uint8(2))
	f.Add([]byte("version: 1\nsurfaces:\n"+okSurface+okSurface), uint8(1))
	f.Add([]byte("version: 1\nsnapshots: [runtime_budget]\nsurfaces:\n  - &b {id: runtime_a, owner: m, storage: {kind: memory}, truth: canonical, snapshot_hint: runtime_budget, journal: {mode: dual}}\n  - {<<: *b, id: runtime_b, truth: derived, derived_from: [runtime_a]}\n"), uint8(1))
	f.Add([]byte("version: 1\nsurfaces:\n  - {id: runtime_a, owner: m, storage: {kind: dir, path: x}, truth: canonical, authority: adjacent, journal: {mode: dual, owner_sources: [m], mutation_path: p}}\n"), uint8(0))
	f.Add([]byte("version: 2\n"), uint8(0))
	f.Add([]byte("a: &a [*a]"), uint8(1))
	f.Add([]byte("{\"version\": 1, \"surfaces\": [[[[[]]]]]}"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		format := []string{"", FormatYAML, FormatJSON}[sel%3]
		r, err := Parse(data, "fuzz", format)
		if err != nil {
			if r != nil {
				t.Fatal("Parse returned a registry and an error")
			}
			if !errors.Is(err, types.ErrBadRegistry) {
				t.Fatalf("error does not match ErrBadRegistry: %v", err)
			}
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error is not a *LoadError with problems: %v", err)
			}
			for _, p := range le.Problems {
				if p.Err == nil || p.Err.Field == "" || p.Err.Problem == "" || p.Err.Kind != types.ErrBadRegistry {
					t.Fatalf("incomplete problem %+v in %v", p.Err, err)
				}
			}
			_ = err.Error()
			return
		}
		if r == nil || r.Len() == 0 {
			t.Fatal("Parse succeeded without surfaces")
		}

		// The strict library decoders agree with the schema walk.
		if format == "" {
			format = FormatYAML
			if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' && json.Valid(t) {
				format = FormatJSON
			}
		}
		raw, problems := decodeRaw(t, data, format)
		if len(problems) > 0 {
			t.Fatalf("accepted file has walk problems: %v", problems)
		}
		var lib fileRegistry
		if format == FormatJSON {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			err = dec.Decode(&lib)
		} else {
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			err = dec.Decode(&lib)
		}
		if err != nil {
			t.Fatalf("accepted file fails the strict %s decoder: %v", format, err)
		}
		sameFile(t, raw, lib)

		// Effective values re-encode to a registry with the same digest.
		out := fileRegistry{Version: 1, Snapshots: r.SnapshotIDs()}
		for _, s := range r.Surfaces() {
			out.Surfaces = append(out.Surfaces, *s)
			if got := r.Suggest(s.ID); got != s.ID {
				t.Fatalf("Suggest(%q) = %q", s.ID, got)
			}
			_ = s.Admit(s.Owner, s.ChangeTypes[0], true)
		}
		again, err := yaml.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(again, "again", FormatYAML)
		if err != nil {
			t.Fatalf("re-encoded registry does not load: %v\n%s", err, again)
		}
		if r2.Digest() != r.Digest() {
			t.Fatalf("digest changed over a round trip:\n%s", again)
		}
	})
}
