package registry

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/types"
)

// okSurface is a valid surface entry to build bad files around.
const okSurface = `  - id: runtime_alpha
    owner: runtime.alpha
    storage: {kind: file, path: .tmp/alpha.json}
    truth: canonical
    journal: {mode: dual}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadErr loads path and returns its *LoadError, failing unless the load
// failed with one that matches types.ErrBadRegistry.
func loadErr(t *testing.T, path string) *LoadError {
	t.Helper()
	r, err := Load(path)
	if err == nil {
		t.Fatalf("Load(%s) succeeded with %d surfaces, want an error", path, r.Len())
	}
	if !errors.Is(err, types.ErrBadRegistry) {
		t.Fatalf("error does not match types.ErrBadRegistry: %v", err)
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error is not a *LoadError: %v", err)
	}
	if le.File != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file %s: %v", path, err)
	}
	return le
}

type wantProblem struct {
	field      string
	value      string
	problem    string // substring of Problem
	line       int
	index      int
	suggestion string
	allowed    string // one value Allowed must hold, if set
}

func findProblem(t *testing.T, le *LoadError, w wantProblem) {
	t.Helper()
	for _, p := range le.Problems {
		if p.Err.Field != w.field {
			continue
		}
		fe := p.Err
		if !errors.Is(fe, types.ErrBadRegistry) {
			t.Errorf("%s: kind %v, want ErrBadRegistry", w.field, fe.Kind)
		}
		if w.value != "" && fe.Value != w.value {
			t.Errorf("%s: value %q, want %q", w.field, fe.Value, w.value)
		}
		if !strings.Contains(fe.Problem, w.problem) {
			t.Errorf("%s: problem %q, want it to say %q", w.field, fe.Problem, w.problem)
		}
		if w.line != 0 && p.Line != w.line {
			t.Errorf("%s: line %d, want %d", w.field, p.Line, w.line)
		}
		if fe.Index != w.index {
			t.Errorf("%s: index %d, want %d", w.field, fe.Index, w.index)
		}
		if fe.Suggestion != w.suggestion {
			t.Errorf("%s: suggestion %q, want %q", w.field, fe.Suggestion, w.suggestion)
		}
		if w.allowed != "" && !slices.Contains(fe.Allowed, w.allowed) {
			t.Errorf("%s: allowed %v, want it to hold %q", w.field, fe.Allowed, w.allowed)
		}
		return
	}
	t.Errorf("no problem on field %q; got:\n%v", w.field, le)
}

func TestLoadRejectsBadRegistryFiles(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		want    wantProblem
		only    bool // the problem must be the only one
	}{
		{
			name:    "a duplicate id is reported at its second declaration",
			file:    "dup.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + okSurface,
			want:    wantProblem{field: "surfaces[1].id", value: "runtime_alpha", problem: "declared more than once (first at surfaces[0], line 3)", line: 8, index: 1},
			only:    true,
		},
		{
			name: "an unknown derived_from suggests the closest id",
			file: "derived.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + `  - id: runtime_beta
    owner: runtime.beta
    storage: {kind: memory}
    truth: derived
    derived_from: [runtime_alpah]
    journal: {mode: dual}
