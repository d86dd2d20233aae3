package registry

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/agentruntime/statejournal/types"
)

// MaxFileSize bounds a registry file. A catalog of a few dozen surfaces is a
// few KiB; the bound only keeps a wrong path (a log, a dump) from being read
// whole into memory.
const MaxFileSize = 4 << 20

// Formats accepted by Parse.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// maxProblemsShown bounds how many problems LoadError.Error renders.
const maxProblemsShown = 50

//go:embed surfaces.yaml
var defaultYAML []byte

// defaultName is the Name of the embedded registry.
const defaultName = "embedded:surfaces.yaml"

var defaultRegistry = sync.OnceValue(func() *Registry {
	r, err := Parse(defaultYAML, defaultName, FormatYAML)
	if err != nil {
		panic("registry: the embedded surfaces.yaml is invalid: " + err.Error())
	}
	return r
})

// Default returns the embedded default catalog. It is parsed once and
// shared (a Registry is immutable). It panics only if the embedded file is
// invalid, which the package's tests rule out.
func Default() *Registry { return defaultRegistry() }

// DefaultYAML returns a copy of the embedded catalog's YAML, e.g. as a
// starting point for an operator's own registry file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Problem is one thing wrong with a registry file.
type Problem struct {
	// Line is the 1-based line in the file the problem is on, 0 when
	// unknown.
	Line int
	// Err names the field, the value, the problem and what is allowed. Its
	// Kind is types.ErrBadRegistry; Index is the surface's position in the
	// file, -1 for problems outside surfaces.
	Err *types.FieldError
}

// LoadError is the error Load and Parse return for a registry file that
// does not validate: every problem found, in file order. It matches
// types.ErrBadRegistry with errors.Is, and errors.As finds each problem's
// *types.FieldError (the first, for a single target).
type LoadError struct {
	// File is the name the registry was loaded under.
	File string
	// Problems holds at least one problem.
	Problems []Problem
}

// Error renders one problem per line as "file:line: field "value" problem".
func (e *LoadError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid surface registry: ")
		b.WriteString(e.problem(0))
		return b.String()
	}
	fmt.Fprintf(&b, "invalid surface registry %s: %d problems", e.File, len(e.Problems))
	for i := range e.Problems {
		if i == maxProblemsShown {
			fmt.Fprintf(&b, "\n... and %d more", len(e.Problems)-maxProblemsShown)
			break
		}
		b.WriteString("\n")
		b.WriteString(e.problem(i))
	}
	return b.String()
}

func (e *LoadError) problem(i int) string {
	p := e.Problems[i]
	fe := *p.Err
	fe.Index = -1 // the field path already names the surface
	loc := e.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	return loc + ": " + fe.Error()
}

// Unwrap returns every problem's *types.FieldError.
func (e *LoadError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Err
	}
	return out
}

// Load reads and validates the registry file at path: JSON when the name
// ends in .json, YAML when it ends in .yaml or .yml, else judged by content.
// A file that does not validate yields a *LoadError naming the file, each
// problem's line, surface index and field; a file that cannot be read
// yields an error wrapping both types.ErrBadRegistry and the cause (e.g.
// fs.ErrNotExist).
func Load(path string) (*Registry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", types.ErrBadRegistry, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", types.ErrBadRegistry, path, err)
	}
	if len(data) > MaxFileSize {
		return nil, &LoadError{File: path, Problems: []Problem{{Err: &types.FieldError{
			Kind: types.ErrBadRegistry, Field: "document", Index: -1,
			Problem: fmt.Sprintf("is larger than %d bytes; is this the registry file?", MaxFileSize),
		}}}}
	}
	format := ""
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		format = FormatJSON
	case ".yaml", ".yml":
		format = FormatYAML
	}
	return Parse(data, path, format)
}

// Parse validates a registry held in memory. name is used in errors and as
// the registry's Name. format is "yaml", "json" or "" to decide by content
// (a document that starts with '{' and is valid JSON is read as JSON, as
// anything else is read as YAML). Errors are as for Load.
func Parse(data []byte, name string, format string) (*Registry, error) {
	if name == "" {
		name = "registry"
	}
	if format == "" {
		format = FormatYAML
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' && json.Valid(t) {
			format = FormatJSON
		}
	}
	var (
		root *node
		err  error
	)
	switch format {
	case FormatYAML:
		root, err = parseYAML(data)
	case FormatJSON:
		root, err = parseJSON(data)
	default:
		return nil, fmt.Errorf("%w: parse %s: unknown format %q (want %q, %q or \"\")", types.ErrBadRegistry, name, format, FormatYAML, FormatJSON)
	}
	c := newCollector()
	if err != nil {
		var pe *parseError
		if !errors.As(err, &pe) {
			pe = &parseError{problem: err.Error()}
		}
		c.lines["document"] = pe.line
		c.add(-1, "document", "", pe.problem, nil, "")
		return nil, c.err(name)
	}
	f, ok := decodeFile(root, c)
	if !ok {
		return nil, c.err(name)
	}
	r := validate(f, c)
	if r == nil {
		return nil, c.err(name)
	}
	r.name = name
	return r, nil
}

// err returns the collected problems as a *LoadError in file order.
func (c *collector) err(name string) error {
	sort.SliceStable(c.problems, func(i, j int) bool {
		li, lj := c.problems[i].Line, c.problems[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0 // known lines first
		}
		return li < lj
	})
	return &LoadError{File: name, Problems: c.problems}
}
