package registry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/agentruntime/statejournal/types"
)

// The schema walk: it turns the parsed document into fileRegistry, reporting
// every unknown key, key set twice and value of the wrong shape with its path
// and line, and keeps going so one load reports everything.

// maxValueInMessage bounds an offending value quoted in an error.
const maxValueInMessage = 80

// Known keys, in the order the documentation lists them.
var (
	topKeys     = []string{"version", "snapshots", "surfaces"}
	surfaceKeys = []string{"id", "description", "owner", "storage", "truth", "derived_from",
		"affects_health", "affects_action_panel", "authority", "snapshot_hint", "change_types", "journal"}
	storageKeys = []string{"kind", "path"}
	journalKeys = []string{"mode", "owner_sources", "mutation_path"}
)

// fileRegistry is a registry file as written.
type fileRegistry struct {
	Version   int       `yaml:"version" json:"version"`
	Snapshots []string  `yaml:"snapshots" json:"snapshots"`
	Surfaces  []Surface `yaml:"surfaces" json:"surfaces"`

	// broken[i] is true when surfaces[i] is not a mapping at all, so
	// validation does not pile "is required" problems onto it.
	broken []bool
}

// collector gathers problems and remembers the line of every field path.
type collector struct {
	lines    map[string]int
	problems []Problem
	// misshapen holds the paths whose value had the wrong shape (a string
	// where a mapping belongs, ...): what validation would say about them
	// or about fields below them is noise.
	misshapen map[string]bool
}

func newCollector() *collector {
	return &collector{lines: make(map[string]int), misshapen: make(map[string]bool)}
}

// shape records a wrong-shape problem on field.
func (c *collector) shape(index int, field, value, problem string, allowed []string) {
	c.misshapen[field] = true
	c.add(index, field, value, problem, allowed, "")
}

