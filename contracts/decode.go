package contracts

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with a contract: the field's path (for example
// "participants[1].public_key"), the line where it is (0 when unknown), and
// what is wrong.
type FieldError struct {
	Field string
	Line  int
	Msg   string
}

func (e *FieldError) Error() string {
	field := e.Field
	if field == "" {
		field = "(contract)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", field, e.Msg)
}

// ParseError lists every problem found in a contract, in document order.
// It unwraps to ErrInvalid.
type ParseError struct {
	File     string // "" when the contract did not come from a file
	Problems []*FieldError
}

func (e *ParseError) Error() string {
	var b strings.Builder
	prefix := "contract"
	if e.File != "" {
		prefix = e.File
	}
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "%s: %s", prefix, e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %d problems:", prefix, len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s", p)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ParseError) Unwrap() error { return ErrInvalid }

// decoder walks a YAML node tree strictly: every mapping key must be known
// and appear once, every scalar must have the expected type. It collects
// problems rather than stopping at the first.
type decoder struct {
	problems []*FieldError
}

func (d *decoder) errorf(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, &FieldError{Field: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// field describes one key of a mapping.
type field struct {
	name     string
	required bool
	decode   func(n *yaml.Node, path string)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// mapping decodes a mapping node with the given fields. It reports unknown
// and duplicate keys and missing required ones. It returns false if n is not
// a mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, n, "must be a mapping, got %s", describe(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(path, k, "keys must be plain strings, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(p, k, "duplicate field (first given on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		var f *field
		for j := range fields {
			if fields[j].name == k.Value {
				f = &fields[j]
			}
		}
		if f == nil {
			d.errorf(p, k, "unknown field (known fields here: %s)", fieldNames(fields))
			continue
		}
		f.decode(v, p)
	}
	for _, f := range fields {
		if _, ok := seen[f.name]; f.required && !ok {
			d.errorf(join(path, f.name), n, "required field is missing")
		}
	}
	return true
}

func fieldNames(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// sequence calls each for every item of a sequence node.
func (d *decoder) sequence(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(path, n, "must be a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		each(i, item, index(path, i))
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("string %q", truncate(n.Value))
		case "!!int":
			return "integer " + truncate(n.Value)
		case "!!bool":
			return "boolean " + n.Value
		case "!!float":
			return "number " + truncate(n.Value)
		case "!!timestamp":
			return "timestamp " + n.Value
		}
		return fmt.Sprintf("%s %q", n.Tag, truncate(n.Value))
	}
	return "an unexpected node"
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(path, n, "must be a string, got %s (quote it)", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" && digitsOnly.MatchString(n.Value) {
		d.errorf(path, n, "must be a decimal integer in range, got %q", truncate(n.Value))
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(path, n, "must be an integer, got %s", describe(n))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		d.errorf(path, n, "must be a decimal integer in range, got %q", truncate(n.Value))
		return 0, false
	}
	return v, true
}

var digitsOnly = regexp.MustCompile(`^-?[0-9]+$`)

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || (n.Value != "true" && n.Value != "false") {
		d.errorf(path, n, "must be true or false, got %s", describe(n))
		return false, false
	}
	return n.Value == "true", true
}

// strings decodes a list of strings.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	var out []string
	d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
		if s, ok := d.str(item, p); ok {
			out = append(out, s)
		}
	})
	return out
}

// checkNoAliases refuses anchors, aliases and merge keys anywhere: they
// make the text mean something other than what a reader sees, and they are
// the vector of "billion laughs" expansion.
func (d *decoder) checkNoAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf("", n, "YAML anchors and aliases are not allowed in a contract")
		return
	}
	if n.Tag == "!!merge" {
		d.errorf("", n, "YAML merge keys are not allowed in a contract")
	}
	for _, c := range n.Content {
		d.checkNoAliases(c)
	}
}
