package contracts

import (
	"errors"
	"strings"
	"testing"
)

// paramsBlock is an algorithm.parameters section with one parameter of
// every kind of domain.
const paramsBlock = `  parameters:
    - {name: since, type: date, min: 2026-01-01, max: 2026-12-31}
    - {name: until, type: timestamp, min: "2026-01-01T00:00:00Z", max: "2027-01-01T00:00:00+01:00"}
    - {name: min_age, type: int32, min: 18, max: 120}
    - {name: rate, type: float64, min: -1.5, max: 2e3}
    - {name: cap, type: "decimal(6,2)", min: "0", max: 9999.99}
    - {name: campaign, type: string, allowed: [spring, summer, "2026"]}
    - {name: strict, type: bool, allowed: [true, false]}
    - {name: bucket, type: int64, allowed: [1, 7, 30]}
`

func paramsYAML(block string) string {
	return strings.Replace(baseYAML(), "  confidential: false\noutput:", "  confidential: false\n"+block+"output:", 1)
}

func TestParameters(t *testing.T) {
	base := mustParse(t, baseYAML())
	if base.Algorithm.Parameters != nil || strings.Contains(string(base.CanonicalBytes()), "parameters") || strings.Contains(string(base.CanonicalBytes()), "supersedes") {
		t.Fatal("a contract without parameters or supersedes has them in its canonical encoding: ids of older contracts would change")
	}
	c := mustParse(t, paramsYAML(paramsBlock))
	if c.ID() == base.ID() {
		t.Fatal("adding parameters left the id unchanged")
	}
	a := &c.Algorithm
	if len(a.Parameters) != 8 {
		t.Fatalf("%d parameters", len(a.Parameters))
	}
	for _, tc := range []struct{ name, domain string }{
		{"since", "2026-01-01 to 2026-12-31"},
		{"until", "2026-01-01T00:00:00Z to 2026-12-31T23:00:00Z"},
		{"min_age", "18 to 120"},
		{"rate", "-1.5 to 2000"},
		{"cap", "0.00 to 9999.99"},
		{"campaign", "one of spring, summer, 2026"},
		{"strict", "one of true, false"},
		{"bucket", "one of 1, 7, 30"},
	} {
		if got := a.Parameter(tc.name).Domain(); got != tc.domain {
			t.Errorf("%s: domain %q, want %q", tc.name, got, tc.domain)
		}
	}
	// Spelling a value otherwise keeps the id; changing one changes it.
	same := strings.NewReplacer("min: 18,", "min: 018,", "max: 9999.99}", "max: \"9999.990\"}").Replace(paramsYAML(paramsBlock))
	if got := mustParseOrErr(t, strings.Replace(same, "9999.990", "9999.99", 1)); got.ID() != c.ID() {
		t.Error("writing 18 as 018 changed the id")
	}
	for name, e := range map[string][2]string{
		"name":    {"name: since", "name: since2"},
		"type":    {"type: int32", "type: int64"},
		"min":     {"min: 18", "min: 19"},
		"max":     {"max: 120", "max: 121"},
		"allowed": {"[1, 7, 30]", "[1, 7, 31]"},
		"order":   {"[spring, summer,", "[summer, spring,"},
	} {
		text := strings.Replace(paramsYAML(paramsBlock), e[0], e[1], 1)
		if other := mustParseOrErr(t, text); other.ID() == c.ID() {
			t.Errorf("%s: id unchanged", name)
		}
	}
}

