package contracts

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits on an algorithm's parameters.
const (
	MaxParameters     = 64
	MaxAllowedValues  = 256
	MaxParameterValue = 1024 // bytes of a value's text
)

var parameterNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Parameter is a value the algorithm's SQL reads as $Name, chosen by
// whoever starts a run, within the domain the contract gives it: the
// closed interval [Min, Max], or one of Allowed. The coordinator binds it
// as a prepared-statement parameter, never spliced into the text, so it
// is a literal of the query: it can change which rows and values the
// query reads, never which tables, columns or functions (docs/contract.md,
// "Parameters").
type Parameter struct {
	Name    string
	Type    ColumnType
	Min     *Value  // with Max; nil when the domain is Allowed
	Max     *Value  // with Min
	Allowed []Value // nil when the domain is [Min, Max]
}

// Value is a parameter value of one column type. Its canonical text
// (String) is how contracts, logs, statements and the command line write
// it: bool true/false; integers in decimal; float64 in Go's shortest
// round-trip form ('g', no -0); string as it is; date YYYY-MM-DD;
// timestamp RFC 3339 in UTC with as many fractional digits as needed
// (microsecond precision at most); decimal(p,s) with exactly s fraction
// digits.
type Value struct {
	Type ColumnType
	text string
	b    bool
	i    int64
	f    float64
	t    time.Time
	d    *big.Int // decimal: the unscaled value at Type.Scale
}

// String returns the canonical text.
func (v Value) String() string { return v.text }

// Bool, Int, Float, Time and Text return the value as Go holds it: Bool
// for bool, Int for int32 and int64, Float for float64, Time for date
// (midnight UTC) and timestamp (UTC), Text for string and (canonical text)
// decimal.
func (v Value) Bool() bool      { return v.b }
func (v Value) Int() int64      { return v.i }
func (v Value) Float() float64  { return v.f }
func (v Value) Time() time.Time { return v.t }
func (v Value) Text() string    { return v.text }

var decimalValuePattern = regexp.MustCompile(`^(-?)([0-9]+)(?:\.([0-9]+))?$`)