`,
			want: wantProblem{field: "surfaces[1].derived_from[0]", value: "runtime_alpah", problem: "is not a registered surface id", line: 12, index: 1, suggestion: "runtime_alpha"},
			only: true,
		},
		{
			name:    "a bad storage kind lists the kinds and suggests one",
			file:    "kind.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "kind: file", "kind: fiel", 1),
			want:    wantProblem{field: "surfaces[0].storage.kind", value: "fiel", problem: "is not one of the allowed values", line: 5, index: 0, suggestion: "file", allowed: "memory"},
			only:    true,
		},
		{
			name:    "a bad truth lists canonical and derived",
			file:    "truth.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "truth: canonical", "truth: canon", 1),
			want:    wantProblem{field: "surfaces[0].truth", value: "canon", problem: "is not one of the allowed values", line: 6, index: 0, allowed: "derived"},
			only:    true,
		},
		{
			name:    "a bad authority lists none and adjacent",
			file:    "authority.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    authority: adjacant\n",
			want:    wantProblem{field: "surfaces[0].authority", value: "adjacant", problem: "is not one of the allowed values", line: 8, index: 0, suggestion: "adjacent", allowed: "none"},
			only:    true,
		},
		{
			name:    "a bad journal mode lists the four modes",
			file:    "mode.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "mode: dual", "mode: dule", 1),
			want:    wantProblem{field: "surfaces[0].journal.mode", value: "dule", problem: "is not one of the allowed values", line: 7, index: 0, suggestion: "dual", allowed: "proven"},
			only:    true,
		},
		{
			name:    "a bad change type lists the change types",
			file:    "ct.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    change_types: [created, hearbeat]\n",
			want:    wantProblem{field: "surfaces[0].change_types[1]", value: "hearbeat", problem: "is not a change type", line: 8, index: 0, suggestion: "heartbeat", allowed: "invalidated"},
			only:    true,
		},
		{
			name:    "a bad snapshot hint lists the snapshot ids and none",
			file:    "hint.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    snapshot_hint: runtime_helth\n",
			want:    wantProblem{field: "surfaces[0].snapshot_hint", value: "runtime_helth", problem: "is not a snapshot id this registry declares", line: 8, index: 0, suggestion: "runtime_health", allowed: "none"},
			only:    true,
		},
		{
			name:    "an unknown key is an error with a did-you-mean",
			file:    "unknown.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    affects_heath: true\n",
			want:    wantProblem{field: "surfaces[0].affects_heath", problem: "is not a known field", line: 8, index: 0, suggestion: "affects_health", allowed: "affects_health"},
			only:    true,
		},
		{
			name:    "an unknown top-level key is an error",
			file:    "top.yaml",
			content: "version: 1\nsurface:\n" + okSurface,
			want:    wantProblem{field: "surface", problem: "is not a known field", line: 2, index: -1, suggestion: "surfaces"},
		},
		{
			name:    "a malformed id is refused with the id rule",
			file:    "id.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "id: runtime_alpha", "id: Runtime-Alpha", 1),
			want:    wantProblem{field: "surfaces[0].id", value: "Runtime-Alpha", problem: "lowercase letters, digits and underscores", line: 3, index: 0},
			only:    true,
		},
		{
			name:    "a missing id is required",
			file:    "noid.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "- id: runtime_alpha\n    owner", "- owner", 1),
			want:    wantProblem{field: "surfaces[0].id", problem: "is required", line: 3, index: 0},
			only:    true,
		},
		{
			name:    "a missing owner is required",
			file:    "noowner.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "owner: runtime.alpha", "owner: ''", 1),
			want:    wantProblem{field: "surfaces[0].owner", problem: "is required", line: 4, index: 0},
			only:    true,
		},
		{
			name:    "a derived surface without derived_from is refused",
			file:    "noderived.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "truth: canonical", "truth: derived", 1),
			want:    wantProblem{field: "surfaces[0].derived_from", problem: "is required when truth is derived", line: 3, index: 0},
			only:    true,
		},
		{
			name:    "a canonical surface with derived_from is refused",
			file:    "canonical.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    derived_from: [runtime_alpha]\n",
			want:    wantProblem{field: "surfaces[0].derived_from", problem: "must be empty when truth is canonical", line: 8, index: 0},
			only:    true,
		},
		{
			name:    "a surface derived from itself is refused",
			file:    "self.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "truth: canonical", "truth: derived\n    derived_from: [runtime_alpha]", 1),
			want:    wantProblem{field: "surfaces[0].derived_from[0]", value: "runtime_alpha", problem: "names the surface itself", line: 7, index: 0},
			only:    true,
		},
		{
			name: "a derivation cycle is refused once, on its first surface",
			file: "cycle.yaml",
			content: `version: 1