func mustParseOrErr(t *testing.T, text string) *Contract {
	t.Helper()
	c, err := Parse([]byte(text), ParseOptions{Now: testNow})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestBadParameters(t *testing.T) {
	one := func(p string) string { return "  parameters:\n    - " + p + "\n" }
	for _, tc := range []struct {
		name, block, field, errSubstr string
	}{
		{"empty list", "  parameters: []\n", "algorithm.parameters", "empty parameters list"},
		{"bad name", one("{name: Since, type: date, min: 2026-01-01, max: 2026-02-01}"), "algorithm.parameters[0].name", "not a valid parameter name"},
		{"dollar name", one("{name: $since, type: date, min: 2026-01-01, max: 2026-02-01}"), "algorithm.parameters[0].name", "not a valid parameter name"},
		{"unknown type", one("{name: x, type: interval, min: 1, max: 2}"), "algorithm.parameters[0].type", "unknown type"},
		{"no domain", one("{name: x, type: int32}"), "algorithm.parameters[0]", "needs both min and max, or allowed"},
		{"only min", one("{name: x, type: int32, min: 1}"), "algorithm.parameters[0]", "needs both min and max"},
		{"both kinds", one("{name: x, type: int32, min: 1, max: 2, allowed: [1]}"), "algorithm.parameters[0].allowed", "not both"},
		{"string bounds", one("{name: x, type: string, min: a, max: b}"), "algorithm.parameters[0]", "string parameter needs allowed"},
		{"bool bounds", one("{name: x, type: bool, min: false, max: true}"), "algorithm.parameters[0]", "bool parameter needs allowed"},
		{"min above max", one("{name: x, type: date, min: 2026-02-01, max: 2026-01-01}"), "algorithm.parameters[0].min", "min 2026-02-01 is above max 2026-01-01"},
		{"bad date", one("{name: x, type: date, min: 2026-02-30, max: 2026-03-01}"), "algorithm.parameters[0].min", "not a date"},
		{"int out of range", one("{name: x, type: int32, min: 0, max: 3000000000}"), "algorithm.parameters[0].max", "out of the range of int32"},
		{"float for int", one("{name: x, type: int64, min: 0, max: 1.5}"), "algorithm.parameters[0].max", "not an int64"},
		{"decimal scale", one("{name: x, type: \"decimal(4,1)\", min: 0, max: 1.25}"), "algorithm.parameters[0].max", "2 fraction digits"},
		{"decimal precision", one("{name: x, type: \"decimal(4,1)\", min: 0, max: 1000}"), "algorithm.parameters[0].max", "more than the 4 digits"},
		{"timestamp without zone", one("{name: x, type: timestamp, min: \"2026-01-01T00:00:00\", max: \"2026-01-02T00:00:00Z\"}"), "algorithm.parameters[0].min", "not a timestamp"},
		{"nan", one("{name: x, type: float64, min: .nan, max: 1}"), "algorithm.parameters[0].min", "not a finite float64"},
		{"null value", one("{name: x, type: int32, min: null, max: 1}"), "algorithm.parameters[0].min", "must be a value of type int32, got null"},
		{"empty allowed", one("{name: x, type: string, allowed: []}"), "algorithm.parameters[0].allowed", "allows no value"},
		{"allowed twice", one("{name: x, type: int32, allowed: [1, 01]}"), "algorithm.parameters[0].allowed[1]", "listed twice"},
		{"bool value", one("{name: x, type: bool, allowed: [yes]}"), "algorithm.parameters[0].allowed[0]", "not a bool"},
		{"unknown field", one("{name: x, type: bool, allowed: [true], default: true}"), "algorithm.parameters[0].default", "unknown field"},
		{"duplicate name", one("{name: x, type: bool, allowed: [true]}") + "    - {name: x, type: bool, allowed: [false]}\n", "algorithm.parameters[1].name", "already declared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(paramsYAML(tc.block)), ParseOptions{Now: testNow})
			if err == nil || !strings.Contains(err.Error(), tc.field+":") || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Fatalf("got %v; want %s: ...%s", err, tc.field, tc.errSubstr)
			}
		})
	}
}