// ParseValue parses the text of a value of type t. It accepts the
// canonical text and the spellings that mean the same value (leading zeros
// of numbers, a timestamp in another zone, fewer decimal fraction digits);
// String gives the canonical text back.
func ParseValue(t ColumnType, s string) (Value, error) {
	v := Value{Type: t}
	if len(s) > MaxParameterValue {
		return v, fmt.Errorf("the value has %d bytes, more than the limit of %d", len(s), MaxParameterValue)
	}
	switch t.Kind {
	case KindBool:
		switch s {
		case "true", "false":
			v.b, v.text = s == "true", s
			return v, nil
		}
		return v, fmt.Errorf("%q is not a bool (true or false)", truncate(s))
	case KindInt32, KindInt64:
		bits := 64
		if t.Kind == KindInt32 {
			bits = 32
		}
		if !digitsOnly.MatchString(s) {
			return v, fmt.Errorf("%q is not an %s (a decimal integer)", truncate(s), t)
		}
		i, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return v, fmt.Errorf("%s is out of the range of %s", truncate(s), t)
		}
		v.i, v.text = i, strconv.FormatInt(i, 10)
		return v, nil
	case KindFloat64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
			return v, fmt.Errorf("%q is not a finite float64 (a decimal number such as 2.5 or 1e-3)", truncate(s))
		}
		if f == 0 {
			f = 0 // no -0
		}
		v.f, v.text = f, strconv.FormatFloat(f, 'g', -1, 64)
		return v, nil
	case KindString:
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return v, errors.New("a string value must be UTF-8 without NUL bytes")
		}
		v.text = s
		return v, nil
	case KindDate:
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return v, fmt.Errorf("%q is not a date (YYYY-MM-DD)", truncate(s))
		}
		v.t, v.text = d, d.Format(time.DateOnly)
		return v, nil
	case KindTimestamp:
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return v, fmt.Errorf("%q is not a timestamp (RFC 3339 with a zone, such as 2026-03-01T00:00:00Z)", truncate(s))
		}
		if ts.Nanosecond()%1000 != 0 {
			return v, fmt.Errorf("%s has more than microsecond precision, which a timestamp holds", truncate(s))
		}
		ts = ts.UTC()
		if ts.Year() < 1 || ts.Year() > 9999 {
			return v, fmt.Errorf("%s is outside the years 1 to 9999", truncate(s))
		}
		v.t, v.text = ts, ts.Format(time.RFC3339Nano)
		return v, nil
	case KindDecimal:
		m := decimalValuePattern.FindStringSubmatch(s)
		if m == nil {
			return v, fmt.Errorf("%q is not a %s (digits with an optional sign and fraction, such as -12.50)", truncate(s), t)
		}
		intPart, frac := strings.TrimLeft(m[2], "0"), m[3]
		if len(frac) > int(t.Scale) {
			return v, fmt.Errorf("%s has %d fraction digits; %s has %d", truncate(s), len(frac), t, t.Scale)
		}
		frac += strings.Repeat("0", int(t.Scale)-len(frac))
		if len(intPart)+int(t.Scale) > int(t.Precision) {
			return v, fmt.Errorf("%s has more than the %d digits of %s", truncate(s), t.Precision, t)
		}
		u, _ := new(big.Int).SetString("0"+intPart+frac, 10)
		if m[1] == "-" {
			u.Neg(u)
		}
		if intPart == "" {
			intPart = "0"
		}
		sign := ""
		if u.Sign() < 0 {
			sign = "-"
		}
		v.d, v.text = u, sign+intPart
		if t.Scale > 0 {
			v.text += "." + frac
		}
		return v, nil
	}
	return v, fmt.Errorf("unknown type %s", t)
}