surfaces:
  - {id: runtime_a, owner: m, storage: {kind: memory}, truth: derived, derived_from: [runtime_b], journal: {mode: dual}}
  - {id: runtime_b, owner: m, storage: {kind: memory}, truth: derived, derived_from: [runtime_a], journal: {mode: dual}}
`,
			want: wantProblem{field: "surfaces[0].derived_from", problem: "forms a derivation cycle: runtime_a → runtime_b → runtime_a", line: 3, index: 0},
			only: true,
		},
		{
			name:    "file storage without a path is refused",
			file:    "nopath.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "{kind: file, path: .tmp/alpha.json}", "{kind: file}", 1),
			want:    wantProblem{field: "surfaces[0].storage.path", problem: `is required for storage kind "file"`, line: 5, index: 0},
			only:    true,
		},
		{
			name: "an authority-adjacent surface in dual mode must list owner sources",
			file: "owners.yaml",
			content: `version: 1
surfaces:
  - id: runtime_approvals
    owner: runtime.approvals
    storage: {kind: dir, path: .tmp/approvals/}
    truth: canonical
    authority: adjacent
    journal: {mode: dual, mutation_path: runtime/approvals.Store.Apply}
`,
			want: wantProblem{field: "surfaces[0].journal.owner_sources", problem: "is required on an authority-adjacent surface", line: 8, index: 0},
			only: true,
		},
		{
			name:    "owner sources on a surface that is not authority-adjacent are refused",
			file:    "notadjacent.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "{mode: dual}", "{mode: dual, owner_sources: [runtime.alpha]}", 1),
			want:    wantProblem{field: "surfaces[0].journal.owner_sources", value: "runtime.alpha", problem: "only allowed on authority-adjacent surfaces", line: 7, index: 0},
			only:    true,
		},
		{
			name:    "a value of the wrong type names the type it must be",
			file:    "bool.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    affects_health: \"yes\"\n",
			want:    wantProblem{field: "surfaces[0].affects_health", value: "yes", problem: "must be true or false, not a string", line: 8, index: 0, allowed: "true"},
			only:    true,
		},
		{
			name:    "a scalar where a list belongs is refused",
			file:    "list.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    change_types: heartbeat\n",
			want:    wantProblem{field: "surfaces[0].change_types", value: "heartbeat", problem: "must be a list of strings", line: 8, index: 0},
			only:    true,
		},
		{
			name:    "a mapping written as a scalar is reported once, without follow-on problems",
			file:    "shape.yaml",
			content: "version: 1\nsurfaces:\n" + strings.Replace(okSurface, "{kind: file, path: .tmp/alpha.json}", "file", 1),
			want:    wantProblem{field: "surfaces[0].storage", value: "file", problem: "must be a mapping (keys: kind, path), not a string", line: 5, index: 0},
			only:    true,
		},
		{
			name:    "a key set twice in one mapping is refused",
			file:    "twice.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    owner: runtime.other\n",
			want:    wantProblem{field: "surfaces[0].owner", problem: "is set more than once in the same mapping (first at line 4)", line: 8, index: 0},
			only:    true,
		},
		{
			name:    "an unknown version is refused without judging the rest",
			file:    "v2.yaml",
			content: "version: 2\nsurfaces:\n  - id: X\n    bogus: 1\n",
			want:    wantProblem{field: "version", value: "2", problem: "is not a supported registry version", line: 1, index: -1, allowed: "1"},
			only:    true,
		},
		{
			name:    "a missing version is required",
			file:    "nov.yaml",
			content: "surfaces:\n" + okSurface,
			want:    wantProblem{field: "version", problem: "is required", index: -1, allowed: "1"},
			only:    true,
		},
		{
			name:    "malformed YAML names its line",
			file:    "syntax.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    description: \"unterminated\n",
			want:    wantProblem{field: "document", problem: "is not valid YAML", line: 8, index: -1},
			only:    true,
		},
		{
			name:    "two YAML documents in one file are refused",
			file:    "two.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "---\nversion: 1\n",
			want:    wantProblem{field: "document", problem: "more than one YAML document", line: 8, index: -1},
			only:    true,
		},
		{
			name:    "an empty file is refused",
			file:    "empty.yaml",
			content: "# nothing here\n",
			want:    wantProblem{field: "document", problem: "is empty", index: -1},
			only:    true,
		},
		{
			name:    "an empty catalog is refused",
			file:    "nosurfaces.yaml",
			content: "version: 1\nsurfaces: []\n",
			want:    wantProblem{field: "surfaces", problem: "declares no surfaces", line: 2, index: -1},
			only:    true,
		},
		{
			name:    "none is not a declarable snapshot id",
			file:    "snapnone.yaml",
			content: "version: 1\nsnapshots: [none]\nsurfaces:\n" + okSurface,
			want:    wantProblem{field: "snapshots[0]", value: "none", problem: "is reserved", line: 2, index: -1},
			only:    true,
		},
		{
			name: "a JSON field in the wrong case is unknown, with its line",
			file: "case.json",
			content: `{
  "version": 1,
  "surfaces": [
    {"id": "runtime_alpha", "Owner": "runtime.alpha", "owner": "runtime.alpha",
     "storage": {"kind": "memory"}, "truth": "canonical", "journal": {"mode": "dual"}}
  ]
}`,
			want: wantProblem{field: "surfaces[0].Owner", problem: "is not a known field", line: 4, index: 0, suggestion: "owner"},
			only: true,
		},
		{
			name: "a JSON field that is not in the schema is unknown",
			file: "unknown.json",
			content: `{"version": 1, "surfaces": [
  {"id": "runtime_alpha", "owner": "runtime.alpha", "truth": "canonical", "journal": {"mode": "dual"},
   "storage": {"kind": "file", "path": ".tmp/a.json", "resolved_path": "/abs"}}]}`,
			want: wantProblem{field: "surfaces[0].storage.resolved_path", problem: "is not a known field", line: 3, index: 0},
			only: true,
		},
		{
			name:    "malformed JSON names its line",
			file:    "syntax.json",
			content: "{\n  \"version\": 1,\n  \"surfaces\": [\n    {\"id\": \"runtime_alpha\",}\n  ]\n}\n",
			want:    wantProblem{field: "document", problem: "is not valid JSON: invalid character '}'", line: 4, index: -1},
			only:    true,
		},
		{
			name:    "a .json file holding YAML is read as JSON",
			file:    "yaml.json",
			content: "version: 1\nsurfaces:\n" + okSurface,
			want:    wantProblem{field: "document", problem: "is not valid JSON", line: 1, index: -1},
			only:    true,
		},
		{
			name:    "data after the JSON object is refused",
			file:    "trailing.json",
			content: "{\"version\": 1, \"surfaces\": []}\n{}\n",
			want:    wantProblem{field: "document", problem: "unexpected data after the top-level value", line: 2, index: -1},
			only:    true,
		},
		{
			name:    "a JSON key set twice is refused, which encoding/json would let pass",
			file:    "dupkey.json",
			content: "{\"version\": 1,\n \"surfaces\": [],\n \"version\": 1}",
			want:    wantProblem{field: "version", problem: "is set more than once in the same mapping (first at line 1)", line: 3, index: -1},
		},
		{
			name:    "a JSON document nested absurdly deep is refused",
			file:    "deep.json",
			content: `{"version": 1, "surfaces": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "}",
			want:    wantProblem{field: "document", problem: "nests deeper than 64 levels", line: 1, index: -1},
			only:    true,
		},
		{
			name: "a YAML alias bomb is refused before it is expanded",
			file: "bomb.yaml",
			content: `version: 1
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
surfaces: *f
`,
			want: wantProblem{field: "document", problem: "holds more than 100000 values", index: -1},
			only: true,
		},
		{
			name:    "a surface that is not a mapping is refused once",
			file:    "scalar.yaml",
			content: "version: 1\nsurfaces:\n  - runtime_alpha\n",
			want:    wantProblem{field: "surfaces[0]", value: "runtime_alpha", problem: "must be a mapping describing one surface", line: 3, index: 0},
			only:    true,
		},
		{
			name:    "an empty key is named readably",
			file:    "emptykey.yaml",
			content: "version: 1\nsurfaces:\n" + okSurface + "    \"\": 1\n",
			want:    wantProblem{field: `surfaces[0][""]`, problem: "is not a known field", line: 8, index: 0},
			only:    true,
		},
		{
			name:    "a JSON number where a string belongs names the type",
			file:    "number.json",
			content: `{"version": 1, "surfaces": [{"id": "runtime_alpha", "owner": 7, "storage": {"kind": "memory"}, "truth": "canonical", "journal": {"mode": "dual"}}]}`,
			want:    wantProblem{field: "surfaces[0].owner", value: "7", problem: "must be a string, not a number", line: 1, index: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			le := loadErr(t, writeFile(t, tt.file, tt.content))
			findProblem(t, le, tt.want)
			if tt.only && len(le.Problems) != 1 {
				t.Errorf("want exactly one problem, got %d:\n%v", len(le.Problems), le)
			}
		})
	}
}

