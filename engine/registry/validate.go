package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// idPattern is the shape of surface and snapshot ids.
var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

const idRule = "is not a valid id: use 2 to 64 lowercase letters, digits and underscores, starting with a letter"

type validator struct {
	c *collector
}

// add records a problem unless the field, or a field above it, already has
// the wrong shape.
func (v validator) add(index int, field, value, problem string, allowed []string, suggestion string) {
	if v.c.underMisshapen(field) {
		return
	}
	v.c.add(index, field, value, problem, allowed, suggestion)
}

// enum checks a required field against its allowed values.
func (v validator) enum(i int, field, value string, allowed []string) {
	switch {
	case value == "":
		v.add(i, field, "", "is required", allowed, "")
	case !slices.Contains(allowed, value):
		v.add(i, field, value, "is not one of the allowed values", allowed, closest(value, allowed))
	}
}

// validate checks the meaning of a decoded file and, when nothing is wrong
// with it (nor with its shape, as c already knows), builds the registry.
func validate(f fileRegistry, c *collector) *Registry {
	v := validator{c: c}

	snapshots := v.snapshots(f.Snapshots)
	hints := append(slices.Clone(snapshots), SnapshotNone)

	if len(f.Surfaces) == 0 {
		v.add(-1, "surfaces", "", "declares no surfaces; a registry needs at least one", nil, "")
	}

	// Index the ids first: derived_from may name a surface declared later.
	first := make(map[string]int)
	known := &Registry{byID: make(map[string]*Surface)}
	for i := range f.Surfaces {
		s := &f.Surfaces[i]
		if f.broken[i] || !idPattern.MatchString(s.ID) {
			continue
		}
		if _, dup := first[s.ID]; !dup {
			first[s.ID] = i
			known.surfaces = append(known.surfaces, s)
			known.byID[s.ID] = s
		}
	}

	for i := range f.Surfaces {
		if f.broken[i] {
			continue
		}
		v.surface(i, &f.Surfaces[i], first, known, hints)
	}
	v.cycles(f.Surfaces, f.broken, first)

	if len(c.problems) > 0 {
		return nil
	}
	return build(f.Surfaces, snapshots)
}

// snapshots checks the declared snapshot ids and returns every snapshot id:
// the built-in ones, then the declared ones in order.
func (v validator) snapshots(declared []string) []string {
	out := slices.Clone(builtinSnaps)
	seen := make(map[string]int)
	for k, id := range declared {
		field := at("snapshots", k)
		switch {
		case id == SnapshotNone:
			v.add(-1, field, id, `is reserved: "none" is the hint for no snapshot, not a snapshot id`, nil, "")
		case !idPattern.MatchString(id):
			v.add(-1, field, id, idRule, nil, "")
		case slices.Contains(builtinSnaps, id):
			// Declaring a built-in id again is harmless.
		default:
			if j, dup := seen[id]; dup {
				v.add(-1, field, id, fmt.Sprintf("is declared more than once (first at snapshots[%d])", j), nil, "")
				continue
			}
			seen[id] = k
			out = append(out, id)
		}
	}
	return out
}