// Compare orders two values of the same type: -1, 0 or +1. Strings and
// bools compare by their text (false before true); it is not meant for
// them, whose domains are lists.
func (v Value) Compare(w Value) int {
	switch v.Type.Kind {
	case KindInt32, KindInt64:
		return cmpOrdered(v.i, w.i)
	case KindFloat64:
		return cmpOrdered(v.f, w.f)
	case KindDate, KindTimestamp:
		return v.t.Compare(w.t)
	case KindDecimal:
		return v.d.Cmp(w.d)
	}
	return strings.Compare(v.text, w.text)
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Domain describes the values a parameter accepts, for people:
// "2026-01-01 to 2026-12-31" or "one of spring, summer".
func (p *Parameter) Domain() string {
	if p.Allowed != nil {
		texts := make([]string, len(p.Allowed))
		for i, a := range p.Allowed {
			texts[i] = a.text
		}
		return "one of " + strings.Join(texts, ", ")
	}
	return p.Min.text + " to " + p.Max.text
}

// Check parses text as a value of the parameter and checks it against the
// parameter's domain. Errors name the parameter and say what is wrong.
func (p *Parameter) Check(text string) (Value, error) {
	v, err := ParseValue(p.Type, text)
	if err != nil {
		return v, &ParameterError{Name: p.Name, Kind: ErrParameterType, Msg: err.Error()}
	}
	if p.Allowed != nil {
		if !slices.ContainsFunc(p.Allowed, func(a Value) bool { return a.text == v.text }) {
			return v, &ParameterError{Name: p.Name, Kind: ErrParameterRange, Msg: fmt.Sprintf("%s is not allowed: the contract allows %s", quoteValue(v), p.Domain())}
		}
		return v, nil
	}
	if v.Compare(*p.Min) < 0 {
		return v, &ParameterError{Name: p.Name, Kind: ErrParameterRange, Msg: fmt.Sprintf("%s is below its minimum %s (the contract allows %s)", v.text, p.Min.text, p.Domain())}
	}
	if v.Compare(*p.Max) > 0 {
		return v, &ParameterError{Name: p.Name, Kind: ErrParameterRange, Msg: fmt.Sprintf("%s is above its maximum %s (the contract allows %s)", v.text, p.Max.text, p.Domain())}
	}
	return v, nil
}

func quoteValue(v Value) string {
	if v.Type.Kind == KindString {
		return strconv.Quote(truncate(v.text))
	}
	return v.text
}

// Kinds of parameter errors, for errors.Is.
var (
	ErrParameterMissing = errors.New("parameter missing")
	ErrParameterUnknown = errors.New("parameter not declared")
	ErrParameterType    = errors.New("parameter of the wrong type")
	ErrParameterRange   = errors.New("parameter out of range")
)

// ParameterError is one problem with the values given for a run: a
// parameter missing, not declared, of the wrong type or outside its
// domain. It names the parameter.
type ParameterError struct {
	Name string
	Kind error // one of the ErrParameter... values
	Msg  string
}

func (e *ParameterError) Error() string { return "parameter " + e.Name + ": " + e.Msg }

// Unwrap returns the kind.
func (e *ParameterError) Unwrap() error { return e.Kind }

// Parameter returns the algorithm's parameter with the given name, or nil.
func (a *Algorithm) Parameter(name string) *Parameter {
	for i := range a.Parameters {
		if a.Parameters[i].Name == name {
			return &a.Parameters[i]
		}
	}
	return nil
}

// CheckParameters checks the values given for a run (name → text) against
// the algorithm's parameters: every declared parameter given once, no other,
// each of its type and in its domain. It returns the values in canonical
// text (the form logs and statements record), or every problem, each a
// *ParameterError, joined in declaration order (unknown names last, sorted).
func (a *Algorithm) CheckParameters(given map[string]string) (map[string]string, error) {
	var errs []error
	out := make(map[string]string, len(a.Parameters))
	for i := range a.Parameters {
		p := &a.Parameters[i]
		text, ok := given[p.Name]
		if !ok {
			errs = append(errs, &ParameterError{Name: p.Name, Kind: ErrParameterMissing,
				Msg: fmt.Sprintf("is missing: the contract declares it (%s, %s); give it with --param %s=VALUE", p.Type, p.Domain(), p.Name)})
			continue
		}
		v, err := p.Check(text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[p.Name] = v.text
	}
	var unknown []string
	for name := range given {
		if a.Parameter(name) == nil {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		declared := "declares no parameter"
		if len(a.Parameters) > 0 {
			names := make([]string, len(a.Parameters))
			for i, p := range a.Parameters {
				names[i] = p.Name
			}
			declared = "declares " + strings.Join(names, ", ")
		}
		errs = append(errs, &ParameterError{Name: printable(name), Kind: ErrParameterUnknown, Msg: "is not declared: the contract " + declared})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// printable quotes a name given by someone else when it is not a valid
// parameter name, so that a message shows it as it is.
func printable(name string) string {
	if parameterNamePattern.MatchString(name) {
		return name
	}
	return strconv.Quote(truncate(name))
}

// parameters decodes algorithm.parameters. Values are parsed once the
// parameter's type is known, whatever the order of the keys.
func (d *decoder) parameters(n *yaml.Node, path string, at func(string, *yaml.Node)) []Parameter {
	var out []Parameter
	d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
		at(p, item)
		out = append(out, d.parameter(item, p, at))
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errorf(path, n, "an empty parameters list: leave the field out when the algorithm has no parameter")
	}
	if len(n.Content) > MaxParameters {
		d.errorf(path, n, "%d parameters is more than the limit of %d", len(n.Content), MaxParameters)
	}
	return out
}

func (d *decoder) parameter(n *yaml.Node, path string, at func(string, *yaml.Node)) Parameter {
	var p Parameter
	var typed bool
	var minNode, maxNode, allowedNode *yaml.Node
	d.mapping(n, path, []field{
		{"name", true, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				if !parameterNamePattern.MatchString(s) {
					d.errorf(path, n, "%q is not a valid parameter name (the SQL writes it $name: lowercase letter, then up to 62 lowercase letters, digits or '_')", truncate(s))
				}
				p.Name = s
			}
		}},
		{"type", true, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				t, err := ParseColumnType(s)
				if err != nil {
					d.errorf(path, n, "%v", err)
					return
				}
				p.Type, typed = t, true
			}
		}},
		{"min", false, func(n *yaml.Node, path string) { at(path, n); minNode = n }},
		{"max", false, func(n *yaml.Node, path string) { at(path, n); maxNode = n }},
		{"allowed", false, func(n *yaml.Node, path string) { at(path, n); allowedNode = n }},
	})
	if !typed {
		return p
	}
	value := func(n *yaml.Node, path string) (Value, bool) {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errorf(path, n, "must be a value of type %s, got %s", p.Type, describe(n))
			return Value{}, false
		}
		v, err := ParseValue(p.Type, n.Value)
		if err != nil {
			d.errorf(path, n, "%v", err)
			return Value{}, false
		}
		return v, true
	}
	switch {
	case allowedNode != nil && (minNode != nil || maxNode != nil):
		d.errorf(join(path, "allowed"), allowedNode, "give either allowed or min and max, not both")
	case allowedNode != nil:
		seen := map[string]int{}
		p.Allowed = []Value{}
		d.sequence(allowedNode, join(path, "allowed"), func(i int, item *yaml.Node, ip string) {
			v, ok := value(item, ip)
			if !ok {
				return
			}
			if j, dup := seen[v.text]; dup {
				d.errorf(ip, item, "%s is listed twice (first as allowed[%d])", quoteValue(v), j)
				return
			}
			seen[v.text] = i
			p.Allowed = append(p.Allowed, v)
		})
		if allowedNode.Kind == yaml.SequenceNode && len(allowedNode.Content) == 0 {
			d.errorf(join(path, "allowed"), allowedNode, "an empty list allows no value")
		}
		if len(allowedNode.Content) > MaxAllowedValues {
			d.errorf(join(path, "allowed"), allowedNode, "%d values is more than the limit of %d", len(allowedNode.Content), MaxAllowedValues)
		}
	case p.Type.Kind == KindBool || p.Type.Kind == KindString:
		d.errorf(path, n, "a %s parameter needs allowed: the list of its values (min and max do not bound a %s)", p.Type, p.Type)
	case minNode == nil || maxNode == nil:
		d.errorf(path, n, "needs both min and max, or allowed: every parameter's values are bounded by the contract")
	default:
		lo, ok1 := value(minNode, join(path, "min"))
		hi, ok2 := value(maxNode, join(path, "max"))
		if ok1 && ok2 {
			if lo.Compare(hi) > 0 {
				d.errorf(join(path, "min"), minNode, "min %s is above max %s", lo.text, hi.text)
			}
			p.Min, p.Max = &lo, &hi
		}
	}
	return p
}

// checkParameters checks what decoding cannot: unique names.
func (v *validator) checkParameters() {
	seen := map[string]int{}
	for i, p := range v.c.Algorithm.Parameters {
		path := index("algorithm.parameters", i)
		if j, dup := seen[p.Name]; dup {
			v.problem(path+".name", "parameter %q is already declared by algorithm.parameters[%d]", p.Name, j)
		}
		seen[p.Name] = i
	}
}

// canonicalParameters is algorithm.parameters as docs/contract.md encodes
// it: values as their canonical text.
func canonicalParameters(ps []Parameter) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		m := map[string]any{"name": p.Name, "type": p.Type.String()}
		if p.Allowed != nil {
			allowed := make([]any, len(p.Allowed))
			for j, a := range p.Allowed {
				allowed[j] = a.text
			}
			m["allowed"] = allowed
		} else {
			m["min"], m["max"] = p.Min.text, p.Max.text
		}
		out[i] = m
	}
	return out
}
