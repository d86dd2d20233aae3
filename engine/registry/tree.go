package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The parsed document, in one shape for YAML and JSON, with the line of every
// key, so the schema walk (decode.go) can name paths and lines and report
// every problem rather than the first.

// Limits on a parsed document. A registry is a few dozen surfaces; these
// only stop hostile input (alias bombs, deep nesting) from costing memory or
// stack.
const (
	maxDepth = 64
	maxNodes = 100_000
)

type nodeKind uint8

const (
	nodeNull nodeKind = iota
	nodeScalar
	nodeMapping
	nodeSequence
)

type scalarType uint8

const (
	scalarString scalarType = iota
	scalarBool
	scalarInt
	scalarFloat
	scalarOther // timestamps and custom tags: usable as text in YAML
	scalarBinary
)

// node is one value of the parsed document.
type node struct {
	kind  nodeKind
	line  int
	text  string     // scalar text as written (after quote processing)
	typ   scalarType // for scalars
	loose bool       // the scalar reads as a string even if typed (YAML)
	pairs []pair     // mapping entries in document order
	items []*node    // sequence items
}

// pair is one mapping entry. merged marks entries that came from a YAML
// merge key (<<), which explicit keys may override.
type pair struct {
	key    string
	line   int
	value  *node
	merged bool
}

// parseError is a document that could not be parsed at all.
type parseError struct {
	line    int
	problem string
}

func (e *parseError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.problem) }

// Problems for documents over the limits.
var (
	tooDeep = fmt.Sprintf("nests deeper than %d levels", maxDepth)
	tooBig  = fmt.Sprintf("holds more than %d values (after alias expansion)", maxNodes)
)

// yamlLinePrefix matches the "yaml: line N: " prefix of yaml.v3 syntax errors.
var yamlLinePrefix = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// parseYAML parses data as one YAML document. It returns (nil, nil) for an
// empty document.
func parseYAML(data []byte) (n *node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &parseError{line: extra.Line, problem: "holds more than one YAML document; a registry is one document"}
	case !errors.Is(err, io.EOF):
		return nil, yamlSyntaxError(err)
	}
	c := yamlConverter{budget: maxNodes}
	return c.convert(&doc, 0)
}

func yamlSyntaxError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return &parseError{line: line, problem: "is not valid YAML: " + msg}
}

type yamlConverter struct {
	budget int
}

func (c *yamlConverter) convert(y *yaml.Node, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, &parseError{line: y.Line, problem: tooDeep}
	}
	if c.budget--; c.budget < 0 {
		return nil, &parseError{line: y.Line, problem: tooBig}
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return nil, nil
		}
		return c.convert(y.Content[0], depth+1)
	case yaml.AliasNode:
		if y.Alias == nil {
			return &node{kind: nodeNull, line: y.Line}, nil
		}
		n, err := c.convert(y.Alias, depth+1)
		if n != nil {
			n.line = y.Line // point at the use, not the anchor
		}
		return n, err
	case yaml.ScalarNode:
		return yamlScalar(y), nil
	case yaml.SequenceNode:
		n := &node{kind: nodeSequence, line: y.Line, items: make([]*node, 0, len(y.Content))}
		for _, item := range y.Content {
			in, err := c.convert(item, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, in)
		}
		return n, nil
	case yaml.MappingNode:
		return c.mapping(y, depth)
	}
	return &node{kind: nodeNull, line: y.Line}, nil
}