func TestLoadReportsEveryProblemInOnePass(t *testing.T) {
	content := `version: 1
surfaces:
  - id: runtime_alpha
    owner: runtime.alpha
    storage: {kind: tape, path: .tmp/a.json}
    truth: canonical
    journal: {mode: dual}
  - id: runtime_beta
    owner: runtime.beta
    storage: {kind: memory}
    truth: derived
    derived_from: [runtime_gamma]
    journal: {mode: sometimes}
  - id: runtime_alpha
    owner: runtime.alpha
    storage: {kind: memory}
    truth: canonical
    color: blue
    journal: {mode: dual}
`
	le := loadErr(t, writeFile(t, "many.yaml", content))
	var fields []string
	for _, p := range le.Problems {
		fields = append(fields, p.Err.Field)
	}
	wantFields := []string{
		"surfaces[0].storage.kind",
		"surfaces[1].derived_from[0]",
		"surfaces[1].journal.mode",
		"surfaces[2].id",
		"surfaces[2].color",
	}
	if !slices.Equal(fields, wantFields) {
		t.Fatalf("problems on %v, want %v in file order", fields, wantFields)
	}
	msg := le.Error()
	if lines := strings.Count(msg, "\n"); lines != len(wantFields) {
		t.Errorf("error has %d lines after the header, want one per problem:\n%s", lines, msg)
	}
	if !strings.Contains(msg, "many.yaml:13: surfaces[1].journal.mode \"sometimes\" is not one of the allowed values; allowed: disabled, fallback, dual, proven") {
		t.Errorf("error does not render file:line: field value problem allowed:\n%s", msg)
	}
	var fe *types.FieldError
	if !errors.As(error(le), &fe) || fe.Field != "surfaces[0].storage.kind" {
		t.Errorf("errors.As found %v, want the first problem", fe)
	}
	if got := types.Code(le); got != "bad_registry" {
		t.Errorf("Code = %q, want bad_registry", got)
	}
}