// underMisshapen reports whether field or one of its parents had the wrong
// shape.
func (c *collector) underMisshapen(field string) bool {
	for f := field; f != ""; {
		if c.misshapen[f] {
			return true
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return false
}

// add records one problem on field (a path such as surfaces[3].journal.mode)
// of the surface at index (-1 for the top level).
func (c *collector) add(index int, field, value, problem string, allowed []string, suggestion string) {
	c.addAt(c.lineOf(field), index, field, value, problem, allowed, suggestion)
}

// addAt is add for a problem whose line is not the field's first line (a
// key set twice).
func (c *collector) addAt(line, index int, field, value, problem string, allowed []string, suggestion string) {
	c.problems = append(c.problems, Problem{
		Line: line,
		Err: &types.FieldError{
			Kind:       types.ErrBadRegistry,
			Field:      field,
			Value:      clip(value),
			Problem:    problem,
			Allowed:    allowed,
			Suggestion: suggestion,
			Index:      index,
		},
	})
}

// lineOf returns the line of field or of its nearest recorded parent.
func (c *collector) lineOf(field string) int {
	for f := field; f != ""; {
		if l, ok := c.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return c.lines[""]
}

func clip(s string) string { return types.Clip(s, maxValueInMessage) }

// join appends key to a field path. A key that is not a plain word (empty,
// or holding spaces, dots, quotes, ...) is written as ["key"] so the path
// stays readable and unambiguous.
func join(path, key string) string {
	if !plainKey(key) {
		return pathOr(path) + "[" + strconv.Quote(clip(key)) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(key string) bool {
	if key == "" || len(key) > maxValueInMessage {
		return false
	}
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func at(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// describe names what a node is, for "must be a string" style problems.
func describe(n *node) (value, kind string) {
	switch n.kind {
	case nodeMapping:
		return "", "a mapping"
	case nodeSequence:
		return "", "a list"
	case nodeNull:
		return "", "null"
	}
	switch n.typ {
	case scalarBool:
		return n.text, "a boolean"
	case scalarInt, scalarFloat:
		return n.text, "a number"
	case scalarBinary:
		return "", "binary data"
	}
	return n.text, "a string"
}

type walker struct {
	c *collector
}

// fields checks that n is a mapping with only known keys, each once, and
// returns the value of each key present. A null n is an empty mapping.
func (w walker) fields(n *node, path string, index int, known []string) map[string]*node {
	if n == nil || n.kind == nodeNull {
		return nil
	}
	if n.kind != nodeMapping {
		value, kind := describe(n)
		w.c.shape(index, pathOr(path), value, "must be a mapping (keys: "+strings.Join(known, ", ")+"), not "+kind, nil)
		return nil
	}
	out := make(map[string]*node, len(n.pairs))
	firstLine := make(map[string]int, len(n.pairs))
	for _, p := range n.pairs {
		field := join(path, p.key)
		if _, seen := w.c.lines[field]; !seen {
			w.c.lines[field] = p.line
		}
		if !slices.Contains(known, p.key) {
			w.c.add(index, field, "", "is not a known field", known, closest(p.key, known))
			continue
		}
		if first, dup := firstLine[p.key]; dup {
			if !p.merged {
				w.c.addAt(p.line, index, field, "", fmt.Sprintf("is set more than once in the same mapping (first at line %d)", first), nil, "")
			}
			continue
		}
		firstLine[p.key] = p.line
		out[p.key] = p.value
	}
	return out
}

func pathOr(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// str reads a string field; null reads as "".
func (w walker) str(n *node, path string, index int) string {
	if n == nil || n.kind == nodeNull {
		return ""
	}
	if n.kind == nodeScalar && (n.typ == scalarString || n.loose) {
		return n.text
	}
	value, kind := describe(n)
	w.c.shape(index, path, value, "must be a string, not "+kind, nil)
	return ""
}

// boolean reads a true/false field; null reads as false.
func (w walker) boolean(n *node, path string, index int) bool {
	if n == nil || n.kind == nodeNull {
		return false
	}
	if n.kind == nodeScalar && n.typ == scalarBool {
		switch strings.ToLower(n.text) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	value, kind := describe(n)
	w.c.shape(index, path, value, "must be true or false, not "+kind, []string{"true", "false"})
	return false
}

// strs reads a list of strings; null reads as an empty list.
func (w walker) strs(n *node, path string, index int) []string {
	if n == nil || n.kind == nodeNull {
		return nil
	}
	if n.kind != nodeSequence {
		value, kind := describe(n)
		w.c.shape(index, path, value, "must be a list of strings, not "+kind, nil)
		return nil
	}
	out := make([]string, 0, len(n.items))
	for i, item := range n.items {
		p := at(path, i)
		w.c.lines[p] = item.line
		if item.kind == nodeNull {
			w.c.shape(index, p, "", "must be a string, not null", nil)
			continue
		}
		out = append(out, w.str(item, p, index))
	}
	return out
}

// decodeFile walks the document root into a fileRegistry. ok is false when
// the file is not worth validating further (no document, unknown version).
func decodeFile(root *node, c *collector) (f fileRegistry, ok bool) {
	w := walker{c: c}
	if root == nil || root.kind == nodeNull {
		c.add(-1, "document", "", "is empty; a registry declares version: 1 and a list of surfaces", nil, "")
		return f, false
	}
	c.lines[""] = root.line
	if root.kind != nodeMapping {
		value, kind := describe(root)
		c.add(-1, "document", value, "must be a mapping with version, snapshots and surfaces, not "+kind, nil, "")
		return f, false
	}
	// The version decides how to read everything else, so judge it alone.
	var version *node
	for _, p := range root.pairs {
		if p.key == "version" {
			version, c.lines["version"] = p.value, p.line
			break
		}
	}
	if !checkVersion(version, c) {
		return f, false
	}
	f.Version = 1
	top := w.fields(root, "", -1, topKeys)
	f.Snapshots = w.strs(top["snapshots"], "snapshots", -1)
	if n := top["surfaces"]; n != nil && n.kind != nodeNull {
		if n.kind != nodeSequence {
			value, kind := describe(n)
			c.shape(-1, "surfaces", value, "must be a list of surfaces, not "+kind, nil)
		} else {
			f.Surfaces = make([]Surface, len(n.items))
			f.broken = make([]bool, len(n.items))
			for i, item := range n.items {
				f.Surfaces[i], f.broken[i] = w.surface(item, at("surfaces", i), i)
			}
		}
	}
	return f, true
}

func checkVersion(n *node, c *collector) bool {
	supported := []string{"1"}
	if n == nil || n.kind == nodeNull {
		c.add(-1, "version", "", "is required", supported, "")
		return false
	}
	if n.kind != nodeScalar || n.typ != scalarInt {
		value, kind := describe(n)
		c.add(-1, "version", value, "must be an integer, not "+kind, supported, "")
		return false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.text, "_", ""), 0, 64)
	if err != nil || v != 1 {
		c.add(-1, "version", n.text, "is not a supported registry version; this build reads version 1 only", supported, "")
		return false
	}
	return true
}

// surface walks one surfaces[i] entry; broken is true when it is not a
// mapping at all.
func (w walker) surface(n *node, path string, i int) (s Surface, broken bool) {
	w.c.lines[path] = n.line
	if n.kind != nodeMapping {
		value, kind := describe(n)
		w.c.shape(i, path, value, "must be a mapping describing one surface, not "+kind, nil)
		return s, true
	}
	m := w.fields(n, path, i, surfaceKeys)
	s.ID = w.str(m["id"], join(path, "id"), i)
	s.Description = w.str(m["description"], join(path, "description"), i)
	s.Owner = w.str(m["owner"], join(path, "owner"), i)
	sp := join(path, "storage")
	st := w.fields(m["storage"], sp, i, storageKeys)
	s.Storage.Kind = w.str(st["kind"], join(sp, "kind"), i)
	s.Storage.Path = w.str(st["path"], join(sp, "path"), i)
	s.Truth = w.str(m["truth"], join(path, "truth"), i)
	s.DerivedFrom = w.strs(m["derived_from"], join(path, "derived_from"), i)
	s.AffectsHealth = w.boolean(m["affects_health"], join(path, "affects_health"), i)
	s.AffectsActionPanel = w.boolean(m["affects_action_panel"], join(path, "affects_action_panel"), i)
	s.Authority = w.str(m["authority"], join(path, "authority"), i)
	s.SnapshotHint = w.str(m["snapshot_hint"], join(path, "snapshot_hint"), i)
	s.ChangeTypes = w.strs(m["change_types"], join(path, "change_types"), i)
	jp := join(path, "journal")
	j := w.fields(m["journal"], jp, i, journalKeys)
	s.Journal.Mode = w.str(j["mode"], join(jp, "mode"), i)
	s.Journal.OwnerSources = w.strs(j["owner_sources"], join(jp, "owner_sources"), i)
	s.Journal.MutationPath = w.str(j["mutation_path"], join(jp, "mutation_path"), i)
	return s, false
}
