package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// topLevel names the document itself where a problem has no field path.
const topLevel = "(top level)"

// decoded is the result of decoding a config file: the config (nil when the
// file is not YAML at all), the problems found, and where each YAML path is.
type decoded struct {
	cfg      *Config
	problems []string
	// structural is set when a whole mapping or list could not be decoded
	// (a duplicate key, a list where a mapping belongs): validating what
	// is left would only add misleading problems.
	structural bool
	// paths are the fields that already have a decoding problem.
	paths map[string]bool
	idx   nodeIndex
}

// decode parses data twice: into a yaml.Node tree, to know the YAML path of
// each line, and strictly into a Config, collecting every type error.
func decode(data []byte) *decoded {
	d := &decoded{paths: map[string]bool{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		d.problems = append(d.problems, syntaxProblem(err))
		return d
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.add(topLevel, "the file holds more than one YAML document", extra.Line)
		d.structural = true
	}
	d.idx = indexNodes(&doc)

	// A missing admin_listen gets the default; an explicit "" disables it.
	cfg := &Config{AdminListen: DefaultAdminListen}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err := strict.Decode(cfg)
	var te *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case errors.As(err, &te):
		for _, msg := range te.Errors {
			d.typeProblem(msg)
		}
	default:
		d.problems = append(d.problems, syntaxProblem(err))
		return d
	}
	d.cfg = cfg
	return d
}

func syntaxProblem(err error) string {
	return topLevel + ": not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
}

func (d *decoded) add(path, msg string, line int) {
	d.paths[path] = true
	if line > 0 {
		msg += fmt.Sprintf(" (line %d)", line)
	}
	d.problems = append(d.problems, path+": "+msg)
}

var (
	lineRE      = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	unknownRE   = regexp.MustCompile(`^field (.*) not found in type \S+$`)
	duplicateRE = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal (!!\\w+)( `.*`)? into (.+)$")
)

// typeProblem turns one of yaml.v3's "line N: ..." messages into a problem
// that starts with the YAML path it is about.
func (d *decoded) typeProblem(msg string) {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		d.add(topLevel, msg, 0)
		return
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2]) // only our Duration messages carry a column
	rest := m[3]
	if k := unknownRE.FindStringSubmatch(rest); k != nil {
		d.add(d.idx.keyPath(line, k[1]), fmt.Sprintf("unknown key %q", k[1]), line)
		return
	}
	if k := duplicateRE.FindStringSubmatch(rest); k != nil {
		d.structural = true
		d.add(d.idx.keyPath(line, k[1]), "duplicate key, first at line "+k[2], line)
		return
	}
	if k := unmarshalRE.FindStringSubmatch(rest); k != nil {
		kind := yaml.ScalarNode
		switch k[1] {
		case "!!map":
			kind = yaml.MappingNode
		case "!!seq":
			kind = yaml.SequenceNode
		}
		if kind != yaml.ScalarNode {
			d.structural = true
		}
		got := strings.TrimPrefix(k[1], "!!") + k[2]
		d.add(d.idx.valuePath(line, 0, kind), fmt.Sprintf("want %s, got %s", describe(k[3]), got), line)
		return
	}
	d.add(d.idx.valuePath(line, col, 0), rest, line)
}

// describe names a Go type the way a config author thinks of it.
func describe(goType string) string {
	switch goType {
	case "int":
		return "a whole number"
	case "bool", "*bool":
		return "true or false"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "[]config.Upstream":
		return "a list of upstreams"
	case "[]config.AccessRule":
		return "a list of access rules"
	}
	if strings.HasPrefix(goType, "config.") {
		return "a mapping"
	}
	return goType
}

// annotate splits err (from Validate) into problems, drops those about a
// field that already has a decoding problem, and adds line numbers.
func (d *decoded) annotate(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return []string{err.Error()}
		}
		return nil
	}
	var out []string
	for _, p := range ve.Problems {
		path, _, _ := strings.Cut(p, ": ")
		if d.paths[path] {
			continue
		}
		if line, ok := d.idx.lines[path]; ok {
			p += fmt.Sprintf(" (line %d)", line)
		}
		out = append(out, p)
	}
	return out
}

// nodeIndex maps source positions back to YAML paths like upstreams[1].url.
type nodeIndex struct {
	keys   map[lineKey]string
	values map[int][]nodeAt
	lines  map[string]int
}

type lineKey struct {
	line int
	key  string
}

type nodeAt struct {
	path string
	col  int
	kind yaml.Kind
}

func indexNodes(doc *yaml.Node) nodeIndex {
	idx := nodeIndex{keys: map[lineKey]string{}, values: map[int][]nodeAt{}, lines: map[string]int{}}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		idx.walk(doc.Content[0], "")
	}
	return idx
}

func (idx nodeIndex) walk(n *yaml.Node, path string) {
	idx.values[n.Line] = append(idx.values[n.Line], nodeAt{path: path, col: n.Column, kind: n.Kind})
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx.keys[lineKey{k.Line, k.Value}] = p
			if _, dup := idx.lines[p]; !dup {
				idx.lines[p] = k.Line
			}
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, dup := idx.lines[p]; !dup {
				idx.lines[p] = c.Line
			}
			idx.walk(c, p)
		}
	}
}

// keyPath is the path of the mapping key named key on line.
func (idx nodeIndex) keyPath(line int, key string) string {
	if p, ok := idx.keys[lineKey{line, key}]; ok {
		return p
	}
	return topLevel
}

// valuePath is the path of the first node of kind (any kind, if 0) on
// line (at col, if col > 0).
func (idx nodeIndex) valuePath(line, col int, kind yaml.Kind) string {
	for _, n := range idx.values[line] {
		if (kind == 0 || n.kind == kind) && (col == 0 || n.col == col) {
			return pathOrTop(n.path)
		}
	}
	return topLevel
}

func pathOrTop(p string) string {
	if p == "" {
		return topLevel
	}
	return p
}