func TestLoadAcceptsAnAdjacentSurfaceWithoutMutationPathButAdmitRejectsIt(t *testing.T) {
	path := writeFile(t, "unwired.yaml", `version: 1
surfaces:
  - id: runtime_approvals
    owner: runtime.approvals
    storage: {kind: dir, path: .tmp/approvals/}
    truth: canonical
    authority: adjacent
    journal: {mode: fallback, owner_sources: [runtime.approvals]}
`)
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Lookup("runtime_approvals")
	err = s.Admit("runtime.approvals", "created", false)
	if !errors.Is(err, types.ErrPolicy) || !strings.Contains(err.Error(), "mutation_path") {
		t.Fatalf("Admit = %v, want a policy error about the missing mutation_path", err)
	}
}

func TestLoadChoosesTheFormat(t *testing.T) {
	jsonDoc := `{"version": 1, "surfaces": [{"id": "runtime_alpha", "owner": "runtime.alpha", "storage": {"kind": "memory"}, "truth": "canonical", "journal": {"mode": "dual"}}]}`
	yamlDoc := "version: 1\nsurfaces:\n" + okSurface
	tests := []struct {
		name, file, content string
	}{
		{"a .json file is read as JSON", "r.json", jsonDoc},
		{"a .yml file is read as YAML", "r.yml", yamlDoc},
		{"a .YAML file is read as YAML", "r.YAML", yamlDoc},
		{"a file without extension holding JSON is read as JSON", "surfaces", jsonDoc},
		{"a file without extension holding YAML is read as YAML", "surfaces", yamlDoc},
		{"a YAML flow mapping is read as YAML", "flow", `{version: 1, surfaces: [{id: runtime_alpha, owner: m, storage: {kind: memory}, truth: canonical, journal: {mode: dual}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file, tt.content)
			r, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want(t, r.Name(), path)
			if _, ok := r.Lookup("runtime_alpha"); !ok {
				t.Errorf("runtime_alpha not loaded from %s", tt.file)
			}
		})
	}
	if _, err := Parse([]byte(yamlDoc), "x", "toml"); !errors.Is(err, types.ErrBadRegistry) || !strings.Contains(err.Error(), "toml") {
		t.Errorf("Parse with format toml = %v, want a bad-registry error naming the format", err)
	}
}

func TestLoadOfAMissingFileWrapsBothCauses(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, types.ErrBadRegistry) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v, want ErrBadRegistry and fs.ErrNotExist", err)
	}
}

func TestLoadRefusesAnOversizedFile(t *testing.T) {
	path := writeFile(t, "huge.yaml", "version: 1\n# "+strings.Repeat("x", MaxFileSize)+"\n")
	le := loadErr(t, path)
	findProblem(t, le, wantProblem{field: "document", problem: "is larger than", index: -1})
}

func TestYAMLAnchorsAndMergeKeysWork(t *testing.T) {
	doc := `version: 1
x-adjacent: &adjacent
  authority: adjacent
surfaces:
  - &base
    id: runtime_alpha
    owner: runtime.alpha
    storage: {kind: memory}
    truth: canonical
    journal: &dual {mode: dual}
  - <<: *base
    id: runtime_beta
    journal: *dual
`
	_, err := Parse([]byte(doc), "anchors.yaml", "")
	// The unknown top-level key is still an error, even when only used as an anchor.
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 || le.Problems[0].Err.Field != "x-adjacent" {
		t.Fatalf("err = %v, want only x-adjacent reported", err)
	}
	doc = strings.Replace(doc, "x-adjacent: &adjacent\n  authority: adjacent\n", "", 1)
	r, err := Parse([]byte(doc), "anchors.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.Lookup("runtime_beta")
	want(t, b.Owner, "runtime.alpha")
	want(t, b.Journal.Mode, ModeDual)
	want(t, strings.Join(r.IDs(), ","), "runtime_alpha,runtime_beta")
}

func TestDefaultPassesLoadFromAFile(t *testing.T) {
	r, err := Load(writeFile(t, "surfaces.yaml", string(DefaultYAML())))
	if err != nil {
		t.Fatal(err)
	}
	want(t, r.Digest(), Default().Digest())
	want(t, Default().Name(), "embedded:surfaces.yaml")
}
