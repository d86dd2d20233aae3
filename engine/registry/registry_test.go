package registry

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentruntime/statejournal/record"
	"go.yaml.in/yaml/v3"
)

func TestDefaultCatalogDeclaresTheRequiredSurfaces(t *testing.T) {
	r := Default()
	tests := []struct {
		name  string
		id    string
		check func(t *testing.T, s *Surface)
	}{
		{"work sessions are canonical, file-backed, affect health, carry heartbeats and run in dual mode", "runtime_work_session", func(t *testing.T, s *Surface) {
			want(t, s.Owner, "runtime.work_session")
			want(t, s.Storage.Kind, StorageFile)
			want(t, s.Storage.Path, ".tmp/runtime/work-sessions.json")
			want(t, s.Truth, TruthCanonical)
			want(t, s.AffectsHealth, true)
			want(t, s.Authority, AuthorityNone)
			want(t, s.Journal.Mode, ModeDual)
			want(t, s.SnapshotHint, SnapshotHealth)
			want(t, slices.Contains(s.ChangeTypes, "heartbeat"), true)
		}},
		{"leases are authority-adjacent, written by runtime.leases, with narrowed change types", "runtime_leases", func(t *testing.T, s *Surface) {
			adjacentWithOwner(t, s, "runtime.leases")
			want(t, strings.Join(s.ChangeTypes, ","), "created,updated,expired,deleted,heartbeat")
		}},
		{"approvals are authority-adjacent, written by runtime.approvals", "runtime_approvals", func(t *testing.T, s *Surface) {
			adjacentWithOwner(t, s, "runtime.approvals")
			want(t, s.Journal.MutationPath, "runtime/approvals.Store.Apply")
		}},
		{"dispatcher results are authority-adjacent, written by runtime.dispatcher", "runtime_dispatcher_results", func(t *testing.T, s *Surface) {
			adjacentWithOwner(t, s, "runtime.dispatcher")
		}},
		{"lifecycle transitions are authority-adjacent, written by runtime.lifecycle", "runtime_lifecycle_transitions", func(t *testing.T, s *Surface) {
			adjacentWithOwner(t, s, "runtime.lifecycle")
		}},
		{"the health snapshot is a derived projection hinting runtime_health", "runtime_health_snapshot", func(t *testing.T, s *Surface) {
			derivedFromCanonical(t, r, s)
			want(t, s.SnapshotHint, SnapshotHealth)
			want(t, slices.Contains(s.DerivedFrom, "runtime_work_session"), true)
		}},
		{"the action panel is a derived projection hinting runtime_action_panel", "runtime_action_panel", func(t *testing.T, s *Surface) {
			derivedFromCanonical(t, r, s)
			want(t, s.SnapshotHint, SnapshotActionPanel)
			want(t, slices.Contains(s.DerivedFrom, "runtime_approvals"), true)
		}},
		{"the action timeline is the audit surface with the journal disabled", "runtime_action_timeline", func(t *testing.T, s *Surface) {
			want(t, s.Truth, TruthCanonical)
			want(t, s.Journal.Mode, ModeDisabled)
			want(t, s.Authority, AuthorityNone)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := r.Lookup(tt.id)
			if !ok {
				t.Fatalf("default catalog lacks %s; it has %v", tt.id, r.IDs())
			}
			tt.check(t, s)
		})
	}
}

func adjacentWithOwner(t *testing.T, s *Surface, owner string) {
	t.Helper()
	want(t, s.Owner, owner)
	want(t, s.Authority, AuthorityAdjacent)
	want(t, slices.Contains(s.Journal.OwnerSources, owner), true)
	if s.Journal.MutationPath == "" {
		t.Errorf("%s declares no mutation_path", s.ID)
	}
	if s.Journal.Mode != ModeFallback && s.Journal.Mode != ModeDual {
		t.Errorf("%s journal mode = %q, want fallback or dual", s.ID, s.Journal.Mode)
	}
}

func derivedFromCanonical(t *testing.T, r *Registry, s *Surface) {
	t.Helper()
	want(t, s.Truth, TruthDerived)
	if len(s.DerivedFrom) == 0 {
		t.Fatalf("%s has no derived_from", s.ID)
	}
	for _, d := range s.DerivedFrom {
		src, ok := r.Lookup(d)
		if !ok || src.Truth != TruthCanonical {
			t.Errorf("%s derives from %s, which is not a canonical surface", s.ID, d)
		}
	}
}