func (v validator) surface(i int, s *Surface, first map[string]int, known *Registry, hints []string) {
	p := at("surfaces", i)
	f := func(name string) string { return p + "." + name } // name is a known, plain path

	switch {
	case s.ID == "":
		v.add(i, f("id"), "", "is required", nil, "")
	case !idPattern.MatchString(s.ID):
		v.add(i, f("id"), s.ID, idRule, nil, "")
	case first[s.ID] != i:
		j := first[s.ID]
		v.add(i, f("id"), s.ID, fmt.Sprintf("is declared more than once (first at surfaces[%d], line %d)", j, v.c.lineOf(join(at("surfaces", j), "id"))), nil, "")
	}

	if strings.TrimSpace(s.Owner) == "" {
		v.add(i, f("owner"), s.Owner, "is required: the module that owns the surface, e.g. runtime.work_session", nil, "")
	}

	v.enum(i, f("storage.kind"), s.Storage.Kind, storageKinds)
	if (s.Storage.Kind == StorageFile || s.Storage.Kind == StorageDir) && strings.TrimSpace(s.Storage.Path) == "" {
		v.add(i, f("storage.path"), s.Storage.Path, fmt.Sprintf("is required for storage kind %q", s.Storage.Kind), nil, "")
	}
	if strings.ContainsRune(s.Storage.Path, 0) {
		v.add(i, f("storage.path"), s.Storage.Path, "must not contain a NUL byte", nil, "")
	}

	v.enum(i, f("truth"), s.Truth, truths)
	switch {
	case s.Truth == TruthDerived && len(s.DerivedFrom) == 0:
		v.add(i, f("derived_from"), "", "is required when truth is derived: list the surfaces this one projects", nil, "")
	case s.Truth == TruthCanonical && len(s.DerivedFrom) > 0:
		v.add(i, f("derived_from"), strings.Join(s.DerivedFrom, ", "), "must be empty when truth is canonical: only derived surfaces project others", nil, "")
	}
	if s.Truth != TruthCanonical {
		seen := make(map[string]bool, len(s.DerivedFrom))
		for k, d := range s.DerivedFrom {
			field := at(f("derived_from"), k)
			switch {
			case d == s.ID:
				v.add(i, field, d, "names the surface itself; a projection derives from other surfaces", nil, "")
			case known.byID[d] == nil:
				v.add(i, field, d, "is not a registered surface id", nil, known.Suggest(d))
			case seen[d]:
				v.add(i, field, d, "is listed more than once", nil, "")
			}
			seen[d] = true
		}
	}

	if s.Authority != "" {
		v.enum(i, f("authority"), s.Authority, authorities)
	}
	if s.SnapshotHint != "" && !slices.Contains(hints, s.SnapshotHint) {
		v.add(i, f("snapshot_hint"), s.SnapshotHint, "is not a snapshot id this registry declares", hints, closest(s.SnapshotHint, hints))
	}
	seen := make(map[string]bool, len(s.ChangeTypes))
	for k, ct := range s.ChangeTypes {
		field := at(f("change_types"), k)
		switch {
		case !slices.Contains(changeTypeList, ct):
			v.add(i, field, ct, "is not a change type", changeTypeList, closest(ct, changeTypeList))
		case seen[ct]:
			v.add(i, field, ct, "is listed more than once", nil, "")
		}
		seen[ct] = true
	}

	v.enum(i, f("journal.mode"), s.Journal.Mode, modes)
	adjacent := s.Authority == AuthorityAdjacent
	if s.Authority == "" || s.Authority == AuthorityNone {
		if len(s.Journal.OwnerSources) > 0 {
			v.add(i, f("journal.owner_sources"), strings.Join(s.Journal.OwnerSources, ", "), "is only allowed on authority-adjacent surfaces (authority: adjacent), where it is enforced", nil, "")
		}
		if s.Journal.MutationPath != "" {
			v.add(i, f("journal.mutation_path"), s.Journal.MutationPath, "is only allowed on authority-adjacent surfaces (authority: adjacent)", nil, "")
		}
	}
	clear(seen)
	for k, src := range s.Journal.OwnerSources {
		field := at(f("journal.owner_sources"), k)
		switch {
		case strings.TrimSpace(src) == "":
			v.add(i, field, src, "must not be empty", nil, "")
		case strings.ContainsFunc(src, isSpace):
			v.add(i, field, src, "must not contain white space; a source is a module name such as runtime.approvals", nil, "")
		case seen[src]:
			v.add(i, field, src, "is listed more than once", nil, "")
		}
		seen[src] = true
	}
	if adjacent && s.Journal.Mode != ModeDisabled && slices.Contains(modes, s.Journal.Mode) && len(s.Journal.OwnerSources) == 0 {
		v.add(i, f("journal.owner_sources"), "", "is required on an authority-adjacent surface whose journal mode is not disabled: list the sources allowed to write it", nil, "")
	}
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// cycles reports derivation cycles (a derived from b derived from a). Each
// cycle is reported once, on the surface declared first in it.
func (v validator) cycles(surfaces []Surface, broken []bool, first map[string]int) {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(surfaces))
	var path []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = onPath
		path = append(path, i)
		if surfaces[i].Truth == TruthDerived {
			for _, d := range surfaces[i].DerivedFrom {
				j, ok := first[d]
				if !ok || j == i {
					continue
				}
				switch state[j] {
				case unseen:
					visit(j)
				case onPath:
					start := slices.Index(path, j)
					cycle := path[start:]
					lowest := slices.Min(cycle)
					names := make([]string, 0, len(cycle)+1)
					// Rotate so the message starts at the first-declared surface.
					at0 := slices.Index(cycle, lowest)
					for k := range cycle {
						names = append(names, surfaces[cycle[(at0+k)%len(cycle)]].ID)
					}
					names = append(names, surfaces[lowest].ID)
					v.add(lowest, join(at("surfaces", lowest), "derived_from"), "", "forms a derivation cycle: "+strings.Join(names, " → "), nil, "")
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
	}
	for i := range surfaces {
		if !broken[i] && state[i] == unseen && first[surfaces[i].ID] == i {
			visit(i)
		}
	}
}

// build turns validated surfaces into a registry, filling effective values.
func build(surfaces []Surface, snapshots []string) *Registry {
	r := &Registry{
		surfaces:  make([]*Surface, len(surfaces)),
		byID:      make(map[string]*Surface, len(surfaces)),
		snapshots: snapshots,
	}
	for i := range surfaces {
		s := surfaces[i]
		if s.Authority == "" {
			s.Authority = AuthorityNone
		}
		s.SnapshotHint = s.DefaultSnapshotHint()
		if len(s.ChangeTypes) == 0 {
			s.ChangeTypes = slices.Clone(changeTypeList)
		}
		s.DerivedFrom = nonNil(s.DerivedFrom)
		s.Journal.OwnerSources = nonNil(s.Journal.OwnerSources)
		r.surfaces[i] = &s
		r.byID[s.ID] = &s
	}
	r.digest = digest(r)
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