func yamlScalar(y *yaml.Node) *node {
	tag := y.ShortTag()
	// Plain (untagged) scalars read as text whatever they resolve to, as
	// yaml.v3 decodes them into strings: "owner: 2024" is the text "2024".
	// Explicitly tagged ones (!!binary is base64, custom tags) are not text.
	loose := y.Style&yaml.TaggedStyle == 0 || tag == "!!str"
	n := &node{kind: nodeScalar, line: y.Line, text: y.Value, loose: loose}
	switch tag {
	case "!!null":
		n.kind = nodeNull
	case "!!str":
		n.typ = scalarString
	case "!!bool":
		n.typ = scalarBool
	case "!!int":
		n.typ = scalarInt
	case "!!float":
		n.typ = scalarFloat
	case "!!binary":
		n.typ, n.loose = scalarBinary, false
	default:
		n.typ = scalarOther
	}
	return n
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// mapping converts a YAML mapping, applying a merge key (<<) as yaml.v3
// does: explicit keys win over merged ones, and in a merge list earlier
// mappings win over later ones.
func (c *yamlConverter) mapping(y *yaml.Node, depth int) (*node, error) {
	n := &node{kind: nodeMapping, line: y.Line}
	var merge *yaml.Node
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, v := y.Content[i], y.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if isMergeKey(k) {
			if merge != nil {
				return nil, &parseError{line: k.Line, problem: "is not valid YAML: a mapping holds more than one merge key (<<)"}
			}
			merge = v
			continue
		}
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			key = "<non-scalar key>"
		}
		vn, err := c.convert(v, depth+1)
		if err != nil {
			return nil, err
		}
		if vn == nil {
			vn = &node{kind: nodeNull, line: k.Line}
		}
		n.pairs = append(n.pairs, pair{key: key, line: k.Line, value: vn})
	}
	if merge == nil {
		return n, nil
	}
	have := make(map[string]bool, len(n.pairs))
	for _, p := range n.pairs {
		have[p.key] = true
	}
	sources := []*yaml.Node{merge}
	if merge.Kind == yaml.SequenceNode {
		sources = merge.Content
	}
	for _, src := range sources {
		if src.Kind == yaml.AliasNode && src.Alias != nil {
			src = src.Alias
		}
		if src.Kind != yaml.MappingNode {
			return nil, &parseError{line: merge.Line, problem: "is not valid YAML: a merge key (<<) must refer to a mapping or a list of mappings"}
		}
		mn, err := c.convert(src, depth+1)
		if err != nil {
			return nil, err
		}
		for _, p := range mn.pairs {
			if have[p.key] {
				continue
			}
			have[p.key] = true
			p.merged = true
			p.line = merge.Line
			n.pairs = append(n.pairs, p)
		}
	}
	return n, nil
}

// lineIndex maps byte offsets to 1-based line numbers.
type lineIndex []int // offsets of each '\n'

func newLineIndex(data []byte) lineIndex {
	var idx lineIndex
	for i, b := range data {
		if b == '\n' {
			idx = append(idx, i)
		}
	}
	return idx
}

// line returns the line holding byte offset off.
func (l lineIndex) line(off int64) int {
	lo, hi := 0, len(l)
	for lo < hi {
		mid := (lo + hi) / 2
		if int64(l[mid]) < off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo + 1
}

// parseJSON parses data as one JSON value with encoding/json's tokenizer,
// keeping key order, duplicate keys and line numbers that json.Unmarshal
// would lose. It returns (nil, nil) for empty input.
func parseJSON(data []byte) (*node, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	p := jsonParser{dec: json.NewDecoder(bytes.NewReader(data)), lines: newLineIndex(data), budget: maxNodes}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &parseError{line: p.lines.line(p.dec.InputOffset()), problem: "is not valid JSON: unexpected data after the top-level value"}
	}
	return n, nil
}

type jsonParser struct {
	dec    *json.Decoder
	lines  lineIndex
	budget int
}

func (p *jsonParser) fail(err error) error {
	off := p.dec.InputOffset()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off = syn.Offset
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of input"
	}
	return &parseError{line: p.lines.line(off), problem: "is not valid JSON: " + msg}
}

func (p *jsonParser) value(depth int) (*node, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.fail(err)
	}
	line := p.lines.line(p.dec.InputOffset())
	if depth > maxDepth {
		return nil, &parseError{line: line, problem: tooDeep}
	}
	if p.budget--; p.budget < 0 {
		return nil, &parseError{line: line, problem: tooBig}
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: nodeNull, line: line}, nil
	case bool:
		return &node{kind: nodeScalar, line: line, typ: scalarBool, text: strconv.FormatBool(t)}, nil
	case string:
		return &node{kind: nodeScalar, line: line, typ: scalarString, text: t}, nil
	case json.Number:
		typ := scalarFloat
		if _, err := t.Int64(); err == nil {
			typ = scalarInt
		}
		return &node{kind: nodeScalar, line: line, typ: typ, text: t.String()}, nil
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: nodeMapping, line: line}
			for p.dec.More() {
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.fail(err)
				}
				key, _ := kt.(string) // the tokenizer only yields string keys
				keyLine := p.lines.line(p.dec.InputOffset())
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.pairs = append(n.pairs, pair{key: key, line: keyLine, value: v})
			}
			if _, err := p.dec.Token(); err != nil {
				return nil, p.fail(err)
			}
			return n, nil
		case '[':
			n := &node{kind: nodeSequence, line: line}
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, err := p.dec.Token(); err != nil {
				return nil, p.fail(err)
			}
			return n, nil
		}
	}
	return nil, &parseError{line: line, problem: fmt.Sprintf("is not valid JSON: unexpected token %v", tok)}
}