// TestCheckParameters checks the values of a run: missing, undeclared,
// mistyped and out-of-range values are each refused naming the parameter;
// good values come back in canonical text.
func TestCheckParameters(t *testing.T) {
	a := &mustParse(t, paramsYAML(paramsBlock)).Algorithm
	good := map[string]string{
		"since": "2026-03-01", "until": "2026-06-01T12:00:00.5+02:00", "min_age": "040", "rate": "1e2",
		"cap": "12.5", "campaign": "2026", "strict": "true", "bucket": "007",
	}
	got, err := a.CheckParameters(good)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"since": "2026-03-01", "until": "2026-06-01T10:00:00.5Z", "min_age": "40", "rate": "100",
		"cap": "12.50", "campaign": "2026", "strict": "true", "bucket": "7",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: canonical %q, want %q", k, got[k], v)
		}
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "<delete>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		values map[string]string
		kind   error
		msg    string
	}{
		{"missing", with("since", "<delete>"), ErrParameterMissing, "parameter since: is missing"},
		{"undeclared", with("region", "north"), ErrParameterUnknown, "parameter region: is not declared: the contract declares since, until"},
		{"undeclared odd name", with("Bad Name", "x"), ErrParameterUnknown, `parameter "Bad Name": is not declared`},
		{"mistyped date", with("since", "March 1"), ErrParameterType, `parameter since: "March 1" is not a date`},
		{"mistyped int", with("min_age", "forty"), ErrParameterType, `parameter min_age: "forty" is not an int32`},
		{"mistyped bool", with("strict", "yes"), ErrParameterType, `parameter strict: "yes" is not a bool`},
		{"below min", with("since", "2025-12-31"), ErrParameterRange, "parameter since: 2025-12-31 is below its minimum 2026-01-01"},
		{"above max", with("min_age", "121"), ErrParameterRange, "parameter min_age: 121 is above its maximum 120"},
		{"decimal too wide", with("cap", "10000"), ErrParameterType, "parameter cap: 10000 has more than the 6 digits of decimal(6,2)"},
		{"decimal below min", with("cap", "-0.01"), ErrParameterRange, "parameter cap: -0.01 is below its minimum 0.00"},
		{"timestamp above max", with("until", "2027-01-01T00:00:00Z"), ErrParameterRange, "parameter until: 2027-01-01T00:00:00Z is above its maximum 2026-12-31T23:00:00Z"},
		{"not allowed", with("campaign", "winter"), ErrParameterRange, `parameter campaign: "winter" is not allowed: the contract allows one of spring, summer, 2026`},
		{"splice attempt", with("campaign", "spring' OR 1=1 --"), ErrParameterRange, "is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.CheckParameters(tc.values)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want %v: %s", err, tc.kind, tc.msg)
			}
			var pe *ParameterError
			if !errors.As(err, &pe) || pe.Name == "" {
				t.Fatalf("the error does not name the parameter: %v", err)
			}
		})
	}
	// A contract without parameters takes none.
	none := &mustParse(t, baseYAML()).Algorithm
	if _, err := none.CheckParameters(map[string]string{"x": "1"}); !errors.Is(err, ErrParameterUnknown) || !strings.Contains(err.Error(), "declares no parameter") {
		t.Fatalf("a value for a contract without parameters: %v", err)
	}
	if v, err := none.CheckParameters(nil); err != nil || len(v) != 0 {
		t.Fatalf("no values for a contract without parameters: %v %v", v, err)
	}
}

func TestParseValueCanonical(t *testing.T) {
	for _, tc := range []struct{ typ, in, out string }{
		{"float64", "-0", "0"},
		{"float64", "0.1", "0.1"},
		{"float64", "1e21", "1e+21"},
		{"decimal(5,2)", "-0.0", "0.00"},
		{"decimal(5,2)", "-001.5", "-1.50"},
		{"decimal(3,0)", "12", "12"},
		{"int64", "-9223372036854775808", "-9223372036854775808"},
		{"timestamp", "2026-01-01T00:00:00.000100Z", "2026-01-01T00:00:00.0001Z"},
		{"date", "2026-02-28", "2026-02-28"},
		{"string", "", ""},
	} {
		typ, err := ParseColumnType(tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ParseValue(typ, tc.in)
		if err != nil {
			t.Errorf("%s %q: %v", tc.typ, tc.in, err)
			continue
		}
		if v.String() != tc.out {
			t.Errorf("%s %q: canonical %q, want %q", tc.typ, tc.in, v.String(), tc.out)
		}
		if again, err := ParseValue(typ, v.String()); err != nil || again.String() != v.String() {
			t.Errorf("%s %q: the canonical text does not parse to itself: %v", tc.typ, tc.in, err)
		}
	}
	for _, tc := range []struct{ typ, in string }{
		{"float64", "0x1p-2"}, {"float64", "1_000"}, {"float64", "Inf"}, {"int32", "1.0"}, {"int32", " 1"},
		{"timestamp", "2026-01-01T00:00:00.0000001Z"}, {"string", "a\x00b"}, {"string", "\xff"},
		{"decimal(5,2)", "1e2"}, {"decimal(5,2)", ".5"}, {"date", "2026-1-1"},
	} {
		typ, _ := ParseColumnType(tc.typ)
		if v, err := ParseValue(typ, tc.in); err == nil {
			t.Errorf("%s %q accepted as %q", tc.typ, tc.in, v)
		}
	}
}
