package scenario

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// placeholder is the template syntax: {{NAME}}, NAME of capitals, digits and
// underscores, starting with a capital.
var placeholder = regexp.MustCompile(`\{\{([A-Z][A-Z0-9_]*)\}\}`)

// Placeholders returns the names of the placeholders in a template, each
// once, in order of first appearance.
func Placeholders(tmpl []byte) []string {
	var names []string
	for _, m := range placeholder.FindAllSubmatch(tmpl, -1) {
		if n := string(m[1]); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Fill replaces every {{NAME}} in tmpl with values[NAME]. It refuses a
// placeholder without a value, a value for a name the template does not
// have (a misspelt name would otherwise go unnoticed), and values that are
// not printable ASCII or that hold '"' or '\' — the template puts values
// inside double-quoted YAML strings, and such a character could change the
// document's meaning rather than fill a field.
func Fill(tmpl []byte, values map[string]string) ([]byte, error) {
	names := Placeholders(tmpl)
	var problems []string
	for _, n := range names {
		v, ok := values[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("no value for {{%s}}", n))
			continue
		}
		if i := strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e || r == '"' || r == '\\' }); i >= 0 {
			problems = append(problems, fmt.Sprintf("the value of %s has a character not allowed in a contract field (%q at byte %d)", n, v[i], i))
		}
	}
	var unknown []string
	for n := range values {
		if !slices.Contains(names, n) {
			unknown = append(unknown, n)
		}
	}
	slices.Sort(unknown)
	for _, n := range unknown {
		problems = append(problems, fmt.Sprintf("the template has no placeholder {{%s}} (it has: %s)", n, strings.Join(names, ", ")))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("filling the contract template: %s", strings.Join(problems, "; "))
	}
	return placeholder.ReplaceAllFunc(tmpl, func(m []byte) []byte {
		return []byte(values[string(m[2:len(m)-2])])
	}), nil
}
