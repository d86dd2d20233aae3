package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
)

// Registry is a validated catalog of surfaces. It is immutable after it is
// built and safe for concurrent use; the *Surface values it returns are
// shared and must not be modified.
type Registry struct {
	name      string
	root      string
	surfaces  []*Surface          // catalog order
	byID      map[string]*Surface // every surface by id
	snapshots []string            // built-in snapshot ids, then declared ones
	digest    string
}

// Name says where the registry was read from: the file name given to Load
// or Parse, or "embedded:surfaces.yaml" for Default.
func (r *Registry) Name() string { return r.name }

// Root is the absolute directory relative storage paths were resolved
// against by WithRoot, or "" when WithRoot was not called.
func (r *Registry) Root() string { return r.root }

// Len is the number of surfaces.
func (r *Registry) Len() int { return len(r.surfaces) }

// Lookup returns the surface with exactly this id.
func (r *Registry) Lookup(id string) (*Surface, bool) {
	s, ok := r.byID[id]
	return s, ok
}

// Surfaces returns the surfaces in catalog order. The slice is the
// caller's; the surfaces are shared.
func (r *Registry) Surfaces() []*Surface { return slices.Clone(r.surfaces) }

// IDs returns the surface ids in catalog order.
func (r *Registry) IDs() []string {
	ids := make([]string, len(r.surfaces))
	for i, s := range r.surfaces {
		ids[i] = s.ID
	}
	return ids
}

// SnapshotIDs returns the snapshot ids records may name as snapshot_hint:
// runtime_health, runtime_action_panel, then those the registry declares
// under snapshots:. "none" is not among them but is always a valid hint
// (see ValidSnapshotHint).
func (r *Registry) SnapshotIDs() []string { return slices.Clone(r.snapshots) }

// ValidSnapshotHint reports whether hint is a snapshot id of this registry
// or "none".
func (r *Registry) ValidSnapshotHint(hint string) bool {
	return hint == SnapshotNone || slices.Contains(r.snapshots, hint)
}

// CountByMode returns how many surfaces are in each journal mode. Every mode
// is present, with 0 when no surface is in it.
func (r *Registry) CountByMode() map[string]int {
	out := make(map[string]int, len(modes))
	for _, m := range modes {
		out[m] = 0
	}
	for _, s := range r.surfaces {
		out[s.Journal.Mode]++
	}
	return out
}

// Digest is the SHA-256 (hex) of the registry's canonical encoding, to tell
// which registry a journal was checked against. It changes when any declared
// attribute changes (descriptions included) and does not change with
// formatting, comments, key order, YAML versus JSON, the order of surfaces
// or of set-valued lists, or WithRoot.
func (r *Registry) Digest() string { return r.digest }

// WithRoot returns a copy of r whose surfaces have Storage.Resolved set:
// relative paths of file, dir and db storage are joined to root (made
// absolute first; "" is the working directory), absolute paths are kept as
// they are (cleaned). Memory storage and db URLs (paths containing "://")
// have no resolved path. r itself is unchanged.
func (r *Registry) WithRoot(root string) *Registry {
	abs, err := filepath.Abs(root)
	if err != nil {
		abs = filepath.Clean(root)
	}
	out := *r
	out.root = abs
	out.surfaces = make([]*Surface, len(r.surfaces))
	out.byID = make(map[string]*Surface, len(r.byID))
	for i, s := range r.surfaces {
		c := *s
		c.Storage.Resolved = resolve(abs, c.Storage)
		out.surfaces[i] = &c
		out.byID[c.ID] = &c
	}
	return &out
}

func resolve(root string, st Storage) string {
	switch {
	case st.Path == "", st.Kind == StorageMemory:
		return ""
	case st.Kind == StorageDB && strings.Contains(st.Path, "://"):
		return ""
	case filepath.IsAbs(st.Path):
		return filepath.Clean(st.Path)
	}
	return filepath.Join(root, st.Path)
}

// digestDomain separates this encoding from any other hashed with SHA-256.
const digestDomain = "statejournal/surface-registry/v1\n"

func digest(r *Registry) string {
	type canonical struct {
		Version   int        `json:"version"`
		Snapshots []string   `json:"snapshots"`
		Surfaces  []*Surface `json:"surfaces"`
	}
	c := canonical{Version: 1, Snapshots: slices.Clone(r.snapshots)}
	slices.Sort(c.Snapshots)
	for _, s := range r.surfaces {
		cs := *s
		cs.Storage.Resolved = ""
		cs.DerivedFrom = sortedCopy(cs.DerivedFrom)
		cs.Journal.OwnerSources = sortedCopy(cs.Journal.OwnerSources)
		cs.ChangeTypes = slices.Clone(cs.ChangeTypes)
		slices.SortFunc(cs.ChangeTypes, func(a, b string) int {
			return slices.Index(changeTypeList, a) - slices.Index(changeTypeList, b)
		})
		c.Surfaces = append(c.Surfaces, &cs)
	}
	slices.SortFunc(c.Surfaces, func(a, b *Surface) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(c)
	if err != nil {
		panic("registry: encode canonical registry: " + err.Error()) // strings and bools only; cannot fail
	}
	h := sha256.New()
	h.Write([]byte(digestDomain))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sortedCopy(s []string) []string {
	c := slices.Clone(nonNil(s))
	slices.Sort(c)
	return c
}