func want[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDefaultCatalogIsARealisticRuntime(t *testing.T) {
	r := Default()
	if n := r.Len(); n < 16 || n > 24 {
		t.Errorf("default catalog has %d surfaces, want the 8 required plus 8 to 14 more", n)
	}
	kinds := map[string]int{}
	for _, s := range r.Surfaces() {
		kinds[s.Storage.Kind]++
		if strings.TrimSpace(s.Description) == "" {
			t.Errorf("%s has no description", s.ID)
		}
		if s.Storage.Path != "" && !strings.HasPrefix(s.Storage.Path, ".tmp/") {
			t.Errorf("%s storage path %q is not under .tmp/", s.ID, s.Storage.Path)
		}
		if strings.Contains(s.ID, "secret") {
			t.Errorf("%s: secrets are never journaled", s.ID)
		}
	}
	for _, k := range StorageKinds {
		if kinds[k] == 0 {
			t.Errorf("no surface uses storage kind %s", k)
		}
	}
	modes := r.CountByMode()
	for _, m := range Modes {
		if modes[m] == 0 {
			t.Errorf("no surface in journal mode %s", m)
		}
	}
}

func TestDefaultYAMLIsACopyOfTheEmbeddedCatalog(t *testing.T) {
	b := DefaultYAML()
	b[0] = '!'
	if DefaultYAML()[0] == '!' {
		t.Fatal("DefaultYAML returned the embedded bytes themselves")
	}
	r, err := Parse(DefaultYAML(), "copy.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	want(t, r.Digest(), Default().Digest())
}

func TestStrictLibraryDecodersReadAcceptedFilesAsThisPackageDoes(t *testing.T) {
	raw, problems := decodeRaw(t, defaultYAML, FormatYAML)
	if len(problems) > 0 {
		t.Fatalf("default catalog: %v", problems)
	}
	var lib fileRegistry
	dec := yaml.NewDecoder(bytes.NewReader(defaultYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&lib); err != nil {
		t.Fatalf("yaml.v3 with KnownFields: %v", err)
	}
	sameFile(t, raw, lib)

	asJSON, err := json.Marshal(lib)
	if err != nil {
		t.Fatal(err)
	}
	rawJSON, problems := decodeRaw(t, asJSON, FormatJSON)
	if len(problems) > 0 {
		t.Fatalf("default catalog as JSON: %v", problems)
	}
	var libJSON fileRegistry
	jd := json.NewDecoder(bytes.NewReader(asJSON))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&libJSON); err != nil {
		t.Fatalf("encoding/json with DisallowUnknownFields: %v", err)
	}
	sameFile(t, rawJSON, libJSON)
	sameFile(t, raw, rawJSON)

	fromJSON, err := Parse(asJSON, "default.json", "")
	if err != nil {
		t.Fatal(err)
	}
	want(t, fromJSON.Digest(), Default().Digest())
}

// decodeRaw runs the parse and schema walk without validation or defaults.
func decodeRaw(t testing.TB, data []byte, format string) (fileRegistry, []Problem) {
	t.Helper()
	var root *node
	var err error
	if format == FormatJSON {
		root, err = parseJSON(data)
	} else {
		root, err = parseYAML(data)
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c := newCollector()
	f, _ := decodeFile(root, c)
	return f, c.problems
}

// sameFile compares two decodings, treating nil and empty lists alike.
func sameFile(t testing.TB, a, b fileRegistry) {
	t.Helper()
	norm := func(f fileRegistry) fileRegistry {
		f.broken = nil
		f.Snapshots = nonNil(f.Snapshots)
		f.Surfaces = slices.Clone(f.Surfaces)
		for i := range f.Surfaces {
			s := &f.Surfaces[i]
			s.DerivedFrom = nonNil(s.DerivedFrom)
			s.ChangeTypes = nonNil(s.ChangeTypes)
			s.Journal.OwnerSources = nonNil(s.Journal.OwnerSources)
		}
		if f.Surfaces == nil {
			f.Surfaces = []Surface{}
		}
		return f
	}
	if na, nb := norm(a), norm(b); !reflect.DeepEqual(na, nb) {
		t.Fatalf("decodings differ:\n%+v\n%+v", na, nb)
	}
}

func TestDigestIdentifiesTheCatalogNotItsFormatting(t *testing.T) {
	base := `version: 1
surfaces:
  - id: runtime_alpha
    owner: runtime.alpha
    storage: {kind: file, path: .tmp/alpha.json}
    truth: canonical
    change_types: [created, heartbeat]
    journal: {mode: dual}
  - id: runtime_beta
    owner: runtime.beta
    storage: {kind: memory}
    truth: derived
    derived_from: [runtime_alpha]
    journal: {mode: fallback}
`
	reordered := `# comments and order do not matter
version: 1
surfaces:
  - owner: runtime.beta
    id: runtime_beta
    derived_from: [runtime_alpha]
    storage: {kind: memory}
    truth: derived
    journal: {mode: fallback}
    authority: none
  - id: runtime_alpha
    journal: {mode: dual}
    change_types: [heartbeat, created]
    storage: {path: .tmp/alpha.json, kind: file}
    truth: canonical
    owner: runtime.alpha
`
	asJSON := `{"version": 1, "surfaces": [
  {"id": "runtime_alpha", "owner": "runtime.alpha", "storage": {"kind": "file", "path": ".tmp/alpha.json"},
   "truth": "canonical", "change_types": ["created", "heartbeat"], "journal": {"mode": "dual"}},
  {"id": "runtime_beta", "owner": "runtime.beta", "storage": {"kind": "memory"},
   "truth": "derived", "derived_from": ["runtime_alpha"], "journal": {"mode": "fallback"}}]}`
	digestOf := func(doc string) string {
		t.Helper()
		r, err := Parse([]byte(doc), "test", "")
		if err != nil {
			t.Fatal(err)
		}
		return r.Digest()
	}
	d := digestOf(base)
	if len(d) != 64 {
		t.Fatalf("digest %q is not sha256 hex", d)
	}
	tests := []struct {
		name string
		doc  string
		same bool
	}{
		{"loading the same file twice gives the same digest", base, true},
		{"reordering keys, surfaces and set-valued lists keeps the digest", reordered, true},
		{"the same catalog in JSON has the same digest", asJSON, true},
		{"changing a journal mode changes the digest", strings.Replace(base, "mode: dual", "mode: proven", 1), false},
		{"changing a storage path changes the digest", strings.Replace(base, "alpha.json", "alpha2.json", 1), false},
		{"declaring an extra snapshot id changes the digest", strings.Replace(base, "version: 1\n", "version: 1\nsnapshots: [runtime_extra]\n", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := digestOf(tt.doc); (got == d) != tt.same {
				t.Errorf("digest %s vs base %s, want same=%v", got, d, tt.same)
			}
		})
	}
	want(t, Default().Digest() == d, false)
}

func TestWithRootResolvesStoragePaths(t *testing.T) {
	doc := `version: 1
surfaces:
  - {id: runtime_rel, owner: m, storage: {kind: file, path: .tmp/runtime/rel.json}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_dir, owner: m, storage: {kind: dir, path: .tmp/runtime/dir/}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_abs, owner: m, storage: {kind: file, path: /var/lib/runtime/../runtime/abs.json}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_mem, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_sqlite, owner: m, storage: {kind: db, path: .tmp/runtime/x.sqlite}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_pg, owner: m, storage: {kind: db, path: "postgres://db/runtime"}, truth: canonical, journal: {mode: dual}}
`
	r, err := Parse([]byte(doc), "roots.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	rr := r.WithRoot(root)
	tests := []struct {
		name, id, resolved string
	}{
		{"a relative file path is joined to the root", "runtime_rel", root + "/.tmp/runtime/rel.json"},
		{"a relative dir path is joined to the root", "runtime_dir", root + "/.tmp/runtime/dir"},
		{"an absolute path is kept (cleaned)", "runtime_abs", "/var/lib/runtime/abs.json"},
		{"memory storage has no resolved path", "runtime_mem", ""},
		{"an embedded database file is joined to the root", "runtime_sqlite", root + "/.tmp/runtime/x.sqlite"},
		{"a database URL is not a path", "runtime_pg", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := rr.Lookup(tt.id)
			want(t, s.Storage.Resolved, tt.resolved)
			orig, _ := r.Lookup(tt.id)
			want(t, orig.Storage.Resolved, "")
		})
	}
	want(t, rr.Root(), root)
	want(t, rr.Digest(), r.Digest())
	want(t, r.Root(), "")

	t.Run("a relative root is made absolute", func(t *testing.T) {
		t.Chdir(root)
		s, _ := r.WithRoot("sub").Lookup("runtime_rel")
		want(t, s.Storage.Resolved, root+"/sub/.tmp/runtime/rel.json")
	})
}

func TestLoadFillsEffectiveValues(t *testing.T) {
	doc := `version: 1
snapshots: [runtime_budget]
surfaces:
  - {id: runtime_h, owner: m, storage: {kind: memory}, truth: canonical, affects_health: true, affects_action_panel: true, journal: {mode: dual}}
  - {id: runtime_p, owner: m, storage: {kind: memory}, truth: canonical, affects_action_panel: true, journal: {mode: dual}}
  - {id: runtime_n, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_b, owner: m, storage: {kind: memory}, truth: canonical, affects_health: true, snapshot_hint: runtime_budget, journal: {mode: dual}}
`
	r, err := Parse([]byte(doc), "effective.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	hints := map[string]string{"runtime_h": SnapshotHealth, "runtime_p": SnapshotActionPanel, "runtime_n": SnapshotNone, "runtime_b": "runtime_budget"}
	for id, hint := range hints {
		s, _ := r.Lookup(id)
		if s.SnapshotHint != hint {
			t.Errorf("%s snapshot hint = %q, want %q", id, s.SnapshotHint, hint)
		}
		want(t, s.Authority, AuthorityNone)
		want(t, slices.Equal(s.ChangeTypes, record.ChangeTypes()), true)
		if s.DerivedFrom == nil || s.Journal.OwnerSources == nil {
			t.Errorf("%s has nil lists", id)
		}
	}
	want(t, strings.Join(r.SnapshotIDs(), ","), "runtime_health,runtime_action_panel,runtime_budget")
	want(t, r.ValidSnapshotHint("runtime_budget"), true)
	want(t, r.ValidSnapshotHint(SnapshotNone), true)
	want(t, r.ValidSnapshotHint("runtime_bugdet"), false)
	want(t, r.SuggestSnapshot("runtime_bugdet"), "runtime_budget")
	want(t, r.Name(), "effective.yaml")
	want(t, strings.Join(r.IDs(), ","), "runtime_h,runtime_p,runtime_n,runtime_b")
}

func TestCountByModeListsEveryMode(t *testing.T) {
	doc := `version: 1
surfaces:
  - {id: runtime_a, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_b, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: dual}}
  - {id: runtime_c, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: disabled}}
`
	r, err := Parse([]byte(doc), "modes.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	got := r.CountByMode()
	wantCounts := map[string]int{ModeDisabled: 1, ModeFallback: 0, ModeDual: 2, ModeProven: 0}
	if !reflect.DeepEqual(got, wantCounts) {
		t.Errorf("CountByMode = %v, want %v", got, wantCounts)
	}
}

func TestRegistryIsSafeForConcurrentReaders(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := Default()
			for _, id := range r.IDs() {
				s, ok := r.Lookup(id)
				if !ok {
					t.Errorf("lookup %s failed", id)
					return
				}
				_ = s.Admit(s.Owner, "updated", false)
			}
			_ = r.Suggest("work_sesion")
			_ = r.Surfaces()
			_ = r.WithRoot("/srv/runtime").Digest()
		})
	}
	wg.Wait()
}

func TestSurfacesReturnsACopyOfTheCatalogOrder(t *testing.T) {
	r := Default()
	list := r.Surfaces()
	list[0] = nil
	if r.Surfaces()[0] == nil {
		t.Fatal("Surfaces exposed the registry's own slice")
	}
	want(t, r.Surfaces()[0].ID, "runtime_work_session")
}
